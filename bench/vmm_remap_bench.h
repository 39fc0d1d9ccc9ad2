// bench/vmm_remap_bench.h: what the three files of vmm_remap_bench share (see
// vmm_remap_bench.cc for what it measures): the configuration, the arenas of each page kind
// (set up in vmm_remap_bench.cc), the benchmarks (vmm_remap_ops.cc) and the results and summary
// (vmm_remap_summary.cc).
//
// Thread safety: the benchmarks run one at a time on the main thread; so does everything here.
#ifndef BENCH_VMM_REMAP_BENCH_H_
#define BENCH_VMM_REMAP_BENCH_H_

#include <benchmark/benchmark.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "vmm/vmm.h"

namespace emoe::bench::remap {

using Clock = std::chrono::steady_clock;

constexpr uint64_t kMiB = uint64_t{1} << 20;
constexpr uint64_t kSizes[] = {64 * kMiB, 256 * kMiB, 1024 * kMiB};
constexpr uint64_t kSlotSizes[] = {2 * kMiB, 4 * kMiB, 8 * kMiB, 16 * kMiB};
constexpr int kSlots = 8;         // slots mapped in the slot reservation
constexpr int kSpareExtents = 4;  // extents per slot size that wait to be remapped into a slot
constexpr int kExtentsPerSlotSize = kSlots + kSpareExtents;
constexpr uint64_t kTouchStrideBytes = 4096;  // lazy_touch writes one byte per this many
// Memory left to the rest of the host when sizing the non-hugetlb arenas.
constexpr uint64_t kMemoryMarginBytes = 1024 * kMiB;

// ---------------------------------------------------------------------------------------------
// Configuration and host facts.

struct Config {
  uint64_t max_bytes = 1024 * kMiB;  // VMM_BENCH_MAX_MB
  std::vector<uint64_t> sizes;       // kSizes up to max_bytes
  std::vector<uint64_t> slot_sizes;  // kSlotSizes up to max_bytes
  uint64_t copy_buffer_bytes = 0;    // the largest of the above
  uint64_t slot_extent_bytes = 0;    // all slot extents of one arena
};

// Reads VMM_BENCH_MAX_MB. False with `error` set when it is not a positive number of MiB.
bool LoadConfig(Config* c, std::string* error);

inline std::string SizeName(uint64_t bytes) { return std::to_string(bytes / kMiB) + "MiB"; }

// ---------------------------------------------------------------------------------------------
// The arenas: one per page kind, created and filled once.

struct KindSetup {
  vmm::PageKind kind = vmm::PageKind::kSmall4K;
  std::string name;                   // PageKindName(kind)
  std::shared_ptr<vmm::Arena> arena;  // owns the pages below
  std::vector<uint64_t> sizes;        // sizes benchmarked for this kind, ascending
  bool slots = false;                 // slot benchmarks registered for this kind
  vmm::Extent big;                    // sizes.back() bytes; smaller sizes use its prefix
  // Per entry of Config::slot_sizes: kExtentsPerSlotSize extents of that size.
  std::vector<std::vector<vmm::Extent>> slot_extents;
};

inline std::vector<std::unique_ptr<KindSetup>>& Kinds() {
  static std::vector<std::unique_ptr<KindSetup>> kinds;
  return kinds;
}

// Destination of every memcpy baseline: 2 MiB aligned like the arenas' mappings, faulted in
// once at setup.
struct FreeDeleter {
  void operator()(uint8_t* p) const { std::free(p); }
};
inline std::unique_ptr<uint8_t[], FreeDeleter>& CopyBuffer() {
  static std::unique_ptr<uint8_t[], FreeDeleter> buffer;
  return buffer;
}

// Lines for the summary: kinds that could not be had, sizes left out, notes on the setup.
inline std::vector<std::string>& Unavailable() {
  static std::vector<std::string> v;
  return v;
}
inline std::vector<std::string>& Skipped() {
  static std::vector<std::string> v;
  return v;
}

// Prints the host's page-size facts, faults the copy buffer in and creates the arenas. False
// when the copy buffer cannot be allocated.
bool SetUp(const Config& c);

// ---------------------------------------------------------------------------------------------
// Benchmarks: registers every benchmark of every kind set up.
void Register(const Config& c);

// ---------------------------------------------------------------------------------------------
// Results and the summary.

// The console output, plus every iteration run recorded under its registered name.
class CollectingReporter : public benchmark::ConsoleReporter {
 public:
  void ReportRuns(const std::vector<Run>& runs) override;
};

// Prints the ratio tables, the target and what was left out. Returns the number of benchmarks
// that failed.
int PrintSummary(const Config& c);

}  // namespace emoe::bench::remap

#endif  // BENCH_VMM_REMAP_BENCH_H_
