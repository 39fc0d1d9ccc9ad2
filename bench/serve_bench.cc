// serve_bench: an open-loop serving benchmark of an OpenAI-compatible server (emoe_server, or
// vLLM / SGLang: it speaks only their HTTP API).
//
//   serve_bench --url=http://127.0.0.1:8000 --rate=20 --num_requests=500
//       --prompt_tokens=128 --output_tokens=128 [--scale_at=10:4,40:2] [--json=out.json]
//   serve_bench --url=... --trace=data/traces/azure_llm_2023_conv.csv --time_scale=10
//       --max_prompt_tokens=1024 --max_output_tokens=256 --slo_ttft_ms=2000 --slo_tpot_ms=100
//   serve_bench --url=... --rate_profile=0:1,20:1,25:10,55:10,60:1,90:1 --num_requests=100000
//   serve_bench --url=... --trace=CSV --trace_skip_s=600 --trace_duration_s=1800
//       --trace_sample=0.1 --time_scale=10
//
// Requests are streamed completions (POST /v1/completions, prompt a list of random token ids,
// ignore_eos, temperature 0, stream_options.include_usage), sent at Poisson arrivals (--rate)
// (--rate), at a piecewise-linear rate (--rate_profile), or at a trace's (--trace), whatever the
// server's answers (open loop). --scale_at POSTs /scale_elastic_ep while the load runs. The client
// is one thread of Asio (bench/ serve_client.h): thousands of open streams cost it sockets and
// memory, not threads; its own CPU time is in the report, so that a run shows whether the client
// kept up.
//
// The work: serve_workload (schedule), serve_client (HTTP), serve_sse (streams), serve_run
// (the load), serve_report (results).
#include <gflags/gflags.h>
#include <sys/resource.h>

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>

#include "bench/serve_client.h"
#include "bench/serve_report.h"
#include "bench/serve_run.h"
#include "bench/serve_workload.h"
#include "tools/flag_checks.h"
#include "vmm/file.h"

DEFINE_string(url, "", "the server, http://HOST:PORT (required)");
DEFINE_string(model, "", "the requests' \"model\" (empty: the first id of GET /v1/models)");
DEFINE_double(rate, 10, "Poisson arrivals, requests per second, > 0 (without --trace)");
DEFINE_string(rate_profile, "",
              "T:R,T:R,...: Poisson arrivals at a rate linear between the points (T seconds "
              "from 0, increasing; R req/s) until the last T, instead of --rate (then "
              "--num_requests is an upper bound); fixed --prompt_tokens/--output_tokens");
DEFINE_int32(prompt_tokens, 128, "with --rate: prompt tokens of every request, 1..1048576");
DEFINE_int32(output_tokens, 128, "with --rate: max_tokens of every request, 1..1048576");
DEFINE_string(trace, "",
              "arrivals and lengths from this trace CSV (TIMESTAMP,ContextTokens,"
              "GeneratedTokens; data/traces/azure_llm_2023_conv.csv) instead of --rate");
DEFINE_double(time_scale, 1, "with --trace: arrival offsets are divided by this, > 0");
DEFINE_double(trace_skip_s, 0,
              "with --trace: start this many trace seconds after its first row, >= 0 (the "
              "load's time 0 is that point)");
DEFINE_double(trace_duration_s, 0,
              "with --trace: only the rows less than this many trace seconds after the start, "
              ">= 0 (0: to the end)");
DEFINE_double(trace_sample, 1,
              "with --trace: keep each row with this probability, (0, 1] (seeded by --seed)");
DEFINE_int32(max_prompt_tokens, 1024, "with --trace: prompt lengths clipped to this, 1..1048576");
DEFINE_int32(max_output_tokens, 256, "with --trace: output lengths clipped to this, 1..1048576");
DEFINE_int32(num_requests, 100,
             "requests to send (with --trace: its first rows; with --rate_profile: at most "
             "this many, no bound when not given), 1..10000000");
