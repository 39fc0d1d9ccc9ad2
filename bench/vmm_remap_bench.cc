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
#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "vmm/vmm.h"

namespace {

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

std::string SizeName(uint64_t bytes) { return std::to_string(bytes / kMiB) + "MiB"; }

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

std::vector<std::unique_ptr<KindSetup>>& Kinds() {
  static std::vector<std::unique_ptr<KindSetup>> kinds;
  return kinds;
}

// Destination of every memcpy baseline: 2 MiB aligned like the arenas' mappings, faulted in
// once at setup.
struct FreeDeleter {
  void operator()(uint8_t* p) const { std::free(p); }
};
std::unique_ptr<uint8_t[], FreeDeleter>& CopyBuffer() {
  static std::unique_ptr<uint8_t[], FreeDeleter> buffer;
  return buffer;
}

// Lines for the summary: kinds that could not be had, sizes left out, notes on the setup.
std::vector<std::string>& Unavailable() {
  static std::vector<std::string> v;
  return v;
}
std::vector<std::string>& Skipped() {
  static std::vector<std::string> v;
  return v;
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

// Prints the host's page-size facts, faults the copy buffer in and creates the arenas. False
// when the copy buffer cannot be allocated.
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

// ---------------------------------------------------------------------------------------------
// Benchmarks.

void Fail(benchmark::State& state, const vmm::Status& s) {
  state.SkipWithError(s.ToString().c_str());
}

double Seconds(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

// After a benchmark: the structures it used must still be consistent.
void Verify(benchmark::State& state, const vmm::Reservation& r, const vmm::Arena& a) {
  if (state.error_occurred()) return;
  if (vmm::Status s = r.CheckInvariants(); !s.ok()) return Fail(state, s);
  if (vmm::Status s = a.CheckInvariants(); !s.ok()) return Fail(state, s);
}

// A reservation named for /proc/PID/maps.
vmm::StatusOr<std::unique_ptr<vmm::Reservation>> Reserve(uint64_t bytes, const std::string& name) {
  return vmm::Reservation::Reserve(bytes, vmm::kHugePageSize, nullptr, "bench." + name);
}

constexpr vmm::MapOptions kPopulateReadWrite{vmm::Protection::kReadWrite, true};
constexpr vmm::MapOptions kLazyReadWrite{vmm::Protection::kReadWrite, false};
// Instances map expert weights read-only.
constexpr vmm::MapOptions kPopulateRead{vmm::Protection::kRead, true};

// memcpy of `size` bytes of the arena into the copy buffer. One untimed copy first: on this VM
// the first touch of a buffer after heavy map/unmap churn (the benchmarks before this one) runs
// up to 10x slower, a hypervisor effect that says nothing about copying.
void CopyBytesOf(benchmark::State& state, const uint8_t* src, uint64_t size) {
  uint8_t* dst = CopyBuffer().get();
  std::memcpy(dst, src, size);
  for (auto _ : state) {
    std::memcpy(dst, src, size);
    benchmark::DoNotOptimize(dst);
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * size));
}

void Copy(benchmark::State& state, KindSetup* k, uint64_t size) {
  CopyBytesOf(state, static_cast<const uint8_t*>(k->big.data()), size);
}

void MapPopulate(benchmark::State& state, KindSetup* k, uint64_t size) {
  auto r = Reserve(size, "map_populate");
  if (!r.ok()) return Fail(state, r.status());
  vmm::Reservation& res = **r;
  for (auto _ : state) {
    const auto t0 = Clock::now();
    vmm::Status s = res.Map(0, k->big, 0, size, kPopulateReadWrite);
    const auto t1 = Clock::now();
    if (!s.ok()) return Fail(state, s);
    state.SetIterationTime(Seconds(t0, t1));
    if (!(s = res.Unmap(0)).ok()) return Fail(state, s);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * size));
  Verify(state, res, *k->arena);
}

void LazyTouch(benchmark::State& state, KindSetup* k, uint64_t size) {
  auto r = Reserve(size, "lazy_touch");
  if (!r.ok()) return Fail(state, r.status());
  vmm::Reservation& res = **r;
  for (auto _ : state) {
    const auto t0 = Clock::now();
    vmm::Status s = res.Map(0, k->big, 0, size, kLazyReadWrite);
    if (!s.ok()) return Fail(state, s);
    volatile uint8_t* p = res.base();
    for (uint64_t off = 0; off < size; off += kTouchStrideBytes) p[off] = 0x5a;
    const auto t1 = Clock::now();
    state.SetIterationTime(Seconds(t0, t1));
    if (!(s = res.Unmap(0)).ok()) return Fail(state, s);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * size));
  Verify(state, res, *k->arena);
}

