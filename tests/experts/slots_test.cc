// Expert slots over real arenas and real mappings: each slot shows its extent's pages (zero
// copy), the tail past a smaller extent stays unmapped, lifetimes follow the extent handles,
// failures leave nothing mapped; and the naive contiguous copy it is measured against.
#include "experts/slots.h"

#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "test_util.h"
#include "vmm/vmm.h"

namespace emoe::experts {
namespace {

using vmm::Extent;
using vmm::PageSizePolicy;
using vmm::StatusCode;

constexpr uint64_t kPage = vmm::kSmallPageSize;

// Byte j of expert `tag`: distinct per expert and per offset.
uint8_t Pattern(int tag, uint64_t j) { return static_cast<uint8_t>(tag * 37 + j * 7 + (j >> 12)); }

void Fill(const Extent& x, int tag) {
  auto* p = static_cast<uint8_t*>(x.data());
  for (uint64_t j = 0; j < x.size_bytes(); ++j) p[j] = Pattern(tag, j);
}

::testing::AssertionResult Holds(const uint8_t* p, uint64_t n, int tag) {
  for (uint64_t j = 0; j < n; ++j) {
    if (p[j] != Pattern(tag, j)) {
      return ::testing::AssertionFailure() << "byte " << j << " is " << int{p[j]} << ", expert "
                                           << tag << " has " << int{Pattern(tag, j)};
    }
  }
  return ::testing::AssertionSuccess();
}

uint64_t Used(const vmm::Arena& a) { return a.Stats().used_bytes; }

// Two 4 KiB arenas (standing for a device's own pages and freshly copied ones), extents of 1, 3
// and 2 pages dealt between them.
struct World {
  std::shared_ptr<vmm::Arena> a, b;
  std::vector<Extent> extents;
};

World MakeWorld() {
  World w;
  std::string skip;
  w.a = vmm::testing::MakeArena(PageSizePolicy::kSmall, 1 << 20, &skip, "experts.a");
  w.b = vmm::testing::MakeArena(PageSizePolicy::kSmall, 1 << 20, &skip, "experts.b");
  if (!w.a || !w.b) return w;
  const uint64_t pages[] = {1, 3, 2};
  for (int i = 0; i < 3; ++i) {
    auto x = (i == 1 ? w.b : w.a)->Allocate(pages[i] * kPage);
    vmm::CheckOk(x.status(), "allocate a test extent");
    Fill(*x, i);
    w.extents.push_back(*x);
  }
  return w;
}

TEST(SlotBytesForTest, LargestExtentRoundedToTheLargestPage) {
  World w = MakeWorld();
  ASSERT_EQ(w.extents.size(), 3u);
  EXPECT_EQ(SlotBytesFor(w.extents), 3 * kPage);
  EXPECT_EQ(SlotBytesFor({}), 0u);
  EXPECT_EQ(SlotBytesFor({w.extents[0]}), kPage);
}

TEST(ExpertSlotsTest, EachSlotShowsItsExtent) {
  World w = MakeWorld();
  ASSERT_EQ(w.extents.size(), 3u);
  const uint64_t slot_bytes = SlotBytesFor(w.extents);
  auto slots = ExpertSlots::Create("dev0.layer0", slot_bytes, w.extents);
  ASSERT_TRUE(slots.ok()) << slots.status().ToString();
  const ExpertSlots& s = **slots;
  ASSERT_EQ(s.num_slots(), 3);
  EXPECT_EQ(s.slot_bytes(), slot_bytes);
  ASSERT_NE(s.base(), nullptr);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(s.base()) % vmm::kHugePageSize, 0u);
  EXPECT_EQ(s.mapped_bytes(), 6 * kPage);
  EXPECT_EQ(s.slot(3), nullptr);
  EXPECT_EQ(s.slot(-1), nullptr);
  const vmm::Reservation* r = s.reservation();
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r->size(), 3 * slot_bytes);
  EXPECT_TRUE(r->CheckInvariants().ok());
  EXPECT_TRUE(vmm::testing::MatchesKernel(*r));
  for (int i = 0; i < 3; ++i) {
    const Extent& x = w.extents[i];
    EXPECT_EQ(s.slot(i), s.base() + i * slot_bytes);
    EXPECT_EQ(s.extent(i).offset_bytes(), x.offset_bytes());
    EXPECT_TRUE(Holds(s.slot(i), x.size_bytes(), i)) << "slot " << i;
    // Every page of the slot is the extent's page; the rest of the slot is not mapped.
    for (uint64_t off = 0; off < slot_bytes; off += kPage) {
      auto ref = r->Lookup(s.slot(i) + off);
      if (off < x.size_bytes()) {
        ASSERT_TRUE(ref.ok()) << ref.status().ToString();
        EXPECT_EQ(ref->arena, x.arena());
        EXPECT_EQ(ref->arena_offset, x.offset_bytes() + off);
      } else {
        EXPECT_EQ(ref.status().code(), StatusCode::kNotFound) << "slot " << i << " +" << off;
      }
    }
    const auto m = r->MappingAt(i * slot_bytes);
    ASSERT_TRUE(m.has_value());
    EXPECT_EQ(m->prot, vmm::Protection::kRead);
    EXPECT_TRUE(m->populated);
  }
}

