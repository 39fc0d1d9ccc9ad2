#include "engine/deployment.h"

#include <string>

namespace emoe::engine {

hbm::PlacementTable DeploymentTable(const std::vector<TensorSpec>& specs,
                                    const std::vector<int>& devices,
                                    const experts::ExpertPlacement& placement,
                                    const std::function<bool(const TensorSpec&, int)>& want) {
  auto wanted = [&](const TensorSpec& s, int d) { return !want || want(s, d); };
  hbm::PlacementTable table;
  for (const TensorSpec& s : specs) {
    hbm::PlacementDecision d;
    if (s.expert >= 0) {
      const int owner = placement.owner[s.layer][s.expert];
      if (wanted(s, owner)) {
        d.usage = hbm::Usage::kExperts;
        d.devices = {owner};
        d.group = "layer" + std::to_string(s.layer) + ".expert" + std::to_string(s.expert);
      }
    } else {
      for (int dev : devices) {
        if (wanted(s, dev)) d.devices.push_back(dev);
      }
    }
    if (!d.devices.empty()) table.emplace(s.name, std::move(d));
  }
  return table;
}

}  // namespace emoe::engine
