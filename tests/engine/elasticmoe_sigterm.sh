#!/usr/bin/env bash
# SIGTERM to elasticmoe while its hmmd populates (start-up) leaves no hmmd behind: hmmd ends with
# its launcher (its parent-death signal, and the control connection's hang-up), long before its
# populate would have finished. The populate is slowed with hmmd's test hook.
# usage: elasticmoe_sigterm.sh ELASTICMOE WORKDIR (hmmd is next to ELASTICMOE)
set -euo pipefail
bin=$1 work=$2
rm -rf "$work" && mkdir -p "$work"
# 2 devices x 96 MiB populated in 32 MiB chunks, 3 s after each: > 15 s of start-up.
"$bin" --preset=tiny --max_devices=2 --device_mb=96 --weights_mb=32 --experts_mb=64 --kv_mb=32 \
  --schedule=1,2 --methods=elastic --page_size=4k --populate \
  --hmmd_flags=--test_populate_delay_ms=3000 --out_dir="$work/out" \
  >"$work/stdout" 2>"$work/stderr" &
pid=$!
gone() { [ ! -e "/proc/$1" ] || grep -q '^[0-9]* ([^)]*) Z' "/proc/$1/stat" 2>/dev/null; }
# elasticmoe reports hmmd's populate progress: hmmd is starting.
for _ in $(seq 1200); do
  grep -q "hmmd starting: populate" "$work/stderr" && break
  gone $pid && { echo "elasticmoe ended early"; cat "$work/stderr"; exit 1; }
  sleep 0.1
done
grep -q "hmmd starting: populate" "$work/stderr" || { echo "no progress"; kill $pid; exit 1; }
hmmd=$(pgrep -P $pid -x hmmd) || { echo "no hmmd child"; kill $pid; exit 1; }
if grep -q "^HMM in hmmd" "$work/stdout"; then echo "hmmd had finished starting"; exit 1; fi
kill -TERM $pid
wait $pid && { echo "elasticmoe exited 0 after SIGTERM"; exit 1; }
for _ in $(seq 100); do gone "$hmmd" && break; sleep 0.1; done
if ! gone "$hmmd"; then
  echo "hmmd (pid $hmmd) outlived elasticmoe: $(cat /proc/$hmmd/status | grep -E 'State|PPid')"
  kill -KILL "$hmmd"
  exit 1
fi
echo "elasticmoe sigterm: ok (hmmd $hmmd gone with elasticmoe $pid)"
