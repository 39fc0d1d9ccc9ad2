#!/usr/bin/env bash
# serve_bench end to end against serve_fake_server (the same HTTP layer and API messages as
# emoe_server, paced token chunks, no engine): 1024 streams open at once on one client thread
# with two scale events during them; the JSON report's fields; a trace run; failures counted
# and exit 3 (a model the server does not have: 404s); bad flags exit 2 naming the flag; an
# unreachable server exits 1. No timing is asserted.
#
# usage: serve_bench_e2e.sh SERVE_BENCH SERVE_FAKE_SERVER TRACE WORKDIR
set -euo pipefail
bench=$1 fake=$2 trace=$3 work=$4
rm -rf "$work" && mkdir -p "$work"
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

fail() {
  echo "serve_bench_e2e: FAIL: $*"
  exit 1
}

: >"$work/fake.out"
"$fake" --port=0 --token_interval_ms=50 --scale_s=0.3 >"$work/fake.out" 2>"$work/fake.err" &
pid=$!
trap 'kill -KILL $pid 2>/dev/null || true' EXIT
url=""
for _ in $(seq 200); do
  url=$(sed -n 's/^serve_fake_server: serving fake on \(http:.*\)$/\1/p' "$work/fake.out")
  [ -n "$url" ] && break
  sleep 0.1
done
[ -n "$url" ] || fail "serve_fake_server did not start: $(cat "$work/fake.err")"

# 1024 streams of 40 chunks (2 s each at 50 ms) arriving within about 0.5 s.
"$bench" --url="$url" --rate=2000 --num_requests=1024 --prompt_tokens=8 --output_tokens=40 \
  --scale_at=0.5:4,1:2 --json="$work/many.json" >"$work/many.out" 2>"$work/many.err" ||
  fail "serve_bench exited $?: $(cat "$work/many.err")"
cat "$work/many.out"
grep -q "requests 1024: succeeded 1024, failed 0$" "$work/many.out" || fail "requests failed"
grep -q "; max concurrent 1024 (streaming 1024)$" "$work/many.out" ||
  fail "not 1024 streams open at once"
for field in '"requests": 1024' '"failed": 0' '"slo_attainment": 1.0' '"max_concurrent": 1024' \
  '"output_tokens": 40960' '"p50"' '"p90"' '"p99"' '"max_token_gap_s"' '"throughput"' \
  '"device_seconds"' '"scale_events"' '"cpu_s"' '"per_request"'; do
  grep -q "$field" "$work/many.json" || fail "no $field in the JSON report"
done
[ "$(grep -c '"status": 200' "$work/many.json")" -ge 1026 ] ||
  fail "fewer than 1024 streams and 2 scale events answered 200"
grep -q '"to": 4' "$work/many.json" && grep -q '"to": 2' "$work/many.json" ||
  fail "the scale events' reports are not in the JSON"

# A trace: its first 50 rows, 20 times faster, lengths clipped.
"$bench" --url="$url" --trace="$trace" --time_scale=20 --num_requests=50 --max_prompt_tokens=64 \
  --max_output_tokens=8 --slo_ttft_ms=60000 --json="$work/trace.json" >"$work/trace.out" 2>&1 ||
  fail "trace run: $(cat "$work/trace.out")"
grep -q "requests 50: succeeded 50, failed 0$" "$work/trace.out" || fail "trace run failed"
grep -q '"workload": "trace ' "$work/trace.json" || fail "the trace run's workload is not named"

# Failures: every request names a model the server does not have.
rc=0
"$bench" --url="$url" --model=nope --rate=100 --num_requests=5 --output_tokens=2 \
  >"$work/nope.out" 2>&1 || rc=$?
[ $rc = 3 ] || fail "requests that all failed: exit $rc, want 3"
grep -q "failed 5$" "$work/nope.out" || fail "the 5 failures are not counted"
grep -q "failed x5: HTTP 404: The model 'nope' does not exist." "$work/nope.out" ||
  fail "the failure is not named: $(cat "$work/nope.out")"

# Bad flags: exit 2 naming the flag; nothing is sent.
for c in "--url=ftp://x:1#--url" "--url=$url --rate=0#--rate" "--url=$url --scale_at=3#--scale_at" \
  "--url=$url --trace=$work/none.csv#--trace" "--url=$url --trace=$trace --rate=3#--rate" \
  "--url=$url --num_requests=0#--num_requests" "#--url"; do
  args=${c%%#*} flag=${c##*#}
  rc=0
  $bench $args >"$work/bad.out" 2>&1 || rc=$?
  [ $rc = 2 ] || fail "'$args': exit $rc, want 2"
  grep -q -- "$flag" "$work/bad.out" || fail "'$args' does not name $flag: $(cat "$work/bad.out")"
done

kill -TERM $pid
wait $pid || fail "serve_fake_server exited $? after SIGTERM"
trap - EXIT
# Nothing listens there now: exit 1 naming the failure.
rc=0
"$bench" --url="$url" --num_requests=1 >"$work/gone.out" 2>&1 || rc=$?
[ $rc = 1 ] || fail "no server: exit $rc, want 1"
grep -q "GET /v1/models: connect" "$work/gone.out" || fail "no server: $(cat "$work/gone.out")"
echo "serve_bench_e2e: passed"
