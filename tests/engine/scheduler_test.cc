#include "engine/scheduler.h"
#include "engine/local_instance.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <functional>
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

// Every operation on a scheduler in these tests goes through one of the helpers below, which
// check the scheduler's invariants after it.
void ExpectInvariants(const Scheduler& s, const char* after) {
  const Status st = s.CheckInvariants();
  EXPECT_TRUE(st.ok()) << "after " << after << ": " << st.ToString();
}

Status SubmitChecked(Scheduler& s, const Request& r) {
  Status st = s.Submit(r);
  ExpectInvariants(s, "Submit");
  return st;
}

StatusOr<int> StepChecked(Scheduler& s, double now_s,
                          const std::function<void(int64_t, int32_t)>& on_token = {}) {
  auto n = s.Step(now_s, on_token);
  ExpectInvariants(s, "Step");
  return n;
}

StatusOr<Scheduler::SwitchStats> SwitchChecked(Scheduler& s, Instance* instance,
                                               std::vector<kv::KvStore*> stores,
                                               const kv::PagedSequence::CopyFn& copy) {
  auto st = s.SwitchInstance(instance, std::move(stores), copy);
  ExpectInvariants(s, "SwitchInstance");
  return st;
}

int HandOverChecked(Scheduler& from, Scheduler& to) {
  const int n = from.HandOverWaiting(&to);
  ExpectInvariants(from, "HandOverWaiting (from)");
  ExpectInvariants(to, "HandOverWaiting (to)");
  return n;
}

int PreemptAllChecked(Scheduler& s) {
  const int n = s.PreemptAll();
  ExpectInvariants(s, "PreemptAll");
  return n;
}

std::vector<kv::KvStore*> StoresOf(World& w) {
  std::vector<kv::KvStore*> stores;
  for (auto& s : w.stores) stores.push_back(s.get());
  return stores;
}

// Steps `sched` until it is idle; returns the finished requests by id.
std::map<int64_t, RequestResult> Drain(Scheduler& sched, double now, int* steps,
                                       int* streamed = nullptr) {
  while (!sched.idle() && *steps < 10000) {
    auto n = StepChecked(sched, now, [&](int64_t, int32_t) {
      if (streamed != nullptr) ++*streamed;
    });
    EXPECT_TRUE(n.ok()) << n.status().ToString();
    now += 0.005;
    ++*steps;
  }
  std::map<int64_t, RequestResult> out;
  for (auto& r : sched.TakeFinished()) out[r.id] = r;
  ExpectInvariants(sched, "TakeFinished");
  return out;
}

std::map<int64_t, RequestResult> RunAll(World& w, const std::vector<Request>& reqs,
                                        SchedulerOptions o, int* steps) {
  Scheduler sched(w.inst.get(), StoresOf(w), o);
  for (const Request& r : reqs) EXPECT_TRUE(SubmitChecked(sched, r).ok());
  int streamed = 0;
  *steps = 0;
  std::map<int64_t, RequestResult> out = Drain(sched, 0, steps, &streamed);
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
  EXPECT_EQ(SubmitChecked(sched, r).code(), vmm::StatusCode::kInvalidArgument) << "empty prompt";
  r.prompt = {1, 300};
  EXPECT_EQ(SubmitChecked(sched, r).code(), vmm::StatusCode::kInvalidArgument) << "bad token";
  r.prompt.assign(40, 7);
  EXPECT_EQ(SubmitChecked(sched, r).code(), vmm::StatusCode::kInvalidArgument) << "never fits";
  r.prompt.assign(10, 7);
  r.stop_token_ids = {2, 256};
  EXPECT_EQ(SubmitChecked(sched, r).code(), vmm::StatusCode::kInvalidArgument)
      << "stop token outside the vocabulary";
  r.stop_token_ids = {-1};
  EXPECT_EQ(SubmitChecked(sched, r).code(), vmm::StatusCode::kInvalidArgument);
  r.stop_token_ids = {};
  r.max_new_tokens = 0;
  EXPECT_EQ(SubmitChecked(sched, r).code(), vmm::StatusCode::kInvalidArgument);
  EXPECT_TRUE(sched.idle());
  // Two requests with one id: the second is refused while the first is queued.
  r.max_new_tokens = 2;
  r.id = 5;
  EXPECT_TRUE(SubmitChecked(sched, r).ok());
  EXPECT_EQ(SubmitChecked(sched, r).code(), vmm::StatusCode::kAlreadyExists);
  EXPECT_EQ(sched.waiting(), 1u);
}

