// server/autoscale_policy.h: the autoscaler's policy (README "Autoscaling"): from what serving
// looks like (AutoscaleSignals, one sample) and what the policy remembers (AutoscaleState), how
// many devices to serve on (AutoscaleDecision). Pure: no clock, no threads, no I/O; the time is
// the signals' `t`. The runtime that samples the service and drives Coordinator::ScaleTo is
// server/autoscaler.h.
//
// Two policies:
//  - "slo" (ours): scale up when SLO attainment over the window falls below the target
//    (TTFT <= slo_ttft_ms and TPOT <= slo_tpot_ms) or the capacity model predicts it will (the
//    demand exceeds what the serving devices sustain at `headroom`), by as many devices as the
//    capacity model says the demand needs; scale down when the demand fits in fewer devices
//    with margin (at `headroom * down_margin` of their capacity), continuously for
//    `down_hold_s`, with attainment at target; never below min_devices, never above
//    max_devices.
//  - "threshold" (the baseline: AIBrix/Knative KPA style): +1 device when the queue per device
//    or the KV usage crosses its high mark, -1 when both are below their low marks; fixed
//    cooldowns after each event (up_cooldown_s, down_cooldown_s).
// Both: nothing while an event runs; after a refused or failed event, the same target is not
// asked again for `retry_s`; a manual scale (OnManualScale) is the new state (the hold and
// cooldown timers restart from it).
//
// The capacity model (CapacityModel): per device count d, the tokens per second d devices
// produce when busy all the time, learned from the samples (tokens_per_s / busy_fraction at a
// busy fraction high enough to trust, smoothed); counts never observed are interpolated between
// the observed ones around them, or extrapolated from the nearest observed one: upwards linearly
// in d times `scaling_efficiency` per added device, downwards linearly (no bonus: a smaller
// configuration is assumed no more efficient per device, the safe side for a scale-down).
//
// Thread safety: plain values and pure functions.
#ifndef SERVER_AUTOSCALE_POLICY_H_
#define SERVER_AUTOSCALE_POLICY_H_

#include <cstdint>
#include <deque>
#include <map>
#include <string>
#include <utility>

#include "vmm/status.h"

namespace emoe::server {

enum class AutoscaleMode { kOff, kSlo, kThreshold };
// "off", "slo", "threshold"; kInvalidArgument naming the choices otherwise.
vmm::StatusOr<AutoscaleMode> ParseAutoscaleMode(const std::string& name);
const char* AutoscaleModeName(AutoscaleMode mode);

struct AutoscaleOptions {
  AutoscaleMode mode = AutoscaleMode::kOff;
  int min_devices = 1;
  int max_devices = 1;
  double interval_s = 1.0;  // a decision this often (the runtime's clock)
  double sample_s = 0.25;   // a sample this often (the runtime's clock)
  double window_s = 10;     // the sliding window of the SLO and rate signals

  // slo
  double slo_ttft_ms = 2000;
  double slo_tpot_ms = 200;
  double target_attainment = 0.9;   // of the requests in the window
  int min_window_requests = 4;      // fewer: attainment is not judged (the capacity model is)
  double headroom = 0.8;            // plan to use at most this share of the capacity
  double down_margin = 0.75;        // scale down only when the demand fits in headroom*this
  double down_hold_s = 20;          // ... continuously for this long
  double up_hold_s = 0;             // attainment below target this long before scaling up
  double scaling_efficiency = 0.9;  // capacity of one more device, relative to linear
  double min_busy_to_learn = 0.5;   // samples at a lower busy fraction do not teach capacity

  // threshold
  double queue_high = 4;  // waiting requests per serving device
  double queue_low = 0.5;
  double kv_high = 0.8;
  double kv_low = 0.3;
  double up_cooldown_s = 10;
  double down_cooldown_s = 60;

  // both
  double retry_s = 10;  // after a refused or failed event, before asking the same again

  // kInvalidArgument naming the first field out of range (1 <= min <= max, intervals > 0,
  // attainment in (0, 1], headroom and margins in (0, 1], marks low < high, ...).
  vmm::Status Validate() const;
};

// One sample of serving, as the runtime saw it at time t (seconds, any monotonic clock).
struct AutoscaleSignals {
  double t = 0;
  int devices = 1;       // serving now
  bool scaling = false;  // a scale event is running (accepted and not yet answered)

  // The SLO over the window: requests finished in it plus running ones already past the TTFT
  // bound without a first token (they will miss whatever happens next).
  int64_t window_requests = 0;
  int64_t window_met = 0;
  double attainment() const {
    return window_requests > 0 ? static_cast<double>(window_met) / window_requests : 1.0;
  }
  double ttft_p90_s = 0;  // of the requests finished in the window (0: none)
  double tpot_p90_s = 0;

