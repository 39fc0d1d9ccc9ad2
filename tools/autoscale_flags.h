// tools/autoscale_flags.h: emoe_server's autoscaler flags (README "Autoscaling"):
//   --autoscale=off|slo|threshold   --autoscale_method=elastic (any scale method)
//   --min_devices  --slo_ttft_ms  --slo_tpot_ms  --slo_target  --autoscale_interval_ms
//   --autoscale_window_s  --autoscale_down_hold_s  --autoscale_log=FILE
// Each checked under its own name before anything starts.
#ifndef TOOLS_AUTOSCALE_FLAGS_H_
#define TOOLS_AUTOSCALE_FLAGS_H_

#include "server/autoscaler.h"
#include "vmm/status.h"

namespace emoe::tools {

// The flags' values (ranges, the mode and method names, the log's directory) and, for
// --max_devices and --devices as given, the device bounds (AutoscalerConfigFromFlags's).
vmm::Status CheckAutoscaleFlags(int max_devices, int devices);
// The autoscaler's configuration for an HMM of `max_devices` devices (its max_devices); a
// --min_devices above it, or --devices outside [--min_devices, max_devices] with the
// autoscaler on, is kInvalidArgument naming the flag.
vmm::StatusOr<server::AutoscalerConfig> AutoscalerConfigFromFlags(int max_devices, int devices);

}  // namespace emoe::tools

#endif  // TOOLS_AUTOSCALE_FLAGS_H_
