#!/usr/bin/env bash
# The README's test command. Phases (each prints how long it took; a failed phase does not stop
# the later ones, the exit status is that of the first failure):
#   1. gcc:   install, build (scripts/setup.sh) and run the whole suite with CTest.
#   2. asan:  clang build with AddressSanitizer + UndefinedBehaviorSanitizer, -Wthread-safety
#             -Werror (the thread-safety annotations are checked by clang only), the tools and the
#             fuzz targets; the whole suite runs in it (with the fuzzers' seed corpora, label fuzz).
#   3. fuzz:  every fuzz target (fuzz/corpus/<target>/) for FUZZ_SECONDS on a scratch copy of its
#             corpus (with fuzz/<target>.dict when there is one); a crash prints the input and
#             its reproducer.
#   4. tsan:  clang build with ThreadSanitizer of the threaded tests (target threaded_tests, label
#             threads) and the tools they start; those tests run in it.
# Any sanitizer report, in a test or in a process it started (hmmd, emoe_instance...), fails the
# phase: reports go to files (log_path) that are listed and printed after the run.
#
# Environment (and those of scripts/setup.sh):
#   BUILD_DIR=build            the gcc build
#   ASAN_BUILD_DIR=build-asan  the ASan+UBSan build (fuzz targets in its fuzz/)
#   TSAN_BUILD_DIR=build-tsan  the TSan build
#   EMOE_PHASES="gcc asan fuzz tsan"  the phases to run (fuzz needs asan's build)
#   EMOE_CLANG=0               only the gcc phase (no clang)
#   FUZZ_SECONDS=60            per fuzz target; 0 skips phase 3
#   FUZZ_RSS_MB=2048           libFuzzer's -rss_limit_mb
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
ASAN_BUILD_DIR=${ASAN_BUILD_DIR:-build-asan}
TSAN_BUILD_DIR=${TSAN_BUILD_DIR:-build-tsan}
FUZZ_SECONDS=${FUZZ_SECONDS:-60}
FUZZ_RSS_MB=${FUZZ_RSS_MB:-2048}
JOBS=$(nproc)
rc=0
summary=()
t0=$(date +%s)

# phase NAME COMMAND...: runs it, records its duration and result.
phase() {
  local name=$1 start=$SECONDS prc=0
  shift
  echo "test: --- $name"
  "$@" || prc=$?
  local line
  line=$(printf '%-6s %5d s  %s' "$name" $((SECONDS - start)) "$([ $prc = 0 ] && echo ok || echo "FAILED ($prc)")")
  echo "test: $line"
  summary+=("$line")
  [ $prc = 0 ] || [ $rc != 0 ] || rc=$prc
}

# Inside the phases every step ends the phase when it fails ("|| return"): errexit does not
# apply in a function called from a "||" list.
gcc_phase() {
  bash scripts/setup.sh || return
  ctest --test-dir "$BUILD_DIR" --output-on-failure -j "$JOBS" --timeout 600
}

# clang_configure DIR SANITIZERS [cmake args...]: -O1 with line tables (readable reports, quick
# builds), no benchmarks; ccache when installed.
clang_configure() {
  local dir=$1 san=$2
  shift 2
  local launcher=()
  if command -v ccache >/dev/null; then launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache); fi
  cmake -S . -B "$dir" -G Ninja -DCMAKE_CXX_COMPILER=clang++-14 "${launcher[@]}" \
    -DCMAKE_BUILD_TYPE=Debug "-DCMAKE_CXX_FLAGS_DEBUG=-O1 -gline-tables-only" \
    -DCMAKE_CXX_FLAGS=-Wthread-safety -DEMOE_WERROR=ON -DEMOE_SANITIZE="$san" \
    -DEMOE_BUILD_TESTS=ON -DEMOE_BUILD_BENCH=OFF "$@" >/dev/null
}

# check_reports DIR: fails, printing them, if sanitizer reports were written into DIR.
check_reports() {
  local files
  files=$(find "$1" -type f -name 'report.*' 2>/dev/null | sort)
  [ -n "$files" ] || return 0
  echo "test: sanitizer reports:" >&2
  for f in $files; do
    echo "==== $f" >&2
    head -c 20000 "$f" >&2
  done
  return 1
}

# Whether LeakSanitizer works here: it stops the world with ptrace-like calls, which some
# containers refuse. A leak-free ASan binary must exit 0 with leak checking on.
LEAKS=
lsan_works() {
  local probe
  probe=$(mktemp)
  echo 'int main() { return 0; }' | clang++-14 -fsanitize=address -x c++ - -o "$probe" 2>/dev/null &&
    ASAN_OPTIONS=detect_leaks=1 "$probe" >/dev/null 2>&1
  local lrc=$?
  rm -f "$probe"
  return $lrc
}

# ":external_symbolizer_path=..." when llvm-symbolizer is installed (package llvm-14).
symbolizer() {
  local s=/usr/lib/llvm-14/bin/llvm-symbolizer
  [ ! -x $s ] || echo ":external_symbolizer_path=$s"
}

