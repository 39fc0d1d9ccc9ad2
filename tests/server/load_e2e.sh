#!/usr/bin/env bash
# emoe_server under load, scaled 2 -> 4 -> 2 while the load runs: serve_bench opens 320
# streamed completions at once (Poisson, 400/s) of 480 tokens each, and POSTs
# /scale_elastic_ep {"new_data_parallel_size": 4} at 2 s and 2 at 6 s. Asserted: no request
# failed (every stream whole: its tokens, finish_reason length, usage, [DONE]), at least 256
# streams were open at once, both scale events answered 200 with streams open before and after,
# /metrics says 2 devices serve at the end, and SIGTERM stops the server with exit 0, leaving
# none of its processes. The largest gap between two chunks of a stream is printed, not
# asserted (no timing decides this test: it must pass on a loaded 2-core machine).
#
# The model is the generated preset `tiny` (byte vocabulary, no download): the engine's steps
# are short, so that the streams carry thousands of chunks a second through the HTTP layer and
# the scale events land among them. EMOE_LOAD_PRESET picks another preset;
# EMOE_LOAD_SERVER_FLAGS adds server flags (e.g. device and arena sizes).
#
# usage: load_e2e.sh EMOE_SERVER SERVE_BENCH WORKDIR
set -euo pipefail
server_bin=$1 bench=$2 work=$3
preset=${EMOE_LOAD_PRESET:-tiny}
STREAMS=320 MIN_CONCURRENT=256

rm -rf "$work" && mkdir -p "$work"
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true  # a socket per stream, both sides

fail() {
  echo "load_e2e: FAIL: $*"
  echo "--- server stderr (last 30 lines)"
  tail -30 "$work/server.err" 2>/dev/null || true
  exit 1
}

: >"$work/server.out"
TMPDIR=$work "$server_bin" --preset="$preset" --port=0 --devices=2 --max_devices=4 \
  --max_num_seqs=512 --max_queue=4096 ${EMOE_LOAD_SERVER_FLAGS:-} \
  >"$work/server.out" 2>"$work/server.err" &
pid=$!
trap 'kill -KILL $pid 2>/dev/null || true' EXIT
url=""
for _ in $(seq 600); do  # up to 5 minutes to start on a loaded machine
  url=$(sed -n 's/^emoe_server: serving .* on \(http:[^ ]*\) .*/\1/p' "$work/server.out")
  [ -n "$url" ] && break
  kill -0 $pid 2>/dev/null || break
  sleep 0.5
done
[ -n "$url" ] || fail "emoe_server did not get ready: $(cat "$work/server.out")"
echo "load_e2e: $(cat "$work/server.out")"
children=$(pgrep -P $pid | tr '\n' ' ' || true)

rc=0
"$bench" --url="$url" --rate=400 --num_requests=$STREAMS --prompt_tokens=16 \
  --output_tokens=480 --scale_at=2:4,6:2 --request_timeout_s=170 --scale_timeout_s=120 \
  --json="$work/load.json" >"$work/bench.out" 2>"$work/bench.err" || rc=$?
cat "$work/bench.out"
# serve_bench exits 0 only when no request failed and every scale event answered 200.
[ $rc = 0 ] || fail "serve_bench exited $rc: $(cat "$work/bench.err")"
grep -q "requests $STREAMS: succeeded $STREAMS, failed 0$" "$work/bench.out" ||
  fail "not every request succeeded"
concurrent=$(sed -n 's/.*; max concurrent \([0-9]*\) .*/\1/p' "$work/bench.out")
[ -n "$concurrent" ] && [ "$concurrent" -ge $MIN_CONCURRENT ] ||
  fail "at most '$concurrent' streams open at once, want >= $MIN_CONCURRENT"
# The scale rows: "at s  target  sent s  status  latency s  in flight (sent/answered)".
rows=$(awk '/scale events:/ {on = 1; next} on && NF >= 6 && $2 ~ /^[0-9]+$/ {print $2, $4, $6}' \
  "$work/bench.out")
[ "$(echo "$rows" | awk '{print $1}' | tr '\n' ' ')" = "4 2 " ] || fail "scale rows: $rows"
while read -r target status in_flight; do
  [ "$status" = 200 ] || fail "scale to $target answered $status"
  sent=${in_flight%/*} answered=${in_flight#*/}
  [ "$sent" -gt 0 ] && [ "$answered" -gt 0 ] ||
    fail "scale to $target did not run during the load (streams open when sent/answered: $in_flight)"
done <<<"$rows"
devices=$(curl -sf "$url/metrics" | sed -n 's/^emoe:devices_serving \([0-9.e+]*\)$/\1/p')
[ "$devices" = 2 ] || fail "emoe:devices_serving is '$devices' after 2 -> 4 -> 2, want 2"
echo "load_e2e: max_token_gap_s $(sed -n 's/.*max token gap \([0-9.]*\) s.*/\1/p' "$work/bench.out")" \
  "over $concurrent concurrent streams through 2 -> 4 -> 2"

kill -TERM $pid
server_rc=0
wait $pid || server_rc=$?
trap - EXIT
[ $server_rc = 0 ] || fail "emoe_server exited $server_rc after SIGTERM (want 0)"
for c in $children; do
  if [ -e /proc/$c ] && ! grep -q '^[0-9]* ([^)]*) Z' /proc/$c/stat 2>/dev/null; then
    fail "$(cat /proc/$c/comm 2>/dev/null) (pid $c) still runs after the server exited"
  fi
done
# Scaling under load is not a crash: no instance died and was restarted meanwhile.
if grep -E "coordinator: (UNAVAILABLE|restarting)|killed by signal" "$work/server.err"; then
  fail "an instance process died during the load (above)"
fi
echo "load_e2e: passed"
