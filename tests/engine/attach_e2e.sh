#!/usr/bin/env bash
# hmmd serves a generated model; emoe attaches to it (zero-copy, read-only) and must produce the
# same tokens as emoe loading the model itself on the same number of devices.
# usage: attach_e2e.sh HMMD EMOE GEN_MODEL WORKDIR
set -euo pipefail
hmmd=$1 emoe=$2 gen=$3 work=$4
rm -rf "$work" && mkdir -p "$work"
"$gen" --preset=tiny --out="$work/tiny" --seed=3 >/dev/null
sock="$work/run/hmmd.sock"
"$hmmd" --checkpoint="$work/tiny" --socket="$sock" --devices_per_node=2 --device_capacity_mb=64 \
  --weights_mb=8 --experts_mb=8 --page_size=4k >"$work/hmmd.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT
for _ in $(seq 100); do [ -S "$sock" ] && break; sleep 0.05; done
[ -S "$sock" ] || { echo "hmmd did not start"; cat "$work/hmmd.log"; exit 1; }
args=(--model="$work/tiny" "--prompt=Mixture of experts|on Linux" --max_new_tokens=16 --page_size=4k)
attached=$("$emoe" "${args[@]}" --hmmd_socket="$sock" 2>"$work/attached.err" | grep 'tokens:')
local_run=$("$emoe" "${args[@]}" --devices=2 2>/dev/null | grep 'tokens:')
grep -q "attached to hmmd" "$work/attached.err"
if [ "$attached" != "$local_run" ]; then
  echo "attached and in-process runs differ:"; echo "$attached"; echo "$local_run"; exit 1
fi
kill -TERM $pid
wait $pid
trap - EXIT
echo "attached to hmmd and matched the in-process run:"
echo "$attached"
