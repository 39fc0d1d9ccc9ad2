// The service's metrics (service_internal.h ServiceMetrics) and the thread that reads the
// arenas from the HMM (OpenAiService::StatsLoop).
//
// vLLM's meanings (vllm/v1/metrics/loggers.py), under "emoe:" instead of "vllm:", label
// model_name on the engine metrics:
//   num_requests_running / _waiting, kv_cache_usage_perc (0..1)   from Coordinator::Snapshot()
//   prompt_tokens_total, generation_tokens_total                  as tokens are produced
//   time_to_first_token_seconds     first token - arrival (arrival: the HTTP request read)
//   inter_token_latency_seconds     between two tokens of a request
//   e2e_request_latency_seconds     response end - arrival
//   request_queue_time_seconds      arrival -> scheduled; the engine reports no scheduling time,
//                                   so "scheduled" is the start of the step that produced the
//                                   first token: the end of the step before it (or the arrival,
//                                   when serving was idle)
//   request_prompt_tokens / request_generation_tokens   histograms, buckets 1-2-5 up to
//                                   max_model_len (vLLM's build_1_2_5_buckets)
//   request_success_total{finished_reason}   stop / length / abort
// Ours: devices_serving, requests_in_flight, scale_events_total{method,result},
// scale_latency_seconds{method}, scale_downtime_seconds{method}, scale_bytes_total{kind},
// device_seconds_total, arena_bytes{device,usage}, arena_capacity_bytes{device},
// requests_rejected_total{reason}, http_requests_total{code}.
#include <chrono>

#include "server/service.h"
#include "service_internal.h"

