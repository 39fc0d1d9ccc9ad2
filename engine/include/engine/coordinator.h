// engine/coordinator.h: serving with elastic scaling (DESIGN 4.1 and 4.3).
//
// The coordinator owns the serving loop (a thread stepping the active instance's scheduler), the
// per-device KV stores (they outlive instances: a switchover hands block tables over), a small
// LRU pool of standby instances (booted, not attached), and the scale procedures. It reads and
// writes model memory only through the HMM.
//
// Scale (method kElastic), while the old instance keeps serving:
//   1 plan      new balanced placement with minimal movement (experts::Rebalance), the
//               redistribution plan, validated; a request that cannot be met is refused here
//   2 memory    new devices get the non-expert weights by P2P from a peer, incoming experts are
//               P2P-copied into new extents of their new owners, new devices get KV stores;
//               retained weights, experts and KV are not touched
//   3 instance  a standby instance for the new device set (or one booted on demand) attaches:
//               dense weights zero-copy, experts as slot ranges over their extents
//   4 warm-up   one step on private KV
//   5 switch    between two steps of the serving loop: the scheduler continues on the new
//               instance; requests whose device stays keep their KV blocks (no copy, no
//               recompute), requests on leaving devices have their blocks copied P2P
//   6 cleanup   the old instance exits; outgoing experts and leaving devices' memory are freed
// A failure in 1-4 rolls back everything the event created; serving never stopped.
// The baselines and ablations of #5 run through the same procedure with parts replaced.
//
// Horizontal scaling (the replica baseline) adds whole replicas of the primary configuration
// (same device count, loaded from disk, KV stores of their own) next to it, or removes added
// ones (no new requests; running ones drain, waiting ones move to the primary). Requests go to
// the replica with the fewest in flight; replicas on disjoint devices step concurrently. A
// replica whose process dies has its requests recomputed on the primary.
//
// Thread safety: Submit/TakeFinished/Timeline/Stats may be called from any thread; Scale,
// RestartInstance and PrepareStandby are serialized (with the supervisor's restarts).
#ifndef ENGINE_COORDINATOR_H_
#define ENGINE_COORDINATOR_H_

#include <condition_variable>
#include <deque>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "engine/executor.h"
#include "engine/instance.h"
#include "engine/scheduler.h"
#include "engine/weight_sources.h"
#include "experts/plan.h"
#include "hbm/control.h"
#include "hbm/hmm.h"
#include "hbm/server.h"
#include "kv/kv_cache.h"

