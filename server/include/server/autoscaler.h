// server/autoscaler.h: the autoscaler's runtime (README "Autoscaling"): a thread that samples
// serving every `sample_s` (AutoscaleSignals from the service), decides every `interval_s`
// (server/autoscale_policy.h's Decide), starts the scale events it decides through the same
// path as POST /scale_elastic_ep (the service's scale thread, one event at a time), and writes
// every sample, decision and event to a JSON Lines log and to /metrics.
//
// Mode off: samples and logs only (the log then records the load, the devices and the manual
// events of a static run). A refused or rolled-back event is logged and given to the policy
// (OnScaleEvent: not asked again before retry_s); an event someone else ran (a manual POST
// /scale_elastic_ep) is the new state (OnManualScale).
//
// The log (one JSON object per line, "unix_s" the wall clock):
//   {"kind":"start","unix_s","mode","method","min_devices","max_devices","slo_ttft_ms",
//    "slo_tpot_ms","target_attainment","interval_s","sample_s","window_s"}
//   {"kind":"sample","unix_s","devices","scaling","attainment" (null: no request in the window),
//    "window_requests","ttft_p90_s","tpot_p90_s","running","waiting","oldest_wait_s",
//    "kv_usage","busy","tokens_per_s","prompt_tokens_per_s","arrivals_per_s"}
//   {"kind":"decision","unix_s","devices","target","action","reason","reason_kind",
//    "demand_tokens_per_s","devices_needed","started" (an event was started for it),
//    "error" (why it could not be started; "" otherwise), "inputs" (the sample's fields)}
//   {"kind":"event","unix_s" (its end),"start_unix_s","from","to","method","source"
//    ("autoscaler" | "manual"),"outcome" ("ok" | "refused" | "failed"),"latency_s",
//    "downtime_s","error"}
//
// Thread safety: Start/Stop from one thread; OnScaleEvent and the accessors from any thread.
// The hooks are called on the autoscaler's thread, never with its mutex held.
#ifndef SERVER_AUTOSCALER_H_
#define SERVER_AUTOSCALER_H_

#include <cstdio>
#include <functional>
#include <string>
#include <thread>

#include "server/autoscale_policy.h"
#include "server/metrics.h"
#include "vmm/mutex.h"
#include "vmm/status.h"

namespace emoe::server {

struct AutoscalerConfig {
  AutoscaleOptions policy;
  std::string method = "elastic";  // the events' method (engine::ParseScaleOptions' names)
  std::string log_path;            // JSON Lines; empty: no log
};

// One scale event as it ended (any source).
struct ScaleEventRecord {
  double start_unix_s = 0, end_unix_s = 0;
  int from = 0, to = 0;  // devices before, and the target asked
  std::string method, source, outcome, error;
  double latency_s = 0, downtime_s = 0;
};

class Autoscaler {
 public:
  struct Hooks {
    std::function<double()> clock;  // monotonic seconds (the signals' t)
    std::function<AutoscaleSignals(double now)> sample;
    // Starts an event to `target` (returns at once; its end comes to OnScaleEvent); false with
    // the reason when none could start (another running, the server stopping).
    std::function<bool(int target, std::string* why)> scale;
  };

  // `metrics` (not owned) gets the autoscaler's series; may be null.
  Autoscaler(AutoscalerConfig config, Hooks hooks, Registry* metrics);
  ~Autoscaler();  // Stop(), then the log is closed
  Autoscaler(const Autoscaler&) = delete;
  Autoscaler& operator=(const Autoscaler&) = delete;

  // Opens the log (kInvalidArgument/kUnavailable naming the path when it cannot) and starts
  // the thread. REQUIRES: config.policy.Validate() ok; called once.
  vmm::Status Start() EXCLUDES(mu_);
  // Ends the thread: no sample or decision after it; events that end later are still logged
  // (the service's scale thread). Idempotent.
  void Stop() EXCLUDES(mu_);

  // A scale event ended (the service's scale thread).
  void OnScaleEvent(const ScaleEventRecord& e) EXCLUDES(mu_);

  AutoscaleDecision last_decision() const EXCLUDES(mu_);
  const AutoscalerConfig& config() const { return config_; }

 private:
  void Loop() EXCLUDES(mu_);
  void Tick(double now, bool decide) EXCLUDES(mu_);
  void Log(const std::string& line) REQUIRES(mu_);
  void Metrics(const AutoscaleSignals& s, const AutoscaleDecision* d);

  const AutoscalerConfig config_;
  const Hooks hooks_;
  Registry* const metrics_;

  mutable vmm::Mutex mu_;
  vmm::CondVar cv_;
  bool stop_ GUARDED_BY(mu_) = false;
  bool started_ GUARDED_BY(mu_) = false;
  AutoscaleState state_ GUARDED_BY(mu_);
  AutoscaleDecision last_ GUARDED_BY(mu_);
  FILE* log_ GUARDED_BY(mu_) = nullptr;
  std::thread thread_;
};

}  // namespace emoe::server

#endif  // SERVER_AUTOSCALER_H_
