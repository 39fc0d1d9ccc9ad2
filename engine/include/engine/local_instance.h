// engine/local_instance.h: an inference instance in this process over a set of devices: DP
// attention + EP experts.
//
// Each device of the instance is a DP rank with a worker thread pinned to its CPUs: it runs
// attention for its own sequences (their KV lives on that device) and owns the experts an
// experts::ExpertPlacement gives its device. A step runs layer by layer in three phases
// separated by barriers:
//   A  each rank: attention and routing for its sequences (token activations into shared buffers)
//   B  each rank: its experts over every token routed to them, from all ranks (dispatch), in a
//      global order (sequence, position), so an expert sees the same rows whatever the device
//      count
//   C  each rank: combine for its tokens, summing expert outputs in ascending expert id
// which makes the output bit-identical for 1..N devices and any placement. The instance owns no
// weight memory: its WeightSources are views (engine/weight_sources.h).
//
// Life cycle (DESIGN 4.1): Boot() makes a pre-initialized instance (worker threads started and
// pinned, the BLAS warmed on scratch data) that is not attached to any weights; Attach() binds
// the weights of every rank (AttachSpec: over the HMM given at boot; AttachSources: over any
// weight sources); WarmUp() runs one step on private KV. Create() does all three.
// A standby pool keeps booted instances for likely next configurations.
//
// Thread safety: Step/Attach/WarmUp are called by one thread at a time; the instance runs its
// own workers.
#ifndef ENGINE_LOCAL_INSTANCE_H_
#define ENGINE_LOCAL_INSTANCE_H_

#include <functional>
#include <memory>
#include <thread>
#include <vector>

#include "engine/forward.h"
#include "engine/instance.h"
#include "engine/weight_sources.h"
#include "experts/placement.h"
#include "hbm/hmm.h"
#include "vmm/mutex.h"

namespace emoe::engine {

class LocalInstance : public Instance {
 public:
  // Pre-initialized, not attached: one pinned worker per CPU set (one per rank). `hmm` (may be
  // null: then only AttachSources works) is what Attach(AttachSpec) binds to; it must outlive
  // the instance.
  static StatusOr<std::unique_ptr<LocalInstance>> Boot(const ModelConfig& config,
                                                       std::vector<std::vector<int>> cpus,
                                                       InstanceOptions options = {},
                                                       hbm::Hmm* hmm = nullptr);
  // Binds rank r to sources[r] (device devices[r]); rank r computes the experts `placement`
  // gives devices[r] and binds only those. kFailedPrecondition when already attached or the
  // rank count differs from Boot's; a missing tensor is named. On error nothing is bound.
  Status AttachSources(std::vector<int> devices, std::vector<std::unique_ptr<WeightSource>> sources,
                       const experts::ExpertPlacement& placement);
  // Binds every rank to the HMM's records (DeviceWeights::Build per device): expert slots
  // (zero-copy) or the ablations' private copies. kFailedPrecondition without an HMM.
  Status Attach(const AttachSpec& spec, AttachStats* stats) override;
  // One step of one token per rank on private KV: touches every weight and sizes the scratch.
  Status WarmUp() override;

  // Boot + Attach over the HMM's records (DeviceWeights: expert slots, zero-copy) with the
  // round-robin placement over `devices`, or the given one.
  static StatusOr<std::unique_ptr<LocalInstance>> Create(
      hbm::Hmm* hmm, const ModelConfig& config, std::vector<int> devices,
      InstanceOptions options = {}, const experts::ExpertPlacement* placement = nullptr);
  // The same over any weight sources that hold every tensor (e.g. an hmmd attachment): one
  // source and one CPU set per rank; rank r is labelled device r.
  static StatusOr<std::unique_ptr<LocalInstance>> CreateFromSources(
      std::vector<std::unique_ptr<WeightSource>> sources, std::vector<std::vector<int>> cpus,
      const ModelConfig& config, InstanceOptions options = {});

  ~LocalInstance() override;
  LocalInstance(const LocalInstance&) = delete;
  LocalInstance& operator=(const LocalInstance&) = delete;

  bool attached() const override { return attached_; }
  int num_ranks() const override { return static_cast<int>(workers_.size()); }
  const std::vector<int>& devices() const override { return devices_; }
  int expert_owner(int layer, int e) const { return owner_[layer][e]; }  // a rank
  const experts::ExpertPlacement& placement() const override { return placement_; }
  const ModelConfig& config() const override { return config_; }
  const WeightSource* source(int rank) const { return ranks_[rank].source.get(); }

  // One forward step over `batch`; returns the last-token logits of each input, in order.
  // Validates every input and reserves KV first: on error nothing has run and every sequence
  // keeps its length. kFailedPrecondition before Attach.
  StatusOr<std::vector<std::vector<float>>> Step(const std::vector<SequenceInput>& batch) override;

  // CPU seconds each rank computed, and seconds it idled for its compute share, in the last step.
  const std::vector<double>& last_busy_s() const { return busy_s_; }
  const std::vector<double>& last_idle_s() const { return idle_s_; }
  // (layer, expert) pairs that computed at least one token in the last step, over all ranks:
  // the expert weights the step had to read.
  int64_t last_experts_run() const;

 private:
  LocalInstance() = default;
  struct Rank {
    std::unique_ptr<WeightSource> source;
    ModelWeights weights;
    std::unique_ptr<Forward> forward;
  };
  struct StepState;    // one step's shared buffers (local_instance.cc)
  struct RankScratch;  // one rank's scratch in a step
  // Runs job(r) on every rank's worker and waits for all.
  void RunOnWorkers(const std::function<void(int)>& job) EXCLUDES(mu_);
  void WorkerLoop(int r, std::vector<int> cpus) EXCLUDES(mu_);
  // Step's phases. ValidateStep checks and reserves every input; RunRank is rank r's part of
  // the step on its worker: per layer, A (AttentionPhase), a barrier, B (ExpertPhase), a
  // barrier, C (CombinePhase); then its sequences' logits.
  Status ValidateStep(const std::vector<SequenceInput>& batch);
  void RunRank(StepState& s, int r);
  void AttentionPhase(StepState& s, int layer, int r);
  void ExpertPhase(StepState& s, int layer, int r, RankScratch* scratch);
  void CombinePhase(StepState& s, int r, RankScratch* scratch);

  ModelConfig config_;
  InstanceOptions options_;
  hbm::Hmm* hmm_ = nullptr;
  bool attached_ = false;
  std::vector<double> busy_s_, idle_s_;
  std::vector<int64_t> experts_run_;  // per rank, written by its worker during a step
  std::vector<int> devices_;
  experts::ExpertPlacement placement_;
  std::vector<std::vector<int>> owner_;  // [layer][expert] -> rank
  std::vector<Rank> ranks_;

  // The workers' hand-off: RunOnWorkers publishes job_ under a new generation_ and waits on
  // done_cv_ until pending_ (ranks still running it) is 0; workers wait on cv_.
  vmm::Mutex mu_;
  vmm::CondVar cv_, done_cv_;
  const std::function<void(int)>* job_ GUARDED_BY(mu_) = nullptr;
  uint64_t generation_ GUARDED_BY(mu_) = 0;
  int pending_ GUARDED_BY(mu_) = 0;
  bool stop_ GUARDED_BY(mu_) = false;
  std::vector<std::thread> workers_;  // one per rank; set by Boot, joined by the destructor
  // One per rank (its worker is member 0, the forward of the rank uses it); set by Boot.
  std::vector<std::unique_ptr<ThreadTeam>> teams_;
};

}  // namespace emoe::engine

#endif  // ENGINE_LOCAL_INSTANCE_H_
