#include "kv/kv_cache.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
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

// A store gives memory back to its device at its end and takes it back, in place: blocks below
// the end keep their addresses and contents, blocks in use are never dropped.
TEST(KvStoreTest, ResizesInPlaceAtItsEnd) {
  auto dev = KvDevice(1 << 20);
  KvGeometry g{2, 2, 8, 4};  // 1 KiB blocks, 4 per 4 KiB page
  auto made = KvStore::Create(*dev, g, 512 << 10);
  ASSERT_TRUE(made.ok()) << made.status().ToString();
  KvStore& store = **made;
  const uint8_t* base = store.data();
  auto kv_used = [&] { return dev->Stats().usage[static_cast<int>(hbm::Usage::kKv)].used_bytes; };
  auto taken = store.pool().Allocate(3);
  ASSERT_TRUE(taken.ok());
  const BlockId high = *std::max_element(taken->begin(), taken->end());
  ASSERT_EQ(high, 2);
  std::memset(store.BlockData(high), 0x3c, g.block_bytes());
  EXPECT_EQ(store.pool().min_blocks(), 3);

  // Past a block in use: refused, nothing changes.
  Status s = store.Resize(2 * g.block_bytes());
  EXPECT_EQ(s.code(), vmm::StatusCode::kFailedPrecondition) << s.ToString();
  EXPECT_NE(s.message().find("block 2 is in use"), std::string::npos) << s.ToString();
  EXPECT_EQ(store.pool().num_blocks(), 512);
  EXPECT_EQ(kv_used(), 512u << 10);

  // Down to the used blocks (rounded up to the page: 4 blocks).
  ASSERT_TRUE(store.Resize(3 * g.block_bytes()).ok());
  EXPECT_EQ(store.pool().num_blocks(), 4);
  EXPECT_EQ(store.pool().free_blocks(), 1);
  EXPECT_EQ(store.size_bytes(), 4096u);
  EXPECT_EQ(store.data(), base);
  EXPECT_EQ(kv_used(), 4096u);
  EXPECT_EQ(dev->free_bytes(), (64u << 20) - 4096u);
  EXPECT_EQ(store.BlockData(high)[g.block_bytes() - 1], 0x3c);
  ASSERT_TRUE(store.pool().CheckInvariants().ok());

  // Someone else takes the page after it: the store cannot grow over it.
  auto neighbour = dev->Allocate(hbm::Usage::kKv, 4096);
  ASSERT_TRUE(neighbour.ok());
  ASSERT_EQ(neighbour->offset_bytes(), store.arena_offset() + 4096);
  s = store.Resize(512 << 10);
  EXPECT_EQ(s.code(), vmm::StatusCode::kResourceExhausted) << s.ToString();
  EXPECT_EQ(store.pool().num_blocks(), 4);
  neighbour->Reset();

  // Back to full size: the new blocks are free and usable, the old ones as they were.
  ASSERT_TRUE(store.Resize(512 << 10).ok());
  EXPECT_EQ(store.pool().num_blocks(), 512);
  EXPECT_EQ(store.pool().free_blocks(), 509);
  EXPECT_EQ(store.data(), base);
  EXPECT_EQ(kv_used(), 512u << 10);
  EXPECT_EQ(store.BlockData(high)[0], 0x3c);
  auto rest = store.pool().Allocate(509);
  ASSERT_TRUE(rest.ok());
  EXPECT_EQ(*std::max_element(rest->begin(), rest->end()), 511);
  std::memset(store.BlockData(511), 1, g.block_bytes());
  ASSERT_TRUE(store.pool().CheckInvariants().ok());
  EXPECT_EQ(store.Resize(100).code(), vmm::StatusCode::kInvalidArgument);
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
