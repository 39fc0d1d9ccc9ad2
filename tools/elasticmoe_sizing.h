// tools/elasticmoe_sizing.h: the devices the elastic-scaling experiment needs, sized from the
// model and the schedule when the device flags (--max_devices, --device_mb, --weights_mb,
// --experts_mb, --kv_mb) are left at their defaults, and the check that the node can hold them.
//
// The rule (SizeDevices):
//  1. Devices: the largest count of the schedule; with extravagant among the methods, the most
//     that any event needs at once (its old devices and its fresh new ones: from + to).
//  2. Experts per device: the share of the smallest configuration of the schedule (ceil(E / n)
//     experts of every layer, each one extent rounded to 2 MiB pages), plus one spare extent per
//     layer. An elastic event never holds more on a device (the retained devices of n -> m
//     receive up to the share of min(n, m), and free what they give away only after the
//     switch), nor do cold restart, extravagant (fresh devices) or horizontal (replicas of the
//     first configuration).
//  3. Weights per device: the non-expert tensors (engine::ModelArenaBytes).
//  4. KV per device: the default store (320 MiB, taking much of a device as on a GPU), or twice
//     what the load can hold (every request at full length on one device) when that is more.
//  5. Capacity per device: weights + experts + KV, what hmmd populates. The arenas are reserved
//     twice as large (address space only): a method that holds a second copy on a serving
//     device (colocated, and the private copies of -no-zero-copy / -no-vm-remap, which the plan
//     counts against the device) gets room only by giving back KV (KvStoreSet::ShrinkAhead), and
//     an event that needs more is refused and reported (serving goes on).
//
// Thread safety: pure functions over values, except NodeAvailableBytes (reads /sys).
#ifndef TOOLS_ELASTICMOE_SIZING_H_
#define TOOLS_ELASTICMOE_SIZING_H_

#include <cstdint>
#include <string>
#include <vector>

#include "engine/model.h"
#include "hbm/safetensors.h"
#include "vmm/status.h"

namespace emoe::tools {

// What the rule needs to know of the model.
struct SizingModel {
  uint64_t weights_bytes = 0;        // one device's non-expert tensors (with their slack)
  uint64_t expert_extent_bytes = 0;  // the largest expert's extent, rounded to 2 MiB pages
  int num_experts = 0;               // per layer
  int num_layers = 0;
  uint64_t kv_bytes_per_token = 0;  // K and V of every layer (f32)
};
// The model's numbers from its config and checkpoint (the HMM's layout: each tensor from the
// 4 KiB boundary below its data to the one above its end, an expert's tensors in one extent).
// REQUIRES: engine::ValidateCheckpoint(config, checkpoint) is OK.
SizingModel SizingModelOf(const engine::ModelConfig& config, const hbm::Checkpoint& checkpoint);

struct SizingInput {
  SizingModel model;
  std::vector<int> schedule;    // device counts: the start, then one event each
  bool extravagant = false;     // extravagant is among the methods
  int concurrency = 8;          // requests in flight
  int tokens_per_request = 72;  // prompt + output
  int block_tokens = 16;        // KV block
  uint64_t default_kv_bytes = 320ull << 20;
};

struct Sizing {
  int devices = 0;
  std::string devices_why;  // "extravagant's 2->4 holds 2 + 4 devices", "the schedule's 4"
  uint64_t weights_bytes = 0, experts_bytes = 0, kv_bytes = 0;  // what one device holds at most
  uint64_t capacity_bytes = 0;  // per device: the sum, what is populated
  // The arena reservations (twice the need: room for second copies; address space only).
  uint64_t weights_arena_bytes = 0, experts_arena_bytes = 0;
  int smallest_config = 0;  // the schedule's smallest device count (the experts' share)
  uint64_t total_bytes() const { return static_cast<uint64_t>(devices) * capacity_bytes; }
};

// The rule above. REQUIRES: schedule non-empty with entries >= 1; model counts >= 1.
Sizing SizeDevices(const SizingInput& in);

// Bytes the node can give (free memory plus its reclaimable page cache), and how they add up.
struct NodeMemory {
  int node = 0;
  uint64_t free_bytes = 0;         // vmm::NumaNodes' free memory of the node
  uint64_t reclaimable_bytes = 0;  // its file pages and reclaimable slab (/sys/.../meminfo)
  uint64_t available_bytes() const { return free_bytes + reclaimable_bytes; }
};
// The node's memory now; kNotFound when vmm::NumaNodes does not list it.
vmm::StatusOr<NodeMemory> NodeAvailableBytes(int node);

// Ok when `devices` x `capacity_bytes` populated fits in what `node` can give less `headroom_bytes`
// (instance processes, page tables, the rest of the machine); otherwise kResourceExhausted naming
// every number ("the devices need 6 x 1516 MiB = 8.9 GiB populated, node 0 can give 7.1 GiB
// (free 5.0 + reclaimable page cache 2.1) less 1.0 GiB of headroom: ...").
vmm::Status CheckFits(int devices, uint64_t capacity_bytes, const NodeMemory& node,
                      uint64_t headroom_bytes);

}  // namespace emoe::tools

#endif  // TOOLS_ELASTICMOE_SIZING_H_
