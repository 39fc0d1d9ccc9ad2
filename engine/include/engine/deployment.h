// engine/deployment.h: how a model is laid out on a set of devices: the arena sizes one device
// needs, and THE one rule for which device loads which tensor (expert parallelism for the
// experts, every other tensor replicated on every device).
//
// The rule (DeploymentTable):
//  1. Expert e of layer L goes to exactly one device, its owner under the expert placement
//     (placement.owner[L][e]), as Usage::kExperts in group "layer<L>.expert<e>": one extent per
//     expert, the unit a redistribution remaps on its own.
//  2. Every other tensor (embeddings, attention, norms, router gates, LM head) goes to each
//     device of `devices`, as Usage::kWeights with no group (the tensors of a device share
//     extents).
//  3. A filter `want(spec, device)` keeps only the (tensor, device) pairs it accepts; a tensor
//     left on no device is absent from the table (the HMM skips it).
// Tokens do not depend on the placement (the instance's three-phase step is deterministic
// whatever device computes an expert), so any valid placement serves the same tokens.
//
// Thread safety: pure functions of their arguments.
#ifndef ENGINE_DEPLOYMENT_H_
#define ENGINE_DEPLOYMENT_H_

#include <array>
#include <cstdint>
#include <functional>
#include <vector>

#include "engine/model.h"
#include "experts/placement.h"
#include "hbm/control.h"
#include "hbm/safetensors.h"
#include "vmm/status.h"

namespace emoe::engine {

// Bytes of each arena of one device.
struct ArenaBytes {
  uint64_t weights_bytes = 0;  // non-expert tensors
  uint64_t experts_bytes = 0;  // the device's share of the experts
  uint64_t kv_bytes = 0;       // the KV store
  uint64_t total_bytes() const { return weights_bytes + experts_bytes + kv_bytes; }
  // In the order of hbm::Usage, for hbm::DeviceMemoryOptions::usage_bytes.
  std::array<uint64_t, hbm::kNumUsages> usage_bytes() const {
    return {weights_bytes, experts_bytes, kv_bytes};
  }
};

// The most KV a device gets when its KV arena is sized from what the weights leave.
inline constexpr uint64_t kMaxAutoKvBytes = 1ull << 30;

// The weights and experts arenas one device needs to serve `checkpoint` on `num_devices`
// devices under the rule above (kv_bytes is 0: the caller's choice, or KvBytesLeft):
//   weights: every non-expert tensor, each with 8 KiB of alignment slack, plus 4 MiB;
//   experts: 1/num_devices of the expert tensors (same slack), plus one 2 MiB page per expert
//            and layer for the at most num_experts/num_devices + 1 experts a device owns (one
//            extent per expert, rounded to 2 MiB pages in the worst case).
// REQUIRES: ValidateCheckpoint(config, checkpoint) is OK; num_devices >= 1.
ArenaBytes ModelArenaBytes(const ModelConfig& config, const hbm::Checkpoint& checkpoint,
                           int num_devices);

// The KV arena of a device of `device_capacity_bytes` whose weights and experts take
// `model_bytes`: what is left, at most `max_kv_bytes`. kResourceExhausted when 1 MiB or less
// would be left ("the weights need N MiB per device, leaving no KV memory in a device of M MiB").
vmm::StatusOr<uint64_t> KvBytesLeft(uint64_t device_capacity_bytes, uint64_t model_bytes,
                                    uint64_t max_kv_bytes = kMaxAutoKvBytes);

// Which device loads which tensor of `specs` (ExpectedTensors of the model): the rule above, as
// an HMM placement table keyed by tensor name. `want` (null: every pair) filters (tensor,
// device) pairs; for an expert it is asked about its owner only. REQUIRES: placement.owner
// covers every (layer, expert) of `specs`.
hbm::PlacementTable DeploymentTable(
    const std::vector<TensorSpec>& specs, const std::vector<int>& devices,
    const experts::ExpertPlacement& placement,
    const std::function<bool(const TensorSpec&, int device)>& want = nullptr);

}  // namespace emoe::engine

#endif  // ENGINE_DEPLOYMENT_H_
