#!/usr/bin/env bash
# The elastic-scaling experiment end to end on the tiny model: instances in processes of their
# own scale 2->4->2 (elastic) next to a cold restart and horizontal replicas, the HMM in an hmmd
# that elasticmoe starts; every event is done, no request failed, the reports are written and no
# instance process is left behind. Then the same against an hmmd that was already running: it
# keeps running, and elasticmoe gives back everything it took (elasticmoe checks that itself).
# usage: elasticmoe_e2e.sh ELASTICMOE WORKDIR (hmmd is next to ELASTICMOE)
set -euo pipefail
bin=$1 work=$2
rm -rf "$work" && mkdir -p "$work"
"$bin" --preset=tiny --max_devices=4 --weights_mb=8 --experts_mb=16 --kv_mb=4 --schedule=2,4,2 \
  --settle_s=1.5 --window_s=0.75 --repeat=1 --methods=elastic,cold-restart,horizontal --populate=false --page_size=4k --instance_processes \
  --out_dir="$work/out" >"$work/stdout" 2>"$work/stderr" &
pid=$!
wait $pid || { echo "elasticmoe failed"; cat "$work/stderr"; exit 1; }
grep -q "elastic: instances in processes of their own.*HMM in hmmd" "$work/stderr"
grep -q "^HMM in hmmd (pid" "$work/stdout"
for f in events.json events.csv timeline.csv; do [ -s "$work/out/$f" ] || { echo "no $f"; exit 1; }; done
# Six events (3 methods x 2), none refused, none with a failed request.
rows=$(grep -cE '^(elastic|cold-restart|horizontal),' "$work/out/events.csv")
[ "$rows" = 6 ] || { echo "expected 6 event rows, got $rows"; cat "$work/out/events.csv"; exit 1; }
awk -F, 'NR > 1 && $18 != 0 { bad = 1; print "failed requests: " $0 } END { exit bad }' \
  "$work/out/events.csv" || exit 1
# The horizontal replica served tokens (timeline column 4: tokens by replicas). 1.5 s windows:
# the replica must get requests routed to it in its window also under ASan on a loaded host.
awk -F, '$1 == "horizontal" && $4 > 0 { found = 1 } END { exit !found }' "$work/out/timeline.csv" ||
  { echo "the horizontal replica served nothing"; exit 1; }
if grep -q "not done" "$work/stdout"; then echo "an event was not done"; cat "$work/stdout"; exit 1; fi
if pgrep -f "emoe_instance --control_fd" -P $pid >/dev/null; then echo "instance left"; exit 1; fi

# A running hmmd (started empty), driven by elasticmoe through its socket.
hmmd="$(dirname "$bin")/hmmd"
"$hmmd" --socket="$work/hmmd.sock" --devices_per_node=3 --device_capacity_mb=64 --weights_mb=8 \
  --experts_mb=16 --kv_mb=4 --page_size=4k 2>"$work/hmmd.log" &
hpid=$!
for _ in $(seq 100); do [ -S "$work/hmmd.sock" ] && break; sleep 0.05; done
"$bin" --preset=tiny --schedule=2,3,2 --settle_s=0.3 --window_s=0.15 --repeat=1 --methods=elastic --kv_mb=4 \
  --hmmd_socket="$work/hmmd.sock" --out_dir="$work/out2" >"$work/stdout2" 2>"$work/stderr2" ||
  { echo "elasticmoe on a running hmmd failed"; cat "$work/stderr2"; kill $hpid; exit 1; }
grep -q "^HMM in the running hmmd at $work/hmmd.sock: 3 devices" "$work/stdout2" ||
  { cat "$work/stdout2"; kill $hpid; exit 1; }
rows=$(grep -cE '^elastic,' "$work/out2/events.csv")
[ "$rows" = 2 ] || { echo "expected 2 events on the running hmmd, got $rows"; kill $hpid; exit 1; }
kill -0 $hpid || { echo "hmmd did not survive its client"; exit 1; }
kill -TERM $hpid && wait $hpid || { echo "hmmd did not stop cleanly"; cat "$work/hmmd.log"; exit 1; }
echo "elasticmoe e2e: ok"