  int64_t running = 0;       // requests with KV (decoding)
  int64_t waiting = 0;       // queued, not yet admitted to a step
  double oldest_wait_s = 0;  // the longest a request in flight has waited for its first token
  double kv_usage = 0;       // 0..1 over the serving devices' KV stores

  // Over the window:
  double busy_fraction = 0;        // share of the time the serving devices were stepping, 0..1
  double tokens_per_s = 0;         // generated (prefill excluded)
  double prompt_tokens_per_s = 0;  // prefilled
  double arrivals_per_s = 0;       // requests admitted
  double mean_output_tokens = 0;   // of the requests finished in the window (0: none)
};

// Tokens/s at full busy, per device count.
struct CapacityModel {
  struct Entry {
    double tokens_per_busy_s = 0;  // smoothed
    int samples = 0;
  };
  std::map<int, Entry> observed;  // by device count

  // Learns from one sample (ignored while scaling or below min_busy_to_learn).
  void Observe(const AutoscaleOptions& o, const AutoscaleSignals& s);
  // Tokens/s `devices` devices sustain when always busy; 0 when nothing is known yet.
  double Capacity(const AutoscaleOptions& o, int devices) const;
  // The fewest devices in [min_devices, max_devices] whose Capacity * `utilization` is at
  // least `demand_tokens_per_s` (max_devices when none; the current count when nothing is
  // known).
  int DevicesFor(const AutoscaleOptions& o, double demand_tokens_per_s, double utilization,
                 int current) const;
};

// What the policy remembers between decisions.
struct AutoscaleState {
  CapacityModel capacity;
  double last_event_end_t = -1e300;  // the last scale event's (ours or manual) end
  double below_target_since = -1;    // attainment below target since (-1: not below)
  double fits_fewer_since = -1;      // the demand has fit in fewer devices since (-1: not)
  // The peak demand (tok/s) when the latency rule's down hold began: the latencies of finished
  // requests lag the load, so a demand that rises beyond its noise during the hold restarts the
  // hold from the new level (a down needs a whole hold of latencies measured at the demand it
  // would serve).
  double fits_fewer_demand = 0;
  int refused_target = 0;  // the target of the last refused/failed event
  double refused_t = -1e300;
  // (t, demand tok/s) of the decisions over the last window_s: a scale-down is judged on their
  // peak, so a trough of a noisy load does not pick the target.
  std::deque<std::pair<double, double>> recent_demand;
  // Anti-flap (slo): an up decided within 2 * the effective down hold of a down's end doubles
  // the down hold (up to 8x); a down that stands that long halves it again (down to 1x).
  double down_hold_scale = 1;
  bool last_down_settled = true;  // the last event, a down, has been credited (or was not a down)
  // (t, arrivals_per_s) of the decisions over the last window_s (slo): a jump of the windowed
  // arrival rate beyond its Poisson noise is projected to the current rate, so that a burst is
  // seen in one decision instead of over a whole window.
  std::deque<std::pair<double, double>> recent_arrivals;
  // The latency utilization of the last judged window (slo): max(TPOT p90 / slo_tpot, TTFT p90 /
  // slo_ttft) on latency_devices devices; -1: none yet. Carried across an event scaled by
  // latency_devices / devices (the work of a step spread over more or fewer devices).
  double latency_util = -1;
  int latency_devices = 0;
};

struct AutoscaleDecision {
  int target = 0;      // devices to serve on; == signals.devices: hold
  std::string action;  // "up", "down", "hold"
  // Why, in one line with the numbers that decided it, e.g. "attainment 0.71 < 0.90 over 10 s;
  // demand 412 tok/s needs 3 devices (capacity 171 tok/s per device at headroom 0.80)".
  std::string reason;
  // A short label of the reason for /metrics: "slo", "capacity", "fits_fewer", "queue", "kv",
  // "idle", "cooldown", "scaling", "retry", "bounds", "steady", "off".
  std::string reason_kind;
  double demand_tokens_per_s = 0;  // what the policy estimated (slo)
  int devices_needed = 0;          // by the capacity model (slo; 0: unknown)
};

// The demand the load puts on the devices, in generated tokens per second: what is generated
// now plus the backlog (waiting requests times their mean output) spread over the window.
double DemandTokensPerS(const AutoscaleOptions& o, const AutoscaleSignals& s);

// One decision. Updates `state` (timers, the capacity model). REQUIRES: o.Validate() ok.
AutoscaleDecision Decide(const AutoscaleOptions& o, const AutoscaleSignals& s,
                         AutoscaleState* state);

// A scale event ended at time t, from `from` to `to` devices; ok false: refused or rolled back
// (`to` is the target that was asked).
void OnScaleEvent(AutoscaleState* state, double t, int from, int to, bool ok);
// Someone else (POST /scale_elastic_ep) scaled to `devices` at time t: the new state.
void OnManualScale(AutoscaleState* state, double t, int devices);

}  // namespace emoe::server

#endif  // SERVER_AUTOSCALE_POLICY_H_
