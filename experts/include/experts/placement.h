// experts/placement.h: which device owns which expert of each layer (expert parallelism), and
// how a placement changes when the device set does.
//
// Devices are HMM device ids (not instance ranks): a placement survives a change of the device
// set, and a redistribution plan (experts/plan.h) compares two placements by device id.
//
// Invariants (ExpertPlacement::Validate):
//  1. `devices` is non-empty, strictly ascending, and has no negative ids.
//  2. owner has num_layers rows of num_experts entries, every one a member of `devices`.
//  3. Balanced placements (Initial/Rebalance) give every device floor(E/N) or ceil(E/N) experts
//     in every layer.
//
// Thread safety: pure functions and value types.
#ifndef EXPERTS_PLACEMENT_H_
#define EXPERTS_PLACEMENT_H_

#include <string>
#include <vector>

#include "vmm/status.h"

namespace emoe::experts {

using vmm::Status;
using vmm::StatusOr;

// owner[e] = index (0..num_devices-1) of the device that computes expert e: experts dealt
// round-robin, so counts differ by at most one. kInvalidArgument for non-positive counts.
vmm::StatusOr<std::vector<int>> BalancedPlacement(int num_experts, int num_devices);

// Experts per device of a placement.
std::vector<int> ExpertsPerDevice(const std::vector<int>& owner, int num_devices);

struct ExpertPlacement {
  std::vector<int> devices;             // the device set, ascending
  std::vector<std::vector<int>> owner;  // [layer][expert] -> device id (a member of `devices`)

  int num_layers() const { return static_cast<int>(owner.size()); }
  int num_experts() const { return owner.empty() ? 0 : static_cast<int>(owner[0].size()); }
  // The experts `device` owns in `layer`, ascending: slot i of the device's slot range holds
  // LocalExperts(layer, device)[i].
  std::vector<int> LocalExperts(int layer, int device) const;
  // Count of experts per device in `layer`, in the order of `devices`.
  std::vector<int> Counts(int layer) const;
  Status Validate() const;       // invariants 1 and 2, naming the first violation
  std::string ToString() const;  // "dev0:[0,2,4] dev1:[1,3,5]" for layer 0 (+ "layers differ")
};

// Round-robin over `devices` (sorted first): expert e of every layer -> devices[e % N].
// kInvalidArgument for no layers, no experts, no devices, duplicate or negative device ids.
StatusOr<ExpertPlacement> InitialPlacement(int num_layers, int num_experts,
                                           std::vector<int> devices);

// A balanced placement over `new_devices` that moves as few experts as possible from `prev`:
// per layer, every device of the new set gets floor(E/N) or ceil(E/N) experts (the extra ones go
// to the devices that already hold the most, ties to the lower id); a device that stays keeps
// its lowest-numbered experts up to its target; experts of removed devices and the excess of
// over-full devices go, in ascending expert id, to the devices below target in ascending id.
// The result is deterministic. Same errors as InitialPlacement, and kInvalidArgument for an
// invalid `prev`.
StatusOr<ExpertPlacement> Rebalance(const ExpertPlacement& prev, std::vector<int> new_devices);

}  // namespace emoe::experts

#endif  // EXPERTS_PLACEMENT_H_
