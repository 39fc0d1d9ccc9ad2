// server/src/service_internal.h: the service's private parts: one request in flight (Pending)
// and the metrics the service keeps (ServiceMetrics, service_metrics.cc).
//
// Thread safety: a Pending's mutable state is GUARDED_BY its mutex (the I/O thread that admits
// it, the serving thread, Stop); ServiceMetrics from any thread (the registry's atomics).
#ifndef SERVER_SRC_SERVICE_INTERNAL_H_
#define SERVER_SRC_SERVICE_INTERNAL_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "engine/scale_types.h"
#include "engine/serving_view.h"
#include "hbm/device.h"
#include "server/http.h"
#include "server/metrics.h"
#include "server/openai_api.h"
#include "tokenizer/streaming.h"
#include "tools/model_text.h"
#include "vmm/mutex.h"

namespace emoe::server {

// One request from its admission to the end of its response. Lock order: a Pending's mu
// before the service's mu_ (admission inserts while holding it); never the other way.
struct Pending {
  Pending(int64_t id_, std::shared_ptr<HttpExchange> ex_, std::vector<std::string> stop_strings)
      : id(id_), ex(std::move(ex_)), stops(std::move(stop_strings)) {}

  // Fixed at admission.
  const int64_t id;
  const std::shared_ptr<HttpExchange> ex;
  ResponseId rid;
  bool chat = false, stream = false, include_usage = false, include_stop_str = false;
  int64_t prompt_tokens = 0;
  int64_t min_tokens = 0;
  // With min_tokens: the stop tokens, checked here (the engine gets none, so that it does not
  // stop before min_tokens); empty otherwise (the engine stops at them).
  std::vector<int32_t> own_stop_ids;
  double arrival_s = 0;  // coordinator clock
  std::atomic<bool> client_gone{false};

  vmm::Mutex mu;
  std::unique_ptr<tools::TextStream> text GUARDED_BY(mu);
  tokenizer::StopStrings stops GUARDED_BY(mu);
  std::string whole GUARDED_BY(mu);  // a whole answer's text so far
  int64_t generated GUARDED_BY(mu) = 0;
  double first_token_s GUARDED_BY(mu) = 0;
  double last_token_s GUARDED_BY(mu) = 0;
  bool ended GUARDED_BY(mu) = false;  // the response is over (finished, stopped, failed)
};

// The service's metrics (README "Metrics"): vLLM's meanings and buckets under "emoe:", with
// label model_name on the engine's, and the elastic ones of this project.
class ServiceMetrics {
 public:
  ServiceMetrics(const std::string& model_name, int64_t max_model_len);
  Registry& registry() { return registry_; }

  // A request's first token: its TTFT, its queue time, its prompt.
  void FirstToken(double ttft_s, double queue_s, int64_t prompt_tokens);
  // A token after the first, `gap_s` after the previous one (gap_s < 0: the first: counted
  // only).
  void Token(double gap_s);
  // A response ended ("stop", "length", "abort"): e2e latency and the request's sizes.
  void Finished(const std::string& reason, double e2e_s, int64_t prompt_tokens,
                int64_t generation_tokens);
  void Rejected(const std::string& reason);
  void Http(int status);
  // A scale event answered: result "ok" (with its report), "refused" or "failed".
  void Scale(const std::string& method, const std::string& result,
             const engine::ScaleReport* report);
  void Serving(const engine::ServingSnapshot& s, size_t in_flight);
  void Arenas(const std::vector<hbm::DeviceStats>& stats);

 private:
  Registry registry_;
  const std::string model_;
  Counter *prompt_tokens_, *generation_tokens_;
  Histogram *ttft_, *itl_, *e2e_, *queue_, *request_prompt_, *request_generation_;
  Gauge *running_, *waiting_, *kv_usage_, *devices_, *in_flight_;
  Counter* device_seconds_;
  std::atomic<double> device_seconds_seen_{0};
  std::vector<double> token_buckets_;  // vLLM's 1-2-5 buckets up to max_model_len
};

}  // namespace emoe::server

#endif  // SERVER_SRC_SERVICE_INTERNAL_H_
