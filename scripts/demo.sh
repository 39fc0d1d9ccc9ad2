#!/usr/bin/env bash
# The README's main job: install, build, check the host, serve text through a real tokenizer,
# then the elastic-scaling demo on a generated MoE model: serve a steady load, scale
# 2 -> 3 -> 4 -> 3 -> 2 -> 4 -> 2 devices with ElasticMoE, its ablations and the baselines,
# print the event table and write the plot.
#   ELASTIC_OUT=elastic_out          where events.json/.csv, timeline.csv, throughput.png go
#   extra arguments are passed to elasticmoe (e.g. --methods=elastic,cold-restart)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
BUILD_DIR=${BUILD_DIR:-build}
"$BUILD_DIR/tools/host_doctor" || true
# A tiny model served on 1 and 2 devices first (the same tokens), as a smoke test.
model=$(mktemp -d)/tiny
"$BUILD_DIR/tools/gen_model" --preset=tiny --out="$model"
for d in 1 2; do
  "$BUILD_DIR/tools/emoe" --model="$model" --prompt="Hello, world|Mixture of experts" \
    --max_new_tokens=24 --devices=$d
done
rm -rf "$(dirname "$model")"
# Real text through a real tokenizer: the Qwen3 vocabulary on a generated model (its weights are
# random, so the words are too; the tokenizer is Qwen3's). Needs data/tokenizers
# (scripts/fetch_tokenizers.sh).
if [ -f data/tokenizers/qwen3/tokenizer.json ]; then
  model=$(mktemp -d)/qwen3-text
  "$BUILD_DIR/tools/gen_model" --preset=qwen3-text --out="$model"
  "$BUILD_DIR/tools/emoe" --model="$model" --prompt="The capital of France is|混合专家模型是" \
    --max_new_tokens=16
  "$BUILD_DIR/tools/emoe" --model="$model" --chat --prompt="What is a mixture of experts?" \
    --max_new_tokens=16
  rm -rf "$(dirname "$model")"
else
  echo "demo: no data/tokenizers/qwen3/tokenizer.json (scripts/fetch_tokenizers.sh): text demo skipped"
fi
out=${ELASTIC_OUT:-elastic_out}
"$BUILD_DIR/tools/elasticmoe" --out_dir="$out" "$@"
rm -rf "$out/model"
