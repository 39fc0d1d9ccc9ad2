// experts/plan.h: a redistribution plan between two expert placements.
//
// For every device of old ∪ new and every layer: the experts it keeps (retained: their pages are
// reused, no copy), the experts it receives (incoming, each with the device that holds it now:
// new pages filled by a P2P copy from there), and the experts it gives up (outgoing: their pages
// are freed only after the switchover, so the old instance keeps serving from them).
//
// Invariants (RedistributionPlan::Validate), checked before anything is applied:
//  1. `from` and `to` are valid placements of the same shape (layers x experts).
//  2. `moves` holds exactly the (layer, expert) pairs whose owner differs, each with
//     from == from.owner and to == to.owner, ascending by (layer, expert).
//  3. For every device and layer, retained ∪ outgoing = the device's experts in `from`,
//     retained ∪ incoming = its experts in `to`, all disjoint; every device of old ∪ new has an
//     entry for every layer.
//
// Thread safety: value types.
#ifndef EXPERTS_PLAN_H_
#define EXPERTS_PLAN_H_

#include <cstdint>
#include <string>
#include <vector>

#include "experts/placement.h"

namespace emoe::experts {

struct ExpertMove {
  int layer = 0;
  int expert = 0;
  int from = 0;  // device holding it in the old placement (the P2P source)
  int to = 0;    // device owning it in the new placement
  bool operator==(const ExpertMove&) const = default;
};

struct DeviceLayerPlan {
  int device = 0;
  int layer = 0;
  std::vector<int> retained;         // ascending expert ids
  std::vector<ExpertMove> incoming;  // ascending by expert
  std::vector<int> outgoing;         // ascending expert ids
};

struct RedistributionPlan {
  ExpertPlacement from, to;
  std::vector<ExpertMove> moves;
  std::vector<DeviceLayerPlan> per_device;  // ascending by (device, layer)

  std::vector<int> added_devices() const;    // in to, not in from
  std::vector<int> removed_devices() const;  // in from, not in to
  int64_t retained_count() const;            // (layer, expert) pairs that stay where they are
  int64_t moved_count() const { return static_cast<int64_t>(moves.size()); }
  // The entry of (device, layer), or null.
  const DeviceLayerPlan* Find(int device, int layer) const;
  Status Validate() const;
  std::string Summary() const;  // "2 -> 3 devices: 21 of 64 experts move, 43 retained"
};

// The plan from `from` to `to`. kInvalidArgument for invalid or differently shaped placements.
StatusOr<RedistributionPlan> PlanRedistribution(const ExpertPlacement& from,
                                                const ExpertPlacement& to);

}  // namespace emoe::experts

#endif  // EXPERTS_PLAN_H_