TEST(ExpertSlotsTest, WritesThroughTheExtentShowInTheSlot) {
  World w = MakeWorld();
  ASSERT_EQ(w.extents.size(), 3u);
  auto slots = ExpertSlots::Create("zero-copy", SlotBytesFor(w.extents), w.extents);
  ASSERT_TRUE(slots.ok()) << slots.status().ToString();
  const uint64_t copied_before = vmm::GlobalCounters().bytes_copied.load();
  for (int i = 0; i < 3; ++i) Fill(w.extents[i], 100 + i);
  for (int i = 0; i < 3; ++i) {
    EXPECT_TRUE(Holds((*slots)->slot(i), w.extents[i].size_bytes(), 100 + i)) << "slot " << i;
    const uint64_t a = vmm::testing::PageFrame(w.extents[i].data());
    const uint64_t b = vmm::testing::PageFrame((*slots)->slot(i));
    if (a != 0 && b != 0) {
      EXPECT_EQ(a, b) << "slot " << i << " is not the extent's page";
    }
  }
  EXPECT_EQ(vmm::GlobalCounters().bytes_copied.load(), copied_before);
}

TEST(ExpertSlotsTest, ReadWriteMappingWritesTheExtent) {
  World w = MakeWorld();
  ASSERT_EQ(w.extents.size(), 3u);
  auto slots = ExpertSlots::Create("rw", SlotBytesFor(w.extents), w.extents,
                                   {vmm::Protection::kReadWrite, /*populate=*/false});
  ASSERT_TRUE(slots.ok()) << slots.status().ToString();
  std::memset(const_cast<uint8_t*>((*slots)->slot(1)), 0xAB, kPage);
  EXPECT_EQ(static_cast<uint8_t*>(w.extents[1].data())[kPage - 1], 0xAB);
  EXPECT_FALSE((*slots)->reservation()->MappingAt(0)->populated);
}

TEST(ExpertSlotsTest, DroppingTheViewKeepsExtentsUntilTheLastHandle) {
  World w = MakeWorld();
  ASSERT_EQ(w.extents.size(), 3u);
  const uint64_t used_a = Used(*w.a), used_b = Used(*w.b);
  auto slots = ExpertSlots::Create("lifetime", SlotBytesFor(w.extents), w.extents);
  ASSERT_TRUE(slots.ok()) << slots.status().ToString();
  // Ours, the view's list and the mapping's.
  for (const Extent& x : w.extents) EXPECT_EQ(x.use_count(), 3);
  slots->reset();
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(w.extents[i].use_count(), 1);
    EXPECT_TRUE(Holds(static_cast<uint8_t*>(w.extents[i].data()), w.extents[i].size_bytes(), i));
  }
  EXPECT_EQ(Used(*w.a), used_a);
  EXPECT_EQ(Used(*w.b), used_b);

  // The other order: the view outlives our handles and keeps the pages.
  auto again = ExpertSlots::Create("lifetime2", SlotBytesFor(w.extents), w.extents);
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  w.extents.clear();
  EXPECT_EQ(Used(*w.a), used_a);
  EXPECT_EQ(Used(*w.b), used_b);
  EXPECT_TRUE(Holds((*again)->slot(1), 3 * kPage, 1));
  again->reset();
  EXPECT_EQ(Used(*w.a), 0u);
  EXPECT_EQ(Used(*w.b), 0u);
  EXPECT_EQ(w.a->Stats().live_extents, 0u);
  EXPECT_TRUE(w.a->CheckInvariants().ok());
}

