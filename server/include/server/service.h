// server/service.h: the OpenAI-compatible service over a Coordinator (README "HTTP API"): the
// routes, the completions (whole and streamed as Server-Sent Events), admission, the elastic
// admin endpoints, the Prometheus metrics, and the orderly stop.
//
//   POST /v1/completions, /v1/chat/completions   text in and out through tools::ModelText
//   GET  /v1/models, /health, /version, /metrics
//   POST /scale_elastic_ep                      Coordinator::ScaleTo on the scale thread
//   GET|POST /is_scaling_elastic_ep             Coordinator::scale_progress()
// With an autoscaler (ServiceOptions::autoscale), its events go through the same scale thread
// as POST /scale_elastic_ep; a manual event while it runs is its new state.
// Every answer carries "x-emoe-config: generation=G; devices=[..]" (Coordinator::Snapshot()
// when it is answered; for a stream, when it starts). Errors are OpenAI's shape
// {"error": {"message", "type", "param", "code"}}: 400 bad request (the field named), 404 an
// unknown model or path, 405 a wrong method, 409 a scale already running, 429 the admission
// bound reached (Retry-After), 500 the engine failed the request, 503 not serving or stopping.
//
// Model: one request is a Pending (service_internal.h), in a map by its engine id from its
// admission to its response's end. The I/O threads parse, encode and Submit; the serving thread
// tells this observer the tokens (OnTokens: each request's TextStream and StopStrings, then a
// chunk queued on its exchange, which never blocks) and the results (OnFinished: the finish
// chunk, usage and [DONE], or the whole answer). A stop string ends the response at once and
// Cancel()s the request; so does a client that disconnects. Scale events run on a thread of
// their own, never on an I/O or the serving thread; ordinary requests never wait for them.
//
// Lifetime: create the service, then the Coordinator with CoordinatorOptions::observer = the
// service (and keep_history = false), then Start(coordinator). To end: Stop(grace), then
// destroy the coordinator, then the service.
//
// Thread safety: Start and Stop from one thread (main); the observer methods from the serving
// thread; RenderMetrics, port and in_flight from any thread.
#ifndef SERVER_SERVICE_H_
#define SERVER_SERVICE_H_

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <variant>
#include <vector>

#include "engine/coordinator.h"
#include "engine/serving_view.h"
#include "server/autoscaler.h"
#include "server/http.h"
#include "server/openai_api.h"
#include "tools/model_text.h"
#include "vmm/mutex.h"

namespace emoe::server {

struct ServiceOptions {
  std::string served_model_name;  // what a request's "model" must be (required)
  std::string model_root;         // /v1/models "root": the model directory
  // A request's prompt + max_tokens at most this many tokens (vLLM's max_model_len): the
  // model's context, or less when a device's KV store holds fewer tokens.
  int64_t max_model_len = 4096;
  // A prompt at most this many tokens: without chunked prefill the scheduler prefills a prompt
  // in one step (its token budget, --max_tokens_per_step, minus the first generated token);
  // with it, the context minus one.
  int64_t max_prompt_tokens = 2047;
  // Admission: a request that finds max_num_seqs + max_queue requests in flight (admitted, not
  // yet answered) is answered 429 with Retry-After.
  int max_num_seqs = 64;
  int max_queue = 1024;
  int max_devices = 1;  // /scale_elastic_ep targets are 1..max_devices (the HMM's devices)
  double retry_after_s = 1;
  double stats_interval_s = 1;  // how often the arena gauges are read from the HMM
  std::string version;          // GET /version; empty: the project's (CMake PROJECT_VERSION)
  HttpOptions http;
  // The autoscaler (server/autoscaler.h): runs when its mode is not off or it has a log;
  // its max_devices at most max_devices; its window and SLO bounds are the service's SLO
  // window's too.
  AutoscalerConfig autoscale;
  Status Validate() const;
};

struct Pending;
class ServiceMetrics;
class SloTracker;

class OpenAiService : public engine::ServingObserver {
 public:
  // `text` encodes the prompts and decodes the outputs; not owned, must outlive the service.
  OpenAiService(ServiceOptions options, const tools::ModelText* text);
  ~OpenAiService() override;  // Stop(0) when started and not stopped
  OpenAiService(const OpenAiService&) = delete;
  OpenAiService& operator=(const OpenAiService&) = delete;

  // Serves `coordinator` (created with this service as its observer; not owned; must live
  // until Stop returns): binds and listens (the HTTP server's errors name the address), starts
  // the arena stats thread. kInvalidArgument for bad options (named). REQUIRES: called once.
  Status Start(engine::Coordinator* coordinator);
  int port() const;  // the port bound (after Start)

  // The orderly stop: new completions are answered 503 at once; the requests in flight get up
  // to `grace_s` to finish; the rest end with an error (a stream: an error chunk, then
  // [DONE]; a whole answer: 503) and are cancelled in the engine; a running scale event is
  // waited for (it cannot be interrupted); then the HTTP server stops and the stats thread
  // ends. Afterwards the observer methods do nothing. Idempotent.
  void Stop(double grace_s);
  // Ends Stop's grace period now (a second stop signal); from any thread.
  void EndGraceNow() EXCLUDES(mu_);

  // engine::ServingObserver (the serving thread).
  void OnTokens(const std::vector<engine::TokenEvent>& tokens) override;
  void OnFinished(const std::vector<engine::RequestResult>& results) override;