DEFINE_double(slo_ttft_ms, 0, "SLO on time to first token, ms (0: none)");
DEFINE_double(slo_tpot_ms, 0, "SLO on time per output token, ms (0: none)");
DEFINE_string(scale_at, "",
              "T:N,T:N,...: POST /scale_elastic_ep {\"new_data_parallel_size\": N} T seconds "
              "after the start, while the load runs; one at a time (an event is sent at its T "
              "or when the one before has been answered, the later)");
DEFINE_int32(token_ids, 256,
             "prompt token ids are drawn uniformly from [0, token_ids) (256: valid for every "
             "vocabulary: the byte tokenizer's and Qwen3's byte tokens), 1..10000000");
DEFINE_uint64(seed, 1, "seed of the arrivals and the prompt tokens");
DEFINE_double(request_timeout_s, 600, "a request not ended this long after it was sent fails");
DEFINE_double(scale_timeout_s, 600, "a scale event not answered in this long fails");
DEFINE_string(json, "", "write the report as JSON here");
DEFINE_bool(per_request, true, "with --json: one row per request in \"per_request\"");

namespace {

namespace t = emoe::tools;
using vmm::Status;

constexpr int kMaxRequests = 10000000;  // --num_requests at most

Status CheckFlags() {
  constexpr int kMaxTokens = 1 << 20;
  gflags::CommandLineFlagInfo rate;
  gflags::GetCommandLineFlagInfo("rate", &rate);
  const int given = !FLAGS_trace.empty() + !rate.is_default + !FLAGS_rate_profile.empty();
  if (given > 1) {
    return Status::InvalidArgument("--rate, --rate_profile and --trace: give one of them");
  }
  if (FLAGS_trace.empty()) {
    for (const char* f : {"trace_skip_s", "trace_duration_s", "trace_sample"}) {
      gflags::CommandLineFlagInfo info;
      gflags::GetCommandLineFlagInfo(f, &info);
      if (!info.is_default)
        return Status::InvalidArgument(std::string("--") + f + " needs --trace");
    }
  }
  return t::FirstError({
      t::NonEmpty("url", FLAGS_url),
      t::Named("url", emoe::bench::ParseServerUrl(FLAGS_url).status()),
      t::RealIn("rate", FLAGS_rate, 0, true),
      t::IntIn("prompt_tokens", FLAGS_prompt_tokens, 1, kMaxTokens),
      t::IntIn("output_tokens", FLAGS_output_tokens, 1, kMaxTokens),
      t::RegularFile("trace", FLAGS_trace),
      t::RealIn("time_scale", FLAGS_time_scale, 0, true),
      t::RealIn("trace_skip_s", FLAGS_trace_skip_s, 0, false),
      t::RealIn("trace_duration_s", FLAGS_trace_duration_s, 0, false),
      t::RealIn("trace_sample", FLAGS_trace_sample, 0, true, 1),
      FLAGS_rate_profile.empty() ? Status::Ok()
                                 : emoe::bench::ParseRateProfile(FLAGS_rate_profile).status(),
      t::IntIn("max_prompt_tokens", FLAGS_max_prompt_tokens, 1, kMaxTokens),
      t::IntIn("max_output_tokens", FLAGS_max_output_tokens, 1, kMaxTokens),
      t::IntIn("num_requests", FLAGS_num_requests, 1, kMaxRequests),
      t::RealIn("slo_ttft_ms", FLAGS_slo_ttft_ms, 0, false),
      t::RealIn("slo_tpot_ms", FLAGS_slo_tpot_ms, 0, false),
      emoe::bench::ParseScaleAt(FLAGS_scale_at).status(),
      t::IntIn("token_ids", FLAGS_token_ids, 1, 10000000),
      t::RealIn("request_timeout_s", FLAGS_request_timeout_s, 0, true),
      t::RealIn("scale_timeout_s", FLAGS_scale_timeout_s, 0, true),
      t::CreatableFile("json", FLAGS_json),
  });
}

int Fail(const std::string& message) {
  std::fprintf(stderr, "serve_bench: %s\n", message.c_str());
  return t::kExitError;
}

// Raises the soft limit on open files to the hard one (each stream is a socket); the limit.
uint64_t RaiseFdLimit() {
  rlimit r{};
  if (getrlimit(RLIMIT_NOFILE, &r) != 0) return 0;
  if (r.rlim_cur < r.rlim_max) {
    rlimit want = r;
    want.rlim_cur = r.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &want) == 0) r = want;
  }
  return r.rlim_cur;
}

double CpuSeconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_utime.tv_sec + u.ru_stime.tv_sec + (u.ru_utime.tv_usec + u.ru_stime.tv_usec) * 1e-6;
}

// The first model id of GET /v1/models; the error names the URL and the answer.
vmm::StatusOr<std::string> FirstModel(boost::asio::io_context* io, emoe::bench::Client* c) {
  const emoe::bench::CallResult r = emoe::bench::CallNow(io, c, "GET", "/v1/models", "", 60);
  if (!r.error.empty()) return Status::Unavailable("GET /v1/models: " + r.error);
  const nlohmann::json j = nlohmann::json::parse(r.body, nullptr, /*allow_exceptions=*/false);
  if (r.status != 200 || !j.is_object() || !j.contains("data") || !j["data"].is_array() ||
      j["data"].empty() || !j["data"][0].is_object() || !j["data"][0].contains("id") ||
      !j["data"][0]["id"].is_string()) {
    return Status::Unavailable("GET /v1/models: HTTP " + std::to_string(r.status) +
                               ", no model id in '" + r.body.substr(0, 200) + "'");
  }
  return j["data"][0]["id"].get<std::string>();
}

// emoe:device_seconds_total from GET /metrics; nullopt (said on stderr) when it is not there.
std::optional<double> DeviceSeconds(boost::asio::io_context* io, emoe::bench::Client* c) {
  const emoe::bench::CallResult r = emoe::bench::CallNow(io, c, "GET", "/metrics", "", 60);
  std::optional<double> v;
  if (r.error.empty() && r.status == 200) {
    v = emoe::bench::MetricSum(r.body, "emoe:device_seconds_total");
  }
  if (!v) {
    std::fprintf(stderr, "serve_bench: no emoe:device_seconds_total from GET /metrics (%s)\n",
                 r.error.empty() ? ("HTTP " + std::to_string(r.status)).c_str() : r.error.c_str());
  }
  return v;
}

// The requests of the workload the flags name, its description in `in->workload`.
vmm::StatusOr<std::vector<emoe::bench::PlannedRequest>> Schedule(emoe::bench::ReportInputs* in) {
  char buf[200];
  if (!FLAGS_rate_profile.empty()) {
    std::snprintf(buf, sizeof(buf), " prompt=%d output=%d", FLAGS_prompt_tokens,
                  FLAGS_output_tokens);
    in->workload = std::string("rate_profile ") += FLAGS_rate_profile + buf;
    VMM_ASSIGN_OR_RETURN(auto profile, emoe::bench::ParseRateProfile(FLAGS_rate_profile));
    gflags::CommandLineFlagInfo n;
    gflags::GetCommandLineFlagInfo("num_requests", &n);
    return emoe::bench::RateProfileSchedule(profile,
                                            n.is_default ? kMaxRequests : FLAGS_num_requests,
                                            FLAGS_prompt_tokens, FLAGS_output_tokens, FLAGS_seed);
  }
  if (FLAGS_trace.empty()) {
    std::snprintf(buf, sizeof(buf), "poisson rate=%g/s prompt=%d output=%d", FLAGS_rate,
                  FLAGS_prompt_tokens, FLAGS_output_tokens);
    in->workload = buf;
    return emoe::bench::PoissonSchedule(FLAGS_num_requests, FLAGS_rate, FLAGS_prompt_tokens,
                                        FLAGS_output_tokens, FLAGS_seed);
  }
  std::snprintf(buf, sizeof(buf), " time_scale=%g skip_s=%g duration_s=%g sample=%g",
                FLAGS_time_scale, FLAGS_trace_skip_s, FLAGS_trace_duration_s, FLAGS_trace_sample);
  in->workload = std::string("trace ") += FLAGS_trace + buf;
  in->time_scale = FLAGS_time_scale;
  VMM_ASSIGN_OR_RETURN(const std::string csv,
                       vmm::ReadRegularFile(FLAGS_trace, "--trace", 1ull << 30));
  emoe::bench::TraceOptions o;
  o.max_requests = FLAGS_num_requests;
  o.time_scale = FLAGS_time_scale;
  o.max_prompt_tokens = FLAGS_max_prompt_tokens;
  o.max_output_tokens = FLAGS_max_output_tokens;
  o.skip_s = FLAGS_trace_skip_s;
  o.duration_s = FLAGS_trace_duration_s;
  o.sample = FLAGS_trace_sample;
  o.seed = FLAGS_seed;
  return emoe::bench::TraceSchedule(csv, FLAGS_trace, o);
}

}  // namespace