// A stop token ends its request when it is generated (finish_reason "stop", the token the last
// of the output) and frees its KV; the other requests are untouched. Each request stops on the
// last but one token it generates in a run without stop tokens (its output is that run's up to
// the first occurrence of it), or on a token that never comes (it runs to its length); on a KV
// store small enough to preempt as well (4 blocks of 8 tokens per device).
TEST(SchedulerTest, StopTokensEndRequestsAndFreeTheirKv) {
  const auto plain = Requests(10);
  int steps = 0;
  auto big = MakeWorld(2, 256);
  const auto want = RunAll(*big, plain, {}, &steps);
  std::vector<Request> reqs = plain;
  std::map<int64_t, std::vector<int32_t>> expect;
  for (Request& r : reqs) {
    const std::vector<int32_t>& out = want.at(r.id).output;
    ASSERT_GE(out.size(), 3u);
    int32_t absent = 0;  // a token this request never generates
    while (std::find(out.begin(), out.end(), absent) != out.end()) ++absent;
    if (r.id % 3 == 2) {
      r.stop_token_ids = {absent};  // it runs to its length
      expect[r.id] = out;
    } else {
      const int32_t stop = out[out.size() - 2];
      r.stop_token_ids = {absent, stop};
      expect[r.id] = std::vector<int32_t>(out.begin(), std::find(out.begin(), out.end(), stop) + 1);
    }
  }
  for (int64_t blocks : {int64_t{256}, int64_t{4}}) {
    auto w = MakeWorld(2, blocks);
    auto got = RunAll(*w, reqs, {}, &steps);
    ASSERT_EQ(got.size(), reqs.size());
    int preemptions = 0;
    for (const Request& r : reqs) {
      const RequestResult& g = got.at(r.id);
      preemptions += g.preemptions;
      EXPECT_EQ(g.output, expect[r.id]) << "request " << r.id << ", " << blocks << " blocks";
      // The stop token comes at the latest as the last but one token, before max_new_tokens.
      EXPECT_EQ(g.finish_reason, r.id % 3 == 2 ? "length" : "stop") << "request " << r.id;
    }
    if (blocks == 4) {
      EXPECT_GT(preemptions, 0) << "the small store must have forced a preemption";
    }
    for (auto& s : w->stores) {
      EXPECT_EQ(s->pool().free_blocks(), blocks) << "a stopped request's KV is freed";
      EXPECT_TRUE(s->pool().CheckInvariants().ok());
    }
  }
}

// An instance whose every third step fails (as a dead instance process's does): on error no
// sequence's length changed, as the Instance contract says.
class FlakyInstance : public Instance {
 public:
  explicit FlakyInstance(Instance* inner) : inner_(inner) {}
  const ModelConfig& config() const override { return inner_->config(); }
  int num_ranks() const override { return inner_->num_ranks(); }
  const std::vector<int>& devices() const override { return inner_->devices(); }
  const experts::ExpertPlacement& placement() const override { return inner_->placement(); }
  bool attached() const override { return inner_->attached(); }
  Status Attach(const AttachSpec& spec, AttachStats* stats) override {
    return inner_->Attach(spec, stats);
  }
  Status WarmUp() override { return inner_->WarmUp(); }
  StatusOr<std::vector<std::vector<float>>> Step(const std::vector<SequenceInput>& b) override {
    if (++steps_ % 3 == 0) return Status::Unavailable("injected: the instance is gone");
    return inner_->Step(b);
  }
  int failures() const { return steps_ / 3; }

 private:
  Instance* inner_;
  int steps_ = 0;
};

