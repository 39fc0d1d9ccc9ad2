// engine/instance.h: what a scheduler and the coordinator need of an inference instance,
// whether it runs in this process (engine/local_instance.h) or in an instance process of its own
// that attaches to the HMM through its socket (engine/remote_instance.h). DESIGN 4.1: the
// transport is the only difference.
//
// Life cycle: a launcher boots an instance (pre-initialized: worker threads started and pinned,
// the BLAS warmed, no model memory); Attach(AttachSpec) binds it to weights the HMM holds;
// WarmUp() runs one step on private KV; Step() serves.
//
// Thread safety: one thread at a time drives an Instance.
#ifndef ENGINE_INSTANCE_H_
#define ENGINE_INSTANCE_H_

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "engine/model.h"
#include "engine/weight_sources.h"
#include "experts/placement.h"
#include "kv/kv_cache.h"

namespace emoe::engine {

struct InstanceOptions {
  // DESIGN 4.4: on hosts with fewer cores than devices, a device can run at a fixed compute share
  // s in (0, 1]: after each step, each device thread idles (1/s - 1) times the CPU time it just
  // used, like an accelerator 1/s times slower. Then N devices of share 1/N on a shared host give
  // about N times the capacity of one such device. 1 (the default) disables it. Memory
  // operations are never slowed.
  double compute_share = 1.0;
  // Threads per device (DESIGN 4.2: a device is a team of threads): the rank's worker and
  // threads_per_device - 1 helpers pinned to the device's CPUs split the rows of each product
  // (engine/thread_team.h); outputs are bit-identical for every count. 1..64; with more than 1
  // the compute share must be 1 (it is accounted per thread).
  int threads_per_device = 1;
  // false: the products of the engine before its fused kernels (Forward::SetFusedKernels), for
  // benchmarks' baselines only: outputs are then not bit-identical across device counts.
  bool fused_kernels = true;
  Status Validate() const;
};

struct SequenceInput {
  kv::Sequence* kv = nullptr;   // the sequence's KV (on its rank's device)
  std::vector<int32_t> tokens;  // new tokens, appended after kv->length()
  int rank = 0;                 // DP rank (index into the instance's devices)
};

// What an instance attaches to.
struct AttachSpec {
  std::vector<int> devices;            // rank r -> HMM device devices[r]
  experts::ExpertPlacement placement;  // which device computes which expert
  std::string prefix;                  // HMM record names: prefix + checkpoint name
  // Ablations (in-process instances only: they copy into the instance's own device memory).
  bool private_copy = false;                // copy the dense weights too (no zero-copy)
  ExpertView experts = ExpertView::kSlots;  // kNaiveCopy: one contiguous buffer per layer
  // Rank r's KV store (an extent of its device's KV arena): instance processes map them.
  std::vector<const kv::KvStore*> stores;
};

struct AttachStats {
  uint64_t bytes_mapped = 0;  // expert slot bytes mapped over the HMM's pages
  uint64_t bytes_copied = 0;  // bytes copied into private buffers (ablations)
  int slots = 0;              // expert slots mapped
  // Where the attach's time went, seconds, by part: "weights" (the weight views: expert slots
  // mapped, or private copies), "sources" (the instance takes them), and for an instance
  // process also "connect" (to the HMM), "hmm_attach" (the HMM's reply: arena fds, tensor
  // table, mappings), "populate" (page tables of the dense weights and KV stores) and "rpc"
  // (the round trip's own cost: the request, its reply, the process's scheduling).
  std::map<std::string, double> phase_s;
};

class Instance {
 public:
  virtual ~Instance() = default;
  virtual const ModelConfig& config() const = 0;
  virtual int num_ranks() const = 0;
  // HMM device ids of the ranks (empty before attach).
  virtual const std::vector<int>& devices() const = 0;
  virtual const experts::ExpertPlacement& placement() const = 0;
  virtual bool attached() const = 0;
  // Binds every rank to the weights `spec` names. kFailedPrecondition when already attached, the
  // rank count differs from the boot's, or the kind of instance cannot do what `spec` asks (an
  // instance process cannot make private copies); a missing tensor is named. On error nothing is
  // bound. Adds what was mapped / copied to `stats` (may be null).
  virtual Status Attach(const AttachSpec& spec, AttachStats* stats) = 0;
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

#endif  // ENGINE_INSTANCE_H_
