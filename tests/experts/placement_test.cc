// Expert placement: balance, minimal movement against a lower bound and a brute force,
// determinism, and errors.
#include "experts/placement.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <functional>
#include <numeric>
#include <random>
#include <string>
#include <vector>

namespace emoe::experts {
namespace {

std::vector<int> Range(int n) {
  std::vector<int> v(n);
  std::iota(v.begin(), v.end(), 0);
  return v;
}

// Every device of the placement has floor(E/N) or ceil(E/N) experts in every layer, and the
// counts add up to E.
::testing::AssertionResult Balanced(const ExpertPlacement& p) {
  if (Status s = p.Validate(); !s.ok()) return ::testing::AssertionFailure() << s.ToString();
  const int n = static_cast<int>(p.devices.size()), e = p.num_experts();
  for (int l = 0; l < p.num_layers(); ++l) {
    const std::vector<int> c = p.Counts(l);
    if (std::accumulate(c.begin(), c.end(), 0) != e) {
      return ::testing::AssertionFailure() << "layer " << l << " counts do not add up to " << e;
    }
    for (size_t i = 0; i < c.size(); ++i) {
      if (c[i] != e / n && c[i] != (e + n - 1) / n) {
        return ::testing::AssertionFailure()
               << "layer " << l << " device " << p.devices[i] << " has " << c[i] << " of " << e
               << " experts on " << n << " devices: " << p.ToString();
      }
    }
  }
  return ::testing::AssertionSuccess();
}

int64_t Moves(const ExpertPlacement& a, const ExpertPlacement& b) {
  int64_t n = 0;
  for (int l = 0; l < a.num_layers(); ++l) {
    for (int e = 0; e < a.num_experts(); ++e) n += a.owner[l][e] != b.owner[l][e] ? 1 : 0;
  }
  return n;
}

// sum over layers of E - max over balanced targets of sum_d min(held_d, target_d): no balanced
// placement over `devices` can move fewer experts. The targets are enumerated exhaustively
// (every subset of `extra` devices that get ceil(E/N)).
int64_t LowerBound(const ExpertPlacement& prev, const std::vector<int>& devices) {
  const int n = static_cast<int>(devices.size()), e = prev.num_experts();
  const int base = e / n, extra = e % n;
  int64_t total = 0;
  for (int l = 0; l < prev.num_layers(); ++l) {
    std::vector<int> held(n, 0);
    for (int d : prev.owner[l]) {
      const auto it = std::find(devices.begin(), devices.end(), d);
      if (it != devices.end()) ++held[it - devices.begin()];
    }
    int best = -1;
    for (unsigned mask = 0; mask < (1u << n); ++mask) {
      if (std::popcount(mask) != extra) continue;
      int stay = 0;
      for (int i = 0; i < n; ++i) stay += std::min(held[i], base + ((mask >> i) & 1 ? 1 : 0));
      best = std::max(best, stay);
    }
    total += e - best;
  }
  return total;
}

// The fewest moves of any balanced placement of one layer, by trying every assignment of the
// experts to `devices` (N^E of them: keep it small).
int BruteForceLayer(const std::vector<int>& prev_row, const std::vector<int>& devices) {
  const int n = static_cast<int>(devices.size()), e = static_cast<int>(prev_row.size());
  const int lo = e / n, hi = (e + n - 1) / n;
  std::vector<int> pick(e, 0), count(n, 0);
  int best = e + 1;
  std::function<void(int, int)> rec = [&](int k, int moved) {
    if (moved >= best) return;
    if (k == e) {
      for (int c : count)
        if (c < lo || c > hi) return;
      best = moved;
      return;
    }
    for (int i = 0; i < n; ++i) {
      if (count[i] == hi) continue;
      ++count[i];
      rec(k + 1, moved + (devices[i] != prev_row[k] ? 1 : 0));
      --count[i];
    }
  };
  rec(0, 0);
  return best;
}

TEST(BalancedPlacementTest, RoundRobinAndErrors) {
  auto owner = BalancedPlacement(7, 3);
  ASSERT_TRUE(owner.ok());
  EXPECT_EQ(*owner, (std::vector<int>{0, 1, 2, 0, 1, 2, 0}));
  EXPECT_EQ(ExpertsPerDevice(*owner, 3), (std::vector<int>{3, 2, 2}));
  EXPECT_EQ(BalancedPlacement(0, 3).status().code(), vmm::StatusCode::kInvalidArgument);
  EXPECT_EQ(BalancedPlacement(4, 0).status().code(), vmm::StatusCode::kInvalidArgument);
}

TEST(InitialPlacementTest, RoundRobinOverSortedDevices) {
  auto p = InitialPlacement(2, 7, {5, 0, 2});
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  EXPECT_EQ(p->devices, (std::vector<int>{0, 2, 5}));
  ASSERT_EQ(p->num_layers(), 2);
  ASSERT_EQ(p->num_experts(), 7);
  for (int l = 0; l < 2; ++l) {
    EXPECT_EQ(p->owner[l], (std::vector<int>{0, 2, 5, 0, 2, 5, 0}));
    EXPECT_EQ(p->Counts(l), (std::vector<int>{3, 2, 2}));
  }
  EXPECT_EQ(p->LocalExperts(1, 2), (std::vector<int>{1, 4}));
  EXPECT_TRUE(p->LocalExperts(1, 3).empty());
  EXPECT_TRUE(p->LocalExperts(7, 0).empty());
  EXPECT_EQ(p->ToString(), "dev0:[0,3,6] dev2:[1,4] dev5:[2,5]");
  EXPECT_TRUE(Balanced(*p));
}

TEST(InitialPlacementTest, Errors) {
  const auto code = [](const StatusOr<ExpertPlacement>& s) { return s.status().code(); };
  EXPECT_EQ(code(InitialPlacement(0, 4, {0})), vmm::StatusCode::kInvalidArgument);
  EXPECT_EQ(code(InitialPlacement(2, 0, {0})), vmm::StatusCode::kInvalidArgument);
  EXPECT_EQ(code(InitialPlacement(2, 4, {})), vmm::StatusCode::kInvalidArgument);
  EXPECT_EQ(code(InitialPlacement(2, 4, {0, 1, 0})), vmm::StatusCode::kInvalidArgument);
  EXPECT_EQ(code(InitialPlacement(2, 4, {-1, 1})), vmm::StatusCode::kInvalidArgument);
  auto dup = InitialPlacement(2, 4, {3, 1, 3});
  EXPECT_NE(dup.status().message().find("device 3 listed twice"), std::string::npos)
      << dup.status().ToString();
}

TEST(ExpertPlacementTest, ValidateNamesTheViolation) {
  ExpertPlacement good = *InitialPlacement(3, 5, {0, 1});
  ASSERT_TRUE(good.Validate().ok());

  ExpertPlacement p = good;
  p.devices = {};
  EXPECT_EQ(p.Validate().code(), vmm::StatusCode::kInvalidArgument);
  p = good;
  p.devices = {1, 0};
  EXPECT_NE(p.Validate().message().find("ascending"), std::string::npos);
  p = good;
  p.devices = {0, 0, 1};
  EXPECT_FALSE(p.Validate().ok());
  p = good;
  p.devices = {-1, 0, 1};
  EXPECT_NE(p.Validate().message().find("negative"), std::string::npos);
  p = good;
  p.owner[2][4] = 7;
  EXPECT_NE(p.Validate().message().find("expert 4 of layer 2 is owned by device 7"),
            std::string::npos)
      << p.Validate().ToString();
  p = good;
  p.owner[1].pop_back();
  EXPECT_NE(p.Validate().message().find("layer 1 has 4 experts"), std::string::npos);
  p = good;
  p.owner.clear();
  EXPECT_FALSE(p.Validate().ok());
  EXPECT_EQ(p.ToString(), "(no layers)");
  p = good;
  for (auto& row : p.owner) row.clear();
  EXPECT_FALSE(p.Validate().ok());
  p = good;
  std::swap(p.owner[2][0], p.owner[2][1]);
  EXPECT_TRUE(p.Validate().ok());
  EXPECT_EQ(p.ToString(), "dev0:[0,2,4] dev1:[1,3] (layers differ)");
}

// Balance holds for every (E, N), E < N and E not divisible by N included, from any starting
// device count.
TEST(RebalanceTest, BalancedForManyShapes) {
  for (int e = 1; e <= 40; ++e) {
    for (int from_n = 1; from_n <= 8; ++from_n) {
      auto prev = InitialPlacement(2, e, Range(from_n));
      ASSERT_TRUE(prev.ok());
      ASSERT_TRUE(Balanced(*prev));
      for (int to_n = 1; to_n <= 8; ++to_n) {
        auto next = Rebalance(*prev, Range(to_n));
        ASSERT_TRUE(next.ok()) << next.status().ToString();
        EXPECT_TRUE(Balanced(*next)) << e << " experts, " << from_n << " -> " << to_n;
        EXPECT_EQ(next->devices, Range(to_n));
      }
    }
  }
}

// Scale up and down between every device count 1..6 and between non-contiguous sets: the moves
// equal the lower bound, never exceed a round-robin redeal, and match a brute force for small E.
TEST(RebalanceTest, MovesTheMinimumBetweenAllSizes) {
  std::vector<std::vector<int>> sets;
  for (int n = 1; n <= 6; ++n) sets.push_back(Range(n));
  sets.push_back({0, 2, 5});
  sets.push_back({1, 3});
  sets.push_back({2, 5, 7, 9});
  sets.push_back({5});
  int brute_checked = 0;
  for (int e : {1, 2, 3, 5, 6, 7, 8, 16, 17, 32, 61}) {
    for (const auto& a : sets) {
      const ExpertPlacement prev = *InitialPlacement(3, e, a);
      for (const auto& b : sets) {
        auto next = Rebalance(prev, b);
        ASSERT_TRUE(next.ok()) << next.status().ToString();
        ASSERT_TRUE(Balanced(*next));
        const int64_t moved = Moves(prev, *next);
        const std::string what = std::to_string(e) + " experts, " + prev.ToString() + " -> " +
                                 ::testing::PrintToString(b) + ": " + next->ToString();
        EXPECT_EQ(moved, LowerBound(prev, next->devices)) << what;
        // The greedy baseline: deal the experts round-robin over the new set from scratch.
        EXPECT_LE(moved, Moves(prev, *InitialPlacement(3, e, b))) << what;
        if (a == b) {
          EXPECT_EQ(moved, 0) << what;
        }
        // Brute force over all N^E assignments of one layer (the layers are identical here).
        double space = std::pow(static_cast<double>(b.size()), e);
        if (space <= 2e5) {
          EXPECT_EQ(moved, 3 * BruteForceLayer(prev.owner[0], next->devices)) << what;
          ++brute_checked;
        }
      }
    }
  }
  EXPECT_GT(brute_checked, 100);
}

// From arbitrary (unbalanced, layer-varying) placements: still balanced and minimal.
TEST(RebalanceTest, MinimalFromRandomPlacements) {
  std::mt19937 rng(20240611);
  for (int trial = 0; trial < 300; ++trial) {
    const int e = 1 + static_cast<int>(rng() % 24);
    std::vector<int> from_set, to_set;
    for (int d = 0; d < 8; ++d) {
      if (rng() % 2) from_set.push_back(d);
      if (rng() % 2) to_set.push_back(d);
    }
    if (from_set.empty()) from_set.push_back(static_cast<int>(rng() % 8));
    if (to_set.empty()) to_set.push_back(static_cast<int>(rng() % 8));
    ExpertPlacement prev;
    prev.devices = from_set;
    prev.owner.assign(4, std::vector<int>(e));
    for (auto& row : prev.owner)
      for (int& o : row) o = from_set[rng() % from_set.size()];
    ASSERT_TRUE(prev.Validate().ok());
    auto next = Rebalance(prev, to_set);
    ASSERT_TRUE(next.ok()) << next.status().ToString();
    ASSERT_TRUE(Balanced(*next));
    EXPECT_EQ(Moves(prev, *next), LowerBound(prev, to_set)) << "trial " << trial;
    if (std::pow(static_cast<double>(to_set.size()), e) <= 5e4) {
      int64_t brute = 0;
      for (const auto& row : prev.owner) brute += BruteForceLayer(row, to_set);
      EXPECT_EQ(Moves(prev, *next), brute) << "trial " << trial;
    }
  }
}

// The documented rule, on a case worked by hand.
TEST(RebalanceTest, FollowsTheDocumentedRule) {
  // 7 experts on {0, 1}: dev0 [0,2,4,6], dev1 [1,3,5]. To {0, 1, 2}: targets 3/2/2 (the extra
  // one to dev0, which holds the most); dev0 keeps 0,2,4 and gives 6; dev1 keeps 1,3 and gives
  // 5; the pool [5, 6] fills dev2.
  const ExpertPlacement prev = *InitialPlacement(1, 7, {0, 1});
  auto up = Rebalance(prev, {0, 1, 2});
  ASSERT_TRUE(up.ok());
  EXPECT_EQ(up->owner[0], (std::vector<int>{0, 1, 0, 1, 0, 2, 2}));
  // Back to {0, 1}: dev2's experts go to the devices below target in ascending id, and the
  // extra expert goes to dev0 (3 held, the most).
  auto down = Rebalance(*up, {1, 0});
  ASSERT_TRUE(down.ok());
  EXPECT_EQ(down->devices, (std::vector<int>{0, 1}));
  EXPECT_EQ(down->owner[0], (std::vector<int>{0, 1, 0, 1, 0, 0, 1}));
  EXPECT_EQ(down->Counts(0), (std::vector<int>{4, 3}));
  // Ties go to the lower id: 5 experts from {3} to {1, 3, 4} (base 1, 2 extra): dev3 holds the
  // most and gets the first extra one, devs 1 and 4 tie at 0 and dev1 gets the second. dev3
  // keeps 0 and 1; the pool [2, 3, 4] fills dev1 (2, 3), then dev4 (4).
  auto tie = Rebalance(*InitialPlacement(1, 5, {3}), {4, 1, 3});
  ASSERT_TRUE(tie.ok());
  EXPECT_EQ(tie->owner[0], (std::vector<int>{3, 3, 1, 1, 4}));
  // ... whereas from nothing held (all new devices) the extra goes to the lowest id.
  ExpertPlacement other = *InitialPlacement(1, 5, {9});
  auto fresh = Rebalance(other, {4, 1, 3});
  ASSERT_TRUE(fresh.ok());
  EXPECT_EQ(fresh->owner[0], (std::vector<int>{1, 1, 3, 3, 4}));
}

TEST(RebalanceTest, Deterministic) {
  const ExpertPlacement prev = *InitialPlacement(4, 29, {0, 3, 4});
  auto a = Rebalance(prev, {1, 3, 4, 6});
  auto b = Rebalance(prev, {6, 4, 1, 3});
  ASSERT_TRUE(a.ok());
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(a->devices, b->devices);
  EXPECT_EQ(a->owner, b->owner);
  EXPECT_EQ(Rebalance(prev, {1, 3, 4, 6})->owner, a->owner);
}

TEST(RebalanceTest, Errors) {
  const ExpertPlacement prev = *InitialPlacement(2, 8, {0, 1});
  EXPECT_EQ(Rebalance(prev, {}).status().code(), vmm::StatusCode::kInvalidArgument);
  EXPECT_EQ(Rebalance(prev, {0, 1, 1}).status().code(), vmm::StatusCode::kInvalidArgument);
  EXPECT_EQ(Rebalance(prev, {-2, 1}).status().code(), vmm::StatusCode::kInvalidArgument);
  ExpertPlacement bad = prev;
  bad.owner[1][3] = 4;  // not a member of the device set
  EXPECT_EQ(Rebalance(bad, {0, 1, 2}).status().code(), vmm::StatusCode::kInvalidArgument);
  bad = prev;
  bad.owner[0].push_back(0);  // layers of different widths
  EXPECT_EQ(Rebalance(bad, {0, 1, 2}).status().code(), vmm::StatusCode::kInvalidArgument);
  bad = prev;
  bad.devices = {1, 0};
  EXPECT_EQ(Rebalance(bad, {0, 1, 2}).status().code(), vmm::StatusCode::kInvalidArgument);
  EXPECT_EQ(Rebalance(ExpertPlacement{}, {0}).status().code(), vmm::StatusCode::kInvalidArgument);
}

// 2 -> 3 -> 4 -> 3 -> 2 comes back to the same counts, balanced at every step, with the minimum
// moves at every step.
TEST(RebalanceTest, ScaleCycleReturnsToTheSameCounts) {
  for (int e : {8, 9, 16, 31, 64}) {
    const ExpertPlacement start = *InitialPlacement(4, e, {0, 1});
    ExpertPlacement cur = start;
    for (int n : {3, 4, 3, 2}) {
      auto next = Rebalance(cur, Range(n));
      ASSERT_TRUE(next.ok());
      ASSERT_TRUE(Balanced(*next)) << e << " experts on " << n;
      EXPECT_EQ(Moves(cur, *next), LowerBound(cur, Range(n)));
      cur = std::move(*next);
    }
    EXPECT_EQ(cur.devices, start.devices);
    for (int l = 0; l < 4; ++l) {
      std::vector<int> a = cur.Counts(l), b = start.Counts(l);
      std::sort(a.begin(), a.end());
      std::sort(b.begin(), b.end());
      EXPECT_EQ(a, b) << e << " experts, layer " << l;
      if (e % 2 == 0) {
        EXPECT_EQ(cur.Counts(l), start.Counts(l));
      }
    }
  }
}

}  // namespace
}  // namespace emoe::experts