// A failed step breaks no invariant (the requests it admitted go back to the queue without
// their blocks, the decoding ones keep their KV), and stepping on gives the outputs of a run
// without failures.
TEST(SchedulerTest, FailedStepsKeepTheInvariantsAndTheOutputs) {
  auto w = MakeWorld(2, 64);
  const auto reqs = Requests(12);
  int steps = 0;
  const auto want = RunAll(*w, reqs, {}, &steps);
  FlakyInstance flaky(w->inst.get());
  Scheduler sched(&flaky, StoresOf(*w), {});
  for (const Request& r : reqs) ASSERT_TRUE(SubmitChecked(sched, r).ok());
  double now = 0;
  int failed = 0;
  for (int i = 0; i < 10000 && !sched.idle(); ++i, now += 0.005) {
    auto n = StepChecked(sched, now);
    if (!n.ok()) ++failed;
  }
  EXPECT_GT(failed, 2);
  std::map<int64_t, RequestResult> got;
  for (auto& r : sched.TakeFinished()) got[r.id] = r;
  ASSERT_EQ(got.size(), want.size());
  for (const auto& [id, r] : want) EXPECT_EQ(got[id].output, r.output) << "request " << id;
  EXPECT_EQ(w->stores[0]->pool().free_blocks(), w->stores[0]->pool().num_blocks());
}

// A cold restart of one scheduler's requests on another: preempted, handed over, recomputed;
// the outputs are those of an uninterrupted run.
TEST(SchedulerTest, PreemptAllAndHandOverKeepTheOutputs) {
  auto w = MakeWorld(2, 64);
  const auto reqs = Requests(8);
  int steps = 0;
  auto want = RunAll(*w, reqs, {}, &steps);
  Scheduler a(w->inst.get(), StoresOf(*w), {}), b(w->inst.get(), StoresOf(*w), {});
  for (const Request& r : reqs) ASSERT_TRUE(SubmitChecked(a, r).ok());
  double now = 0;
  for (int i = 0; i < 4; ++i, now += 0.005) ASSERT_TRUE(StepChecked(a, now).ok());
  ASSERT_GT(a.running(), 0u);
  const size_t running = a.running(), queued = a.running() + a.waiting();
  EXPECT_EQ(PreemptAllChecked(a), static_cast<int>(running));
  EXPECT_EQ(a.running(), 0u);
  EXPECT_EQ(HandOverChecked(a, b), static_cast<int>(queued));
  EXPECT_TRUE(a.idle());
  steps = 0;
  auto got = Drain(b, now, &steps);
  for (auto& r : a.TakeFinished()) got[r.id] = r;
  ASSERT_EQ(got.size(), reqs.size());
  for (const Request& r : reqs) EXPECT_EQ(got[r.id].output, want[r.id].output) << r.id;
  for (auto& s : w->stores) EXPECT_EQ(s->pool().free_blocks(), 64) << "all KV returned";
}

// A switchover to the same instance keeps every block table; one to a single device copies the
// requests of the device that leaves. Either way the outputs stay those of an uninterrupted run.
TEST(SchedulerTest, SwitchInstanceKeepsOrCopiesTheKv) {
  auto w = MakeWorld(2, 64);
  const auto reqs = Requests(8);
  int steps = 0;
  auto want = RunAll(*w, reqs, {}, &steps);
  Scheduler sched(w->inst.get(), StoresOf(*w), {});
  for (const Request& r : reqs) ASSERT_TRUE(SubmitChecked(sched, r).ok());
  double now = 0;
  for (int i = 0; i < 6; ++i, now += 0.005) ASSERT_TRUE(StepChecked(sched, now).ok());
  const int running = static_cast<int>(sched.running());
  ASSERT_GT(running, 1);
  auto same = SwitchChecked(sched, w->inst.get(), StoresOf(*w), {});
  ASSERT_TRUE(same.ok()) << same.status().ToString();
  EXPECT_EQ(same->kept, running);
  EXPECT_EQ(same->copied + same->preempted, 0);

  auto one = LocalInstance::Create(w->hmm.get(), w->config, {0});
  ASSERT_TRUE(one.ok()) << one.status().ToString();
  auto memcpy_copy = [](void* dst, const void* src, uint64_t bytes) {
    std::memcpy(dst, src, bytes);
    return Status::Ok();
  };
  auto moved = SwitchChecked(sched, one->get(), {w->stores[0].get()}, memcpy_copy);
  ASSERT_TRUE(moved.ok()) << moved.status().ToString();
  EXPECT_EQ(moved->kept + moved->copied + moved->preempted, running);
  EXPECT_GT(moved->copied, 0) << "rank 1's requests are copied to device 0";
  EXPECT_EQ(moved->preempted, 0);
  steps = 0;
  auto got = Drain(sched, now, &steps);
  ASSERT_EQ(got.size(), reqs.size());
  for (const Request& r : reqs) EXPECT_EQ(got[r.id].output, want[r.id].output) << r.id;
  for (auto& s : w->stores) EXPECT_EQ(s->pool().free_blocks(), 64) << "all KV returned";
}

