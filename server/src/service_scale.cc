// The elastic admin endpoints (service.h), compatible with vLLM's and SGLang's:
//
//   POST /scale_elastic_ep {"new_data_parallel_size": N} or {"new_ep_size": N}, plus our
//        "method" (engine::ParseScaleOptions: "elastic", "cold-restart", "elastic-no-p2p", ...)
//     200  the event's report (engine::ScaleReport::ToJson, plus "standby_prepare_s": the time
//          spent booting the standby instance before the command, which the report's latency
//          does not include, as in elasticmoe)
//     400  a target outside 1..max_devices, an unknown method, or a target the coordinator
//          refuses (kInvalidArgument, kResourceExhausted: nothing changed), the reason named
//     409  another scale event (or an instance restart) is running
//     500  the event failed and was rolled back: the old configuration still serves
//     503  the server is stopping
//   GET|POST /is_scaling_elastic_ep -> {"is_scaling_elastic_ep": bool, "phase": ...}
//
// The event runs on the scale thread (one at a time), never on an I/O thread; the HTTP
// exchange waits for it and is answered from there.
#include <chrono>
#include <cstdio>

#include <nlohmann/json.hpp>

#include "server/service.h"
#include "service_internal.h"

namespace emoe::server {
namespace {

double UnixSeconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

ApiError Error(int status, const std::string& type, const std::string& message) {
  ApiError e;
  e.status = status;
  e.type = type;
  e.message = message;
  return e;
}

}  // namespace

void OpenAiService::HandleScale(const ExchangePtr& ex) {
  auto parsed = ParseScaleRequest(ex->request().body);
  if (const ApiError* e = std::get_if<ApiError>(&parsed)) return ReplyError(ex, *e);
  const ScaleRequest& r = std::get<ScaleRequest>(parsed);
  if (r.target < 1 || r.target > o_.max_devices) {
    return ReplyError(
        ex,
        BadRequest("the new size must be in 1.." + std::to_string(o_.max_devices) +
                       " (the devices of the HMM, --max_devices), got " + std::to_string(r.target),
                   "new_data_parallel_size"));
  }
  auto options = engine::ParseScaleOptions(r.method);
  if (!options.ok()) return ReplyError(ex, BadRequest(options.status().message(), "method"));
  std::string why;
  const int status = StartScale(ex, static_cast<int>(r.target), *options, "manual", &why);
  if (status == 503) return ReplyError(ex, Error(503, "server_error", why));
  if (status == 409) return ReplyError(ex, Error(409, "conflict_error", why));
}

int OpenAiService::StartScale(ExchangePtr ex, int target, engine::ScaleOptions options,
                              const std::string& source, std::string* why) {
  const engine::ScaleProgress progress = coordinator_->scale_progress();
  vmm::MutexLock l(&scale_mu_);
  if (scale_closed_ || draining_) {
    *why = "the server is shutting down";
    return 503;
  }
  if (scaling_ || progress.scaling) {
    *why = "a scale event is in progress: " +
           (progress.scaling
                ? progress.method + " " + engine::DevicesText(progress.from_devices) + " -> " +
                      engine::DevicesText(progress.to_devices) + " (phase " + progress.phase + ")"
                : std::string("an accepted one"));
    return 409;
  }
  scaling_ = true;
  scale_stage_ = "standby";
  if (scale_thread_.joinable()) scale_thread_.join();  // the previous one has answered
  scale_thread_ = std::thread([this, ex = std::move(ex), target, options, source] {
    RunScale(ex, target, options, source);
  });
  return 0;
}

void OpenAiService::RunScale(ExchangePtr ex, int target, engine::ScaleOptions options,
                             const std::string& source) {
  const std::string method = options.Name();
  ScaleEventRecord record;
  record.start_unix_s = UnixSeconds();
  record.method = method;
  record.source = source;
  record.to = target;
  double prepare_s = 0;
  if (options.preinit) {
    // As elasticmoe does: the standby pool anticipates the event (the devices ScaleTo picks).
    auto to = coordinator_->TargetDevices(target);
    if (to.ok()) {
      const auto t0 = std::chrono::steady_clock::now();
      (void)coordinator_->PrepareStandby(*to);  // without it the event boots one on demand
      prepare_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    }
  }
  {
    vmm::MutexLock l(&scale_mu_);
    scale_stage_ = "scale";
  }
  const std::vector<int> from = coordinator_->devices();
  record.from = static_cast<int>(from.size());
  auto rep = coordinator_->ScaleTo(target, options);
  const vmm::StatusCode code = rep.ok() ? vmm::StatusCode::kOk : rep.status().code();
  const bool refused =
      code == vmm::StatusCode::kInvalidArgument || code == vmm::StatusCode::kResourceExhausted;
  record.end_unix_s = UnixSeconds();
  record.outcome = rep.ok() ? "ok" : refused ? "refused" : "failed";
  if (rep.ok()) {
    record.latency_s = rep->latency_s;
    record.downtime_s = rep->downtime_s;
  } else {
    record.error = rep.status().ToString();
  }
  metrics_->Scale(method, record.outcome, rep.ok() ? &*rep : nullptr);
  // The autoscaler hears of every event (its own and manual ones) before the answer leaves.
  if (autoscaler_ != nullptr) autoscaler_->OnScaleEvent(record);
  // The event is over before it is answered: a client may send the next one the moment it has
  // the answer, and must not get 409 for this one.
  {
    vmm::MutexLock l(&scale_mu_);
    scaling_ = false;
    scale_stage_.clear();
  }
  if (ex == nullptr) {  // the autoscaler's: logged, and said on stderr
    const std::string detail =
        rep.ok() ? " in " + std::to_string(rep->latency_s) + " s" : ": " + record.error;
    std::fprintf(stderr, "autoscaler: %s %d -> %d devices: %s%s\n", method.c_str(), record.from,
                 target, record.outcome.c_str(), detail.c_str());
    return;
  }
  if (rep.ok()) {
    std::string body = rep->ToJson();  // an object: the prepare time goes in before its end
    body.insert(body.size() - 1, ",\"standby_prepare_s\":" + std::to_string(prepare_s));
    Reply(ex, 200, std::move(body));
  } else if (refused) {
    ReplyError(ex, BadRequest(rep.status().message(), "new_data_parallel_size"));
  } else {
    ReplyError(ex, Error(500, "server_error",
                         "the scale event failed and was rolled back (serving continues on " +
                             engine::DevicesText(from) + "): " + rep.status().ToString()));
  }
}

void OpenAiService::HandleIsScaling(const ExchangePtr& ex) {
  const engine::ScaleProgress p = coordinator_->scale_progress();
  bool accepted = false;
  std::string stage;
  {
    vmm::MutexLock l(&scale_mu_);
    accepted = scaling_;
    stage = scale_stage_;
  }
  nlohmann::json j;
  j["is_scaling_elastic_ep"] = p.scaling || accepted;
  if (p.scaling) {
    j["phase"] = p.phase;
    j["method"] = p.method;
    j["from_devices"] = p.from_devices;
    j["to_devices"] = p.to_devices;
    j["elapsed_s"] = coordinator_->Now() - p.since_s;
  } else if (accepted) {
    j["phase"] = stage;  // "standby": booting the standby instance before the command
  } else {
    j["phase"] = nullptr;
  }
  Reply(ex, 200, j.dump());
}

}  // namespace emoe::server
