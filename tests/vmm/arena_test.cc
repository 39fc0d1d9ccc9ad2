#include "vmm/arena.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <fstream>

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
