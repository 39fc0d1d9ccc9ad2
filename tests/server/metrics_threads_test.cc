// Concurrency of the Prometheus registry (server/metrics.h): threads updating shared series
// (lock-free) and creating new ones while another thread renders; every update is counted.
// Runs under TSan too (THREADS).
#include <gtest/gtest.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "server/metrics.h"

namespace emoe::server {
namespace {

TEST(RegistryThreadsTest, UpdatesAreNeverLost) {
  constexpr int kThreads = 8;
  constexpr int kIters = 20000;
  Registry r;
  Counter& tokens = r.counter("emoe:generation_tokens", "tokens", {"model_name"}, {"m"});
  Gauge& running = r.gauge("emoe:num_requests_running", "running");
  Histogram& ttft = r.histogram("emoe:time_to_first_token_seconds", "ttft", kTtftBuckets);
  std::atomic<int> collected{0};
  r.AddCollector([&] { r.gauge("emoe:renders", "renders").Set(++collected); });
  std::atomic<bool> stop{false};
  std::thread renderer([&] {
    while (!stop.load()) {
      const std::string text = r.Render();
      EXPECT_NE(text.find("# TYPE emoe:generation_tokens_total counter"), std::string::npos);
    }
  });
  std::vector<std::thread> workers;
  for (int t = 0; t < kThreads; ++t) {
    workers.emplace_back([&, t] {
      for (int i = 0; i < kIters; ++i) {
        tokens.Inc();
        running.Add(1);
        running.Add(-1);
        ttft.Observe(0.25);  // exact in binary: the sum is exact
        // Series created concurrently: the same ones from every thread, and per-thread ones.
        r.counter("emoe:request_success", "ok", {"finished_reason"}, {i % 2 ? "stop" : "length"})
            .Inc();
        if (i % 1000 == 0) {
          r.gauge("emoe:arena_bytes", "bytes", {"device"}, {std::to_string(t)}).Set(i);
        }
      }
    });
  }
  for (std::thread& w : workers) w.join();
  stop = true;
  renderer.join();
  EXPECT_EQ(tokens.value(), kThreads * kIters);
  EXPECT_EQ(running.value(), 0);
  EXPECT_EQ(ttft.count(), static_cast<uint64_t>(kThreads * kIters));
  EXPECT_EQ(ttft.sum(), 0.25 * kThreads * kIters);
  EXPECT_EQ(r.counter("emoe:request_success", "ok", {"finished_reason"}, {"stop"}).value() +
                r.counter("emoe:request_success", "ok", {"finished_reason"}, {"length"}).value(),
            kThreads * kIters);
  const std::string text = r.Render();
  EXPECT_NE(text.find("emoe:generation_tokens_total{model_name=\"m\"} 160000\n"), std::string::npos)
      << text;
  EXPECT_NE(text.find("emoe:time_to_first_token_seconds_count 160000\n"), std::string::npos);
  for (int t = 0; t < kThreads; ++t) {
    EXPECT_NE(text.find("emoe:arena_bytes{device=\"" + std::to_string(t) + "\"} 19000\n"),
              std::string::npos);
  }
}

}  // namespace
}  // namespace emoe::server
