// The open-loop load (serve_run.h).
#include "bench/serve_run.h"

#include <algorithm>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>

namespace emoe::bench {
namespace {

namespace asio = boost::asio;

std::chrono::steady_clock::duration Seconds(double s) {
  return std::chrono::duration_cast<std::chrono::steady_clock::duration>(
      std::chrono::duration<double>(std::max(0.0, s)));
}

// The load's state; everything runs on the io_context's one thread.
class Driver {
 public:
  Driver(asio::io_context* io, Client* client, const LoadOptions& o,
         const std::vector<PlannedRequest>& requests, const std::vector<PlannedScale>& scales,
         const std::function<double()>& clock)
      : io_(io), client_(client), o_(o), plan_(requests), clock_(clock), rng_(o.seed), timer_(*io) {
    out_.requests.resize(requests.size());
    out_.scales.resize(scales.size());
    for (size_t i = 0; i < scales.size(); ++i) out_.scales[i].plan = scales[i];
    out_.in_flight_at_scale_send.assign(scales.size(), 0);
    out_.in_flight_at_scale_end.assign(scales.size(), 0);
  }

  LoadResult Run() {
    out_.start_s = clock_();
    last_end_s_ = out_.start_s;
    ArmNextRequest();
    if (!out_.scales.empty()) ArmScale(0);
    io_->restart();
    io_->run();
    out_.wall_s = last_end_s_ - out_.start_s;
    return std::move(out_);
  }

 private:
  void ArmNextRequest() {
    if (next_ >= plan_.size()) return;
    timer_.expires_after(Seconds(out_.start_s + plan_[next_].arrival_s - clock_()));
    timer_.async_wait([this](const boost::system::error_code& ec) {
      if (ec) return;
      // Everything due by now goes out (a late timer catches up at once: open loop).
      const double now = clock_();
      while (next_ < plan_.size() && out_.start_s + plan_[next_].arrival_s <= now) Send(next_++);
      ArmNextRequest();
    });
  }

  void Send(size_t i) {
    const PlannedRequest& p = plan_[i];
    out_.requests[i].plan = p;
    out_.max_send_lag_s = std::max(out_.max_send_lag_s, clock_() - out_.start_s - p.arrival_s);
    out_.max_in_flight = std::max(out_.max_in_flight, ++in_flight_);
    client_->Stream(
        "/v1/completions", CompletionBody(o_.model, p, o_.token_ids, &rng_), p.output_tokens,
        o_.request_timeout_s,
        [this] { out_.max_streaming = std::max(out_.max_streaming, ++streaming_); },
        [this, i](StreamResult r) {
          --in_flight_;
          if (r.head_s >= 0) --streaming_;
          last_end_s_ = std::max(last_end_s_, r.end_s);
          out_.requests[i].result = std::move(r);
        });
  }

  // Scale events go one at a time (a server runs one; another meanwhile would be refused with
  // 409): event i + 1 is sent at its time or when event i has been answered, the later.
  void ArmScale(size_t i) {
    if (i >= out_.scales.size()) return;
    auto timer = std::make_shared<asio::steady_timer>(*io_);
    timer->expires_after(Seconds(out_.start_s + out_.scales[i].plan.at_s - clock_()));
    timer->async_wait([this, i, timer](const boost::system::error_code& ec) {
      if (ec) return;
      out_.in_flight_at_scale_send[i] = in_flight_;
      const nlohmann::json body = {{"new_data_parallel_size", out_.scales[i].plan.target}};
      client_->Call("POST", "/scale_elastic_ep", body.dump(), o_.scale_timeout_s,
                    [this, i](CallResult r) {
                      out_.in_flight_at_scale_end[i] = in_flight_;
                      last_end_s_ = std::max(last_end_s_, r.end_s);
                      out_.scales[i].result = std::move(r);
                      ArmScale(i + 1);
                    });
    });
  }

  asio::io_context* io_;
  Client* client_;
  const LoadOptions& o_;
  const std::vector<PlannedRequest>& plan_;
  const std::function<double()>& clock_;
  std::mt19937_64 rng_;
  asio::steady_timer timer_;
  size_t next_ = 0;
  int in_flight_ = 0, streaming_ = 0;
  double last_end_s_ = 0;
  LoadResult out_;
};

}  // namespace

LoadResult RunLoad(asio::io_context* io, Client* client, const LoadOptions& o,
                   const std::vector<PlannedRequest>& requests,
                   const std::vector<PlannedScale>& scales, const std::function<double()>& clock) {
  Driver d(io, client, o, requests, scales, clock);
  return d.Run();
}

}  // namespace emoe::bench
