// experts/placement.h: which device of an instance owns which expert (expert parallelism).
//
// Thread safety: pure functions.
#ifndef EXPERTS_PLACEMENT_H_
#define EXPERTS_PLACEMENT_H_

#include <vector>

#include "vmm/status.h"

namespace emoe::experts {

// owner[e] = index (0..num_devices-1) of the device that computes expert e: experts dealt
// round-robin, so counts differ by at most one. kInvalidArgument for non-positive counts.
vmm::StatusOr<std::vector<int>> BalancedPlacement(int num_experts, int num_devices);

// Experts per device of a placement.
std::vector<int> ExpertsPerDevice(const std::vector<int>& owner, int num_devices);

}  // namespace emoe::experts

#endif  // EXPERTS_PLACEMENT_H_