  // The /metrics text (tests).
  std::string RenderMetrics();
  // Requests admitted and not yet answered.
  size_t in_flight() const EXCLUDES(mu_);

 private:
  using ExchangePtr = std::shared_ptr<HttpExchange>;
  using Headers = std::vector<std::pair<std::string, std::string>>;

  // service_routes.cc: dispatch, the small endpoints, and every answer's headers and counts.
  void Handle(ExchangePtr ex);
  Headers ConfigHeaders() const;
  void Reply(const ExchangePtr& ex, int status, std::string body,
             const std::string& content_type = "application/json", Headers extra = {});
  // An error answer; `reason` (non-empty) also counts it in requests_rejected_total.
  void ReplyError(const ExchangePtr& ex, const ApiError& e, const std::string& reason = "",
                  Headers extra = {});
  void StartSse(const ExchangePtr& ex);
  void HandleHealth(const ExchangePtr& ex);

  // service_completions.cc: admission to the answer.
  void HandleCompletion(const ExchangePtr& ex, bool chat);
  // An error to answer and its requests_rejected_total reason.
  struct Refusal {
    ApiError error;
    std::string reason;
  };
  // The engine request of `r` (its prompt encoded), or why it is refused.
  std::variant<engine::Request, Refusal> MakeRequest(const CompletionRequest& r, double arrival_s,
                                                     int64_t id) const;
  void Admit(const ExchangePtr& ex, const CompletionRequest& r, engine::Request req);
  void OnClientGone(int64_t id) EXCLUDES(mu_);
  std::shared_ptr<Pending> Take(int64_t id) EXCLUDES(mu_);  // out of the map
  void EndInFlight(const std::string& why) EXCLUDES(mu_);   // Stop's end of the rest

  // service_streaming.cc: one request's tokens and end (REQUIRES its Pending's mutex).
  // `step_start_s`: when the step that produced the token began (the previous step's end).
  void AddToken(Pending& p, const engine::TokenEvent& e, double step_start_s);
  void Emit(Pending& p, const std::string& piece);
  void Send(Pending& p, const std::string& text);
  void EndResponse(Pending& p, const std::string& finish_reason, int64_t completion_tokens);
  void EndWithError(Pending& p, const ApiError& e, const std::string& reason);
  void Finish(Pending& p, const engine::RequestResult& r);

  // service_scale.cc: the elastic admin endpoints.
  void HandleScale(const ExchangePtr& ex);
  void HandleIsScaling(const ExchangePtr& ex);
  // Starts a scale event on the scale thread (0), or says why not: 409 another is running, 503
  // the server is stopping. `ex` (null for the autoscaler's) gets the answer; `source`:
  // "manual" or "autoscaler".
  int StartScale(ExchangePtr ex, int target, engine::ScaleOptions options,
                 const std::string& source, std::string* why) EXCLUDES(scale_mu_);
  void RunScale(ExchangePtr ex, int target, engine::ScaleOptions options, const std::string& source)
      EXCLUDES(scale_mu_);

  // service_autoscale.cc: the autoscaler's view of serving, and its start.
  AutoscaleSignals AutoscaleSample(double now) EXCLUDES(scale_mu_);
  Status StartAutoscaler();

  // service_metrics.cc: the arena stats thread.
  void StatsLoop();

  const ServiceOptions o_;
  const tools::ModelText* const text_;
  std::unique_ptr<ServiceMetrics> metrics_;
  std::unique_ptr<SloTracker> slo_;         // the requests' SLO over the autoscaler's window
  std::unique_ptr<Autoscaler> autoscaler_;  // set by Start (when configured), before HTTP runs
  const int64_t created_s_;                 // Unix seconds at construction (/v1/models, responses)
  const uint64_t nonce_;                    // response ids and default seeds differ between runs
  // Set by Start before the HTTP server runs, kept until after it stopped: every thread that
  // reads it (I/O, scale, stats, serving) is started or joined around those two points.
  engine::Coordinator* coordinator_ = nullptr;
  std::unique_ptr<HttpServer> http_;
  std::atomic<bool> draining_{false};   // Stop began: new completions 503
  std::atomic<bool> stopped_{false};    // Stop ended: the observer does nothing
  std::atomic<bool> end_grace_{false};  // EndGraceNow
  std::atomic<int64_t> next_id_{1};
  std::atomic<double> last_step_t_{0};  // the previous OnTokens' time (queue-time estimate)

  mutable vmm::Mutex mu_;
  vmm::CondVar idle_cv_;  // signalled when pending_ becomes empty
  std::map<int64_t, std::shared_ptr<Pending>> pending_ GUARDED_BY(mu_);
  bool admission_closed_ GUARDED_BY(mu_) = false;  // EndInFlight ran

  vmm::Mutex scale_mu_;
  bool scaling_ GUARDED_BY(scale_mu_) = false;       // a scale event accepted and not yet answered
  std::string scale_stage_ GUARDED_BY(scale_mu_);    // "standby", "scale" while scaling_
  bool scale_closed_ GUARDED_BY(scale_mu_) = false;  // Stop: scale requests 503
  std::thread scale_thread_ GUARDED_BY(scale_mu_);

  vmm::Mutex stats_mu_;
  vmm::CondVar stats_cv_;
  bool stats_stop_ GUARDED_BY(stats_mu_) = false;
  std::thread stats_thread_;
};

}  // namespace emoe::server

#endif  // SERVER_SERVICE_H_
