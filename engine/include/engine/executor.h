// engine/executor.h: what a scheduler and the coordinator need of an inference instance,
// whether it runs in this process (engine/instance.h) or in an instance process of its own that
// attaches to the HMM through hmmd (engine/remote_instance.h). DESIGN 4.1: the transport is the
// only difference.
//
// Thread safety: one thread at a time drives an Executor.
#ifndef ENGINE_EXECUTOR_H_
#define ENGINE_EXECUTOR_H_

#include <sys/types.h>

#include <cstdint>
#include <vector>

#include "engine/model.h"
#include "experts/placement.h"
#include "kv/kv_cache.h"

namespace emoe::engine {

struct SequenceInput {
  kv::Sequence* kv = nullptr;   // the sequence's KV (on its rank's device)
  std::vector<int32_t> tokens;  // new tokens, appended after kv->length()
  int rank = 0;                 // DP rank (index into the instance's devices)
};

class Executor {
 public:
  virtual ~Executor() = default;
  virtual const ModelConfig& config() const = 0;
  virtual int num_ranks() const = 0;
  // HMM device ids of the ranks (empty before attach).
  virtual const std::vector<int>& devices() const = 0;
  virtual const experts::ExpertPlacement& placement() const = 0;
  virtual bool attached() const = 0;
  // One step of one token per rank on private KV: touches every weight and sizes the scratch.
  virtual Status WarmUp() = 0;
  // One forward step over `batch`; returns the last-token logits of each input, in order. On
  // error no sequence's length changed.
  virtual StatusOr<std::vector<std::vector<float>>> Step(
      const std::vector<SequenceInput>& batch) = 0;
  // The process the instance runs in (0: this one).
  virtual pid_t pid() const { return 0; }

  int device(int rank) const { return devices()[rank]; }
  int rank_of_device(int device) const;  // -1 when the device is not in the instance
};

}  // namespace emoe::engine

#endif  // ENGINE_EXECUTOR_H_
