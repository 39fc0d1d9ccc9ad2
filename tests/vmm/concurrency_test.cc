// Thread-safety contract: Arena and Reservation methods may be called from many threads at once.
#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <random>
#include <thread>

#include "test_util.h"
#include "vmm/vmm.h"

namespace vmm {
namespace {

TEST(ConcurrencyTest, AllocateMapUnmapMoveFromManyThreads) {
  std::string skip;
  auto arena = testing::MakeArena(PageSizePolicy::kSmall, 64 << 20, &skip, "threads");
  ASSERT_TRUE(arena);
  constexpr int kThreads = 4, kSlotsPerThread = 8, kSteps = 1500;
  constexpr uint64_t kSlot = 64 << 10;
  auto shared = *Reservation::Reserve(kThreads * kSlotsPerThread * kSlot);
  std::atomic<int> errors{0};
  auto worker = [&](int t) {
    std::mt19937 rng(t);
    auto mine = *Reservation::Reserve(kSlotsPerThread * kSlot);
    std::vector<char> tag(kSlotsPerThread, 0);  // tag byte of the extent in each shared slot
    const uint64_t first = t * kSlotsPerThread * kSlot;
    for (int step = 0; step < kSteps; ++step) {
      const int s = rng() % kSlotsPerThread;
      const uint64_t off = first + s * kSlot;
      if (tag[s] == 0) {
        auto e = arena->Allocate(kSlot);
        if (!e.ok()) continue;  // the arena may be momentarily full: fine
        const char v = static_cast<char>('A' + t * 8 + s % 8);
        std::memset(e->data(), v, kSlot);
        if (!shared->Map(off, *e, 0, 0, {Protection::kReadWrite, step % 2 == 0}).ok()) ++errors;
        tag[s] = v;
      } else if (rng() % 3 == 0) {
        // Bounce through the thread's own reservation and back.
        if (!shared->Move(off, *mine, s * kSlot).ok()) ++errors;
        if (static_cast<char>(mine->base()[s * kSlot + 9]) != tag[s]) ++errors;
        if (!mine->Move(s * kSlot, *shared, off).ok()) ++errors;
      } else {
        if (static_cast<char>(shared->base()[off + kSlot - 1]) != tag[s]) ++errors;
        if (!shared->Unmap(off).ok()) ++errors;
        tag[s] = 0;
      }
    }
  };
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) threads.emplace_back(worker, t);
  for (auto& th : threads) th.join();
  EXPECT_EQ(errors.load(), 0);
  EXPECT_TRUE(shared->CheckInvariants().ok());
  EXPECT_TRUE(arena->CheckInvariants().ok());
  EXPECT_TRUE(testing::MatchesKernel(*shared));
  EXPECT_EQ(arena->Stats().used_bytes, shared->mapped_bytes());
  shared.reset();
  EXPECT_EQ(arena->Stats().used_bytes, 0u);
}

}  // namespace
}  // namespace vmm
