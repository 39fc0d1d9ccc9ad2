// tests/server/autoscale_sim.h: a fake serving system to drive the autoscaler's policy
// (server/autoscale_policy.h) in simulated time, no clock and no threads.
//
// The system: d devices sustain c * (1 + efficiency * (d - 1)) generated tokens/s when always
// busy; requests of `output_tokens` tokens arrive at load(t) / output_tokens per second
// (evenly spaced, or Poisson with a fixed seed), queue FIFO, and are admitted while every running
// request still gets min_rate_per_request tokens/s; running requests share the capacity equally,
// each at most max_rate_per_request (so the busy fraction is the load over the capacity below
// saturation). Every tick_s the system advances; every sample_s a sample bucket closes (the signals
// are sums over the last window_s of buckets, like the runtime's); every interval_s the policy
// decides; a decided event ends event_latency_s later (refused_latency_s when `refuse` says
// so), serving on the old devices meanwhile (zero-downtime), then OnScaleEvent.
#ifndef TESTS_SERVER_AUTOSCALE_SIM_H_
#define TESTS_SERVER_AUTOSCALE_SIM_H_

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "server/autoscale_policy.h"

namespace emoe::server::testing {

// The slo policy with the defaults, over [min_devices, max_devices].
inline AutoscaleOptions Slo(int min_devices = 1, int max_devices = 8) {
  AutoscaleOptions o;
  o.mode = AutoscaleMode::kSlo;
  o.min_devices = min_devices;
  o.max_devices = max_devices;
  return o;
}

struct SimOptions {
  double per_device_tokens_per_s = 1000;  // c: one device, always busy
  double efficiency = 0.9;                // the true scaling efficiency per added device
  int output_tokens = 100;                // per request
  double max_rate_per_request = 20;       // tok/s (TPOT 50 ms)
  double min_rate_per_request = 10;       // the admission limit, tok/s (TPOT 100 ms)
  double event_latency_s = 3;
  double refused_latency_s = 0.5;
  double tick_s = 0.05;
  int start_devices = 1;
  uint32_t poisson_seed = 0;  // 0: evenly spaced arrivals; else Poisson ones from this seed
  // The p90 TTFT and TPOT of the requests finished in the window go into the signals (the
  // latency rule decides where they are known); they lag the load by a request's duration. The
  // TPOT then grows with the batch (a step's fixed cost plus one per sequence): at a load of rho
  // of the capacity, TPOT = 1 / (max_rate * (1 - rho)).
  bool report_latencies = false;
};

struct SimEvent {
  double decided_t = 0, end_t = 0;
  int from = 0, to = 0;
  bool ok = true;
  bool manual = false;
  std::string kind, reason;
};

class Sim {
 public:
  Sim(AutoscaleOptions o, SimOptions so, std::function<double(double)> load)
      : o_(o), so_(so), load_(std::move(load)), devices_(so.start_devices), rng_(so.poisson_seed) {}

  // true: an event decided at t from `from` to `to` is refused.
  std::function<bool(double t, int from, int to)> refuse;

  // Someone scales to `devices` at t (applied at once, OnManualScale).
  void ManualAt(double t, int devices) { manual_[Ticks(t)] = devices; }

  // Advances to `until_s` (absolute, seconds).
  void Run(double until_s) {
    const int64_t end = Ticks(until_s);
    const int64_t per_sample = std::max<int64_t>(1, Ticks(o_.sample_s));
    const int64_t per_decision = std::max<int64_t>(1, Ticks(o_.interval_s));
    for (; tick_ < end; ++tick_) {
      const double t = tick_ * so_.tick_s;
      auto m = manual_.find(tick_);
      if (m != manual_.end() && !event_) Manual(t, m->second);
      if (event_ && t >= event_end_t_) EndEvent(t);
      Advance(t);
      if ((tick_ + 1) % per_sample == 0) CloseBucket();
      if ((tick_ + 1) % per_decision == 0) Decision(t + so_.tick_s);
      device_seconds_ += devices_ * so_.tick_s;
    }
  }

