#include "experts/placement.h"

#include <string>

namespace emoe::experts {

vmm::StatusOr<std::vector<int>> BalancedPlacement(int num_experts, int num_devices) {
  if (num_experts <= 0 || num_devices <= 0) {
    return vmm::Status::InvalidArgument("placement of " + std::to_string(num_experts) +
                                        " experts on " + std::to_string(num_devices) + " devices");
  }
  std::vector<int> owner(num_experts);
  for (int e = 0; e < num_experts; ++e) owner[e] = e % num_devices;
  return owner;
}

std::vector<int> ExpertsPerDevice(const std::vector<int>& owner, int num_devices) {
  std::vector<int> n(num_devices, 0);
  for (int d : owner) {
    if (d >= 0 && d < num_devices) ++n[d];
  }
  return n;
}

}  // namespace emoe::experts
