// bench/serve_fake.h: a paced stand-in for emoe_server, to measure serve_bench itself. It
// speaks the same API through the same layers (server/http.h, server/openai_api.h: the same
// request parser, chunk JSON and SSE framing) but has no engine: every stream gets one token
// chunk per token_interval_s exactly (a pacing thread writes them), so that what serve_bench
// measures beyond that pace (TTFT above one interval, TPOT above the interval, gaps) is the cost
// of the HTTP path and of the client, not of a model.
//
// Routes: GET /v1/models, GET /metrics (emoe:device_seconds_total, emoe:devices_serving),
// POST /v1/completions (streamed; token text "t<k> "), POST /scale_elastic_ep (answers 200 after
// scale_s with {"from", "to", "latency_s"}; 409 while one runs). Anything else: 404.
//
// Thread safety: Start/Stop from one thread; the handler runs on the HTTP I/O threads, the
// pacing on a thread of its own; the shared state is under mu_.
#ifndef BENCH_SERVE_FAKE_H_
#define BENCH_SERVE_FAKE_H_

#include <chrono>
#include <memory>
#include <queue>
#include <string>
#include <thread>
#include <vector>

#include "server/http.h"
#include "vmm/mutex.h"
#include "vmm/status.h"

namespace emoe::bench {

struct FakeServerOptions {
  server::HttpOptions http;        // host, port (0: any), io_threads, limits
  std::string model = "fake";      // the served model name
  double token_interval_s = 0.02;  // one token chunk per stream per interval
  double scale_s = 0.5;            // how long a scale event takes
  int devices = 2;                 // devices "serving" at the start
  vmm::Status Validate() const;
};

class FakeServer {
 public:
  // Listens and starts pacing; errors are HttpServer::Start's or Validate's.
  static vmm::StatusOr<std::unique_ptr<FakeServer>> Start(const FakeServerOptions& o);
  ~FakeServer();  // Stop()
  int port() const { return http_->port(); }
  // Stops accepting, ends open streams (cut), joins the pacing thread. Idempotent.
  void Stop();

 private:
  using Clock = std::chrono::steady_clock;
  struct Stream;  // one open completion
  struct Due {
    Clock::time_point at;
    std::shared_ptr<Stream> stream;  // null: a scale event's answer
    std::shared_ptr<server::HttpExchange> scale;
    bool operator>(const Due& o) const { return at > o.at; }
  };

  explicit FakeServer(const FakeServerOptions& o);
  void Handle(std::shared_ptr<server::HttpExchange> x);
  void Complete(const std::shared_ptr<server::HttpExchange>& x);
  void Scale(const std::shared_ptr<server::HttpExchange>& x);
  std::string Metrics();
  void Pace();
  // Writes the stream's next chunk (the finish, usage and [DONE] after its last token); true
  // while it has more to send.
  bool Advance(Stream* s);

  FakeServerOptions o_;
  std::unique_ptr<server::HttpServer> http_;
  const Clock::time_point start_ = Clock::now();
  vmm::Mutex mu_;
  vmm::CondVar wake_;
  std::priority_queue<Due, std::vector<Due>, std::greater<Due>> due_ GUARDED_BY(mu_);
  bool stopping_ GUARDED_BY(mu_) = false;
  bool scaling_ GUARDED_BY(mu_) = false;
  int devices_ GUARDED_BY(mu_) = 2;
  double device_seconds_ GUARDED_BY(mu_) = 0;  // up to devices_since_
  Clock::time_point devices_since_ GUARDED_BY(mu_);
  int scale_target_ GUARDED_BY(mu_) = 0;
  std::thread pacer_;
};

}  // namespace emoe::bench

#endif  // BENCH_SERVE_FAKE_H_
