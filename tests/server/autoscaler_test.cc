// The autoscaler's runtime (server/autoscaler.h), the service's SLO window (server/src/
// slo_tracker.h), and the closed loop end to end: a burst against the service (in this
// process, tiny model, byte tokenizer) makes it scale up and back down with no failed request.
#include "server/autoscaler.h"

#include <gtest/gtest.h>

#include <sys/wait.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "../hbm/test_files.h"
#include "service_testing.h"
#include "slo_tracker.h"

namespace emoe::server {
namespace {

using nlohmann::json;

std::vector<json> ReadLog(const std::string& path) {
  std::vector<json> lines;
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);) {
    json j = json::parse(line, nullptr, /*allow_exceptions=*/false);
    EXPECT_FALSE(j.is_discarded()) << "not JSON: " << line;
    lines.push_back(std::move(j));
  }
  return lines;
}

int CountKind(const std::vector<json>& log, const std::string& kind) {
  int n = 0;
  for (const json& j : log) n += j.value("kind", "") == kind ? 1 : 0;
  return n;
}

TEST(SloTrackerTest, CountsMetMissedLateAndForgotten) {
  SloTracker t(/*window_s=*/10, /*slo_ttft_s=*/1.0, /*slo_tpot_s=*/0.1);
  t.Admitted(1, 0.0, 100);
  t.Admitted(2, 0.0, 50);
  t.Admitted(3, 0.5, 10);
  t.Admitted(4, 0.5, 10);
  t.Admitted(5, 0.5, 10);
  t.FirstToken(1, 0.2);
  t.Finished(1, 1.0, true, 0.0, 0.2, 1.0, 9);  // TTFT 0.2, TPOT 0.1: met
  t.FirstToken(2, 1.5);
  t.Finished(2, 2.0, true, 0.0, 1.5, 2.0, 6);  // TTFT 1.5: missed
  t.Finished(3, 2.0, false, 0.5, 0, 0, 0);     // failed: missed
  t.Forget(4);                                 // abandoned: not counted
  t.Generated(1.0, 10);
  t.Generated(2.0, 5);
  AutoscaleSignals s;
  t.Fill(/*now=*/2.0, &s);  // request 5 has waited 1.5 s > 1 s without a first token: late
  EXPECT_EQ(s.window_requests, 4);
  EXPECT_EQ(s.window_met, 1);
  EXPECT_DOUBLE_EQ(s.attainment(), 0.25);
  EXPECT_DOUBLE_EQ(s.oldest_wait_s, 1.5);
  EXPECT_DOUBLE_EQ(s.tokens_per_s, 15 / 2.0);  // over the 2 s since the first admission
  EXPECT_DOUBLE_EQ(s.prompt_tokens_per_s, 180 / 2.0);
  EXPECT_DOUBLE_EQ(s.arrivals_per_s, 5 / 2.0);
  EXPECT_DOUBLE_EQ(s.mean_output_tokens, 7.5);
  EXPECT_DOUBLE_EQ(s.ttft_p90_s, 1.5);
  EXPECT_DOUBLE_EQ(s.tpot_p90_s, 0.1);
}

TEST(SloTrackerTest, TheWindowSlidesAndBusyIsARate) {
  SloTracker t(/*window_s=*/5, /*slo_ttft_s=*/0, /*slo_tpot_s=*/0);  // no bounds: served = met
  t.Admitted(1, 0.0, 1);
  t.FirstToken(1, 0.1);
  t.Finished(1, 1.0, true, 0.0, 0.1, 1.0, 2);
  for (int i = 0; i <= 3; ++i) t.Busy(i, i * 0.5);  // busy half the time
  AutoscaleSignals s;
  t.Fill(3.0, &s);
  EXPECT_EQ(s.window_requests, 1);
  EXPECT_EQ(s.window_met, 1);
  for (int i = 4; i <= 20; ++i) t.Busy(i, i * 0.5);
  t.Busy(21, 10.0 + 1.0);  // then all of the last second
  t.Fill(21.0, &s);        // the request left the window; busy over [16, 21]: (11 - 8) / 5
  EXPECT_EQ(s.window_requests, 0);
  EXPECT_DOUBLE_EQ(s.attainment(), 1.0);
  EXPECT_NEAR(s.busy_fraction, 3.0 / 5.0, 1e-9);
  EXPECT_DOUBLE_EQ(s.tokens_per_s, 0);
}

TEST(SloTrackerTest, MemoryStaysBoundedWithoutFill) {
  SloTracker t(/*window_s=*/1, /*slo_ttft_s=*/0, /*slo_tpot_s=*/0);
  for (int i = 0; i < 100000; ++i) {  // 1000 s of traffic at 100 requests/s, never Filled
    const double now = i * 0.01;
    t.Admitted(i, now, 8);
    t.FirstToken(i, now);
    t.Generated(now, 4);
    t.Finished(i, now, true, now, now, now, 1);
    t.Busy(now, now / 2);
  }
  EXPECT_LT(t.held(), 600u);  // about a window's worth (1 s at 100/s, four kinds)
}

