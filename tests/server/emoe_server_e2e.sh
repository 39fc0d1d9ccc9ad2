#!/usr/bin/env bash
# emoe_server end to end with curl: the real binary on its default preset (qwen3-text: the real
# Qwen3 vocabulary), hmmd and instance processes; every endpoint (streams read with -N), every
# error status (400, 404, 405, 409, 413, 429, 431, 503), a prompt longer than a step's budget
# (chunked prefill), /metrics through `promtool check metrics`, scale events 2 -> 4 -> 2 while a
# stream runs, and SIGTERM: a request arriving during the grace period gets 503, the stream
# still running ends with an error chunk and [DONE], the server exits 0 and leaves no hmmd, no
# emoe_instance and no scratch model behind.
# Bad flags exit 2 naming the flag. Skipped (77) without data/tokenizers/qwen3.
# usage: emoe_server_e2e.sh BINDIR WORKDIR TOKENIZER_DATA
set -euo pipefail
bin=$1/emoe_server work=$2 data=$3
if [ ! -f "$data/qwen3/tokenizer.json" ]; then
  echo "skipped: no $data/qwen3/tokenizer.json (run scripts/fetch_tokenizers.sh)"
  exit 77
fi
rm -rf "$work" && mkdir -p "$work"
pid=
fail() {
  echo "FAIL: $*"
  echo "--- server stderr (last 40 lines)"
  tail -40 "$work/stderr" 2>/dev/null || true
  [ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null
  exit 1
}
gone() { [ ! -e "/proc/$1" ] || grep -q '^[0-9]* ([^)]*) Z' "/proc/$1/stat" 2>/dev/null; }

# --- bad flags: exit 2, the flag named, nothing started
for c in "--port=70000#--port" "--devices=5#--devices" "--max_num_seqs=0#--max_num_seqs" \
         "--preset=nope#--preset" "--shutdown_grace_s=-1#--shutdown_grace_s" \
         "--model=$work/nope#--model" "--max_body_kb=0#--max_body_kb" "--page_size=x#--page_size" \
         "--autoscale=sometimes#--autoscale" "--autoscale_method=teleport#--autoscale_method" \
         "--min_devices=5#--min_devices" "--autoscale=slo --devices=1 --min_devices=2#--devices" \
         "--slo_target=1.5#--slo_target" "--autoscale_interval_ms=0#--autoscale_interval_ms" \
         "--autoscale_log=$work/nodir/log#--autoscale_log"; do
  args=${c%%#*} flag=${c##*#}
  set +e
  timeout 30 "$bin" $args >"$work/bad.out" 2>"$work/bad.err"
  rc=$?
  set -e
  [ $rc = 2 ] || fail "$args: exit $rc, not 2"
  grep -q -- "$flag" "$work/bad.err" || fail "$args: stderr does not name $flag: $(cat "$work/bad.err")"
done

# --- SIGTERM during start-up: start-up ends at its next step, in order, exit 0, nothing left
mkdir -p "$work/early"
TMPDIR=$work/early "$bin" --port=0 >"$work/early.out" 2>"$work/early.err" &
pid=$!
for _ in $(seq 600); do grep -q "generating preset" "$work/early.err" && break; sleep 0.05; done
kill -TERM $pid
set +e
wait $pid
rc=$?
set -e
pid=
[ $rc = 0 ] || fail "SIGTERM during start-up: exit $rc: $(cat "$work/early.err")"
grep -q "stopped before serving" "$work/early.err" || fail "start-up went on: $(cat "$work/early.err")"
[ ! -s "$work/early.out" ] || fail "a ready line after SIGTERM during start-up"
[ -z "$(ls -A "$work/early")" ] || fail "start-up left $(ls "$work/early")"
if pgrep -f "$work/early" >/dev/null; then fail "start-up left a process: $(pgrep -af "$work/early")"; fi

# --- start: a free port, a small admission bound, 64 KiB bodies, 3 s of grace, steps of 32
# tokens (longer prompts are prefilled in chunks: --enable_chunked_prefill is the default)
TMPDIR=$work "$bin" --port=0 --max_num_seqs=4 --max_queue=2 --max_body_kb=64 \
  --shutdown_grace_s=3 --max_tokens_per_step=32 >"$work/stdout" 2>"$work/stderr" &
pid=$!
for _ in $(seq 3000); do
  grep -q "^emoe_server: serving" "$work/stdout" && break
  gone $pid && fail "emoe_server ended before serving"
  sleep 0.1
done
grep -qE "^emoe_server: serving qwen3-text on http://127.0.0.1:[0-9]+ \(devices \[0,1\] of 4\)$" \
  "$work/stdout" || fail "no ready line: $(cat "$work/stdout")"
[ "$(wc -l <"$work/stdout")" = 1 ] || fail "stdout has more than the ready line"
port=$(sed -n 's|.*http://127.0.0.1:\([0-9]*\) .*|\1|p' "$work/stdout")
url=http://127.0.0.1:$port
hmmd=$(pgrep -P $pid -x hmmd) || fail "no hmmd child"
instances=$(pgrep -P $pid -f "emoe_instance --control_fd" | tr '\n' ' ') || fail "no emoe_instance child"
scratch=$(sed -n 's/^emoe_server: generating preset qwen3-text into //p' "$work/stderr")
[ -d "$scratch" ] || fail "no scratch model directory"

code() { curl -s -o "$work/body" -w '%{http_code}' "$@"; }
expect() {  # expect STATUS CURL-ARGS...: the status, and OpenAI's error shape for errors
  local want=$1
  shift
  local got
  got=$(code "$@")
  [ "$got" = "$want" ] || fail "curl $*: $got, expected $want: $(head -c 300 "$work/body")"
  if [ "$want" -ge 400 ]; then
    jq -e '.error.message and (.error | has("type") and has("param") and has("code"))' \
      "$work/body" >/dev/null || fail "curl $*: not OpenAI's error shape: $(cat "$work/body")"
  fi
}
post() { expect "$1" -H 'Content-Type: application/json' -d "$3" "$url$2"; }

# --- the small endpoints (every error below, the HTTP layer's 413 and 431 too, in OpenAI's shape)
expect 200 "$url/health"
[ ! -s "$work/body" ] || fail "/health has a body"
expect 200 "$url/version"
jq -e '.version | length > 0' "$work/body" >/dev/null || fail "/version: $(cat "$work/body")"
expect 200 "$url/v1/models"
jq -e '.data[0].id == "qwen3-text" and .data[0].max_model_len > 0' "$work/body" >/dev/null ||
  fail "/v1/models: $(cat "$work/body")"
for m in GET POST; do
  expect 200 -X $m "$url/is_scaling_elastic_ep"
  jq -e '.is_scaling_elastic_ep == false' "$work/body" >/dev/null || fail "is_scaling: $(cat "$work/body")"
done
curl -s -D "$work/headers" -o /dev/null "$url/v1/models"
grep -qi '^x-emoe-config: generation=[0-9]*; devices=\[0,1\]' "$work/headers" ||
  fail "no x-emoe-config header: $(cat "$work/headers")"

# --- completions, whole and streamed (-N), chat and not
post 200 /v1/completions '{"model": "qwen3-text", "prompt": "Hello", "max_tokens": 8, "temperature": 0}'
jq -e '.object == "text_completion" and .usage.completion_tokens > 0 and
  (.choices[0].finish_reason == "length" or .choices[0].finish_reason == "stop")' "$work/body" \
  >/dev/null || fail "completion: $(cat "$work/body")"
whole=$(jq -r '.choices[0].text' "$work/body")
curl -sN "$url/v1/completions" -d '{"model": "qwen3-text", "prompt": "Hello", "max_tokens": 8,
  "temperature": 0, "stream": true, "stream_options": {"include_usage": true}}' >"$work/stream"
tail -n 2 "$work/stream" | grep -q '^data: \[DONE\]$' ||
  fail "stream does not end with [DONE]: $(tail -c 300 "$work/stream")"
streamed=$(grep '^data: {' "$work/stream" | sed 's/^data: //' | jq -rj '.choices[0].text // empty')
[ "$streamed" = "$whole" ] || fail "streamed text '$streamed' differs from the whole answer '$whole'"
grep '^data: {' "$work/stream" | tail -1 | sed 's/^data: //' | jq -e '.usage.prompt_tokens > 0' \
  >/dev/null || fail "no usage chunk"
# a prompt of 100 token ids, prefilled in 4 steps of at most 32 tokens
ids=$(seq 1000 1099 | paste -sd, -)
post 200 /v1/completions "{\"model\": \"qwen3-text\", \"prompt\": [$ids], \"max_tokens\": 4,
  \"temperature\": 0}"
jq -e '.usage.prompt_tokens == 100 and .usage.completion_tokens > 0' "$work/body" >/dev/null ||
  fail "a prompt of 100 tokens in steps of 32: $(cat "$work/body")"
curl -sN "$url/v1/chat/completions" -d '{"model": "qwen3-text", "stream": true, "max_tokens": 8,
  "messages": [{"role": "user", "content": "Hi!"}]}' >"$work/chat"
