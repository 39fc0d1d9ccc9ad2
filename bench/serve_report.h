// bench/serve_report.h: serve_bench's results: the per-request latencies (TTFT, TPOT, E2E, the
// largest gap between two chunks of a stream), their percentiles, SLO attainment, throughput,
// the server's device-seconds over the run (from /metrics), the scale events, and what the
// client itself cost; as JSON (--json) and as a table on stdout.
//
// Definitions (vLLM's benchmark_serving, per successful request):
//   TTFT  first content chunk - request sent (connect included)
//   E2E   last event (data: [DONE]) - request sent
//   TPOT  (E2E - TTFT) / (usage.completion_tokens - 1); none for one-token outputs
// SLO attainment: the share of all requests (failed ones count as missed) that succeeded with
// TTFT <= slo_ttft_ms and TPOT <= slo_tpot_ms (a bound of 0 is no bound).
//
// Times: "start_unix_s" is the wall clock at the load's start; the per-request "arrival_s" and
// "sent_s" and the scale events' "sent_s" count from it (so that a run lines up with the
// server's log); "time_scale" is the trace seconds per second of the load.
//
// Thread safety: pure functions.
#ifndef BENCH_SERVE_REPORT_H_
#define BENCH_SERVE_REPORT_H_

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "bench/serve_run.h"

namespace emoe::bench {

// The sum of every series of metric `name` (a sample line "name value" or "name{...} value")
// in Prometheus text `text`; nullopt when no series of that name is there.
std::optional<double> MetricSum(const std::string& text, const std::string& name);

// Nearest-rank percentile p (0..100) of `v`; 0 for an empty v.
double Percentile(std::vector<double> v, double p);

struct ReportInputs {
  // workload: "poisson rate=R ...", "rate_profile SPEC ..." or "trace PATH time_scale=S ..."
  std::string url, model, workload;
  double start_unix_s = 0;  // wall clock (seconds since the epoch) at the load's start
  double time_scale = 1;    // trace seconds per second of the load (1 without --trace)
  double slo_ttft_ms = 0, slo_tpot_ms = 0;
  std::optional<double> device_seconds_start, device_seconds_end;
  double client_cpu_s = 0;  // the client's user + system CPU over the load
  uint64_t fd_limit = 0;    // RLIMIT_NOFILE the client ran with
  bool per_request = true;  // include the per-request rows
};

// The whole report as JSON (field meanings in the README "Serving benchmark").
nlohmann::json Report(const LoadResult& load, const ReportInputs& in, int64_t local_errors);

// The readable table of `report` (Report's output).
std::string Table(const nlohmann::json& report);

}  // namespace emoe::bench

#endif  // BENCH_SERVE_REPORT_H_