// Requests with prompts longer than a small step budget, some sampled (seeded): their tokens
// depend on every logit, so equal outputs mean the chunked prefill computed the same KV.
std::vector<Request> LongRequests(int n) {
  std::vector<Request> out = Requests(n);
  for (Request& r : out) {
    for (int t = 0; t < 20 + (r.id * 11) % 31; ++t) r.prompt.push_back((r.id * 13 + t * 29) % 256);
    if (r.id % 3 == 1) {
      r.temperature = 0.8f;
      r.top_p = 0.9f;
      r.seed = 100 + r.id;
    }
  }
  return out;
}

SchedulerOptions Chunked(int64_t budget) {
  SchedulerOptions o;
  o.chunked_prefill = true;
  o.max_tokens_per_step = budget;
  return o;
}

// Chunked prefill: no step exceeds the budget (invariant 5, checked after every step), a
// prompt several times the budget is served, the decodes keep stepping beside a long prefill,
// and the tokens equal those of whole-prompt prefills bit for bit (on one and two devices).
TEST(SchedulerTest, ChunkedPrefillKeepsTheBudgetAndTheTokens) {
  const auto reqs = LongRequests(9);
  for (int devices : {1, 2}) {
    SCOPED_TRACE(devices);
    auto w = MakeWorld(devices, 128);
    int whole_steps = 0, chunked_steps = 0;
    auto want = RunAll(*w, reqs, {}, &whole_steps);
    Scheduler sched(w->inst.get(), StoresOf(*w), Chunked(8));
    for (const Request& r : reqs) ASSERT_TRUE(SubmitChecked(sched, r).ok());
    // Request 0 (admitted first: a prompt of 25 tokens, 4 chunks) gets a token in every step
    // from its first to its last, while the others' prompts are prefilled beside it.
    std::vector<int> steps_of_0;
    double now = 1.0;
    while (!sched.idle() && chunked_steps < 10000) {
      auto n = StepChecked(sched, now, [&](int64_t id, int32_t) {
        if (id == 0) steps_of_0.push_back(chunked_steps);
      });
      ASSERT_TRUE(n.ok()) << n.status().ToString();
      EXPECT_LE(sched.last_step_tokens(), 8);
      now += 0.005;
      ++chunked_steps;
    }
    ASSERT_EQ(static_cast<int>(steps_of_0.size()), reqs[0].max_new_tokens);
    EXPECT_EQ(steps_of_0.front(), 3) << "25 tokens in chunks of 8: the 4th step samples";
    for (size_t k = 1; k < steps_of_0.size(); ++k) EXPECT_EQ(steps_of_0[k], steps_of_0[k - 1] + 1);
    std::map<int64_t, RequestResult> got;
    for (auto& r : sched.TakeFinished()) got[r.id] = r;
    ASSERT_EQ(got.size(), reqs.size());
    for (const Request& r : reqs) {
      EXPECT_EQ(got[r.id].output, want[r.id].output) << "request " << r.id;
      EXPECT_EQ(got[r.id].finish_reason, "length");
    }
    EXPECT_GT(chunked_steps, whole_steps) << "the prompts took several steps each";
    for (auto& s : w->stores) EXPECT_EQ(s->pool().free_blocks(), 128) << "all KV returned";
  }
}