# asan_env [REPORT_DIR]: the ASan/UBSan/LSan options, reports into REPORT_DIR/report.PID when
# given (else on stderr). handle_segv=0: tests that fault on purpose (EXPECT_DEATH of a
# PROT_NONE access) must not leave a report; a real SIGSEGV still fails its test.
asan_env() {
  if [ -z "$LEAKS" ]; then
    LEAKS=1
    if ! lsan_works; then
      LEAKS=0
      echo "test: LeakSanitizer does not work in this environment (ptrace refused?): detect_leaks=0"
    fi
  fi
  local log=""
  [ -z "${1:-}" ] || log=":log_path=$1/report"
  log="$(symbolizer)$log"
  export ASAN_OPTIONS="halt_on_error=1:detect_leaks=$LEAKS:handle_segv=0:check_initialization_order=1:strict_init_order=1$log"
  export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1$log"
  export LSAN_OPTIONS="suppressions=$PWD/scripts/lsan.supp:print_suppressions=0"
}

asan_phase() {
  local reports
  reports=$(realpath -m "$ASAN_BUILD_DIR/sanitizer-reports")
  clang_configure "$ASAN_BUILD_DIR" address,undefined -DEMOE_BUILD_TOOLS=ON \
    -DEMOE_BUILD_FUZZERS=ON || return
  rm -rf "$reports" && mkdir -p "$reports"
  (
    asan_env "$reports"  # the build runs the tests to list them (gtest_discover_tests)
    cmake --build "$ASAN_BUILD_DIR" -j "$JOBS" || exit
    crc=0
    ctest --test-dir "$ASAN_BUILD_DIR" --output-on-failure -j "$JOBS" --timeout 900 || crc=$?
    check_reports "$reports" || crc=1
    exit $crc
  )
}

# fuzz_one NAME: runs fuzz target NAME for FUZZ_SECONDS on a scratch copy of its corpus (the
# committed one never grows); its output in its work directory.
fuzz_one() {
  local name=$1 bin="$ASAN_BUILD_DIR/fuzz/$1" work="$ASAN_BUILD_DIR/fuzz-work/$1"
  rm -rf "$work" && mkdir -p "$work/corpus" && cp -r "fuzz/corpus/$name/." "$work/corpus/" ||
    return
  local frc=0 dict=()
  [ ! -f "fuzz/$name.dict" ] || dict=(-dict="fuzz/$name.dict")
  "$bin" -max_total_time="$FUZZ_SECONDS" -rss_limit_mb="$FUZZ_RSS_MB" -timeout=30 -max_len=16384 \
    "${dict[@]}" -artifact_prefix="$work/" -print_final_stats=1 "$work/corpus" >"$work/log" 2>&1 ||
    frc=$?
  local found
  found=$(find "$work" -maxdepth 1 -type f \( -name 'crash-*' -o -name 'leak-*' -o -name 'oom-*' \
    -o -name 'timeout-*' \) | head -1)
  if [ $frc != 0 ] || [ -n "$found" ]; then
    echo "test: fuzz $name FAILED (exit $frc); the finding and the end of $work/log:"
    grep -m 5 -E 'ERROR|what\(\)|FUZZ_CHECK|runtime error' "$work/log" || true
    tail -n 40 "$work/log"
    if [ -n "$found" ]; then
      echo "test: the input ($(stat -c %s "$found") bytes), base64: $(head -c 65536 "$found" | base64 -w0)"
      echo "test: reproduce: $bin $found"
    fi
    return 1
  fi
  echo "test: fuzz $name: $(grep -o 'number_of_executed_units: *[0-9]*' "$work/log" |
    grep -o '[0-9]*$') runs in $FUZZ_SECONDS s, no crash"
}

fuzz_phase() {
  local names=()
  for d in fuzz/corpus/*/; do names+=("$(basename "$d")"); done
  (
    asan_env  # libFuzzer prints the report with the input that caused it
    export -f fuzz_one
    export ASAN_BUILD_DIR FUZZ_SECONDS FUZZ_RSS_MB
    # One target per core at a time.
    printf '%s\n' "${names[@]}" | xargs -P "$JOBS" -I{} bash -c 'fuzz_one {}'
  )
}

tsan_phase() {
  local reports
  reports=$(realpath -m "$TSAN_BUILD_DIR/sanitizer-reports")
  clang_configure "$TSAN_BUILD_DIR" thread -DEMOE_BUILD_TOOLS=OFF || return
  rm -rf "$reports" && mkdir -p "$reports"
  (
    export TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1:suppressions=$PWD/scripts/tsan.supp$(symbolizer):log_path=$reports/report"
    cmake --build "$TSAN_BUILD_DIR" -j "$JOBS" --target threaded_tests || exit
    crc=0
    ctest --test-dir "$TSAN_BUILD_DIR" -L threads --output-on-failure -j "$JOBS" --timeout 1200 ||
      crc=$?
    check_reports "$reports" || crc=1
    exit $crc
  )
}

want() { [[ " $PHASES " == *" $1 "* ]]; }
PHASES=${EMOE_PHASES:-gcc asan fuzz tsan}
[ "${EMOE_CLANG:-1}" != 0 ] || PHASES=gcc
[ "$FUZZ_SECONDS" != 0 ] || PHASES=${PHASES/fuzz/}
if [ "$PHASES" != gcc ] && ! command -v clang++-14 >/dev/null; then
  echo "test: clang++-14 not found: install clang-14 (scripts/setup.sh does) or set EMOE_CLANG=0" >&2
  exit 1
fi
if want gcc; then phase gcc gcc_phase; fi
if want asan; then phase asan asan_phase; fi
if want fuzz; then phase fuzz fuzz_phase; fi  # uses the asan build's fuzz targets
if want tsan; then phase tsan tsan_phase; fi
echo "test: summary (total $(($(date +%s) - t0)) s):"
printf 'test:   %s\n' "${summary[@]}"
exit $rc
