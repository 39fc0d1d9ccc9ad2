#!/usr/bin/env bash
# The peer benchmark (issue #21): the engine against llama.cpp on the same model and the same
# prompt token ids, greedy, at 1 and 2 threads and batch 1 and 8.
#   1. npm ci in bench/peer/node (node-llama-cpp 3.22.1 with its prebuilt CPU binaries, which
#      come as npm optional dependencies: NODE_LLAMA_CPP_SKIP_DOWNLOAD=true, nothing is built;
#      and @huggingface/gguf for gguf_export_test), skipped when it already matches the lock;
#   2. ninja in build/: gen_model, gguf_export, peer_engine;
#   3. the model: /var/tmp/emoe_bench_$PRESET, generated (bf16, seed 1) when missing, the same
#      directory build/bench/engine_bench uses;
#   4. its GGUF in f32 and bf16 (build/peer_bench/, rewritten when older than the model);
#   5. for each (threads, batch): build/bench/peer_engine (ours: one device of `threads`
#      threads, --threads_per_device; OURS_LAYOUT=devices: `threads` devices of one thread
#      each) and llama_peer_bench.mjs --threads (llama.cpp, bf16 GGUF, one
#      context of `batch` sequences, UV_THREADPOOL_SIZE=1); then llama.cpp once more on the f32
#      GGUF (KV cache f32) for the token agreement;
#   6. the table (bench/peer/peer_table.mjs) and build/peer_bench/peer_bench.json.
# Environment: PRESET (bench), THREADS ("1 2"), BATCHES ("1 8"), REPEATS (3), NEW_TOKENS (64),
# PROMPT_TOKENS (64), OURS_LAYOUT (team), MODEL (a model directory instead of the preset's), OUT (build/peer_bench).
# --install_only: step 1 alone. Node is a benchmark and test tool only.
set -euo pipefail
cd "$(dirname "$0")/.."
NODE_DIR=bench/peer/node
PRESET=${PRESET:-bench}
THREADS=${THREADS:-1 2}
BATCHES=${BATCHES:-1 8}
REPEATS=${REPEATS:-3}
NEW_TOKENS=${NEW_TOKENS:-64}
PROMPT_TOKENS=${PROMPT_TOKENS:-64}
MODEL=${MODEL:-/var/tmp/emoe_bench_$PRESET}
OUT=${OUT:-build/peer_bench}
OURS_LAYOUT=${OURS_LAYOUT:-team}

die() {
  echo "peer_bench: $*" >&2
  exit 1
}

case "$OURS_LAYOUT" in
  team | devices) ;;
  *) die "OURS_LAYOUT must be team or devices, got '$OURS_LAYOUT'" ;;
esac
for tool in node npm; do
  command -v "$tool" >/dev/null || die "$tool not found (Debian: apt-get install nodejs npm)"
