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

// An arena whose size is not a power of two starts as maximal blocks, the smallest at its end
// (5792 = 4096 + 1024 + 512 + 128 + 32 pages): a small request takes the end, unless pages
// below a mark are preferred (a populated arena's resident prefix), and then the smallest order
// whose lowest block fits below the mark; with no such block, the usual choice.
TEST(BuddyAllocatorTest, PreferBelowTakesTheCheapPagesFirst) {
  BuddyAllocator a(5792);
  EXPECT_EQ(*a.Allocate(2), 5760u);
  EXPECT_EQ(*a.Allocate(2, 1, 1167), 0u);  // the 4096-page block at 0, split
  EXPECT_EQ(*a.Allocate(2, 1, 1167), 2u);  // its leftovers are small blocks at low addresses
  EXPECT_EQ(*a.Allocate(8, 8, 1167), 8u);  // aligned within the prefix
  EXPECT_EQ(*a.Allocate(2, 1, 1), 5762u);  // nothing fits below 1: the usual choice
  ASSERT_TRUE(a.CheckInvariants().ok());
  EXPECT_EQ(a.used_pages(), 16u);
  // No single block below the mark holds 40 pages, but the run 6..63 of adjacent blocks does
  // (the usual choice would be the order-6 block at 64).
  BuddyAllocator b(128);
  EXPECT_EQ(*b.Allocate(6, 1, 64), 0u);
  EXPECT_EQ(*b.Allocate(40, 1, 64), 6u);
  EXPECT_EQ(*b.Allocate(40, 1, 64), 64u);  // nothing below 64 holds it any more
  ASSERT_TRUE(b.CheckInvariants().ok());
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

// True when IsFree matches `used` page by page.
::testing::AssertionResult MatchesShadow(const BuddyAllocator& a, const std::vector<bool>& used) {
  for (uint64_t p = 0; p < used.size(); ++p) {
    if (a.IsFree(p) == used[p]) {
      return ::testing::AssertionFailure()
             << "page " << p << " is " << (a.IsFree(p) ? "free" : "used") << ", expected "
             << (used[p] ? "used" : "free");
    }
  }
  return ::testing::AssertionSuccess();
}

TEST(BuddyAllocatorTest, AllocateAtInsideOneBlock) {
  BuddyAllocator a(64);
  ASSERT_TRUE(a.AllocateAt(5, 10));
  EXPECT_EQ(a.used_pages(), 10u);
  EXPECT_EQ(a.Stats().allocations, 1u);
  EXPECT_EQ(a.Stats().peak_used_pages, 10u);
  ASSERT_TRUE(a.CheckInvariants().ok()) << a.CheckInvariants().ToString();
  // Head [0, 5) and tail [15, 64) of the order-6 block go back as maximal aligned blocks.
  const std::vector<std::pair<uint64_t, uint64_t>> want = {
      {0, 4}, {4, 1}, {15, 1}, {16, 16}, {32, 32}};
  EXPECT_EQ(a.FreeBlocks(), want);
  std::vector<bool> used(64, false);
  for (uint64_t p = 5; p < 15; ++p) used[p] = true;
  EXPECT_TRUE(MatchesShadow(a, used));
  a.Free(5, 10);
  EXPECT_EQ(a.free_pages(), 64u);
  EXPECT_EQ(a.Stats().free_blocks, 1u) << "freeing everything must merge back into one block";
  EXPECT_TRUE(a.CheckInvariants().ok());
}

TEST(BuddyAllocatorTest, AllocateAtAcrossSeveralBlocks) {
  BuddyAllocator a(64);
  ASSERT_EQ(*a.Allocate(64), 0u);
  a.Free(3, 6);  // blocks [3], [4, 8), [8]
  a.Free(9, 7);  // [9] merges with [8], then up to [8, 16)
  const std::vector<std::pair<uint64_t, uint64_t>> before = {{3, 1}, {4, 4}, {8, 8}};
  ASSERT_EQ(a.FreeBlocks(), before);
  // [5, 13) spans [4, 8) and [8, 16): page 4 and [13, 16) go back.
  ASSERT_TRUE(a.AllocateAt(5, 8));
  const std::vector<std::pair<uint64_t, uint64_t>> after = {{3, 1}, {4, 1}, {13, 1}, {14, 2}};
  EXPECT_EQ(a.FreeBlocks(), after);
  EXPECT_EQ(a.free_pages(), 5u);
  EXPECT_EQ(a.Stats().allocations, 2u);
  ASSERT_TRUE(a.CheckInvariants().ok()) << a.CheckInvariants().ToString();
  // The whole free run [3, 16) is taken when asked for exactly.
  a.Free(5, 8);
  ASSERT_TRUE(a.AllocateAt(3, 13));
  EXPECT_EQ(a.free_pages(), 0u);
  EXPECT_TRUE(a.FreeBlocks().empty());
  ASSERT_TRUE(a.CheckInvariants().ok());
  a.Free(0, 64);
  EXPECT_EQ(a.free_pages(), 64u);
  EXPECT_EQ(a.Stats().free_blocks, 1u);
  EXPECT_TRUE(a.CheckInvariants().ok());
}

TEST(BuddyAllocatorTest, AllocateAtRefusesUsedOrOutsidePages) {
  BuddyAllocator a(64);
  ASSERT_EQ(*a.Allocate(64), 0u);
  a.Free(0, 10);
  a.Free(11, 53);  // only page 10 is used
  const auto blocks = a.FreeBlocks();
  const PageAllocatorStats s0 = a.Stats();
  EXPECT_FALSE(a.AllocateAt(8, 4)) << "page 10 in the middle is used";
  EXPECT_FALSE(a.AllocateAt(10, 1)) << "the first page is used";
  EXPECT_FALSE(a.AllocateAt(9, 2)) << "the last page is used";
  EXPECT_FALSE(a.AllocateAt(0, 64));
  EXPECT_FALSE(a.AllocateAt(60, 5)) << "runs past the end";
  EXPECT_FALSE(a.AllocateAt(64, 1)) << "starts past the end";
  EXPECT_FALSE(a.AllocateAt(~uint64_t{0}, 2)) << "first + n overflows";
  EXPECT_FALSE(a.AllocateAt(3, 0)) << "0 pages";
  EXPECT_EQ(a.FreeBlocks(), blocks) << "a refused AllocateAt changes nothing";
  const PageAllocatorStats s1 = a.Stats();
  EXPECT_EQ(s1.free_pages, s0.free_pages);
  EXPECT_EQ(s1.allocations, s0.allocations);
  EXPECT_EQ(s1.failed_allocations, s0.failed_allocations);
  ASSERT_TRUE(a.CheckInvariants().ok());
  // Right next to the used page on both sides is fine.
  ASSERT_TRUE(a.AllocateAt(11, 53));
  ASSERT_TRUE(a.AllocateAt(0, 10));
  EXPECT_EQ(a.free_pages(), 0u);
  ASSERT_TRUE(a.CheckInvariants().ok());
  a.Free(0, 10);
  a.Free(10, 1);
  a.Free(11, 53);
  EXPECT_EQ(a.free_pages(), 64u);
  EXPECT_EQ(a.Stats().free_blocks, 1u);
  EXPECT_TRUE(a.CheckInvariants().ok());
}

// Allocate, AllocateAt and Free at random against a shadow bitmap: AllocateAt succeeds exactly
// when the shadow says every page of the run is free.
TEST(BuddyAllocatorTest, AllocateAtRandomizedAgainstShadow) {
  for (uint64_t total : {1u, 13u, 64u, 1000u}) {
    BuddyAllocator a(total);
    std::vector<bool> used(total, false);
    std::map<uint64_t, uint64_t> live;
    std::mt19937_64 rng(total * 104729);
    uint64_t taken_at = 0;
    for (int step = 0; step < 3000; ++step) {
      const uint64_t dice = rng() % 100;
      if (dice < 40 || live.empty()) {
        const uint64_t first = rng() % (total + 2);  // sometimes outside
        const uint64_t n = rng() % (1 + std::max<uint64_t>(1, total / 6));
        bool free = n > 0 && first < total && n <= total - first;
        for (uint64_t p = first; free && p < first + n; ++p) free = !used[p];
        ASSERT_EQ(a.AllocateAt(first, n), free)
            << "AllocateAt(" << first << ", " << n << ") at step " << step;
        if (free) {
          for (uint64_t p = first; p < first + n; ++p) used[p] = true;
          live[first] = n;
          ++taken_at;
        }
      } else if (dice < 60) {
        const uint64_t n = 1 + rng() % std::max<uint64_t>(1, total / 8);
        auto r = a.Allocate(n);
        if (r.ok()) {
          for (uint64_t p = *r; p < *r + n; ++p) {
            ASSERT_FALSE(used[p]) << "page " << p << " handed out twice at step " << step;
            used[p] = true;
          }
          live[*r] = n;
        }
      } else {
        auto it = live.begin();
        std::advance(it, rng() % live.size());
        for (uint64_t p = it->first; p < it->first + it->second; ++p) used[p] = false;
        a.Free(it->first, it->second);
        live.erase(it);
      }
      Status s = a.CheckInvariants();
      ASSERT_TRUE(s.ok()) << "step " << step << ": " << s.ToString();
      ASSERT_TRUE(MatchesShadow(a, used)) << "step " << step;
    }
    EXPECT_GT(taken_at, 10u) << "the test should exercise successful AllocateAt calls";
    for (auto [start, n] : live) a.Free(start, n);
    EXPECT_EQ(a.free_pages(), total);
    EXPECT_TRUE(a.CheckInvariants().ok());
  }
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
