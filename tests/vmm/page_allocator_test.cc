#include "vmm/page_allocator.h"

#include <gtest/gtest.h>

#include <map>
#include <random>

namespace vmm {
namespace {

TEST(BuddyAllocatorTest, FreshAllocatorIsOneFreeRun) {
  BuddyAllocator a(1000);  // not a power of two: the run is split into maximal aligned blocks
  EXPECT_EQ(a.free_pages(), 1000u);
  ASSERT_TRUE(a.CheckInvariants().ok());
  uint64_t sum = 0;
  for (auto [start, n] : a.FreeBlocks()) {
    EXPECT_EQ(start % n, 0u) << "block at " << start << " of " << n << " is misaligned";
    sum += n;
  }
  EXPECT_EQ(sum, 1000u);
}

TEST(BuddyAllocatorTest, ExactSizeAndTailReturned) {
  BuddyAllocator a(64);
  auto r = a.Allocate(5);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(*r, 0u);
  EXPECT_EQ(a.used_pages(), 5u);  // not 8: the tail of the order-3 block went back
  EXPECT_FALSE(a.IsFree(4));
  EXPECT_TRUE(a.IsFree(5));
  ASSERT_TRUE(a.CheckInvariants().ok());
  a.Free(*r, 5);
  EXPECT_EQ(a.free_pages(), 64u);
  EXPECT_EQ(a.Stats().free_blocks, 1u) << "freeing everything must merge back into one block";
}

TEST(BuddyAllocatorTest, AlignmentIsHonoured) {
  BuddyAllocator a(256);
  ASSERT_TRUE(a.Allocate(1).ok());
  auto r = a.Allocate(3, 16);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r % 16, 0u);
  EXPECT_FALSE(a.Allocate(1, 3).ok()) << "alignment 3 is not a power of two";
  EXPECT_EQ(a.Allocate(0).status().code(), StatusCode::kInvalidArgument);
}

TEST(BuddyAllocatorTest, FullAllocatorSaysWhy) {
  BuddyAllocator a(16);
  ASSERT_TRUE(a.Allocate(16).ok());
  auto r = a.Allocate(1);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kResourceExhausted);
  EXPECT_NE(r.status().message().find("0 of 16 pages free"), std::string::npos)
      << r.status().message();
  EXPECT_EQ(a.Stats().failed_allocations, 1u);
  EXPECT_EQ(a.Allocate(17).status().code(), StatusCode::kResourceExhausted);
}

TEST(BuddyAllocatorTest, FragmentationAndPeak) {
  BuddyAllocator a(64);
  std::vector<uint64_t> pages;
  for (int i = 0; i < 64; ++i) pages.push_back(*a.Allocate(1));
  EXPECT_EQ(a.Stats().peak_used_pages, 64u);
  for (int i = 0; i < 64; i += 2) a.Free(pages[i], 1);  // every other page: shattered
  PageAllocatorStats s = a.Stats();
  EXPECT_EQ(s.free_pages, 32u);
  EXPECT_EQ(s.largest_free_block_pages, 1u);
  EXPECT_NEAR(s.fragmentation, 1.0 - 1.0 / 32, 1e-9);
  EXPECT_FALSE(a.Allocate(2).ok()) << "32 free pages but no two contiguous";
  for (int i = 1; i < 64; i += 2) a.Free(pages[i], 1);
  s = a.Stats();
  EXPECT_EQ(s.fragmentation, 0.0);
  EXPECT_EQ(s.peak_used_pages, 64u);
  EXPECT_TRUE(a.CheckInvariants().ok());
}

