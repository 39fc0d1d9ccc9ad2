// Resource limits give errors that name the limit.
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <cstdlib>
#include <string>
#include <vector>

#include "../sanitizers.h"
#include "test_util.h"
#include "vmm/vmm.h"

namespace vmm {
namespace {

// Fills the address space with VMAs (alternating protections) up to vm.max_map_count, then asks
// vmm for one more mapping.
TEST(LimitsTest, MaxMapCountIsNamed) {
  if (emoe::testing::kUnderAsan) {
    GTEST_SKIP() << "under AddressSanitizer: with vm.max_map_count exhausted its allocator cannot "
                    "map memory and aborts";
  }
  const long limit = ReadMaxMapCount();
  if (limit <= 0 || limit > 300000) GTEST_SKIP() << "vm.max_map_count=" << limit << " too large";
  std::string skip;
  auto arena = testing::MakeArena(PageSizePolicy::kSmall, 1 << 20, &skip, "limit");
  Extent e = *arena->Allocate(4096);
  auto r = *Reservation::Reserve(1 << 20, 4096);
  const uint64_t pages = static_cast<uint64_t>(limit) + 16;
  void* raw =
      mmap(nullptr, pages * 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  ASSERT_NE(raw, MAP_FAILED);
  auto* base = static_cast<uint8_t*>(raw);
  // Each mprotect of one page inside a PROT_NONE run adds VMAs until the kernel refuses.
  for (uint64_t i = 1; i < pages; i += 2) {
    if (mprotect(base + i * 4096, 4096, PROT_READ) != 0) break;
  }
  Status s = r->Map(8192, e);
  munmap(raw, pages * 4096);
  ASSERT_FALSE(s.ok()) << "mapping succeeded at " << ProcessVmaCount() << " VMAs";
  EXPECT_EQ(s.code(), StatusCode::kResourceExhausted) << s.ToString();
  EXPECT_NE(s.message().find("vm.max_map_count"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("limit is exhausted"), std::string::npos) << s.message();
  EXPECT_TRUE(testing::MatchesKernel(*r)) << "the failed map left the reservation intact";
  EXPECT_EQ(r->mapping_count(), 0u);
  EXPECT_TRUE(r->Map(8192, e).ok()) << "works again once mappings are released";
}

TEST(LimitsTest, HugetlbShortageIsExplained) {
  const HugePagePool pool = ReadHugePagePool();
  ArenaOptions o;
  o.name = "too-big";
  o.page_size = PageSizePolicy::kHugetlb;
  o.capacity_bytes = static_cast<uint64_t>(std::max(0L, pool.available()) + 1) * kHugePageSize;
  auto a = Arena::Create(o);
  ASSERT_FALSE(a.ok());
  EXPECT_EQ(a.status().code(), StatusCode::kUnavailable) << a.status().ToString();
  EXPECT_NE(a.status().message().find("vm.nr_hugepages"), std::string::npos)
      << a.status().message();
}

// A host of one node: the node can give what the host has. On VMs that add memory to the node
// as the guest first touches it, the node's own meminfo reports less (this project's CI VMs:
// 11 of 24 GiB before a run touched the rest), and sizing from it refused runs that fit.
TEST(LimitsTest, OneNodeHasTheHostsMemory) {
  const std::vector<NumaNode> nodes = NumaNodes();
  ASSERT_FALSE(nodes.empty());
  if (nodes.size() != 1) GTEST_SKIP() << nodes.size() << " NUMA nodes: each has its own memory";
  const std::string info = ReadSysFile("/proc/meminfo");
  long long total_kb = 0;
  const size_t at = info.find("MemTotal:");
  ASSERT_NE(at, std::string::npos);
  total_kb = std::atoll(info.c_str() + at + 9);
  EXPECT_GE(nodes[0].mem_total_bytes, total_kb << 10);
  EXPECT_GT(nodes[0].mem_free_bytes, 0);
}

}  // namespace
}  // namespace vmm
