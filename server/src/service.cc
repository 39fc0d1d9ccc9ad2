// The service's life (service.h): options, start, and the orderly stop.
#include "server/service.h"

#include <chrono>
#include <random>

#include "service_internal.h"
#include "slo_tracker.h"

namespace emoe::server {

Status ServiceOptions::Validate() const {
  auto bad = [](const std::string& m) { return Status::InvalidArgument("ServiceOptions: " + m); };
  if (served_model_name.empty()) return bad("served_model_name is required");
  if (max_model_len < 2) return bad("max_model_len must be >= 2");
  if (max_prompt_tokens < 1) return bad("max_prompt_tokens must be >= 1");
  if (max_num_seqs < 1) return bad("max_num_seqs must be >= 1");
  if (max_queue < 0) return bad("max_queue must be >= 0");
  if (max_devices < 1) return bad("max_devices must be >= 1");
  if (!(retry_after_s > 0)) return bad("retry_after_s must be > 0");
  if (!(stats_interval_s > 0)) return bad("stats_interval_s must be > 0");
  if (Status s = autoscale.policy.Validate(); !s.ok()) return bad("autoscale: " + s.message());
  if (autoscale.policy.max_devices > max_devices) {
    return bad("autoscale max_devices " + std::to_string(autoscale.policy.max_devices) +
               " exceeds max_devices " + std::to_string(max_devices));
  }
  return http.Validate();
}

OpenAiService::OpenAiService(ServiceOptions options, const tools::ModelText* text)
    : o_(std::move(options)),
      text_(text),
      metrics_(std::make_unique<ServiceMetrics>(o_.served_model_name, o_.max_model_len)),
      slo_(std::make_unique<SloTracker>(o_.autoscale.policy.window_s,
                                        o_.autoscale.policy.slo_ttft_ms / 1e3,
                                        o_.autoscale.policy.slo_tpot_ms / 1e3)),
      created_s_(std::chrono::duration_cast<std::chrono::seconds>(
                     std::chrono::system_clock::now().time_since_epoch())
                     .count()),
      nonce_(std::random_device{}() * 0x9e3779b97f4a7c15ull ^
             static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count())) {}

OpenAiService::~OpenAiService() {
  if (coordinator_ != nullptr) Stop(0);
}

Status OpenAiService::Start(engine::Coordinator* coordinator) {
  VMM_RETURN_IF_ERROR(o_.Validate());
  if (coordinator_ != nullptr) return Status::FailedPrecondition("OpenAiService: started twice");
  coordinator_ = coordinator;
  // The serving thread publishes its first snapshot as it starts: wait for it (at most 10 s),
  // so that the first answers already carry the configuration.
  for (int i = 0; i < 10000; ++i) {
    const engine::ServingSnapshot s = coordinator_->Snapshot();
    if (!s.devices.empty() || !s.down.empty()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  metrics_->registry().AddCollector([this] {
    if (!stopped_) metrics_->Serving(coordinator_->Snapshot(), in_flight());
  });
  if (Status s = StartAutoscaler(); !s.ok()) {
    stopped_ = true;
    return s;
  }
  auto http = HttpServer::Start(o_.http, [this](ExchangePtr ex) { Handle(std::move(ex)); });
  if (!http.ok()) {
    if (autoscaler_ != nullptr) autoscaler_->Stop();
    stopped_ = true;
    return http.status();
  }
  http_ = std::move(*http);
  stats_thread_ = std::thread([this] { StatsLoop(); });
  return Status::Ok();
}

int OpenAiService::port() const { return http_ != nullptr ? http_->port() : 0; }

size_t OpenAiService::in_flight() const {
  vmm::MutexLock l(&mu_);
  return pending_.size();
}

void OpenAiService::EndGraceNow() {
  vmm::MutexLock l(&mu_);
  end_grace_ = true;
  idle_cv_.SignalAll();
}

void OpenAiService::Stop(double grace_s) {
  if (coordinator_ == nullptr || stopped_) return;
  draining_ = true;
  // No new autoscaled event from here; one running is waited for below, as a manual one.
  if (autoscaler_ != nullptr) autoscaler_->Stop();
  if (http_ != nullptr) {
    // The requests in flight get grace_s to finish; OnFinished signals when the last one has.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(grace_s);
    {
      vmm::MutexLock l(&mu_);
      while (!pending_.empty() && !end_grace_ && std::chrono::steady_clock::now() < deadline) {
        idle_cv_.WaitFor(&mu_, std::chrono::milliseconds(20));
      }
    }
    EndInFlight(
        "the server is shutting down: the request did not finish within its grace "
        "period");
  }
  std::thread scale;
  {
    vmm::MutexLock l(&scale_mu_);
    scale_closed_ = true;  // no new scale thread after this one
    scale = std::move(scale_thread_);
  }
  if (scale.joinable()) scale.join();  // a scale event cannot be interrupted: it answers first
  if (http_ != nullptr) http_->Stop(/*grace_s=*/2);  // the answers above leave
  {
    vmm::MutexLock l(&stats_mu_);
    stats_stop_ = true;
  }
  stats_cv_.SignalAll();
  if (stats_thread_.joinable()) stats_thread_.join();
  stopped_ = true;
}

}  // namespace emoe::server
