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
// The coordinator is a facade over its parts (README "Architecture"): serving/ (the serving
// thread, its stats, the KV stores, the switchover), instances/ (the instance kinds and the
// standby pool) and scale/ (one file per procedure over a ScaleEvent with its undo log).
//
// Thread safety: Submit/TakeFinished/Timeline/stats may be called from any thread and never wait
// for a scale event (Submit takes only the inbox's mutex); Scale, ScaleTo, RestartInstance and
// PrepareStandby are serialized by the control mutex (with the supervisor's restarts).
#ifndef ENGINE_COORDINATOR_H_
#define ENGINE_COORDINATOR_H_

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "engine/instance.h"
#include "engine/scale_types.h"
#include "engine/scheduler.h"
#include "engine/serving_view.h"
#include "experts/placement.h"
#include "hbm/control.h"
#include "hbm/hmm.h"
#include "vmm/mutex.h"

namespace emoe::hbm {
class HmmServer;
}  // namespace emoe::hbm

namespace emoe::engine {

class InstancePool;
class KvStoreSet;
class ServingLoop;
struct ScaleContext;

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
  // Tests: every scheduler's CheckInvariants() after every step and switch (aborts on a broken
  // one, naming it).
  bool check_invariants = false;
  // Told every token and result as serving produces them (engine/serving_view.h); not owned,
  // must outlive the coordinator. Null: none.
  ServingObserver* observer = nullptr;
  // false (a long-running service): finished results go only to the observer (TakeFinished
  // returns none), and the step timeline and token gaps are not kept (Timeline and MaxTokenGap
  // are empty); memory then stays bounded however long it serves.
  bool keep_history = true;
  // How an elastic event's peer-to-peer copies share the host's cores with serving (one batch,
  // hbm::HmmControl::ApplyCopies): max_parallel copy jobs of chunk_bytes at a time (0: every copy
  // worker of the destination devices).
  hbm::CopyBatchOptions scale_copies;
  Status Validate() const;
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
  // Ends request `id` if it is queued or running: before the next step its KV blocks are freed
  // and its result (finish_reason "abort", with the tokens generated so far) is delivered as any
  // other. Never waits for a step or a scale event. An id not in flight (finished, unknown) is
  // ignored; one submitted but not yet routed is cancelled when it is.
  void Cancel(int64_t id);
  // The load and the configuration as of the last step (engine/serving_view.h), with
  // device_seconds brought up to Now(). Never waits for a scale event.
  ServingSnapshot Snapshot() const;
  // The control operation in progress (scaling false when none). Never waits for it.
  ScaleProgress scale_progress() const;
  size_t outstanding() const;
  std::vector<StepRecord> Timeline() const;
  // Largest gap between two consecutive tokens of one request, over tokens emitted in [t0, t1].
  double MaxTokenGap(double t0, double t1) const;

  // Moves serving to `devices` (HMM device ids). kInvalidArgument / kResourceExhausted for a
  // request that cannot be met (nothing changes); any later failure rolls back and returns the
  // error with serving unchanged.
  StatusOr<ScaleReport> Scale(std::vector<int> devices, const ScaleOptions& options)
      EXCLUDES(control_mu_);
  // The API for an autoscaler: scale to `count` devices (TargetDevices(count)).
  StatusOr<ScaleReport> ScaleTo(int count, const ScaleOptions& options) EXCLUDES(control_mu_);
  // The devices ScaleTo(count) moves to: the serving devices in the order they stay (the
  // primary's ascending, then horizontal replicas in the order they were added) cut to `count`,
  // or all of them plus the lowest-numbered devices not serving. kInvalidArgument outside
  // 1..number of HMM devices.
  StatusOr<std::vector<int>> TargetDevices(int count) const EXCLUDES(control_mu_);
  // Horizontal replicas serving besides the primary (not counting draining ones).
  int replicas() const;
  // Replaces the active instance by a new one over the same memory (a crashed instance
  // restarted): no weight is read from disk, running requests keep their KV.
  StatusOr<ScaleReport> RestartInstance() EXCLUDES(control_mu_);
  // Instances restarted by the supervisor after their process died.
  int restarts() const;
  // The active instance's process (0 for an in-process instance).
  pid_t active_pid() const EXCLUDES(control_mu_);
  // Boots a standby instance for `devices` into the pool (evicting the least recently used).
  Status PrepareStandby(const std::vector<int>& devices) EXCLUDES(control_mu_);

  // Devices serving: the primary's and those of horizontal replicas (sorted).
  std::vector<int> devices() const EXCLUDES(control_mu_);
  // The active placement (a copy: the control thread replaces it at scale events).
  experts::ExpertPlacement placement() const EXCLUDES(control_mu_);
  int standby_count() const EXCLUDES(control_mu_);
  uint64_t ArenaUsedBytes() const;  // all devices, all usages
  hbm::HmmControl& hmm() { return *hmm_; }
  int serving_errors() const;

 private:
  Coordinator();
  // Wires the parts (Create's second half): instance kinds, stores, the first instance, serving.
  Status Start(const std::vector<int>& devices) REQUIRES(control_mu_);
  void Supervise();
  // scale_progress() from the start of a control operation to its end.
  void BeginProgress(const std::string& method, const std::vector<int>& to) REQUIRES(control_mu_)
      EXCLUDES(progress_mu_);
  void EndProgress() EXCLUDES(progress_mu_);

  std::unique_ptr<hbm::HmmControl> owned_hmm_;  // first: destroyed last
  hbm::HmmControl* hmm_ = nullptr;
  CoordinatorOptions options_;
  int vocab_size_ = 0;
  std::chrono::steady_clock::time_point start_;
  // Serves the HMM to instance processes (declared before the instances: outlives them).
  std::unique_ptr<hbm::HmmServer> hmm_server_;
  std::unique_ptr<KvStoreSet> stores_;  // outlives the instances and schedulers
  std::unique_ptr<InstancePool> pool_;
  std::unique_ptr<ServingLoop> loop_;

  mutable vmm::Mutex control_mu_;  // one control operation (scale, restart, standby) at a time
  std::unique_ptr<ScaleContext> ctx_ GUARDED_BY(control_mu_);
  int restarts_ GUARDED_BY(control_mu_) = 0;
  mutable vmm::Mutex progress_mu_;  // taken alone, briefly: never waits for control_mu_
  ScaleProgress progress_ GUARDED_BY(progress_mu_);
  std::thread supervisor_;
};

}  // namespace emoe::engine

#endif  // ENGINE_COORDINATOR_H_
