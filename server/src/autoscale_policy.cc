// The autoscaler's policy (server/autoscale_policy.h).
//
// The slo policy, one decision:
//  1. Learn: the capacity model observes the sample, unless a scale event runs or the last one
//     ended less than window_s ago (the window's rates still mix the old configuration in).
//  2. Demand (DemandTokensPerS): what is generated (or offered: arrivals times mean output,
//     whichever is larger) plus the backlog spread over the window; when the queue is behind
//     (a request has waited a quarter of the TTFT bound) also the generation plus the rate at
//     which the backlog grew (waiting tokens over the oldest wait): saturated, the observed
//     tokens/s is the capacity, the queue's growth is what it misses. A burst: when the
//     windowed arrival rate jumps by more than 5 sigmas of its Poisson noise in one interval,
//     the last interval's rate is projected from the jump (the window would show it only
//     gradually, over window_s).
//  3. Up when the attainment is judged and below target for up_hold_s (to max(current + 1,
//     what the model says)), or when the model says the demand needs more devices than serve at
//     `headroom` (to that count). Attainment is judged only with min_window_requests in the
//     window and only once a whole window has passed since the last event's end: until then the
//     window still holds the old configuration's misses, and the capacity model decides alone.
//  4. Down when the peak demand of the last window, raised by 1.5 sigmas of the arrivals'
//     Poisson noise, fits fewer devices at headroom*down_margin, with attainment at target (or
//     not judged) and the queue not behind, continuously for down_hold_s (times the anti-flap
//     scale), to the fewest devices that fits. Nothing learned yet (the load never made the
//     devices busy enough): the busy fraction scaled linearly to fewer devices decides the down
//     (never an up). The band between headroom*down_margin and headroom is the hysteresis: a
//     steady load inside it neither scales up nor down.
//  5. Anti-flap: an up within 2 down holds of a down's end doubles the down hold (up to 8x); a
//     down that stands that long halves it again.
// Manual scales (OnManualScale) restart the timers: no down for down_hold_s after one, no
// attainment judged for window_s; the capacity model still scales up at once when the demand
// exceeds what the manual count sustains at headroom (the SLO first).
// Both policies: nothing while an event runs; counts outside [min, max] are brought inside at
// once ("bounds"); after a refused or rolled-back event to R, no target as far as R in the same
// direction is asked for retry_s ("retry").
#include "server/autoscale_policy.h"

#include <algorithm>
#include <cmath>
#include <cstdarg>
#include <cstdio>

