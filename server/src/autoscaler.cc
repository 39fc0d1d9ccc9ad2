// The autoscaler's runtime (server/autoscaler.h): sample, decide, start events, log.
#include "server/autoscaler.h"

#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstring>
#include <nlohmann/json.hpp>

namespace emoe::server {
namespace {

double UnixNow() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// A finite number, or null (JSON has no NaN or infinity).
nlohmann::json Num(double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(); }

}  // namespace

Autoscaler::Autoscaler(AutoscalerConfig config, Hooks hooks, Registry* metrics)
    : config_(std::move(config)), hooks_(std::move(hooks)), metrics_(metrics) {}

Autoscaler::~Autoscaler() {
  Stop();
  vmm::MutexLock l(&mu_);
  if (log_ != nullptr) std::fclose(log_);
  log_ = nullptr;
}

vmm::Status Autoscaler::Start() {
  vmm::MutexLock l(&mu_);
  if (started_) return vmm::Status::FailedPrecondition("the autoscaler was started already");
  if (!config_.log_path.empty()) {
    log_ = std::fopen(config_.log_path.c_str(), "we");
    if (log_ == nullptr) {
      return vmm::Status::InvalidArgument("--autoscale_log: cannot open '" + config_.log_path +
                                          "' for writing: " + std::strerror(errno));
    }
  }
  const AutoscaleOptions& o = config_.policy;
  nlohmann::json j = {{"kind", "start"},
                      {"unix_s", UnixNow()},
                      {"mode", AutoscaleModeName(o.mode)},
                      {"method", config_.method},
                      {"min_devices", o.min_devices},
                      {"max_devices", o.max_devices},
                      {"slo_ttft_ms", o.slo_ttft_ms},
                      {"slo_tpot_ms", o.slo_tpot_ms},
                      {"target_attainment", o.target_attainment},
                      {"interval_s", o.interval_s},
                      {"sample_s", o.sample_s},
                      {"window_s", o.window_s}};
  Log(j.dump());
  if (metrics_ != nullptr) {
    metrics_
        ->gauge("emoe:autoscale_info", "The autoscaler's mode and scale method (value 1).",
                {"mode", "method"}, {AutoscaleModeName(o.mode), config_.method})
        .Set(1);
  }
  started_ = true;
  thread_ = std::thread([this] { Loop(); });
  return vmm::Status::Ok();
}

void Autoscaler::Stop() {
  {
    vmm::MutexLock l(&mu_);
    stop_ = true;
  }
  cv_.SignalAll();
  if (thread_.joinable()) thread_.join();
}

void Autoscaler::Log(const std::string& line) {
  if (log_ == nullptr) return;
  std::fputs(line.c_str(), log_);
  std::fputc('\n', log_);
  std::fflush(log_);  // a reader (the evaluation, tail -f) sees each line as it happens
}

void Autoscaler::Loop() {
  const double sample_s = config_.policy.sample_s;
  const double interval_s = config_.policy.interval_s;
  double next_decision = hooks_.clock() + interval_s;
  for (;;) {
    const double now = hooks_.clock();
    const bool decide = now >= next_decision;
    if (decide) next_decision += interval_s * std::ceil((now - next_decision) / interval_s + 1e-9);
    Tick(now, decide);
    const auto deadline = std::chrono::steady_clock::now() +
                          std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                              std::chrono::duration<double>(sample_s));
    vmm::MutexLock l(&mu_);
    while (!stop_) {
      const auto left = deadline - std::chrono::steady_clock::now();
      if (left <= left.zero()) break;
      cv_.WaitFor(&mu_, left);
    }
    if (stop_) return;
  }
}

