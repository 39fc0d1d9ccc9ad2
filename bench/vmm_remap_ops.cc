// bench/vmm_remap_ops.cc: the benchmarks of vmm_remap_bench (what each measures: see
// vmm_remap_bench.cc) and their registration.
#include <benchmark/benchmark.h>

#include <chrono>
#include <cstring>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "vmm/vmm.h"
#include "vmm_remap_bench.h"

namespace emoe::bench::remap {
namespace {

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

}  // namespace

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

}  // namespace emoe::bench::remap