int main(int argc, char** argv) {
  gflags::SetUsageMessage(
      "open-loop serving benchmark of an OpenAI-compatible server (streamed completions, "
      "Poisson or trace arrivals, scale events during the load); a scale event not answered "
      "200 is exit code 3 too" +
      t::ExitCodesHelp(/*requests=*/true));
  if (auto rc = t::ParseFlags("serve_bench", &argc, &argv)) return *rc;
  if (Status s = CheckFlags(); !s.ok()) {
    std::fprintf(stderr, "serve_bench: %s\n", s.message().c_str());
    return t::kExitUsage;
  }
  const auto origin = std::chrono::steady_clock::now();
  // The wall clock at `origin`, so that the load's times line up with the server's log.
  const double origin_unix_s =
      std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  const std::function<double()> clock = [origin] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - origin).count();
  };
  emoe::bench::ReportInputs in;
  in.fd_limit = RaiseFdLimit();
  auto plan = Schedule(&in);
  if (!plan.ok()) return Fail(plan.status().ToString());
  auto scales = emoe::bench::ParseScaleAt(FLAGS_scale_at);
  const emoe::bench::ServerUrl url = *emoe::bench::ParseServerUrl(FLAGS_url);
  boost::asio::io_context io(1);
  auto endpoints = emoe::bench::Resolve(&io, url);
  if (!endpoints.ok()) return Fail(endpoints.status().message());
  emoe::bench::Client client(&io, *endpoints, url, clock);
  in.url = FLAGS_url;
  in.model = FLAGS_model;
  if (in.model.empty()) {
    auto m = FirstModel(&io, &client);
    if (!m.ok()) return Fail(m.status().message());
    in.model = *m;
  }
  in.device_seconds_start = DeviceSeconds(&io, &client);
  emoe::bench::LoadOptions o;
  o.model = in.model;
  o.token_ids = FLAGS_token_ids;
  o.seed = FLAGS_seed;
  o.request_timeout_s = FLAGS_request_timeout_s;
  o.scale_timeout_s = FLAGS_scale_timeout_s;
  std::fprintf(stderr, "serve_bench: %zu requests (%s) to %s, model %s, %zu scale events\n",
               plan->size(), in.workload.c_str(), FLAGS_url.c_str(), in.model.c_str(),
               scales->size());
  const double cpu0 = CpuSeconds();
  const emoe::bench::LoadResult load = emoe::bench::RunLoad(&io, &client, o, *plan, *scales, clock);
  in.client_cpu_s = CpuSeconds() - cpu0;
  in.start_unix_s = origin_unix_s + load.start_s;
  in.device_seconds_end = DeviceSeconds(&io, &client);
  in.slo_ttft_ms = FLAGS_slo_ttft_ms;
  in.slo_tpot_ms = FLAGS_slo_tpot_ms;
  in.per_request = FLAGS_per_request;
  const nlohmann::json report = emoe::bench::Report(load, in, client.local_resource_errors());
  std::printf("%s", emoe::bench::Table(report).c_str());
  if (!FLAGS_json.empty()) {
    std::ofstream out(FLAGS_json);
    // Replacing bytes that are not UTF-8 (a server's error body may hold some).
    out << report.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
    if (!out) return Fail("--json " + FLAGS_json + ": cannot write");
  }
  bool scales_ok = true;
  for (const auto& s : load.scales) scales_ok = scales_ok && s.result.status == 200;
  return report["failed"].get<int64_t>() == 0 && scales_ok ? t::kExitOk : t::kExitRequestsFailed;
}
