#!/usr/bin/env bash
# Fetches the real clients the server's tests drive: the official OpenAI SDK for Node (npm
# package `openai`), pinned to an exact version with the registry's integrity hash by
# tests/server/node/package-lock.json, installed by `npm ci` into tests/server/node/node_modules
# (gitignored; skipped when it already holds exactly what the lock file names).
# tests/server/openai_sdk_e2e.sh skips, naming this script, while it is missing. Idempotent.
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

start=$SECONDS
if installed_as_locked "$NODE_DIR"; then
  echo "fetch_test_clients: $NODE_DIR/node_modules already matches package-lock.json"
  exit 0
fi
registry=$(npm config get registry 2>/dev/null || echo "?")
echo "fetch_test_clients: npm ci in $NODE_DIR (registry $registry)"
if ! (cd "$NODE_DIR" && npm ci --no-audit --no-fund --loglevel=error); then
  die "npm ci in $NODE_DIR failed: is the registry $registry reachable (npm config get registry; a proxy?)"
fi
installed_as_locked "$NODE_DIR" || die "npm ci in $NODE_DIR did not install what package-lock.json names"
version=$(node -p "require('./$NODE_DIR/node_modules/openai/package.json').version")
echo "fetch_test_clients: openai@$version in $NODE_DIR/node_modules in $((SECONDS - start)) s"