namespace emoe::server {
namespace {

const std::vector<std::string> kModel = {"model_name"};
// The help of the families whose series are created in more than one place.
constexpr const char* kSuccessHelp = "Count of successfully processed requests.";
constexpr const char* kScaleBytesHelp =
    "Bytes moved by scale events: copied device to device, remapped in place, read from the "
    "checkpoint.";

// vLLM's build_1_2_5_buckets(max): 1, 2, 5, 10, 20, 50, ... while <= max.
std::vector<double> Buckets125(int64_t max) {
  std::vector<double> b;
  for (double e = 1; b.empty() || b.back() < static_cast<double>(max); e *= 10) {
    for (double m : {1.0, 2.0, 5.0}) {
      if (m * e <= static_cast<double>(max)) b.push_back(m * e);
    }
    if (e * 10 > static_cast<double>(max)) break;
  }
  if (b.empty()) b.push_back(1);
  return b;
}

}  // namespace

ServiceMetrics::ServiceMetrics(const std::string& model_name, int64_t max_model_len)
    : model_(model_name), token_buckets_(Buckets125(max_model_len)) {
  Registry& r = registry_;
  const std::vector<std::string> m = {model_};
  running_ = &r.gauge("emoe:num_requests_running", "Number of requests in model execution batches.",
                      kModel, m);
  waiting_ = &r.gauge("emoe:num_requests_waiting", "Number of requests waiting to be processed.",
                      kModel, m);
  kv_usage_ =
      &r.gauge("emoe:kv_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage.", kModel, m);
  prompt_tokens_ =
      &r.counter("emoe:prompt_tokens_total", "Number of prefill tokens processed.", kModel, m);
  generation_tokens_ = &r.counter("emoe:generation_tokens_total",
                                  "Number of generation tokens processed.", kModel, m);
  ttft_ = &r.histogram("emoe:time_to_first_token_seconds",
                       "Histogram of time to first token in seconds.", kTtftBuckets, kModel, m);
  itl_ =
      &r.histogram("emoe:inter_token_latency_seconds",
                   "Histogram of inter-token latency in seconds.", kInterTokenBuckets, kModel, m);
  e2e_ = &r.histogram("emoe:e2e_request_latency_seconds",
                      "Histogram of e2e request latency in seconds.", kRequestLatencyBuckets,
                      kModel, m);
  queue_ = &r.histogram("emoe:request_queue_time_seconds",
                        "Histogram of time spent in WAITING phase for request.",
                        kRequestLatencyBuckets, kModel, m);
  request_prompt_ = &r.histogram("emoe:request_prompt_tokens",
                                 "Number of prefill tokens processed.", token_buckets_, kModel, m);
  request_generation_ =
      &r.histogram("emoe:request_generation_tokens", "Number of generation tokens processed.",
                   token_buckets_, kModel, m);
  for (const char* reason : {"stop", "length", "abort"}) {
    r.counter("emoe:request_success_total", kSuccessHelp, {"model_name", "finished_reason"},
              {model_, reason});
  }
  devices_ = &r.gauge("emoe:devices_serving", "Devices serving (the primary's and replicas').");
  in_flight_ = &r.gauge("emoe:requests_in_flight",
                        "Requests admitted and not yet answered (the admission bound's count).");
  device_seconds_ = &r.counter("emoe:device_seconds_total",
                               "Integral of the devices serving over time (device-seconds).");
  for (const char* kind : {"p2p", "remapped", "disk"}) {
    r.counter("emoe:scale_bytes_total", kScaleBytesHelp, {"kind"}, {kind});
  }
}

void ServiceMetrics::FirstToken(double ttft_s, double queue_s, int64_t prompt_tokens) {
  ttft_->Observe(ttft_s);
  queue_->Observe(queue_s);
  prompt_tokens_->Inc(static_cast<double>(prompt_tokens));
  generation_tokens_->Inc();
}

void ServiceMetrics::Token(double gap_s) {
  generation_tokens_->Inc();
  if (gap_s >= 0) itl_->Observe(gap_s);
}

void ServiceMetrics::Finished(const std::string& reason, double e2e_s, int64_t prompt_tokens,
                              int64_t generation_tokens) {
  registry_
      .counter("emoe:request_success_total", kSuccessHelp, {"model_name", "finished_reason"},
               {model_, reason})
      .Inc();
  e2e_->Observe(e2e_s);
  request_prompt_->Observe(static_cast<double>(prompt_tokens));
  request_generation_->Observe(static_cast<double>(generation_tokens));
}

void ServiceMetrics::Rejected(const std::string& reason) {
  registry_
      .counter("emoe:requests_rejected_total",
               "Requests answered with an error, by reason (invalid, model_not_found, too_long, "
               "queue_full, not_serving, shutting_down, engine_rejected, engine_failed).",
               {"reason"}, {reason})
      .Inc();
}

void ServiceMetrics::Http(int status) {
  registry_
      .counter("emoe:http_requests_total", "HTTP responses sent by the service, by status code.",
               {"code"}, {std::to_string(status)})
      .Inc();
}

void ServiceMetrics::Scale(const std::string& method, const std::string& result,
                           const engine::ScaleReport* report) {
  registry_
      .counter("emoe:scale_events_total",
               "Scale events answered, by method and result (ok, refused, failed: rolled back).",
               {"method", "result"}, {method, result})
      .Inc();
  if (report == nullptr) return;
  registry_
      .histogram("emoe:scale_latency_seconds",
                 "Seconds from a scale command to the new configuration serving.", kScaleBuckets,
                 {"method"}, {method})
      .Observe(report->latency_s);
  registry_
      .histogram("emoe:scale_downtime_seconds", "Seconds of a scale event when nothing served.",
                 kScaleBuckets, {"method"}, {method})
      .Observe(report->downtime_s);
  const std::pair<const char*, uint64_t> kinds[] = {{"p2p", report->bytes_p2p},
                                                    {"remapped", report->bytes_remapped},
                                                    {"disk", report->bytes_disk}};
  for (const auto& k : kinds) {
    registry_.counter("emoe:scale_bytes_total", kScaleBytesHelp, {"kind"}, {k.first})
        .Inc(static_cast<double>(k.second));
  }
}

void ServiceMetrics::Serving(const engine::ServingSnapshot& s, size_t in_flight) {
  running_->Set(static_cast<double>(s.running));
  waiting_->Set(static_cast<double>(s.waiting));
  kv_usage_->Set(s.kv_usage());
  devices_->Set(static_cast<double>(s.devices.size()));
  in_flight_->Set(static_cast<double>(in_flight));
  // The counter follows the snapshot's integral (scrapes may race: only the larger one adds).
  double seen = device_seconds_seen_.load();
  while (s.device_seconds > seen &&
         !device_seconds_seen_.compare_exchange_weak(seen, s.device_seconds)) {
  }
  if (s.device_seconds > seen) device_seconds_->Inc(s.device_seconds - seen);
}

void ServiceMetrics::Arenas(const std::vector<hbm::DeviceStats>& stats) {
  for (const hbm::DeviceStats& d : stats) {
    const std::string device = std::to_string(d.device);
    for (int u = 0; u < hbm::kNumUsages; ++u) {
      if (d.usage[u].name.empty()) continue;  // no arena of that usage
      registry_
          .gauge("emoe:arena_bytes", "Bytes held in each device's arena of each usage.",
                 {"device", "usage"}, {device, hbm::UsageName(static_cast<hbm::Usage>(u))})
          .Set(static_cast<double>(d.usage[u].used_bytes));
    }
    registry_
        .gauge("emoe:arena_capacity_bytes",
               "Memory of each device (what its arenas may hold together), bytes.", {"device"},
               {device})
        .Set(static_cast<double>(d.capacity_bytes));
  }
}

void OpenAiService::StatsLoop() {
  for (;;) {
    // The HMM may be busy with a scale event (hmmd serializes its requests): this thread waits
    // for it, a scrape never does.
    auto stats = coordinator_->hmm().Stats();
    if (stats.ok()) metrics_->Arenas(*stats);
    vmm::MutexLock l(&stats_mu_);
    if (stats_stop_) return;
    stats_cv_.WaitFor(&stats_mu_, std::chrono::duration<double>(o_.stats_interval_s));
    if (stats_stop_) return;
  }
}

}  // namespace emoe::server
