// The autoscaler's policy (server/autoscale_policy.h). PLACEHOLDER: holds; being written.
#include "server/autoscale_policy.h"

namespace emoe::server {

vmm::StatusOr<AutoscaleMode> ParseAutoscaleMode(const std::string& name) {
  if (name == "off") return AutoscaleMode::kOff;
  if (name == "slo") return AutoscaleMode::kSlo;
  if (name == "threshold") return AutoscaleMode::kThreshold;
  return vmm::Status::InvalidArgument("unknown autoscale mode '" + name +
                                      "' (off, slo, threshold)");
}

const char* AutoscaleModeName(AutoscaleMode mode) {
  switch (mode) {
    case AutoscaleMode::kSlo:
      return "slo";
    case AutoscaleMode::kThreshold:
      return "threshold";
    case AutoscaleMode::kOff:
      break;
  }
  return "off";
}

vmm::Status AutoscaleOptions::Validate() const { return vmm::Status::Ok(); }
void CapacityModel::Observe(const AutoscaleOptions&, const AutoscaleSignals&) {}
double CapacityModel::Capacity(const AutoscaleOptions&, int) const { return 0; }
int CapacityModel::DevicesFor(const AutoscaleOptions&, double, double, int current) const {
  return current;
}
double DemandTokensPerS(const AutoscaleOptions&, const AutoscaleSignals& s) {
  return s.tokens_per_s;
}
AutoscaleDecision Decide(const AutoscaleOptions&, const AutoscaleSignals& s, AutoscaleState*) {
  AutoscaleDecision d;
  d.target = s.devices;
  d.action = "hold";
  d.reason_kind = "steady";
  d.reason = "placeholder";
  return d;
}
void OnScaleEvent(AutoscaleState*, double, int, int, bool) {}
void OnManualScale(AutoscaleState*, double, int) {}

}  // namespace emoe::server