namespace emoe::server {
namespace {

constexpr double kBehindShareOfTtft = 0.25;  // a wait this share of the TTFT bound: behind
constexpr double kLearnAlphaMin = 0.1;       // EWMA weight once 10 samples are in
constexpr double kMaxDownHoldScale = 8;
constexpr double kFlapWindowHolds = 2;  // an up within this many down holds of a down: a flap
// A jump of the arrival rate this many sigmas of its Poisson noise is a burst (5: about one
// false alarm in 3 million decisions; 3 gave several a half hour on Poisson arrivals).
constexpr double kJumpSigmas = 5;
constexpr double kDownNoiseSigmas = 1.5;  // a down is judged on the demand plus this much noise
// A latency hold restarts when the peak demand rises this many sigmas of its noise (and at least
// kMinRise) above its level at the hold's start.
constexpr double kRiseSigmas = 3;
constexpr double kMinRise = 0.1;

std::string Format(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
std::string Format(const char* fmt, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof(buf), fmt, ap);
  va_end(ap);
  return buf;
}

// "1 device", "3 devices".
std::string Devices(int n) { return Format("%d device%s", n, n == 1 ? "" : "s"); }

AutoscaleDecision Make(const AutoscaleSignals& s, int target, const char* kind,
                       std::string reason) {
  AutoscaleDecision d;
  d.target = target;
  d.action = target > s.devices ? "up" : target < s.devices ? "down" : "hold";
  d.reason_kind = kind;
  d.reason = std::move(reason);
  return d;
}

AutoscaleDecision Hold(const AutoscaleSignals& s, const char* kind, std::string reason) {
  return Make(s, s.devices, kind, std::move(reason));
}

double OutputTokensPerRequest(const AutoscaleSignals& s) {
  if (s.mean_output_tokens > 0) return s.mean_output_tokens;
  if (s.arrivals_per_s > 0 && s.tokens_per_s > 0) return s.tokens_per_s / s.arrivals_per_s;
  return 0;
}

bool QueueBehind(const AutoscaleOptions& o, const AutoscaleSignals& s) {
  // Without a TTFT bound (0), a second of waiting for a first token is behind.
  const double bound_s = o.slo_ttft_ms > 0 ? o.slo_ttft_ms / 1000 : 1 / kBehindShareOfTtft;
  return s.waiting > 0 && s.oldest_wait_s >= kBehindShareOfTtft * bound_s;
}

// What one slo decision sees.
struct View {
  double demand = 0;        // tok/s, this sample
  double projected = 0;     // tok/s the last interval's arrivals ask for (0: no jump)
  double peak_demand = 0;   // tok/s, the peak over the last window (this sample included)
  bool known = false;       // the capacity model has observed something
  double capacity_now = 0;  // tok/s the serving devices sustain when always busy
  int needed = 0;           // by the model at headroom (0: unknown)
  bool judged = false;      // attainment judged (enough requests, a window since the event)
  bool below = false;       // judged and below target
  bool behind = false;      // the queue is behind
  std::string attainment;   // "attainment 0.95 over 57 requests" or why not judged
  // The latency utilization (LatencyUtil) on the serving devices; < 0: not known.
  double latency_util = -1;
  std::string latency;  // its text, "" when not known
};

// How close the served requests' latencies are to the SLO: max(TPOT p90 / slo_tpot, TTFT p90 /
// slo_ttft) over the bounds that are set, from the window when it is judged (and recorded), or
// else the last judged one's scaled to the devices now (a step's work spread over them: the
// latency of the same load goes as 1 / devices); < 0 when none is known. This sees what the
// busy fraction cannot: a device whose step time hardly grows with the batch (memory-bound
// decode, a compute share's idle) is busy all the time at any load, while its latencies tell
// how much more load the SLO allows.
double LatencyUtil(const AutoscaleOptions& o, const AutoscaleSignals& s, bool judged,
                   AutoscaleState* st, std::string* text) {
  double util = -1;
  if (judged) {
    if (o.slo_tpot_ms > 0 && s.tpot_p90_s > 0) util = s.tpot_p90_s * 1e3 / o.slo_tpot_ms;
    if (o.slo_ttft_ms > 0 && s.ttft_p90_s > 0) {
      util = std::max(util, s.ttft_p90_s * 1e3 / o.slo_ttft_ms);
    }
  }
  if (util >= 0) {
    st->latency_util = util;
    st->latency_devices = s.devices;
    *text = Format("latency p90 TTFT %.0f ms, TPOT %.0f ms: %.2f of the SLO", s.ttft_p90_s * 1e3,
                   s.tpot_p90_s * 1e3, util);
    return util;
  }
  if (st->latency_util < 0 || st->latency_devices <= 0) return -1;
  util = st->latency_util * st->latency_devices / std::max(1, s.devices);
  *text = Format("latency %.2f of the SLO on %s (last judged window), %.2f on %s", st->latency_util,
                 Devices(st->latency_devices).c_str(), util, Devices(s.devices).c_str());
  return util;
}

// The fewest devices (in [min, max]) whose latency utilization would be at most `at`.
int DevicesForLatency(const AutoscaleOptions& o, const AutoscaleSignals& s, double util,
                      double at) {
  const int n = static_cast<int>(std::ceil(util * s.devices / at - 1e-9));
  return std::clamp(n, o.min_devices, o.max_devices);
}

// The arrival rate of the last decision interval, when it rose beyond the Poisson noise of a
// difference of two interval counts (kJumpSigmas): the window of W seconds changed by
// (recent - dropped) * dt / W, so recent = dropped + W * dA / dt, with the dropped interval's
// rate taken as the lowest windowed rate of the last window (the rate before a rise; low on a
// ramp, so the projection errs low). 0: no significant rise. Records this decision's rate.
double ProjectedArrivalsPerS(const AutoscaleOptions& o, const AutoscaleSignals& s,
                             AutoscaleState* st) {
  auto& recent = st->recent_arrivals;
  double projected = 0;
  if (!recent.empty()) {
    const double dt = s.t - recent.back().first;
    const double jump = o.window_s * (s.arrivals_per_s - recent.back().second) / dt;
    const double sigma = std::sqrt(2 * std::max(s.arrivals_per_s, 1.0) / dt);
    if (dt > 0 && dt <= 2 * o.interval_s && jump > kJumpSigmas * sigma) {
      double dropped = recent.back().second;
      for (const auto& ta : recent) dropped = std::min(dropped, ta.second);
      projected = dropped + jump;
    }
  }
  recent.emplace_back(s.t, s.arrivals_per_s);
  while (!recent.empty() && recent.front().first <= s.t - o.window_s) recent.pop_front();
  return projected;
}

View See(const AutoscaleOptions& o, const AutoscaleSignals& s, double projected_arrivals_per_s,
         AutoscaleState* st) {
  View v;
  v.demand = DemandTokensPerS(o, s);
  const double out = OutputTokensPerRequest(s);
  if (projected_arrivals_per_s > 0 && out > 0) {
    v.projected = projected_arrivals_per_s * out;
    v.demand = std::max(v.demand, v.projected + static_cast<double>(s.waiting) * out / o.window_s);
  }
  auto& recent = st->recent_demand;
  recent.emplace_back(s.t, v.demand);
  while (!recent.empty() && recent.front().first <= s.t - o.window_s) recent.pop_front();
  for (const auto& td : recent) v.peak_demand = std::max(v.peak_demand, td.second);
  v.known = !st->capacity.observed.empty();
  v.capacity_now = st->capacity.Capacity(o, s.devices);
  v.needed = v.known ? st->capacity.DevicesFor(o, v.demand, o.headroom, s.devices) : 0;
  v.behind = QueueBehind(o, s);
  double since_event = s.t - st->last_event_end_t;
  if (since_event < o.window_s) {
    v.attainment = Format("attainment not judged: %.1f s since the last scale event < window %g s",
                          since_event, o.window_s);
  } else if (s.window_requests < o.min_window_requests) {
    v.attainment = Format("attainment not judged: %lld requests in the window < %d",
                          static_cast<long long>(s.window_requests), o.min_window_requests);
  } else {
    v.judged = true;
    v.below = s.attainment() < o.target_attainment;
    v.attainment = Format("attainment %.2f %s %.2f over %lld requests in the %g s window",
                          s.attainment(), v.below ? "<" : ">=", o.target_attainment,
                          static_cast<long long>(s.window_requests), o.window_s);
  }
  v.latency_util = LatencyUtil(o, s, v.judged, st, &v.latency);
  if (!v.latency.empty()) v.attainment += "; " + v.latency;
  return v;
}

std::string CapacityText(const AutoscaleOptions& o, const View& v, const AutoscaleSignals& s) {
  std::string demand = Format("demand %.0f tok/s", v.demand);
  if (v.projected > 0) demand += Format(" (arrivals jumped: %.0f tok/s)", v.projected);
  if (!v.known) return demand + "; capacity not learned yet";
  return demand + Format(" needs %s (%d sustain %.0f tok/s, %.0f at headroom %.2f)",
                         Devices(v.needed).c_str(), s.devices, v.capacity_now,
                         v.capacity_now * o.headroom, o.headroom);
}

// The down half of the slo policy (no up was wanted).
AutoscaleDecision SloDown(const AutoscaleOptions& o, const AutoscaleSignals& s, const View& v,
                          AutoscaleState* st) {
  const double util = o.headroom * o.down_margin;
  const bool idle = v.peak_demand <= 0 && s.running == 0 && s.waiting == 0;
  // The windowed rates count n arrivals: their Poisson noise is 1/sqrt(n) relative. A down is
  // judged on the peak raised by kDownNoiseSigmas of it, so that noise alone does not scale down.
  const double arrivals = s.arrivals_per_s * o.window_s;
  const double noise = arrivals >= 1 ? kDownNoiseSigmas / std::sqrt(arrivals) : 0;
  const double peak = v.peak_demand * (1 + noise);
  int fewer = s.devices;
  std::string unlearned;
  const bool by_latency = v.latency_util >= 0 && !idle;
  if (by_latency) {
    fewer = std::min(s.devices, DevicesForLatency(o, s, v.latency_util, util));
  } else if (v.known) {
    fewer = st->capacity.DevicesFor(o, peak, util, s.devices);
  } else if (idle) {
    fewer = o.min_devices;
  } else if (s.busy_fraction > 0 && s.tokens_per_s > 0) {
    // Nothing learned (the load never kept the devices busy enough to trust): the busy
    // fraction at the peak demand, scaled linearly to fewer devices. A busy fraction at a small
    // batch overstates the work (the safe side for a scale-down); it is never used for an up.
    const double busy = s.busy_fraction * std::max(1.0, peak / s.tokens_per_s);
    fewer = std::clamp(static_cast<int>(std::ceil(busy * s.devices / util - 1e-9)), o.min_devices,
                       s.devices);
    unlearned = Format("busy %.2f on %s at the peak demand, %.2f on %s (linear); ", busy,
                       Devices(s.devices).c_str(), busy * s.devices / std::max(1, fewer),
                       Devices(fewer).c_str());
  }
  const std::string base = unlearned + CapacityText(o, v, s) + "; " + v.attainment;
  if (fewer >= s.devices || v.below || v.behind) {
    st->fits_fewer_since = -1;
    return Hold(s, "steady", base);
  }
  // The demand's rise that restarts a latency hold: kRiseSigmas of the arrivals' noise, at least
  // kMinRise.
  const double rise = std::max(kMinRise, noise * kRiseSigmas / kDownNoiseSigmas);
  std::string restarted;
  if (st->fits_fewer_since < 0) {
    st->fits_fewer_since = s.t;
    st->fits_fewer_demand = v.peak_demand;
  } else if (by_latency && v.peak_demand > st->fits_fewer_demand * (1 + rise)) {
    restarted = Format(
        "demand rose from %.0f to %.0f tok/s (> +%.0f%%) during the hold: the "
        "latencies lag it, the hold restarts; ",
        st->fits_fewer_demand, v.peak_demand, 100 * rise);
    st->fits_fewer_since = s.t;
    st->fits_fewer_demand = v.peak_demand;
  }
  const double hold_s = o.down_hold_s * st->down_hold_scale;
  const double held_s = s.t - st->fits_fewer_since;
  std::string fits =
      by_latency
          ? restarted + Format("the latency would be %.2f of the SLO on %s (<= %.2f)",
                               v.latency_util * s.devices / fewer, Devices(fewer).c_str(), util)
          : Format(
                "peak demand %.0f tok/s over %g s (%.0f with +%.0f%% noise) fits %s at %.2f "
                "of their %.0f tok/s",
                v.peak_demand, o.window_s, peak, 100 * noise, Devices(fewer).c_str(), util,
                st->capacity.Capacity(o, fewer));
  if (held_s < hold_s) {
    return Hold(s, "steady",
                Format("%s for %.1f s of the %.0f s hold; ", fits.c_str(), held_s, hold_s) += base);
  }
  return Make(s, fewer, idle ? "idle" : "fits_fewer",
              Format("%s for %.1f s (hold %.0f s); ", fits.c_str(), held_s, hold_s) += base);
}

AutoscaleDecision DecideSlo(const AutoscaleOptions& o, const AutoscaleSignals& s,
                            double projected_arrivals_per_s, AutoscaleState* st) {
  const View v = See(o, s, projected_arrivals_per_s, st);
  if (!v.below) {
    st->below_target_since = -1;
  } else if (st->below_target_since < 0) {
    st->below_target_since = s.t;
  }
  const bool slo_up = v.below && s.t - st->below_target_since >= o.up_hold_s;
  // Where the latencies are known they say how much room the SLO leaves; the learned capacity
  // (tokens per busy second) then decides an up only with the queue behind.
  const int latency_needed =
      v.latency_util >= 0 ? DevicesForLatency(o, s, v.latency_util, o.headroom) : 0;
  const bool latency_up = latency_needed > s.devices;
  const bool capacity_up = latency_up || (v.needed > s.devices && (v.latency_util < 0 || v.behind));
  const int model_needed =
      std::max(latency_up ? latency_needed : 0, v.latency_util < 0 || v.behind ? v.needed : 0);
  AutoscaleDecision d;
  if (slo_up || capacity_up) {
    st->fits_fewer_since = -1;
    int target = slo_up ? std::max(s.devices + 1, model_needed) : model_needed;
    target = std::min(target, o.max_devices);
    std::string why = slo_up ? v.attainment + "; " + CapacityText(o, v, s)
                             : CapacityText(o, v, s) + "; " + v.attainment;
    if (target <= s.devices) {
      d = Hold(s, "bounds", Format("at max_devices %d: ", o.max_devices) += why);
    } else {
      d = Make(s, target, slo_up ? "slo" : "capacity", why);
    }
  } else {
    std::string wait;
    if (v.below) {
      wait = Format("attainment below target for %.1f s of up_hold_s %g s; ",
                    s.t - st->below_target_since, o.up_hold_s);
    }
    d = SloDown(o, s, v, st);
    if (!wait.empty()) d.reason = wait + d.reason;
  }
  d.demand_tokens_per_s = v.demand;
  d.devices_needed = v.needed;
  return d;
}

AutoscaleDecision DecideThreshold(const AutoscaleOptions& o, const AutoscaleSignals& s,
                                  const AutoscaleState& st) {
  const double queue = static_cast<double>(s.waiting) / std::max(1, s.devices);
  const double since_event = s.t - st.last_event_end_t;
  const std::string marks =
      Format("queue %.2f per device (marks %g/%g), KV usage %.2f (marks %.2f/%.2f)", queue,
             o.queue_low, o.queue_high, s.kv_usage, o.kv_low, o.kv_high);
  const bool up_queue = queue > o.queue_high;
  if (up_queue || s.kv_usage > o.kv_high) {
    const char* kind = up_queue ? "queue" : "kv";
    if (s.devices >= o.max_devices) {
      return Hold(s, "bounds", Format("at max_devices %d: ", o.max_devices) += marks);
    }
    if (since_event < o.up_cooldown_s) {
      return Hold(s, "cooldown",
                  Format("up cooldown: %.1f s since the last event < %g s; ", since_event,
                         o.up_cooldown_s) += marks);
    }
    return Make(s, s.devices + 1, kind,
                std::string(up_queue ? "queue" : "KV usage") += " above its high mark: " + marks);
  }
  if (queue < o.queue_low && s.kv_usage < o.kv_low && s.devices > o.min_devices) {
    if (since_event < o.down_cooldown_s) {
      return Hold(s, "cooldown",
                  Format("down cooldown: %.1f s since the last event < %g s; ", since_event,
                         o.down_cooldown_s) += marks);
    }
    return Make(s, s.devices - 1, "idle", "queue and KV usage below their low marks: " + marks);
  }
  return Hold(s, "steady", marks);
}

// A target the last refusal forbids for now: as far as the refused one, in its direction.
bool RetryBlocks(const AutoscaleOptions& o, const AutoscaleSignals& s, const AutoscaleState& st,
                 int target) {
  if (st.refused_target <= 0 || s.t - st.refused_t >= o.retry_s) return false;
  if (st.refused_target > s.devices) return target >= st.refused_target;
  if (st.refused_target < s.devices) return target <= st.refused_target;
  return false;
}

// Anti-flap bookkeeping before an slo decision, and after an up one.
void SettleLastDown(const AutoscaleOptions& o, const AutoscaleSignals& s, AutoscaleState* st) {
  const double window = kFlapWindowHolds * o.down_hold_s * st->down_hold_scale;
  if (!st->last_down_settled && s.t - st->last_event_end_t >= window) {
    st->down_hold_scale = std::max(1.0, st->down_hold_scale / 2);
    st->last_down_settled = true;
  }
}
void NoteUp(const AutoscaleOptions& o, const AutoscaleSignals& s, AutoscaleState* st) {
  const double window = kFlapWindowHolds * o.down_hold_s * st->down_hold_scale;
  if (!st->last_down_settled && s.t - st->last_event_end_t < window) {
    st->down_hold_scale = std::min(kMaxDownHoldScale, st->down_hold_scale * 2);
    st->last_down_settled = true;
  }
}

struct Check {
  bool ok;
  const char* field;
  double value;
  const char* rule;
};

}  // namespace

vmm::StatusOr<AutoscaleMode> ParseAutoscaleMode(const std::string& name) {
  if (name == "off") return AutoscaleMode::kOff;
  if (name == "slo") return AutoscaleMode::kSlo;
  if (name == "threshold") return AutoscaleMode::kThreshold;
  return vmm::Status::InvalidArgument(std::string("unknown autoscale mode '") +=
                                      name + "' (off, slo, threshold)");
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

vmm::Status AutoscaleOptions::Validate() const {
  auto pos = [](double x) { return std::isfinite(x) && x > 0; };
  auto nonneg = [](double x) { return std::isfinite(x) && x >= 0; };
  auto unit = [](double x) { return std::isfinite(x) && x > 0 && x <= 1; };
  const Check checks[] = {
      {min_devices >= 1, "min_devices", double(min_devices), "must be >= 1"},
      {max_devices >= min_devices, "max_devices", double(max_devices), "must be >= min_devices"},
      {pos(interval_s), "interval_s", interval_s, "must be > 0"},
      {pos(sample_s), "sample_s", sample_s, "must be > 0"},
      {pos(window_s) && window_s >= sample_s, "window_s", window_s, "must be >= sample_s > 0"},
      {nonneg(slo_ttft_ms), "slo_ttft_ms", slo_ttft_ms, "must be >= 0 (0: no bound)"},
      {nonneg(slo_tpot_ms), "slo_tpot_ms", slo_tpot_ms, "must be >= 0 (0: no bound)"},
      {unit(target_attainment), "target_attainment", target_attainment, "must be in (0, 1]"},
      {min_window_requests >= 1, "min_window_requests", double(min_window_requests),
       "must be >= 1"},
      {unit(headroom), "headroom", headroom, "must be in (0, 1]"},
      {unit(down_margin) && down_margin < 1, "down_margin", down_margin,
       "must be in (0, 1) (1 leaves no hysteresis band)"},
      {nonneg(down_hold_s), "down_hold_s", down_hold_s, "must be >= 0"},
      {nonneg(up_hold_s), "up_hold_s", up_hold_s, "must be >= 0"},
      {unit(scaling_efficiency), "scaling_efficiency", scaling_efficiency, "must be in (0, 1]"},
      {unit(min_busy_to_learn), "min_busy_to_learn", min_busy_to_learn, "must be in (0, 1]"},
      {nonneg(queue_low), "queue_low", queue_low, "must be >= 0"},
      {std::isfinite(queue_high) && queue_high > queue_low, "queue_high", queue_high,
       "must be > queue_low"},
      {nonneg(kv_low), "kv_low", kv_low, "must be >= 0"},
      {std::isfinite(kv_high) && kv_high > kv_low && kv_high <= 1, "kv_high", kv_high,
       "must be in (kv_low, 1]"},
      {nonneg(up_cooldown_s), "up_cooldown_s", up_cooldown_s, "must be >= 0"},
      {nonneg(down_cooldown_s), "down_cooldown_s", down_cooldown_s, "must be >= 0"},
      {nonneg(retry_s), "retry_s", retry_s, "must be >= 0"},
  };
  for (const Check& c : checks) {
    if (!c.ok) {
      return vmm::Status::InvalidArgument(
          Format("autoscale option %s = %g: %s", c.field, c.value, c.rule));
    }
  }
  return vmm::Status::Ok();
}

void CapacityModel::Observe(const AutoscaleOptions& o, const AutoscaleSignals& s) {
  if (s.scaling || s.devices < 1 || !(s.busy_fraction >= o.min_busy_to_learn) ||
      !(s.tokens_per_s > 0) || !std::isfinite(s.tokens_per_s)) {
    return;
  }
  const double x = s.tokens_per_s / std::min(1.0, s.busy_fraction);
  Entry& e = observed[s.devices];
  const double alpha = std::max(1.0 / (e.samples + 1), kLearnAlphaMin);
  e.tokens_per_busy_s += alpha * (x - e.tokens_per_busy_s);
  ++e.samples;
}

double CapacityModel::Capacity(const AutoscaleOptions& o, int devices) const {
  if (observed.empty() || devices < 1) return 0;
  auto hi = observed.lower_bound(devices);
  if (hi != observed.end() && hi->first == devices) return hi->second.tokens_per_busy_s;
  if (hi == observed.end()) {  // above every observed count: + efficiency per added device
    auto n = std::prev(hi);
    const double per_device = n->second.tokens_per_busy_s / n->first;
    return n->second.tokens_per_busy_s + (devices - n->first) * per_device * o.scaling_efficiency;
  }
  if (hi == observed.begin()) {  // below every observed count: linear
    return hi->second.tokens_per_busy_s * devices / hi->first;
  }
  auto lo = std::prev(hi);
  const double f = static_cast<double>(devices - lo->first) / (hi->first - lo->first);
  return lo->second.tokens_per_busy_s +
         f * (hi->second.tokens_per_busy_s - lo->second.tokens_per_busy_s);
}

int CapacityModel::DevicesFor(const AutoscaleOptions& o, double demand_tokens_per_s,
                              double utilization, int current) const {
  if (observed.empty()) return current;
  for (int d = o.min_devices; d <= o.max_devices; ++d) {
    if (Capacity(o, d) * utilization >= demand_tokens_per_s) return d;
  }
  return o.max_devices;
}

double DemandTokensPerS(const AutoscaleOptions& o, const AutoscaleSignals& s) {
  const double out = OutputTokensPerRequest(s);
  const double backlog_tokens = static_cast<double>(s.waiting) * out;
  const double rate = std::max(s.tokens_per_s, s.arrivals_per_s * out);
  const double steady = rate + backlog_tokens / o.window_s;
  if (!QueueBehind(o, s)) return steady;
  const double grew_s = std::min(s.oldest_wait_s, o.window_s);
  return std::max(steady, s.tokens_per_s + backlog_tokens / grew_s);
}

AutoscaleDecision Decide(const AutoscaleOptions& o, const AutoscaleSignals& s,
                         AutoscaleState* state) {
  if (o.mode == AutoscaleMode::kOff) return Hold(s, "off", "autoscaling is off");
  const double projected = ProjectedArrivalsPerS(o, s, state);
  if (!s.scaling && s.t - state->last_event_end_t >= o.window_s) state->capacity.Observe(o, s);
  if (s.scaling) {
    state->fits_fewer_since = -1;
    state->below_target_since = -1;
    return Hold(s, "scaling",
                Format("a scale event is running (%s serve)", Devices(s.devices).c_str()));
  }
  AutoscaleDecision d;
  if (s.devices < o.min_devices || s.devices > o.max_devices) {
    const int target = std::clamp(s.devices, o.min_devices, o.max_devices);
    d = Make(s, target, "bounds",
             Format("%s serve, outside [min_devices %d, max_devices %d]",
                    Devices(s.devices).c_str(), o.min_devices, o.max_devices));
  } else if (o.mode == AutoscaleMode::kSlo) {
    SettleLastDown(o, s, state);
    d = DecideSlo(o, s, projected, state);
  } else {
    d = DecideThreshold(o, s, *state);
    d.demand_tokens_per_s = DemandTokensPerS(o, s);
  }
  if (d.target != s.devices && RetryBlocks(o, s, *state, d.target)) {
    AutoscaleDecision held = Hold(
        s, "retry",
        Format("wanted %d, but the event to %d ended refused or rolled back %.1f s ago (retry_s "
               "%g s): ",
               d.target, state->refused_target, s.t - state->refused_t, o.retry_s) += d.reason);
    held.demand_tokens_per_s = d.demand_tokens_per_s;
    held.devices_needed = d.devices_needed;
    return held;
  }
  if (o.mode == AutoscaleMode::kSlo && d.target > s.devices) NoteUp(o, s, state);
  return d;
}

void OnScaleEvent(AutoscaleState* state, double t, int from, int to, bool ok) {
  if (!ok) {
    state->refused_target = to;
    state->refused_t = t;
    return;
  }
  state->last_event_end_t = t;
  state->below_target_since = -1;
  state->fits_fewer_since = -1;
  state->refused_target = 0;
  state->refused_t = -1e300;
  state->last_down_settled = to >= from;
}

void OnManualScale(AutoscaleState* state, double t, int /*devices*/) {
  state->last_event_end_t = t;
  state->below_target_since = -1;
  state->fits_fewer_since = -1;
  state->refused_target = 0;
  state->refused_t = -1e300;
  state->last_down_settled = true;
}

}  // namespace emoe::server
