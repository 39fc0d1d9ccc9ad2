// vmm_remap_bench: what remapping costs compared with copying the same bytes, per page kind.
//
// For each page kind the host offers (hugetlb 2 MiB, shmem THP 2 MiB, 4 KiB) and each size:
//   map_populate  Map(populate) of an extent whose pages already hold data (the zero-copy attach)
//   lazy_touch    Map without populate, then write one byte per 4 KiB (first-touch faults)
//   move          Reservation::Move of a populated mapping (mremap: page tables move)
//   unmap         Unmap of a populated mapping (back to PROT_NONE)
// against memcpy of the same bytes from the arena into a pre-faulted buffer (same run). Slots of
// 2-16 MiB (the expert-redistribution primitive): remap a slot to another extent (unmap + map
// populated), swap two slots, vs copying the slot. Then the buddy allocator's throughput.
// After the runs it prints the copy/remap ratio per kind and size.
//
//   VMM_BENCH_MAX_MB=1024   largest size (64, 256, 1024 MiB are run up to it)
//   plus the usual --benchmark_* flags (e.g. --benchmark_filter=map_populate).
#include <benchmark/benchmark.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "vmm/vmm.h"

namespace {

using Clock = std::chrono::steady_clock;
constexpr uint64_t kMiB = 1 << 20;
constexpr uint64_t kSlotSizes[] = {2 * kMiB, 4 * kMiB, 8 * kMiB, 16 * kMiB};
constexpr int kSlots = 8;

uint64_t MaxBytes() {
  const char* env = std::getenv("VMM_BENCH_MAX_MB");
  const long mb = env ? std::atol(env) : 1024;
  return static_cast<uint64_t>(mb > 0 ? mb : 1024) * kMiB;
}

std::vector<uint64_t> Sizes() {
  std::vector<uint64_t> out;
  for (uint64_t s : {64 * kMiB, 256 * kMiB, 1024 * kMiB}) {
    if (s <= MaxBytes()) out.push_back(s);
  }
  return out;
}

// One arena per page kind, big enough for the largest size plus the slot extents; every page is
// written once at setup so that mapping measures page tables, not page allocation.
struct KindSetup {
  vmm::PageKind kind;
  std::shared_ptr<vmm::Arena> arena;
  vmm::Extent big;                    // the largest size
  std::vector<vmm::Extent> slot_src;  // per slot size: 2 * kSlots extents of that size
};

std::vector<std::unique_ptr<KindSetup>>& Kinds() {
  static std::vector<std::unique_ptr<KindSetup>> kinds;
  return kinds;
}

// Destination of the memcpy baselines, faulted in once.
uint8_t* CopyBuffer() {
  static uint8_t* buf = [] {
    auto* b = static_cast<uint8_t*>(std::aligned_alloc(kMiB * 2, MaxBytes()));
    std::memset(b, 1, MaxBytes());
    return b;
  }();
  return buf;
}

std::map<std::string, double>& Results() {  // benchmark name -> seconds per iteration
  static std::map<std::string, double> r;
  return r;
}

class CollectingReporter : public benchmark::ConsoleReporter {
 public:
  void ReportRuns(const std::vector<Run>& runs) override {
    for (const Run& run : runs) {
      if (run.iterations > 0 && !run.error_occurred) {
        std::string name = run.benchmark_name();
        const std::string manual = "/manual_time";
        if (name.size() > manual.size() && name.ends_with(manual)) {
          name.resize(name.size() - manual.size());
        }
        Results()[name] =
            run.GetAdjustedRealTime() / benchmark::GetTimeUnitMultiplier(run.time_unit);
      }
    }
    ConsoleReporter::ReportRuns(runs);
  }
};

std::string SizeName(uint64_t bytes) { return std::to_string(bytes / kMiB) + "MiB"; }

void Fail(benchmark::State& state, const vmm::Status& s) {
  state.SkipWithError(s.ToString().c_str());
}

void MapPopulate(benchmark::State& state, KindSetup* k, uint64_t size) {
  auto r = vmm::Reservation::Reserve(size);
  if (!r.ok()) return Fail(state, r.status());
  for (auto _ : state) {
    const auto t0 = Clock::now();
    vmm::Status s = (*r)->Map(0, k->big, 0, size, {vmm::Protection::kReadWrite, true});
    const auto t1 = Clock::now();
    if (!s.ok()) return Fail(state, s);
    state.SetIterationTime(std::chrono::duration<double>(t1 - t0).count());
    if (!(s = (*r)->Unmap(0)).ok()) return Fail(state, s);
  }
  state.SetBytesProcessed(state.iterations() * size);
}

void LazyTouch(benchmark::State& state, KindSetup* k, uint64_t size) {
  auto r = vmm::Reservation::Reserve(size);
  if (!r.ok()) return Fail(state, r.status());
  for (auto _ : state) {
    const auto t0 = Clock::now();
    vmm::Status s = (*r)->Map(0, k->big, 0, size);
    if (!s.ok()) return Fail(state, s);
    volatile uint8_t* p = (*r)->base();
    for (uint64_t off = 0; off < size; off += 4096) p[off] = 2;
    const auto t1 = Clock::now();
    state.SetIterationTime(std::chrono::duration<double>(t1 - t0).count());
    if (!(s = (*r)->Unmap(0)).ok()) return Fail(state, s);
  }
  state.SetBytesProcessed(state.iterations() * size);
}

void Move(benchmark::State& state, KindSetup* k, uint64_t size) {
  auto r = vmm::Reservation::Reserve(2 * size);
  if (!r.ok()) return Fail(state, r.status());
  vmm::Status s = (*r)->Map(0, k->big, 0, size, {vmm::Protection::kReadWrite, true});
  if (!s.ok()) return Fail(state, s);
  uint64_t at = 0;
  for (auto _ : state) {
    const uint64_t to = at == 0 ? size : 0;
    if (!(s = (*r)->Move(at, **r, to)).ok()) return Fail(state, s);
    at = to;
  }
  state.SetBytesProcessed(state.iterations() * size);
}

void Unmap(benchmark::State& state, KindSetup* k, uint64_t size) {
  auto r = vmm::Reservation::Reserve(size);
  if (!r.ok()) return Fail(state, r.status());
  for (auto _ : state) {
    vmm::Status s = (*r)->Map(0, k->big, 0, size, {vmm::Protection::kReadWrite, true});
    if (!s.ok()) return Fail(state, s);
    const auto t0 = Clock::now();
    s = (*r)->Unmap(0);
    const auto t1 = Clock::now();
    if (!s.ok()) return Fail(state, s);
    state.SetIterationTime(std::chrono::duration<double>(t1 - t0).count());
  }
  state.SetBytesProcessed(state.iterations() * size);
}

void Copy(benchmark::State& state, KindSetup* k, uint64_t size) {
  const uint8_t* src = static_cast<const uint8_t*>(k->big.data());
  for (auto _ : state) {
    vmm::CopyBytes(CopyBuffer(), src, size);
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(state.iterations() * size);
}

// Remaps slot i of a kSlots-slot reservation to the next extent, round robin (unmap + map
// populated): what moving an expert into a slot costs when its pages are already in the arena.
// Remaps slot i of a kSlots-slot reservation to an extent that is not mapped, round robin
// (unmap + map populated): what moving an expert into a slot costs when its pages are already in
// the arena.
void SlotRemap(benchmark::State& state, KindSetup* k, int slot_index) {
  const uint64_t slot = kSlotSizes[slot_index];
  const vmm::Extent* src = &k->slot_src[slot_index * 2 * kSlots];
  auto r = vmm::Reservation::Reserve(kSlots * slot);
  if (!r.ok()) return Fail(state, r.status());
  std::vector<int> in_slot(kSlots), spare;
  for (int i = 0; i < kSlots; ++i) {
    in_slot[i] = i;
    spare.push_back(kSlots + i);
    vmm::Status s = (*r)->Map(i * slot, src[i], 0, 0, {vmm::Protection::kRead, true});
    if (!s.ok()) return Fail(state, s);
  }
  int i = 0;
  size_t next_spare = 0;
  for (auto _ : state) {
    const int incoming = spare[next_spare];
    vmm::Status s = (*r)->Unmap(i * slot);
    if (s.ok()) s = (*r)->Map(i * slot, src[incoming], 0, 0, {vmm::Protection::kRead, true});
    if (!s.ok()) return Fail(state, s);
    spare[next_spare] = in_slot[i];  // the outgoing extent becomes a spare
    in_slot[i] = incoming;
    next_spare = (next_spare + 1) % spare.size();
    i = (i + 1) % kSlots;
  }
  state.SetBytesProcessed(state.iterations() * slot);
}

void SlotSwap(benchmark::State& state, KindSetup* k, int slot_index) {
  const uint64_t slot = kSlotSizes[slot_index];
  auto r = vmm::Reservation::Reserve(2 * slot);
  if (!r.ok()) return Fail(state, r.status());
  const int base = slot_index * 2 * kSlots;
  for (int i = 0; i < 2; ++i) {
    vmm::Status s =
        (*r)->Map(i * slot, k->slot_src[base + i], 0, 0, {vmm::Protection::kRead, true});
    if (!s.ok()) return Fail(state, s);
  }
  for (auto _ : state) {
    vmm::Status s = (*r)->Swap(0, slot);
    if (!s.ok()) return Fail(state, s);
  }
  state.SetBytesProcessed(state.iterations() * 2 * slot);
}

void SlotCopy(benchmark::State& state, KindSetup* k, int slot_index) {
  const uint64_t slot = kSlotSizes[slot_index];
  const auto* src = static_cast<const uint8_t*>(k->slot_src[slot_index * 2 * kSlots].data());
  for (auto _ : state) {
    vmm::CopyBytes(CopyBuffer(), src, slot);
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(state.iterations() * slot);
}

void Allocator(benchmark::State& state) {
  vmm::BuddyAllocator a(uint64_t{1} << 20);
  std::mt19937_64 rng(1);
  std::vector<std::pair<uint64_t, uint64_t>> live;
  for (auto _ : state) {
    if (live.size() < 512 && (live.empty() || rng() % 2)) {
      const uint64_t n = 1 + rng() % 1024;
      auto r = a.Allocate(n);
      if (r.ok()) live.emplace_back(*r, n);
    } else {
      const size_t i = rng() % live.size();
      a.Free(live[i].first, live[i].second);
      live[i] = live.back();
      live.pop_back();
    }
  }
  state.SetItemsProcessed(state.iterations());
}

// Creates the arenas; returns the kinds that could not be had, with the reason.
std::vector<std::string> SetUp() {
  std::vector<std::string> unavailable;
  uint64_t slot_bytes = 0;
  for (uint64_t s : kSlotSizes) slot_bytes += 2 * kSlots * s;
  const std::pair<vmm::PageSizePolicy, vmm::PageKind> kinds[] = {
      {vmm::PageSizePolicy::kHugetlb, vmm::PageKind::kHugetlb2M},
      {vmm::PageSizePolicy::kShmemThp, vmm::PageKind::kShmemThp2M},
      {vmm::PageSizePolicy::kSmall, vmm::PageKind::kSmall4K}};
  for (auto [policy, kind] : kinds) {
    vmm::ArenaOptions o;
    o.name = std::string("bench.") + vmm::PageKindName(kind);
    o.capacity_bytes = MaxBytes() + slot_bytes;
    o.page_size = policy;
    auto arena = vmm::Arena::Create(o);
    if (!arena.ok()) {
      unavailable.push_back(std::string(vmm::PageKindName(kind)) + ": " + arena.status().message());
      continue;
    }
    auto k = std::make_unique<KindSetup>();
    k->kind = kind;
    k->arena = *arena;
    k->big = *k->arena->Allocate(MaxBytes());
    for (uint64_t s : kSlotSizes) {
      for (int i = 0; i < 2 * kSlots; ++i) k->slot_src.push_back(*k->arena->Allocate(s));
    }
    std::memset(k->arena->direct_map(), 3, k->arena->capacity_bytes());
    Kinds().push_back(std::move(k));
  }
  return unavailable;
}

void Register() {
  for (auto& kp : Kinds()) {
    KindSetup* k = kp.get();
    const std::string kind = vmm::PageKindName(k->kind);
    for (uint64_t size : Sizes()) {
      const std::string sz = SizeName(size);
      benchmark::RegisterBenchmark(("copy/" + kind + "/" + sz).c_str(), Copy, k, size)
          ->Unit(benchmark::kMillisecond);
      benchmark::RegisterBenchmark(("map_populate/" + kind + "/" + sz).c_str(), MapPopulate, k,
                                   size)
          ->UseManualTime()
          ->Unit(benchmark::kMillisecond);
      benchmark::RegisterBenchmark(("lazy_touch/" + kind + "/" + sz).c_str(), LazyTouch, k, size)
          ->UseManualTime()
          ->Unit(benchmark::kMillisecond);
      benchmark::RegisterBenchmark(("move/" + kind + "/" + sz).c_str(), Move, k, size)
          ->Unit(benchmark::kMillisecond);
      benchmark::RegisterBenchmark(("unmap/" + kind + "/" + sz).c_str(), Unmap, k, size)
          ->UseManualTime()
          ->Unit(benchmark::kMillisecond);
    }
    for (int i = 0; i < 4; ++i) {
      const std::string sz = SizeName(kSlotSizes[i]);
      benchmark::RegisterBenchmark(("slot_copy/" + kind + "/" + sz).c_str(), SlotCopy, k, i)
          ->Unit(benchmark::kMicrosecond);
      benchmark::RegisterBenchmark(("slot_remap/" + kind + "/" + sz).c_str(), SlotRemap, k, i)
          ->Unit(benchmark::kMicrosecond);
      benchmark::RegisterBenchmark(("slot_swap/" + kind + "/" + sz).c_str(), SlotSwap, k, i)
          ->Unit(benchmark::kMicrosecond);
    }
  }
  benchmark::RegisterBenchmark("allocator/random_alloc_free", Allocator);
}

void PrintSummary(const std::vector<std::string>& unavailable) {
  auto get = [](const std::string& name) {
    auto it = Results().find(name);
    return it == Results().end() ? 0.0 : it->second;
  };
  auto ratio = [](double copy, double op) {
    char b[32];
    if (copy <= 0 || op <= 0) return std::string("       -");
    std::snprintf(b, sizeof(b), "%8.1fx", copy / op);
    return std::string(b);
  };
  std::printf("\n== copy/remap ratio (memcpy time / operation time, same bytes, same run)\n");
  std::printf("%-14s %8s %10s %13s %10s %10s %10s\n", "page kind", "size", "memcpy ms",
              "map+populate", "lazy+touch", "move", "unmap");
  for (auto& k : Kinds()) {
    const std::string kind = vmm::PageKindName(k->kind);
    for (uint64_t size : Sizes()) {
      const std::string key = kind + "/" + SizeName(size);
      const double copy = get("copy/" + key);
      if (copy <= 0) continue;  // filtered out
      std::printf("%-14s %8s %10.2f %13s %10s %10s %10s\n", kind.c_str(), SizeName(size).c_str(),
                  copy * 1e3, ratio(copy, get("map_populate/" + key)).c_str(),
                  ratio(copy, get("lazy_touch/" + key)).c_str(),
                  ratio(copy, get("move/" + key)).c_str(),
                  ratio(copy, get("unmap/" + key)).c_str());
    }
  }
  std::printf("\n== slots (expert redistribution): memcpy of a slot / remap or swap of it\n");
  std::printf("%-14s %8s %10s %10s %10s\n", "page kind", "slot", "memcpy us", "remap", "swap");
  for (auto& k : Kinds()) {
    const std::string kind = vmm::PageKindName(k->kind);
    for (uint64_t slot : kSlotSizes) {
      const std::string key = kind + "/" + SizeName(slot);
      const double copy = get("slot_copy/" + key);
      if (copy <= 0) continue;
      // A swap exchanges two slots: compare with copying both.
      std::printf("%-14s %8s %10.1f %10s %10s\n", kind.c_str(), SizeName(slot).c_str(), copy * 1e6,
                  ratio(copy, get("slot_remap/" + key)).c_str(),
                  ratio(2 * copy, get("slot_swap/" + key)).c_str());
    }
  }
  const std::string target = "map_populate/hugetlb-2M/1024MiB";
  if (get(target) > 0) {
    const double r = get("copy/hugetlb-2M/1024MiB") / get(target);
    std::printf(
        "\ntarget: map+populate of 1 GiB in 2 MiB hugetlb pages >= 100x faster than "
        "copying it: %.0fx, %s\n",
        r, r >= 100 ? "MET" : "NOT MET");
  }
  for (const auto& u : unavailable) std::printf("unavailable: %s\n", u.c_str());
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  const std::vector<std::string> unavailable = SetUp();
  for (const auto& u : unavailable) std::printf("page kind unavailable, skipped: %s\n", u.c_str());
  CopyBuffer();  // fault the copy destination in before anything is timed
  Register();
  CollectingReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  PrintSummary(unavailable);
  std::printf("\n%s", vmm::Report().c_str());
  benchmark::Shutdown();
  return 0;
}
