#!/usr/bin/env bash
# The elastic-scaling experiment end to end on the tiny model: instances in processes of their
# own scale 2->4->2 (elastic) next to a cold restart and horizontal replicas; every event is
# done, no request failed, the reports are written and no instance process is left behind.
# usage: elasticmoe_e2e.sh ELASTICMOE WORKDIR
set -euo pipefail
bin=$1 work=$2
rm -rf "$work" && mkdir -p "$work"
"$bin" --preset=tiny --max_devices=4 --weights_mb=8 --experts_mb=16 --kv_mb=4 --schedule=2,4,2 \
  --settle_s=0.4 --methods=elastic,cold-restart,horizontal --populate=false --page_size=4k --instance_processes \
  --out_dir="$work/out" >"$work/stdout" 2>"$work/stderr" &
pid=$!
wait $pid || { echo "elasticmoe failed"; cat "$work/stderr"; exit 1; }
grep -q "elastic: instances in processes of their own" "$work/stderr"
for f in events.json events.csv timeline.csv; do [ -s "$work/out/$f" ] || { echo "no $f"; exit 1; }; done
# Six events (3 methods x 2), none refused, none with a failed request.
rows=$(grep -cE '^(elastic|cold-restart|horizontal),' "$work/out/events.csv")
[ "$rows" = 6 ] || { echo "expected 6 event rows, got $rows"; cat "$work/out/events.csv"; exit 1; }
awk -F, 'NR > 1 && $18 != 0 { bad = 1; print "failed requests: " $0 } END { exit bad }' \
  "$work/out/events.csv" || exit 1
# The horizontal replica served tokens (timeline column 4: tokens by replicas).
awk -F, '$1 == "horizontal" && $4 > 0 { found = 1 } END { exit !found }' "$work/out/timeline.csv" ||
  { echo "the horizontal replica served nothing"; exit 1; }
if grep -q "not done" "$work/stdout"; then echo "an event was not done"; cat "$work/stdout"; exit 1; fi
if pgrep -f "emoe_instance --control_fd" -P $pid >/dev/null; then echo "instance left"; exit 1; fi
echo "elasticmoe e2e: ok"
