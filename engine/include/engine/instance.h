// engine/instance.h: an inference instance over a set of devices: DP attention + EP experts.
//
// Each device of the instance is a DP rank with a worker thread pinned to its CPUs: it runs
// attention for its own sequences (their KV lives on that device) and owns a share of the experts
// (experts::BalancedPlacement). A step runs layer by layer in three phases separated by barriers:
//   A  each rank: attention and routing for its sequences (token activations into shared buffers)
//   B  each rank: its experts over every token routed to them, from all ranks (dispatch), in a
//      global order (sequence, position), so an expert sees the same rows whatever the device
//      count
//   C  each rank: combine for its tokens, summing expert outputs in ascending expert id
// which makes the output bit-identical for 1..N devices. The instance owns no weight memory: it
// reads the HMM's records (the attention weights of its own device, the experts of their owners).
//
// Thread safety: Step is called by one thread at a time; it runs its own workers.
#ifndef ENGINE_INSTANCE_H_
#define ENGINE_INSTANCE_H_

#include <memory>
#include <vector>

#include "engine/forward.h"
#include "engine/weight_sources.h"
#include "hbm/hmm.h"

namespace emoe::engine {

struct SequenceInput {
  kv::Sequence* kv = nullptr;   // the sequence's KV (on its rank's device)
  std::vector<int32_t> tokens;  // new tokens, appended after kv->length()
  int rank = 0;                 // DP rank (index into the instance's devices)
};

struct InstanceOptions {
  // DESIGN 4.4: on hosts with fewer cores than devices, a device can run at a fixed compute share
  // s in (0, 1]: after each step, each device thread idles (1/s - 1) times the CPU time it just
  // used, like an accelerator 1/s times slower. Then N devices of share 1/N on a shared host give
  // about N times the capacity of one such device. 1 (the default) disables it. Memory
  // operations are never slowed.
  double compute_share = 1.0;
  Status Validate() const;
};

class Instance {
 public:
  // `devices`: HMM device ids, one DP rank each, in rank order.
  static StatusOr<std::unique_ptr<Instance>> Create(const hbm::Hmm* hmm, const ModelConfig& config,
                                                    std::vector<int> devices,
                                                    InstanceOptions options = {});
  // The same over any weight sources (e.g. AttachmentWeightSource over an hmmd attachment): one
  // source and one CPU set per rank; `devices` only labels the ranks.
  static StatusOr<std::unique_ptr<Instance>> CreateFromSources(
      std::vector<std::unique_ptr<WeightSource>> sources, std::vector<std::vector<int>> cpus,
      const ModelConfig& config, InstanceOptions options = {});

  int num_ranks() const { return static_cast<int>(devices_.size()); }
  int device(int rank) const { return devices_[rank]; }
  int expert_owner(int e) const { return owner_[e]; }
  const ModelConfig& config() const { return config_; }

  // One forward step over `batch`; returns the last-token logits of each input, in order.
  // Validates every input and reserves KV first: on error nothing has run and every sequence
  // keeps its length.
  StatusOr<std::vector<std::vector<float>>> Step(const std::vector<SequenceInput>& batch);

  // CPU seconds each rank computed, and seconds it idled for its compute share, in the last step.
  const std::vector<double>& last_busy_s() const { return busy_s_; }
  const std::vector<double>& last_idle_s() const { return idle_s_; }

 private:
  Instance() = default;
  struct Rank {
    std::unique_ptr<WeightSource> source;
    ModelWeights weights;
    std::unique_ptr<Forward> forward;
    std::vector<int> cpus;
  };
  ModelConfig config_;
  InstanceOptions options_;
  std::vector<double> busy_s_, idle_s_;
  std::vector<int> devices_;
  std::vector<int> owner_;  // expert -> rank
  std::vector<Rank> ranks_;
};

}  // namespace emoe::engine

#endif  // ENGINE_INSTANCE_H_
