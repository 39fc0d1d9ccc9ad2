#!/usr/bin/env bash
# The README's main job (until the engine lands): install, build, check the host, and run the
# remap benchmark, which prints the copy/remap ratio table.
#   VMM_BENCH_MAX_MB=1024   largest size benchmarked
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
BUILD_DIR=${BUILD_DIR:-build}
"$BUILD_DIR/tools/host_doctor"
# A tiny generated MoE model served on 1 and 2 devices (same tokens), then a short trace replay.
model=$(mktemp -d)/tiny
"$BUILD_DIR/tools/gen_model" --preset=tiny --out="$model"
for d in 1 2; do
  "$BUILD_DIR/tools/emoe" --model="$model" --prompt="Hello, world|Mixture of experts" \
    --max_new_tokens=24 --devices=$d
done
trace=../shared/traces/azure_llm_2023_conv.csv
if [ -f "$trace" ]; then
  "$BUILD_DIR/tools/emoe" --model="$model" --workload=trace --trace="$trace" --num_requests=100 \
    --time_scale=20 --devices=2 --max_prompt_tokens=128 --max_output_tokens=32
fi
rm -rf "$(dirname "$model")"
"$BUILD_DIR/bench/vmm_remap_bench" "$@"
