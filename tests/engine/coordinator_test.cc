// Elastic scaling while serving (#5): tokens identical to a run without scaling, nothing leaks
// over repeated cycles, impossible requests are refused, failures roll back, a crashed instance
// restarts without reading the disk, and the baselines serve the same tokens.
#include "coordinator_testing.h"

namespace emoe::engine {
namespace {

using namespace emoe::engine::testing;  // NOLINT

TEST(CoordinatorTest, ScaleCyclesKeepTokensAndLeakNothing) {
  const auto requests = Requests(12);
  const auto want = Reference(requests);
  auto w = MakeWorld();
  auto c = Coordinator::Create(w->hmm.get(), w->ckpt, w->config, {0, 1}, Options());
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  Coordinator& co = **c;
  ASSERT_TRUE(co.PrepareStandby({0, 1}).ok());  // the pool holds one instance at the baseline
  const uint64_t arena0 = co.ArenaUsedBytes();
  const int fds0 = OpenFds();
  const MapState maps0 = Maps();
  for (const Request& r : requests) ASSERT_TRUE(co.Submit(r).ok());
  const std::vector<std::vector<int>> cycle = {{0, 1, 2}, {0, 1, 2, 3}, {0, 1, 2}, {0, 1}};
  int handed_over = 0;
  for (int round = 0; round < 2; ++round) {
    for (const auto& to : cycle) {
      ASSERT_TRUE(co.PrepareStandby(to).ok());
      auto rep = co.Scale(to, {});
      ASSERT_TRUE(rep.ok()) << rep.status().ToString();
      EXPECT_EQ(co.devices(), to);
      EXPECT_EQ(rep->bytes_disk, 0u);
      EXPECT_GT(rep->bytes_remapped, 0u);
      EXPECT_LE(rep->arena_peak, rep->arena_before + rep->bytes_p2p + (64u << 20));
      EXPECT_EQ(rep->requests_recomputed, 0);
      // The in-process instance phase's parts: taking the standby, its weight views, the swap.
      for (const char* part : {"instance:take", "instance:weights", "instance:sources"}) {
        EXPECT_EQ(rep->phase_s.count(part), 1u) << part;
      }
      handed_over += rep->requests_kept + rep->requests_kv_copied;
    }
    if (round == 0) {
      EXPECT_EQ(Drain(co), want);  // in flight across four scale events
      for (const Request& r : requests) ASSERT_TRUE(co.Submit(r).ok());
    }
  }
  EXPECT_EQ(Drain(co), want);
  EXPECT_GT(handed_over, 0) << "no request was in flight across a scale event";
  ASSERT_TRUE(co.PrepareStandby({0, 1}).ok());
  while (co.standby_count() > 1) ASSERT_TRUE(co.PrepareStandby({0, 1}).ok());
  EXPECT_EQ(co.ArenaUsedBytes(), arena0);
  EXPECT_EQ(co.serving_errors(), 0);
  EXPECT_EQ(OpenFds(), fds0);
  const MapState maps = Maps();
  EXPECT_EQ(maps.mappings, maps0.mappings);
  EXPECT_EQ(maps.reservations, maps0.reservations);
  EXPECT_EQ(maps.reserved_bytes, maps0.reserved_bytes);
  EXPECT_EQ(maps.arena_vmas, maps0.arena_vmas);
  // The HMM outlives the coordinator: everything the coordinator created goes back.
  c->reset();
  EXPECT_EQ(w->hmm->List().size(), 0u);
  for (const auto& st : w->hmm->Stats()) EXPECT_EQ(st.used_bytes, 0u) << "device " << st.device;
}

TEST(CoordinatorTest, ImpossibleRequestsAreRefusedAndServingGoesOn) {
  const auto requests = Requests(6);
  const auto want = Reference(requests);
  auto w = MakeWorld(/*expert_arena=*/200 << 10);
  auto c = Coordinator::Create(w->hmm.get(), w->ckpt, w->config, {0, 1}, Options());
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  Coordinator& co = **c;
  for (const Request& r : requests) ASSERT_TRUE(co.Submit(r).ok());
  EXPECT_EQ(co.Scale({}, {}).status().code(), vmm::StatusCode::kInvalidArgument);
  EXPECT_EQ(co.Scale({0, 9}, {}).status().code(), vmm::StatusCode::kInvalidArgument);
  EXPECT_EQ(co.Scale({0, 0}, {}).status().code(), vmm::StatusCode::kInvalidArgument);
  EXPECT_EQ(co.Scale({0, 1}, {}).status().code(), vmm::StatusCode::kInvalidArgument);
  EXPECT_EQ(co.ScaleTo(0, {}).status().code(), vmm::StatusCode::kInvalidArgument);
  EXPECT_EQ(co.ScaleTo(7, {}).status().code(), vmm::StatusCode::kInvalidArgument);
  EXPECT_EQ(co.ScaleTo(2, {}).status().code(), vmm::StatusCode::kInvalidArgument);
  EXPECT_EQ(co.TargetDevices(4).value(), (std::vector<int>{0, 1, 2, 3}));
  EXPECT_EQ(co.TargetDevices(1).value(), (std::vector<int>{0}));
  ScaleOptions cold_drain;
  cold_drain.method = ScaleMethod::kColdRestart;
  cold_drain.drain = true;
  auto cd = co.Scale({0, 1, 2}, cold_drain);
  EXPECT_EQ(cd.status().code(), vmm::StatusCode::kInvalidArgument);
  EXPECT_NE(cd.status().ToString().find("cannot drain"), std::string::npos);
  // Scale-down onto one device: its expert arena cannot hold every expert.
  auto down = co.Scale({0}, {});
  EXPECT_EQ(down.status().code(), vmm::StatusCode::kResourceExhausted) << down.status().ToString();
  EXPECT_NE(down.status().ToString().find("device 0"), std::string::npos);
  EXPECT_EQ(co.devices(), (std::vector<int>{0, 1}));
  EXPECT_EQ(Drain(co), want);
}

TEST(CoordinatorTest, FailuresRollBackWhileServing) {
  const auto requests = Requests(8);
  const auto want = Reference(requests);
  auto s = Serve({0, 1});
  ASSERT_NE(s.c, nullptr);
  Coordinator& co = *s.c;
  auto& w = s.w;
  const uint64_t arena0 = s.arena0;
  const size_t records0 = s.records0;
  for (const Request& r : requests) ASSERT_TRUE(co.Submit(r).ok());
  for (ScaleMethod m : {ScaleMethod::kElastic, ScaleMethod::kHorizontal}) {
    // Elastic attaches without a warm-up step (#19): the standby is warm, attach populates.
    std::vector<const char*> phases = {"plan", "memory", "instance"};
    if (m == ScaleMethod::kHorizontal) phases.push_back("warmup");
    for (const char* at : phases) {
      ScaleOptions o;
      o.method = m;
      o.fail_after = at;
      auto r = co.Scale({0, 1, 2, 3}, o);
      EXPECT_EQ(r.status().code(), vmm::StatusCode::kInternal) << o.Name() << " " << at;
      EXPECT_EQ(co.devices(), (std::vector<int>{0, 1})) << o.Name() << " " << at;
      EXPECT_EQ(co.ArenaUsedBytes(), arena0) << o.Name() << " " << at;
      EXPECT_EQ(w->hmm->List().size(), records0) << o.Name() << " " << at;
    }
    // A full arena part-way (the experts arena of device 3 is taken by someone else).
    auto hog = w->hmm->device(3).Allocate(hbm::Usage::kExperts, 8 << 20);
    ASSERT_TRUE(hog.ok());
    ScaleOptions o;
    o.method = m;
    EXPECT_FALSE(co.Scale({0, 1, 2, 3}, o).ok()) << o.Name();
    hog->Reset();
    EXPECT_EQ(co.ArenaUsedBytes(), arena0) << o.Name();
    EXPECT_EQ(co.replicas(), 0);
  }
  EXPECT_EQ(Drain(co), want);
  // And it still scales afterwards.
  ASSERT_TRUE(co.Scale({0, 1, 2}, {}).ok());
  for (const Request& r : requests) ASSERT_TRUE(co.Submit(r).ok());
  EXPECT_EQ(Drain(co), want);
}

// A cold restart that fails after the old instance stopped leaves nothing to serve: the
// requests in flight fail naming why, new requests and scale events are refused, nothing steps
// the instance that is gone (it used to), and the new configuration's weights are released.
TEST(CoordinatorTest, FailedColdRestartStopsServingCleanly) {
  auto s = Serve({0, 1});
  ASSERT_NE(s.c, nullptr);
  Coordinator& co = *s.c;
  const auto requests = Requests(8);
  for (const Request& r : requests) ASSERT_TRUE(co.Submit(r).ok());
  ScaleOptions o;
  o.method = ScaleMethod::kColdRestart;
  o.fail_after = "memory";
  auto r = co.Scale({0, 1, 2}, o);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().ToString().find("not serving"), std::string::npos) << r.status().ToString();
  EXPECT_EQ(co.outstanding(), 0u);
  size_t failed = 0;
  for (const RequestResult& x : co.TakeFinished()) {
    if (x.served()) continue;
    ++failed;
    EXPECT_NE(x.finish_reason.find("injected failure"), std::string::npos) << x.finish_reason;
  }
  EXPECT_GT(failed, 0u);
  Status sub = co.Submit(requests[0]);
  EXPECT_EQ(sub.code(), vmm::StatusCode::kFailedPrecondition) << sub.ToString();
  EXPECT_NE(sub.ToString().find("not serving"), std::string::npos) << sub.ToString();
  for (ScaleMethod m : {ScaleMethod::kElastic, ScaleMethod::kColdRestart}) {
    ScaleOptions again;
    again.method = m;
    auto x = co.ScaleTo(3, again);
    EXPECT_EQ(x.status().code(), vmm::StatusCode::kFailedPrecondition) << x.status().ToString();
  }
  EXPECT_TRUE(co.devices().empty());
  EXPECT_EQ(co.active_pid(), 0);
  EXPECT_EQ(s.w->hmm->List().size(), 0u);  // neither the old nor the new weights are left
}

TEST(CoordinatorTest, CrashedInstanceRestartsWithoutReload) {
  const auto requests = Requests(8);
  const auto want = Reference(requests);
  auto w = MakeWorld();
  auto c = Coordinator::Create(w->hmm.get(), w->ckpt, w->config, {0, 1, 2}, Options());
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  Coordinator& co = **c;
  const uint64_t arena0 = co.ArenaUsedBytes();
  for (const Request& r : requests) ASSERT_TRUE(co.Submit(r).ok());
  auto rep = co.RestartInstance();
  ASSERT_TRUE(rep.ok()) << rep.status().ToString();
  EXPECT_EQ(rep->bytes_disk, 0u);
  EXPECT_EQ(co.ArenaUsedBytes(), arena0);
  EXPECT_EQ(Drain(co), want);
}

TEST(CoordinatorTest, DrainLetsRunningRequestsFinishOnTheOldInstance) {
  const auto requests = Requests(10);
  const auto want = Reference(requests);
  auto w = MakeWorld();
  auto c = Coordinator::Create(w->hmm.get(), w->ckpt, w->config, {0, 1}, Options());
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  Coordinator& co = **c;
  const uint64_t arena0 = co.ArenaUsedBytes();
  ScaleOptions drain;
  drain.drain = true;
  EXPECT_EQ(drain.Name(), "elastic-drain");
  int drained = 0;
  for (const auto& to : std::vector<std::vector<int>>{{0, 1, 2}, {0, 1}, {2, 3}, {0, 1}}) {
    for (const Request& r : requests) ASSERT_TRUE(co.Submit(r).ok());
    // Let some requests start so that there is something to drain.
    for (int i = 0; i < 400 && co.Timeline().size() < 2; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    auto rep = co.Scale(to, drain);
    ASSERT_TRUE(rep.ok()) << rep.status().ToString();
    EXPECT_EQ(co.devices(), to);
    EXPECT_EQ(rep->requests_kept + rep->requests_kv_copied + rep->requests_recomputed, 0)
        << "with drain nothing is handed over";
    EXPECT_EQ(rep->phase_s.count("drain"), 1u);
    drained += rep->requests_drained;
    EXPECT_EQ(Drain(co), want);  // drained and handed-over requests alike finish unchanged
  }
  EXPECT_GT(drained, 0) << "no request was running at a scale event";
  EXPECT_EQ(co.ArenaUsedBytes(), arena0);
  EXPECT_EQ(co.serving_errors(), 0);
}

TEST(CoordinatorTest, BaselinesAndAblationsServeTheSameTokens) {
  const auto requests = Requests(8);
  const auto want = Reference(requests);
  std::vector<ScaleOptions> variants(9);
  variants[1].zero_copy = false;
  variants[2].p2p = false;
  variants[3].preinit = false;
  variants[4].vm_remap = false;
  variants[5].method = ScaleMethod::kColdRestart;
  variants[6].method = ScaleMethod::kExtravagant;
  variants[7].method = ScaleMethod::kColocated;
  variants[8].method = ScaleMethod::kExtravagant;
  variants[8].drain = true;
  for (const ScaleOptions& o : variants) {
    auto w = MakeWorld();
    auto c = Coordinator::Create(w->hmm.get(), w->ckpt, w->config, {0, 1}, Options());
    ASSERT_TRUE(c.ok()) << c.status().ToString();
    Coordinator& co = **c;
    for (const Request& r : requests) ASSERT_TRUE(co.Submit(r).ok());
    auto up = co.Scale({0, 1, 2}, o);
    ASSERT_TRUE(up.ok()) << o.Name() << ": " << up.status().ToString();
    EXPECT_EQ(up->name, o.Name());
    const bool from_disk = o.method != ScaleMethod::kElastic || !o.p2p;
    EXPECT_EQ(up->bytes_disk > 0, from_disk) << o.Name();
    if (o.method == ScaleMethod::kColdRestart) {
      EXPECT_GT(up->downtime_s, 0.0);
    }
    auto down = co.Scale({0, 1}, o);
    ASSERT_TRUE(down.ok()) << o.Name() << ": " << down.status().ToString();
    EXPECT_EQ(Drain(co), want) << o.Name();
    EXPECT_EQ(co.serving_errors(), 0) << o.Name();
  }
}

// Colocated: the new copy shares devices with the old one, whose KV gives back what the copy
// needs ahead of time (free blocks only) and takes it back after the switch. A device that
// cannot make room refuses the event, and serving goes on with the KV as it was.
TEST(CoordinatorTest, ColocatedShrinksKvAheadOfTimeAndGrowsItBack) {
  const auto requests = Requests(8);
  const auto want = Reference(requests);
  ScaleOptions colocated;
  colocated.method = ScaleMethod::kColocated;
  auto kv_on = [](World& w, int d) {
    return w.hmm->device(d).Stats().usage[static_cast<int>(hbm::Usage::kKv)].used_bytes;
  };
  // What device 0 holds serving on `devices` with KV stores of `kv` bytes.
  auto held_on_device0 = [&](std::vector<int> devices, uint64_t kv) -> uint64_t {
    auto w = MakeWorld();
    CoordinatorOptions o = Options();
    o.kv_bytes_per_device = kv;
    auto c = Coordinator::Create(w->hmm.get(), w->ckpt, w->config, devices, o);
    EXPECT_TRUE(c.ok()) << c.status().ToString();
    return w->hmm->device(0).Stats().used_bytes;
  };
  constexpr uint64_t kPage = 4096;
  {
    CoordinatorOptions opts = Options();
    const uint64_t kv = opts.kv_bytes_per_device;
    const uint64_t on2 = held_on_device0({0, 1}, kv), on3 = held_on_device0({0, 1, 2}, kv);
    const uint64_t copy3 = on3 - kv;  // device 0's weights and experts serving on three
    ASSERT_LT(copy3, kv);
    // During 2->3 device 0 holds its copy and the new one: half the new one too many.
    const uint64_t capacity = (on2 + copy3 / 2) / kPage * kPage;
    auto w = MakeWorld(8 << 20, capacity);
    auto c = Coordinator::Create(w->hmm.get(), w->ckpt, w->config, {0, 1}, opts);
    ASSERT_TRUE(c.ok()) << c.status().ToString();
    Coordinator& co = **c;
    const uint64_t arena0 = co.ArenaUsedBytes();
    for (const Request& r : requests) ASSERT_TRUE(co.Submit(r).ok());
    for (const std::vector<int>& to : {std::vector<int>{0, 1, 2}, std::vector<int>{0, 1}}) {
      auto rep = co.Scale(to, colocated);
      ASSERT_TRUE(rep.ok()) << rep.status().ToString();
      EXPECT_GE(rep->kv_shrunk_bytes, copy3 / 2) << "the shared devices gave back";
      EXPECT_LT(rep->kv_shrunk_bytes, 2 * kv);
      for (int d : to) EXPECT_EQ(kv_on(*w, d), kv) << "grown back on device " << d;
      for (int d = 0; d < 6; ++d) {
        const hbm::DeviceStats st = w->hmm->device(d).Stats();
        EXPECT_LE(st.used_bytes, st.capacity_bytes);
      }
    }
    EXPECT_EQ(Drain(co), want);
    EXPECT_EQ(co.ArenaUsedBytes(), arena0);
    EXPECT_EQ(co.serving_errors(), 0);
    // ElasticMoE needs no second copy: nothing shrinks.
    auto el = co.Scale({0, 1, 2}, ScaleOptions{});
    ASSERT_TRUE(el.ok()) << el.status().ToString();
    EXPECT_EQ(el->kv_shrunk_bytes, 0u);
  }
  {
    // A KV store smaller than the second copy: even all of it would not do. Refused, nothing
    // changes, serving goes on.
    CoordinatorOptions opts = Options();
    opts.kv_bytes_per_device = 128 << 10;
    const uint64_t kv = opts.kv_bytes_per_device;
    const uint64_t on2 = held_on_device0({0, 1}, kv), on3 = held_on_device0({0, 1, 2}, kv);
    ASSERT_GT(on3 - kv, kv);
    auto w = MakeWorld(8 << 20, on2);
    auto c = Coordinator::Create(w->hmm.get(), w->ckpt, w->config, {0, 1}, opts);
    ASSERT_TRUE(c.ok()) << c.status().ToString();
    Coordinator& co = **c;
    const uint64_t arena0 = co.ArenaUsedBytes();
    for (const Request& r : requests) ASSERT_TRUE(co.Submit(r).ok());
    auto rep = co.Scale({0, 1, 2}, colocated);
    ASSERT_EQ(rep.status().code(), vmm::StatusCode::kResourceExhausted) << rep.status().ToString();
    const std::string why = rep.status().ToString();
    EXPECT_NE(why.find("device 0 needs"), std::string::npos) << why;
    EXPECT_NE(why.find("can give back only"), std::string::npos) << why;
    EXPECT_NE(why.find("serving continues on [0,1]"), std::string::npos) << why;
    EXPECT_EQ(co.devices(), (std::vector<int>{0, 1}));
    EXPECT_EQ(kv_on(*w, 0), kv);
    EXPECT_EQ(kv_on(*w, 1), kv);
    EXPECT_EQ(co.ArenaUsedBytes(), arena0);
    EXPECT_EQ(Drain(co), want);
    EXPECT_EQ(co.serving_errors(), 0);
  }
}

TEST(CoordinatorTest, HorizontalScalingAddsAndRemovesWholeReplicas) {
  const auto requests = Requests(12);
  const auto want = Reference(requests);
  auto s = Serve({0, 1});
  ASSERT_NE(s.c, nullptr);
  Coordinator& co = *s.c;
  const int fds0 = OpenFds();
  const MapState maps0 = Maps();
  ScaleOptions h;
  h.method = ScaleMethod::kHorizontal;
  EXPECT_EQ(h.Name(), "horizontal");
  EXPECT_EQ(ParseScaleMethod("horizontal").value(), ScaleMethod::kHorizontal);
  // Replicas are whole: 3 devices is not a multiple of the first configuration's 2.
  auto odd = co.Scale({0, 1, 2}, h);
  EXPECT_EQ(odd.status().code(), vmm::StatusCode::kInvalidArgument);
  EXPECT_NE(odd.status().ToString().find("not a multiple of 2"), std::string::npos)
      << odd.status().ToString();
  EXPECT_EQ(co.Scale({0, 1}, h).status().code(), vmm::StatusCode::kInvalidArgument);
  EXPECT_EQ(co.Scale({2, 3, 4, 5}, h).status().code(), vmm::StatusCode::kInvalidArgument)
      << "a scale-out keeps the serving devices";
  for (int cycle = 0; cycle < 2; ++cycle) {
    for (const Request& r : requests) ASSERT_TRUE(co.Submit(r).ok());
    auto out = co.ScaleTo(6, h);  // two replicas at once
    ASSERT_TRUE(out.ok()) << out.status().ToString();
    EXPECT_EQ(co.replicas(), 2);
    EXPECT_EQ(co.devices(), (std::vector<int>{0, 1, 2, 3, 4, 5}));
    EXPECT_GT(out->bytes_disk, 0u) << "a replica is loaded from disk";
    EXPECT_EQ(out->bytes_p2p, 0u);
    EXPECT_EQ(out->downtime_s, 0.0);
    EXPECT_GT(out->arena_after, 2 * s.arena0) << "each replica holds a whole copy";
    // Other scale methods wait until the replicas are gone.
    auto el = co.Scale({0, 1, 2}, {});
    EXPECT_EQ(el.status().code(), vmm::StatusCode::kFailedPrecondition);
    EXPECT_NE(el.status().ToString().find("horizontal replica"), std::string::npos);
    // The primary stays; replicas leave whole.
    EXPECT_EQ(co.Scale({2, 3, 4, 5}, h).status().code(), vmm::StatusCode::kInvalidArgument);
    EXPECT_EQ(co.Scale({0, 1, 2, 4}, h).status().code(), vmm::StatusCode::kInvalidArgument);
    EXPECT_EQ(Drain(co), want);
    // New requests are balanced over the three replicas.
    for (const Request& r : requests) ASSERT_TRUE(co.Submit(r).ok());
    auto in = co.Scale({0, 1, 4, 5}, h);
    ASSERT_TRUE(in.ok()) << in.status().ToString();
    EXPECT_EQ(co.replicas(), 1);
    EXPECT_EQ(in->phase_s.count("drain"), 1u);
    EXPECT_EQ(Drain(co), want);
    // The autoscaler's API removes the replica added last.
    EXPECT_EQ(co.TargetDevices(2).value(), (std::vector<int>{0, 1}));
    ASSERT_TRUE(co.ScaleTo(2, h).ok());
    EXPECT_EQ(co.replicas(), 0);
  }
  EXPECT_GT(ReplicaTokens(co), 0) << "the replicas served nothing";
  EXPECT_EQ(co.ArenaUsedBytes(), s.arena0);
  EXPECT_EQ(s.w->hmm->List().size(), s.records0);
  EXPECT_EQ(OpenFds(), fds0);
  EXPECT_EQ(Maps(), maps0);
  EXPECT_EQ(co.serving_errors(), 0);
  // Elastic scaling works again once the replicas are gone.
  ASSERT_TRUE(co.Scale({0, 1, 2}, {}).ok());
  for (const Request& r : requests) ASSERT_TRUE(co.Submit(r).ok());
  EXPECT_EQ(Drain(co), want);
}

// ---- Instances in processes of their own (DESIGN 4.1), attaching through the HMM's socket ----

}  // namespace
}  // namespace emoe::engine