namespace emoe::engine {

enum class ScaleMethod {
  kElastic,      // this project
  kColdRestart,  // stop serving, reload from disk on the new devices, start
  kExtravagant,  // a new instance on fresh devices loaded from disk, then switch
  kColocated,    // a new instance on the new device set with its own copy (loaded from disk)
  kHorizontal,   // whole replicas of the first configuration added (from disk) or removed
};
const char* ScaleMethodName(ScaleMethod m);
StatusOr<ScaleMethod> ParseScaleMethod(const std::string& name);

struct ScaleOptions {
  ScaleMethod method = ScaleMethod::kElastic;
  // Ablations of kElastic, one at a time.
  bool zero_copy = true;  // false: the new instance copies every tensor it uses
  bool p2p = true;        // false: new devices read what they need from disk
  bool preinit = true;    // false: boot the new instance on demand, not from the standby pool
  bool vm_remap = true;   // false: experts copied into one new contiguous buffer per layer
  // kElastic: instead of handing running requests over, let them finish on the old instance
  // (its own scheduler, stepped by the serving loop next to the new one) while new and waiting
  // requests go to the new instance; the old instance exits and its memory is freed once they
  // are done (phase "drain", after the switch; latency still ends at the switch).
  bool drain = false;
  // Fault injection for tests: fail the event right after this phase ("plan", "memory",
  // "instance", "warmup"), as if the step had failed there.
  std::string fail_after;
  std::string Name() const;  // "elastic", "elastic-no-p2p", "cold-restart", ...
};

struct ScaleReport {
  std::string name;
  std::vector<int> from_devices, to_devices;
  double command_s = 0;   // on the coordinator's clock
  double latency_s = 0;   // command -> the new instance serving
  double downtime_s = 0;  // time no instance could serve
  std::map<std::string, double> phase_s;
  uint64_t bytes_remapped = 0;  // expert slot bytes mapped over existing pages
  uint64_t bytes_p2p = 0;       // device-to-device copies (weights, experts, KV)
  uint64_t bytes_disk = 0;      // read from the checkpoint
  uint64_t bytes_copied = 0;    // copied into private buffers (ablations)
  uint64_t arena_before = 0, arena_peak = 0, arena_after = 0;  // all devices, exact
  // PSS of the coordinator and its instance processes (sampled every 20 ms off the scaling
  // path): at the command and the peak.
  uint64_t pss_before_bytes = 0, pss_peak_bytes = 0;
  int64_t experts_moved = 0, experts_retained = 0;
  int requests_kept = 0, requests_kv_copied = 0, requests_recomputed = 0, requests_drained = 0;
  // KV given back ahead of the event so that it fits (all devices; grown back afterwards).
  uint64_t kv_shrunk_bytes = 0;
  std::string ToJson() const;
};

struct CoordinatorOptions {
  InstanceOptions instance;
  SchedulerOptions scheduler;  // its clock is replaced by the coordinator's
  uint64_t kv_bytes_per_device = 64ull << 20;
  int64_t block_tokens = 16;
  int standby_pool = 2;  // LRU capacity of standby instances
  // DESIGN 4.1: run every instance in a process of its own, this binary (tools/emoe_instance),
  // attaching to the HMM through its socket: hmmd's, or (an HMM in this process) one the
  // coordinator serves (hbm::HmmServer). Weights read-only and zero-copy, KV arenas read-write.
  // Empty: in-process instances (only with an HMM in this process).
  std::string instance_binary;
  // The socket the coordinator serves an in-process HMM on; empty: $TMPDIR (or
  // /tmp)/emoe-hmm-PID-N.sock.
  std::string hmm_socket;
  // Prepended to the name of every HMM record this coordinator creates ("<namespace>g0/..."), so
  // that several coordinators can share one hmmd.
  std::string record_namespace;
  // With instance processes: when the active one dies (a step finds its socket closed), a
  // supervisor thread restarts it over the same memory (RestartInstance: no reload, running
  // requests keep their KV). Serving pauses, nothing is lost.
  bool restart_crashed = true;
  Status Validate() const;
};

struct StepRecord {
  double t = 0;            // end of the step, coordinator clock
  int tokens = 0;          // tokens produced
  int replica_tokens = 0;  // of which by horizontal replicas (and draining old instances)
  int instance = 0;        // generation of the instance that ran it
};

class Coordinator {
 public:
  // Loads `checkpoint` from disk onto `devices` (dense weights everywhere, each expert on its
  // owner under the round-robin placement), creates KV stores and the first instance, and
  // starts serving. Every record it creates is named "<configuration>/" + checkpoint name.
  //
  // `hmm` drives the HMM wherever it lives: in this process (hbm::LocalHmmControl; instances may
  // then run in this process too), or in hmmd (hbm::RemoteHmmControl; instances must be
  // processes, options.instance_binary, and attach to hmmd's socket). `owned` (optional) is
  // destroyed with the coordinator, after everything that uses it.
  static StatusOr<std::unique_ptr<Coordinator>> Create(
      hbm::HmmControl* hmm, const hbm::Checkpoint& checkpoint, const ModelConfig& config,
      std::vector<int> devices, CoordinatorOptions options,
      std::unique_ptr<hbm::HmmControl> owned = nullptr);
  // The same over an HMM in this process.
  static StatusOr<std::unique_ptr<Coordinator>> Create(hbm::Hmm* hmm,
                                                       const hbm::Checkpoint& checkpoint,
                                                       const ModelConfig& config,
                                                       std::vector<int> devices,
                                                       CoordinatorOptions options);
  ~Coordinator();

  double Now() const;
  // Queues a request (arrival_s is set to Now() when 0). Validation errors come back at once.
  Status Submit(Request r);
  std::vector<RequestResult> TakeFinished();
  size_t outstanding() const;
  std::vector<StepRecord> Timeline() const;
  // Largest gap between two consecutive tokens of one request, over tokens emitted in [t0, t1].
  double MaxTokenGap(double t0, double t1) const;

