#include "vmm/reservation.h"

#include <gtest/gtest.h>

#include <cstring>
#include <random>

#include "test_util.h"

namespace vmm {
namespace {

using testing::MatchesKernel;
using testing::PageFrame;

void Fill(const Extent& e, uint8_t v) { std::memset(e.data(), v, e.size_bytes()); }

class ReservationTest : public ::testing::TestWithParam<PageSizePolicy> {};

TEST_P(ReservationTest, ReserveIsAlignedAndInaccessible) {
  auto r = Reservation::Reserve(10 << 20);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(reinterpret_cast<uintptr_t>((*r)->base()) % kHugePageSize, 0u);
  EXPECT_TRUE(MatchesKernel(**r));
  EXPECT_DEATH({ (void)*reinterpret_cast<volatile char*>((*r)->base() + 4096); }, "");
  EXPECT_EQ(Reservation::Reserve(0).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(Reservation::Reserve(4096, 3000).status().code(), StatusCode::kInvalidArgument);
}

TEST_P(ReservationTest, MapIsZeroCopyAndUnmapLeavesNoHole) {
  VMM_ARENA_OR_SKIP(arena, GetParam(), 16 << 20);
  const uint64_t page = arena->page_size();
  auto r = *Reservation::Reserve(16 << 20);
  Extent e = *arena->Allocate(2 * page);
  Fill(e, 0x11);
  ASSERT_TRUE(r->Map(4 * page, e).ok());
  EXPECT_TRUE(MatchesKernel(*r));
  uint8_t* p = r->base() + 4 * page;
  EXPECT_EQ(p[0], 0x11);
  p[page + 5] = 0x22;  // write through the slot, read through the direct map
  EXPECT_EQ(static_cast<uint8_t*>(e.data())[page + 5], 0x22);
  const uint64_t pfn = PageFrame(p);
  if (pfn != 0) {
    EXPECT_EQ(pfn, PageFrame(e.data())) << "two addresses, one physical page";
  }
  EXPECT_EQ(r->mapped_bytes(), 2 * page);
  EXPECT_EQ(r->mapping_count(), 1u);

  ASSERT_TRUE(r->Unmap(4 * page).ok());
  EXPECT_TRUE(MatchesKernel(*r));
  EXPECT_EQ(r->mapping_count(), 0u);
  EXPECT_DEATH({ (void)*reinterpret_cast<volatile char*>(p); }, "");
  EXPECT_EQ(static_cast<uint8_t*>(e.data())[page + 5], 0x22) << "unmapping keeps the data";
  EXPECT_EQ(r->Unmap(4 * page).code(), StatusCode::kNotFound);
}

TEST_P(ReservationTest, PopulateFillsPageTables) {
  VMM_ARENA_OR_SKIP(arena, GetParam(), 8 << 20);
  auto r = *Reservation::Reserve(8 << 20);
  Extent e = *arena->Allocate(4 << 20);
  const uint64_t before = GlobalCounters().bytes_populated.load();
  ASSERT_TRUE(r->Map(0, e, 0, 0, {Protection::kReadWrite, /*populate=*/true}).ok());
  EXPECT_EQ(GlobalCounters().bytes_populated.load() - before, 4u << 20);
  for (uint64_t off = 0; off < (4 << 20); off += 512 << 10) {
    EXPECT_TRUE(testing::PagePresent(r->base() + off)) << "offset " << off;
  }
  Extent lazy = *arena->Allocate(2 << 20);
  ASSERT_TRUE(r->Map(4 << 20, lazy).ok());
  EXPECT_FALSE(testing::PagePresent(r->base() + (4 << 20) + 4096)) << "lazy mapping not faulted";
}

TEST_P(ReservationTest, PopulateLaterFillsPartOfAMapping) {
  VMM_ARENA_OR_SKIP(arena, GetParam(), 8 << 20);
  const uint64_t page = arena->page_size();
  auto r = *Reservation::Reserve(8 << 20);
  Extent e = *arena->Allocate(2 * page);
  Fill(e, 0x33);  // the arena holds the pages: populating maps them, allocates nothing
  ASSERT_TRUE(r->Map(0, e, 0, 0, {Protection::kRead, false}).ok());
  EXPECT_FALSE(testing::PagePresent(r->base() + page)) << "mapped lazily";
  const uint64_t before = GlobalCounters().bytes_populated.load();
  // An unaligned range inside the second page: rounded out to 4 KiB.
  ASSERT_TRUE(r->Populate(page + 100, 1000).ok());
  EXPECT_EQ(GlobalCounters().bytes_populated.load() - before, 4096u);
  EXPECT_TRUE(testing::PagePresent(r->base() + page));
  EXPECT_EQ(r->base()[page + 100], 0x33);
  // Outside every mapping, across its end, or empty: refused, naming the range.
  EXPECT_EQ(r->Populate(4 * page, 4096).code(), StatusCode::kNotFound);
  EXPECT_EQ(r->Populate(page, 2 * page).code(), StatusCode::kNotFound);
  EXPECT_EQ(r->Populate(0, 0).code(), StatusCode::kNotFound);
  EXPECT_EQ(r->Populate(8 << 20, 4096).code(), StatusCode::kNotFound);
  EXPECT_TRUE(MatchesKernel(*r));
}

TEST_P(ReservationTest, ReadOnlyMappingRefusesWrites) {
  VMM_ARENA_OR_SKIP(arena, GetParam(), 4 << 20);
  auto r = *Reservation::Reserve(4 << 20);
  Extent e = *arena->Allocate(arena->page_size());
  Fill(e, 9);
  ASSERT_TRUE(r->Map(0, e, 0, 0, {Protection::kRead, true}).ok());
  EXPECT_TRUE(MatchesKernel(*r));
  EXPECT_EQ(r->base()[10], 9);
  EXPECT_DEATH({ *reinterpret_cast<volatile char*>(r->base()) = 1; }, "");
  ASSERT_TRUE(r->Protect(0, Protection::kReadWrite).ok());
  r->base()[0] = 1;
  EXPECT_TRUE(MatchesKernel(*r));
}

TEST_P(ReservationTest, BadRequestsAreRefused) {
  VMM_ARENA_OR_SKIP(arena, GetParam(), 8 << 20);
  const uint64_t page = arena->page_size();
  auto r = *Reservation::Reserve(4 * page);
  Extent e = *arena->Allocate(2 * page);
  EXPECT_EQ(r->Map(page / 2, e).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(r->Map(0, e, page / 2).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(r->Map(0, e, 0, 3 * page).code(), StatusCode::kOutOfRange);
  EXPECT_EQ(r->Map(3 * page, e).code(), StatusCode::kOutOfRange);
  EXPECT_EQ(r->Map(0, Extent()).code(), StatusCode::kInvalidArgument);
  ASSERT_TRUE(r->Map(page, e).ok());
  Status s = r->Map(0, e);
  EXPECT_EQ(s.code(), StatusCode::kAlreadyExists) << s.ToString();
  EXPECT_EQ(r->Map(2 * page, e, 0, page).code(), StatusCode::kAlreadyExists);
  EXPECT_TRUE(r->Map(3 * page, e, page, page).ok()) << "a sub-range of an extent";
  EXPECT_TRUE(MatchesKernel(*r));
  EXPECT_TRUE(r->CheckInvariants().ok());
}

TEST_P(ReservationTest, MoveRelocatesPageTablesNotData) {
  VMM_ARENA_OR_SKIP(arena, GetParam(), 16 << 20);
  const uint64_t page = arena->page_size();
  auto a = *Reservation::Reserve(8 * page);
  auto b = *Reservation::Reserve(8 * page);
  Extent e = *arena->Allocate(2 * page);
  Fill(e, 0x33);
  ASSERT_TRUE(a->Map(0, e, 0, 0, {Protection::kReadWrite, true}).ok());
  const uint64_t pfn = PageFrame(a->base());
  const uint64_t moved = GlobalCounters().bytes_moved.load();
  const uint64_t copied = GlobalCounters().bytes_copied.load();

  ASSERT_TRUE(a->Move(0, *a, 4 * page).ok());
  EXPECT_TRUE(MatchesKernel(*a));
  EXPECT_EQ(a->base()[4 * page + 1], 0x33);
  EXPECT_DEATH({ (void)*reinterpret_cast<volatile char*>(a->base()); }, "");
  if (pfn != 0) {
    EXPECT_EQ(PageFrame(a->base() + 4 * page), pfn);
  }

  Status s = a->Move(4 * page, *b, 2 * page);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_TRUE(MatchesKernel(*a));
  EXPECT_TRUE(MatchesKernel(*b));
  EXPECT_EQ(b->base()[2 * page + 7], 0x33);
  EXPECT_EQ(a->mapping_count(), 0u);
  ASSERT_TRUE(b->MappingAt(2 * page).has_value());
  EXPECT_EQ(GlobalCounters().bytes_moved.load() - moved, 4 * page);
  EXPECT_EQ(GlobalCounters().bytes_copied.load(), copied) << "a move copies nothing";

  // Destination occupied or overlapping the source: refused, nothing changes.
  Extent f = *arena->Allocate(page);
  ASSERT_TRUE(b->Map(0, f).ok());
  EXPECT_EQ(b->Move(2 * page, *b, 0).code(), StatusCode::kAlreadyExists);
  EXPECT_EQ(b->Move(2 * page, *b, 3 * page).code(), StatusCode::kAlreadyExists);
  EXPECT_EQ(b->Move(2 * page, *b, 7 * page).code(), StatusCode::kOutOfRange);
  EXPECT_EQ(b->Move(5 * page, *b, 0).code(), StatusCode::kNotFound);
  EXPECT_TRUE(MatchesKernel(*b));
}

TEST_P(ReservationTest, SwapExchangesSlots) {
  VMM_ARENA_OR_SKIP(arena, GetParam(), 16 << 20);
  const uint64_t page = arena->page_size();
  auto r = *Reservation::Reserve(8 * page);
  Extent x = *arena->Allocate(2 * page), y = *arena->Allocate(2 * page);
  Fill(x, 'x');
  Fill(y, 'y');
  ASSERT_TRUE(r->Map(0, x, 0, 0, {Protection::kReadWrite, true}).ok());
  ASSERT_TRUE(r->Map(4 * page, y).ok());
  ASSERT_TRUE(r->Swap(0, 4 * page).ok());
  EXPECT_EQ(r->base()[0], 'y');
  EXPECT_EQ(r->base()[4 * page], 'x');
  EXPECT_EQ(r->MappingAt(0)->extent.first_page(), y.first_page());
  EXPECT_TRUE(MatchesKernel(*r));
  Extent z = *arena->Allocate(page);
  ASSERT_TRUE(r->Map(2 * page, z).ok());
  EXPECT_EQ(r->Swap(0, 2 * page).code(), StatusCode::kInvalidArgument) << "different lengths";
  EXPECT_EQ(r->Swap(0, 3 * page).code(), StatusCode::kNotFound);
}

TEST_P(ReservationTest, LookupFindsTheArenaPage) {
  VMM_ARENA_OR_SKIP(arena, GetParam(), 16 << 20);
  const uint64_t page = arena->page_size();
  auto r = *Reservation::Reserve(8 * page);
  Extent pad = *arena->Allocate(page);
  Extent e = *arena->Allocate(3 * page);
  ASSERT_TRUE(r->Map(2 * page, e, page, 2 * page).ok());
  auto ref = r->Lookup(r->base() + 3 * page + 100);
  ASSERT_TRUE(ref.ok()) << ref.status().ToString();
  EXPECT_EQ(ref->arena, arena.get());
  EXPECT_EQ(ref->arena_offset, e.offset_bytes() + 2 * page + 100);
  EXPECT_EQ(ref->mapping_offset, 2 * page);
  EXPECT_EQ(r->Lookup(r->base()).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(r->Lookup(r->base() + 8 * page).status().code(), StatusCode::kOutOfRange);
}

TEST_P(ReservationTest, MappingsKeepExtentsAlive) {
  VMM_ARENA_OR_SKIP(arena, GetParam(), 8 << 20);
  auto r = *Reservation::Reserve(8 << 20);
  {
    Extent e = *arena->Allocate(arena->page_size());
    ASSERT_TRUE(r->Map(0, e).ok());
  }
  EXPECT_EQ(arena->Stats().used_bytes, arena->page_size()) << "the mapping holds the extent";
  ASSERT_TRUE(r->Unmap(0).ok());
  EXPECT_EQ(arena->Stats().used_bytes, 0u);
  {
    Extent e = *arena->Allocate(arena->page_size());
    ASSERT_TRUE(r->Map(0, e).ok());
  }
  r.reset();  // tearing down the reservation releases its mappings
  EXPECT_EQ(arena->Stats().used_bytes, 0u);
  EXPECT_TRUE(arena->CheckInvariants().ok());
}

// Random slot operations against a model, with the kernel cross-checked along the way.
TEST_P(ReservationTest, RandomSlotOperationsMatchModel) {
  VMM_ARENA_OR_SKIP(arena, GetParam(), 64 << 20);
  const uint64_t page = arena->page_size();
  const int kSlots = 16;
  auto r = *Reservation::Reserve(kSlots * page);
  std::vector<int> model(kSlots, -1);  // tag of the extent in each slot, -1 empty
  std::vector<Extent> extents;
  for (int i = 0; i < 12; ++i) {
    extents.push_back(*arena->Allocate(page));
    Fill(extents.back(), static_cast<uint8_t>(i + 1));
  }
  std::mt19937 rng(42);
  for (int step = 0; step < 400; ++step) {
    const int s = rng() % kSlots, t = rng() % kSlots;
    switch (rng() % 4) {
      case 0: {
        const int x = rng() % extents.size();
        Status st = r->Map(s * page, extents[x], 0, 0, {Protection::kReadWrite, rng() % 2 == 0});
        ASSERT_EQ(st.ok(), model[s] < 0) << st.ToString();
        if (st.ok()) model[s] = x;
        break;
      }
      case 1:
        ASSERT_EQ(r->Unmap(s * page).ok(), model[s] >= 0);
        model[s] = -1;
        break;
      case 2: {
        Status st = r->Move(s * page, *r, t * page);
        ASSERT_EQ(st.ok(), model[s] >= 0 && model[t] < 0) << st.ToString();
        if (st.ok()) std::swap(model[s], model[t]);
        break;
      }
      case 3: {
        Status st = r->Swap(s * page, t * page);
        ASSERT_EQ(st.ok(), model[s] >= 0 && model[t] >= 0) << st.ToString();
        if (st.ok()) std::swap(model[s], model[t]);
        break;
      }
    }
    for (int i = 0; i < kSlots; ++i) {
      if (model[i] >= 0) {
        ASSERT_EQ(r->base()[i * page + 17], model[i] + 1) << "slot " << i;
      }
    }
    ASSERT_TRUE(r->CheckInvariants().ok());
    if (step % 20 == 0) {
      ASSERT_TRUE(MatchesKernel(*r)) << "step " << step;
    }
  }
  EXPECT_TRUE(MatchesKernel(*r));
}

INSTANTIATE_TEST_SUITE_P(Kinds, ReservationTest,
                         ::testing::Values(PageSizePolicy::kSmall, PageSizePolicy::kShmemThp,
                                           PageSizePolicy::kHugetlb),
                         [](const auto& info) {
                           std::string n = testing::PolicyName(info.param);
                           return n == "4k" ? std::string("small4k") : n;
                         });

TEST(StatsTest, ReportMentionsEverything) {
  const std::string rep = Report();
  for (const char* w :
       {"arenas", "reservations", "moved (mremap)", "copied (memcpy)", "vm.max_map_count="}) {
    EXPECT_NE(rep.find(w), std::string::npos) << w << " missing from:\n" << rep;
  }
  EXPECT_GT(ProcessVmaCount(), 5);
}

}  // namespace
}  // namespace vmm
