// tools/elasticmoe_sizing.h: the devices the elastic-scaling experiment needs, sized from the
// model and the schedule when the device flags (--max_devices, --device_mb, --weights_mb,
// --experts_mb, --kv_mb) are left at their defaults, and the check that the node can hold them.
//
// The rule (SizeDevices), for one device (all devices are alike):
//  1. Devices: the largest count of the schedule; with extravagant among the methods, the most
//     that any event needs at once (its old devices and its fresh new ones: from + to).
//  2. X(n), the experts of one device of an n-device configuration: ceil(E / n) experts of every
//     layer, each one extent rounded to 2 MiB pages; every experts figure below also gets one
//     spare extent per layer (room for the allocator). The experts arena counts each extent at
//     its footprint (pages rounded up to a power of two: what the buddy allocator takes of a
//     fresh arena), the capacity at its size.
//  3. W, the weights: the non-expert tensors (engine::ModelArenaBytes), in 2 MiB pages.
//  4. K, the KV store: the default (320 MiB, taking much of a device as on a GPU), or twice what
//     the load holds (every request at full length, whole blocks, on one device) when that is
//     more; a store that gives back KV ahead of an event (KvStoreSet::ShrinkAhead) keeps that
//     twice-the-load.
//  5. Capacity: the most any method of the run holds on one device: the smallest configuration
//     with its store (W + X(min) + K: what an elastic event, cold restart, extravagant and
//     horizontal hold at most), and for every event n -> m of the schedule, on a device kept
//     and on one added by the event: the copying ablations' private buffers (-no-vm-remap:
//     X(m) more experts; -no-zero-copy: W + X(m) more; on a kept device also the old
//     instance's buffers of the old placement, X(n) and W, alive until the switch) and
//     colocated's second copy from disk
//     (W + X(n) + X(m) on a kept device), where a kept device's store gives back KV down to its
//     keep and an added device's store is whole. capacity_why names the case.
//  6. Arenas: weights and experts reserved at the most they hold in any case of step 5, KV at
//     K, so that their sum is the capacity and hmmd populates all of it at start (it populates
//     the capacity given to the KV, weights and experts arenas in that order; a page beyond that is
//     faulted in by the allocation that hands it out, during an event). With colocated or a
//     copying ablation among the methods, weights and experts are reserved 4x (address space;
//     their pages beyond the capacity are not populated ahead): those copy each layer's experts
//     into one contiguous run, or load a second copy among the first one's extents, and need
//     free runs that a tight arena fragments away ("largest free run 2 MiB").
//
// Thread safety: pure functions over values, except NodeAvailableBytes (reads /sys).
#ifndef TOOLS_ELASTICMOE_SIZING_H_
#define TOOLS_ELASTICMOE_SIZING_H_

#include <cstdint>
#include <string>
#include <vector>

#include "engine/model.h"
#include "engine/scale_types.h"
#include "hbm/safetensors.h"
#include "vmm/status.h"

namespace emoe::tools {

// What the rule needs to know of the model.
struct SizingModel {
  uint64_t weights_bytes = 0;        // one device's non-expert tensors (with their slack)
  uint64_t expert_extent_bytes = 0;  // the largest expert's extent, rounded to 2 MiB pages
  // What such an extent takes of an experts arena in the worst case: its pages rounded up to a
  // power of two (the arena's buddy allocator: 3 pages take 4).
  uint64_t expert_footprint_bytes = 0;
  int num_experts = 0;  // per layer
  int num_layers = 0;
  uint64_t kv_bytes_per_token = 0;  // K and V of every layer (f32)
};
// The model's numbers from its config and checkpoint (the HMM's layout: each tensor from the
// 4 KiB boundary below its data to the one above its end, an expert's tensors in one extent).
// REQUIRES: engine::ValidateCheckpoint(config, checkpoint) is OK.
SizingModel SizingModelOf(const engine::ModelConfig& config, const hbm::Checkpoint& checkpoint);

struct SizingInput {
  SizingModel model;
  std::vector<int> schedule;  // device counts: the start, then one event each
  std::vector<engine::ScaleOptions> methods;
  std::vector<std::string> method_names;  // as given, one per method (names the cases)
  int concurrency = 8;                    // requests in flight
  int tokens_per_request = 72;            // prompt + output
  int block_tokens = 16;                  // KV block
  uint64_t default_kv_bytes = 320ull << 20;
};

struct Sizing {
  int devices = 0;
  std::string devices_why;  // "extravagant's 2->4 holds its old and new devices at once"
  // The most one device holds of each usage in any case of the rule (weights, experts: for the
  // arenas), and its KV store.
  uint64_t weights_bytes = 0, experts_bytes = 0, kv_bytes = 0;
  uint64_t capacity_bytes = 0;  // per device: the most it holds in all, what is populated
  std::string capacity_why;     // the case that needs it ("elastic-no-zero-copy's 4->2 on ...")
  // What one device of the smallest configuration holds (experts with the spare extents).
  uint64_t steady_weights_bytes = 0, steady_experts_bytes = 0;
  // The arena reservations (step 6).
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
// every number and `why` (the case that sized the capacity; may be empty): "the devices need 6 x
// 1518 MiB (for the 2-device configuration's share) = 8.9 GiB populated, node 0 can give 7.1 GiB
// (free 5.0 GiB + reclaimable page cache 2.1 GiB) less 1.0 GiB of headroom: ...".
vmm::Status CheckFits(int devices, uint64_t capacity_bytes, const std::string& why,
                      const NodeMemory& node, uint64_t headroom_bytes);

}  // namespace emoe::tools

#endif  // TOOLS_ELASTICMOE_SIZING_H_