  // Moves serving to `devices` (HMM device ids). kInvalidArgument / kResourceExhausted for a
  // request that cannot be met (nothing changes); any later failure rolls back and returns the
  // error with serving unchanged.
  StatusOr<ScaleReport> Scale(std::vector<int> devices, const ScaleOptions& options);
  // The API for an autoscaler: scale to `count` devices (TargetDevices(count)).
  StatusOr<ScaleReport> ScaleTo(int count, const ScaleOptions& options);
  // The devices ScaleTo(count) moves to: the serving devices in the order they stay (the
  // primary's ascending, then horizontal replicas in the order they were added) cut to `count`,
  // or all of them plus the lowest-numbered devices not serving. kInvalidArgument outside
  // 1..number of HMM devices.
  StatusOr<std::vector<int>> TargetDevices(int count) const;
  // Horizontal replicas serving besides the primary (not counting draining ones).
  int replicas() const;
  // Replaces the active instance by a new one over the same memory (a crashed instance
  // restarted): no weight is read from disk, running requests keep their KV.
  StatusOr<ScaleReport> RestartInstance();
  // Instances restarted by the supervisor after their process died.
  int restarts() const;
  // The active instance's process (0 for an in-process instance).
  pid_t active_pid() const { return active_->pid(); }
  // Boots a standby instance for `devices` into the pool (evicting the least recently used).
  Status PrepareStandby(const std::vector<int>& devices);

  // Devices serving: the primary's and those of horizontal replicas (sorted).
  std::vector<int> devices() const;
  const experts::ExpertPlacement& placement() const { return placement_; }
  int standby_count() const;
  uint64_t ArenaUsedBytes() const;  // all devices, all usages
  hbm::HmmControl& hmm() { return *hmm_; }
  int serving_errors() const;

 private:
  Coordinator() = default;
  struct Switch;
  struct Event;
  // An instance and its scheduler stepped besides the primary (active_, sched_): a horizontal
  // replica, or the old instance finishing its running requests after a draining switch.
  struct Replica {
    std::vector<int> devices;
    std::string prefix;              // HMM names of its weights (horizontal replicas)
    std::unique_ptr<Executor> inst;  // declared before sched: destroyed after it
    std::unique_ptr<Scheduler> sched;
    bool retiring = false;    // gets no new requests; removed once idle
    bool failed = false;      // its instance could not step; its requests went to the primary
    bool concurrent = false;  // its devices are its own: steps next to the primary's step
  };
  void ServeLoop();
  void Supervise();
  StatusOr<ScaleReport> RestartLocked();
  // Runs `fn` on the serving thread between two steps and waits for it.
  void OnServingThread(const std::function<void()>& fn);
  std::vector<std::vector<int>> CpusOf(const std::vector<int>& devices) const;
  // A pre-initialized instance for `devices`: an instance process (options_.instance_binary) or
  // an in-process Instance.
  StatusOr<std::unique_ptr<Executor>> BootInstance(const std::vector<int>& devices);
  // Attaches `inst` to the weights wo.prefix + name under `placement`: an instance process
  // through the HMM's socket (with the KV stores of `devices`), an in-process one over
  // DeviceWeights. Adds the bytes remapped / copied to `rep` (may be null).
  Status AttachInstance(Executor* inst, const std::vector<int>& devices,
                        const experts::ExpertPlacement& placement, DeviceWeightsOptions wo,
                        ScaleReport* rep);
  StatusOr<std::unique_ptr<Executor>> TakeStandby(const std::vector<int>& devices, bool allowed);
  // The load of the tensors `want` says go to a device (experts to their owner under
  // `placement`, the rest to each of `devices`), as an HMM placement table.
  hbm::PlacementTable TableFor(const std::vector<int>& devices,
                               const experts::ExpertPlacement& placement,
                               const std::function<bool(const TensorSpec&, int)>& want) const;
  StatusOr<hbm::LoadReport> LoadFromDisk(const hbm::PlacementTable& table,
                                         const std::string& prefix);
  // The device memory a load of `table` takes, per device (hbm::LoadFootprint).
  StatusOr<std::map<int, uint64_t>> FootprintOf(const hbm::PlacementTable& table);
  // KV shrunk ahead of time: where a device has less free capacity than `need` (bytes per
  // device) the event is about to take, its KV store gives back the difference (free blocks past
  // the highest one in use only). `room` remembers each store's former size for GrowKv. A device
  // that cannot make room is kResourceExhausted naming it, what it needs, holds and could give
  // (after what was shrunk already is grown back).
  Status MakeRoom(const std::map<int, uint64_t>& need, const std::vector<int>& serving,
                  std::map<int, uint64_t>* room, ScaleReport* rep);
  // Grows the stores in `room` back to their size before (those still there), or as far as
  // their device has room (an ablation's private copy may hold the rest): logged. Empties
  // `room`.
  void GrowKv(std::map<int, uint64_t>* room);
  StatusOr<ScaleReport> ScaleLocked(std::vector<int> devices, const ScaleOptions& options);
  StatusOr<ScaleReport> ScaleElastic(std::vector<int> devices, const ScaleOptions& o);
  StatusOr<ScaleReport> ScaleFromDisk(std::vector<int> devices, const ScaleOptions& o);
  StatusOr<ScaleReport> ScaleHorizontal(std::vector<int> devices, const ScaleOptions& o);
  // One step of every scheduler (the primary, then the replicas: concurrent ones at the same
  // time on threads of their own). Serving thread only.
  StatusOr<int> StepAll(std::vector<std::pair<int64_t, double>>* tokens,
                        std::vector<RequestResult>* done, int* replica_tokens);
  // The scheduler a new request goes to: the fewest requests in flight. Serving thread only.
  Scheduler* Route();
  void Sample(ScaleReport* r) const;
  // The switchover, between two steps on the serving thread: `next` serves from now on, with the
  // KV stores of `devices`. Running requests are handed over (kept, copied P2P or recomputed) or,
  // with `drain`, stay on the old scheduler, which becomes a retiring replica (`*drained`; the
  // caller gives it the old instance and retires it). Fills the downtime and hand-over fields
  // of `rep`. On error nothing changed.
  Status SwitchServing(Executor* next, const std::vector<int>& devices, bool drain,
                       ScaleReport* rep, Replica** drained);
  // Releases the weights (by prefix) and KV stores of a removed horizontal replica.
  void ReleaseReplicaMemory(const std::string& prefix, const std::vector<int>& devices);
  // Waits until the retiring replica `r` is idle, then destroys it (serving goes on).
  void Retire(const Replica* r);

