// bench/autoscale_eval.h: the autoscaler evaluation's figures for one policy run, from what
// serve_bench wrote (load.json: its --json report with per_request rows) and what emoe_server
// wrote (autoscale.jsonl: its --autoscale_log), and the summary of several runs as JSON, a
// markdown table, timeline data and a gnuplot script (scripts/autoscale_eval.sh runs it all;
// bench/autoscale_summary is the binary).
//
// Definitions (times in the load's seconds: wall clock minus load.json's start_unix_s):
//   slo_attainment       requests that succeeded within both SLOs of load.json's "slo" / all
//                        requests (failed ones count as missed)
//   attainment_per_minute the same per minute of trace time (time_scale x the request's sent_s,
//                        binned by 60 s); one entry per minute from 0 to the last request's
//   device_seconds       load.json's: emoe:device_seconds_total's growth over the load
//   scale_events         the log's "event" rows that started in [0, wall_s] of the load
//   violation            the server's sampled window attainment ("sample" rows with
//                        window_requests > 0, in [0, wall_s]) below the log's target_attainment
//                        for >= kViolationSamples consecutive samples, after a sample at or
//                        above the target (or from the load's start); it starts at the first
//                        sample below and ends at the next sample at the target
//   reaction_s           per violation: its start to the end of the first "ok" scale-up event
//                        (to > from) that ended after it started and before the load's end;
//                        null for a violation no scale-up answered
//   steady window        a window w >= 1 of kSteadyWindowS of the load (by send time; wall
//                        clock: oscillation is a wall-clock matter), ended by the last send,
//                        whose arrivals are within kSteadyTolerance of window w-1's (both at
//                        least kSteadyMinArrivals); events_per_steady_minute is the scale events
//                        that started in steady windows per minute of them (null: none);
//                        steady_minutes is their length
//
// Thread safety: pure functions of their arguments.
#ifndef BENCH_AUTOSCALE_EVAL_H_
#define BENCH_AUTOSCALE_EVAL_H_

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "vmm/status.h"

namespace emoe::bench {

inline constexpr int kViolationSamples = 2;
inline constexpr double kSteadyWindowS = 30;
inline constexpr double kSteadyTolerance = 0.25;  // +-25% of the window before
inline constexpr int64_t kSteadyMinArrivals = 10;

// One request of load.json (its per_request row).
struct LoadRequest {
  double sent_s = 0;  // load seconds
  bool ok = false;    // succeeded
  double ttft_ms = 0;
  std::optional<double> tpot_ms;  // none for one-token outputs
};

// What the summary takes from load.json.
struct LoadRun {
  double start_unix_s = 0;
  double time_scale = 1;  // trace seconds per load second
  double wall_s = 0;
  std::optional<double> slo_ttft_ms, slo_tpot_ms;
  int64_t failed = 0;
  std::optional<double> device_seconds;
  nlohmann::json ttft_ms, tpot_ms;  // serve_report's {p50, p90, p99, mean, max} or null
  std::string workload;
  std::vector<LoadRequest> requests;
};

// Parses serve_bench's report `text` (the contents of `path`, named in errors). kDataLoss naming
// the file and the field for malformed JSON, a missing or mistyped field, or no per_request rows
// (serve_bench --per_request=false).
vmm::StatusOr<LoadRun> ParseLoad(const std::string& text, const std::string& path);

struct LogSample {
  double t_s = 0;  // load seconds
  int devices = 0;
  bool scaling = false;
  std::optional<double> attainment;  // none when window_requests is 0 or it is null
  int64_t window_requests = 0;
};

struct LogEvent {
  double start_s = 0, end_s = 0;  // load seconds
  int from = 0, to = 0;
  std::string method, source, outcome, error;
  std::optional<double> latency_s, downtime_s;
};

// What the summary takes from the server's autoscale log.
struct ServerLog {
  std::string mode, method;  // from the "start" row ("" without one)
  std::optional<double> target_attainment, interval_s;
  std::vector<LogSample> samples;  // in log order
  std::vector<LogEvent> events;
  int64_t decisions = 0;
};

// Parses the JSON Lines `text` of `path` (named with the line in errors), times made relative to
// `start_unix_s`. Rows of an unknown kind and unknown fields are ignored; blank lines too.
// kDataLoss "PATH:LINE: ..." for a line that is not a JSON object, without "kind", or a known
// row missing a field the summary needs (named).
vmm::StatusOr<ServerLog> ParseServerLog(const std::string& text, const std::string& path,
                                        double start_unix_s);

struct Violation {
  double start_s = 0;
  double end_s = 0;  // the first sample back at target, or the load's end
  std::optional<double> reaction_s;
};

// The violations of `log` within [0, wall_s] against `target` and their reaction times.
std::vector<Violation> Violations(const ServerLog& log, double target, double wall_s);

// Attainment per minute of trace time (LoadRun's definition above); null for a minute with no
// request.
nlohmann::json AttainmentPerMinute(const LoadRun& load);

// One policy's summary object (the fields above, plus requests, p50/p90/p99 of TTFT and TPOT).
nlohmann::json PolicySummary(const LoadRun& load, const ServerLog& log);

// The markdown table of a summary {"policies": {name: PolicySummary}} (in `order`).
std::string MarkdownTable(const nlohmann::json& summary, const std::vector<std::string>& order);

// The timeline of one run for gnuplot: block 0 "t_s arrivals_per_s client_attainment" in
// `bin_s` bins of the load's send times; block 1 "t_s devices server_attainment" per sample
// (attainment "NaN" when none); blocks separated by two blank lines.
std::string TimelineData(const LoadRun& load, const ServerLog& log, double bin_s);

// A gnuplot script drawing one panel per policy (its DIR/<name>/timeline.dat) into `png`.
std::string GnuplotScript(const std::string& dir, const std::vector<std::string>& order,
                          const std::string& png);

}  // namespace emoe::bench

#endif  // BENCH_AUTOSCALE_EVAL_H_
