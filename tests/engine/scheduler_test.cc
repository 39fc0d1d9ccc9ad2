#include "engine/scheduler.h"
#include "engine/local_instance.h"

#include <gtest/gtest.h>

#include <map>

#include "../hbm/test_files.h"

namespace emoe::engine {
namespace {

using hbm::testing::ScratchDir;

struct World {
  ScratchDir dir;
  ModelConfig config;
  std::unique_ptr<hbm::Hmm> hmm;
  std::vector<std::unique_ptr<kv::KvStore>> stores;
  std::unique_ptr<LocalInstance> inst;
};

// `kv_blocks` blocks of 8 tokens per device, on `n` devices.
std::unique_ptr<World> MakeWorld(int n, int64_t kv_blocks) {
  auto w = std::make_unique<World>();
  w->config = *PresetConfig("tiny");
  EXPECT_TRUE(GenerateModel(w->config, {}, w->dir.path()).ok());
  auto ckpt = hbm::OpenCheckpoint(w->dir.path());
  hbm::HmmOptions o;
  o.memory.usage_bytes = {8 << 20, 0, 8 << 20};
  o.memory.page_size = vmm::PageSizePolicy::kSmall;
  std::vector<hbm::DeviceSpec> specs(n);
  std::vector<int> ids;
  for (int i = 0; i < n; ++i) {
    specs[i].id = i;
    specs[i].cpus = {i % 2};
    specs[i].capacity_bytes = 32 << 20;
    ids.push_back(i);
  }
  w->hmm = std::move(*hbm::Hmm::CreateWithDevices(specs, o));
  EXPECT_TRUE(w->hmm->LoadCheckpoint(*ckpt, hbm::ReplicateEverywhere(ids)).ok());
  const kv::KvGeometry g = KvGeometryFor(w->config, 8);
  for (int i = 0; i < n; ++i) {
    w->stores.push_back(
        std::move(*kv::KvStore::Create(w->hmm->device(i), g, kv_blocks * g.block_bytes())));
  }
  w->inst = std::move(*LocalInstance::Create(w->hmm.get(), w->config, ids));
  return w;
}

std::vector<Request> Requests(int n) {
  std::vector<Request> out;
  for (int i = 0; i < n; ++i) {
    Request r;
    r.id = i;
    for (int t = 0; t < 5 + (i * 7) % 13; ++t) r.prompt.push_back((i * 31 + t * 17) % 256);
    r.max_new_tokens = 6 + i % 5;
    r.arrival_s = 0.01 * i;
    out.push_back(r);
  }
  return out;
}

std::map<int64_t, RequestResult> RunAll(World& w, const std::vector<Request>& reqs,
                                        SchedulerOptions o, int* steps) {
  std::vector<kv::KvStore*> stores;
  for (auto& s : w.stores) stores.push_back(s.get());
  Scheduler sched(w.inst.get(), stores, o);
  for (const Request& r : reqs) EXPECT_TRUE(sched.Submit(r).ok());
  double now = 0;
  int streamed = 0;
  *steps = 0;
  while (!sched.idle() && *steps < 10000) {
    auto n = sched.Step(now, [&](int64_t, int32_t) { ++streamed; });
    EXPECT_TRUE(n.ok()) << n.status().ToString();
    now += 0.005;
    ++*steps;
  }
  std::map<int64_t, RequestResult> out;
  for (auto& r : sched.TakeFinished()) out[r.id] = r;
  int total = 0;
  for (auto& [id, r] : out) total += r.output.size();
  EXPECT_GE(streamed, total) << "every token was streamed";
  return out;
}

TEST(SchedulerTest, ContinuousBatchingFinishesEveryRequest) {
  auto w = MakeWorld(2, 64);
  const auto reqs = Requests(12);
  int steps = 0;
  auto res = RunAll(*w, reqs, {}, &steps);
  ASSERT_EQ(res.size(), reqs.size());
  for (const Request& r : reqs) {
    const RequestResult& got = res[r.id];
    EXPECT_EQ(static_cast<int>(got.output.size()), r.max_new_tokens);
    EXPECT_EQ(got.finish_reason, "length");
    EXPECT_GE(got.ttft_s(), 0);
    EXPECT_GE(got.e2e_s(), got.ttft_s());
    EXPECT_GT(got.tpot_s(), 0);
  }
  EXPECT_LT(steps, 60) << "requests were batched, not run one by one";
  for (auto& s : w->stores) EXPECT_EQ(s->pool().free_blocks(), 64) << "all KV returned";
}

TEST(SchedulerTest, FullKvPreemptsAndRecomputesWithTheSameOutput) {
  const auto reqs = Requests(10);
  int steps_big = 0, steps_small = 0;
  auto big = MakeWorld(2, 256);
  auto want = RunAll(*big, reqs, {}, &steps_big);
  auto small = MakeWorld(2, 6);  // 48 tokens per device: forces waiting and preemption
  auto got = RunAll(*small, reqs, {}, &steps_small);
  ASSERT_EQ(got.size(), reqs.size());
  int preemptions = 0;
  for (const Request& r : reqs) {
    EXPECT_EQ(got[r.id].output, want[r.id].output) << "request " << r.id;
    preemptions += got[r.id].preemptions;
  }
  EXPECT_GE(steps_small, steps_big);
  for (auto& s : small->stores) {
    EXPECT_EQ(s->pool().free_blocks(), 6);
    EXPECT_TRUE(s->pool().CheckInvariants().ok());
  }
  EXPECT_GT(preemptions, 0) << "the small store must have forced a preemption";
}

TEST(SchedulerTest, ImpossibleRequestsAreRefused) {
  auto w = MakeWorld(1, 4);  // 32 tokens of KV
  Scheduler sched(w->inst.get(), {w->stores[0].get()}, {});
  Request r;
  EXPECT_EQ(sched.Submit(r).code(), vmm::StatusCode::kInvalidArgument) << "empty prompt";
  r.prompt = {1, 300};
  EXPECT_EQ(sched.Submit(r).code(), vmm::StatusCode::kInvalidArgument) << "bad token";
  r.prompt.assign(40, 7);
  EXPECT_EQ(sched.Submit(r).code(), vmm::StatusCode::kInvalidArgument) << "never fits";
  r.prompt.assign(10, 7);
  r.max_new_tokens = 0;
  EXPECT_EQ(sched.Submit(r).code(), vmm::StatusCode::kInvalidArgument);
  EXPECT_TRUE(sched.idle());
}

TEST(SamplingTest, GreedyAndSeededNucleus) {
  const std::vector<float> logits = {0.1f, 2.0f, 1.9f, -1.0f};
  std::mt19937_64 a(5), b(5);
  EXPECT_EQ(SampleToken(logits, 0.0f, 1.0f, &a), 1);
  std::vector<int> sa, sb;
  for (int i = 0; i < 50; ++i) {
    sa.push_back(SampleToken(logits, 1.0f, 0.9f, &a));
    sb.push_back(SampleToken(logits, 1.0f, 0.9f, &b));
  }
  EXPECT_EQ(sa, sb) << "same seed, same samples";
  for (int t : sa) EXPECT_NE(t, 3) << "top-p 0.9 excludes the unlikely tail";
  EXPECT_EQ(SampleToken(logits, 1.0f, 0.01f, &a), 1) << "tiny top-p keeps only the best";
}

}  // namespace
}  // namespace emoe::engine
