// ServingLoop: requests submitted while the serving thread runs a task (a switchover) or is
// parked (a cold restart's stop) are accepted at once and served afterwards; tasks run on the
// serving thread; concurrent replicas step on threads of their own.
#include "serving/serving_loop.h"

#include <gtest/gtest.h>

#include <future>

#include "../hbm/test_files.h"
#include "engine/forward.h"
#include "engine/local_instance.h"
#include "hbm/hmm.h"

namespace emoe::engine {
namespace {

using hbm::testing::ScratchDir;

struct World {
  ScratchDir dir;
  ModelConfig config = *PresetConfig("tiny");
  std::unique_ptr<hbm::Hmm> hmm;
  std::vector<std::unique_ptr<kv::KvStore>> stores;
  std::vector<std::unique_ptr<LocalInstance>> insts;  // one per device
};

std::unique_ptr<World> MakeWorld() {
  auto w = std::make_unique<World>();
  EXPECT_TRUE(GenerateModel(w->config, {}, w->dir.path()).ok());
  auto ckpt = hbm::OpenCheckpoint(w->dir.path());
  hbm::HmmOptions o;
  o.memory.usage_bytes = {8 << 20, 0, 8 << 20};
  o.memory.page_size = vmm::PageSizePolicy::kSmall;
  std::vector<hbm::DeviceSpec> specs(2);
  for (int i = 0; i < 2; ++i) {
    specs[i].id = i;
    specs[i].cpus = {i % 2};
    specs[i].capacity_bytes = 32 << 20;
  }
  w->hmm = std::move(*hbm::Hmm::CreateWithDevices(specs, o));
  EXPECT_TRUE(w->hmm->LoadCheckpoint(*ckpt, hbm::ReplicateEverywhere({0, 1})).ok());
  const kv::KvGeometry g = KvGeometryFor(w->config, 8);
  for (int i = 0; i < 2; ++i) {
    w->stores.push_back(std::move(*kv::KvStore::Create(w->hmm->device(i), g, 2 << 20)));
    w->insts.push_back(std::move(*LocalInstance::Create(w->hmm.get(), w->config, {i})));
  }
  return w;
}

Request MakeRequest(int64_t id) {
  Request r;
  r.id = id;
  r.prompt = {1, 2, 3, static_cast<int32_t>(id % 200)};
  r.max_new_tokens = 4;
  return r;
}

// Submit on another thread; true when it returned (it must not wait for the serving thread).
bool SubmitReturns(ServingLoop& loop, int64_t id) {
  auto f = std::async(std::launch::async, [&] { return loop.Submit(MakeRequest(id)).ok(); });
  return f.wait_for(std::chrono::seconds(60)) == std::future_status::ready && f.get();
}

void AwaitFinished(ServingLoop& loop, size_t n) {
  for (int i = 0; i < 6000 && loop.stats().outstanding() > 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_EQ(loop.stats().outstanding(), 0u);
  auto done = loop.stats().TakeFinished();
  EXPECT_EQ(done.size(), n);
  for (const auto& r : done) EXPECT_EQ(r.output.size(), 4u) << r.finish_reason;
}

TEST(ServingLoopTest, SubmitDoesNotWaitForASwitchover) {
  auto w = MakeWorld();
  ServingLoop loop([] { return 0.0; }, w->config.vocab_size, false, /*check_invariants=*/true);
  loop.Start(std::make_unique<Scheduler>(
      w->insts[0].get(), std::vector<kv::KvStore*>{w->stores[0].get()}, SchedulerOptions{}));
  std::promise<void> entered, release;
  std::shared_future<void> go = release.get_future().share();
  std::thread control([&] {
    loop.RunBetweenSteps([&] {
      loop.thread().AssertHeld();  // aborts unless on the serving thread
      entered.set_value();
      go.wait();  // the switchover in progress
    });
  });
  entered.get_future().wait();
  EXPECT_TRUE(SubmitReturns(loop, 1)) << "Submit waited for the task";
  EXPECT_TRUE(SubmitReturns(loop, 2));
  EXPECT_EQ(loop.stats().outstanding(), 2u);
  release.set_value();
  control.join();
  AwaitFinished(loop, 2);
  // Bad requests are refused at once, serving or not.
  EXPECT_EQ(loop.Submit(Request{}).code(), vmm::StatusCode::kInvalidArgument);
  Request big = MakeRequest(3);
  big.prompt[0] = w->config.vocab_size;
  EXPECT_EQ(loop.Submit(big).code(), vmm::StatusCode::kInvalidArgument);
}

TEST(ServingLoopTest, SubmitDoesNotWaitForAColdRestartsStop) {
  auto w = MakeWorld();
  ServingLoop loop([] { return 0.0; }, w->config.vocab_size, false, true);
  loop.Start(std::make_unique<Scheduler>(
      w->insts[0].get(), std::vector<kv::KvStore*>{w->stores[0].get()}, SchedulerOptions{}));
  ASSERT_TRUE(loop.Submit(MakeRequest(10)).ok());
  {
    ServingPause pause(loop);  // running requests preempted, the thread parked
    EXPECT_TRUE(SubmitReturns(loop, 11)) << "Submit waited for the stop";
    EXPECT_EQ(pause.primary()->running(), 0u);
    // The switch a cold restart makes while stopped: to the instance on device 1.
    auto sw = pause.primary()->SwitchInstance(w->insts[1].get(), {w->stores[1].get()}, {});
    ASSERT_TRUE(sw.ok()) << sw.status().ToString();
  }
  AwaitFinished(loop, 2);
}

// What a task waits for (a switch's "switch:wait"): nothing when the loop is idle; under load
// the step in flight and never more than that one.
TEST(ServingLoopTest, ATaskWaitsForTheStepInFlightOnly) {
  auto w = MakeWorld();
  const auto t0 = std::chrono::steady_clock::now();
  ServingLoop loop(
      [t0] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(); },
      w->config.vocab_size, false);
  loop.Start(std::make_unique<Scheduler>(
      w->insts[0].get(), std::vector<kv::KvStore*>{w->stores[0].get()}, SchedulerOptions{}));
  const auto noop = [&] { loop.thread().AssertHeld(); };
  ServingLoop::TaskWait idle = loop.RunBetweenSteps(noop);
  EXPECT_EQ(idle.steps, 0);
  EXPECT_EQ(idle.longest_step_s, 0.0);
  EXPECT_GE(idle.wait_s, 0.0);
  // Requests keep coming, so the loop steps all the time. A task queued right after the
  // previous one may still find the loop between two steps; one queued after a pause finds it
  // inside a step.
  int64_t next_id = 40;
  int waited_for_a_step = 0;
  for (int i = 0; i < 3000 && waited_for_a_step < 3; ++i) {
    while (loop.stats().outstanding() < 4) {
      Request r = MakeRequest(next_id++);
      r.max_new_tokens = 100;  // longer than the pause: the loop is busy when the task comes
      ASSERT_TRUE(loop.Submit(r).ok());
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
    const ServingLoop::TaskWait tw = loop.RunBetweenSteps(noop);
    EXPECT_LE(tw.steps, 1) << "a queued task runs before the next step";
    if (tw.steps == 1) {
      ++waited_for_a_step;
      EXPECT_GT(tw.longest_step_s, 0.0);
      EXPECT_GT(tw.step_tokens, 0);
      EXPECT_LE(tw.step_tokens, SchedulerOptions{}.max_tokens_per_step);
    }
  }
  EXPECT_GT(waited_for_a_step, 0) << "the serving thread steps all the time under load";
  loop.Stop();
  loop.stats().TakeFinished();
}

TEST(ServingLoopTest, ConcurrentReplicasStepOnTheirOwnThreads) {
  auto w = MakeWorld();
  ServingLoop loop([] { return 0.0; }, w->config.vocab_size, false, true);
  loop.Start(std::make_unique<Scheduler>(
      w->insts[0].get(), std::vector<kv::KvStore*>{w->stores[0].get()}, SchedulerOptions{}));
  loop.RunBetweenSteps([&] {
    loop.thread().AssertHeld();
    auto r = std::make_unique<Replica>();
    r->devices = {1};
    r->sched = std::make_unique<Scheduler>(
        w->insts[1].get(), std::vector<kv::KvStore*>{w->stores[1].get()}, SchedulerOptions{});
    r->concurrent = true;
    Replica* added = loop.AddReplica(std::move(r));
    EXPECT_NE(added->stepper, nullptr);
  });
  EXPECT_EQ(loop.ReplicaDevices(), (std::vector<std::vector<int>>{{1}}));
  for (int i = 0; i < 8; ++i) ASSERT_TRUE(loop.Submit(MakeRequest(20 + i)).ok());
  AwaitFinished(loop, 8);
  int replica_tokens = 0;
  for (const StepRecord& s : loop.stats().Timeline()) replica_tokens += s.replica_tokens;
  EXPECT_GT(replica_tokens, 0) << "the replica served some of the requests";
  loop.Stop();
}

}  // namespace
}  // namespace emoe::engine
