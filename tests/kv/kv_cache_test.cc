#include "kv/kv_cache.h"

#include <gtest/gtest.h>

#include <map>
#include <random>
#include <set>

namespace emoe::kv {
namespace {

TEST(BlockPoolTest, RandomAllocateRefReleaseKeepsInvariants) {
  BlockPool pool(64);
  std::map<BlockId, int> refs;  // model
  std::mt19937 rng(3);
  for (int step = 0; step < 3000; ++step) {
    const int op = rng() % 3;
    if (op == 0) {
      const int64_t n = rng() % 6;
      auto r = pool.Allocate(n);
      const int64_t free_before = 64 - static_cast<int64_t>(refs.size());
      ASSERT_EQ(r.ok(), n <= free_before);
      if (!r.ok()) {
        EXPECT_EQ(r.status().code(), vmm::StatusCode::kResourceExhausted);
        EXPECT_EQ(pool.free_blocks(), free_before) << "all or nothing";
        continue;
      }
      for (BlockId b : *r) ASSERT_TRUE(refs.emplace(b, 1).second) << "block handed out twice";
    } else if (!refs.empty()) {
      auto it = refs.begin();
      std::advance(it, rng() % refs.size());
      if (op == 1) {
        pool.Ref(it->first);
        ++it->second;
      } else {
        pool.Unref(it->first);
        if (--it->second == 0) refs.erase(it);
      }
    }
    ASSERT_TRUE(pool.CheckInvariants().ok()) << pool.CheckInvariants().ToString();
    ASSERT_EQ(pool.free_blocks(), 64 - static_cast<int64_t>(refs.size()));
  }
}

TEST(BlockPoolDeathTest, DoubleReleaseAborts) {
  BlockPool pool(4);
  auto b = *pool.Allocate(1);
  pool.Unref(b[0]);
  EXPECT_DEATH(pool.Unref(b[0]), "double release");
}

std::unique_ptr<hbm::Device> KvDevice(uint64_t kv_bytes) {
  hbm::DeviceSpec spec;
  spec.id = 0;
  spec.capacity_bytes = 64 << 20;
  hbm::DeviceMemoryOptions m;
  m.usage_bytes = {0, 0, kv_bytes};
  m.page_size = vmm::PageSizePolicy::kSmall;
  return std::move(*hbm::Device::Create(spec, m));
}

TEST(KvStoreTest, BlocksLiveInTheDevicesKvArena) {
  auto dev = KvDevice(1 << 20);
  KvGeometry g{2, 2, 8, 4};  // 2 layers, 2 heads of 8, 4 tokens per block: 1 KiB per block
  ASSERT_EQ(g.block_bytes(), 1024u);
  auto store = KvStore::Create(*dev, g);
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  EXPECT_EQ((*store)->pool().num_blocks(), 1024);
  EXPECT_EQ(dev->Stats().usage[static_cast<int>(hbm::Usage::kKv)].used_bytes, 1u << 20);
  // Key/Value slots are disjoint and inside the extent.
  std::set<float*> seen;
  auto* lo = reinterpret_cast<float*>((*store)->data());
  auto* hi = lo + (*store)->size_bytes() / sizeof(float);
  for (BlockId b : {0, 1, 1023}) {
    for (int64_t l = 0; l < 2; ++l) {
      for (int64_t s = 0; s < 4; ++s) {
        for (float* p : {(*store)->Key(b, l, s), (*store)->Value(b, l, s)}) {
          ASSERT_TRUE(seen.insert(p).second);
          ASSERT_GE(p, lo);
          ASSERT_LE(p + g.token_floats(), hi);
        }
      }
    }
  }
  const KvGeometry huge{64, 8, 128, 16};  // 8 MiB blocks: none fits in a 4 KiB arena
  auto none = KvStore::Create(*KvDevice(4096), huge);
  EXPECT_EQ(none.status().code(), vmm::StatusCode::kResourceExhausted);
  EXPECT_NE(none.status().message().find("hold no block"), std::string::npos);
  hbm::DeviceSpec spec;
  spec.capacity_bytes = 1 << 20;
  hbm::DeviceMemoryOptions m;
  m.usage_bytes = {1 << 20, 0, 0};
  m.page_size = vmm::PageSizePolicy::kSmall;
  auto no_kv = hbm::Device::Create(spec, m);
  EXPECT_EQ(KvStore::Create(**no_kv, g).status().code(), vmm::StatusCode::kFailedPrecondition);
}

TEST(PagedSequenceTest, GrowsByBlocksAndFailsCleanlyWhenFull) {
  auto dev = KvDevice(16 << 10);
  KvGeometry g{1, 1, 16, 4};                                               // 512 bytes per block
  auto store = std::move(*KvStore::Create(*dev, g, 8 * g.block_bytes()));  // 8 blocks
  PagedSequence a(store.get()), b(store.get());
  ASSERT_TRUE(a.Reserve(9).ok());  // 3 blocks
  EXPECT_EQ(a.blocks().size(), 3u);
  ASSERT_TRUE(a.Reserve(12).ok());
  EXPECT_EQ(a.blocks().size(), 3u) << "still fits";
  ASSERT_TRUE(b.Reserve(20).ok());  // 5 blocks: the pool is full
  EXPECT_EQ(store->pool().free_blocks(), 0);
  Status s = a.Reserve(13);
  EXPECT_EQ(s.code(), vmm::StatusCode::kResourceExhausted) << s.ToString();
  EXPECT_EQ(a.blocks().size(), 3u) << "a refused reservation changes nothing";
  // Positions map through the block table.
  *a.Key(0, 5) = 42.0f;
  EXPECT_EQ(*store->Key(a.blocks()[1], 0, 1), 42.0f);
  b.Release();
  EXPECT_EQ(store->pool().free_blocks(), 5);
  EXPECT_TRUE(a.Reserve(13).ok());
  EXPECT_TRUE(store->pool().CheckInvariants().ok());
}

}  // namespace
}  // namespace emoe::kv
