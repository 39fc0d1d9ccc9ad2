// ScalePlan: the elastic plan and its memory needs as pure functions: placement, copies,
// outgoing records, per-device needs and refusals, without any memory.
#include "scale/scale_plan.h"

#include <gtest/gtest.h>

#include <set>

namespace emoe::engine {
namespace {

struct Fixture {
  ModelConfig config = *PresetConfig("tiny");
  std::vector<TensorSpec> specs = ExpectedTensors(config);
  experts::ExpertPlacement from =
      *experts::InitialPlacement(config.num_hidden_layers, config.num_experts, {0, 1});
};

// A device with `free_mib` free in every arena and `capacity_mib` of capacity, `used_mib` used.
hbm::DeviceStats Device(int id, uint64_t free_mib, uint64_t capacity_mib, uint64_t used_mib) {
  hbm::DeviceStats s;
  s.device = id;
  for (auto& u : s.usage) {
    u.free_bytes = free_mib << 20;
    u.page_size = 4096;
  }
  s.capacity_bytes = capacity_mib << 20;
  s.used_bytes = used_mib << 20;
  return s;
}

PlanSizes Sizes(const ScalePlan& p) {
  PlanSizes s;
  s.dense_bytes = 3 << 20;
  for (const auto& m : p.redistribution.moves) s.expert_extent_bytes[{m.layer, m.expert}] = 1 << 20;
  s.expert_bytes = 1 << 20;
  return s;
}

TEST(ScalePlanTest, ScaleUpCopiesDenseWeightsAndIncomingExpertsOnly) {
  Fixture f;
  auto p = PlanElastic(f.from, {0, 1}, {0, 1, 2}, f.specs, "g0/");
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  EXPECT_EQ(p->added, (std::vector<int>{2}));
  EXPECT_TRUE(p->removed.empty());
  ASSERT_FALSE(p->copies.empty());
  // First the dense weights from the first serving device, then one copy per moved expert.
  EXPECT_EQ(p->copies[0].from, 0);
  EXPECT_EQ(p->copies[0].to, 2);
  EXPECT_EQ(p->copies[0].usage, hbm::Usage::kWeights);
  EXPECT_EQ(p->copies[0].names, p->dense);
  EXPECT_EQ(p->copies.size(), 1 + p->redistribution.moves.size());
  std::set<std::string> outgoing;
  for (size_t i = 1; i < p->copies.size(); ++i) {
    const auto& c = p->copies[i];
    const auto& m = p->redistribution.moves[i - 1];
    EXPECT_EQ(c.usage, hbm::Usage::kExperts);
    EXPECT_EQ(c.to, 2) << "scaling up, experts only move to the new device";
    EXPECT_EQ(c.from, f.from.owner[m.layer][m.expert]);
    EXPECT_EQ(c.names, p->expert_names.at({m.layer, m.expert}));
    for (const std::string& n : c.names) {
      EXPECT_EQ(n.rfind("g0/", 0), 0u) << n;
      outgoing.insert(n);
    }
  }
  // Everything copied in is freed on its old owner after the switch, and nothing else.
  EXPECT_EQ(p->outgoing.size(), outgoing.size());
  for (const auto& [name, dev] : p->outgoing) {
    EXPECT_TRUE(outgoing.count(name)) << name;
    EXPECT_NE(dev, 2);
  }
  // Balanced after the move; every dense tensor named once.
  for (int l = 0; l < f.config.num_hidden_layers; ++l) {
    for (int d : {0, 1, 2}) EXPECT_GE(p->placement.LocalExperts(l, d).size(), 1u);
  }
  for (const TensorSpec& s : f.specs) {
    if (s.expert < 0) {
      EXPECT_EQ(std::count(p->dense.begin(), p->dense.end(), "g0/" + s.name), 1) << s.name;
    }
  }
}

TEST(ScalePlanTest, ScaleDownMovesExpertsOffTheLeavingDevice) {
  Fixture f;
  auto from =
      *experts::InitialPlacement(f.config.num_hidden_layers, f.config.num_experts, {0, 1, 2});
  auto p = PlanElastic(from, {0, 1, 2}, {0, 1}, f.specs, "g0/");
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  EXPECT_TRUE(p->added.empty());
  EXPECT_EQ(p->removed, (std::vector<int>{2}));
  for (const auto& c : p->copies) {
    EXPECT_EQ(c.usage, hbm::Usage::kExperts) << "no dense copies without added devices";
    EXPECT_EQ(c.from, 2);
  }
  for (int l = 0; l < f.config.num_hidden_layers; ++l) {
    EXPECT_TRUE(p->placement.LocalExperts(l, 2).empty());
  }
}

TEST(ScalePlanTest, NeedCountsWhatEachDeviceReceivesAndNewKvStores) {
  Fixture f;
  auto p = *PlanElastic(f.from, {0, 1}, {0, 1, 2}, f.specs, "g0/");
  const std::vector<hbm::DeviceStats> stats = {Device(0, 64, 128, 32), Device(1, 64, 128, 32),
                                               Device(2, 64, 128, 0)};
  auto need =
      PlanNeed(p, Sizes(p), stats, {0, 1}, 4 << 20, ScaleOptions{}, f.config.num_hidden_layers);
  ASSERT_TRUE(need.ok()) << need.status().ToString();
  const uint64_t moved = p.redistribution.moves.size();
  EXPECT_EQ(need->at(0), 0u);
  EXPECT_EQ(need->at(1), 0u);
  EXPECT_EQ(need->at(2), (3u << 20) + moved * (1u << 20) + (4u << 20));
  // The no-zero-copy ablation also needs private copies of the dense weights and local experts.
  ScaleOptions nz;
  nz.zero_copy = false;
  auto need_nz = PlanNeed(p, Sizes(p), stats, {0, 1}, 4 << 20, nz, f.config.num_hidden_layers);
  ASSERT_TRUE(need_nz.ok());
  EXPECT_GT(need_nz->at(0), 3u << 20);
  EXPECT_GT(need_nz->at(2), need->at(2));
}

TEST(ScalePlanTest, RefusalNamesTheDeviceAndTheUsage) {
  Fixture f;
  auto p = *PlanElastic(f.from, {0, 1}, {0, 1, 2}, f.specs, "g0/");
  std::vector<hbm::DeviceStats> stats = {Device(0, 64, 128, 32), Device(1, 64, 128, 32),
                                         Device(2, 64, 128, 0)};
  stats[2].usage[static_cast<int>(hbm::Usage::kWeights)].free_bytes = 1 << 20;  // 3 MiB needed
  auto need = PlanNeed(p, Sizes(p), stats, {0, 1}, 4 << 20, {}, f.config.num_hidden_layers);
  ASSERT_EQ(need.status().code(), vmm::StatusCode::kResourceExhausted);
  const std::string why = need.status().ToString();
  EXPECT_NE(why.find("device 2 needs 3 MiB more weight memory but has 1 MiB free"),
            std::string::npos)
      << why;
  EXPECT_NE(why.find("serving continues on [0,1]"), std::string::npos) << why;
  stats[2] = Device(2, 64, 128, 0);
  stats[2].usage[static_cast<int>(hbm::Usage::kKv)].free_bytes = 1 << 20;
  need = PlanNeed(p, Sizes(p), stats, {0, 1}, 4 << 20, {}, f.config.num_hidden_layers);
  EXPECT_NE(need.status().ToString().find("more KV memory"), std::string::npos)
      << need.status().ToString();
  // A device the statistics do not know is refused, not read out of bounds.
  stats.pop_back();
  EXPECT_EQ(
      PlanNeed(p, Sizes(p), stats, {0, 1}, 4 << 20, {}, f.config.num_hidden_layers).status().code(),
      vmm::StatusCode::kInvalidArgument);
}

TEST(ScalePlanTest, ImpossiblePlansAreRefused) {
  Fixture f;
  EXPECT_FALSE(PlanElastic(f.from, {0, 1}, {}, f.specs, "g0/").ok());
}

}  // namespace
}  // namespace emoe::engine
