// The coordinator with instance processes and with the HMM in hmmd (DESIGN 4.1): scale cycles
// across processes, killed instance and replica processes, a dead hmmd, and the instance
// process's errors.
#include <fstream>

#include "coordinator_testing.h"

namespace emoe::engine {
namespace {

using namespace emoe::engine::testing;  // NOLINT

CoordinatorOptions ProcessOptions() {
  CoordinatorOptions o = Options();
  o.instance_binary = EMOE_INSTANCE_BINARY;
  return o;
}

// This process's children: pid -> state letter (R, S, Z, ...).
std::map<int, char> Children() {
  std::map<int, char> out;
  DIR* d = opendir("/proc");
  while (dirent* e = readdir(d)) {
    const int pid = std::atoi(e->d_name);
    if (pid <= 0) continue;
    std::ifstream f("/proc/" + std::string(e->d_name) + "/stat");
    std::string stat;
    std::getline(f, stat);
    const size_t paren = stat.rfind(')');
    if (paren == std::string::npos) continue;
    char state = 0;
    int ppid = 0;
    if (std::sscanf(stat.c_str() + paren + 1, " %c %d", &state, &ppid) == 2 && ppid == getpid()) {
      out[pid] = state;
    }
  }
  closedir(d);
  return out;
}

// Waits (up to 2 s) for `cond`: the HMM server closes a gone client's socket on its own thread.
template <typename F>
bool Eventually(F cond) {
  for (int i = 0; i < 400 && !cond(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return cond();
}

TEST(CoordinatorProcessTest, ScaleCyclesAcrossInstanceProcessesKeepTokensAndLeakNothing) {
  const auto requests = Requests(12);
  const auto want = Reference(requests);
  auto w = MakeWorld();
  auto c = Coordinator::Create(w->hmm.get(), w->ckpt, w->config, {0, 1}, ProcessOptions());
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  Coordinator& co = **c;
  EXPECT_GT(co.active_pid(), 0);
  EXPECT_NE(co.active_pid(), getpid());
  ASSERT_TRUE(co.PrepareStandby({0, 1}).ok());
  const uint64_t arena0 = co.ArenaUsedBytes();
  const auto children0 = Children();
  EXPECT_EQ(children0.size(), 2u);  // the active instance and one standby
  const int fds0 = OpenFds();
  for (const Request& r : requests) ASSERT_TRUE(co.Submit(r).ok());
  int handed_over = 0;
  std::set<pid_t> served_by = {co.active_pid()};
  for (const auto& to : std::vector<std::vector<int>>{{0, 1, 2}, {0, 1, 2, 3}, {0, 1, 2}, {0, 1}}) {
    ASSERT_TRUE(co.PrepareStandby(to).ok());
    auto rep = co.Scale(to, {});
    ASSERT_TRUE(rep.ok()) << rep.status().ToString();
    EXPECT_EQ(co.devices(), to);
    EXPECT_EQ(rep->bytes_disk, 0u);
    EXPECT_GT(rep->bytes_remapped, 0u) << "the instance process maps expert slots";
    EXPECT_EQ(rep->bytes_copied, 0u);
    handed_over += rep->requests_kept + rep->requests_kv_copied;
    served_by.insert(co.active_pid());
  }
  // The ablations that copy weights into the instance's own memory need in-process instances.
  ScaleOptions copy;
  copy.zero_copy = false;
  auto refused = co.Scale({0, 1, 2}, copy);
  EXPECT_EQ(refused.status().code(), vmm::StatusCode::kFailedPrecondition)
      << refused.status().ToString();
  EXPECT_EQ(co.devices(), (std::vector<int>{0, 1}));
  EXPECT_EQ(Drain(co), want);  // in flight across four scale events, KV handed over
  EXPECT_GT(handed_over, 0) << "no request was in flight across a scale event";
  EXPECT_EQ(served_by.size(), 5u) << "each configuration ran in a process of its own";
  while (co.standby_count() > 1) ASSERT_TRUE(co.PrepareStandby({0, 1}).ok());
  ASSERT_TRUE(co.PrepareStandby({0, 1}).ok());
  EXPECT_EQ(co.ArenaUsedBytes(), arena0);
  EXPECT_EQ(co.serving_errors(), 0);
  EXPECT_TRUE(Eventually([&] { return Children().size() == children0.size(); }))
      << Children().size() << " child processes, " << children0.size() << " at the baseline";
  for (const auto& [pid, state] : Children()) EXPECT_NE(state, 'Z') << "zombie " << pid;
  EXPECT_TRUE(Eventually([&] { return OpenFds() == fds0; })) << OpenFds() << " vs " << fds0;
}

// Shared memory the process has mapped and present (RssShmem of /proc/<pid>/status), bytes.
uint64_t ResidentShmem(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind("RssShmem:", 0) == 0) return std::stoull(line.substr(9)) << 10;
  }
  return 0;
}

// #19: an attach is mapping only, and pays for its page tables itself: the instance that a
// scale event switches to has its KV stores and dense weights present before its first step
// (no warm-up step runs on the event's path any more).
TEST(CoordinatorProcessTest, AttachPopulatesWhatTheFirstStepReads) {
  auto w = MakeWorld();
  CoordinatorOptions o = ProcessOptions();
  auto c = Coordinator::Create(w->hmm.get(), w->ckpt, w->config, {0, 1}, o);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  Coordinator& co = **c;
  ASSERT_TRUE(co.PrepareStandby({0, 1, 2}).ok());
  auto rep = co.Scale({0, 1, 2}, {});  // nothing submitted: the new instance never steps
  ASSERT_TRUE(rep.ok()) << rep.status().ToString();
  EXPECT_EQ(rep->phase_s.count("warmup"), 0u);
  // The instance phase's parts, measured where they ran (the instance process for all but
  // "take" and "rpc"), each within the phase.
  for (const char* part :
       {"take", "connect", "hmm_attach", "weights", "populate", "sources", "rpc"}) {
    const auto it = rep->phase_s.find(std::string("instance:") + part);
    ASSERT_NE(it, rep->phase_s.end()) << part;
    EXPECT_GE(it->second, 0) << part;
    EXPECT_LE(it->second, rep->phase_s.at("instance")) << part;
  }
  const uint64_t stores = 3 * o.kv_bytes_per_device;
  EXPECT_GE(ResidentShmem(co.active_pid()), stores + rep->bytes_remapped)
      << "the KV stores and expert slots of three devices are mapped and present";
  EXPECT_EQ(co.serving_errors(), 0);
}

TEST(CoordinatorProcessTest, KilledInstanceProcessIsRestartedOverTheSameMemory) {
  const auto requests = Requests(10);
  const auto want = Reference(requests);
  auto w = MakeWorld();
  auto c = Coordinator::Create(w->hmm.get(), w->ckpt, w->config, {0, 1, 2}, ProcessOptions());
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  Coordinator& co = **c;
  const uint64_t arena0 = co.ArenaUsedBytes();
  const size_t records0 = w->hmm->List().size();
  for (const Request& r : requests) ASSERT_TRUE(co.Submit(r).ok());
  for (int i = 0; i < 2000 && co.Timeline().size() < 3; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  const pid_t victim = co.active_pid();
  ASSERT_EQ(kill(victim, SIGKILL), 0);
  EXPECT_EQ(Drain(co), want);  // running requests keep their KV in the shared arenas
  EXPECT_EQ(co.restarts(), 1);
  EXPECT_NE(co.active_pid(), victim);
  EXPECT_GT(co.serving_errors(), 0);
  EXPECT_EQ(co.ArenaUsedBytes(), arena0);
  EXPECT_EQ(w->hmm->List().size(), records0) << "nothing was reloaded";
  EXPECT_EQ(Children().count(victim), 0u) << "the dead instance was reaped";
  // A restart on request works too.
  auto rep = co.RestartInstance();
  ASSERT_TRUE(rep.ok()) << rep.status().ToString();
  EXPECT_EQ(rep->bytes_disk, 0u);
}

// A thread that scales and then ends (the HTTP service's scale thread) must not take the
// instances it booted with it: Linux's parent-death signal follows the spawning thread.
TEST(CoordinatorProcessTest, InstancesOutliveTheThreadThatBootedThem) {
  const auto requests = Requests(6);
  const auto want = Reference(requests);
  auto w = MakeWorld();
  auto c = Coordinator::Create(w->hmm.get(), w->ckpt, w->config, {0, 1}, ProcessOptions());
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  Coordinator& co = **c;
  std::thread([&] {
    ASSERT_TRUE(co.PrepareStandby({0, 1, 2}).ok());
    auto rep = co.Scale({0, 1, 2}, {});
    ASSERT_TRUE(rep.ok()) << rep.status().ToString();
  }).join();
  const pid_t active = co.active_pid();
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // a parent-death kill is at once
  EXPECT_EQ(kill(active, 0), 0) << "the active instance died with the thread that booted it";
  for (const Request& r : requests) ASSERT_TRUE(co.Submit(r).ok());
  EXPECT_EQ(Drain(co), want);
  EXPECT_EQ(co.restarts(), 0);
  EXPECT_EQ(co.serving_errors(), 0);
  EXPECT_EQ(co.active_pid(), active);
}

TEST(CoordinatorProcessTest, KilledReplicaProcessHandsItsRequestsToThePrimary) {
  const auto requests = Requests(16);
  const auto want = Reference(requests);
  CoordinatorOptions o = ProcessOptions();
  o.standby_pool = 0;
  auto s = Serve({0, 1}, o);
  ASSERT_NE(s.c, nullptr);
  Coordinator& co = *s.c;
  ScaleOptions h;
  h.method = ScaleMethod::kHorizontal;
  ASSERT_TRUE(co.Scale({0, 1, 2, 3}, h).ok());
  auto kids = Children();
  ASSERT_EQ(kids.size(), 2u);
  kids.erase(co.active_pid());
  const pid_t replica = kids.begin()->first;
  for (const Request& r : requests) ASSERT_TRUE(co.Submit(r).ok());
  ASSERT_TRUE(Eventually([&] { return ReplicaTokens(co) > 0; })) << "the replica never served";
  ASSERT_EQ(kill(replica, SIGKILL), 0);
  EXPECT_EQ(Drain(co), want) << "the replica's requests are recomputed on the primary";
  EXPECT_GT(co.serving_errors(), 0);
  EXPECT_EQ(co.replicas(), 0) << "a failed replica gets no requests";
  EXPECT_EQ(co.devices(), (std::vector<int>{0, 1}));
  // The next scale event frees it.
  ASSERT_TRUE(co.Scale({0, 1, 2, 3}, h).ok());
  ASSERT_TRUE(co.Scale({0, 1}, h).ok());
  EXPECT_EQ(co.ArenaUsedBytes(), s.arena0);
  EXPECT_TRUE(Eventually([&] { return Children().size() == 1; }));
}

// DESIGN 4.1's process model: the HMM in hmmd (a daemon this test starts), driven over its control
// socket; instance processes attach to hmmd. The same scale procedures, the same tokens.
std::unique_ptr<hbm::RemoteHmmControl> LaunchHmmd() {
  hbm::HmmdOptions o;
  o.binary = HMMD_BINARY;
  o.hmm.devices.devices_per_node = 6;
  o.hmm.devices.nodes = {vmm::NumaNodes()[0].id};
  o.hmm.devices.capacity_bytes = 64 << 20;
  o.hmm.memory.usage_bytes = {4 << 20, 8 << 20, 4 << 20};
  o.hmm.memory.page_size = vmm::PageSizePolicy::kSmall;
  auto h = hbm::RemoteHmmControl::Launch(o);
  EXPECT_TRUE(h.ok()) << h.status().ToString();
  return h.ok() ? std::move(*h) : nullptr;
}

uint64_t UsedBytes(hbm::HmmControl& h) {
  auto stats = h.Stats();
  EXPECT_TRUE(stats.ok()) << stats.status().ToString();
  uint64_t used = 0;
  for (const auto& st : stats.value()) used += st.used_bytes;
  return used;
}

TEST(CoordinatorHmmdTest, ScaleWhileServingWithTheHmmInADaemon) {
  // A wave of requests before each elastic event, so that some are in flight at every switch.
  const auto wave = Requests(6);
  std::vector<Request> requests;
  for (int k = 0; k < 4; ++k) {
    for (Request r : wave) {
      r.id += 100 * k;
      requests.push_back(r);
    }
  }
  const auto want = Reference(requests);
  auto w = MakeWorld();
  auto hmmd = LaunchHmmd();
  ASSERT_NE(hmmd, nullptr);
  ASSERT_EQ(hmmd->num_devices(), 6);
  EXPECT_EQ(UsedBytes(*hmmd), 0u);
  // In-process instances cannot map memory that lives in another process's HMM.
  auto no = Coordinator::Create(hmmd.get(), w->ckpt, w->config, {0, 1}, Options());
  EXPECT_EQ(no.status().code(), vmm::StatusCode::kFailedPrecondition) << no.status().ToString();
  EXPECT_EQ(UsedBytes(*hmmd), 0u) << "the refused coordinator loaded nothing";
  {
    CoordinatorOptions o = ProcessOptions();
    o.instance.compute_share = 0.2;  // slower steps: requests are still running at the switch
    auto c = Coordinator::Create(hmmd.get(), w->ckpt, w->config, {0, 1}, o);
    ASSERT_TRUE(c.ok()) << c.status().ToString();
    Coordinator& co = **c;
    EXPECT_EQ(co.ArenaUsedBytes(), UsedBytes(*hmmd)) << "arena accounting comes from hmmd";
    const uint64_t arena0 = co.ArenaUsedBytes();
    EXPECT_GT(arena0, 0u);
    int handed_over = 0;
    size_t next = 0;
    for (const auto& to :
         std::vector<std::vector<int>>{{0, 1, 2}, {0, 1, 2, 3}, {0, 1, 2}, {0, 1}}) {
      ASSERT_TRUE(co.PrepareStandby(to).ok());
      for (size_t i = 0; i < wave.size(); ++i) ASSERT_TRUE(co.Submit(requests[next++]).ok());
      auto rep = co.Scale(to, {});
      ASSERT_TRUE(rep.ok()) << rep.status().ToString();
      EXPECT_EQ(co.devices(), to);
      EXPECT_EQ(rep->bytes_disk, 0u) << "new devices get weights by P2P inside hmmd";
      EXPECT_GT(rep->bytes_p2p, 0u);
      EXPECT_GT(rep->bytes_remapped, 0u);
      handed_over += rep->requests_kept + rep->requests_kv_copied;
    }
    // A from-disk baseline and horizontal scaling go through hmmd too.
    ScaleOptions cold;
    cold.method = ScaleMethod::kColdRestart;
    auto rc = co.Scale({0, 1, 2, 3}, cold);
    ASSERT_TRUE(rc.ok()) << rc.status().ToString();
    EXPECT_GT(rc->bytes_disk, 0u);
    ScaleOptions horiz;
    horiz.method = ScaleMethod::kHorizontal;
    ASSERT_TRUE(co.ScaleTo(2, {}).ok());
    auto out = co.ScaleTo(4, horiz);
    ASSERT_TRUE(out.ok()) << out.status().ToString();
    EXPECT_EQ(co.replicas(), 1);
    ASSERT_TRUE(co.ScaleTo(2, horiz).ok());
    EXPECT_EQ(Drain(co), want);
    EXPECT_GT(handed_over, 0) << "no request was in flight across a scale event";
    EXPECT_EQ(co.serving_errors(), 0);
    EXPECT_EQ(co.ArenaUsedBytes(), arena0) << "every event gave back what it took";
  }
  // hmmd outlives the coordinator; everything the coordinator created went back to it.
  EXPECT_EQ(UsedBytes(*hmmd), 0u);
  auto left = hmmd->ReleaseMatching("", {});
  ASSERT_TRUE(left.ok()) << left.status().ToString();
  EXPECT_EQ(*left, 0u) << "records left behind";
}

TEST(CoordinatorHmmdTest, DeadHmmdRefusesScalingButServingGoesOn) {
  const auto requests = Requests(8);
  const auto want = Reference(requests);
  auto w = MakeWorld();
  auto hmmd = LaunchHmmd();
  ASSERT_NE(hmmd, nullptr);
  auto c = Coordinator::Create(hmmd.get(), w->ckpt, w->config, {0, 1}, ProcessOptions());
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  Coordinator& co = **c;
  for (const Request& r : requests) ASSERT_TRUE(co.Submit(r).ok());
  ASSERT_EQ(kill(hmmd->pid(), SIGKILL), 0);
  // The instance keeps its mappings of the arenas (the memfds live while mapped): it serves on.
  auto rep = co.Scale({0, 1, 2}, {});
  EXPECT_EQ(rep.status().code(), vmm::StatusCode::kUnavailable) << rep.status().ToString();
  EXPECT_NE(rep.status().message().find("hmmd"), std::string::npos) << rep.status().ToString();
  EXPECT_EQ(co.devices(), (std::vector<int>{0, 1}));
  EXPECT_EQ(Drain(co), want);
  EXPECT_EQ(co.serving_errors(), 0);
}

TEST(RemoteInstanceTest, ErrorsNameTheProblem) {
  auto config = *PresetConfig("tiny");
  auto missing =
      RemoteInstance::Launch("/nonexistent/emoe_instance", "/nonexistent/hmm.sock", config, {{0}});
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().ToString().find("/nonexistent/emoe_instance"), std::string::npos);
  auto inst = RemoteInstance::Launch(EMOE_INSTANCE_BINARY, "/nonexistent/hmm.sock", config, {{0}});
  ASSERT_TRUE(inst.ok()) << inst.status().ToString();
  EXPECT_FALSE((*inst)->attached());
  EXPECT_EQ((*inst)->WarmUp().code(), vmm::StatusCode::kFailedPrecondition);
  // Attaching needs a KV store per rank, and a reachable HMM.
  AttachSpec spec;
  spec.devices = {0};
  EXPECT_EQ((*inst)->Attach(spec, nullptr).code(), vmm::StatusCode::kFailedPrecondition);
  auto w = MakeWorld();
  auto store = kv::KvStore::Create(w->hmm->device(0), KvGeometryFor(config, 8), 1 << 20);
  ASSERT_TRUE(store.ok());
  spec.stores = {store->get()};
  spec.placement = *experts::InitialPlacement(config.num_hidden_layers, config.num_experts, {0});
  Status s = (*inst)->Attach(spec, nullptr);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.ToString().find("/nonexistent/hmm.sock"), std::string::npos) << s.ToString();
  // A killed instance process is reported as such.
  ASSERT_EQ(kill((*inst)->pid(), SIGKILL), 0);
  s = (*inst)->Attach(spec, nullptr);
  EXPECT_EQ(s.code(), vmm::StatusCode::kUnavailable);
  EXPECT_NE(s.ToString().find("killed by signal 9"), std::string::npos) << s.ToString();
  EXPECT_FALSE((*inst)->alive());
}

}  // namespace
}  // namespace emoe::engine
