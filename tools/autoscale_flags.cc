// emoe_server's autoscaler flags (autoscale_flags.h).
#include "tools/autoscale_flags.h"

#include <gflags/gflags.h>

#include "engine/scale_types.h"
#include "tools/flag_checks.h"

DEFINE_string(autoscale, "off",
              "the autoscaler: off (only --autoscale_log's samples, if given), slo (scale on "
              "SLO attainment and a learned capacity model), threshold (queue/KV marks, +-1, "
              "cooldowns: the AIBrix/KPA-style baseline)");
DEFINE_string(autoscale_method, "elastic",
              "the scale method of the autoscaler's events (POST /scale_elastic_ep's "
              "\"method\": elastic, cold-restart, horizontal, ...)");
DEFINE_int32(min_devices, 1, "the autoscaler never goes below this many devices, >= 1");
DEFINE_double(slo_ttft_ms, 2000, "the SLO on time to first token, ms (0: none)");
DEFINE_double(slo_tpot_ms, 200, "the SLO on time per output token, ms (0: none)");
DEFINE_double(slo_target, 0.9, "the share of requests that must meet the SLO, (0, 1]");
DEFINE_int32(autoscale_interval_ms, 1000, "a decision this often, 50..60000 ms");
DEFINE_double(autoscale_window_s, 10, "the sliding window of the SLO and rate signals, (0, 3600]");
DEFINE_double(autoscale_down_hold_s, 20,
              "slo: the load must fit in fewer devices this long before scaling down, "
              "[0, 86400]");
DEFINE_string(autoscale_log, "",
              "write every sample, decision and scale event here (JSON Lines; README "
              "\"Autoscaling\"); empty: none");

namespace emoe::tools {

namespace {

vmm::Status CheckDevices(int max_devices, int devices) {
  if (FLAGS_min_devices > max_devices) {
    return vmm::Status::InvalidArgument("--min_devices=" + std::to_string(FLAGS_min_devices) +
                                        ": the HMM has " + std::to_string(max_devices) +
                                        " devices (--max_devices)");
  }
  if (FLAGS_autoscale != "off" && devices < FLAGS_min_devices) {
    return vmm::Status::InvalidArgument(
        "--devices=" + std::to_string(devices) +
        " is below --min_devices=" + std::to_string(FLAGS_min_devices));
  }
  return vmm::Status::Ok();
}

}  // namespace

vmm::Status CheckAutoscaleFlags(int max_devices, int devices) {
  return FirstError({
      Named("autoscale", server::ParseAutoscaleMode(FLAGS_autoscale).status()),
      Named("autoscale_method", engine::ParseScaleOptions(FLAGS_autoscale_method).status()),
      IntIn("min_devices", FLAGS_min_devices, 1, 256),
      RealIn("slo_ttft_ms", FLAGS_slo_ttft_ms, 0, false, 1e9),
      RealIn("slo_tpot_ms", FLAGS_slo_tpot_ms, 0, false, 1e9),
      RealIn("slo_target", FLAGS_slo_target, 0, true, 1),
      IntIn("autoscale_interval_ms", FLAGS_autoscale_interval_ms, 50, 60000),
      RealIn("autoscale_window_s", FLAGS_autoscale_window_s, 0, true, 3600),
      RealIn("autoscale_down_hold_s", FLAGS_autoscale_down_hold_s, 0, false, 86400),
      CreatableFile("autoscale_log", FLAGS_autoscale_log),
      CheckDevices(max_devices, devices),
  });
}

vmm::StatusOr<server::AutoscalerConfig> AutoscalerConfigFromFlags(int max_devices, int devices) {
  server::AutoscalerConfig c;
  VMM_ASSIGN_OR_RETURN(c.policy.mode, server::ParseAutoscaleMode(FLAGS_autoscale));
  c.method = FLAGS_autoscale_method;
  c.log_path = FLAGS_autoscale_log;
  VMM_RETURN_IF_ERROR(CheckDevices(max_devices, devices));
  c.policy.min_devices = FLAGS_min_devices;
  c.policy.max_devices = max_devices;
  c.policy.slo_ttft_ms = FLAGS_slo_ttft_ms;
  c.policy.slo_tpot_ms = FLAGS_slo_tpot_ms;
  c.policy.target_attainment = FLAGS_slo_target;
  c.policy.interval_s = FLAGS_autoscale_interval_ms / 1e3;
  c.policy.sample_s = std::min(0.25, c.policy.interval_s);
  c.policy.window_s = FLAGS_autoscale_window_s;
  c.policy.down_hold_s = FLAGS_autoscale_down_hold_s;
  if (vmm::Status s = c.policy.Validate(); !s.ok()) {
    return vmm::Status::InvalidArgument("the autoscaler flags: " + s.message());
  }
  return c;
}

}  // namespace emoe::tools
