// What a front end sees of serving (engine/serving_view.h): the observer is told every token in
// order and then the result, without history nothing piles up, Cancel frees a request's KV at
// once, the snapshot follows scale events and integrates device-seconds, and the progress of a
// scale event can be read while it runs.
#include <atomic>

#include "coordinator_testing.h"

namespace emoe::engine {
namespace {

using namespace emoe::engine::testing;  // NOLINT

// Records what the serving thread tells it; any thread may read.
class Recorder : public ServingObserver {
 public:
  void OnTokens(const std::vector<TokenEvent>& tokens) override {
    std::lock_guard<std::mutex> l(mu_);
    for (const TokenEvent& t : tokens) {
      if (finished_.count(t.id) > 0) late_ = true;  // a token after its result
      tokens_[t.id].push_back(t.token);
    }
  }
  void OnFinished(const std::vector<RequestResult>& results) override {
    std::lock_guard<std::mutex> l(mu_);
    for (const RequestResult& r : results) finished_[r.id] = r;
  }
  std::vector<int32_t> tokens(int64_t id) {
    std::lock_guard<std::mutex> l(mu_);
    return tokens_[id];
  }
  size_t finished() {
    std::lock_guard<std::mutex> l(mu_);
    return finished_.size();
  }
  std::optional<RequestResult> result(int64_t id) {
    std::lock_guard<std::mutex> l(mu_);
    auto it = finished_.find(id);
    if (it == finished_.end()) return std::nullopt;
    return it->second;
  }
  bool late() {
    std::lock_guard<std::mutex> l(mu_);
    return late_;
  }
  // Waits (generously: a loaded machine) until `pred` holds.
  template <typename F>
  bool WaitFor(F pred) {
    for (int i = 0; i < 6000; ++i) {
      if (pred()) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return pred();
  }

 private:
  std::mutex mu_;
  std::map<int64_t, std::vector<int32_t>> tokens_;
  std::map<int64_t, RequestResult> finished_;
  bool late_ = false;
};

TEST(CoordinatorViewTest, ObserverSeesEveryTokenInOrderThenTheResult) {
  const auto requests = Requests(8);
  const auto want = Reference(requests);
  Recorder rec;
  CoordinatorOptions o = Options();
  o.observer = &rec;
  o.keep_history = false;
  Served s = Serve({0, 1}, o);
  ASSERT_NE(s.c, nullptr);
  for (const Request& r : requests) ASSERT_TRUE(s.c->Submit(r).ok());
  ASSERT_TRUE(rec.WaitFor([&] { return rec.finished() == requests.size(); }));
  for (const Request& r : requests) {
    auto res = rec.result(r.id);
    ASSERT_TRUE(res.has_value());
    EXPECT_EQ(res->finish_reason, "length");
    EXPECT_EQ(res->output, want.at(r.id)) << "request " << r.id;
    EXPECT_EQ(rec.tokens(r.id), res->output) << "request " << r.id;
  }
  EXPECT_FALSE(rec.late());
  EXPECT_EQ(s.c->outstanding(), 0u);
  // No history: nothing kept for TakeFinished, the timeline or the gaps.
  EXPECT_TRUE(s.c->TakeFinished().empty());
  EXPECT_TRUE(s.c->Timeline().empty());
  EXPECT_EQ(s.c->MaxTokenGap(0, 1e9), 0.0);
}

TEST(CoordinatorViewTest, CancelFreesTheKvAtOnceAndKeepsTheTokensSoFar) {
  Recorder rec;
  CoordinatorOptions o = Options();
  o.observer = &rec;
  Served s = Serve({0}, o);
  ASSERT_NE(s.c, nullptr);
  Request r = Requests(1)[0];
  r.max_new_tokens = 3000;
  ASSERT_TRUE(s.c->Submit(r).ok());
  ASSERT_TRUE(rec.WaitFor([&] { return rec.tokens(r.id).size() >= 3; }));
  EXPECT_GT(s.c->Snapshot().kv_blocks_used, 0);
  s.c->Cancel(r.id);
  ASSERT_TRUE(rec.WaitFor([&] { return rec.result(r.id).has_value(); }));
  const RequestResult res = *rec.result(r.id);
  EXPECT_EQ(res.finish_reason, "abort");
  EXPECT_TRUE(res.served());
  EXPECT_GE(res.output.size(), 3u);
  EXPECT_LT(res.output.size(), 3000u);
  EXPECT_EQ(rec.tokens(r.id), res.output);
  // Its blocks were freed by the cancel, before any later step.
  const ServingSnapshot snap = s.c->Snapshot();
  EXPECT_EQ(snap.kv_blocks_used, 0);
  EXPECT_EQ(snap.running, 0);
  EXPECT_GT(snap.kv_blocks_total, 0);
  // A request cancelled before it was routed, and ids not in flight (finished, unknown).
  Request q = Requests(2)[1];
  q.max_new_tokens = 3000;
  ASSERT_TRUE(s.c->Submit(q).ok());
  s.c->Cancel(q.id);
  s.c->Cancel(r.id);
  s.c->Cancel(12345);
  ASSERT_TRUE(rec.WaitFor([&] { return rec.result(q.id).has_value(); }));
  EXPECT_EQ(rec.result(q.id)->finish_reason, "abort");
  EXPECT_TRUE(rec.WaitFor([&] { return s.c->outstanding() == 0; }));
  EXPECT_EQ(s.c->Snapshot().kv_blocks_used, 0);
  // Serving goes on.
  Request t = Requests(3)[2];
  ASSERT_TRUE(s.c->Submit(t).ok());
  ASSERT_TRUE(rec.WaitFor([&] { return rec.result(t.id).has_value(); }));
  EXPECT_EQ(rec.result(t.id)->finish_reason, "length");
}

TEST(CoordinatorViewTest, SnapshotFollowsScaleEventsAndIntegratesDeviceSeconds) {
  Served s = Serve({0, 1});
  ASSERT_NE(s.c, nullptr);
  const ServingSnapshot a = s.c->Snapshot();
  EXPECT_EQ(a.devices, (std::vector<int>{0, 1}));
  EXPECT_EQ(a.primary, (std::vector<int>{0, 1}));
  EXPECT_TRUE(a.down.empty());
  EXPECT_GT(a.kv_block_bytes, 0u);
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  const ServingSnapshot b = s.c->Snapshot();
  EXPECT_NEAR(b.device_seconds - a.device_seconds, 2 * (b.t - a.t), 1e-9);
  auto rep = s.c->Scale({0, 1, 2}, {});
  ASSERT_TRUE(rep.ok()) << rep.status().ToString();
  const ServingSnapshot c = s.c->Snapshot();
  EXPECT_EQ(c.devices, (std::vector<int>{0, 1, 2}));
  EXPECT_GT(c.generation, a.generation);
  EXPECT_GE(c.device_seconds, b.device_seconds + 2 * (rep->latency_s * 0.5));
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  const ServingSnapshot d = s.c->Snapshot();
  EXPECT_NEAR(d.device_seconds - c.device_seconds, 3 * (d.t - c.t), 1e-9);
  EXPECT_GT(d.kv_blocks_total, a.kv_blocks_total);
}

TEST(CoordinatorViewTest, ScaleProgressIsReadableWhileAScaleRuns) {
  Served s = Serve({0, 1});
  ASSERT_NE(s.c, nullptr);
  EXPECT_FALSE(s.c->scale_progress().scaling);
  std::atomic<bool> done{false};
  std::vector<ScaleProgress> seen;
  std::thread poll([&] {
    while (!done.load()) {
      ScaleProgress p = s.c->scale_progress();
      if (p.scaling) seen.push_back(p);
      std::this_thread::yield();
    }
  });
  auto rep = s.c->Scale({0, 1, 2}, {});
  done = true;
  poll.join();
  ASSERT_TRUE(rep.ok()) << rep.status().ToString();
  EXPECT_FALSE(s.c->scale_progress().scaling);
  ASSERT_FALSE(seen.empty()) << "never saw the scale event in progress";
  for (const ScaleProgress& p : seen) {
    EXPECT_EQ(p.method, "elastic");
    EXPECT_EQ(p.from_devices, (std::vector<int>{0, 1}));
    EXPECT_EQ(p.to_devices, (std::vector<int>{0, 1, 2}));
    if (!p.phase.empty()) {
      EXPECT_EQ(rep->phase_s.count(p.phase), 1u) << p.phase;
    }
  }
}

}  // namespace
}  // namespace emoe::engine
