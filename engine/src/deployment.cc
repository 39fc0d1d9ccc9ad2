// Arena sizes and the placement rule (engine/deployment.h).
#include "engine/deployment.h"

#include <algorithm>
#include <map>
#include <string>

namespace emoe::engine {

namespace {

constexpr uint64_t kTensorSlackBytes = 8192;      // O_DIRECT alignment slack per tensor
constexpr uint64_t kWeightsSpareBytes = 4 << 20;  // beyond the non-expert tensors
constexpr uint64_t kExpertPageBytes = 2 << 20;    // an expert's extent, rounded up

}  // namespace

ArenaBytes ModelArenaBytes(const ModelConfig& config, const hbm::Checkpoint& checkpoint,
                           int num_devices) {
  std::map<std::string, int> expert_of;
  for (const TensorSpec& s : ExpectedTensors(config)) expert_of[s.name] = s.expert;
  uint64_t dense = 0, experts = 0;
  for (const hbm::TensorInfo& t : checkpoint.tensors) {
    auto it = expert_of.find(t.name);
    const bool expert = it != expert_of.end() && it->second >= 0;
    (expert ? experts : dense) += t.size_bytes + kTensorSlackBytes;
  }
  const uint64_t n = static_cast<uint64_t>(num_devices);
  ArenaBytes a;
  a.weights_bytes = dense + kWeightsSpareBytes;
  a.experts_bytes =
      experts / n + (config.num_experts / n + 1) * config.num_hidden_layers * kExpertPageBytes;
  return a;
}

vmm::StatusOr<uint64_t> KvBytesLeft(uint64_t device_capacity_bytes, uint64_t model_bytes,
                                    uint64_t max_kv_bytes) {
  if (device_capacity_bytes <= model_bytes + (1 << 20)) {
    return vmm::Status::ResourceExhausted("the weights need " + std::to_string(model_bytes >> 20) +
                                          " MiB per device, leaving no KV memory in a device of " +
                                          std::to_string(device_capacity_bytes >> 20) + " MiB");
  }
  return std::min<uint64_t>(device_capacity_bytes - model_bytes, max_kv_bytes);
}

hbm::PlacementTable DeploymentTable(const std::vector<TensorSpec>& specs,
                                    const std::vector<int>& devices,
                                    const experts::ExpertPlacement& placement,
                                    const std::function<bool(const TensorSpec&, int)>& want) {
  auto wanted = [&](const TensorSpec& s, int device) { return !want || want(s, device); };
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