grep '^data: {' "$work/chat" | head -1 | sed 's/^data: //' |
  jq -e '.object == "chat.completion.chunk" and .choices[0].delta.role == "assistant"' >/dev/null ||
  fail "chat stream: $(head -c 300 "$work/chat")"
grep -q '^data: \[DONE\]$' "$work/chat" || fail "chat stream without [DONE]"
post 200 /v1/chat/completions '{"model": "qwen3-text", "max_tokens": 4,
  "messages": [{"role": "user", "content": "Hi!"}]}'
jq -e '.choices[0].message.role == "assistant"' "$work/body" >/dev/null || fail "chat: $(cat "$work/body")"

# --- errors
post 400 /v1/completions '{"model": "qwen3-text", "prompt": '
post 400 /v1/completions '{"model": "qwen3-text", "prompt": "x", "temperature": "hot"}'
post 400 /v1/completions '{"model": "qwen3-text", "prompt": "x", "max_tokens": 100000}'
post 404 /v1/completions '{"model": "gpt-4", "prompt": "x"}'
grep -q 'The model `gpt-4` does not exist.' "$work/body" || fail "404 message: $(cat "$work/body")"
expect 404 "$url/v2/nothing"
expect 405 -X DELETE "$url/v1/models"
head -c 70000 /dev/zero | tr '\0' 'a' >"$work/big"
expect 413 -H 'Content-Type: application/json' --data-binary @"$work/big" "$url/v1/completions"
expect 431 -H "X-Big: $(head -c 20000 /dev/zero | tr '\0' 'b')" "$url/health"
post 400 /scale_elastic_ep '{"new_data_parallel_size": 9}'
post 400 /scale_elastic_ep '{"new_data_parallel_size": 3, "method": "warp-drive"}'

