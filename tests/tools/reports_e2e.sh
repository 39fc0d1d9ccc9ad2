#!/usr/bin/env bash
# Exit codes and reports that say what happened, on the tiny model:
#  1. elasticmoe whose every request is rejected (--prompt_tokens above the model's context)
#     exits 3, counts the failures of each event in that event's window (failed_i is
#     failed_cumulative_i - failed_cumulative_{i-1}: nothing repeated, nothing lost between
#     windows) and names the first rejection;
#  2. elasticmoe driving an hmmd that dies (SIGKILL) while its second method runs exits 1 and
#     still writes events.json / events.csv: the first method's events, then the error;
#  3. emoe against that dead hmmd's socket exits 1 and still writes its --json report, with
#     the error;
#  4. emoe with one prompt too long for the step's budget serves the other and exits 3.
# usage: reports_e2e.sh BINDIR WORKDIR
set -euo pipefail
bin=$1 work=$2
rm -rf "$work" && mkdir -p "$work"
hpid=
trap '[ -z "$hpid" ] || kill -9 "$hpid" 2>/dev/null || true' EXIT
small=(--preset=tiny --weights_mb=8 --experts_mb=16 --kv_mb=4 --populate=false --page_size=4k)

# 1. Every request rejected: exit 3, per-event counts. The total also counts the requests still in
#    flight when the last window ends (drained after the load stops), so the exit code does not
#    depend on how fast the host is; the windows' own counts add up to at most that total.
set +e
"$bin/elasticmoe" "${small[@]}" --max_devices=3 --schedule=2,3,2 --settle_s=1 --window_s=0.5 --repeat=1 --methods=elastic \
  --prompt_tokens=100000 --out_dir="$work/rejected" >"$work/rejected.out" 2>"$work/rejected.err"
rc=$?
set -e
[ "$rc" = 3 ] || { echo "rejected requests: exit $rc, want 3"; cat "$work/rejected.err"; exit 1; }
grep -q "requests failed or were rejected (the first: rejected: " "$work/rejected.err" ||
  { echo "no rejection named"; cat "$work/rejected.err"; exit 1; }
grep -q '"status": "ok"' "$work/rejected/events.json"
total=$(sed -n 's/.*"failed_requests": \([0-9]*\).*/\1/p' "$work/rejected/events.json")
# Columns 18 and 19: failed, failed_cumulative.
awk -F, -v total="$total" '
  NR == 1 { if ($18 != "failed" || $19 != "failed_cumulative") { print "columns: " $0; bad = 1 } next }
  { n++; sum += $18
    if ($19 < prev || (n > 1 && $18 != $19 - prev) || $18 > $19) { print "row " n ": " $0; bad = 1 }
    prev = $19 }
  END { if (n != 2 || total == 0 || prev > total) { print n " rows, " sum " failed, total " total; bad = 1 }
        exit bad }' "$work/rejected/events.csv" ||
  { echo "per-event failed counts are wrong"; cat "$work/rejected/events.csv"; exit 1; }

# 2. hmmd dies while the second method runs: exit 1, the reports with the first method and the error
#    (UNAVAILABLE from the coordinator's connection to hmmd, or the error of an instance process
#    that could not connect to hmmd or died with it, depending on where the kill lands).
"$bin/hmmd" --socket="$work/hmmd.sock" --devices_per_node=3 --device_capacity_mb=64 --weights_mb=8 \
  --experts_mb=16 --kv_mb=4 --page_size=4k 2>"$work/hmmd.log" &
hpid=$!
for _ in $(seq 600); do [ -S "$work/hmmd.sock" ] && break; sleep 0.05; done
[ -S "$work/hmmd.sock" ] || { echo "hmmd did not start"; cat "$work/hmmd.log"; exit 1; }
# settle_s=1: the second method runs for seconds, so the kill lands inside it.
"$bin/elasticmoe" --preset=tiny --kv_mb=4 --schedule=2,3 --settle_s=1 --window_s=0.5 --repeat=1 --methods=elastic,elastic-no-p2p \
  --hmmd_socket="$work/hmmd.sock" --out_dir="$work/died" >"$work/died.out" 2>"$work/died.err" &
epid=$!
for _ in $(seq 2400); do
  grep -q "elastic-no-p2p: instances" "$work/died.err" && break
  kill -0 $epid 2>/dev/null || break
  sleep 0.05
done
kill -9 $hpid
wait $hpid 2>/dev/null || true
hpid=
set +e
wait $epid
rc=$?
set -e
[ "$rc" = 1 ] || { echo "hmmd died: elasticmoe exit $rc, want 1"; cat "$work/died.err"; exit 1; }
for f in events.json events.csv timeline.csv; do
  [ -s "$work/died/$f" ] || { echo "hmmd died: no $f"; exit 1; }
done
grep -q '"status": "error"' "$work/died/events.json" &&
  grep -qE '"error": "[A-Z_]+: .*(hmmd|instance process)' "$work/died/events.json" &&
  grep -q '"error_method": "elastic-no-p2p"' "$work/died/events.json" ||
  { echo "hmmd died: events.json does not say so"; cat "$work/died/events.json"; exit 1; }
awk -F, '$1 == "elastic" && $2 == "2->3" && $26 == "" { done = 1 }
         $1 == "elastic-no-p2p" && $2 == "run" && $26 ~ /hmmd|instance process/ { err = 1 }
         END { exit !(done && err) }' "$work/died/events.csv" ||
  { echo "hmmd died: events.csv lacks the done event or the error"; cat "$work/died/events.csv"; exit 1; }

# 3. emoe against the dead daemon's socket (left behind by SIGKILL): exit 1, a report with the error.
set +e
"$bin/emoe" --preset=tiny --workload=synthetic --num_requests=4 --hmmd_socket="$work/hmmd.sock" \
  --json="$work/emoe.json" >/dev/null 2>"$work/emoe.err"
rc=$?
set -e
[ "$rc" = 1 ] || { echo "emoe on a dead hmmd: exit $rc, want 1"; cat "$work/emoe.err"; exit 1; }
grep -q '"status": "error"' "$work/emoe.json" && grep -q '"error": ".*hmmd' "$work/emoe.json" ||
  { echo "emoe's report lacks the error"; cat "$work/emoe.json"; exit 1; }

# 4. emoe: one prompt rejected, the other served: exit 3.
set +e
"$bin/emoe" --preset=tiny --page_size=4k --max_tokens_per_step=8 --max_new_tokens=4 \
  "--prompt=short|a prompt longer than the budget" >"$work/prompts.out" 2>"$work/prompts.err"
rc=$?
set -e
[ "$rc" = 3 ] || { echo "emoe with a rejected prompt: exit $rc, want 3"; cat "$work/prompts.err"; exit 1; }
grep -q '^\[0\] tokens: [0-9]' "$work/prompts.out" &&
  grep -q '^\[1\] a prompt longer than the budget rejected: INVALID_ARGUMENT' "$work/prompts.out" ||
  { echo "emoe's output does not say which prompt was rejected"; cat "$work/prompts.out"; exit 1; }
echo "reports e2e: ok"
