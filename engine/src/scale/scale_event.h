// engine/src/scale/scale_event.h: the state every scale procedure works on (ScaleContext: the
// parts of a coordinator a procedure may touch), and the state of one event threaded through
// its phases (ScaleEvent: devices, report, phase clock, PSS sampler, KV shrunk ahead of time,
// the instance being prepared, and an UndoLog that runs unless the event commits), as LevelDB's
// CompactionState or Linux's vma_remap_struct.
//
// Thread safety: a ScaleContext's control state is the control thread's (the coordinator holds
// its control mutex for every procedure); serving state is reached through the ServingLoop.
#ifndef ENGINE_SRC_SCALE_SCALE_EVENT_H_
#define ENGINE_SRC_SCALE_SCALE_EVENT_H_

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "engine/instance.h"
#include "engine/model.h"
#include "engine/scale_types.h"
#include "engine/scheduler.h"
#include "experts/placement.h"
#include "hbm/control.h"
#include "hbm/safetensors.h"
#include "instances/instance_pool.h"
#include "metrics/pss.h"
#include "serving/kv_store_set.h"
#include "serving/serving_loop.h"
#include "vmm/mutex.h"

namespace emoe::engine {

struct ScaleContext {
  hbm::HmmControl* hmm = nullptr;
  const hbm::Checkpoint* checkpoint = nullptr;
  ModelConfig config;
  std::vector<TensorSpec> specs;       // ExpectedTensors(config)
  std::string record_namespace;        // prefix of every HMM record name
  SchedulerOptions scheduler;          // with the coordinator's clock
  hbm::CopyBatchOptions copy_options;  // an elastic event's P2P batch (CoordinatorOptions)
  std::function<double()> clock;       // seconds since the coordinator started
  ServingLoop* loop = nullptr;
  KvStoreSet* stores = nullptr;
  InstancePool* pool = nullptr;
  // Told the name of every phase as it ends (ScaleEvent::Phase): the coordinator's progress.
  std::function<void(const char*)> on_phase;

  // The configuration serving now (the control thread's). Null only after a cold restart
  // failed once the old instance was gone: `down` says why, and every scale is refused.
  std::unique_ptr<Instance> active;
  std::string down;
  experts::ExpertPlacement placement;
  std::string prefix;  // HMM names of the active weights: prefix + checkpoint name
  int prefix_generation = 0;

  // "<namespace>g<N>/" or "<namespace>h<N>/" for the next configuration.
  std::string NewPrefix(char kind) {
    return record_namespace + kind + std::to_string(++prefix_generation) + "/";
  }
  // Ok while an instance serves; kFailedPrecondition naming `down` otherwise.
  Status CheckServing() const;
  // Devices serving: the primary's and those of horizontal replicas (sorted; none when down).
  std::vector<int> ServingDevices() const;
  uint64_t ArenaUsedBytes() const;  // all devices, all usages (0, logged, when unknown)
  // Loads `table` from the checkpoint under `prefix`.
  StatusOr<hbm::LoadReport> Load(const hbm::PlacementTable& table, const std::string& prefix);
  // Boots (or takes a standby) and attaches an instance; adds what it mapped to `rep`.
  StatusOr<std::unique_ptr<Instance>> Prepare(const AttachSpec& spec, bool allow_standby,
                                              ScaleReport* rep);
  // The attach spec of the configuration `placement` over `devices` with weights `prefix`.
  AttachSpec SpecFor(const std::vector<int>& devices, const experts::ExpertPlacement& placement,
                     const std::string& prefix) const;
};

// Undo steps, run newest first when the log dies uncommitted.
class UndoLog {
 public:
  UndoLog() = default;
  UndoLog(const UndoLog&) = delete;
  UndoLog& operator=(const UndoLog&) = delete;
  ~UndoLog() { Run(); }
  void Add(std::function<void()> step) { steps_.push_back(std::move(step)); }
  void Commit() { steps_.clear(); }
  void Run();

 private:
  std::vector<std::function<void()>> steps_;
};

class ScaleEvent {
 public:
  ScaleEvent(ScaleContext& ctx, const ScaleOptions& options, std::vector<int> to);
  ScaleEvent(const ScaleEvent&) = delete;
  ScaleEvent& operator=(const ScaleEvent&) = delete;

  // Ends the phase `name` (its time is from the end of the previous one) and samples memory.
  void Phase(const char* name);
  // The failure ScaleOptions::fail_after injects after `name`, or OK.
  Status Injected(const char* name) const;
  double SinceCommand() const;
  // Runs the undo log (and grows shrunk KV back); returns `s` annotated with `what`.
  Status Fail(Status s, const std::string& what);
  // A cleanup step's outcome: a failure is logged naming `what` and counted in the report.
  void Cleanup(const std::string& what, const Status& s);
  // Grows the KV shrunk ahead of time back (a failed resize counts as a cleanup error).
  void GrowKvBack();
  // Commits the event (nothing is undone any more), grows shrunk KV back, and returns the
  // report with the arena and PSS after.
  ScaleReport Finish();

  ScaleContext& ctx;
  const ScaleOptions options;
  ScaleReport rep;  // rep.from_devices, rep.to_devices: the event's devices
  // Destroyed in reverse: the new instance first, then the undo log, then the KV grown back.
  KvStoreSet::Guard kv_room;  // KV shrunk ahead of time: grown back at the end
  UndoLog undo;
  std::unique_ptr<Instance> next;  // the instance being prepared (dies on failure)

 private:
  void Sample();
  const std::chrono::steady_clock::time_point t0_ = std::chrono::steady_clock::now();
  std::chrono::steady_clock::time_point t_ = t0_;
  PssSampler pss_;
};

}  // namespace emoe::engine

#endif  // ENGINE_SRC_SCALE_SCALE_EVENT_H_
