// The autoscaler's view of serving and its start (service.h, server/autoscaler.h): the
// signals from the coordinator's snapshot and the service's SLO window (slo_tracker.h); its
// events go through StartScale, the path of POST /scale_elastic_ep.
#include "server/service.h"
#include "service_internal.h"
#include "slo_tracker.h"

namespace emoe::server {

AutoscaleSignals OpenAiService::AutoscaleSample(double now) {
  const engine::ServingSnapshot snap = coordinator_->Snapshot();
  const engine::ScaleProgress progress = coordinator_->scale_progress();
  AutoscaleSignals s;
  s.t = now;
  s.devices = static_cast<int>(snap.devices.size());
  {
    vmm::MutexLock l(&scale_mu_);
    s.scaling = scaling_ || progress.scaling;
  }
  s.running = snap.running;
  s.waiting = snap.waiting;
  s.kv_usage = snap.kv_usage();
  slo_->Busy(snap.t, snap.busy_seconds);
  slo_->Fill(now, &s);
  return s;
}

Status OpenAiService::StartAutoscaler() {
  const AutoscalerConfig& c = o_.autoscale;
  if (c.policy.mode == AutoscaleMode::kOff && c.log_path.empty()) return Status::Ok();
  auto options = engine::ParseScaleOptions(c.method);
  if (!options.ok()) {
    return Status::InvalidArgument("autoscale method: " + options.status().message());
  }
  Autoscaler::Hooks hooks;
  hooks.clock = [this] { return coordinator_->Now(); };
  hooks.sample = [this](double now) { return AutoscaleSample(now); };
  hooks.scale = [this, o = *options](int target, std::string* why) {
    return StartScale(nullptr, target, o, "autoscaler", why) == 0;
  };
  autoscaler_ = std::make_unique<Autoscaler>(c, std::move(hooks), &metrics_->registry());
  return autoscaler_->Start();
}

}  // namespace emoe::server
