// The paced stand-in server (serve_fake.h). The pacing thread owns a min-heap of what is due
// next (a stream's next chunk, a scale event's answer); each stream's chunks are due at fixed
// multiples of the interval from its start (no drift: a late chunk does not delay the next).
#include "bench/serve_fake.h"

#include <atomic>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <variant>

#include "server/openai_api.h"

namespace emoe::bench {

namespace api = emoe::server;

struct FakeServer::Stream {
  std::shared_ptr<server::HttpExchange> x;
  api::ResponseId id;
  int64_t prompt_tokens = 0, max_tokens = 0, sent = 0;
  bool include_usage = false;
  std::atomic<bool> gone{false};  // the client disconnected
};

vmm::Status FakeServerOptions::Validate() const {
  VMM_RETURN_IF_ERROR(http.Validate());
  if (model.empty()) return vmm::Status::InvalidArgument("FakeServerOptions.model is empty");
  if (!(token_interval_s > 0) || token_interval_s > 60) {
    return vmm::Status::InvalidArgument("FakeServerOptions.token_interval_s must be in (0, 60]");
  }
  if (!(scale_s >= 0) || scale_s > 3600) {
    return vmm::Status::InvalidArgument("FakeServerOptions.scale_s must be in [0, 3600]");
  }
  if (devices < 1) return vmm::Status::InvalidArgument("FakeServerOptions.devices must be >= 1");
  return vmm::Status::Ok();
}

FakeServer::FakeServer(const FakeServerOptions& o) : o_(o) {
  vmm::MutexLock l(&mu_);
  devices_ = o.devices;
  devices_since_ = start_;
}

vmm::StatusOr<std::unique_ptr<FakeServer>> FakeServer::Start(const FakeServerOptions& o) {
  VMM_RETURN_IF_ERROR(o.Validate());
  std::unique_ptr<FakeServer> s(new FakeServer(o));
  FakeServer* self = s.get();
  VMM_ASSIGN_OR_RETURN(
      s->http_, server::HttpServer::Start(o.http, [self](auto x) { self->Handle(std::move(x)); }));
  s->pacer_ = std::thread([self] { self->Pace(); });
  return s;
}

FakeServer::~FakeServer() { Stop(); }

void FakeServer::Stop() {
  {
    vmm::MutexLock l(&mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  wake_.SignalAll();
  if (pacer_.joinable()) pacer_.join();
  if (http_) http_->Stop(/*grace_s=*/0);
}

namespace {

server::HttpResponse Json(int status, std::string body) {
  server::HttpResponse r;
  r.status = status;
  r.body = std::move(body);
  return r;
}

}  // namespace

void FakeServer::Handle(std::shared_ptr<server::HttpExchange> x) {
  const server::HttpRequest& q = x->request();
  if (q.method == "GET" && q.path == "/v1/models") {
    x->Respond(Json(200, api::ModelsJson(o_.model, o_.model, 0, 1 << 20)));
  } else if (q.method == "GET" && q.path == "/metrics") {
    server::HttpResponse r = Json(200, Metrics());
    r.content_type = "text/plain; version=0.0.4; charset=utf-8";
    x->Respond(std::move(r));
  } else if (q.method == "POST" && q.path == "/v1/completions") {
    Complete(x);
  } else if (q.method == "POST" && q.path == "/scale_elastic_ep") {
    Scale(x);
  } else {
    api::ApiError e;
    e.status = 404;
    e.type = "not_found_error";
    e.message = "no route " + q.method + " " + q.path + " (serve_fake_server)";
    x->Respond(Json(404, e.ToJson()));
  }
}

void FakeServer::Complete(const std::shared_ptr<server::HttpExchange>& x) {
  auto parsed = api::ParseCompletionRequest(x->request().body, /*chat=*/false);
  if (auto* e = std::get_if<api::ApiError>(&parsed))
    return x->Respond(Json(e->status, e->ToJson()));
  const api::CompletionRequest& req = std::get<api::CompletionRequest>(parsed);
  if (req.model != o_.model) {
    api::ApiError e;
    e.status = 404;
    e.type = "not_found_error";
    e.param = "model";
    e.code = "model_not_found";
    e.message = "The model '" + req.model + "' does not exist.";
    return x->Respond(Json(404, e.ToJson()));
  }
  if (!req.stream || !req.prompt_ids || !req.max_tokens) {
    return x->Respond(Json(400, api::BadRequest("serve_fake_server streams token-id prompts "
                                                "with max_tokens only")
                                    .ToJson()));
  }
  auto s = std::make_shared<Stream>();
  s->x = x;
  s->id = api::NewResponseId(false, o_.model);
  s->prompt_tokens = static_cast<int64_t>(req.prompt_ids->size());
  s->max_tokens = *req.max_tokens;
  s->include_usage = req.include_usage;
  std::weak_ptr<Stream> weak = s;
  x->OnDisconnect([weak] {
    if (auto p = weak.lock()) p->gone = true;
  });
  x->StartStream(200, "text/event-stream", {});
  const auto first = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                        std::chrono::duration<double>(o_.token_interval_s));
  {
    vmm::MutexLock l(&mu_);
    due_.push({first, std::move(s), nullptr});
  }
  wake_.Signal();
}

void FakeServer::Scale(const std::shared_ptr<server::HttpExchange>& x) {
  auto parsed = api::ParseScaleRequest(x->request().body);
  if (auto* e = std::get_if<api::ApiError>(&parsed))
    return x->Respond(Json(e->status, e->ToJson()));
  const int target = static_cast<int>(std::get<api::ScaleRequest>(parsed).target);
  {
    vmm::MutexLock l(&mu_);
    if (scaling_) {
      api::ApiError e;
      e.status = 409;
      e.message = "a scale event is running";
      return x->Respond(Json(409, e.ToJson()));
    }
    scaling_ = true;
    scale_target_ = target;
    due_.push({Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                  std::chrono::duration<double>(o_.scale_s)),
               nullptr, x});
  }
  wake_.Signal();
}

std::string FakeServer::Metrics() {
  vmm::MutexLock l(&mu_);
  const double since = std::chrono::duration<double>(Clock::now() - devices_since_).count();
  char buf[512];
  std::snprintf(buf, sizeof(buf),
                "# HELP emoe:device_seconds_total The integral of devices serving over time.\n"
                "# TYPE emoe:device_seconds_total counter\n"
                "emoe:device_seconds_total %.6f\n"
                "# HELP emoe:devices_serving Devices serving.\n"
                "# TYPE emoe:devices_serving gauge\n"
                "emoe:devices_serving %d\n",
                device_seconds_ + devices_ * since, devices_);
  return buf;
}

bool FakeServer::Advance(Stream* s) {
  if (s->gone) return false;
  if (s->sent < s->max_tokens) {
    s->x->Write(api::SseEvent(api::DeltaChunkJson(s->id, false, "t" + std::to_string(s->sent) + " ",
                                                  "", s->include_usage)));
    ++s->sent;
    return true;
  }
  std::string tail =
      api::SseEvent(api::DeltaChunkJson(s->id, false, "", "length", s->include_usage));
  if (s->include_usage) {
    tail += api::SseEvent(api::UsageChunkJson(s->id, false, {s->prompt_tokens, s->max_tokens}));
  }
  tail += api::SseDone();
  s->x->Write(std::move(tail));
  s->x->End();
  return false;
}

void FakeServer::Pace() {
  const auto interval = std::chrono::duration_cast<Clock::duration>(
      std::chrono::duration<double>(o_.token_interval_s));
  vmm::MutexLock l(&mu_);
  while (!stopping_) {
    if (due_.empty()) {
      wake_.Wait(&mu_);
      continue;
    }
    const auto now = Clock::now();
    if (due_.top().at > now) {
      wake_.WaitFor(&mu_, due_.top().at - now);
      continue;
    }
    Due d = due_.top();
    due_.pop();
    if (d.scale) {
      const double since = std::chrono::duration<double>(now - devices_since_).count();
      device_seconds_ += devices_ * since;
      devices_since_ = now;
      const nlohmann::json report = {
          {"from", devices_}, {"to", scale_target_}, {"latency_s", o_.scale_s}};
      devices_ = scale_target_;
      scaling_ = false;
      d.scale->Respond(Json(200, report.dump()));
      continue;
    }
    // Writes queue on the connection's strand (HttpExchange is thread-safe): cheap to do here.
    if (Advance(d.stream.get())) {
      d.at += interval;
      due_.push(std::move(d));
    }
  }
}

}  // namespace emoe::bench
