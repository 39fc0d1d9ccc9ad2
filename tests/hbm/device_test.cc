#include "hbm/device.h"

#include <gtest/gtest.h>

#include <cstring>

namespace emoe::hbm {
namespace {

std::vector<vmm::NumaNode> TwoNodes() {
  vmm::NumaNode a, b;
  a.id = 0;
  a.cpus = {0, 1, 2, 3};
  a.mem_total_bytes = 8ll << 30;
  b.id = 1;
  b.cpus = {4, 5};
  b.mem_total_bytes = 4ll << 30;
  return {a, b};
}

TEST(PlanDevicesTest, OneDevicePerNodeByDefault) {
  auto d = PlanDevices({}, TwoNodes());
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  ASSERT_EQ(d->size(), 2u);
  EXPECT_EQ((*d)[1].node, 1);
  EXPECT_EQ((*d)[1].capacity_bytes, 4ull << 30);
  EXPECT_EQ((*d)[0].cpus.size(), 4u);
}

TEST(PlanDevicesTest, SlicesNodesWithDisjointCpus) {
  DeviceOptions o;
  o.devices_per_node = 2;
  o.capacity_bytes = 1ull << 30;
  o.pin_cpus = true;
  auto d = PlanDevices(o, TwoNodes());
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  ASSERT_EQ(d->size(), 4u);
  EXPECT_EQ((*d)[0].cpus, (std::vector<int>{0, 1}));
  EXPECT_EQ((*d)[1].cpus, (std::vector<int>{2, 3}));
  EXPECT_EQ((*d)[3].cpus, (std::vector<int>{5}));
  EXPECT_EQ((*d)[3].id, 3);
}

TEST(PlanDevicesTest, MoreDevicesThanCpusShareUnlessPinned) {
  DeviceOptions o;
  o.devices_per_node = 3;
  o.nodes = {1};
  auto d = PlanDevices(o, TwoNodes());
  ASSERT_TRUE(d.ok());
  EXPECT_EQ((*d)[2].cpus, (std::vector<int>{4, 5}));
  o.pin_cpus = true;
  auto e = PlanDevices(o, TwoNodes());
  EXPECT_EQ(e.status().code(), vmm::StatusCode::kInvalidArgument);
  EXPECT_NE(e.status().message().find("has 2 CPUs"), std::string::npos) << e.status().message();
}

TEST(PlanDevicesTest, ImpossibleSpecsAreRefused) {
  DeviceOptions o;
  o.capacity_bytes = 5ull << 30;  // node 1 has 4 GiB
  auto d = PlanDevices(o, TwoNodes());
  EXPECT_EQ(d.status().code(), vmm::StatusCode::kInvalidArgument);
  EXPECT_NE(d.status().message().find("node 1"), std::string::npos) << d.status().message();
  o = {};
  o.nodes = {7};
  EXPECT_NE(PlanDevices(o, TwoNodes()).status().message().find("node 7"), std::string::npos);
  o = {};
  o.devices_per_node = 0;
  EXPECT_FALSE(PlanDevices(o, TwoNodes()).ok());
}

TEST(DeviceTest, ArenasPerUsageWithAccounting) {
  DeviceSpec spec;
  spec.id = 2;
  spec.node = 0;
  spec.capacity_bytes = 64 << 20;
  DeviceMemoryOptions m;
  m.usage_bytes = {16 << 20, 8 << 20, 0};
  m.page_size = vmm::PageSizePolicy::kSmall;
  auto d = Device::Create(spec, m);
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_EQ((*d)->arena(Usage::kWeights)->name(), "dev2.weights");
  EXPECT_EQ((*d)->arena(Usage::kKv), nullptr);
  auto w = (*d)->Allocate(Usage::kWeights, 1 << 20);
  ASSERT_TRUE(w.ok());
  auto kv = (*d)->Allocate(Usage::kKv, 4096);
  EXPECT_EQ(kv.status().code(), vmm::StatusCode::kFailedPrecondition);
  auto big = (*d)->Allocate(Usage::kExperts, 9 << 20);
  EXPECT_EQ(big.status().code(), vmm::StatusCode::kResourceExhausted);
  EXPECT_NE(big.status().message().find("device 2 experts"), std::string::npos)
      << big.status().message();
  DeviceStats s = (*d)->Stats();
  EXPECT_EQ(s.used_bytes, 1u << 20);
  EXPECT_NE(s.ToString().find("dev2.weights"), std::string::npos);

  // Arenas may reserve more than the device holds; the capacity bounds what they hold.
  m.usage_bytes = {80 << 20, 64 << 20, 0};
  auto big_arenas = Device::Create(spec, m);
  ASSERT_TRUE(big_arenas.ok()) << big_arenas.status().ToString();
  auto over = (*big_arenas)->Allocate(Usage::kWeights, 65 << 20);
  EXPECT_EQ(over.status().code(), vmm::StatusCode::kResourceExhausted);
  EXPECT_NE(over.status().message().find("capacity of 64.0 MiB"), std::string::npos)
      << over.status().message();
  m.usage_bytes = {0, 0, 0};
  EXPECT_EQ(Device::Create(spec, m).status().code(), vmm::StatusCode::kInvalidArgument);
}

// The capacity bounds what the arenas hold together: memory one usage gives back another can
// take, and growing an extent counts like allocating.
TEST(DeviceTest, CapacityIsSharedByEveryUsage) {
  DeviceSpec spec;
  spec.id = 1;
  spec.capacity_bytes = 16 << 20;
  DeviceMemoryOptions m;
  m.usage_bytes = {16 << 20, 16 << 20, 16 << 20};
  m.page_size = vmm::PageSizePolicy::kSmall;
  auto d = Device::Create(spec, m);
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  Device& dev = **d;
  auto kv = dev.Allocate(Usage::kKv, 10 << 20);
  ASSERT_TRUE(kv.ok()) << kv.status().ToString();
  auto w = dev.Allocate(Usage::kWeights, 4 << 20);
  ASSERT_TRUE(w.ok()) << w.status().ToString();
  EXPECT_EQ(dev.free_bytes(), 2u << 20);
  // 4 MiB of experts would fit in their arena but not in the device.
  auto e = dev.Allocate(Usage::kExperts, 4 << 20);
  ASSERT_EQ(e.status().code(), vmm::StatusCode::kResourceExhausted);
  const std::string& why = e.status().message();
  EXPECT_NE(why.find("device 1 is full"), std::string::npos) << why;
  EXPECT_NE(why.find("kv 10.0 MiB"), std::string::npos) << why;
  EXPECT_NE(why.find("weights 4.0 MiB"), std::string::npos) << why;
  // The KV gives 4 MiB back: now the experts fit, and the KV cannot grow back over them.
  ASSERT_TRUE(dev.Resize(Usage::kKv, *kv, 6 << 20).ok());
  EXPECT_EQ(kv->size_bytes(), 6u << 20);
  e = dev.Allocate(Usage::kExperts, 4 << 20);
  ASSERT_TRUE(e.ok()) << e.status().ToString();
  Status grow = dev.Resize(Usage::kKv, *kv, 10 << 20);
  EXPECT_EQ(grow.code(), vmm::StatusCode::kResourceExhausted) << grow.ToString();
  EXPECT_EQ(kv->size_bytes(), 6u << 20);
  EXPECT_EQ(dev.Stats().used_bytes, 14u << 20);
  // An extent of another usage's arena is refused by name.
  EXPECT_EQ(dev.Resize(Usage::kWeights, *kv, 1 << 20).code(), vmm::StatusCode::kInvalidArgument);
  e->Reset();
  ASSERT_TRUE(dev.Resize(Usage::kKv, *kv, 10 << 20).ok());
  EXPECT_EQ(dev.free_bytes(), 2u << 20);
}

// Weights and experts are sealed against writes (only the HMM's direct maps write them); KV,
// which instances write, is not and still discards freed pages when asked.
TEST(DeviceTest, WeightsAndExpertsAreSealedKvIsNot) {
  DeviceSpec spec;
  spec.id = 0;
  spec.capacity_bytes = 16 << 20;
  DeviceMemoryOptions m;
  m.usage_bytes = {4 << 20, 4 << 20, 4 << 20};
  m.page_size = vmm::PageSizePolicy::kSmall;
  m.discard_on_free = true;
  auto d = Device::Create(spec, m);
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_TRUE((*d)->arena(Usage::kWeights)->write_sealed());
  EXPECT_TRUE((*d)->arena(Usage::kExperts)->write_sealed());
  EXPECT_FALSE((*d)->arena(Usage::kKv)->write_sealed());
  for (Usage u : {Usage::kWeights, Usage::kKv}) {
    auto e = (*d)->Allocate(u, 1 << 20);
    ASSERT_TRUE(e.ok()) << e.status().ToString();
    std::memset(e->data(), 0x5a, e->size_bytes());  // the direct map writes either kind
    e->Reset();
  }
  EXPECT_EQ((*d)->arena(Usage::kWeights)->Stats().discarded_bytes, 0u) << "kept in the pool";
  EXPECT_EQ((*d)->arena(Usage::kKv)->Stats().discarded_bytes, 1u << 20);
  m.seal_weights = false;
  auto open = Device::Create(spec, m);
  ASSERT_TRUE(open.ok()) << open.status().ToString();
  EXPECT_FALSE((*open)->arena(Usage::kWeights)->write_sealed());
  EXPECT_FALSE((*open)->arena(Usage::kExperts)->write_sealed());
}

}  // namespace
}  // namespace emoe::hbm
