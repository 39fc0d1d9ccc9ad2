#!/usr/bin/env bash
# The README's main job: install, build, check the host, then the service: emoe_server on a
# generated MoE model with the real Qwen3 vocabulary (hmmd and instance processes), a few
# streaming chat requests with curl, then an open-loop load (serve_bench) during which the admin
# endpoint scales it 2 -> 4 -> 2 devices; prints the event table and the load's figures, and
# stops the server with SIGTERM. The elastic-scaling experiment is the researchers' command
# (README "Elastic scaling": build/tools/elasticmoe).
#   DEMO_OUT=demo_out     where server.log, load.json and the scale reports go
#   extra arguments are passed to emoe_server (e.g. --devices=1 --max_devices=3)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
BUILD_DIR=${BUILD_DIR:-build}
"$BUILD_DIR/tools/host_doctor" || true
out=${DEMO_OUT:-demo_out}
rm -rf "$out" && mkdir -p "$out"
if [ ! -f data/tokenizers/qwen3/tokenizer.json ]; then
  echo "demo: no data/tokenizers/qwen3/tokenizer.json (scripts/fetch_tokenizers.sh fetches it)" >&2
  exit 1
fi
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# The server: a free port, said on its ready line (stdout); progress on stderr.
: >"$out/server.out"
"$BUILD_DIR/tools/emoe_server" --port=0 --devices=2 --max_devices=4 --max_num_seqs=128 "$@" \
  >"$out/server.out" 2> >(tee "$out/server.log" >&2) &
pid=$!
stop_server() { kill -TERM $pid 2>/dev/null || true; wait $pid 2>/dev/null || true; }
trap stop_server EXIT
# Start-up (generating the model, hmmd populating its arenas) takes as long as it takes on a
# slow machine: wait while the server lives.
until grep -q "^emoe_server: serving" "$out/server.out"; do
  kill -0 $pid 2>/dev/null || { echo "demo: emoe_server ended before serving" >&2; exit 1; }
  sleep 0.2
done
cat "$out/server.out"
url=$(sed -n 's|.* on \(http://[^ ]*\) .*|\1|p' "$out/server.out")
model=$(curl -sf "$url/v1/models" | sed -n 's/.*"id":"\([^"]*\)".*/\1/p' | head -1)
echo "demo: GET $url/v1/models -> $model; GET /health -> $(curl -s -o /dev/null -w '%{http_code}' "$url/health")"

# Streaming chat requests, as a client sends them (curl -N: each SSE event as it comes).
for q in "What is a mixture of experts?" "混合专家模型是什么？" "Name three prime numbers."; do
  echo "demo: POST /v1/chat/completions (stream) \"$q\""
  curl -sN "$url/v1/chat/completions" -H 'Content-Type: application/json' -d "{
    \"model\": \"$model\", \"messages\": [{\"role\": \"user\", \"content\": \"$q\"}],
    \"max_tokens\": 12, \"temperature\": 0, \"stream\": true,
    \"stream_options\": {\"include_usage\": true}}" | grep -v '^$' | tail -n 4
done

# A load from the Azure conversation trace; the admin endpoint scales 2 -> 4 -> 2 during it.
echo "demo: serve_bench: Azure conversation trace, scaled to 4 devices at 8 s and back to 2 at 22 s"
"$BUILD_DIR/bench/serve_bench" --url="$url" --trace=data/traces/azure_llm_2023_conv.csv \
  --time_scale=2 --num_requests=60 --max_prompt_tokens=256 --max_output_tokens=32 \
  --slo_ttft_ms=10000 --slo_tpot_ms=3000 --scale_at=8:4,22:2 --json="$out/load.json" \
  --per_request=false
echo "demo: scale state now: $(curl -s "$url/is_scaling_elastic_ep")"
curl -s "$url/metrics" | grep -E '^emoe:(devices_serving|device_seconds_total|scale_events_total|num_requests_running)' || true

trap - EXIT
kill -TERM $pid
wait $pid
echo "demo: emoe_server stopped (exit 0); reports in $out/"