// A fake service for the runtime: a queue that the threshold policy must act on.
struct FakeService {
  std::atomic<int> devices{1};
  std::atomic<int64_t> waiting{0};
  std::atomic<int> scale_calls{0};
  std::atomic<int> last_target{0};
  std::atomic<bool> refuse{false};
};

Autoscaler::Hooks HooksFor(FakeService* f) {
  Autoscaler::Hooks h;
  const auto t0 = std::chrono::steady_clock::now();
  h.clock = [t0] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  };
  h.sample = [f](double now) {
    AutoscaleSignals s;
    s.t = now;
    s.devices = f->devices;
    s.waiting = f->waiting;
    s.running = 4;
    s.busy_fraction = 1;
    return s;
  };
  h.scale = [f](int target, std::string* why) {
    ++f->scale_calls;
    f->last_target = target;
    if (f->refuse) *why = "a scale event is in progress: test";
    return !f->refuse;
  };
  return h;
}

AutoscalerConfig ThresholdConfig(const std::string& log) {
  AutoscalerConfig c;
  c.policy.mode = AutoscaleMode::kThreshold;
  c.policy.min_devices = 1;
  c.policy.max_devices = 4;
  c.policy.interval_s = 0.05;
  c.policy.sample_s = 0.01;
  c.policy.up_cooldown_s = 0;
  c.log_path = log;
  return c;
}

template <typename Pred>
bool WaitFor(Pred pred, double seconds) {
  const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  while (std::chrono::steady_clock::now() < end) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return pred();
}

TEST(AutoscalerTest, StartsTheEventItDecidesAndLogsEverything) {
  hbm::testing::ScratchDir dir;
  const std::string log = dir.path() + "/autoscale.jsonl";
  FakeService f;
  f.waiting = 40;  // 40 per device: far above queue_high
  Registry metrics;
  {
    Autoscaler a(ThresholdConfig(log), HooksFor(&f), &metrics);
    ASSERT_TRUE(a.Start().ok());
    ASSERT_TRUE(WaitFor([&] { return f.scale_calls > 0; }, 60));
    EXPECT_EQ(f.last_target, 2);  // threshold: +1
    // The event ends (the service tells); then a manual one to 3 is the new state.
    ScaleEventRecord e;
    e.from = 1;
    e.to = 2;
    e.method = "elastic";
    e.source = "autoscaler";
    e.outcome = "ok";
    e.latency_s = 0.1;
    f.devices = 2;
    a.OnScaleEvent(e);
    e.from = 2;
    e.to = 3;
    e.source = "manual";
    f.devices = 3;
    a.OnScaleEvent(e);
    a.Stop();
    EXPECT_EQ(a.last_decision().action, "up");
  }
  const std::vector<json> lines = ReadLog(log);
  ASSERT_FALSE(lines.empty());
  EXPECT_EQ(lines[0]["kind"], "start");
  EXPECT_EQ(lines[0]["mode"], "threshold");
  EXPECT_GT(CountKind(lines, "sample"), 0);
  EXPECT_GT(CountKind(lines, "decision"), 0);
  EXPECT_EQ(CountKind(lines, "event"), 2);
  bool started = false;
  for (const json& j : lines) {
    if (j["kind"] == "decision" && j["started"] == true) {
      started = true;
      EXPECT_EQ(j["action"], "up");
      EXPECT_FALSE(j["reason"].get<std::string>().empty());
      EXPECT_EQ(j["inputs"]["waiting"], 40) << j.dump();  // what decided it
    }
  }
  EXPECT_TRUE(started);
  const std::string text = metrics.Render();
  EXPECT_NE(text.find("emoe:autoscale_decisions_total{action=\"up\""), std::string::npos) << text;
  EXPECT_NE(text.find("emoe:autoscale_info{mode=\"threshold\",method=\"elastic\"} 1"),
            std::string::npos)
      << text;
}

TEST(AutoscalerTest, AnEventThatCannotStartIsNotAskedAgainAtOnce) {
  FakeService f;
  f.waiting = 40;
  f.refuse = true;
  AutoscalerConfig c = ThresholdConfig("");
  c.policy.retry_s = 3600;  // never within this test
  Autoscaler a(c, HooksFor(&f), nullptr);
  ASSERT_TRUE(a.Start().ok());
  ASSERT_TRUE(WaitFor([&] { return f.scale_calls > 0; }, 60));
  std::this_thread::sleep_for(std::chrono::milliseconds(500));  // ten more decisions
  a.Stop();
  EXPECT_EQ(f.scale_calls, 1);
}

TEST(AutoscalerTest, AnUnwritableLogIsNamed) {
  FakeService f;
  AutoscalerConfig c = ThresholdConfig("/nonexistent-dir/autoscale.jsonl");
  Autoscaler a(c, HooksFor(&f), nullptr);
  const vmm::Status s = a.Start();
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("/nonexistent-dir/autoscale.jsonl"), std::string::npos)
      << s.ToString();
}