// One Move per iteration, alternately from reservation a to b and back.
void Move(benchmark::State& state, KindSetup* k, uint64_t size) {
  auto a = Reserve(size, "move_a");
  if (!a.ok()) return Fail(state, a.status());
  auto b = Reserve(size, "move_b");
  if (!b.ok()) return Fail(state, b.status());
  vmm::Reservation* at = a->get();
  vmm::Reservation* other = b->get();
  if (vmm::Status s = at->Map(0, k->big, 0, size, kPopulateReadWrite); !s.ok()) {
    return Fail(state, s);
  }
  for (auto _ : state) {
    if (vmm::Status s = at->Move(0, *other, 0); !s.ok()) return Fail(state, s);
    std::swap(at, other);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * size));
  // The mapping must have arrived intact: same pages, still populated, still holding the data.
  const std::optional<vmm::Mapping> m = at->MappingAt(0);
  if (!m || m->length != size || m->extent.offset_bytes() != k->big.offset_bytes() ||
      at->base()[size - 1] != 0x5a) {
    state.SkipWithError("move: the mapping did not arrive intact");
  }
  Verify(state, *at, *k->arena);
  Verify(state, *other, *k->arena);
}

void Unmap(benchmark::State& state, KindSetup* k, uint64_t size) {
  auto r = Reserve(size, "unmap");
  if (!r.ok()) return Fail(state, r.status());
  vmm::Reservation& res = **r;
  for (auto _ : state) {
    vmm::Status s = res.Map(0, k->big, 0, size, kPopulateReadWrite);
    if (!s.ok()) return Fail(state, s);
    const auto t0 = Clock::now();
    s = res.Unmap(0);
    const auto t1 = Clock::now();
    if (!s.ok()) return Fail(state, s);
    state.SetIterationTime(Seconds(t0, t1));
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * size));
  Verify(state, res, *k->arena);
}

void SlotCopy(benchmark::State& state, KindSetup* k, size_t slot_index, uint64_t slot) {
  CopyBytesOf(state, static_cast<const uint8_t*>(k->slot_extents[slot_index][0].data()), slot);
}

// kSlots slots hold extents 0..kSlots-1; each iteration shows a spare extent in the next slot,
// round robin (Unmap + Map populated), and the extent it replaces becomes a spare: what moving an
// expert into a slot costs once its pages are in the arena.
void SlotRemap(benchmark::State& state, KindSetup* k, size_t slot_index, uint64_t slot) {
  const std::vector<vmm::Extent>& extents = k->slot_extents[slot_index];
  auto r = Reserve(kSlots * slot, "slot_remap");
  if (!r.ok()) return Fail(state, r.status());
  vmm::Reservation& res = **r;
  std::vector<int> in_slot(kSlots), spare;
  for (int i = 0; i < kSlots; ++i) {
    in_slot[i] = i;
    if (vmm::Status s = res.Map(i * slot, extents[i], 0, 0, kPopulateRead); !s.ok()) {
      return Fail(state, s);
    }
  }
  for (int i = kSlots; i < kExtentsPerSlotSize; ++i) spare.push_back(i);
  int i = 0;
  size_t next_spare = 0;
  for (auto _ : state) {
    const int incoming = spare[next_spare];
    vmm::Status s = res.Unmap(i * slot);
    if (s.ok()) s = res.Map(i * slot, extents[incoming], 0, 0, kPopulateRead);
    if (!s.ok()) return Fail(state, s);
    spare[next_spare] = in_slot[i];
    in_slot[i] = incoming;
    next_spare = (next_spare + 1) % spare.size();
    i = (i + 1) % kSlots;
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * slot));
  for (int j = 0; j < kSlots && !state.error_occurred(); ++j) {
    const std::optional<vmm::Mapping> m = res.MappingAt(j * slot);
    if (!m || m->extent.offset_bytes() != extents[in_slot[j]].offset_bytes()) {
      state.SkipWithError("slot_remap: a slot does not show the extent it was given");
    }
  }
  Verify(state, res, *k->arena);
}

