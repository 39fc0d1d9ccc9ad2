#!/usr/bin/env bash
# The autoscaler's evaluation (issue #20): every policy, one after another, against the same
# workload: emoe_server started fresh (--port=0, ready line awaited), serve_bench's open-loop
# load, the server stopped with SIGTERM; then bench/autoscale_summary writes DIR/summary.json,
# DIR/summary.md and DIR/autoscale.png.
#
#   bash scripts/autoscale_eval.sh --trace=CSV --out_dir=DIR [--workload=trace|burst|ramp]
#       [--policies=static-min,static-peak,threshold,slo,slo-cold-restart,slo-horizontal]
#       [--KEY=VALUE ...] [-- extra emoe_server flags]
#
# Policies (emoe_server flags): static-min (--autoscale=off --devices=MIN), static-peak
# (--autoscale=off --devices=MAX), threshold (--autoscale=threshold), slo (--autoscale=slo
# --autoscale_method=elastic), slo-cold-restart (--autoscale_method=cold-restart), slo-horizontal
# (--autoscale_method=horizontal); the autoscaled ones start at MIN devices.
#
# The defaults fit a 2-core machine in about 20 minutes for the conversation trace (6 policies):
# the tiny preset at --compute_share=0.02 (each device idles 49x its compute after a step, like
# a slow accelerator, so that 4 devices still fit 2 cores and more devices give more capacity:
# about 2 req/s of 256+32 tokens per device within the SLOs below), the whole trace hour at
# time_scale 20 (174 s), a 3% sample (about 2 req/s at its low, 5 at its peak), prompts clipped
# to 256 and outputs to 32 tokens; SLOs TTFT <= 2000 ms, TPOT <= 400 ms.
# Other settings (defaults in the `opt` table below): --time_scale --trace_sample --trace_skip_s
# --trace_duration_s --max_prompt_tokens --max_output_tokens --prompt_tokens --output_tokens
# --rate_profile --slo_ttft_ms --slo_tpot_ms --preset --compute_share --min_devices
# --max_devices --max_num_seqs --interval_ms --seed. BUILD_DIR (default build) holds the binaries.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
# shellcheck disable=SC2054  # the commas are in one value (policies)
declare -A opt=(
  [trace]=data/traces/azure_llm_2023_conv.csv [out_dir]="" [workload]=trace
  [policies]=static-min,static-peak,threshold,slo,slo-cold-restart,slo-horizontal
  [time_scale]=20 [trace_sample]=0.03 [trace_skip_s]=0 [trace_duration_s]=0
  [max_prompt_tokens]=256 [max_output_tokens]=32 [prompt_tokens]=256 [output_tokens]=32
  [rate_profile]="" [slo_ttft_ms]=2000 [slo_tpot_ms]=400 [preset]=tiny [compute_share]=0.02
  [min_devices]=1 [max_devices]=4 [max_num_seqs]=128 [interval_ms]=1000 [seed]=1
)
extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --) shift; extra=("$@"); break ;;
    --*=*) k=${1%%=*}; k=${k#--}
      [ -n "${opt[$k]+set}" ] || { echo "autoscale_eval: unknown flag $1 (see the script's head)" >&2; exit 2; }
      opt[$k]=${1#*=} ;;
    *) echo "autoscale_eval: unexpected argument '$1' (emoe_server flags go after --)" >&2; exit 2 ;;
  esac
  shift
done
out=${opt[out_dir]}
[ -n "$out" ] || { echo "autoscale_eval: --out_dir=DIR is required" >&2; exit 2; }
case "${opt[workload]}" in
  trace) [ -f "${opt[trace]}" ] || { echo "autoscale_eval: --trace=${opt[trace]}: no such file" >&2; exit 2; }
    load=(--trace="${opt[trace]}" --time_scale="${opt[time_scale]}"
          --trace_sample="${opt[trace_sample]}" --trace_skip_s="${opt[trace_skip_s]}"
          --trace_duration_s="${opt[trace_duration_s]}" --num_requests=10000000
          --max_prompt_tokens="${opt[max_prompt_tokens]}" --max_output_tokens="${opt[max_output_tokens]}") ;;
  burst|ramp)
    # burst: 10x within 5 s (to 5 req/s, what 4 devices serve within the SLOs), held 30 s,
    # back within 5 s; ramp: 10x over 3 minutes.
    profile=${opt[rate_profile]}
    [ -n "$profile" ] || { [ "${opt[workload]}" = burst ] && profile=0:0.5,20:0.5,25:5,55:5,60:0.5,90:0.5 || profile=0:0.5,180:5; }
    load=(--rate_profile="$profile"
          --prompt_tokens="${opt[prompt_tokens]}" --output_tokens="${opt[output_tokens]}") ;;
  *) echo "autoscale_eval: --workload=${opt[workload]}: want trace, burst or ramp" >&2; exit 2 ;;
esac
for b in tools/emoe_server bench/serve_bench bench/autoscale_summary; do
  [ -x "$BUILD_DIR/$b" ] || { echo "autoscale_eval: no $BUILD_DIR/$b (ninja -C $BUILD_DIR emoe_server emoe_instance hmmd serve_bench autoscale_summary)" >&2; exit 1; }
