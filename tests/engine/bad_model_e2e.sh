#!/usr/bin/env bash
# Bad model inputs given to the binaries: each must exit non-zero promptly, not by a signal, with
# a message naming the problem. config.json a directory, model.safetensors a FIFO (emoe,
# elasticmoe, hmmd), a wrongly typed field, 2^31 layers, a NaN in a weight (accepted with
# --check_weights=false), a trace that is a FIFO. Every run is under `timeout`, so a regression (a hang) fails the test.
# usage: bad_model_e2e.sh EMOE ELASTICMOE HMMD GEN_MODEL WORKDIR
set -euo pipefail
emoe=$1 elasticmoe=$2 hmmd=$3 gen=$4 work=$5
rm -rf "$work" && mkdir -p "$work"
"$gen" --preset=tiny --out="$work/tiny" --seed=5 >/dev/null
limit=120  # seconds: only a hang comes near it

# expect_fail NAME PATTERN CMD...: CMD exits 1..127 (not killed, not timed out) and its output
# matches PATTERN (grep -E).
expect_fail() {
  local name=$1 pattern=$2
  shift 2
  local rc=0
  timeout --kill-after=10 "$limit" "$@" >"$work/$name.out" 2>&1 || rc=$?
  if [ "$rc" = 0 ]; then
    echo "$name: exited 0"; cat "$work/$name.out"; exit 1
  elif [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
    echo "$name: hung (killed after ${limit} s)"; cat "$work/$name.out"; exit 1
  elif [ "$rc" -ge 128 ]; then
    echo "$name: killed by signal $((rc - 128))"; cat "$work/$name.out"; exit 1
  fi
  grep -qE "$pattern" "$work/$name.out" ||
    { echo "$name: exit $rc without /$pattern/:"; cat "$work/$name.out"; exit 1; }
  echo "$name: exit $rc: $(grep -m1 -oE "$pattern.*" "$work/$name.out" | cut -c1-160)"
}

# A copy of the tiny model with config.json edited by sed expression $2.
variant() {
  cp -r "$work/tiny" "$work/$1"
  sed -i -E "$2" "$work/$1/config.json"
}

emoe_args=(--prompt=hello --max_new_tokens=4 --page_size=4k)
elastic_args=(--max_devices=3 --weights_mb=8 --experts_mb=16 --kv_mb=4 --schedule=2,3
  --settle_s=0.2 --window_s=0.1 --repeat=1 --methods=elastic --populate=false --page_size=4k)

# config.json that is a directory.
cp -r "$work/tiny" "$work/cfgdir" && rm "$work/cfgdir/config.json" && mkdir "$work/cfgdir/config.json"
expect_fail emoe_cfgdir "config.json: is a directory" "$emoe" --model="$work/cfgdir" "${emoe_args[@]}"
expect_fail elasticmoe_cfgdir "config.json: is a directory" "$elasticmoe" --model="$work/cfgdir" \
  "${elastic_args[@]}" --out_dir="$work/cfgdir_out"

# model.safetensors that is a FIFO (nobody ever writes to it).
cp -r "$work/tiny" "$work/fifo" && rm "$work/fifo/model.safetensors" &&
  mkfifo "$work/fifo/model.safetensors"
expect_fail emoe_fifo "model.safetensors: is a FIFO" "$emoe" --model="$work/fifo" "${emoe_args[@]}"
expect_fail elasticmoe_fifo "model.safetensors: is a FIFO" "$elasticmoe" --model="$work/fifo" \
  "${elastic_args[@]}" --out_dir="$work/fifo_out"
expect_fail hmmd_fifo "model.safetensors: is a FIFO" "$hmmd" --checkpoint="$work/fifo" \
  --socket="$work/fifo.sock" --devices_per_node=1 --device_capacity_mb=64 --weights_mb=8 \
  --experts_mb=8 --page_size=4k

# A trace that is a FIFO (emoe's workload input): refused as a flag before anything starts (the
# workload reader refuses it by type too, vmm::ReadRegularFile).
mkfifo "$work/trace.csv"
expect_fail emoe_trace_fifo "trace must be an existing regular file" "$emoe" --model="$work/tiny" --page_size=4k \
  --workload=trace --trace="$work/trace.csv" --num_requests=2

# A field of the wrong type, and a layer count that used to grow memory until bad_alloc.
variant sparse 's/"decoder_sparse_step": 1/"decoder_sparse_step": "x"/'
msg="field 'decoder_sparse_step' must be an integer, got a string"
expect_fail emoe_type "$msg" "$emoe" --model="$work/sparse" "${emoe_args[@]}"
expect_fail elasticmoe_type "$msg" "$elasticmoe" --model="$work/sparse" "${elastic_args[@]}" \
  --out_dir="$work/sparse_out"
variant layers 's/"num_hidden_layers": [0-9]+/"num_hidden_layers": 2147483648/'
msg="field 'num_hidden_layers' must be 1..1024, got 2147483648"
expect_fail emoe_layers "$msg" "$emoe" --model="$work/layers" "${emoe_args[@]}"
expect_fail elasticmoe_layers "$msg" "$elasticmoe" --model="$work/layers" "${elastic_args[@]}" \
  --out_dir="$work/layers_out"

# A NaN (bf16 0x7fc0) at element 5 of the first tensor in the file (the embeddings).
cp -r "$work/tiny" "$work/nan"
f="$work/nan/model.safetensors"
header=$(od -An -t u8 -N8 "$f" | tr -d ' ')
printf '\xc0\x7f' | dd of="$f" bs=1 seek=$((8 + header + 10)) conv=notrunc status=none
msg="NaN/Inf in the loaded weights: tensor 'model.embed_tokens.weight' .*1 NaN, 0 Inf.*element 5"
expect_fail emoe_nan "$msg" "$emoe" --model="$work/nan" "${emoe_args[@]}"
expect_fail elasticmoe_nan "$msg" "$elasticmoe" --model="$work/nan" "${elastic_args[@]}" \
  --out_dir="$work/nan_out"
# With the check off, the same model is served (the prompt does not touch token 0's row).
timeout --kill-after=10 "$limit" "$emoe" --model="$work/nan" "${emoe_args[@]}" \
  --check_weights=false >"$work/nan_off.out" 2>&1 ||
  { echo "emoe --check_weights=false failed"; cat "$work/nan_off.out"; exit 1; }
grep -q "tokens:" "$work/nan_off.out" || { cat "$work/nan_off.out"; exit 1; }
echo "bad model inputs: all refused clearly"