// A chunked prefill meets the rest of the scheduler: a prompt larger than the budget is
// refused only without chunking; failed steps on a small KV store, a preemption in the middle
// of a prefill and a switchover that copies a prompt halfway through its prefill all keep the
// tokens.
TEST(SchedulerTest, ChunkedPrefillSurvivesFailuresPreemptionAndSwitches) {
  const auto reqs = LongRequests(8);
  {
    auto w = MakeWorld(1, 16);
    Request r = reqs[0];  // 25 tokens
    Scheduler whole(w->inst.get(), StoresOf(*w), [] {
      SchedulerOptions o;
      o.max_tokens_per_step = 8;
      return o;
    }());
    EXPECT_EQ(SubmitChecked(whole, r).code(), vmm::StatusCode::kInvalidArgument);
    Scheduler chunked(w->inst.get(), StoresOf(*w), Chunked(8));
    EXPECT_TRUE(SubmitChecked(chunked, r).ok());
  }
  int steps = 0;
  auto big = MakeWorld(2, 256);
  auto want = RunAll(*big, reqs, {}, &steps);
  {
    SCOPED_TRACE("failed steps and preemptions");
    // The short requests of FullKvPreemptsAndRecomputesWithTheSameOutput in chunks of 4.
    const auto shorter = Requests(10);
    auto want_short = RunAll(*big, shorter, {}, &steps);
    auto w = MakeWorld(2, 6);  // 48 tokens per device: the prompts wait and preempt
    FlakyInstance flaky(w->inst.get());
    Scheduler sched(&flaky, StoresOf(*w), Chunked(4));
    for (const Request& r : shorter) ASSERT_TRUE(SubmitChecked(sched, r).ok());
    double now = 1.0;
    for (int i = 0; i < 10000 && !sched.idle(); ++i, now += 0.005) (void)StepChecked(sched, now);
    EXPECT_GT(flaky.failures(), 2);
    std::map<int64_t, RequestResult> got;
    for (auto& r : sched.TakeFinished()) got[r.id] = r;
    ASSERT_EQ(got.size(), shorter.size());
    for (const Request& r : shorter) {
      EXPECT_EQ(got[r.id].output, want_short[r.id].output) << "request " << r.id;
    }
    for (auto& s : w->stores) EXPECT_EQ(s->pool().free_blocks(), 6) << "all KV returned";
  }
  {
    SCOPED_TRACE("a prefill preempted halfway");
    // One device of 8 blocks (64 tokens). A (14 tokens, 40 new) starts; B (40 tokens) is then
    // admitted with all 6 free blocks and prefills 3 tokens a step beside A's decode, until A
    // needs a third block: B, the youngest, is preempted in the middle of its prefill, waits
    // for A to finish, and is recomputed.
    std::vector<Request> ab(2);
    for (int t = 0; t < 14; ++t) ab[0].prompt.push_back((t * 37 + 3) % 256);
    ab[0].max_new_tokens = 40;
    ab[1].id = 1;
    for (int t = 0; t < 40; ++t) ab[1].prompt.push_back((t * 53 + 11) % 256);
    ab[1].max_new_tokens = 8;
    ab[1].arrival_s = 0.001;
    auto want_ab = RunAll(*big, ab, {}, &steps);
    auto w = MakeWorld(1, 8);
    auto got = RunAll(*w, ab, Chunked(4), &steps);
    ASSERT_EQ(got.size(), 2u);
    EXPECT_EQ(got[0].output, want_ab[0].output);
    EXPECT_EQ(got[1].output, want_ab[1].output);
    EXPECT_EQ(got[0].preemptions, 0);
    EXPECT_EQ(got[1].preemptions, 1) << "B was preempted while it prefilled";
    EXPECT_GT(got[1].first_token_s, got[0].finish_s) << "and came back after A";
    EXPECT_EQ(w->stores[0]->pool().free_blocks(), 8) << "all KV returned";
  }
  {
    SCOPED_TRACE("a switchover in the middle of a prefill");
    auto w = MakeWorld(2, 64);
    Scheduler sched(w->inst.get(), StoresOf(*w), Chunked(8));
    for (const Request& r : reqs) ASSERT_TRUE(SubmitChecked(sched, r).ok());
    // Two steps: request 0's first 16 of 25 tokens, on rank 0 (device 0), nothing else.
    ASSERT_TRUE(StepChecked(sched, 1.0).ok());
    ASSERT_TRUE(StepChecked(sched, 1.005).ok());
    ASSERT_EQ(sched.running(), 1u);
    auto one = LocalInstance::Create(w->hmm.get(), w->config, {1});
    ASSERT_TRUE(one.ok()) << one.status().ToString();
    auto memcpy_copy = [](void* dst, const void* src, uint64_t bytes) {
      std::memcpy(dst, src, bytes);
      return Status::Ok();
    };
    auto moved = SwitchChecked(sched, one->get(), {w->stores[1].get()}, memcpy_copy);
    ASSERT_TRUE(moved.ok()) << moved.status().ToString();
    EXPECT_EQ(moved->copied, 1) << "the half-prefilled prompt moved to device 1";
    steps = 0;
    auto got = Drain(sched, 1.01, &steps);
    ASSERT_EQ(got.size(), reqs.size());
    for (const Request& r : reqs) EXPECT_EQ(got[r.id].output, want[r.id].output) << r.id;
    for (auto& s : w->stores) EXPECT_EQ(s->pool().free_blocks(), 64) << "all KV returned";
  }
}