void SlotSwap(benchmark::State& state, KindSetup* k, size_t slot_index, uint64_t slot) {
  const std::vector<vmm::Extent>& extents = k->slot_extents[slot_index];
  auto r = Reserve(2 * slot, "slot_swap");
  if (!r.ok()) return Fail(state, r.status());
  vmm::Reservation& res = **r;
  for (int i = 0; i < 2; ++i) {
    if (vmm::Status s = res.Map(i * slot, extents[i], 0, 0, kPopulateRead); !s.ok()) {
      return Fail(state, s);
    }
  }
  for (auto _ : state) {
    if (vmm::Status s = res.Swap(0, slot); !s.ok()) return Fail(state, s);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * 2 * slot));
  const std::optional<vmm::Mapping> first = res.MappingAt(0);
  const int expect = state.iterations() % 2 == 0 ? 0 : 1;
  if (!state.error_occurred() &&
      (!first || first->extent.offset_bytes() != extents[expect].offset_bytes())) {
    state.SkipWithError("slot_swap: slot 0 does not show the extent expected after the swaps");
  }
  Verify(state, res, *k->arena);
}

// Random Allocate/Free of 1..1024 pages on a 2^20-page buddy allocator, up to 512 extents live:
// pure metadata, no memory touched. One operation per iteration.
void Allocator(benchmark::State& state) {
  vmm::BuddyAllocator a(uint64_t{1} << 20);
  std::mt19937_64 rng(1);
  std::vector<std::pair<uint64_t, uint64_t>> live;
  live.reserve(512);
  for (auto _ : state) {
    if (live.size() < 512 && (live.empty() || rng() % 2 == 0)) {
      const uint64_t n = 1 + rng() % 1024;
      auto r = a.Allocate(n);
      if (!r.ok()) return Fail(state, r.status());
      live.emplace_back(*r, n);
    } else {
      const size_t i = rng() % live.size();
      a.Free(live[i].first, live[i].second);
      live[i] = live.back();
      live.pop_back();
    }
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
  if (vmm::Status s = a.CheckInvariants(); !s.ok()) Fail(state, s);
}

void Register(const Config& c) {
  for (auto& kp : Kinds()) {
    KindSetup* k = kp.get();
    for (uint64_t size : k->sizes) {
      const std::string suffix = "/" + k->name + "/" + SizeName(size);
      benchmark::RegisterBenchmark(("copy" + suffix).c_str(), Copy, k, size)
          ->Unit(benchmark::kMillisecond);
      benchmark::RegisterBenchmark(("map_populate" + suffix).c_str(), MapPopulate, k, size)
          ->UseManualTime()
          ->Unit(benchmark::kMillisecond);
      benchmark::RegisterBenchmark(("lazy_touch" + suffix).c_str(), LazyTouch, k, size)
          ->UseManualTime()
          ->Unit(benchmark::kMillisecond);
      benchmark::RegisterBenchmark(("move" + suffix).c_str(), Move, k, size)
          ->Unit(benchmark::kMillisecond);
      benchmark::RegisterBenchmark(("unmap" + suffix).c_str(), Unmap, k, size)
          ->UseManualTime()
          ->Unit(benchmark::kMillisecond);
    }
    if (!k->slots) continue;
    for (size_t i = 0; i < c.slot_sizes.size(); ++i) {
      const uint64_t slot = c.slot_sizes[i];
      const std::string suffix = "/" + k->name + "/" + SizeName(slot);
      benchmark::RegisterBenchmark(("slot_copy" + suffix).c_str(), SlotCopy, k, i, slot)
          ->Unit(benchmark::kMicrosecond);
      benchmark::RegisterBenchmark(("slot_remap" + suffix).c_str(), SlotRemap, k, i, slot)
          ->Unit(benchmark::kMicrosecond);
      benchmark::RegisterBenchmark(("slot_swap" + suffix).c_str(), SlotSwap, k, i, slot)
          ->Unit(benchmark::kMicrosecond);
    }
  }
  benchmark::RegisterBenchmark("allocator/random_alloc_free", Allocator);
}

// ---------------------------------------------------------------------------------------------
// Results and the summary.

struct Result {
  std::vector<double> seconds;  // real (or manual) time per iteration, one entry per repetition
  double items_per_second = 0;
  std::string error;
};

std::map<std::string, Result>& Results() {  // registered benchmark name -> its runs
  static std::map<std::string, Result> r;
  return r;
}

// The console output, plus every iteration run recorded under its registered name.
class CollectingReporter : public benchmark::ConsoleReporter {
 public:
  void ReportRuns(const std::vector<Run>& runs) override {
    for (const Run& run : runs) {
      if (run.run_type != Run::RT_Iteration) continue;  // aggregates are recomputed below
      Result& r = Results()[run.run_name.function_name];
      if (run.error_occurred) {
        r.error = run.error_message;
      } else if (run.iterations > 0) {
        r.seconds.push_back(run.real_accumulated_time / static_cast<double>(run.iterations));
        if (auto it = run.counters.find("items_per_second"); it != run.counters.end()) {
          r.items_per_second = it->second.value;
        }
      }
    }
    ConsoleReporter::ReportRuns(runs);
  }
};

// Median seconds per iteration of a benchmark of this run, or 0 if it did not run.
double Median(const std::string& name) {
  auto it = Results().find(name);
  if (it == Results().end() || it->second.seconds.empty()) return 0;
  std::vector<double> v = it->second.seconds;
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
}

std::string Ratio(double copy, double op) {
  if (copy <= 0 || op <= 0) return "-";
  char b[32];
  std::snprintf(b, sizeof(b), copy / op >= 10 ? "%.0fx" : "%.2fx", copy / op);
  return b;
}

std::string Ms(double seconds) {
  if (seconds <= 0) return "-";
  char b[32];
  std::snprintf(b, sizeof(b), seconds < 1e-3 ? "%.4f" : "%.2f", seconds * 1e3);
  return b;
}

// Returns the number of benchmarks that failed.
int PrintSummary(const Config& c) {
  std::printf(
      "\n== copy/remap ratio: memcpy time / operation time for the same bytes (medians, same run;"
      " >1 = faster than copying)\n"
      "   cycle = map+populate then unmap\n");
  std::printf("%-13s %8s %10s %11s %12s %10s %10s %10s %10s\n", "page kind", "size", "memcpy ms",
              "map+pop ms", "map+populate", "cycle", "lazy+touch", "move", "unmap");
  for (auto& k : Kinds()) {
    for (uint64_t size : k->sizes) {
      const std::string key = k->name + "/" + SizeName(size);
      const double copy = Median("copy/" + key);
      if (copy <= 0) continue;  // filtered out
      const double map = Median("map_populate/" + key), unmap = Median("unmap/" + key);
      std::printf("%-13s %8s %10s %11s %12s %10s %10s %10s %10s\n", k->name.c_str(),
                  SizeName(size).c_str(), Ms(copy).c_str(), Ms(map).c_str(),
                  Ratio(copy, map).c_str(),
                  Ratio(copy, map > 0 && unmap > 0 ? map + unmap : 0).c_str(),
                  Ratio(copy, Median("lazy_touch/" + key)).c_str(),
                  Ratio(copy, Median("move/" + key)).c_str(), Ratio(copy, unmap).c_str());
    }
  }

  std::printf(
      "\n== slots (expert redistribution): memcpy of a slot / remap of it (unmap + map populated);"
      " swap of two slots vs copying both\n");
  std::printf("%-13s %8s %10s %10s %10s %10s %10s\n", "page kind", "slot", "memcpy us", "remap us",
              "remap", "swap us", "swap");
  for (auto& k : Kinds()) {
    if (!k->slots) continue;
    for (uint64_t slot : c.slot_sizes) {
      const std::string key = k->name + "/" + SizeName(slot);
      const double copy = Median("slot_copy/" + key);
      if (copy <= 0) continue;
      const double remap = Median("slot_remap/" + key), swap = Median("slot_swap/" + key);
      auto us = [](double s) {
        char b[32];
        std::snprintf(b, sizeof(b), "%.1f", s * 1e6);
        return s > 0 ? std::string(b) : std::string("-");
      };
      std::printf("%-13s %8s %10s %10s %10s %10s %10s\n", k->name.c_str(), SizeName(slot).c_str(),
                  us(copy).c_str(), us(remap).c_str(), Ratio(copy, remap).c_str(), us(swap).c_str(),
                  Ratio(2 * copy, swap).c_str());
    }
  }

  if (auto it = Results().find("allocator/random_alloc_free");
      it != Results().end() && it->second.items_per_second > 0) {
    std::printf("\n== buddy allocator: %.2f M random allocate/free operations per second\n",
                it->second.items_per_second / 1e6);
  }

  // The target, and what the other kinds give at the same size.
  std::printf("\n== target: map+populate of 1 GiB of 2 MiB pages >= 100x faster than copying it\n");
  for (vmm::PageKind kind :
       {vmm::PageKind::kHugetlb2M, vmm::PageKind::kShmemThp2M, vmm::PageKind::kSmall4K}) {
    const std::string name = vmm::PageKindName(kind);
    const char* note =
        kind == vmm::PageKind::kSmall4K ? " (4 KiB pages: no target, shown for contrast)" : "";
    // The largest size measured for this kind.
    uint64_t size = 0;
    double copy = 0, map = 0;
    for (uint64_t s : kSizes) {
      const std::string key = name + "/" + SizeName(s);
      if (Median("copy/" + key) > 0 && Median("map_populate/" + key) > 0) {
        size = s;
        copy = Median("copy/" + key);
        map = Median("map_populate/" + key);
      }
    }
    if (size == 1024 * kMiB) {
      std::printf("%-13s 1 GiB: map+populate %s ms vs memcpy %s ms: %s%s\n", name.c_str(),
                  Ms(map).c_str(), Ms(copy).c_str(), Ratio(copy, map).c_str(),
                  *note != '\0'       ? note
                  : copy / map >= 100 ? "  MET"
                                      : "  NOT MET");
      continue;
    }
    std::string why = "filtered out by --benchmark_filter";
    if (std::none_of(Kinds().begin(), Kinds().end(),
                     [&](const auto& k) { return k->kind == kind; })) {
      why = "page kind unavailable, see below";
    } else if (c.max_bytes < 1024 * kMiB) {
      why = "capped by VMM_BENCH_MAX_MB";
    } else {
      for (const auto& skipped : Skipped()) {
        if (skipped.rfind(name + " 1024MiB", 0) == 0) why = "skipped: " + skipped;
      }
    }
    std::printf("%-13s 1 GiB: not measured (%s)", name.c_str(), why.c_str());
    if (size > 0) {
      std::printf("; largest measured %s: map+populate %s ms vs memcpy %s ms: %s%s",
                  SizeName(size).c_str(), Ms(map).c_str(), Ms(copy).c_str(),
                  Ratio(copy, map).c_str(), note);
    }
    std::printf("\n");
  }

  for (const auto& u : Unavailable()) std::printf("unavailable: %s\n", u.c_str());
  for (const auto& s : Skipped()) std::printf("skipped: %s\n", s.c_str());
  int failed = 0;
  for (const auto& [name, r] : Results()) {
    if (r.error.empty()) continue;
    std::printf("FAILED: %s: %s\n", name.c_str(), r.error.c_str());
    ++failed;
  }
  return failed;
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  Config config;
  std::string error;
  if (!LoadConfig(&config, &error)) {
    std::fprintf(stderr, "vmm_remap_bench: %s\n", error.c_str());
    return 1;
  }
  if (!SetUp(config)) {
    std::fprintf(stderr, "vmm_remap_bench: cannot allocate a copy buffer of %s\n",
                 SizeName(config.copy_buffer_bytes).c_str());
    return 1;
  }
  Register(config);
  CollectingReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  const int failed = PrintSummary(config);
  std::printf("\n%s", vmm::Report().c_str());
  benchmark::Shutdown();
  return failed == 0 ? 0 : 1;
}