  std::unique_ptr<hbm::HmmControl> owned_hmm_;  // first: destroyed last
  hbm::HmmControl* hmm_ = nullptr;
  const hbm::Checkpoint* checkpoint_ = nullptr;
  ModelConfig config_;
  CoordinatorOptions options_;
  std::vector<TensorSpec> specs_;
  std::chrono::steady_clock::time_point start_;

  // Owned by the control thread (Scale/Restart); read by the serving thread only through
  // OnServingThread.
  experts::ExpertPlacement placement_;
  std::string prefix_;  // HMM names of the active weights: prefix_ + checkpoint name
  int prefix_generation_ = 0;
  // Serves the HMM to instance processes (declared before the instances: outlives them).
  std::unique_ptr<hbm::HmmServer> hmm_server_;
  std::string hmm_socket_;
  std::unique_ptr<Executor> active_;
  std::map<int, std::unique_ptr<kv::KvStore>> stores_;                         // device -> KV store
  std::list<std::pair<std::vector<int>, std::unique_ptr<Executor>>> standby_;  // front = newest
  std::unique_ptr<Scheduler> sched_;
  // Horizontal replicas and draining old instances (the serving thread steps them; the control
  // thread changes the list only in OnServingThread).
  std::vector<std::unique_ptr<Replica>> replicas_;

  mutable std::mutex mu_;
  std::condition_variable cv_, done_cv_;
  std::deque<Request> inbox_;
  const std::function<void()>* task_ = nullptr;
  bool stop_ = false;
  bool supervisor_stop_ = false;
  bool supervised_ = false;  // set before the serving thread starts, read-only afterwards
  bool crashed_ = false;     // the active instance process died; serving waits for the supervisor
  int restarts_ = 0;
  int generation_ = 0;
  int serving_errors_ = 0;
  size_t outstanding_ = 0;
  std::vector<RequestResult> finished_;
  std::vector<StepRecord> timeline_;
  std::map<int64_t, double> last_token_;
  std::vector<std::pair<double, double>> gaps_;  // (token time, gap since the previous token)
  std::thread server_;
  std::thread supervisor_;
  std::mutex control_mu_;  // one control operation (scale, restart, standby) at a time
};

}  // namespace emoe::engine

#endif  // ENGINE_COORDINATOR_H_
