#!/usr/bin/env bash
# The README's test command: install, build, run the whole suite with CTest; then build the
# libraries and the tests a second time with clang and -Wthread-safety -Werror (the thread-safety
# annotations, vmm/thread_annotations.h, are checked by clang only). The tests run in the first
# build only.
#
# Environment (and those of scripts/setup.sh):
#   BUILD_DIR=build              the gcc build, where the tests run
#   CLANG_BUILD_DIR=build-clang  the clang build
#   EMOE_CLANG=0                 skip the clang build
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
BUILD_DIR=${BUILD_DIR:-build}
CLANG_BUILD_DIR=${CLANG_BUILD_DIR:-build-clang}
rc=0
ctest --test-dir "$BUILD_DIR" --output-on-failure -j "$(nproc)" --timeout 600 || rc=$?

if [ "${EMOE_CLANG:-1}" != 0 ]; then
  if ! command -v clang++-14 >/dev/null; then
    echo "test: clang++-14 not found: install clang-14 (scripts/setup.sh does) or set EMOE_CLANG=0" >&2
    exit 1
  fi
  # Warnings only: -O0 without debug info builds fastest, and clang's warnings do not depend on
  # the optimizer. No benchmarks; of the tools only those the tests start (EMOE_BUILD_TOOLS=OFF).
  start=$(date +%s)
  cmake -S . -B "$CLANG_BUILD_DIR" -G Ninja -DCMAKE_CXX_COMPILER=clang++-14 \
    -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_FLAGS_DEBUG=-O0 -DCMAKE_CXX_FLAGS=-Wthread-safety \
    -DEMOE_WERROR=ON -DEMOE_BUILD_TESTS=ON -DEMOE_BUILD_BENCH=OFF -DEMOE_BUILD_TOOLS=OFF >/dev/null
  clang_rc=0
  cmake --build "$CLANG_BUILD_DIR" -j "$(nproc)" || clang_rc=$?
  echo "test: clang build (-Wthread-safety -Werror) in $CLANG_BUILD_DIR took $(($(date +%s) - start)) s" \
    "($([ $clang_rc = 0 ] && echo clean || echo FAILED))"
  [ $clang_rc = 0 ] || rc=$clang_rc
fi
exit $rc