TEST(BuddyAllocatorTest, RunOfNonBuddyBlocksIsUsed) {
  BuddyAllocator a(16);
  ASSERT_EQ(*a.Allocate(16), 0u);
  a.Free(3, 6);  // pages [3, 9): blocks [3], [4, 8), [8]; none of order 3
  PageAllocatorStats s = a.Stats();
  EXPECT_EQ(s.largest_free_block_pages, 4u);
  EXPECT_EQ(s.largest_free_run_pages, 6u);
  EXPECT_EQ(s.fragmentation, 0.0);
  auto r = a.Allocate(5, 2);  // no order-3 block: the run serves it at the first even page
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(*r, 4u);
  EXPECT_TRUE(a.IsFree(3));
  EXPECT_FALSE(a.IsFree(8));
  EXPECT_EQ(a.free_pages(), 1u);
  EXPECT_TRUE(a.CheckInvariants().ok());
  a.Free(4, 5);
  EXPECT_EQ(*a.Allocate(6), 3u);
  EXPECT_FALSE(a.Allocate(1).ok());
  EXPECT_TRUE(a.CheckInvariants().ok());
}

TEST(BuddyAllocatorDeathTest, DoubleFreeAborts) {
  BuddyAllocator a(32);
  auto r = a.Allocate(4);
  ASSERT_TRUE(r.ok());
  a.Free(*r, 4);
  EXPECT_DEATH(a.Free(*r, 4), "double free");
  EXPECT_DEATH(a.Free(30, 4), "outside the arena");
}

// Random allocate/free against a shadow bitmap; invariants after every step.
TEST(BuddyAllocatorTest, RandomizedAgainstShadow) {
  for (uint64_t total : {1u, 7u, 64u, 1000u, 4096u}) {
    BuddyAllocator a(total);
    std::vector<bool> used(total, false);
    std::map<uint64_t, uint64_t> live;
    std::mt19937_64 rng(total * 7919);
    for (int step = 0; step < 3000; ++step) {
      const bool alloc = live.empty() || rng() % 100 < 55;
      if (alloc) {
        const uint64_t n = 1 + rng() % std::max<uint64_t>(1, total / 8);
        const uint64_t align = uint64_t{1} << (rng() % 4);
        auto r = a.Allocate(n, align);
        if (!r.ok()) {
          ASSERT_EQ(r.status().code(), StatusCode::kResourceExhausted);
          // Refused only if no aligned run of n free pages exists at all.
          for (uint64_t start = 0; start + n <= total; start += align) {
            uint64_t p = start;
            while (p < start + n && !used[p]) ++p;
            ASSERT_LT(p, start + n)
                << "refused " << n << " pages (align " << align << ") but pages [" << start << ", "
                << start + n << ") are free, step " << step;
          }
          continue;
        }
        ASSERT_EQ(*r % align, 0u);
        ASSERT_LE(*r + n, total);
        for (uint64_t p = *r; p < *r + n; ++p) {
          ASSERT_FALSE(used[p]) << "page " << p << " handed out twice at step " << step;
          used[p] = true;
        }
        live[*r] = n;
      } else {
        auto it = live.begin();
        std::advance(it, rng() % live.size());
        // Sometimes free only a prefix and keep the rest live (sub-run frees are allowed).
        uint64_t n = it->second;
        if (n > 1 && rng() % 4 == 0) {
          const uint64_t keep = 1 + rng() % (n - 1);
          live[it->first + n - keep] = keep;
          n -= keep;
        }
        for (uint64_t p = it->first; p < it->first + n; ++p) used[p] = false;
        a.Free(it->first, n);
        live.erase(it);
      }
      Status s = a.CheckInvariants();
      ASSERT_TRUE(s.ok()) << "step " << step << ": " << s.ToString();
      uint64_t used_count = 0;
      for (bool u : used) used_count += u;
      ASSERT_EQ(a.used_pages(), used_count);
      for (uint64_t p = 0; p < total; p += 1 + total / 64) ASSERT_EQ(a.IsFree(p), !used[p]);
    }
    for (auto [start, n] : live) a.Free(start, n);
    EXPECT_EQ(a.free_pages(), total);
    EXPECT_TRUE(a.CheckInvariants().ok());
  }
}

}  // namespace
}  // namespace vmm
