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

#include <nlohmann/json.hpp>

#include "server/service.h"
#include "service_internal.h"

namespace emoe::server {
namespace {

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
  const engine::ScaleProgress progress = coordinator_->scale_progress();
  std::string busy;
  bool closed = false;
  {
    vmm::MutexLock l(&scale_mu_);
    closed = scale_closed_ || draining_;
    if (!closed && (scaling_ || progress.scaling)) {
      busy = progress.scaling
                 ? progress.method + " " + engine::DevicesText(progress.from_devices) + " -> " +
                       engine::DevicesText(progress.to_devices) + " (phase " + progress.phase + ")"
                 : std::string("an accepted one");
    }
    if (!closed && busy.empty()) {
      scaling_ = true;
      scale_stage_ = "standby";
      if (scale_thread_.joinable()) scale_thread_.join();  // the previous one has answered
      scale_thread_ = std::thread([this, ex, target = static_cast<int>(r.target), o = *options] {
        RunScale(ex, target, o);
      });
    }
  }
  if (closed) return ReplyError(ex, Error(503, "server_error", "the server is shutting down"));
  if (!busy.empty()) {
    return ReplyError(ex, Error(409, "conflict_error", "a scale event is in progress: " + busy));
  }
}

void OpenAiService::RunScale(ExchangePtr ex, int target, engine::ScaleOptions options) {
  const std::string method = options.Name();
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
  auto rep = coordinator_->ScaleTo(target, options);
  // The event is over before it is answered: a client may send the next one the moment it has
  // the answer, and must not get 409 for this one.
  auto done = [this] {
    vmm::MutexLock l(&scale_mu_);
    scaling_ = false;
    scale_stage_.clear();
  };
  if (rep.ok()) {
    metrics_->Scale(method, "ok", &*rep);
    std::string body = rep->ToJson();  // an object: the prepare time goes in before its end
    body.insert(body.size() - 1, ",\"standby_prepare_s\":" + std::to_string(prepare_s));
    done();
    Reply(ex, 200, std::move(body));
    return;
  }
  const vmm::StatusCode code = rep.status().code();
  const bool refused =
      code == vmm::StatusCode::kInvalidArgument || code == vmm::StatusCode::kResourceExhausted;
  metrics_->Scale(method, refused ? "refused" : "failed", nullptr);
  done();
  if (refused) {
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