  double Capacity(int d) const {
    return so_.per_device_tokens_per_s * (1 + so_.efficiency * (d - 1));
  }
  AutoscaleSignals Signals(double t) const {
    AutoscaleSignals s;
    s.t = t;
    s.devices = devices_;
    s.scaling = event_;
    double len = 0, produced = 0, busy = 0, arrivals = 0;
    int64_t finished = 0, met = 0;
    for (const Bucket& b : buckets_) {
      len += b.len_s;
      produced += b.produced;
      busy += b.busy_s;
      arrivals += b.arrivals;
      finished += b.finished;
      met += b.met;
    }
    int64_t late = 0;
    for (double a : waiting_) late += t - a > o_.slo_ttft_ms / 1000;
    s.window_requests = finished + late;
    s.window_met = met;
    s.running = static_cast<int64_t>(running_.size());
    s.waiting = static_cast<int64_t>(waiting_.size());
    s.oldest_wait_s = waiting_.empty() ? 0 : t - waiting_.front();
    s.kv_usage = static_cast<double>(running_.size()) / std::max(1, AdmitLimit());
    if (len > 0) {
      s.busy_fraction = busy / len;
      s.tokens_per_s = produced / len;
      s.arrivals_per_s = arrivals / len;
    }
    s.mean_output_tokens = finished > 0 ? so_.output_tokens : 0;
    if (so_.report_latencies) {
      std::vector<double> ttft, tpot;
      for (const Bucket& b : buckets_) {
        ttft.insert(ttft.end(), b.ttft.begin(), b.ttft.end());
        tpot.insert(tpot.end(), b.tpot.begin(), b.tpot.end());
      }
      s.ttft_p90_s = P90(&ttft);
      s.tpot_p90_s = P90(&tpot);
    }
    return s;
  }

  const std::vector<SimEvent>& events() const { return events_; }
  const std::vector<std::pair<double, AutoscaleDecision>>& decisions() const { return decisions_; }
  int devices() const { return devices_; }
  double device_seconds() const { return device_seconds_; }
  int64_t finished() const { return total_finished_; }
  int64_t met() const { return total_met_; }
  AutoscaleState& state() { return state_; }
  const AutoscaleOptions& options() const { return o_; }

  // The successful events of ours (not manual) decided in [from_t, to_t).
  std::vector<SimEvent> EventsIn(double from_t, double to_t) const {
    std::vector<SimEvent> out;
    for (const SimEvent& e : events_) {
      if (!e.manual && e.ok && e.decided_t >= from_t && e.decided_t < to_t) out.push_back(e);
    }
    return out;
  }
  // Every event as one line each, for failure messages.
  std::string Log() const {
    std::string out;
    for (const SimEvent& e : events_) {
      char line[128];
      snprintf(line, sizeof(line), "t=%.1f..%.1f %d->%d %s %s: ", e.decided_t, e.end_t, e.from,
               e.to, e.ok ? "ok" : "REFUSED", e.manual ? "manual" : e.kind.c_str());
      out += line;
      out += e.reason;
      out += '\n';
    }
    return out;
  }

 private:
  struct Request {
    double arrive_t, first_t, v_admit;
  };
  struct Bucket {
    double len_s = 0, produced = 0, busy_s = 0;
    int64_t arrivals = 0, finished = 0, met = 0;
    std::vector<double> ttft, tpot;  // of the requests finished in it (report_latencies)
  };

  // Nearest rank; 0 when empty.
  static double P90(std::vector<double>* v) {
    if (v->empty()) return 0;
    const size_t k = static_cast<size_t>(std::ceil(0.9 * v->size())) - 1;
    std::nth_element(v->begin(), v->begin() + k, v->end());
    return (*v)[k];
  }

  int64_t Ticks(double s) const { return std::llround(s / so_.tick_s); }
  int AdmitLimit() const { return static_cast<int>(Capacity(devices_) / so_.min_rate_per_request); }

