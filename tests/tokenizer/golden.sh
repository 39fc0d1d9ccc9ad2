#!/usr/bin/env bash
# The CTest fixture tokenizer_golden: the oracle corpus and the reference's answers for it.
#
#   golden.sh NODE_DIR DATA_DIR OUT_DIR
#
# NODE_DIR is tests/tokenizer/node (corpus.mjs, golden.mjs, and the reference in node_modules),
# DATA_DIR data/tokenizers (qwen3/ and mistral/, from scripts/fetch_tokenizers.sh). Writes
#   OUT_DIR/corpus.jsonl          (corpus.mjs: deterministic)
#   OUT_DIR/golden_qwen3.jsonl    (golden.mjs with DATA_DIR/qwen3)
#   OUT_DIR/golden_mistral.jsonl  (golden.mjs with DATA_DIR/mistral)
# for tests/tokenizer/tokenizer_oracle_test.cc. Each file is written beside and renamed, so a
# golden file is always complete. Nothing is regenerated when its inputs (the two scripts, the
# lock file, the vocabularies) have not changed since the last run (OUT_DIR/inputs.sha256).
# Exits 77 (the test's SKIP_RETURN_CODE) saying why when node, the reference or the
# vocabularies are missing, after removing old goldens so that none is used stale.
set -euo pipefail
NODE_DIR=$1 DATA_DIR=$2 OUT_DIR=$3
VOCABS=(qwen3 mistral)

skip() {
  rm -f "$OUT_DIR"/golden_*.jsonl "$OUT_DIR/inputs.sha256"
  echo "tokenizer_golden: SKIP: $*"
  exit 77
}

mkdir -p "$OUT_DIR"
command -v node >/dev/null || skip "node not found: install nodejs and npm, then run scripts/fetch_tokenizers.sh (scripts/setup.sh does both)"
[ -f "$NODE_DIR/node_modules/@huggingface/tokenizers/package.json" ] ||
  skip "the reference tokenizer is not installed in $NODE_DIR/node_modules: run scripts/fetch_tokenizers.sh"
inputs=("$NODE_DIR/corpus.mjs" "$NODE_DIR/golden.mjs" "$NODE_DIR/package-lock.json")
for v in "${VOCABS[@]}"; do
  for f in tokenizer.json tokenizer_config.json; do
    [ -f "$DATA_DIR/$v/$f" ] || skip "$DATA_DIR/$v/$f is missing: run scripts/fetch_tokenizers.sh"
    inputs+=("$DATA_DIR/$v/$f")
  done
done

stamp=$(sha256sum "${inputs[@]}")
if [ -f "$OUT_DIR/inputs.sha256" ] && [ "$(cat "$OUT_DIR/inputs.sha256")" = "$stamp" ] &&
  [ -f "$OUT_DIR/corpus.jsonl" ] && [ -f "$OUT_DIR/golden_qwen3.jsonl" ] &&
  [ -f "$OUT_DIR/golden_mistral.jsonl" ]; then
  echo "tokenizer_golden: $OUT_DIR is up to date ($(wc -l <"$OUT_DIR/corpus.jsonl") strings)"
  exit 0
fi
rm -f "$OUT_DIR/inputs.sha256"

start=$SECONDS
node "$NODE_DIR/corpus.mjs" "$OUT_DIR/.corpus.jsonl.tmp"
mv -f "$OUT_DIR/.corpus.jsonl.tmp" "$OUT_DIR/corpus.jsonl"
echo "tokenizer_golden: corpus: $(wc -l <"$OUT_DIR/corpus.jsonl") strings in $((SECONDS - start)) s"

# One node per vocabulary, in parallel; each failure is reported.
pids=()
for v in "${VOCABS[@]}"; do
  node "$NODE_DIR/golden.mjs" "$DATA_DIR/$v" "$OUT_DIR/corpus.jsonl" "$OUT_DIR/.golden_$v.jsonl.tmp" &
  pids+=($!)
done
failed=0
for i in "${!VOCABS[@]}"; do
  if ! wait "${pids[$i]}"; then
    echo "tokenizer_golden: golden.mjs failed for $DATA_DIR/${VOCABS[$i]}" >&2
    failed=1
  fi
done
[ $failed = 0 ] || exit 1
for v in "${VOCABS[@]}"; do mv -f "$OUT_DIR/.golden_$v.jsonl.tmp" "$OUT_DIR/golden_$v.jsonl"; done
echo "$stamp" >"$OUT_DIR/inputs.sha256"
echo "tokenizer_golden: goldens written to $OUT_DIR in $((SECONDS - start)) s"
