#include "vmm/arena.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <vector>

#include "test_util.h"
#include "vmm/stats.h"

namespace vmm {
namespace {

using testing::MakeArena;

class ArenaKindTest : public ::testing::TestWithParam<PageSizePolicy> {};

TEST_P(ArenaKindTest, CreateSealNameAndTouch) {
  VMM_ARENA_OR_SKIP(arena, GetParam(), 8 << 20);
  const uint64_t page = arena->page_size();
  EXPECT_EQ(arena->capacity_bytes(), 8u << 20);
  EXPECT_EQ(page, PageKindSize(arena->kind()));
  ASSERT_TRUE(arena->CheckInvariants().ok());
  // Sealed: nobody holding the fd can shrink or grow it.
  EXPECT_NE(ftruncate(arena->fd(), 0), 0);
  EXPECT_EQ(errno, EPERM);
  EXPECT_NE(ftruncate(arena->fd(), 16 << 20), 0);
  // Named in /proc/self/maps.
  bool named = false;
  for (const auto& l : testing::ReadMaps()) {
    if (l.path.find("vmm:test") != std::string::npos) named = true;
  }
  EXPECT_TRUE(named) << "the direct map should show as memfd:vmm:test";
  // The direct map is usable memory.
  auto e = arena->Allocate(3 * page);
  ASSERT_TRUE(e.ok()) << e.status().ToString();
  std::memset(e->data(), 0x5a, e->size_bytes());
  EXPECT_EQ(static_cast<uint8_t*>(e->data())[e->size_bytes() - 1], 0x5a);
}

TEST(ArenaTest, ShmemThpReallyGivesHugePages) {
  VMM_ARENA_OR_SKIP(arena, PageSizePolicy::kShmemThp, 8 << 20);
  auto fallbacks = [] {
    std::ifstream vmstat("/proc/vmstat");
    std::string key;
    long value = 0;
    while (vmstat >> key >> value) {
      if (key == "thp_file_fallback") return value;
    }
    return 0L;
  };
  const long fallbacks_before = fallbacks();
  std::memset(arena->direct_map(), 1, 8 << 20);
  // smaps of the direct map must show PMD-mapped shmem.
  std::ifstream smaps("/proc/self/smaps");
  std::string line;
  bool in_arena = false;
  long pmd_kb = -1;
  char want[32];
  std::snprintf(want, sizeof(want), "%lx-", reinterpret_cast<unsigned long>(arena->direct_map()));
  while (std::getline(smaps, line)) {
    if (line.rfind(want, 0) == 0) in_arena = true;
    if (in_arena && line.rfind("ShmemPmdMapped:", 0) == 0) {
      pmd_kb = std::atol(line.c_str() + 15);
      break;
    }
  }
  if (pmd_kb < 2048 && fallbacks() > fallbacks_before) {
    GTEST_SKIP() << "the kernel had no free 2 MiB page (thp_file_fallback rose): memory is "
                    "fragmented, so shmem fell back to 4 KiB pages as documented";
  }
  EXPECT_GE(pmd_kb, 2048) << "expected at least one 2 MiB PMD mapping of the shmem arena";
}

INSTANTIATE_TEST_SUITE_P(Kinds, ArenaKindTest,
                         ::testing::Values(PageSizePolicy::kSmall, PageSizePolicy::kShmemThp,
                                           PageSizePolicy::kHugetlb),
                         [](const auto& info) {
                           return std::string(testing::PolicyName(info.param)) == "4k"
                                      ? std::string("small4k")
                                      : std::string(testing::PolicyName(info.param));
                         });

TEST(ArenaTest, AutoFallsBackWithReason) {
  ArenaOptions o;
  o.name = "auto";
  o.capacity_bytes = 4 << 20;
  auto a = Arena::Create(o);
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  if ((*a)->kind() != PageKind::kHugetlb2M) {
    EXPECT_NE((*a)->fallback_reason().find("hugetlb-2M rejected"), std::string::npos)
        << (*a)->fallback_reason();
  } else {
    EXPECT_EQ((*a)->fallback_reason(), "");
  }
}

TEST(ArenaTest, BadOptionsAreRefusedClearly) {
  ArenaOptions o;
  o.name = "bad";
  o.capacity_bytes = 0;
  EXPECT_EQ(Arena::Create(o).status().code(), StatusCode::kInvalidArgument);
  o.capacity_bytes = 1 << 20;
  o.numa_node = 4096;
  auto r = Arena::Create(o);
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("NUMA node 4096"), std::string::npos) << r.status().message();
  o.numa_node = -1;
  o.name = "";
  EXPECT_EQ(Arena::Create(o).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(ParsePageSizePolicy("huge").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(*ParsePageSizePolicy("thp"), PageSizePolicy::kShmemThp);
}

TEST(ArenaTest, NumaBindingGoesThroughTheKernel) {
  ArenaOptions o;
  o.name = "node0";
  o.capacity_bytes = 1 << 20;
  o.page_size = PageSizePolicy::kSmall;
  o.numa_node = 0;
  FaultInjectingOs os;
  o.os = &os;
  auto a = Arena::Create(o);
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  if (NumaAvailable()) {
    EXPECT_EQ(os.Calls(Syscall::kMbind), 1u);
  } else {
    EXPECT_NE((*a)->numa_note(), "");
  }
}

TEST(ArenaTest, RefcountedExtentsFreeAtLastRelease) {
  std::string skip;
  auto arena = MakeArena(PageSizePolicy::kSmall, 64 * 4096, &skip);
  ASSERT_TRUE(arena);
  Extent e = *arena->Allocate(10 * 4096);
  EXPECT_EQ(arena->Stats().used_bytes, 10u * 4096);
  {
    Extent copy = e;
    EXPECT_EQ(e.use_count(), 2);
    e.Reset();
    EXPECT_EQ(arena->Stats().used_bytes, 10u * 4096) << "one handle is still alive";
    EXPECT_TRUE(arena->CheckInvariants().ok());
  }
  EXPECT_EQ(arena->Stats().used_bytes, 0u);
  EXPECT_EQ(arena->Stats().peak_used_bytes, 10u * 4096);
  EXPECT_TRUE(arena->CheckInvariants().ok());
}

TEST(ArenaTest, ExtentKeepsArenaAlive) {
  std::string skip;
  Extent e;
  {
    auto arena = MakeArena(PageSizePolicy::kSmall, 16 * 4096, &skip);
    e = *arena->Allocate(4096);
  }
  std::memset(e.data(), 7, 4096);  // the arena lives as long as an extent of it
  EXPECT_EQ(e.arena()->Stats().live_extents, 1u);
}

TEST(ArenaTest, FullArenaGivesClearError) {
  std::string skip;
  auto arena = MakeArena(PageSizePolicy::kSmall, 16 * 4096, &skip, "tiny");
  Extent a = *arena->Allocate(12 * 4096);
  auto b = arena->Allocate(8 * 4096);
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.status().code(), StatusCode::kResourceExhausted);
  EXPECT_NE(b.status().message().find("arena 'tiny' is full"), std::string::npos)
      << b.status().message();
  EXPECT_TRUE(arena->CheckInvariants().ok());
  EXPECT_TRUE(arena->Allocate(4 * 4096).ok()) << "what fits still fits";
  EXPECT_EQ(arena->Stats().failed_allocations, 1u);
}

TEST(ArenaTest, DiscardOnFreeReturnsMemory) {
  ArenaOptions o;
  o.name = "discard";
  o.capacity_bytes = 4 << 20;
  o.page_size = PageSizePolicy::kSmall;
  o.discard_on_free = true;
  auto arena = *Arena::Create(o);
  struct stat st;
  {
    Extent e = *arena->Allocate(2 << 20);
    std::memset(e.data(), 1, e.size_bytes());
    ASSERT_EQ(fstat(arena->fd(), &st), 0);
    EXPECT_GE(st.st_blocks * 512, 2 << 20);
  }
  ASSERT_EQ(fstat(arena->fd(), &st), 0);
  EXPECT_EQ(st.st_blocks, 0) << "the freed pages should have been punched out";
  EXPECT_EQ(arena->Stats().discarded_bytes, 2u << 20);
  // Reused pages read as zero.
  Extent e = *arena->Allocate(4096);
  EXPECT_EQ(static_cast<uint8_t*>(e.data())[0], 0);
}

TEST(ArenaTest, PopulateMakesEveryPageResidentUpFront) {
  ArenaOptions o;
  o.name = "populate";
  o.capacity_bytes = 4 << 20;
  o.page_size = PageSizePolicy::kSmall;
  struct stat st;
  {
    auto lazy = *Arena::Create(o);
    ASSERT_EQ(fstat(lazy->fd(), &st), 0);
    EXPECT_EQ(st.st_blocks, 0) << "a lazy arena holds no pages before first touch";
  }
  const uint64_t populated0 = GlobalCounters().bytes_populated.load();
  o.populate = true;
  auto arena = *Arena::Create(o);
  ASSERT_EQ(fstat(arena->fd(), &st), 0);
  EXPECT_EQ(static_cast<uint64_t>(st.st_blocks) * 512, 4u << 20);
  EXPECT_EQ(GlobalCounters().bytes_populated.load() - populated0, 4u << 20);
  // Freed extents keep their pages (no discard), and fresh allocations read as zero.
  Extent e = *arena->Allocate(1 << 20);
  EXPECT_EQ(static_cast<uint8_t*>(e.data())[12345], 0);
  // populate needs the direct map and resident pages.
  o.discard_on_free = true;
  auto bad = Arena::Create(o);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("populate"), std::string::npos);
}

// Whether every page of [p, p + n) is resident (mincore over the shared mapping).
bool AllResident(const void* p, uint64_t n) {
  std::vector<unsigned char> v((n + 4095) / 4096);
  if (mincore(const_cast<void*>(p), n, v.data()) != 0) return false;
  for (unsigned char c : v) {
    if ((c & 1) == 0) return false;
  }
  return true;
}

TEST(ArenaTest, PopulatesAPrefixAtCreationAndTheRestWhenAllocated) {
  ArenaOptions o;
  o.name = "populate-prefix";
  o.capacity_bytes = 8 << 20;
  o.page_size = PageSizePolicy::kSmall;
  o.populate = true;
  o.populate_bytes = (2 << 20) - 100;  // rounded up to whole pages
  const uint64_t populated0 = GlobalCounters().bytes_populated.load();
  auto arena = *Arena::Create(o);
  struct stat st;
  ASSERT_EQ(fstat(arena->fd(), &st), 0);
  EXPECT_EQ(static_cast<uint64_t>(st.st_blocks) * 512, 2u << 20);
  EXPECT_EQ(arena->resident_prefix_bytes(), 2u << 20);
  EXPECT_EQ(GlobalCounters().bytes_populated.load() - populated0, 2u << 20);
  // An allocation reaching past the prefix is resident when handed out: only the part past
  // the prefix is populated then.
  Extent a = *arena->Allocate(3 << 20);
  ASSERT_EQ(a.offset_bytes(), 0u);
  EXPECT_TRUE(AllResident(a.data(), a.size_bytes()));
  EXPECT_EQ(GlobalCounters().bytes_populated.load() - populated0, 3u << 20);
  EXPECT_EQ(arena->resident_prefix_bytes(), 3u << 20);  // contiguous with the prefix
  // Growing in place populates the new tail.
  ASSERT_TRUE(arena->Resize(a, 4 << 20).ok());
  EXPECT_TRUE(AllResident(a.data(), a.size_bytes()));
  ASSERT_EQ(fstat(arena->fd(), &st), 0);
  EXPECT_EQ(static_cast<uint64_t>(st.st_blocks) * 512, 4u << 20);
  EXPECT_EQ(arena->resident_prefix_bytes(), 4u << 20);
  // Populate ahead of time extends the prefix when it starts inside it, not otherwise.
  ASSERT_TRUE(arena->Populate(6 << 20, 1 << 20).ok());
  EXPECT_EQ(arena->resident_prefix_bytes(), 4u << 20);
  ASSERT_TRUE(arena->Populate(4 << 20, 2 << 20).ok());
  EXPECT_EQ(arena->resident_prefix_bytes(), 6u << 20);
  ASSERT_EQ(fstat(arena->fd(), &st), 0);
  EXPECT_EQ(static_cast<uint64_t>(st.st_blocks) * 512, 7u << 20);
  EXPECT_EQ(arena->Populate(4096, 100).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(arena->Populate(8 << 20, 4096).code(), StatusCode::kInvalidArgument);
  // An arena whose maximal blocks end with small ones (4 MiB + 2 MiB + 1 MiB + ... of 4 KiB
  // pages) hands out its resident prefix first: nothing more is populated for an allocation
  // that fits there (the buddy order alone would take the 4 KiB block at the very end).
  o.name = "prefix-first";
  o.capacity_bytes = (7 << 20) + 4096;
  o.populate_bytes = 1 << 20;
  auto prefixed = *Arena::Create(o);
  const uint64_t populated1 = GlobalCounters().bytes_populated.load();
  Extent p = *prefixed->Allocate(4096);
  EXPECT_LT(p.offset_bytes(), 1u << 20);
  Extent q = *prefixed->Allocate(64 << 10);
  EXPECT_LT(q.offset_bytes() + q.size_bytes(), (1u << 20) + 1);
  EXPECT_EQ(GlobalCounters().bytes_populated.load(), populated1);
  // Without populate, allocations stay lazy.
  o.name = "lazy";
  o.capacity_bytes = 8 << 20;
  o.populate = false;
  auto lazy = *Arena::Create(o);
  Extent l = *lazy->Allocate(1 << 20);
  ASSERT_EQ(fstat(lazy->fd(), &st), 0);
  EXPECT_EQ(st.st_blocks, 0);
  EXPECT_EQ(lazy->resident_prefix_bytes(), 0u);
}

TEST(ArenaTest, ViewsAndImportedArenasDoNotAllocate) {
  std::string skip;
  auto arena = MakeArena(PageSizePolicy::kSmall, 16 * 4096, &skip, "owner");
  Extent owned = *arena->Allocate(4 * 4096);
  std::memset(owned.data(), 3, owned.size_bytes());
  auto v = arena->View(owned.offset_bytes() + 4096, 4096);
  ASSERT_TRUE(v.ok());
  EXPECT_FALSE(v->owned());
  EXPECT_EQ(static_cast<uint8_t*>(v->data())[0], 3);
  EXPECT_EQ(arena->View(1, 4096).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(arena->View(16 * 4096, 4096).status().code(), StatusCode::kOutOfRange);

  ExportedArena ex = *arena->Export();
  EXPECT_NE(ex.fd.get(), arena->fd());
  auto meta = ExportedArena::ParseMetadata(ex.SerializeMetadata());
  ASSERT_TRUE(meta.ok()) << meta.status().ToString();
  EXPECT_EQ(meta->name, "owner");
  EXPECT_EQ(meta->capacity_bytes, 16u * 4096);
  meta->fd = std::move(ex.fd);
  auto imported = Arena::Import(std::move(*meta));
  ASSERT_TRUE(imported.ok()) << imported.status().ToString();
  EXPECT_EQ((*imported)->Allocate(4096).status().code(), StatusCode::kFailedPrecondition);
  Extent iv = *(*imported)->View(owned.offset_bytes(), 4096);
  EXPECT_EQ(static_cast<uint8_t*>(iv.data())[0], 3) << "same memory through the import";
  EXPECT_TRUE((*imported)->CheckInvariants().ok());
}

TEST(ArenaTest, ImportRejectsLies) {
  std::string skip;
  auto arena = MakeArena(PageSizePolicy::kSmall, 16 * 4096, &skip, "liar");
  ExportedArena ex = *arena->Export();
  ex.capacity_bytes *= 2;
  auto r = Arena::Import(std::move(ex));
  EXPECT_EQ(r.status().code(), StatusCode::kDataLoss) << r.status().ToString();

  ExportedArena ex2 = *arena->Export();
  ex2.kind = PageKind::kHugetlb2M;
  ex2.page_size = kHugePageSize;
  ex2.capacity_bytes = kHugePageSize;
  EXPECT_FALSE(Arena::Import(std::move(ex2)).ok());

  // An unsealed memfd is refused: its owner could truncate it under us.
  ExportedArena ex3;
  ex3.fd.Reset(memfd_create("unsealed", MFD_CLOEXEC));
  ASSERT_EQ(ftruncate(ex3.fd.get(), 4096), 0);
  ex3.capacity_bytes = 4096;
  ex3.page_size = 4096;
  EXPECT_EQ(Arena::Import(std::move(ex3)).status().code(), StatusCode::kFailedPrecondition);

  EXPECT_EQ(ExportedArena::ParseMetadata("garbage").status().code(), StatusCode::kDataLoss);
  EXPECT_EQ(ExportedArena::ParseMetadata("vmm-arena-v1;capacity=x").status().code(),
            StatusCode::kDataLoss);
}

// Fills page i of `e` with the byte i + 1.
void FillPages(const Extent& e) {
  const uint64_t page = e.arena()->page_size();
  for (uint64_t i = 0; i < e.num_pages(); ++i) {
    std::memset(static_cast<uint8_t*>(e.data()) + i * page, static_cast<int>(i + 1), page);
  }
}

// True when the first `pages` pages of `e` still hold what FillPages wrote.
::testing::AssertionResult PagesIntact(const Extent& e, uint64_t pages) {
  const uint64_t page = e.arena()->page_size();
  const auto* p = static_cast<const uint8_t*>(e.data());
  for (uint64_t i = 0; i < pages; ++i) {
    for (uint64_t b : {uint64_t{0}, page / 2, page - 1}) {
      if (p[i * page + b] != static_cast<uint8_t>(i + 1)) {
        return ::testing::AssertionFailure() << "page " << i << " byte " << b << " holds "
                                             << int{p[i * page + b]} << ", expected " << i + 1;
      }
    }
  }
  return ::testing::AssertionSuccess();
}

TEST(ArenaTest, ResizeShrinksAndGrowsInPlace) {
  std::string skip;
  auto arena = MakeArena(PageSizePolicy::kSmall, 16 * 4096, &skip, "kv");
  ASSERT_TRUE(arena);
  Extent e = *arena->Allocate(16 * 4096);
  FillPages(e);
  Extent copy = e;  // a second handle must see every new size
  void* const data = e.data();

  // Shrink: 6 pages (rounded up from a partial page), the first six untouched.
  ASSERT_TRUE(arena->Resize(e, 5 * 4096 + 1).ok());
  EXPECT_EQ(e.first_page(), 0u);
  EXPECT_EQ(e.num_pages(), 6u);
  EXPECT_EQ(copy.size_bytes(), 6u * 4096);
  EXPECT_EQ(e.data(), data);
  EXPECT_TRUE(PagesIntact(e, 6));
  ArenaStats s = arena->Stats();
  EXPECT_EQ(s.used_bytes, 6u * 4096);
  EXPECT_EQ(s.peak_used_bytes, 16u * 4096);
  EXPECT_EQ(s.live_extents, 1u);
  EXPECT_EQ(s.shrinks, 1u);
  EXPECT_EQ(s.frees, 0u) << "a shrink is not a free: the extent is still live";
  ASSERT_TRUE(arena->CheckInvariants().ok()) << arena->CheckInvariants().ToString();

  // The freed tail is allocatable by someone else, right after the kept pages.
  {
    Extent other = *arena->Allocate(10 * 4096);
    EXPECT_EQ(other.first_page(), 6u);
    std::memset(other.data(), 0xee, other.size_bytes());
    EXPECT_TRUE(PagesIntact(e, 6));
    ASSERT_TRUE(arena->CheckInvariants().ok());
  }

  // Grow back once the tail is free again: same pointer, kept pages unchanged.
  ASSERT_TRUE(arena->Resize(e, 16 * 4096).ok());
  EXPECT_EQ(e.num_pages(), 16u);
  EXPECT_EQ(copy.num_pages(), 16u);
  EXPECT_EQ(copy.size_bytes(), 16u * 4096);
  EXPECT_EQ(e.data(), data);
  EXPECT_TRUE(PagesIntact(e, 6));
  EXPECT_EQ(static_cast<uint8_t*>(e.data())[15 * 4096], 0xee) << "no discard: old contents";
  s = arena->Stats();
  EXPECT_EQ(s.used_bytes, 16u * 4096);
  EXPECT_EQ(s.grows, 1u);
  EXPECT_EQ(s.allocations, 2u);
  EXPECT_EQ(s.frees, 1u);
  ASSERT_TRUE(arena->CheckInvariants().ok()) << arena->CheckInvariants().ToString();

  // The same size in pages changes nothing.
  ASSERT_TRUE(arena->Resize(e, 16 * 4096 - 7).ok());
  EXPECT_EQ(arena->Stats().grows + arena->Stats().shrinks, 2u);

  // Releasing every handle frees the resized run exactly.
  e.Reset();
  EXPECT_EQ(arena->Stats().used_bytes, 16u * 4096) << "the copy still holds it";
  copy.Reset();
  s = arena->Stats();
  EXPECT_EQ(s.used_bytes, 0u);
  EXPECT_EQ(s.live_extents, 0u);
  EXPECT_EQ(s.frees, 2u);
  EXPECT_EQ(s.largest_free_bytes, 16u * 4096);
  EXPECT_TRUE(arena->CheckInvariants().ok());
}

TEST(ArenaTest, ResizeGrowRefusedNamesWhatIsInTheWay) {
  std::string skip;
  auto arena = MakeArena(PageSizePolicy::kSmall, 16 * 4096, &skip, "kv");
  ASSERT_TRUE(arena);
  Extent a = *arena->Allocate(4 * 4096);
  Extent b = *arena->Allocate(4 * 4096);
  ASSERT_EQ(a.first_page(), 0u);
  ASSERT_EQ(b.first_page(), 4u);
  FillPages(a);

  Status st = arena->Resize(a, 6 * 4096);
  ASSERT_EQ(st.code(), StatusCode::kResourceExhausted) << st.ToString();
  for (const char* part : {"arena 'kv'", "extent pages [0, 4)", "to 6 pages", "pages [4, 6)",
                           "extent pages [4, 8) is in the way"}) {
    EXPECT_NE(st.message().find(part), std::string::npos) << part << " in: " << st.message();
  }
  EXPECT_EQ(a.num_pages(), 4u);
  EXPECT_TRUE(PagesIntact(a, 4));
  ArenaStats s = arena->Stats();
  EXPECT_EQ(s.used_bytes, 8u * 4096);
  EXPECT_EQ(s.failed_grows, 1u);
  EXPECT_EQ(s.grows, 0u);
  EXPECT_EQ(s.failed_allocations, 0u);
  ASSERT_TRUE(arena->CheckInvariants().ok());

  // Free pages first, then a used one: the extent in the way is still found.
  b.Reset();
  Extent hole = *arena->Allocate(2 * 4096);
  Extent c = *arena->Allocate(2 * 4096);
  ASSERT_EQ(hole.first_page(), 4u);
  ASSERT_EQ(c.first_page(), 6u);
  hole.Reset();
  st = arena->Resize(a, 8 * 4096);
  ASSERT_EQ(st.code(), StatusCode::kResourceExhausted);
  EXPECT_NE(st.message().find("extent pages [6, 8) is in the way"), std::string::npos)
      << st.message();
  EXPECT_EQ(a.num_pages(), 4u);
  ASSERT_TRUE(arena->CheckInvariants().ok());
  ASSERT_TRUE(arena->Resize(a, 6 * 4096).ok()) << "up to the neighbour is fine";
  EXPECT_EQ(a.num_pages(), 6u);
  ASSERT_TRUE(arena->CheckInvariants().ok());

  // Past the capacity.
  Extent tail = *arena->Allocate(8 * 4096);
  ASSERT_EQ(tail.first_page(), 8u);
  st = arena->Resize(tail, 9 * 4096);
  ASSERT_EQ(st.code(), StatusCode::kResourceExhausted);
  EXPECT_NE(st.message().find("past the capacity of 16 pages"), std::string::npos) << st.message();
  EXPECT_EQ(tail.num_pages(), 8u);
  EXPECT_EQ(arena->Stats().failed_grows, 3u);

  a.Reset();
  c.Reset();
  tail.Reset();
  EXPECT_EQ(arena->Stats().used_bytes, 0u);
  EXPECT_TRUE(arena->CheckInvariants().ok());
}

TEST(ArenaTest, ResizeRefusesWhatItDoesNotOwn) {
  std::string skip;
  auto arena = MakeArena(PageSizePolicy::kSmall, 16 * 4096, &skip, "kv");
  auto other = MakeArena(PageSizePolicy::kSmall, 16 * 4096, &skip, "other");
  ASSERT_TRUE(arena && other);
  Extent owned = *arena->Allocate(4 * 4096);
  Extent view = *arena->View(owned.offset_bytes(), 2 * 4096);
  Status st = arena->Resize(view, 4096);
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("not owned"), std::string::npos) << st.message();
  EXPECT_EQ(view.num_pages(), 2u);

  st = arena->Resize(owned, 0);
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("0 bytes"), std::string::npos) << st.message();
  EXPECT_EQ(owned.num_pages(), 4u);

  Extent empty;
  EXPECT_EQ(arena->Resize(empty, 4096).code(), StatusCode::kInvalidArgument);

  st = other->Resize(owned, 2 * 4096);
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("another arena"), std::string::npos) << st.message();
  EXPECT_EQ(owned.num_pages(), 4u);