  void Advance(double t) {
    const double dt = so_.tick_s;
    const double expected = load_(t) / so_.output_tokens * dt;
    if (so_.poisson_seed != 0) {
      arrival_acc_ += std::poisson_distribution<int>(expected)(rng_);
    } else {
      arrival_acc_ += expected;
    }
    while (arrival_acc_ >= 1) {
      waiting_.push_back(t);
      arrival_acc_ -= 1;
      ++cur_.arrivals;
    }
    const double mu = Capacity(devices_);
    while (!waiting_.empty() && static_cast<int>(running_.size()) < AdmitLimit()) {
      running_.push_back({waiting_.front(), t + dt, v_});
      waiting_.pop_front();
    }
    if (!running_.empty()) {
      const double n = static_cast<double>(running_.size());
      double r = std::min(so_.max_rate_per_request, mu / n);
      if (so_.report_latencies) {
        // A step's time grows with the batch: TPOT = (1 + n / n_half) / max_rate with n_half =
        // mu / max_rate, so the throughput approaches mu as the batch grows (never reaching it).
        r = so_.max_rate_per_request / (1 + n * so_.max_rate_per_request / mu);
      }
      v_ += r * dt;
      cur_.produced += r * n * dt;
      cur_.busy_s += r * n / mu * dt;
    }
    while (!running_.empty() && v_ - running_.front().v_admit >= so_.output_tokens - 1e-9) {
      const Request& q = running_.front();
      const double ttft = q.first_t - q.arrive_t;
      const double tpot = (t + dt - q.first_t) / so_.output_tokens;
      const bool ok = ttft <= o_.slo_ttft_ms / 1000 && tpot <= o_.slo_tpot_ms / 1000;
      ++cur_.finished;
      cur_.met += ok;
      if (so_.report_latencies) {
        cur_.ttft.push_back(ttft);
        cur_.tpot.push_back(tpot);
      }
      ++total_finished_;
      total_met_ += ok;
      running_.pop_front();
    }
    cur_.len_s += dt;
  }

  void CloseBucket() {
    buckets_.push_back(cur_);
    cur_ = Bucket();
    const size_t keep = static_cast<size_t>(std::llround(o_.window_s / o_.sample_s));
    while (buckets_.size() > keep) buckets_.pop_front();
  }

  void Decision(double t) {
    AutoscaleDecision d = Decide(o_, Signals(t), &state_);
    if (d.target != devices_ && !event_) {
      SimEvent e;
      e.decided_t = t;
      e.from = devices_;
      e.to = d.target;
      e.ok = !(refuse && refuse(t, devices_, d.target));
      e.kind = d.reason_kind;
      e.reason = d.reason;
      event_ = true;
      event_end_t_ = t + (e.ok ? so_.event_latency_s : so_.refused_latency_s);
      events_.push_back(e);
    }
    decisions_.emplace_back(t, std::move(d));
  }

  void EndEvent(double t) {
    SimEvent& e = events_.back();
    e.end_t = t;
    if (e.ok) devices_ = e.to;
    OnScaleEvent(&state_, t, e.from, e.to, e.ok);
    event_ = false;
  }

  void Manual(double t, int devices) {
    SimEvent e;
    e.decided_t = e.end_t = t;
    e.from = devices_;
    e.to = devices;
    e.manual = true;
    events_.push_back(e);
    devices_ = devices;
    OnManualScale(&state_, t, devices);
  }

  AutoscaleOptions o_;
  SimOptions so_;
  std::function<double(double)> load_;
  AutoscaleState state_;
  int devices_;
  std::mt19937 rng_;
  int64_t tick_ = 0;
  double arrival_acc_ = 0, v_ = 0, device_seconds_ = 0;
  std::deque<double> waiting_;  // arrival times
  std::deque<Request> running_;
  std::deque<Bucket> buckets_;
  Bucket cur_;
  bool event_ = false;
  double event_end_t_ = 0;
  std::map<int64_t, int> manual_;
  std::vector<SimEvent> events_;
  std::vector<std::pair<double, AutoscaleDecision>> decisions_;
  int64_t total_finished_ = 0, total_met_ = 0;
};

}  // namespace emoe::server::testing

#endif  // TESTS_SERVER_AUTOSCALE_SIM_H_