void Autoscaler::Tick(double now, bool decide) {
  const AutoscaleSignals s = hooks_.sample(now);
  const double unix_s = UnixNow();
  nlohmann::json sample = {{"kind", "sample"},
                           {"unix_s", unix_s},
                           {"devices", s.devices},
                           {"scaling", s.scaling},
                           {"attainment", s.window_requests > 0 ? Num(s.attainment()) : nullptr},
                           {"window_requests", s.window_requests},
                           {"ttft_p90_s", Num(s.ttft_p90_s)},
                           {"tpot_p90_s", Num(s.tpot_p90_s)},
                           {"running", s.running},
                           {"waiting", s.waiting},
                           {"oldest_wait_s", Num(s.oldest_wait_s)},
                           {"kv_usage", Num(s.kv_usage)},
                           {"busy", Num(s.busy_fraction)},
                           {"tokens_per_s", Num(s.tokens_per_s)},
                           {"prompt_tokens_per_s", Num(s.prompt_tokens_per_s)},
                           {"arrivals_per_s", Num(s.arrivals_per_s)}};
  AutoscaleDecision d;
  {
    vmm::MutexLock l(&mu_);
    Log(sample.dump());
    if (decide) d = Decide(config_.policy, s, &state_);  // which also teaches the capacity model
  }
  Metrics(s, decide ? &d : nullptr);
  if (!decide) return;
  std::string why;
  bool started = false;
  if (d.target != s.devices && d.action != "hold") started = hooks_.scale(d.target, &why);
  // The inputs that decided it: the sample's signals (the sample line just before has all).
  nlohmann::json inputs = sample;
  inputs.erase("kind");
  inputs.erase("unix_s");
  nlohmann::json j = {{"kind", "decision"},
                      {"unix_s", unix_s},
                      {"devices", s.devices},
                      {"target", d.target},
                      {"action", d.action},
                      {"reason", d.reason},
                      {"reason_kind", d.reason_kind},
                      {"demand_tokens_per_s", Num(d.demand_tokens_per_s)},
                      {"devices_needed", d.devices_needed},
                      {"started", started},
                      {"error", why},
                      {"inputs", std::move(inputs)}};
  vmm::MutexLock l(&mu_);
  Log(j.dump());
  if (d.target != s.devices && !started) {
    // It could not even start (another event running, the server stopping): not now; the
    // policy hears of it as a refusal so that it waits retry_s before asking again.
    server::OnScaleEvent(&state_, now, s.devices, d.target, /*ok=*/false);
  }
  last_ = std::move(d);
}

void Autoscaler::Metrics(const AutoscaleSignals& s, const AutoscaleDecision* d) {
  if (metrics_ == nullptr) return;
  Registry& r = *metrics_;
  r.gauge("emoe:autoscale_slo_attainment",
          "SLO attainment over the autoscaler's window (1 with no request in it).")
      .Set(s.attainment());
  r.gauge("emoe:autoscale_busy_fraction", "Share of the window the serving devices spent stepping.")
      .Set(s.busy_fraction);
  if (d == nullptr) return;
  r.gauge("emoe:autoscale_target_devices", "Devices the autoscaler's last decision asked for.")
      .Set(d->target);
  r.gauge("emoe:autoscale_devices_needed",
          "Devices the capacity model says the demand needs (0: not known yet).")
      .Set(d->devices_needed);
  r.gauge("emoe:autoscale_demand_tokens_per_second",
          "Generated tokens per second the load asks for, as the policy estimates it.")
      .Set(d->demand_tokens_per_s);
  r.counter("emoe:autoscale_decisions_total", "Autoscaler decisions, by action and reason.",
            {"action", "reason"}, {d->action, d->reason_kind})
      .Inc();
}

void Autoscaler::OnScaleEvent(const ScaleEventRecord& e) {
  const double now = hooks_.clock ? hooks_.clock() : 0;
  nlohmann::json j = {{"kind", "event"},
                      {"unix_s", e.end_unix_s},
                      {"start_unix_s", e.start_unix_s},
                      {"from", e.from},
                      {"to", e.to},
                      {"method", e.method},
                      {"source", e.source},
                      {"outcome", e.outcome},
                      {"latency_s", Num(e.latency_s)},
                      {"downtime_s", Num(e.downtime_s)},
                      {"error", e.error}};
  vmm::MutexLock l(&mu_);
  Log(j.dump());
  if (e.source == "autoscaler") {
    server::OnScaleEvent(&state_, now, e.from, e.to, e.outcome == "ok");
  } else if (e.outcome == "ok") {
    OnManualScale(&state_, now, e.to);
  }
}

AutoscaleDecision Autoscaler::last_decision() const {
  vmm::MutexLock l(&mu_);
  return last_;
}

}  // namespace emoe::server
