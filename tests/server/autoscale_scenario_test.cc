// Scenarios of the autoscaler's policy (server/autoscale_policy.h) on a simulated system
// (tests/server/autoscale_sim.h): steady loads, Poisson arrivals, burst, ramp, drop, noise and
// slower swings, refused events, min/max bounds, manual override, the threshold baseline. No
// sleeps: the time is simulated. Part of autoscale_policy_test.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <string>
#include <tuple>
#include <vector>

#include "autoscale_sim.h"
#include "server/autoscale_policy.h"

namespace emoe::server {
namespace {

using testing::Sim;
using testing::SimEvent;
using testing::SimOptions;
using testing::Slo;

std::function<double(double)> Constant(double tokens_per_s) {
  return [tokens_per_s](double) { return tokens_per_s; };
}

// The fewest devices whose true capacity at `utilization` carries `load`.
int TrueDevicesFor(const Sim& sim, double load, double utilization, int max_devices) {
  for (int d = 1; d <= max_devices; ++d) {
    if (sim.Capacity(d) * utilization >= load) return d;
  }
  return max_devices;
}

// ---- scenarios ------------------------------------------------------------------------------

SimOptions StartAt(int devices) {
  SimOptions so;
  so.start_devices = devices;
  return so;
}

double Attainment(const Sim& sim) { return static_cast<double>(sim.met()) / sim.finished(); }

class SteadyLoadTest : public ::testing::TestWithParam<double> {};

// From one device (a cold start: the load is new, output lengths unknown until requests
// finish) the policy converges in the first minute by ups only, then nothing for half an hour.
TEST_P(SteadyLoadTest, FromOneDeviceConvergesByUpsThenNoEvent) {
  const double load = GetParam();
  Sim sim(Slo(), StartAt(1), Constant(load));
  sim.Run(1860);
  const auto early = sim.EventsIn(0, 60);
  EXPECT_LE(early.size(), 3u) << sim.Log();
  for (const SimEvent& e : early) EXPECT_GT(e.to, e.from) << sim.Log();
  EXPECT_TRUE(sim.EventsIn(60, 1e9).empty()) << sim.Log();
  EXPECT_GE(sim.devices(), TrueDevicesFor(sim, load, 1.0, 8));
  EXPECT_LE(sim.devices(), TrueDevicesFor(sim, load, sim.options().headroom, 8) + 1) << sim.Log();
  EXPECT_GE(Attainment(sim), 0.9) << sim.Log();
}

// At the count the plan needs: no event at all.
TEST_P(SteadyLoadTest, AtThePlannedCountNoEvent) {
  const double load = GetParam();
  Sim probe(Slo(), SimOptions(), Constant(load));
  Sim sim(Slo(), StartAt(TrueDevicesFor(probe, load, 0.8, 8)), Constant(load));
  sim.Run(1800);
  EXPECT_TRUE(sim.EventsIn(0, 1e9).empty()) << sim.Log();
  EXPECT_GE(Attainment(sim), 0.9) << sim.Log();
}

// From max_devices: at most one event, a down at the beginning (after the hold).
TEST_P(SteadyLoadTest, FromMaxAtMostOneDownAtTheBeginning) {
  const double load = GetParam();
  Sim sim(Slo(), StartAt(8), Constant(load));
  sim.Run(1800);
  const auto all = sim.EventsIn(0, 1e9);
  ASSERT_LE(all.size(), 1u) << sim.Log();
  if (!all.empty()) {
    EXPECT_LT(all[0].to, all[0].from);
    EXPECT_GE(all[0].decided_t, sim.options().down_hold_s);
    EXPECT_LT(all[0].decided_t, 60);
  }
  EXPECT_GE(Attainment(sim), 0.9) << sim.Log();
}

INSTANTIATE_TEST_SUITE_P(Loads, SteadyLoadTest,
                         ::testing::Values(300.0, 700.0, 1200.0, 1500.0, 2500.0, 4500.0));

// Poisson arrivals (fixed seeds) at the planned count: the noise of the counts neither
// triggers the burst projection nor flaps: at most one event in half an hour, attainment kept.
TEST(AutoscaleScenarioTest, PoissonArrivalsAtThePlannedCountHold) {
  for (double load : {300.0, 1200.0, 2500.0, 4500.0}) {
    for (uint32_t seed : {1u, 2u, 3u}) {
      Sim probe(Slo(), SimOptions(), Constant(load));
      SimOptions so = StartAt(TrueDevicesFor(probe, load, 0.8, 8));
      so.poisson_seed = seed;
      Sim sim(Slo(), so, Constant(load));
      sim.Run(1800);
      EXPECT_LE(sim.EventsIn(0, 1e9).size(), 1u) << load << " seed " << seed << "\n" << sim.Log();
      EXPECT_GE(Attainment(sim), 0.9) << load << " seed " << seed;
    }
  }
}

// A 7.5x burst after a minute at 400 tok/s on one device (the model learned 1 device): the
// first up comes within 2 decisions of the burst; the model's count, when it says more than
// one more device, is asked within 2 decisions of saying so; the burst is served by enough
// devices; back at 400 tok/s, a down after the hold.
TEST(AutoscaleScenarioTest, BurstScalesUpByTheModelsCount) {
  auto load = [](double t) { return t >= 60 && t < 180 ? 3000.0 : 400.0; };
  AutoscaleOptions o = Slo();
  o.min_busy_to_learn = 0.3;  // learn from 400 tok/s on one device (busy 0.4)
  Sim sim(o, StartAt(1), load);
  sim.Run(60);
  EXPECT_TRUE(sim.EventsIn(0, 60).empty()) << sim.Log();
  EXPECT_EQ(sim.state().capacity.observed.count(1), 1u);
  sim.Run(180);
  const auto ups = sim.EventsIn(60, 180);
  ASSERT_FALSE(ups.empty()) << sim.Log();
  EXPECT_LE(ups[0].decided_t, 62.0 + 1e-9) << sim.Log();
  bool jumped = false;
  for (const SimEvent& e : ups) {
    EXPECT_GT(e.to, e.from) << sim.Log();
    jumped |= e.to - e.from >= 2;
  }
  EXPECT_TRUE(jumped) << sim.Log();
  // The first up already asks for the count the burst needs at headroom (the arrivals' jump
  // is projected, not waited for over a whole window): one event, at most one more after it.
  EXPECT_EQ(ups[0].from, 1);
  EXPECT_GE(ups[0].to, TrueDevicesFor(sim, 3000, sim.options().headroom, 8)) << sim.Log();
  EXPECT_LE(ups.size(), 2u) << sim.Log();
  // When the model first says "at least two more", the up to that count is decided within 2
  // decisions.
  for (const auto& [t, d] : sim.decisions()) {
    if (t < 60 || d.devices_needed < 3) continue;
    const double said = t;
    bool asked = false;
    for (const SimEvent& e : ups)
      asked |= e.decided_t >= said && e.decided_t <= said + 2 && e.to >= 3;
    EXPECT_TRUE(asked) << "the model said " << d.devices_needed << " at t=" << said << "\n"
                       << sim.Log();
    break;
  }
  EXPECT_GE(sim.devices(), TrueDevicesFor(sim, 3000, 1.0, 8)) << sim.Log();
  sim.Run(300);
  const auto downs = sim.EventsIn(180, 300);
  ASSERT_FALSE(downs.empty()) << sim.Log();
  EXPECT_GE(downs[0].decided_t, 180 + sim.options().down_hold_s) << sim.Log();
  EXPECT_EQ(sim.devices(), 1) << sim.Log();
}

// A slow ramp from 300 to 5000 tok/s over 10 minutes: ups only, enough devices at the end.
TEST(AutoscaleScenarioTest, RampScalesUpMonotonically) {
  auto load = [](double t) { return 300 + (5000 - 300) * std::min(1.0, t / 600); };
  Sim sim(Slo(), StartAt(1), load);
  sim.Run(700);
  const auto all = sim.EventsIn(0, 1e9);
  ASSERT_FALSE(all.empty());
  for (const SimEvent& e : all) EXPECT_GT(e.to, e.from) << sim.Log();
  EXPECT_GE(sim.devices(), TrueDevicesFor(sim, 5000, 0.8, 8)) << sim.Log();
  EXPECT_GE(Attainment(sim), 0.9) << sim.Log();
}

// The latencies lag the load (they are those of the requests finished in the window): on 4
// devices at 400 tok/s they leave room for 2, and a hold towards 2 runs when a 10x burst comes
// (4000 tok/s, beyond 4 devices' 3700). Until the queue falls behind, the window's latencies
// are still the calm ones: a down then would halve the devices inside the burst (what the
// first evaluation on the server did). The hold restarts when the demand rises: no down during
// the burst, an up in it, and a down after it.
TEST(AutoscaleScenarioTest, LaggingLatenciesDoNotScaleDownIntoABurst) {
  auto load = [](double t) { return t >= 20 && t < 80 ? 4000.0 : 400.0; };
  SimOptions so = StartAt(4);
  so.report_latencies = true;
  Sim sim(Slo(), so, load);
  sim.Run(20);
  EXPECT_TRUE(sim.EventsIn(0, 20).empty()) << sim.Log();
  ASSERT_GE(sim.state().fits_fewer_since, 0) << "no hold towards fewer devices before the burst";
  sim.Run(80);
  const auto in_burst = sim.EventsIn(20, 80);
  ASSERT_FALSE(in_burst.empty()) << sim.Log();
  for (const SimEvent& e : in_burst) EXPECT_GT(e.to, e.from) << sim.Log();
  bool restarted = false;
  for (const auto& [t, d] : sim.decisions()) {
    restarted |= t >= 20 && d.reason.find("the hold restarts") != std::string::npos;
  }
  EXPECT_TRUE(restarted) << sim.Log();
  sim.Run(300);
  const auto after = sim.EventsIn(80, 1e9);
  ASSERT_FALSE(after.empty()) << sim.Log();
  EXPECT_LT(after.back().to, after.front().from) << sim.Log();
}

// From 4000 to 900 tok/s: the down comes only after down_hold_s, straight to the count the
// capacity says with margin (not one device at a time), then nothing.
TEST(AutoscaleScenarioTest, DropScalesDownAfterTheHoldToTheModelsCount) {
  auto load = [](double t) { return t < 120 ? 4000.0 : 900.0; };
  Sim sim(Slo(), StartAt(6), load);
  sim.Run(120);
  EXPECT_TRUE(sim.EventsIn(0, 120).empty()) << sim.Log();
  sim.Run(600);
  const auto downs = sim.EventsIn(120, 1e9);
  ASSERT_EQ(downs.size(), 1u) << sim.Log();
  EXPECT_GE(downs[0].decided_t, 120 + sim.options().down_hold_s) << sim.Log();
  const AutoscaleOptions& o = sim.options();
  EXPECT_EQ(downs[0].to, TrueDevicesFor(sim, 900, o.headroom * o.down_margin, 8)) << sim.Log();
  EXPECT_EQ(downs[0].kind, "fits_fewer");
  EXPECT_GE(Attainment(sim), 0.9) << sim.Log();
}

// A load alternating +-20% around a level, faster than the down hold (levels at and near the
// band's edges): at most one event (in the first minute), then none for half an hour.
class NoiseTest : public ::testing::TestWithParam<std::tuple<double, double>> {};

std::function<double(double)> Square(double level, double half_period_s) {
  return [level, half_period_s](double t) {
    return static_cast<int64_t>(t / half_period_s) % 2 == 0 ? level * 1.2 : level * 0.8;
  };
}

TEST_P(NoiseTest, DoesNotOscillate) {
  const auto [level, half_period_s] = GetParam();
  Sim probe(Slo(), SimOptions(), Constant(level));
  Sim sim(Slo(), StartAt(TrueDevicesFor(probe, level, 0.8, 8)), Square(level, half_period_s));
  sim.Run(1800);
  EXPECT_LE(sim.EventsIn(0, 60).size(), 1u) << sim.Log();
  EXPECT_TRUE(sim.EventsIn(60, 1e9).empty()) << sim.Log();
  EXPECT_GE(Attainment(sim), 0.9) << sim.Log();
}

INSTANTIATE_TEST_SUITE_P(LevelsAndPeriods, NoiseTest,
                         ::testing::Combine(::testing::Values(1000.0, 1300.0, 2000.0, 3500.0),
                                            ::testing::Values(1.0, 5.0, 15.0)));

// Slower swings (+-20%, half-periods from 30 s to 2 min) are load changes the policy may
// follow, but not flapping: after the first 5 minutes no two events within a minute, and fewer
// than 16 events in half an hour (half the "one a minute"); with half-periods up to a
// minute the anti-flap hold stops it following them within 10 minutes.
class SlowSwingTest : public NoiseTest {};

TEST_P(SlowSwingTest, FlappingStops) {
  const auto [level, half_period_s] = GetParam();
  Sim probe(Slo(), SimOptions(), Constant(level));
  Sim sim(Slo(), StartAt(TrueDevicesFor(probe, level, 0.8, 8)), Square(level, half_period_s));
  sim.Run(1800);
  const auto all = sim.EventsIn(0, 1e9);
  EXPECT_LT(all.size(), 16u) << sim.Log();
  for (size_t i = 1; i < all.size(); ++i) {
    if (all[i].decided_t < 300) continue;
    EXPECT_GE(all[i].decided_t - all[i - 1].decided_t, 60) << sim.Log();
  }
  if (half_period_s <= 60) {
    EXPECT_TRUE(sim.EventsIn(600, 1e9).empty()) << sim.Log();
  }
  EXPECT_GE(Attainment(sim), 0.9) << sim.Log();
}

INSTANTIATE_TEST_SUITE_P(LevelsAndPeriods, SlowSwingTest,
                         ::testing::Combine(::testing::Values(1000.0, 1300.0, 2000.0, 3500.0),
                                            ::testing::Values(30.0, 60.0, 120.0)));

// An event refused (or rolled back) is not asked again before retry_s, then it is.
TEST(AutoscaleScenarioTest, RefusedEventsWaitRetrySThenRetry) {
  Sim sim(Slo(), StartAt(1), Constant(2500));
  sim.refuse = [](double t, int from, int to) { return t < 40 && to > from; };
  sim.Run(120);
  std::vector<SimEvent> refused, ok;
  for (const SimEvent& e : sim.events()) (e.ok ? ok : refused).push_back(e);
  ASSERT_GE(refused.size(), 2u) << sim.Log();
  for (size_t i = 1; i < refused.size(); ++i) {
    if (refused[i].to >= refused[i - 1].to) {
      EXPECT_GE(refused[i].decided_t - refused[i - 1].end_t, sim.options().retry_s) << sim.Log();
    }
  }
  ASSERT_FALSE(ok.empty()) << sim.Log();
  EXPECT_GE(ok[0].decided_t, 40);
  EXPECT_LE(ok[0].decided_t - refused.back().end_t, sim.options().retry_s + 1) << sim.Log();
  EXPECT_GE(sim.devices(), TrueDevicesFor(sim, 2500, 1.0, 8)) << sim.Log();
  bool said_retry = false;
  for (const auto& [t, d] : sim.decisions()) said_retry |= d.reason_kind == "retry";
  EXPECT_TRUE(said_retry);
}

// Never above max_devices (holds say "bounds"), never below min_devices.
TEST(AutoscaleScenarioTest, MinAndMaxBounds) {
  Sim high(Slo(1, 3), StartAt(1), Constant(4500));
  high.Run(300);
  for (const SimEvent& e : high.events()) EXPECT_LE(e.to, 3) << high.Log();
  EXPECT_EQ(high.devices(), 3) << high.Log();
  EXPECT_EQ(high.decisions().back().second.reason_kind, "bounds");
  EXPECT_EQ(high.decisions().back().second.devices_needed, 3);
  EXPECT_NE(high.decisions().back().second.reason.find("at max_devices 3"), std::string::npos);

  // 100 tok/s never keeps the devices busy enough to learn from: the busy fraction decides.
  Sim low(Slo(2, 8), StartAt(5), Constant(100));
  low.Run(300);
  EXPECT_TRUE(low.state().capacity.observed.empty());
  for (const SimEvent& e : low.events()) EXPECT_GE(e.to, 2) << low.Log();
  EXPECT_EQ(low.devices(), 2) << low.Log();

  // A count outside the bounds (a manual scale beyond them) is brought inside at once.
  Sim outside(Slo(1, 3), StartAt(2), Constant(1200));
  outside.ManualAt(100, 6);
  outside.Run(120);
  const auto back = outside.EventsIn(100, 120);
  ASSERT_EQ(back.size(), 1u) << outside.Log();
  EXPECT_EQ(back[0].to, 3);
  EXPECT_EQ(back[0].kind, "bounds");
}

// A manual scale is the new state: timers restart from it. Up to more than the load needs: no
// event for down_hold_s, then one down to the count the capacity says with margin (3, not the
// 2 it served on before: 2 would be at 0.63 > headroom * down_margin). Down to fewer than the
// capacity model says the load needs: scaled back up at the next decision (the SLO first).
TEST(AutoscaleScenarioTest, ManualOverrideRestartsTheTimers) {
  const AutoscaleOptions o = Slo();
  Sim sim(o, StartAt(2), Constant(1200));
  sim.ManualAt(100, 5);
  sim.Run(200);
  const auto after_up = sim.EventsIn(100, 200);
  ASSERT_EQ(after_up.size(), 1u) << sim.Log();
  EXPECT_GE(after_up[0].decided_t, 100 + o.down_hold_s) << sim.Log();
  EXPECT_EQ(after_up[0].to, TrueDevicesFor(sim, 1200, o.headroom * o.down_margin, 8)) << sim.Log();
  EXPECT_EQ(after_up[0].to, 3);

  sim.ManualAt(300, 1);
  sim.Run(400);
  const auto after_down = sim.EventsIn(300, 400);
  ASSERT_EQ(after_down.size(), 1u) << sim.Log();
  EXPECT_LE(after_down[0].decided_t, 301 + 1e-9) << sim.Log();
  EXPECT_EQ(after_down[0].to, 2) << sim.Log();
  EXPECT_EQ(after_down[0].kind, "capacity");
}

// The threshold baseline on the simulator: +1 steps at least up_cooldown_s apart on a burst,
// -1 steps at least down_cooldown_s apart after it.
TEST(AutoscaleScenarioTest, ThresholdStepsByOneWithCooldowns) {
  AutoscaleOptions o = Slo();
  o.mode = AutoscaleMode::kThreshold;
  auto load = [](double t) { return t < 200 ? 3000.0 : 300.0; };
  Sim sim(o, StartAt(1), load);
  sim.Run(800);
  const auto all = sim.EventsIn(0, 1e9);
  ASSERT_GE(all.size(), 3u) << sim.Log();
  for (size_t i = 0; i < all.size(); ++i) {
    EXPECT_EQ(std::abs(all[i].to - all[i].from), 1) << sim.Log();
    if (i == 0) continue;
    const double gap = all[i].decided_t - all[i - 1].end_t;
    EXPECT_GE(gap + 1e-9, all[i].to > all[i].from ? o.up_cooldown_s : o.down_cooldown_s)
        << sim.Log();
  }
  EXPECT_GT(all.front().to, all.front().from);
  EXPECT_EQ(sim.devices(), 1) << sim.Log();
}

}  // namespace
}  // namespace emoe::server
