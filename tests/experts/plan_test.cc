// Redistribution plans: generated plans satisfy every invariant, hand-corrupted ones are refused
// with the violation named.
#include "experts/plan.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <iterator>
#include <numeric>
#include <string>
#include <tuple>
#include <vector>

namespace emoe::experts {
namespace {

std::vector<int> Range(int n) {
  std::vector<int> v(n);
  std::iota(v.begin(), v.end(), 0);
  return v;
}

RedistributionPlan MakePlan(int layers, int experts, std::vector<int> from, std::vector<int> to) {
  const ExpertPlacement a = *InitialPlacement(layers, experts, std::move(from));
  const ExpertPlacement b = *Rebalance(a, std::move(to));
  return *PlanRedistribution(a, b);
}

::testing::AssertionResult RejectedWith(const RedistributionPlan& p, const std::string& needle) {
  const Status s = p.Validate();
  if (s.ok()) return ::testing::AssertionFailure() << "accepted a corrupted plan";
  if (s.code() != vmm::StatusCode::kInvalidArgument) {
    return ::testing::AssertionFailure() << "wrong code: " << s.ToString();
  }
  if (s.message().find(needle) == std::string::npos) {
    return ::testing::AssertionFailure()
           << "'" << s.message() << "' does not name '" << needle << "'";
  }
  return ::testing::AssertionSuccess();
}

// Plans between every pair of device sets are valid and consistent with their placements.
TEST(PlanTest, GeneratedPlansAreValid) {
  std::vector<std::vector<int>> sets;
  for (int n = 1; n <= 6; ++n) sets.push_back(Range(n));
  sets.push_back({0, 2, 5});
  sets.push_back({3, 7});
  for (int e : {1, 5, 8, 17, 32}) {
    for (const auto& a : sets) {
      for (const auto& b : sets) {
        const RedistributionPlan plan = MakePlan(3, e, a, b);
        const std::string what = plan.Summary();
        ASSERT_TRUE(plan.Validate().ok()) << what << ": " << plan.Validate().ToString();
        EXPECT_EQ(plan.retained_count() + plan.moved_count(), 3 * e) << what;

        std::vector<int> all;
        std::set_union(a.begin(), a.end(), b.begin(), b.end(), std::back_inserter(all));
        EXPECT_EQ(plan.per_device.size(), all.size() * 3) << what;
        std::vector<int> added, removed;
        std::set_difference(b.begin(), b.end(), a.begin(), a.end(), std::back_inserter(added));
        std::set_difference(a.begin(), a.end(), b.begin(), b.end(), std::back_inserter(removed));
        EXPECT_EQ(plan.added_devices(), added) << what;
        EXPECT_EQ(plan.removed_devices(), removed) << what;

        // The per-device view adds up to the global one.
        int64_t incoming = 0, outgoing = 0, retained = 0;
        for (int d : all) {
          for (int l = 0; l < 3; ++l) {
            const DeviceLayerPlan* p = plan.Find(d, l);
            ASSERT_NE(p, nullptr) << what << " device " << d << " layer " << l;
            EXPECT_EQ(p->device, d);
            EXPECT_EQ(p->layer, l);
            incoming += static_cast<int64_t>(p->incoming.size());
            outgoing += static_cast<int64_t>(p->outgoing.size());
            retained += static_cast<int64_t>(p->retained.size());
            for (const ExpertMove& m : p->incoming) {
              EXPECT_NE(std::find(plan.moves.begin(), plan.moves.end(), m), plan.moves.end());
            }
            // A removed device keeps nothing; an added one gives up nothing.
            if (std::count(removed.begin(), removed.end(), d)) {
              EXPECT_TRUE(p->retained.empty());
            }
            if (std::count(added.begin(), added.end(), d)) {
              EXPECT_TRUE(p->outgoing.empty());
            }
          }
        }
        EXPECT_EQ(incoming, plan.moved_count()) << what;
        EXPECT_EQ(outgoing, plan.moved_count()) << what;
        EXPECT_EQ(retained, plan.retained_count()) << what;
        EXPECT_EQ(plan.Find(99, 0), nullptr);
        EXPECT_EQ(plan.Find(a[0], 3), nullptr);
      }
    }
  }
}

TEST(PlanTest, WorkedExample) {
  // 7 experts, {0, 1} -> {0, 1, 2}: experts 5 (from dev1) and 6 (from dev0) go to dev2.
  const RedistributionPlan plan = MakePlan(2, 7, {0, 1}, {0, 1, 2});
  ASSERT_EQ(plan.moves.size(), 4u);
  EXPECT_EQ(plan.moves[0], (ExpertMove{0, 5, 1, 2}));
  EXPECT_EQ(plan.moves[1], (ExpertMove{0, 6, 0, 2}));
  EXPECT_EQ(plan.moves[3], (ExpertMove{1, 6, 0, 2}));
  const DeviceLayerPlan* d0 = plan.Find(0, 1);
  ASSERT_NE(d0, nullptr);
  EXPECT_EQ(d0->retained, (std::vector<int>{0, 2, 4}));
  EXPECT_TRUE(d0->incoming.empty());
  EXPECT_EQ(d0->outgoing, (std::vector<int>{6}));
  const DeviceLayerPlan* d2 = plan.Find(2, 0);
  ASSERT_NE(d2, nullptr);
  EXPECT_TRUE(d2->retained.empty());
  EXPECT_EQ(d2->incoming, (std::vector<ExpertMove>{{0, 5, 1, 2}, {0, 6, 0, 2}}));
  EXPECT_EQ(plan.Summary(), "2 -> 3 devices: 4 of 14 experts move, 10 retained");
  EXPECT_EQ(plan.added_devices(), (std::vector<int>{2}));
  EXPECT_TRUE(plan.removed_devices().empty());
}

TEST(PlanTest, IdentityPlanMovesNothing) {
  const ExpertPlacement a = *InitialPlacement(3, 10, {1, 4});
  auto plan = PlanRedistribution(a, a);
  ASSERT_TRUE(plan.ok());
  EXPECT_TRUE(plan->Validate().ok());
  EXPECT_EQ(plan->moved_count(), 0);
  EXPECT_EQ(plan->retained_count(), 30);
  for (const DeviceLayerPlan& p : plan->per_device) {
    EXPECT_EQ(p.retained, a.LocalExperts(p.layer, p.device));
    EXPECT_TRUE(p.incoming.empty());
    EXPECT_TRUE(p.outgoing.empty());
  }
}

TEST(PlanTest, RefusesInvalidOrMismatchedPlacements) {
  const ExpertPlacement a = *InitialPlacement(2, 8, {0, 1});
  EXPECT_EQ(PlanRedistribution(a, *InitialPlacement(3, 8, {0, 1})).status().code(),
            vmm::StatusCode::kInvalidArgument);
  EXPECT_EQ(PlanRedistribution(a, *InitialPlacement(2, 9, {0, 1})).status().code(),
            vmm::StatusCode::kInvalidArgument);
  ExpertPlacement bad = a;
  bad.owner[1][2] = 5;
  EXPECT_EQ(PlanRedistribution(a, bad).status().code(), vmm::StatusCode::kInvalidArgument);
  EXPECT_EQ(PlanRedistribution(bad, a).status().code(), vmm::StatusCode::kInvalidArgument);
  EXPECT_EQ(PlanRedistribution(a, ExpertPlacement{}).status().code(),
            vmm::StatusCode::kInvalidArgument);
}

TEST(PlanTest, ValidateRejectsCorruptedPlans) {
  const RedistributionPlan good = MakePlan(3, 16, {0, 1}, {0, 1, 2});
  ASSERT_TRUE(good.Validate().ok());
  ASSERT_GE(good.moves.size(), 3u);

  RedistributionPlan p = good;
  const ExpertMove dropped = p.moves[1];
  p.moves.erase(p.moves.begin() + 1);
  EXPECT_TRUE(RejectedWith(p, "missing move of expert " + std::to_string(dropped.expert) +
                                  " of layer " + std::to_string(dropped.layer)));

  p = good;
  p.moves[0].from = p.moves[0].from == 0 ? 1 : 0;  // wrong source
  EXPECT_TRUE(RejectedWith(p, "disagrees with the placements"));

  p = good;
  p.moves[0].to = 0;  // wrong destination
  EXPECT_TRUE(RejectedWith(p, "move 0"));

  p = good;
  std::swap(p.moves[0], p.moves[1]);
  EXPECT_TRUE(RejectedWith(p, "ascending"));

  p = good;
  p.moves.push_back(p.moves.back());  // a duplicate
  EXPECT_TRUE(RejectedWith(p, "ascending"));

  p = good;
  p.moves.push_back({0, good.from.LocalExperts(0, 0)[0], 0, 1});  // an expert that stays
  std::sort(p.moves.begin(), p.moves.end(), [](const ExpertMove& x, const ExpertMove& y) {
    return std::tie(x.layer, x.expert) < std::tie(y.layer, y.expert);
  });
  EXPECT_TRUE(RejectedWith(p, "stays on device 0"));

  p = good;
  p.moves.push_back({3, 0, 0, 2});  // no such layer
  EXPECT_TRUE(RejectedWith(p, "names no expert"));

  // A device with a missing layer entry.
  p = good;
  const auto it =
      std::find_if(p.per_device.begin(), p.per_device.end(),
                   [](const DeviceLayerPlan& x) { return x.device == 2 && x.layer == 1; });
  ASSERT_NE(it, p.per_device.end());
  p.per_device.erase(it);
  EXPECT_TRUE(RejectedWith(p, "device 2 layer 1: no entry"));

  // The last entry missing, and an extra one for a device outside old ∪ new.
  p = good;
  p.per_device.pop_back();
  EXPECT_TRUE(RejectedWith(p, "device 2 layer 2: no entry"));
  p = good;
  p.per_device.push_back({7, 0, {}, {}, {}});
  EXPECT_TRUE(RejectedWith(p, "device entries"));

  // A wrong source inside a device's incoming list.
  p = good;
  {
    DeviceLayerPlan& d2 = p.per_device[p.Find(2, 0) - p.per_device.data()];
    ASSERT_FALSE(d2.incoming.empty());
    d2.incoming[0].from = d2.incoming[0].from == 0 ? 1 : 0;
  }
  EXPECT_TRUE(RejectedWith(p, "device 2 layer 0: incoming"));

  // An incoming expert missing: the new experts no longer add up.
  p = good;
  p.per_device[p.Find(2, 1) - p.per_device.data()].incoming.pop_back();
  EXPECT_TRUE(RejectedWith(p, "retained + incoming != its new experts"));

  // An outgoing expert also listed as retained.
  p = good;
  {
    DeviceLayerPlan& d0 = p.per_device[p.Find(0, 0) - p.per_device.data()];
    ASSERT_FALSE(d0.outgoing.empty());
    d0.retained.push_back(d0.outgoing[0]);
    std::sort(d0.retained.begin(), d0.retained.end());
  }
  EXPECT_TRUE(RejectedWith(p, "overlaps"));

  // A retained expert dropped: the old experts no longer add up.
  p = good;
  p.per_device[p.Find(1, 2) - p.per_device.data()].retained.erase(
      p.per_device[p.Find(1, 2) - p.per_device.data()].retained.begin());
  EXPECT_TRUE(RejectedWith(p, "device 1 layer 2: retained + outgoing"));

  // Unsorted lists.
  p = good;
  {
    auto& r = p.per_device[p.Find(1, 0) - p.per_device.data()].retained;
    ASSERT_GE(r.size(), 2u);
    std::swap(r[0], r[1]);
  }
  EXPECT_TRUE(RejectedWith(p, "strictly ascending"));

  // Placements of different shapes.
  p = good;
  p.to.owner.pop_back();
  EXPECT_TRUE(RejectedWith(p, "differ in shape"));
  p = good;
  p.from.owner[0][0] = 9;
  EXPECT_TRUE(RejectedWith(p, "old placement"));
}

}  // namespace
}  // namespace emoe::experts