done
# (the help is read whole first: grep -q ending the pipe early would be SIGPIPE under pipefail)
help=$("$BUILD_DIR/tools/emoe_server" --helpfull 2>&1 || true)
if ! grep -q -- '-autoscale_log' <<<"$help"; then
  echo "autoscale_eval: $BUILD_DIR/tools/emoe_server has no --autoscale_log (build one with the autoscaler)" >&2
  exit 1
fi
mkdir -p "$out"
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
min=${opt[min_devices]} max=${opt[max_devices]}

policy_flags() {
  case "$1" in
    static-min) echo "--autoscale=off --devices=$min" ;;
    static-peak) echo "--autoscale=off --devices=$max" ;;
    threshold) echo "--autoscale=threshold --devices=$min" ;;
    slo) echo "--autoscale=slo --autoscale_method=elastic --devices=$min" ;;
    slo-cold-restart) echo "--autoscale=slo --autoscale_method=cold-restart --devices=$min" ;;
    slo-horizontal) echo "--autoscale=slo --autoscale_method=horizontal --devices=$min" ;;
    *) return 1 ;;
  esac
}
IFS=, read -r -a policies <<<"${opt[policies]}"
for p in "${policies[@]}"; do
  policy_flags "$p" >/dev/null || { echo "autoscale_eval: --policies: unknown policy '$p'" >&2; exit 2; }
done

pid=""
stop_server() {  # SIGTERM; SIGKILL if it has not ended after 90 s (its grace is 30 s)
  [ -n "$pid" ] || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 450); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
  if kill -0 "$pid" 2>/dev/null; then
    echo "autoscale_eval: emoe_server (pid $pid) still running 90 s after SIGTERM: SIGKILL" >&2
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
  pid=""
}
trap stop_server EXIT
die() {  # die DIR MESSAGE: says it, with the server's log tail
  echo "autoscale_eval: $2" >&2
  echo "--- $1/server.log (last 30 lines)" >&2
  tail -n 30 "$1/server.log" >&2 || true
  exit 1
}

for p in "${policies[@]}"; do
  d=$out/$p
  rm -rf "$d" && mkdir -p "$d"
  # shellcheck disable=SC2207  # policy_flags gives words to split
  flags=(--preset="${opt[preset]}" --port=0 --max_devices="$max" --min_devices="$min"
         --compute_share="${opt[compute_share]}" --max_num_seqs="${opt[max_num_seqs]}"
         --slo_ttft_ms="${opt[slo_ttft_ms]}" --slo_tpot_ms="${opt[slo_tpot_ms]}"
         --autoscale_interval_ms="${opt[interval_ms]}" --autoscale_log="$d/autoscale.jsonl"
         $(policy_flags "$p") "${extra[@]}")
  echo "autoscale_eval: [$p] $BUILD_DIR/tools/emoe_server ${flags[*]}"
  : >"$d/server.out"
  "$BUILD_DIR/tools/emoe_server" "${flags[@]}" >"$d/server.out" 2>"$d/server.log" &
  pid=$!
  waited=0
  until grep -q "^emoe_server: serving" "$d/server.out"; do
    kill -0 "$pid" 2>/dev/null || { wait "$pid" && rc=0 || rc=$?; pid=""; die "$d" "[$p] emoe_server ended (exit $rc) before serving"; }
    sleep 0.2
    waited=$((waited + 1))
    [ $((waited % 300)) = 0 ] && echo "autoscale_eval: [$p] emoe_server alive, not serving yet after $((waited / 5)) s: waiting"
  done
  url=$(sed -n 's|^emoe_server: serving .* on \(http://[^ ]*\) .*|\1|p' "$d/server.out")
  [ -n "$url" ] || die "$d" "[$p] no URL in the ready line: $(cat "$d/server.out")"
  bench=("$BUILD_DIR/bench/serve_bench" --url="$url" "${load[@]}" --seed="${opt[seed]}"
         --slo_ttft_ms="${opt[slo_ttft_ms]}" --slo_tpot_ms="${opt[slo_tpot_ms]}"
         --request_timeout_s=300 --json="$d/load.json")
  echo "autoscale_eval: [$p] ${bench[*]}"
  set +e
  "${bench[@]}" >"$d/bench.out" 2>"$d/bench.err"
  rc=$?
  set -e
  kill -0 "$pid" 2>/dev/null || { pid=""; die "$d" "[$p] emoe_server died during the load (serve_bench exit $rc)"; }
  stop_server
  cat "$d/bench.out"
  case $rc in
    0) ;;
    3) echo "autoscale_eval: [$p] serve_bench: requests failed (counted in the summary)" ;;
    *) echo "--- $d/bench.err" >&2; tail -n 20 "$d/bench.err" >&2; die "$d" "[$p] serve_bench exit $rc" ;;
  esac
  [ -s "$d/autoscale.jsonl" ] || die "$d" "[$p] emoe_server wrote no $d/autoscale.jsonl"
done
trap - EXIT
echo "autoscale_eval: $BUILD_DIR/bench/autoscale_summary --dir=$out --policies=${opt[policies]}"
"$BUILD_DIR/bench/autoscale_summary" --dir="$out" --policies="${opt[policies]}"