// CheckInvariants reports broken states that the public API lets a caller make.
TEST(SchedulerTest, CheckInvariantsCatchesBrokenStates) {
  auto w = MakeWorld(1, 16);
  kv::BlockPool& pool = w->stores[0]->pool();
  {
    // KV released behind the scheduler's back (invariant 4).
    Scheduler sched(w->inst.get(), StoresOf(*w), {});
    const auto reqs = Requests(2);
    for (const Request& r : reqs) ASSERT_TRUE(SubmitChecked(sched, r).ok());
    ASSERT_TRUE(StepChecked(sched, 1.0).ok());
    ASSERT_EQ(sched.running(), 2u);
    std::vector<kv::BlockId> used;
    for (kv::BlockId b = 0; b < pool.num_blocks(); ++b) {
      if (pool.refcount(b) > 0) used.push_back(b);
    }
    ASSERT_FALSE(used.empty());
    for (kv::BlockId b : used) pool.Unref(b);
    const Status broken = sched.CheckInvariants();
    EXPECT_EQ(broken.code(), vmm::StatusCode::kInternal);
    EXPECT_NE(broken.message().find("invariant 4"), std::string::npos) << broken.ToString();
    // Give the blocks back (the free list is LIFO: the same blocks come back) so that the
    // scheduler can release them.
    auto again = pool.Allocate(static_cast<int64_t>(used.size()));
    ASSERT_TRUE(again.ok());
    std::sort(again->begin(), again->end());
    ASSERT_EQ(*again, used);
    ExpectInvariants(sched, "the blocks came back");
  }
  EXPECT_EQ(pool.free_blocks(), 16);
  {
    // Two requests with one id (invariant 1): Submit refuses that, but a hand-over between
    // two schedulers does not look; CheckInvariants does.
    Scheduler sched(w->inst.get(), StoresOf(*w), {});
    Scheduler other(w->inst.get(), StoresOf(*w), {});
    Request r = Requests(1)[0];
    ASSERT_TRUE(sched.Submit(r).ok());
    ASSERT_TRUE(other.Submit(r).ok());
    ASSERT_EQ(other.HandOverWaiting(&sched), 1);
    const Status broken = sched.CheckInvariants();
    EXPECT_EQ(broken.code(), vmm::StatusCode::kInternal);
    EXPECT_NE(broken.message().find("invariant 1"), std::string::npos) << broken.ToString();
  }
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