done
# Whether node_modules holds what package-lock.json names, each at its version and integrity
# (scripts/npm_lock.sh's check, except that an optional package npm did not install, another
# platform's prebuilt binaries, is not required).
installed() {
  [ -f "$NODE_DIR/node_modules/.package-lock.json" ] || return 1
  (cd "$NODE_DIR" && node --input-type=module -e '
    import fs from "fs";
    const want = JSON.parse(fs.readFileSync("package-lock.json")).packages;
    const have = JSON.parse(fs.readFileSync("node_modules/.package-lock.json")).packages;
    for (const [path, meta] of Object.entries(want)) {
      if (path === "" || (meta.optional && !have[path])) continue;
      const pkg = path + "/package.json";
      if (!have[path] || have[path].integrity !== meta.integrity || !fs.existsSync(pkg) ||
          JSON.parse(fs.readFileSync(pkg)).version !== meta.version) process.exit(1);
    }
    if (!have["node_modules/@node-llama-cpp/linux-x64"] && process.arch === "x64") process.exit(1);')
}
export NODE_LLAMA_CPP_SKIP_DOWNLOAD=true
if installed; then
  echo "peer_bench: $NODE_DIR/node_modules already matches package-lock.json"
else
  echo "peer_bench: npm ci in $NODE_DIR (prebuilt llama.cpp binaries, no download)"
  # A registry that lacks some platforms' optional packages (a mirror) fails npm ci's lock
  # check; npm install --no-save then installs the same locked versions and leaves the lock.
  (cd "$NODE_DIR" && { npm ci --no-audit --no-fund --loglevel=error 2>/dev/null ||
    npm install --no-save --no-audit --no-fund --loglevel=error; }) ||
    die "npm in $NODE_DIR failed (registry $(npm config get registry))"
  installed || die "$NODE_DIR/node_modules does not hold what package-lock.json names"
fi
[ "${1:-}" = --install_only ] && exit 0

[ -f build/build.ninja ] || cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release
ninja -C build gen_model gguf_export peer_engine

if [ ! -f "$MODEL/config.json" ]; then
  echo "peer_bench: generating $PRESET into $MODEL"
  build/tools/gen_model --preset="$PRESET" --out="$MODEL"
fi
mkdir -p "$OUT"
for dtype in f32 bf16; do
  gguf="$OUT/model.$dtype.gguf"
  if [ ! -f "$gguf" ] || [ "$gguf" -ot "$MODEL/config.json" ] || [ "$gguf" -ot build/tools/gguf_export ]; then
    build/tools/gguf_export --model="$MODEL" --out="$gguf" --dtype=$dtype
  fi
done

# Eight prompts of PROMPT_TOKENS ids in [0, 256), the same every run (an LCG).
prompts=$(awk -v n="$PROMPT_TOKENS" 'BEGIN { s = 12345; for (p = 0; p < 8; ++p) {
  line = ""; for (i = 0; i < n; ++i) { s = (s * 1103515245 + 12345) % 2147483648;
  line = line (i ? "," : "") int(s / 65536) % 256 } printf "%s%s", (p ? ";" : ""), line } }')
export UV_THREADPOOL_SIZE=1
llama() { node bench/peer/llama_peer_bench.mjs --prompts="$prompts" --new_tokens="$NEW_TOKENS" "$@"; }
for t in $THREADS; do
  for b in $BATCHES; do
    echo "peer_bench: threads $t, batch $b: ours"
    if [ "$OURS_LAYOUT" = team ]; then layout=(--devices=1 --threads_per_device="$t"); else
      layout=(--devices="$t" --threads_per_device=1); fi
    build/bench/peer_engine --model="$MODEL" --prompts="$prompts" "${layout[@]}" --batch="$b" \
      --new_tokens="$NEW_TOKENS" --repeats="$REPEATS" --json="$OUT/ours_t${t}_b${b}.json"
    echo "peer_bench: threads $t, batch $b: llama.cpp"
    llama --model="$OUT/model.bf16.gguf" --threads="$t" --batch="$b" --repeats="$REPEATS" \
      --json="$OUT/llama_t${t}_b${b}.json"
  done
done
first_t=${THREADS%% *}
last_b=${BATCHES##* }
echo "peer_bench: agreement: llama.cpp on the f32 GGUF, threads $first_t, batch $last_b"
llama --model="$OUT/model.f32.gguf" --threads="$first_t" --batch="$last_b" --repeats=1 --kv=f32 \
  --json="$OUT/agree_f32.json"
to_json_list() { printf '[%s]' "$(echo "$1" | tr ' ' ',')"; }
cat >"$OUT/meta.json" <<JSON
{"preset": "$PRESET", "model": "$MODEL", "threads": $(to_json_list "$THREADS"),
 "batches": $(to_json_list "$BATCHES"), "repeats": $REPEATS, "new_tokens": $NEW_TOKENS,
 "prompt_tokens": $PROMPT_TOKENS, "host_cpus": $(nproc), "ours_layout": "$OURS_LAYOUT",
 "command": "scripts/peer_bench.sh", "date": "$(date -u +%Y-%m-%dT%H:%M:%SZ)"}
JSON
node bench/peer/peer_table.mjs "$OUT"
