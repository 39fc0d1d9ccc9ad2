// KvStoreSet: one KV store per device over the HMM's KV memory; ShrinkAhead gives back free
// blocks where a device falls short and its guard grows them back.
#include "serving/kv_store_set.h"

#include <gtest/gtest.h>

#include "engine/forward.h"
#include "hbm/hmm.h"

namespace emoe::engine {
namespace {

struct World {
  std::unique_ptr<hbm::Hmm> hmm;
  std::unique_ptr<hbm::LocalHmmControl> control;
  kv::KvGeometry geometry = KvGeometryFor(*PresetConfig("tiny"), 8);
};

// Three devices of 16 MiB capacity with 16 MiB KV arenas.
std::unique_ptr<World> MakeWorld() {
  auto w = std::make_unique<World>();
  hbm::HmmOptions o;
  o.memory.usage_bytes = {16 << 20, 0, 16 << 20};
  o.memory.page_size = vmm::PageSizePolicy::kSmall;
  std::vector<hbm::DeviceSpec> specs(3);
  for (int i = 0; i < 3; ++i) {
    specs[i].id = i;
    specs[i].cpus = {0};
    specs[i].capacity_bytes = 16 << 20;
  }
  w->hmm = std::move(*hbm::Hmm::CreateWithDevices(specs, o));
  w->control = std::make_unique<hbm::LocalHmmControl>(w->hmm.get());
  return w;
}

uint64_t Used(hbm::Hmm& hmm, int d) { return hmm.device(d).Stats().used_bytes; }

TEST(KvStoreSetTest, EnsureCreatesOnceAndDropGivesTheMemoryBack) {
  auto w = MakeWorld();
  KvStoreSet set(w->control.get(), w->geometry, 4 << 20);
  EXPECT_FALSE(set.Has(1));
  auto created = set.Ensure(1);
  ASSERT_TRUE(created.ok()) << created.status().ToString();
  EXPECT_TRUE(*created);
  EXPECT_FALSE(*set.Ensure(1)) << "a second Ensure keeps the store";
  EXPECT_EQ(Used(*w->hmm, 1), 4u << 20);
  auto stores = set.StoresFor({1, 2});
  ASSERT_EQ(stores.size(), 2u);
  EXPECT_NE(stores[0], nullptr);
  EXPECT_EQ(stores[1], nullptr);
  EXPECT_EQ(set.Find(1), stores[0]);
  set.Drop(1);
  EXPECT_FALSE(set.Has(1));
  EXPECT_EQ(Used(*w->hmm, 1), 0u);
  // A store larger than the device is refused, naming the device; nothing is left.
  KvStoreSet big(w->control.get(), w->geometry, 32 << 20);
  auto refused = big.Ensure(0);
  EXPECT_FALSE(refused.ok());
  EXPECT_NE(refused.status().ToString().find("device 0"), std::string::npos)
      << refused.status().ToString();
  EXPECT_FALSE(big.Has(0));
}

TEST(KvStoreSetTest, ShrinkAheadMakesRoomAndTheGuardGrowsItBack) {
  auto w = MakeWorld();
  KvStoreSet set(w->control.get(), w->geometry, 12 << 20);
  ASSERT_TRUE(set.Ensure(0).ok());
  const uint64_t before = set.Find(0)->size_bytes();
  uint64_t shrunk = 0;
  {
    // 8 MiB needed on device 0, which has 4 MiB free: its store gives back (at least) 4 MiB.
    auto guard = set.ShrinkAhead({{0, 8 << 20}}, "scale to [0,1]", {0}, &shrunk);
    ASSERT_TRUE(guard.ok()) << guard.status().ToString();
    EXPECT_GE(shrunk, 4u << 20);
    EXPECT_EQ(set.Find(0)->size_bytes(), before - shrunk);
    EXPECT_GE((16u << 20) - Used(*w->hmm, 0), 8u << 20);
    EXPECT_FALSE(guard->empty());
  }
  EXPECT_EQ(set.Find(0)->size_bytes(), before) << "the guard grew the store back";
  EXPECT_TRUE(set.Find(0)->pool().CheckInvariants().ok());
}

TEST(KvStoreSetTest, ShrinkAheadRefusesWhatTheStoreCannotGive) {
  auto w = MakeWorld();
  KvStoreSet set(w->control.get(), w->geometry, 12 << 20);
  ASSERT_TRUE(set.Ensure(0).ok());
  const uint64_t before = set.Find(0)->size_bytes();
  uint64_t shrunk = 0;
  auto guard = set.ShrinkAhead({{0, 15 << 20}, {1, 1 << 20}}, "scale to [0,1]", {0}, &shrunk);
  ASSERT_TRUE(guard.ok()) << "device 0 can give 11 MiB: " << guard.status().ToString();
  *guard = KvStoreSet::Guard();  // grows it back
  EXPECT_EQ(set.Find(0)->size_bytes(), before);
  // More than the whole device: refused naming the device and what it could give; nothing
  // stays shrunk.
  auto refused = set.ShrinkAhead({{0, 17 << 20}}, "scale to [0,1]", {0}, &shrunk);
  ASSERT_EQ(refused.status().code(), vmm::StatusCode::kResourceExhausted);
  const std::string why = refused.status().ToString();
  EXPECT_NE(why.find("scale to [0,1] refused: device 0 needs 17 MiB"), std::string::npos) << why;
  EXPECT_NE(why.find("can give back only"), std::string::npos) << why;
  EXPECT_NE(why.find("serving continues on [0]"), std::string::npos) << why;
  EXPECT_EQ(set.Find(0)->size_bytes(), before);
  // A device without a store cannot make room.
  auto none = set.ShrinkAhead({{2, 17 << 20}}, "scale to [2]", {0}, &shrunk);
  EXPECT_NE(none.status().ToString().find("is not there to shrink"), std::string::npos);
}

}  // namespace
}  // namespace emoe::engine
