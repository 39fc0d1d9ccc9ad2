// engine/deployment.h: the placement rule on 1..3 devices (every tensor exactly where the rule
// says, one group per (layer, expert), `want` filtering) and the arena sizes.
#include "engine/deployment.h"

#include <gtest/gtest.h>

#include <map>
#include <set>
#include <string>

namespace emoe::engine {
namespace {

ModelConfig Tiny() {
  auto c = PresetConfig("tiny");
  EXPECT_TRUE(c.ok()) << c.status().ToString();
  return *c;
}

std::string GroupOf(const TensorSpec& s) {
  return "layer" + std::to_string(s.layer) + ".expert" + std::to_string(s.expert);
}

// Every tensor of `specs` is in `table` exactly where the rule puts it under `placement`.
void ExpectRule(const std::vector<TensorSpec>& specs, const std::vector<int>& devices,
                const experts::ExpertPlacement& placement, const hbm::PlacementTable& table) {
  ASSERT_EQ(table.size(), specs.size());
  std::map<std::string, std::set<std::string>> groups;  // group -> tensor names
  for (const TensorSpec& s : specs) {
    auto it = table.find(s.name);
    ASSERT_NE(it, table.end()) << s.name;
    const hbm::PlacementDecision& d = it->second;
    if (s.expert >= 0) {
      EXPECT_EQ(d.usage, hbm::Usage::kExperts) << s.name;
      EXPECT_EQ(d.devices, std::vector<int>{placement.owner[s.layer][s.expert]}) << s.name;
      EXPECT_EQ(d.group, GroupOf(s)) << s.name;
      groups[d.group].insert(s.name);
    } else {
      EXPECT_EQ(d.usage, hbm::Usage::kWeights) << s.name;
      EXPECT_EQ(d.devices, devices) << s.name;
      EXPECT_EQ(d.group, "") << s.name;
    }
  }
  // One group per (layer, expert), holding that expert's matrices only.
  const ModelConfig c = Tiny();
  EXPECT_EQ(groups.size(), static_cast<size_t>(c.num_hidden_layers * c.num_experts));
  for (const auto& [group, names] : groups) {
    EXPECT_EQ(names.size(), 3u) << group;  // gate/up/down (w1/w3/w2)
  }
}

TEST(DeploymentTableTest, TheRuleOnOneToThreeDevices) {
  const ModelConfig c = Tiny();
  const std::vector<TensorSpec> specs = ExpectedTensors(c);
  for (const std::vector<int>& devices :
       std::vector<std::vector<int>>{{0}, {0, 1}, {0, 1, 2}, {1, 4, 6}}) {
    SCOPED_TRACE(devices.size());
    auto placement = experts::InitialPlacement(c.num_hidden_layers, c.num_experts, devices);
    ASSERT_TRUE(placement.ok()) << placement.status().ToString();
    ExpectRule(specs, devices, *placement, DeploymentTable(specs, devices, *placement));
    // A null filter and an accept-all filter give the same table.
    const hbm::PlacementTable all =
        DeploymentTable(specs, devices, *placement, [](const TensorSpec&, int) { return true; });
    ExpectRule(specs, devices, *placement, all);
  }
}

// The experts follow the placement given, not a fixed round-robin.
TEST(DeploymentTableTest, ExpertsFollowThePlacement) {
  const ModelConfig c = Tiny();
  const std::vector<TensorSpec> specs = ExpectedTensors(c);
  auto two = experts::InitialPlacement(c.num_hidden_layers, c.num_experts, {0, 1});
  ASSERT_TRUE(two.ok());
  auto three = experts::Rebalance(*two, {0, 1, 2});
  ASSERT_TRUE(three.ok());
  ExpectRule(specs, {0, 1, 2}, *three, DeploymentTable(specs, {0, 1, 2}, *three));
}

TEST(DeploymentTableTest, WantFilters) {
  const ModelConfig c = Tiny();
  const std::vector<TensorSpec> specs = ExpectedTensors(c);
  const std::vector<int> devices = {0, 1, 2};
  auto placement = experts::InitialPlacement(c.num_hidden_layers, c.num_experts, devices);
  ASSERT_TRUE(placement.ok());
  // Only what device 2 needs (a device added to a running set).
  std::set<std::pair<std::string, int>> asked;
  const hbm::PlacementTable added =
      DeploymentTable(specs, devices, *placement, [&](const TensorSpec& s, int d) {
        asked.insert({s.name, d});
        return d == 2;
      });
  size_t on_two = 0;
  for (const TensorSpec& s : specs) {
    auto it = added.find(s.name);
    if (s.expert >= 0) {
      const int owner = placement->owner[s.layer][s.expert];
      // An expert is asked about its owner only.
      EXPECT_TRUE(asked.count({s.name, owner})) << s.name;
      EXPECT_EQ(asked.count({s.name, (owner + 1) % 3}), 0u) << s.name;
      if (owner != 2) {
        EXPECT_EQ(it, added.end()) << s.name << ": left on no device, so absent";
        continue;
      }
      ASSERT_NE(it, added.end()) << s.name;
      EXPECT_EQ(it->second.devices, std::vector<int>{2});
      EXPECT_EQ(it->second.usage, hbm::Usage::kExperts);
      EXPECT_EQ(it->second.group, GroupOf(s));
    } else {
      ASSERT_NE(it, added.end()) << s.name;
      EXPECT_EQ(it->second.devices, std::vector<int>{2});
      EXPECT_EQ(it->second.usage, hbm::Usage::kWeights);
    }
    ++on_two;
  }
  EXPECT_EQ(added.size(), on_two);
  // Nothing wanted: an empty table.
  EXPECT_TRUE(DeploymentTable(specs, devices, *placement, [](const TensorSpec&, int) {
                return false;
              }).empty());
  // Only the experts: the dense tensors are absent.
  const hbm::PlacementTable experts_only = DeploymentTable(
      specs, devices, *placement, [](const TensorSpec& s, int) { return s.expert >= 0; });
  EXPECT_EQ(experts_only.size(), static_cast<size_t>(c.num_hidden_layers * c.num_experts * 3));
}

TEST(ArenaBytesTest, ModelArenasFromTheCheckpoint) {
  const ModelConfig c = Tiny();
  hbm::Checkpoint ckpt;
  uint64_t dense = 0, expert = 0;
  for (const TensorSpec& s : ExpectedTensors(c)) {
    hbm::TensorInfo t;
    t.name = s.name;
    t.size_bytes = 1000 + s.name.size();
    (s.expert >= 0 ? expert : dense) += t.size_bytes + 8192;
    ckpt.tensors.push_back(t);
  }
  for (int n = 1; n <= 3; ++n) {
    const ArenaBytes a = ModelArenaBytes(c, ckpt, n);
    EXPECT_EQ(a.weights_bytes, dense + (4ull << 20));
    EXPECT_EQ(a.experts_bytes,
              expert / n + (c.num_experts / n + 1) * c.num_hidden_layers * (2ull << 20));
    EXPECT_EQ(a.kv_bytes, 0u);
    EXPECT_EQ(a.total_bytes(), a.weights_bytes + a.experts_bytes);
    EXPECT_EQ(a.usage_bytes()[static_cast<int>(hbm::Usage::kExperts)], a.experts_bytes);
  }
}

TEST(ArenaBytesTest, KvIsWhatTheModelLeavesAtMostTheLimit) {
  EXPECT_EQ(*KvBytesLeft(100 << 20, 40 << 20), 60u << 20);
  EXPECT_EQ(*KvBytesLeft(8ull << 30, 1ull << 30), kMaxAutoKvBytes);
  EXPECT_EQ(*KvBytesLeft(100 << 20, 40 << 20, 8 << 20), 8u << 20);
  auto none = KvBytesLeft(41 << 20, 40 << 20);
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.status().code(), vmm::StatusCode::kResourceExhausted);
  EXPECT_EQ(none.status().message(),
            "the weights need 40 MiB per device, leaving no KV memory in a device of 41 MiB");
}

}  // namespace
}  // namespace emoe::engine
