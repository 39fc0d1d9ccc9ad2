// Tests of the autoscaler's policy (server/autoscale_policy.h), pure: the options' validation,
// the capacity model, the demand, single decisions (off, scaling, stale windows, the
// hysteresis band, retry), the threshold baseline's marks and cooldowns. The scenarios on a
// simulated system are in autoscale_scenario_test.cc (the same binary).
#include "server/autoscale_policy.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

#include "autoscale_sim.h"

namespace emoe::server {
namespace {

using testing::Slo;

// ---- options and parsing --------------------------------------------------------------------

TEST(AutoscaleOptionsTest, DefaultsValidate) {
  EXPECT_TRUE(AutoscaleOptions().Validate().ok());
  EXPECT_TRUE(Slo().Validate().ok());
}

TEST(AutoscaleOptionsTest, EachBadFieldIsNamed) {
  struct Case {
    const char* field;
    std::function<void(AutoscaleOptions*)> spoil;
  };
  const std::vector<Case> cases = {
      {"min_devices", [](AutoscaleOptions* o) { o->min_devices = 0; }},
      {"max_devices", [](AutoscaleOptions* o) { o->max_devices = 0; }},
      {"interval_s", [](AutoscaleOptions* o) { o->interval_s = 0; }},
      {"sample_s", [](AutoscaleOptions* o) { o->sample_s = -1; }},
      {"window_s", [](AutoscaleOptions* o) { o->window_s = 0.1; }},
      {"slo_ttft_ms", [](AutoscaleOptions* o) { o->slo_ttft_ms = -1; }},
      {"slo_tpot_ms", [](AutoscaleOptions* o) { o->slo_tpot_ms = NAN; }},
      {"target_attainment", [](AutoscaleOptions* o) { o->target_attainment = 1.5; }},
      {"min_window_requests", [](AutoscaleOptions* o) { o->min_window_requests = 0; }},
      {"headroom", [](AutoscaleOptions* o) { o->headroom = 0; }},
      {"down_margin", [](AutoscaleOptions* o) { o->down_margin = 1; }},
      {"down_hold_s", [](AutoscaleOptions* o) { o->down_hold_s = -1; }},
      {"up_hold_s", [](AutoscaleOptions* o) { o->up_hold_s = -1; }},
      {"scaling_efficiency", [](AutoscaleOptions* o) { o->scaling_efficiency = 1.1; }},
      {"min_busy_to_learn", [](AutoscaleOptions* o) { o->min_busy_to_learn = 0; }},
      {"queue_low", [](AutoscaleOptions* o) { o->queue_low = -1; }},
      {"queue_high", [](AutoscaleOptions* o) { o->queue_high = 0.5; }},
      {"kv_low", [](AutoscaleOptions* o) { o->kv_low = -0.1; }},
      {"kv_high", [](AutoscaleOptions* o) { o->kv_high = 0.2; }},
      {"up_cooldown_s", [](AutoscaleOptions* o) { o->up_cooldown_s = -1; }},
      {"down_cooldown_s", [](AutoscaleOptions* o) { o->down_cooldown_s = INFINITY; }},
      {"retry_s", [](AutoscaleOptions* o) { o->retry_s = -1; }},
  };
  for (const Case& c : cases) {
    AutoscaleOptions o = Slo();
    c.spoil(&o);
    const vmm::Status st = o.Validate();
    EXPECT_EQ(st.code(), vmm::StatusCode::kInvalidArgument) << c.field;
    EXPECT_NE(st.message().find(std::string("option ") + c.field + " ="), std::string::npos)
        << c.field << ": " << st.message();
  }
}

TEST(AutoscaleModeTest, ParsesTheThreeNamesAndNamesTheChoices) {
  for (AutoscaleMode m : {AutoscaleMode::kOff, AutoscaleMode::kSlo, AutoscaleMode::kThreshold}) {
    auto parsed = ParseAutoscaleMode(AutoscaleModeName(m));
    ASSERT_TRUE(parsed.ok());
    EXPECT_EQ(parsed.value(), m);
  }
  auto bad = ParseAutoscaleMode("kpa");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("'kpa' (off, slo, threshold)"), std::string::npos);
}

// ---- the capacity model and the demand -------------------------------------------------------

AutoscaleSignals Busy(int devices, double tokens_per_s, double busy) {
  AutoscaleSignals s;
  s.devices = devices;
  s.tokens_per_s = tokens_per_s;
  s.busy_fraction = busy;
  return s;
}

TEST(CapacityModelTest, LearnsOnlyTrustedSamplesAndSmooths) {
  const AutoscaleOptions o = Slo();
  CapacityModel m;
  EXPECT_EQ(m.Capacity(o, 2), 0);
  EXPECT_EQ(m.DevicesFor(o, 5000, 0.8, 3), 3);  // nothing known: the current count
  AutoscaleSignals scaling = Busy(2, 1500, 0.9);
  scaling.scaling = true;
  m.Observe(o, scaling);
  m.Observe(o, Busy(2, 300, 0.2));  // below min_busy_to_learn
  m.Observe(o, Busy(2, 0, 0.9));
  EXPECT_TRUE(m.observed.empty());
  m.Observe(o, Busy(2, 1600, 0.8));  // 2000 per busy second
  EXPECT_DOUBLE_EQ(m.Capacity(o, 2), 2000);
  m.Observe(o, Busy(2, 2200, 1.0));
  EXPECT_DOUBLE_EQ(m.Capacity(o, 2), 2100);  // the mean of the first two
  for (int i = 0; i < 100; ++i) m.Observe(o, Busy(2, 2400, 1.0));
  EXPECT_NEAR(m.Capacity(o, 2), 2400, 1);
  EXPECT_EQ(m.observed.at(2).samples, 102);
}

TEST(CapacityModelTest, ExtrapolatesUpWithEfficiencyDownLinearlyAndInterpolates) {
  const AutoscaleOptions o = Slo();  // scaling_efficiency 0.9
  CapacityModel m;
  m.Observe(o, Busy(2, 2000, 1.0));
  EXPECT_DOUBLE_EQ(m.Capacity(o, 4), 2000 + 2 * 1000 * 0.9);
  EXPECT_DOUBLE_EQ(m.Capacity(o, 1), 1000);
  m.Observe(o, Busy(6, 5000, 1.0));
  EXPECT_DOUBLE_EQ(m.Capacity(o, 4), 3500);  // between 2 and 6
  EXPECT_DOUBLE_EQ(m.Capacity(o, 8), 5000 + 2 * (5000.0 / 6) * 0.9);
  // DevicesFor: the fewest in [min, max]; max when none.
  EXPECT_EQ(m.DevicesFor(o, 1500, 0.8, 6), 2);
  EXPECT_EQ(m.DevicesFor(o, 1700, 0.8, 6), 3);  // 3: 2750 * 0.8 = 2200
  EXPECT_EQ(m.DevicesFor(o, 1e6, 0.8, 2), 8);
  EXPECT_EQ(m.DevicesFor(Slo(3, 8), 10, 0.8, 6), 3);
}

TEST(DemandTest, GeneratedOrOfferedPlusTheBacklog) {
  const AutoscaleOptions o = Slo();  // window 10 s, TTFT 2 s: behind at 0.5 s
  AutoscaleSignals s = Busy(2, 1000, 0.6);
  EXPECT_DOUBLE_EQ(DemandTokensPerS(o, s), 1000);
  s.arrivals_per_s = 12;
  s.mean_output_tokens = 100;
  EXPECT_DOUBLE_EQ(DemandTokensPerS(o, s), 1200);  // offered > generated
  s.waiting = 5;
  s.oldest_wait_s = 0.2;  // not behind: the backlog over the window
  EXPECT_DOUBLE_EQ(DemandTokensPerS(o, s), 1200 + 500.0 / 10);
  // Saturated: the queue grew 4000 tokens in the 2 s its oldest request waited.
  s.waiting = 40;
  s.oldest_wait_s = 2;
  EXPECT_DOUBLE_EQ(DemandTokensPerS(o, s), 1000 + 4000.0 / 2);
  // No request finished in the window: the output per request from generated / arrivals.
  s = Busy(1, 900, 1.0);
  s.arrivals_per_s = 9;
  s.waiting = 30;
  EXPECT_DOUBLE_EQ(DemandTokensPerS(o, s), 900 + 3000.0 / 10);
}

// ---- single decisions ------------------------------------------------------------------------

AutoscaleSignals Serving(double t, int devices, double tokens_per_s, double busy) {
  AutoscaleSignals s = Busy(devices, tokens_per_s, busy);
  s.t = t;
  s.window_requests = 100;
  s.window_met = 100;
  s.arrivals_per_s = tokens_per_s / 100;
  s.mean_output_tokens = 100;
  return s;
}

TEST(DecideTest, OffHoldsWhateverTheSignals) {
  AutoscaleOptions o = Slo();
  o.mode = AutoscaleMode::kOff;
  AutoscaleState st;
  AutoscaleSignals s = Serving(1, 1, 5000, 1.0);
  s.window_met = 0;
  s.waiting = 1000;
  const AutoscaleDecision d = Decide(o, s, &st);
  EXPECT_EQ(d.target, 1);
  EXPECT_EQ(d.action, "hold");
  EXPECT_EQ(d.reason_kind, "off");
}

TEST(DecideTest, NothingWhileScaling) {
  const AutoscaleOptions o = Slo();
  AutoscaleState st;
  AutoscaleSignals s = Serving(1, 1, 5000, 1.0);
  s.scaling = true;
  const AutoscaleDecision d = Decide(o, s, &st);
  EXPECT_EQ(d.reason_kind, "scaling");
  EXPECT_EQ(d.target, 1);
  EXPECT_TRUE(st.capacity.observed.empty());  // nothing learned mid-event
}

TEST(DecideTest, AttainmentNeedsRequestsAndAWindowSinceTheEvent) {
  const AutoscaleOptions o = Slo();  // capacity unknown: only attainment can scale up here
  AutoscaleState st;
  AutoscaleSignals s = Serving(100, 2, 0, 0);
  s.window_requests = 3;  // < min_window_requests
  s.window_met = 0;
  EXPECT_EQ(Decide(o, s, &st).action, "hold");
  s.window_requests = 50;
  s.window_met = 25;
  OnScaleEvent(&st, 95, 1, 2, true);  // the window still holds the 1-device misses
  AutoscaleDecision d = Decide(o, s, &st);
  EXPECT_EQ(d.action, "hold");
  EXPECT_NE(d.reason.find("since the last scale event"), std::string::npos) << d.reason;
  s.t = 105;
  d = Decide(o, s, &st);
  EXPECT_EQ(d.action, "up");
  EXPECT_EQ(d.target, 3);
  EXPECT_EQ(d.reason_kind, "slo");
  EXPECT_NE(d.reason.find("attainment 0.50 < 0.90 over 50 requests"), std::string::npos)
      << d.reason;
}

TEST(DecideTest, UpHoldDelaysTheSloUp) {
  AutoscaleOptions o = Slo();
  o.up_hold_s = 3;
  AutoscaleState st;
  AutoscaleSignals s = Serving(10, 1, 0, 0);
  s.window_met = 50;
  for (int i = 0; i < 3; ++i) {
    s.t = 10 + i;
    EXPECT_EQ(Decide(o, s, &st).action, "hold") << i;
  }
  s.t = 13;
  EXPECT_EQ(Decide(o, s, &st).action, "up");
}

// Learned: 2 devices carry 2000 tok/s (1 device: 1000, linear down). 1300 tok/s stays on 2
// (fits at headroom 0.8, not 1 device); 700 fits 1 device at headroom but not at headroom *
// down_margin (600): no down, ever; 400 (484 with the noise of its 40 arrivals a window):
// down after down_hold_s, to 1.
TEST(DecideTest, HysteresisBandAndDownHold) {
  const AutoscaleOptions o = Slo();
  for (double load : {1300.0, 700.0}) {
    AutoscaleState st;
    for (int t = 1; t <= 300; ++t) {
      const AutoscaleDecision d = Decide(o, Serving(t, 2, load, load / 2000), &st);
      ASSERT_EQ(d.action, "hold") << load << " at " << t << ": " << d.reason;
    }
  }
  AutoscaleState st;
  Decide(o, Serving(0, 2, 1600, 0.8), &st);  // learn 2000 at 2 devices
  for (int t = 1; t <= 40; ++t) {
    const AutoscaleDecision d = Decide(o, Serving(t, 2, 400, 0.2), &st);
    if (d.action == "down") {
      EXPECT_GE(t - 1, o.down_hold_s) << d.reason;
      EXPECT_EQ(d.target, 1);
      EXPECT_EQ(d.reason_kind, "fits_fewer");
      EXPECT_NE(d.reason.find("fits 1 device at 0.60 of their 1000 tok/s"), std::string::npos)
          << d.reason;
      return;
    }
  }
  FAIL() << "no down";
}

// The latencies' room decides where they are known: a device that is busy all the time (the
// learned capacity says the demand needs all 4) but serves at 0.30 of the SLO goes down to
// ceil(4 x 0.30 / 0.60) = 2 after the hold, and the carried-over latency (0.60 on 2) does not
// bring it back up; at 0.90 of the SLO on 2 it goes up to ceil(2 x 0.90 / 0.80) = 3 at once.
TEST(DecideTest, LatencyRoomDecidesWhereItIsKnown) {
  const AutoscaleOptions o = Slo(1, 4);  // SLO: TTFT 2000 ms, TPOT 200 ms
  AutoscaleState st;
  auto at = [](double t, int devices, double tpot_s) {
    AutoscaleSignals s = Serving(t, devices, 400, 1.0);  // busy all the time
    s.tpot_p90_s = tpot_s;
    s.ttft_p90_s = 0.2;
    return s;
  };
  AutoscaleDecision d;
  int t = 1;
  for (; t <= 60; ++t) {
    d = Decide(o, at(t, 4, 0.06), &st);
    if (d.action != "hold") break;
  }
  ASSERT_EQ(d.action, "down") << d.reason;
  EXPECT_GE(t - 1, o.down_hold_s) << d.reason;
  EXPECT_EQ(d.target, 2) << d.reason;
  EXPECT_NE(d.reason.find("latency p90 TTFT 200 ms, TPOT 60 ms: 0.30 of the SLO"),
            std::string::npos)
      << d.reason;
  OnScaleEvent(&st, t + 1, 4, 2, true);
  for (int u = t + 2; u < t + 1 + static_cast<int>(o.window_s); ++u) {  // not judged yet
    d = Decide(o, at(u, 2, 0), &st);
    EXPECT_EQ(d.action, "hold") << d.reason;
    EXPECT_NE(d.reason.find("0.60 on 2 devices"), std::string::npos) << d.reason;
  }
  d = Decide(o, at(t + 30, 2, 0.18), &st);
  EXPECT_EQ(d.action, "up") << d.reason;
  EXPECT_EQ(d.target, 3) << d.reason;
  EXPECT_EQ(d.reason_kind, "capacity") << d.reason;
}

// A latency hold restarts when the demand rises beyond its noise: the latencies judged are of
// requests that ran before the rise. At 400 tok/s (40 arrivals a window: a rise of more than
// 3 / sqrt(40) = 47% restarts) the hold begins at t = 1; at t = 10 the demand triples with the
// same latencies: no down at t = 21, where it would have come, but 20 s after the rise; a rise
// within the noise (+30%) does not restart it.
TEST(DecideTest, RisingDemandRestartsTheLatencyHold) {
  const AutoscaleOptions o = Slo(1, 4);
  auto at = [](double t, double tokens_per_s) {
    AutoscaleSignals s = Serving(t, 4, tokens_per_s, 1.0);
    s.tpot_p90_s = 0.06;
    s.ttft_p90_s = 0.2;
    return s;
  };
  auto first_down = [&](const std::function<double(double)>& load) {
    AutoscaleState st;
    for (int t = 1; t <= 60; ++t) {
      const AutoscaleDecision d = Decide(o, at(t, load(t)), &st);
      if (d.action == "down") return std::make_pair(t, d.reason);
      EXPECT_EQ(d.action, "hold") << d.reason;
    }
    return std::make_pair(0, std::string("no down"));
  };
  const auto steady = first_down([](double) { return 400.0; });
  EXPECT_EQ(steady.first, 21) << steady.second;
  const auto noisy = first_down([](double t) { return t >= 10 ? 520.0 : 400.0; });
  EXPECT_EQ(noisy.first, 21) << noisy.second;
  const auto rose = first_down([](double t) { return t >= 10 ? 1200.0 : 400.0; });
  EXPECT_EQ(rose.first, 30) << rose.second;
}

TEST(DecideTest, RetryBlocksTheRefusedTargetForRetryS) {
  const AutoscaleOptions o = Slo();
  AutoscaleState st;
  AutoscaleSignals s = Serving(10, 1, 0, 0);
  s.window_met = 10;
  ASSERT_EQ(Decide(o, s, &st).target, 2);
  OnScaleEvent(&st, 10.5, 1, 2, false);
  s.t = 11;
  AutoscaleDecision d = Decide(o, s, &st);
  EXPECT_EQ(d.reason_kind, "retry");
  EXPECT_EQ(d.target, 1);
  s.t = 10.5 + o.retry_s;
  d = Decide(o, s, &st);
  EXPECT_EQ(d.target, 2);
}

// ---- the threshold baseline ------------------------------------------------------------------

TEST(ThresholdTest, MarksCooldownsAndOneStep) {
  AutoscaleOptions o = Slo(1, 4);
  o.mode = AutoscaleMode::kThreshold;  // queue 0.5/4 per device, KV 0.3/0.8, cooldowns 10/60
  AutoscaleState st;
  AutoscaleSignals s;
  s.t = 100;
  s.devices = 2;
  s.kv_usage = 0.5;
  s.waiting = 4;  // 2 per device: between the marks
  EXPECT_EQ(Decide(o, s, &st).reason_kind, "steady");
  s.waiting = 100;  // 50 per device: still +1
  AutoscaleDecision d = Decide(o, s, &st);
  EXPECT_EQ(d.target, 3);
  EXPECT_EQ(d.reason_kind, "queue");
  OnScaleEvent(&st, 101, 2, 3, true);
  s.devices = 3;
  s.waiting = 0;
  s.kv_usage = 0.9;
  s.t = 105;
  EXPECT_EQ(Decide(o, s, &st).reason_kind, "cooldown");
  s.t = 111;
  d = Decide(o, s, &st);
  EXPECT_EQ(d.target, 4);
  EXPECT_EQ(d.reason_kind, "kv");
  OnScaleEvent(&st, 112, 3, 4, true);
  s.devices = 4;
  s.t = 130;
  EXPECT_EQ(Decide(o, s, &st).reason_kind, "bounds");
  s.kv_usage = 0.1;
  EXPECT_EQ(Decide(o, s, &st).reason_kind, "cooldown");  // down: 60 s after the event
  s.t = 172;
  d = Decide(o, s, &st);
  EXPECT_EQ(d.target, 3);
  EXPECT_EQ(d.reason_kind, "idle");
}

}  // namespace
}  // namespace emoe::server
