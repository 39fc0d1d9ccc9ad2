#!/usr/bin/env bash
# The README's main job (until the engine lands): install, build, check the host, and run the
# remap benchmark, which prints the copy/remap ratio table.
#   VMM_BENCH_MAX_MB=1024   largest size benchmarked
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
BUILD_DIR=${BUILD_DIR:-build}
"$BUILD_DIR/tools/host_doctor"
"$BUILD_DIR/bench/vmm_remap_bench" "$@"
