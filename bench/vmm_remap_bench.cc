// vmm_remap_bench: what remapping costs compared with copying the same bytes, per page kind.
//
// For each page kind the host offers (hugetlb 2 MiB, shmem THP 2 MiB, 4 KiB; one arena per kind,
// created and filled once before anything is timed) and each size S of 64 MiB, 256 MiB, 1 GiB:
//   copy          memcpy of S bytes from the arena (faulted) into a faulted buffer: the baseline
//   map_populate  Map(populate, read-write) of an extent whose pages already hold data (the
//                 zero-copy attach); the Unmap after it is not timed
//   lazy_touch    Map without populate, then write one byte per 4 KiB (first-touch faults)
//   move          Reservation::Move of a populated mapping between two reservations (mremap: page
//                 tables move, data does not), back and forth
//   unmap         Unmap of a populated mapping (back to PROT_NONE); the Map before it is not timed
// Slots of 2, 4, 8 and 16 MiB (the expert-redistribution primitive), kSlots per reservation:
//   slot_copy     memcpy of one slot's bytes
//   slot_remap    show another extent in a slot: Unmap + Map(populate, read-only)
//   slot_swap     Reservation::Swap of two slots (three mremaps through a temporary reservation)
// And the buddy allocator's throughput (pure metadata): allocator/random_alloc_free.
//
// After the runs it prints the copy/remap ratio table (memcpy time / operation time, medians of
// this run) per kind and size, the slot table, and whether the target holds: map+populate of
// 1 GiB of 2 MiB hugetlb pages at least 100x faster than copying it.
//
// Sizes that do not fit (the hugetlb pool, or the memory available for the other kinds) are
// skipped and named; page kinds the host does not offer are listed with the arena's reason.
//
//   VMM_BENCH_MAX_MB=1024   largest size in MiB (64, 256, 1024 up to it; slots up to it too)
//   plus the usual --benchmark_* flags (e.g. --benchmark_filter=/1024MiB, --benchmark_repetitions)
//
// Exit status: 0 when every registered benchmark ran, 1 when one failed (its error is printed).
#include "vmm_remap_bench.h"

#include <benchmark/benchmark.h>

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "vmm/vmm.h"

