#!/usr/bin/env bash
# Fetches the real clients and validators the tests drive: the official OpenAI SDK for Node (npm
# package `openai`, tests/server/node) and Hugging Face's GGUF reader (`@huggingface/gguf`,
# tests/tools/node, for gguf_export_test), each pinned to an exact version with the registry's
# integrity hash by its package-lock.json, installed by `npm ci` into its node_modules
# (gitignored; skipped when it already holds exactly what the lock file names). The tests that
# need them skip, naming this script, while they are missing. Idempotent.
# Node is for tests only: nothing at run time needs it.
#
# Environment:
#   EMOE_SKIP_TEST_CLIENTS=1   do nothing (the SDK test skips)
set -euo pipefail
cd "$(dirname "$0")/.."
NODE_DIR=tests/server/node

die() {
  echo "fetch_test_clients: $*" >&2
  exit 1
}

if [ "${EMOE_SKIP_TEST_CLIENTS:-0}" = 1 ]; then
  echo "fetch_test_clients: EMOE_SKIP_TEST_CLIENTS=1: not fetching; the OpenAI SDK test will skip"
  exit 0
fi
for tool in node npm; do
  command -v "$tool" >/dev/null ||
    die "$tool not found: install nodejs and npm (Debian: apt-get install nodejs npm; scripts/setup.sh does)"
done
major=$(node -p 'process.versions.node.split(".")[0]')
[ "$major" -ge 20 ] || die "node $(node --version) is too old: the pinned openai SDK needs node >= 20"

# shellcheck source=npm_lock.sh
source scripts/npm_lock.sh

# One npm ci per directory (each pinned by its own package-lock.json).
install_dir() {
  local dir=$1 what=$2 start=$SECONDS
  if installed_as_locked "$dir"; then
    echo "fetch_test_clients: $dir/node_modules already matches package-lock.json"
    return 0
  fi
  local registry
  registry=$(npm config get registry 2>/dev/null || echo "?")
  echo "fetch_test_clients: npm ci in $dir (registry $registry)"
  if ! (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error); then
    die "npm ci in $dir failed: is the registry $registry reachable (npm config get registry; a proxy?)"
  fi
  installed_as_locked "$dir" || die "npm ci in $dir did not install what package-lock.json names"
  local version
  version=$(node -p "require('./$dir/node_modules/$what/package.json').version")
  echo "fetch_test_clients: $what@$version in $dir/node_modules in $((SECONDS - start)) s"
}
install_dir "$NODE_DIR" openai
install_dir tests/tools/node @huggingface/gguf