  ExportedArena ex = *arena->Export();
  auto imported = Arena::Import(std::move(ex));
  ASSERT_TRUE(imported.ok()) << imported.status().ToString();
  Extent iv = *(*imported)->View(0, 4 * 4096);
  EXPECT_EQ((*imported)->Resize(iv, 2 * 4096).code(), StatusCode::kInvalidArgument);

  const ArenaStats s = arena->Stats();
  EXPECT_EQ(s.used_bytes, 4u * 4096);
  EXPECT_EQ(s.grows + s.shrinks + s.failed_grows, 0u);
  EXPECT_TRUE(arena->CheckInvariants().ok());
  EXPECT_TRUE(other->CheckInvariants().ok());
}

TEST(ArenaTest, ResizeShrinkDiscardsTheTail) {
  ArenaOptions o;
  o.name = "discard";
  o.capacity_bytes = 4 << 20;
  o.page_size = PageSizePolicy::kSmall;
  o.discard_on_free = true;
  auto arena = *Arena::Create(o);
  struct stat st;
  Extent e = *arena->Allocate(2 << 20);
  FillPages(e);
  ASSERT_EQ(fstat(arena->fd(), &st), 0);
  EXPECT_GE(st.st_blocks * 512, 2 << 20);

  ASSERT_TRUE(arena->Resize(e, 512 << 10).ok());
  EXPECT_EQ(arena->Stats().discarded_bytes, (2u << 20) - (512u << 10));
  ASSERT_EQ(fstat(arena->fd(), &st), 0);
  EXPECT_LT(st.st_blocks * 512, 2 << 20) << "the tail should have been punched out";
  EXPECT_GE(st.st_blocks * 512, 512 << 10) << "the kept pages stay";
  EXPECT_TRUE(PagesIntact(e, e.num_pages()));
  ASSERT_TRUE(arena->CheckInvariants().ok());

  // Grown back, the punched pages read as zero.
  ASSERT_TRUE(arena->Resize(e, 2 << 20).ok());
  EXPECT_TRUE(PagesIntact(e, 128));
  EXPECT_EQ(static_cast<uint8_t*>(e.data())[(1 << 20) + 17], 0);
  e.Reset();
  const ArenaStats s = arena->Stats();
  EXPECT_EQ(s.discarded_bytes, (2u << 20) - (512u << 10) + (2u << 20));
  EXPECT_EQ(s.used_bytes, 0u);
  EXPECT_TRUE(arena->CheckInvariants().ok());
}

TEST(ArenaTest, StatsReadable) {
  std::string skip;
  auto arena = MakeArena(PageSizePolicy::kSmall, 1 << 20, &skip, "stats");
  Extent e = *arena->Allocate(256 << 10);
  const std::string s = arena->Stats().ToString();
  EXPECT_NE(s.find("arena 'stats' (4K)"), std::string::npos) << s;
  EXPECT_NE(s.find("used 0.2 MiB"), std::string::npos) << s;
}

}  // namespace
}  // namespace vmm