namespace emoe::bench::remap {

bool LoadConfig(Config* c, std::string* error) {
  if (const char* env = std::getenv("VMM_BENCH_MAX_MB"); env != nullptr && *env != '\0') {
    char* end = nullptr;
    const unsigned long long mb = std::strtoull(env, &end, 10);
    if (*end != '\0' || mb == 0 || mb > (uint64_t{1} << 30)) {
      *error = std::string("VMM_BENCH_MAX_MB='") + env + "' is not a positive number of MiB";
      return false;
    }
    c->max_bytes = mb * kMiB;
  }
  for (uint64_t s : kSizes) {
    if (s <= c->max_bytes) c->sizes.push_back(s);
  }
  for (uint64_t s : kSlotSizes) {
    if (s <= c->max_bytes) c->slot_sizes.push_back(s);
  }
  for (uint64_t s : c->sizes) c->copy_buffer_bytes = std::max(c->copy_buffer_bytes, s);
  for (uint64_t s : c->slot_sizes) {
    c->copy_buffer_bytes = std::max(c->copy_buffer_bytes, s);
    c->slot_extent_bytes += kExtentsPerSlotSize * s;
  }
  if (c->copy_buffer_bytes == 0) {
    *error = "VMM_BENCH_MAX_MB is below the smallest size benchmarked (2 MiB)";
    return false;
  }
  return true;
}

namespace {

// A field of /proc/meminfo in bytes ("MemAvailable"), or -1.
int64_t MeminfoBytes(const std::string& field) {
  std::istringstream in(vmm::ReadSysFile("/proc/meminfo"));
  std::string line;
  const std::string key = field + ":";
  while (std::getline(in, line)) {
    if (line.rfind(key, 0) == 0) return std::atoll(line.c_str() + key.size()) * 1024;
  }
  return -1;
}

// Chooses which sizes of `kind` fit in `budget_bytes` and records the ones left out with `why`.
// The arena holds the largest size (smaller sizes use its prefix) plus, if they still fit, the
// slot extents: the largest size comes first because the 1 GiB row carries the target.
void PlanSizes(const Config& c, KindSetup* k, uint64_t budget_bytes, const std::string& why) {
  uint64_t largest = 0;
  for (uint64_t s : c.sizes) {
    if (s <= budget_bytes) {
      k->sizes.push_back(s);
      largest = s;
    } else {
      Skipped().push_back(k->name + " " + SizeName(s) + ": does not fit: " + why);
    }
  }
  k->slots = !c.slot_sizes.empty() && largest + c.slot_extent_bytes <= budget_bytes;
  if (!c.slot_sizes.empty() && !k->slots) {
    Skipped().push_back(k->name + " slots: " + SizeName(c.slot_extent_bytes) +
                        " more do not fit: " + why);
  }
}

// Creates and fills the arena of one kind. Adds the kind to Kinds(), or its reason to
// Unavailable(). `budget_bytes` is what the arena may take (huge page pool or free memory).
void SetUpKind(const Config& c, vmm::PageKind kind, vmm::PageSizePolicy policy,
               uint64_t budget_bytes, const std::string& budget_why) {
  auto k = std::make_unique<KindSetup>();
  k->kind = kind;
  k->name = vmm::PageKindName(kind);
  const size_t skipped_before = Skipped().size();
  PlanSizes(c, k.get(), budget_bytes, budget_why);
  uint64_t capacity =
      (k->slots ? c.slot_extent_bytes : 0) + (k->sizes.empty() ? 0 : k->sizes.back());
  if (capacity == 0) {
    // Nothing fits the budget: ask for the full arena anyway so that the arena says why.
    capacity = c.slot_extent_bytes + (c.sizes.empty() ? 0 : c.sizes.back());
  }

  vmm::ArenaOptions o;
  o.name = "bench." + k->name;
  o.capacity_bytes = capacity;
  o.page_size = policy;
  const int64_t thp_before = MeminfoBytes("ShmemHugePages");
  auto arena = vmm::Arena::Create(o);
  if (!arena.ok()) {
    Skipped().resize(skipped_before);  // the whole kind is out: its sizes need no lines
    Unavailable().push_back(k->name + ": " + arena.status().ToString());
    return;
  }
  if (k->sizes.empty() && !k->slots) {
    Unavailable().push_back(k->name + ": no size fits (" + budget_why + ")");
    return;
  }
  k->arena = *arena;
  if (k->arena->direct_map() == nullptr) {
    Unavailable().push_back(k->name + ": the arena has no direct map to fill");
    return;
  }
  if (!k->sizes.empty()) {
    auto big = k->arena->Allocate(k->sizes.back());
    if (!big.ok()) {
      Unavailable().push_back(k->name + ": " + big.status().ToString());
      return;
    }
    k->big = *big;
  }
  if (k->slots) {
    for (uint64_t s : c.slot_sizes) {
      std::vector<vmm::Extent> extents;
      for (int i = 0; i < kExtentsPerSlotSize; ++i) {
        auto e = k->arena->Allocate(s);
        if (!e.ok()) {
          Unavailable().push_back(k->name + ": " + e.status().ToString());
          return;
        }
        extents.push_back(*e);
      }
      k->slot_extents.push_back(std::move(extents));
    }
  }
  // Every page holds data before anything is timed: mapping then measures page tables, not page
  // allocation, as when attaching weights that are already loaded.
  std::memset(k->arena->direct_map(), 0x5a, k->arena->capacity_bytes());
  std::string contents;
  for (uint64_t s : k->sizes) contents += (contents.empty() ? "" : " ") + SizeName(s);
  if (k->slots) contents += contents.empty() ? "slots" : " and slots";
  std::printf("%-13s arena of %s for %s", k->name.c_str(),
              SizeName(k->arena->capacity_bytes()).c_str(), contents.c_str());
  if (kind == vmm::PageKind::kShmemThp2M && thp_before >= 0) {
    // THP is advice: show that the kernel really gave huge pages.
    const int64_t huge = MeminfoBytes("ShmemHugePages") - thp_before;
    std::printf(", %s of it in shmem huge pages%s", SizeName(std::max<int64_t>(huge, 0)).c_str(),
                huge < static_cast<int64_t>(k->arena->capacity_bytes()) / 2
                    ? " (WARNING: mostly 4 KiB pages, the THP rows measure those)"
                    : "");
  }
  std::printf("\n");
  Kinds().push_back(std::move(k));
}

}  // namespace

bool SetUp(const Config& c) {
  const vmm::HugePagePool pool = vmm::ReadHugePagePool(-1);
  const vmm::ShmemThpMode thp = vmm::ReadShmemThpMode();
  std::printf(
      "host: hugetlb pool %ld pages of 2 MiB (%ld available), shmem THP '%s' (2048kB: '%s'),"
      " vm.max_map_count %ld, VMM_BENCH_MAX_MB=%" PRIu64 "\n",
      pool.total, std::max(0L, pool.available()), thp.global.c_str(), thp.size_2m.c_str(),
      vmm::ReadMaxMapCount(), c.max_bytes / kMiB);

  const int64_t available = MeminfoBytes("MemAvailable");
  uint64_t memory_budget =
      available < 0
          ? UINT64_MAX
          : static_cast<uint64_t>(std::max<int64_t>(
                0, available - static_cast<int64_t>(kMemoryMarginBytes + c.copy_buffer_bytes)));
  // Sizes are whole MiB multiples of 2 MiB, as aligned_alloc requires.
  CopyBuffer().reset(
      static_cast<uint8_t*>(std::aligned_alloc(vmm::kHugePageSize, c.copy_buffer_bytes)));
  if (CopyBuffer() == nullptr) return false;
  std::memset(CopyBuffer().get(), 1, c.copy_buffer_bytes);  // faulted in before anything is timed

  const uint64_t huge_budget =
      static_cast<uint64_t>(std::max(0L, pool.available())) * vmm::kHugePageSize;
  SetUpKind(c, vmm::PageKind::kHugetlb2M, vmm::PageSizePolicy::kHugetlb, huge_budget,
            "the hugetlb pool has " + std::to_string(std::max(0L, pool.available())) +
                " huge pages (" + SizeName(huge_budget) + ") available; raise vm.nr_hugepages");
  const std::pair<vmm::PageKind, vmm::PageSizePolicy> others[] = {
      {vmm::PageKind::kShmemThp2M, vmm::PageSizePolicy::kShmemThp},
      {vmm::PageKind::kSmall4K, vmm::PageSizePolicy::kSmall}};
  for (auto [kind, policy] : others) {
    SetUpKind(c, kind, policy, memory_budget,
              SizeName(memory_budget) + " of memory left for it (MemAvailable less " +
                  SizeName(kMemoryMarginBytes) + " and the copy buffer)");
    if (!Kinds().empty() && Kinds().back()->kind == kind) {
      memory_budget -= std::min(memory_budget, Kinds().back()->arena->capacity_bytes());
    }
  }
  for (const auto& u : Unavailable())
    std::printf("page kind unavailable, skipped: %s\n", u.c_str());
  for (const auto& s : Skipped()) std::printf("skipped: %s\n", s.c_str());
  return true;
}

}  // namespace emoe::bench::remap

int main(int argc, char** argv) {
  namespace remap = emoe::bench::remap;
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  remap::Config config;
  std::string error;
  if (!remap::LoadConfig(&config, &error)) {
    std::fprintf(stderr, "vmm_remap_bench: %s\n", error.c_str());
    return 1;
  }
  if (!remap::SetUp(config)) {
    std::fprintf(stderr, "vmm_remap_bench: cannot allocate a copy buffer of %s\n",
                 remap::SizeName(config.copy_buffer_bytes).c_str());
    return 1;
  }
  remap::Register(config);
  remap::CollectingReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  const int failed = remap::PrintSummary(config);
  std::printf("\n%s", vmm::Report().c_str());
  benchmark::Shutdown();
  return failed == 0 ? 0 : 1;
}