// The closed loop: the service on device 0 of four, autoscaled on its SLO; a burst of
// streams breaks the TTFT bound, the autoscaler scales up; once the burst is over it scales
// back down to min_devices; every request is answered in full.
TEST(AutoscaledServiceTest, ABurstScalesUpAndBackDownWithNoFailedRequest) {
  using namespace emoe::server::testing;
  auto world = MakeWorld("tiny", 4);
  hbm::testing::ScratchDir dir;
  ServiceOptions so = ServiceOptionsFor(*world);
  so.autoscale.policy.mode = AutoscaleMode::kSlo;
  so.autoscale.policy.min_devices = 1;
  so.autoscale.policy.max_devices = 4;
  so.autoscale.policy.slo_ttft_ms = 40;
  so.autoscale.policy.slo_tpot_ms = 0;
  so.autoscale.policy.window_s = 2;
  so.autoscale.policy.interval_s = 0.2;
  so.autoscale.policy.sample_s = 0.05;
  so.autoscale.policy.down_hold_s = 1;
  so.autoscale.log_path = dir.path() + "/autoscale.jsonl";
  engine::CoordinatorOptions co = CoordinatorOptionsFor(*world);
  co.instance.compute_share = 0.25;  // devices as slow accelerators: more of them serve more
  auto served = std::make_unique<Served>();
  served->service = std::make_unique<OpenAiService>(so, world->text.get());
  co.observer = served->service.get();
  co.keep_history = false;
  auto c = engine::Coordinator::Create(world->hmm.get(), world->ckpt, world->config, {0}, co);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  served->coordinator = std::move(*c);
  const vmm::Status started = served->service->Start(served->coordinator.get());
  ASSERT_TRUE(started.ok()) << started.ToString();
  const int port = served->service->port();
  auto devices = [&] { return served->coordinator->Snapshot().devices.size(); };

  // The burst: waves of concurrent streams until the autoscaler has scaled up (at most 30
  // waves), each stream checked in full.
  std::atomic<int> failed{0};
  std::atomic<size_t> peak{1};
  std::atomic<bool> polling{true};
  std::thread poller([&] {
    while (polling) {
      peak = std::max(peak.load(), devices());
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  });
  for (int wave = 0; wave < 30 && peak == 1; ++wave) {
    std::vector<std::thread> clients;
    for (int i = 0; i < 48; ++i) {
      clients.emplace_back([&] {
        const StreamResult r = Stream(port, "/v1/completions",
                                      CompletionBody("burst", 16, true, {{"ignore_eos", true}}));
        if (r.head.status != 200 || !r.done || r.finish_reason != "length") ++failed;
      });
    }
    for (auto& t : clients) t.join();
  }
  EXPECT_GT(peak.load(), 1u) << "the burst never made the autoscaler scale up";
  EXPECT_EQ(failed, 0);
  // Idle: back to min_devices after the hold (each event takes what it takes: wait while the
  // service keeps deciding).
  EXPECT_TRUE(WaitFor([&] { return devices() == 1 && !served->service->in_flight(); }, 300))
      << "still on " << devices() << " devices";
  polling = false;
  poller.join();
  // The autoscaler's series, valid for Prometheus (promtool's only lint: the "emoe:" colon).
  const std::string metrics = served->service->RenderMetrics();
  EXPECT_NE(metrics.find("emoe:autoscale_decisions_total{action=\"up\""), std::string::npos);
  EXPECT_NE(metrics.find("emoe:autoscale_info{mode=\"slo\",method=\"elastic\"} 1"),
            std::string::npos);
  if (system("promtool --version >/dev/null 2>&1") == 0) {
    const std::string path = dir.path() + "/metrics.txt";
    std::ofstream(path) << metrics;
    const int rc =
        system(("promtool check metrics < " + path + " > " + path + ".out 2>&1").c_str());
    EXPECT_TRUE(WIFEXITED(rc) && (WEXITSTATUS(rc) == 0 || WEXITSTATUS(rc) == 3)) << rc;
    std::ifstream out(path + ".out");
    for (std::string line; std::getline(out, line);) {
      if (!line.empty()) {
        EXPECT_NE(line.find(" metric names should not contain ':'"), std::string::npos) << line;
      }
    }
  }
  served->Stop(1);
  const std::vector<json> log = ReadLog(so.autoscale.log_path);
  int ups = 0, downs = 0;
  for (const json& j : log) {
    if (j["kind"] != "event") continue;
    EXPECT_EQ(j["source"], "autoscaler");
    EXPECT_EQ(j["outcome"], "ok") << j.dump();
    (j["to"].get<int>() > j["from"].get<int>() ? ups : downs) += 1;
  }
  EXPECT_GE(ups, 1);
  EXPECT_GE(downs, 1);
}

}  // namespace
}  // namespace emoe::server