TEST(ExpertSlotsTest, RefusesBadSlotSizes) {
  World w = MakeWorld();
  ASSERT_EQ(w.extents.size(), 3u);
  const int64_t reservations = vmm::GlobalCounters().reservations_now.load();
  for (uint64_t bad : {uint64_t{0}, 3 * kPage + 512, 2 * kPage, kPage}) {
    auto s = ExpertSlots::Create("bad", bad, w.extents);
    EXPECT_EQ(s.status().code(), StatusCode::kInvalidArgument) << bad;
    EXPECT_NE(s.status().message().find("expert slots 'bad': slot"), std::string::npos)
        << s.status().ToString();
  }
  // 2 pages: slot 1 (3 pages) is the one that does not fit.
  EXPECT_NE(ExpertSlots::Create("bad", 2 * kPage, w.extents).status().message().find("slot 1"),
            std::string::npos);
  std::vector<Extent> with_hole = w.extents;
  with_hole.insert(with_hole.begin() + 1, Extent());
  auto hole = ExpertSlots::Create("hole", 3 * kPage, with_hole);
  EXPECT_EQ(hole.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(hole.status().message().find("slot 1: empty extent"), std::string::npos);
  with_hole.clear();
  EXPECT_EQ(vmm::GlobalCounters().reservations_now.load(), reservations);
  for (const Extent& x : w.extents) EXPECT_EQ(x.use_count(), 1);
}

TEST(ExpertSlotsTest, NoExtentsReservesNothing) {
  const int64_t reservations = vmm::GlobalCounters().reservations_now.load();
  auto s = ExpertSlots::Create("empty", 0, {});
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ((*s)->num_slots(), 0);
  EXPECT_EQ((*s)->base(), nullptr);
  EXPECT_EQ((*s)->slot(0), nullptr);
  EXPECT_EQ((*s)->mapped_bytes(), 0u);
  EXPECT_EQ((*s)->reservation(), nullptr);
  EXPECT_EQ(vmm::GlobalCounters().reservations_now.load(), reservations);
}

// Fail each mmap and madvise that a successful Create makes: the error comes back naming the
// view, and nothing stays reserved or mapped.
TEST(ExpertSlotsTest, MapFailureLeavesNothingMapped) {
  vmm::FaultInjectingOs os;
  std::string skip;
  auto arena = vmm::testing::MakeArena(PageSizePolicy::kSmall, 1 << 20, &skip, "fault", &os);
  ASSERT_TRUE(arena);
  std::vector<Extent> extents;
  for (int i = 0; i < 4; ++i) {
    extents.push_back(*arena->Allocate(2 * kPage));
    Fill(extents.back(), i);
  }
  os.ResetCounts();
  {
    auto probe = ExpertSlots::Create("probe", 2 * kPage, extents);
    ASSERT_TRUE(probe.ok()) << probe.status().ToString();
  }
  const uint64_t mmaps = os.Calls(vmm::Syscall::kMmap);
  const uint64_t madvises = os.Calls(vmm::Syscall::kMadvise);
  ASSERT_GE(mmaps, 5u);  // the reservation and one per slot
  ASSERT_GE(madvises, 4u);
  auto& c = vmm::GlobalCounters();
  int failures = 0;
  for (auto [syscall, calls] :
       {std::pair{vmm::Syscall::kMmap, mmaps}, std::pair{vmm::Syscall::kMadvise, madvises}}) {
    for (uint64_t nth = 0; nth < calls; ++nth) {
      const int64_t reservations = c.reservations_now.load(), mappings = c.mappings_now.load();
      const int64_t mapped = c.mapped_bytes_now.load();
      os.FailNth(syscall, static_cast<int>(nth), ENOMEM);
      auto s = ExpertSlots::Create("doomed", 2 * kPage, extents);
      os.Clear();
      const std::string what = std::string(vmm::SyscallName(syscall)) + " #" + std::to_string(nth);
      ASSERT_FALSE(s.ok()) << what;
      ++failures;
      EXPECT_EQ(s.status().code(), StatusCode::kResourceExhausted) << s.status().ToString();
      EXPECT_NE(s.status().message().find("expert slots 'doomed'"), std::string::npos)
          << s.status().ToString();
      EXPECT_EQ(c.reservations_now.load(), reservations) << what;
      EXPECT_EQ(c.mappings_now.load(), mappings) << what;
      EXPECT_EQ(c.mapped_bytes_now.load(), mapped) << what;
      for (const Extent& x : extents) EXPECT_EQ(x.use_count(), 1) << what;
    }
  }
  EXPECT_GE(failures, 9);
  // And it still works afterwards.
  auto ok = ExpertSlots::Create("after", 2 * kPage, extents);
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  for (int i = 0; i < 4; ++i) EXPECT_TRUE(Holds((*ok)->slot(i), 2 * kPage, i));
}

// 2 MiB hugetlb pages: slots are whole huge pages, mixed with 4 KiB extents.
TEST(ExpertSlotsTest, HugetlbExtents) {
  VMM_ARENA_OR_SKIP(huge, PageSizePolicy::kHugetlb, 4 * vmm::kHugePageSize);
  std::string skip;
  auto small = vmm::testing::MakeArena(PageSizePolicy::kSmall, 1 << 20, &skip, "small");
  ASSERT_TRUE(small);
  const uint64_t hp = vmm::kHugePageSize;
  std::vector<Extent> extents = {*huge->Allocate(hp), *huge->Allocate(2 * hp),
                                 *small->Allocate(3 * kPage)};
  for (int i = 0; i < 3; ++i) Fill(extents[i], i);
  EXPECT_EQ(SlotBytesFor(extents), 2 * hp);
  EXPECT_EQ(ExpertSlots::Create("huge", 2 * hp + kPage, extents).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(ExpertSlots::Create("huge", hp, extents).status().code(), StatusCode::kInvalidArgument);
  auto slots = ExpertSlots::Create("huge", SlotBytesFor(extents), extents);
  ASSERT_TRUE(slots.ok()) << slots.status().ToString();
  const vmm::Reservation* r = (*slots)->reservation();
  EXPECT_TRUE(vmm::testing::MatchesKernel(*r));
  for (int i = 0; i < 3; ++i) {
    EXPECT_TRUE(Holds((*slots)->slot(i), extents[i].size_bytes(), i)) << "slot " << i;
  }
  EXPECT_EQ(r->Lookup((*slots)->slot(0) + hp).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(r->Lookup((*slots)->slot(2) + 3 * kPage).status().code(), StatusCode::kNotFound);
  EXPECT_TRUE(r->Lookup((*slots)->slot(1) + hp).ok());
  const uint64_t used = Used(*huge);
  slots->reset();
  EXPECT_EQ(Used(*huge), used);
  extents.clear();
  EXPECT_EQ(Used(*huge), 0u);
}

TEST(NaiveContiguousCopyTest, CopiesEveryExpertIntoOneBuffer) {
  World w = MakeWorld();
  ASSERT_EQ(w.extents.size(), 3u);
  std::string skip;
  auto dst = vmm::testing::MakeArena(PageSizePolicy::kSmall, 1 << 20, &skip, "naive");
  ASSERT_TRUE(dst);
  // Experts of 1 page + 1000 bytes from extents 1 (twice: sources may repeat) and 2; extent 0
  // (one page) is too short to be a source.
  const uint64_t expert_bytes = kPage + 1000;
  const std::vector<const void*> sources = {w.extents[1].data(), w.extents[1].data(),
                                            w.extents[2].data()};
  const uint64_t copied_before = vmm::GlobalCounters().bytes_copied.load();
  auto buf = NaiveContiguousCopy(*dst, 2 * kPage, sources, expert_bytes);
  ASSERT_TRUE(buf.ok()) << buf.status().ToString();
  EXPECT_EQ(buf->slot_bytes, 2 * kPage);
  EXPECT_EQ(buf->copied_bytes, 3 * expert_bytes);
  EXPECT_EQ(vmm::GlobalCounters().bytes_copied.load() - copied_before, 3 * expert_bytes);
  ASSERT_TRUE(buf->buffer.valid());
  EXPECT_EQ(buf->buffer.size_bytes(), 6 * kPage);
  EXPECT_EQ(Used(*dst), 6 * kPage);
  const auto* p = static_cast<const uint8_t*>(buf->buffer.data());
  const int tags[] = {1, 1, 2};
  for (int i = 0; i < 3; ++i) {
    EXPECT_TRUE(Holds(p + i * 2 * kPage, expert_bytes, tags[i])) << "slot " << i;
  }
  buf->buffer.Reset();
  EXPECT_EQ(Used(*dst), 0u);
}

TEST(NaiveContiguousCopyTest, TooSmallArenaFailsCleanly) {
  World w = MakeWorld();
  ASSERT_EQ(w.extents.size(), 3u);
  std::string skip;
  auto dst = vmm::testing::MakeArena(PageSizePolicy::kSmall, 16 * kPage, &skip, "tiny");
  ASSERT_TRUE(dst);
  Extent held = *dst->Allocate(6 * kPage);
  const vmm::ArenaStats before = dst->Stats();
  const uint64_t copied_before = vmm::GlobalCounters().bytes_copied.load();
  std::vector<const void*> sources(4, w.extents[1].data());
  auto buf = NaiveContiguousCopy(*dst, 3 * kPage, sources, 3 * kPage);
  EXPECT_EQ(buf.status().code(), StatusCode::kResourceExhausted) << buf.status().ToString();
  EXPECT_NE(buf.status().message().find("naive copy of 4 experts into 'tiny'"), std::string::npos)
      << buf.status().ToString();
  const vmm::ArenaStats after = dst->Stats();
  EXPECT_EQ(after.used_bytes, before.used_bytes);
  EXPECT_EQ(after.live_extents, before.live_extents);
  EXPECT_EQ(vmm::GlobalCounters().bytes_copied.load(), copied_before);
  EXPECT_TRUE(dst->CheckInvariants().ok());
}

TEST(NaiveContiguousCopyTest, RefusesBadArguments) {
  World w = MakeWorld();
  ASSERT_EQ(w.extents.size(), 3u);
  std::vector<const void*> sources = {w.extents[0].data()};
  EXPECT_EQ(NaiveContiguousCopy(*w.a, kPage + 1, sources, kPage).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(NaiveContiguousCopy(*w.a, 0, sources, 0).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(NaiveContiguousCopy(*w.a, kPage, sources, kPage + 1).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(NaiveContiguousCopy(*w.a, kPage, {nullptr}, kPage).status().code(),
            StatusCode::kInvalidArgument);
  auto none = NaiveContiguousCopy(*w.a, kPage, {}, kPage);
  ASSERT_TRUE(none.ok()) << none.status().ToString();
  EXPECT_FALSE(none->buffer.valid());
  EXPECT_EQ(none->copied_bytes, 0u);

  vmm::ArenaOptions o;
  o.name = "no-direct-map";
  o.capacity_bytes = 16 * kPage;
  o.page_size = PageSizePolicy::kSmall;
  o.direct_map = false;
  auto blind = vmm::Arena::Create(o);
  ASSERT_TRUE(blind.ok()) << blind.status().ToString();
  EXPECT_EQ(NaiveContiguousCopy(**blind, kPage, sources, kPage).status().code(),
            StatusCode::kFailedPrecondition);
  EXPECT_EQ((*blind)->Stats().used_bytes, 0u);
}

}  // namespace
}  // namespace emoe::experts