# --- 429: six long streams fill max_num_seqs 4 + max_queue 2; the seventh is refused
long='{"model": "qwen3-text", "prompt": "Tell me everything.", "max_tokens": 3000, "ignore_eos": true, "stream": true}'
streams=()
for i in 1 2 3 4 5 6; do
  curl -sN "$url/v1/completions" -d "$long" >"$work/long$i" &
  streams+=($!)
done
for _ in $(seq 600); do
  n=$(curl -s "$url/metrics" | sed -n 's/^emoe:requests_in_flight \([0-9]*\).*/\1/p')
  [ "${n:-0}" -ge 6 ] && break
  sleep 0.1
done
curl -s -D "$work/headers" -o "$work/body" "$url/v1/completions" -d '{"model": "qwen3-text", "prompt": "x"}' >/dev/null
grep -q '^HTTP/1.1 429' "$work/headers" || fail "no 429 at the bound: $(head -1 "$work/headers")"
grep -qi '^retry-after: [0-9]' "$work/headers" || fail "429 without Retry-After"
# The clients go away: their requests are cancelled, their KV freed.
kill "${streams[@]}" 2>/dev/null || true
wait "${streams[@]}" 2>/dev/null || true
for _ in $(seq 300); do
  m=$(curl -s "$url/metrics")
  echo "$m" | grep -q '^emoe:requests_in_flight 0$' &&
    echo "$m" | grep -q '^emoe:kv_cache_usage_perc{model_name="qwen3-text"} 0$' &&
    echo "$m" | grep -q '^emoe:request_success_total{model_name="qwen3-text",finished_reason="abort"} 6$' &&
    break
  sleep 0.1
done
echo "$m" | grep -q '^emoe:kv_cache_usage_perc{model_name="qwen3-text"} 0$' || fail "KV not freed after the clients left"
echo "$m" | grep -q '^emoe:request_success_total{model_name="qwen3-text",finished_reason="abort"} 6$' ||
  fail "the 6 requests whose clients left are not counted aborted"

# --- scale 2 -> 4 -> 2 while a stream runs; a second scale while one runs is 409
curl -sN "$url/v1/completions" -d '{"model": "qwen3-text", "prompt": "Count:", "max_tokens": 200,
  "ignore_eos": true, "stream": true}' >"$work/through" &
