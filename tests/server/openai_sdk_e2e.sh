#!/usr/bin/env bash
# The official OpenAI SDK for Node against emoe_server, end to end: a generated model with the
# real Qwen3 vocabulary (gen_model --preset=qwen3-text), the engine's greedy outputs for a few
# prompts (emoe, with and without --chat), then emoe_server on the model (port 0: the ready
# line says which), tests/server/openai_sdk.mjs checking the SDK's answers against the engine's,
# and SIGTERM: the server must exit 0 leaving nothing running.
#
# usage: openai_sdk_e2e.sh EMOE_SERVER EMOE GEN_MODEL SDK_DIR TOKENIZER_DATA WORKDIR
#   SDK_DIR: tests/server (openai_sdk.mjs; node/node_modules from scripts/fetch_test_clients.sh)
#   TOKENIZER_DATA: data/tokenizers (scripts/fetch_tokenizers.sh)
# Exits 77 (the test's SKIP_RETURN_CODE), saying why, without node, the SDK or the vocabulary.
# EMOE_SDK_SERVER_FLAGS adds server flags (e.g. device and arena sizes).
set -euo pipefail
server_bin=$1 emoe=$2 gen=$3 sdk_dir=$4 data=$5 work=$6
MAX_TOKENS=24
PROMPTS="The capital of France is|Write a haiku about autumn|Ünïcödé café, 日本語 and 🙂"

skip() {
  echo "openai_sdk_e2e: SKIP: $*"
  exit 77
}
command -v node >/dev/null || skip "node not found: install nodejs (scripts/setup.sh does)"
[ -f "$sdk_dir/node/node_modules/openai/package.json" ] ||
  skip "the openai SDK is not installed in $sdk_dir/node/node_modules: run scripts/fetch_test_clients.sh"
[ -f "$data/qwen3/tokenizer.json" ] ||
  skip "$data/qwen3/tokenizer.json is missing: run scripts/fetch_tokenizers.sh"

rm -rf "$work" && mkdir -p "$work"
model="$work/qwen3-text"
"$gen" --preset=qwen3-text --out="$model" --tokenizer_dir="$data/qwen3" >"$work/gen.log"

# The engine's greedy answers, on as many devices as the server starts with.
"$emoe" --model="$model" --devices=2 --prompt="$PROMPTS" --max_new_tokens=$MAX_TOKENS \
  >"$work/emoe.out" 2>"$work/emoe.err" || { cat "$work/emoe.err"; exit 1; }
"$emoe" --model="$model" --devices=2 --chat --prompt="$PROMPTS" --max_new_tokens=$MAX_TOKENS \
  >"$work/emoe_chat.out" 2>"$work/emoe_chat.err" || { cat "$work/emoe_chat.err"; exit 1; }

name=qwen3-sdk-test
: >"$work/server.out"  # before the server starts: the loop below reads it at once
"$server_bin" --model="$model" --served_model_name=$name --port=0 --devices=2 --max_devices=4 ${EMOE_SDK_SERVER_FLAGS:-} \
  >"$work/server.out" 2>"$work/server.err" &
pid=$!
trap 'kill -KILL $pid 2>/dev/null || true' EXIT
url=""
for _ in $(seq 600); do  # up to 5 minutes to load and warm up on a loaded machine
  url=$(sed -n 's/^emoe_server: serving .* on \(http:[^ ]*\) .*/\1/p' "$work/server.out")
  [ -n "$url" ] && break
  kill -0 $pid 2>/dev/null || break
  sleep 0.5
done
if [ -z "$url" ]; then
  echo "openai_sdk_e2e: emoe_server did not get ready:"
  cat "$work/server.out" "$work/server.err"
  exit 1
fi
echo "openai_sdk_e2e: $(grep '^emoe_server: serving' "$work/server.out")"
children=$(pgrep -P $pid | tr '\n' ' ' || true)  # hmmd and the instances

rc=0
node "$sdk_dir/openai_sdk.mjs" "$url" $name $MAX_TOKENS "$PROMPTS" "$work/emoe.out" \
  "$work/emoe_chat.out" || rc=$?

kill -TERM $pid
server_rc=0
wait $pid || server_rc=$?
trap - EXIT
if [ $server_rc != 0 ]; then
  echo "openai_sdk_e2e: emoe_server exited $server_rc after SIGTERM (want 0):"
  tail -20 "$work/server.err"
  rc=1
fi
# Nothing the server started may outlive it (hmmd, the instances).
for c in $children; do
  if [ -e /proc/$c ] && ! grep -q '^[0-9]* ([^)]*) Z' /proc/$c/stat 2>/dev/null; then
    echo "openai_sdk_e2e: $(cat /proc/$c/comm 2>/dev/null) (pid $c) still runs after the server exited"
    rc=1
  fi
done
[ $rc = 0 ] && echo "openai_sdk_e2e: passed"
exit $rc
