// The service's routes (service.h): which handler a method and path go to, the small
// endpoints (/v1/models, /health, /version, /metrics), and what every answer carries: the
// x-emoe-config header and its count in http_requests_total.
//
// Unknown paths are 404 and known paths with another method 405 (with Allow), in OpenAI's
// error shape like every error here.
#include <nlohmann/json.hpp>

#include "server/service.h"
#include "service_internal.h"

namespace emoe::server {
namespace {

struct Route {
  const char* path;
  const char* methods;  // "GET", "POST" or "GET, POST" (the Allow header of a 405)
};
constexpr Route kRoutes[] = {
    {"/v1/completions", "POST"},   {"/v1/chat/completions", "POST"},
    {"/v1/models", "GET"},         {"/health", "GET"},
    {"/version", "GET"},           {"/metrics", "GET"},
    {"/scale_elastic_ep", "POST"}, {"/is_scaling_elastic_ep", "GET, POST"},
};

bool Allowed(const Route& r, const std::string& method) {
  const std::string m = r.methods;
  if (m == method) return true;
  return m == "GET, POST" && (method == "GET" || method == "POST");
}

}  // namespace

OpenAiService::Headers OpenAiService::ConfigHeaders() const {
  const engine::ServingSnapshot s = coordinator_->Snapshot();
  return {{"x-emoe-config", "generation=" + std::to_string(s.generation) +
                                "; devices=" + engine::DevicesText(s.devices)}};
}

void OpenAiService::Reply(const ExchangePtr& ex, int status, std::string body,
                          const std::string& content_type, Headers extra) {
  HttpResponse r;
  r.status = status;
  r.content_type = content_type;
  r.body = std::move(body);
  r.headers = ConfigHeaders();
  r.headers.insert(r.headers.end(), extra.begin(), extra.end());
  metrics_->Http(status);
  ex->Respond(std::move(r));
}

void OpenAiService::ReplyError(const ExchangePtr& ex, const ApiError& e, const std::string& reason,
                               Headers extra) {
  if (!reason.empty()) metrics_->Rejected(reason);
  Reply(ex, e.status, e.ToJson(), "application/json", std::move(extra));
}

void OpenAiService::StartSse(const ExchangePtr& ex) {
  metrics_->Http(200);
  ex->StartStream(200, "text/event-stream", ConfigHeaders());
}

void OpenAiService::HandleHealth(const ExchangePtr& ex) {
  const engine::ServingSnapshot s = coordinator_->Snapshot();
  if (!s.down.empty()) {
    ApiError e;
    e.status = 503;
    e.type = "server_error";
    e.message = "not serving: " + s.down;
    return ReplyError(ex, e);
  }
  if (draining_) {
    ApiError e;
    e.status = 503;
    e.type = "server_error";
    e.message = "the server is shutting down";
    return ReplyError(ex, e);
  }
  Reply(ex, 200, "", "text/plain");
}

void OpenAiService::Handle(ExchangePtr ex) {
  const HttpRequest& req = ex->request();
  const Route* route = nullptr;
  for (const Route& r : kRoutes) {
    if (req.path == r.path) route = &r;
  }
  if (route == nullptr) {
    ApiError e;
    e.status = 404;
    e.type = "NotFoundError";
    e.message = "no route " + req.method + " " + req.path +
                " (this server serves /v1/completions, /v1/chat/completions, /v1/models, "
                "/health, /version, /metrics, /scale_elastic_ep, /is_scaling_elastic_ep)";
    e.code = "404";
    return ReplyError(ex, e);
  }
  if (!Allowed(*route, req.method)) {
    ApiError e;
    e.status = 405;
    e.message = std::string("method ") + req.method + " is not allowed on " + req.path +
                " (allowed: " + route->methods + ")";
    e.code = "405";
    return ReplyError(ex, e, "", {{"Allow", route->methods}});
  }
  const std::string path = req.path;
  if (path == "/v1/completions") return HandleCompletion(ex, /*chat=*/false);
  if (path == "/v1/chat/completions") return HandleCompletion(ex, /*chat=*/true);
  if (path == "/scale_elastic_ep") return HandleScale(ex);
  if (path == "/is_scaling_elastic_ep") return HandleIsScaling(ex);
  if (path == "/health") return HandleHealth(ex);
  if (path == "/metrics") return Reply(ex, 200, RenderMetrics(), kPrometheusContentType);
  if (path == "/version") {
    return Reply(
        ex, 200,
        nlohmann::json{{"version", o_.version.empty() ? EMOE_VERSION : o_.version}}.dump());
  }
  Reply(ex, 200, ModelsJson(o_.served_model_name, o_.model_root, created_s_, o_.max_model_len));
}

std::string OpenAiService::RenderMetrics() { return metrics_->registry().Render(); }

}  // namespace emoe::server