through=$!
post 200 /scale_elastic_ep '{"new_data_parallel_size": 4}'
jq -e '.to == [0,1,2,3] and .latency_s > 0 and (.phases | length > 0)' "$work/body" >/dev/null ||
  fail "scale report: $(cat "$work/body")"
curl -s -D "$work/headers" -o /dev/null "$url/health"
grep -qi '^x-emoe-config: .*devices=\[0,1,2,3\]' "$work/headers" || fail "not serving on 4 devices"
conflict=0
for attempt in 1 2 3 4 5; do
  target=$([ $((attempt % 2)) = 1 ] && echo 2 || echo 4)
  curl -s -o "$work/scale_bg" "$url/scale_elastic_ep" -d "{\"new_data_parallel_size\": $target}" &
  bg=$!
  for _ in $(seq 200); do
    curl -s "$url/is_scaling_elastic_ep" | jq -e '.is_scaling_elastic_ep' >/dev/null && break
    sleep 0.01
  done
  got=$(code "$url/scale_elastic_ep" -d '{"new_ep_size": 3}')
  wait $bg
  if [ "$got" = 409 ]; then conflict=1; break; fi
done
[ $conflict = 1 ] || fail "never got 409 while a scale event ran"
curl -s -o "$work/body" "$url/scale_elastic_ep" -d '{"new_data_parallel_size": 2}' >/dev/null
wait $through
tail -n 2 "$work/through" | grep -q '^data: \[DONE\]$' || fail "the stream through the scale events was cut"
if grep -q '"error"' "$work/through"; then fail "the stream through the scale events got an error"; fi
[ "$(grep -c '^data: {' "$work/through")" -ge 100 ] || fail "the stream through the scale events is short"

# --- /metrics in Prometheus' text format
curl -s "$url/metrics" >"$work/metrics"
# promtool's only lint of vLLM-style names is the colon of the "emoe:" prefix (exit 3, as for
# vLLM's "vllm:"); a parse error (exit 1) or any other line fails.
set +e
promtool check metrics <"$work/metrics" >"$work/promtool" 2>&1
rc=$?
set -e
{ [ $rc = 0 ] || [ $rc = 3 ]; } || fail "promtool exit $rc: $(cat "$work/promtool")"
if grep -v "metric names should not contain ':'" "$work/promtool" | grep -q .; then
  fail "promtool: $(cat "$work/promtool")"
fi
for name in num_requests_running num_requests_waiting kv_cache_usage_perc prompt_tokens_total \
    generation_tokens_total time_to_first_token_seconds_bucket inter_token_latency_seconds_bucket \
    e2e_request_latency_seconds_bucket request_queue_time_seconds_bucket request_prompt_tokens_bucket \
    request_generation_tokens_bucket request_success_total devices_serving scale_events_total \
    scale_latency_seconds_bucket scale_downtime_seconds_bucket scale_bytes_total device_seconds_total \
    arena_bytes arena_capacity_bytes requests_rejected_total http_requests_total; do
  grep -q "^emoe:$name" "$work/metrics" || fail "no emoe:$name in /metrics"
done

# --- SIGTERM: 503 during the grace period, the long stream ends with an error and [DONE], exit 0
curl -sN "$url/v1/completions" -d "$long" >"$work/last" &
last=$!
for _ in $(seq 300); do [ -s "$work/last" ] && break; sleep 0.1; done
# Every process the server started by now (the scale events booted instances of their own).
children=$(pgrep -P $pid | tr '\n' ' ')
kill -TERM $pid
sleep 0.5
expect 503 -H 'Content-Type: application/json' -d '{"model": "qwen3-text", "prompt": "x"}' "$url/v1/completions"
wait $last || true
tail -n 2 "$work/last" | grep -q '^data: \[DONE\]$' || fail "the last stream did not end with [DONE]"
grep '^data: {' "$work/last" | tail -1 | grep -q '"error"' || fail "the last stream has no error chunk"
set +e
wait $pid
rc=$?
set -e
pid=
[ $rc = 0 ] || fail "emoe_server exited $rc after SIGTERM"
for p in $hmmd $instances $children; do
  for _ in $(seq 50); do gone "$p" && break; sleep 0.1; done
  gone "$p" || fail "process $p outlived emoe_server"
done
[ ! -e "$scratch" ] || fail "the scratch model $scratch is left"
grep -q "^emoe_server: stopped" "$work/stderr" || fail "no 'stopped' line"
echo "emoe_server e2e: ok"
