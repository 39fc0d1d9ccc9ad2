// serve_bench's report (serve_report.h).
#include "bench/serve_report.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <sstream>

namespace emoe::bench {
namespace {

using nlohmann::json;

json Summary(const std::vector<double>& v, double scale) {
  if (v.empty()) return nullptr;
  double sum = 0;
  for (double x : v) sum += x;
  return {{"p50", Percentile(v, 50) * scale},
          {"p90", Percentile(v, 90) * scale},
          {"p99", Percentile(v, 99) * scale},
          {"mean", sum / v.size() * scale},
          {"max", *std::max_element(v.begin(), v.end()) * scale}};
}

// A failure's group: its first 100 characters, digit runs as '#', so that "after 12 events"
// and "after 13 events" count as one kind.
std::string FailureKind(const std::string& why) {
  std::string k;
  for (size_t i = 0; i < why.size() && k.size() < 100; ++i) {
    if (std::isdigit(static_cast<unsigned char>(why[i]))) {
      if (k.empty() || k.back() != '#') k += '#';
    } else {
      k += why[i];
    }
  }
  return k;
}

json ScaleRows(const LoadResult& load) {
  json rows = json::array();
  for (size_t i = 0; i < load.scales.size(); ++i) {
    const ScaleOutcome& s = load.scales[i];
    json report = json::parse(s.result.body, nullptr, /*allow_exceptions=*/false);
    if (report.is_discarded()) report = s.result.body;
    rows.push_back({{"at_s", s.plan.at_s},
                    {"target", s.plan.target},
                    {"sent_s", s.result.start_s - load.start_s},
                    {"status", s.result.status},
                    {"latency_s", s.result.end_s - s.result.start_s},
                    {"error", s.result.error.empty() ? json(nullptr) : json(s.result.error)},
                    {"in_flight_at_send", load.in_flight_at_scale_send[i]},
                    {"in_flight_at_end", load.in_flight_at_scale_end[i]},
                    {"report", std::move(report)}});
  }
  return rows;
}

}  // namespace

std::optional<double> MetricSum(const std::string& text, const std::string& name) {
  std::optional<double> sum;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.compare(0, name.size(), name) != 0 || line.size() == name.size()) continue;
    size_t value_at;
    if (line[name.size()] == ' ') {
      value_at = name.size() + 1;
    } else if (line[name.size()] == '{') {
      const size_t close = line.rfind('}');
      if (close == std::string::npos) continue;
      value_at = close + 1;
    } else {
      continue;  // another metric whose name starts with `name`
    }
    const char* start = line.c_str() + value_at;
    char* end = nullptr;
    const double v = std::strtod(start, &end);
    if (end == start) continue;
    sum = sum.value_or(0) + v;
  }
  return sum;
}

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const double rank = std::ceil(p / 100.0 * static_cast<double>(v.size()));
  const size_t i = rank < 1 ? 0 : static_cast<size_t>(rank) - 1;
  return v[std::min(i, v.size() - 1)];
}

json Report(const LoadResult& load, const ReportInputs& in, int64_t local_errors) {
  std::vector<double> ttft, tpot, e2e, gaps;
  int64_t failed = 0, met = 0, out_tokens = 0, prompt_tokens = 0, events = 0;
  double max_gap = 0;
  std::map<std::string, std::pair<int64_t, std::string>> failures;  // kind -> count, example
  std::map<std::string, int64_t> served_by;  // "x-emoe-...: value" -> requests
  json rows = json::array();
  for (const RequestOutcome& q : load.requests) {
    const StreamResult& r = q.result;
    const StreamStats& s = r.stats;
    events += s.events;
    if (s.first_content_s >= 0) max_gap = std::max(max_gap, s.max_gap_s);
    for (const auto& h : r.headers) {
      if (h.first.compare(0, 7, "x-emoe-") == 0) ++served_by[h.first + ": " + h.second];
    }
    const bool ok = r.failure.empty();
    json row = {{"id", q.plan.id},
                {"arrival_s", q.plan.arrival_s},
                {"sent_s", r.start_s - load.start_s},
                {"prompt_tokens", q.plan.prompt_tokens},
                {"output_tokens", q.plan.output_tokens},
                {"status", r.status},
                {"events", s.events},
                {"max_gap_s", s.max_gap_s}};
    if (!ok) {
      ++failed;
      auto& f = failures[FailureKind(r.failure)];
      if (f.first++ == 0) f.second = r.failure;
      row["failure"] = r.failure;
      if (in.per_request) rows.push_back(std::move(row));
      continue;
    }
    const double t = s.first_content_s - r.start_s, e = s.last_event_s - r.start_s;
    ttft.push_back(t);
    e2e.push_back(e);
    gaps.push_back(s.max_gap_s);
    const double tp = s.completion_tokens > 1 ? (e - t) / (s.completion_tokens - 1) : -1;
    if (tp >= 0) tpot.push_back(tp);
    out_tokens += s.completion_tokens;
    prompt_tokens += std::max<int64_t>(s.prompt_tokens, 0);
    const bool ttft_ok = in.slo_ttft_ms <= 0 || t * 1e3 <= in.slo_ttft_ms;
    const bool tpot_ok = in.slo_tpot_ms <= 0 || tp < 0 || tp * 1e3 <= in.slo_tpot_ms;
    met += ttft_ok && tpot_ok;
    row["ttft_ms"] = t * 1e3;
    row["tpot_ms"] = tp >= 0 ? json(tp * 1e3) : json(nullptr);
    row["e2e_ms"] = e * 1e3;
    if (in.per_request) rows.push_back(std::move(row));
  }
  const int64_t n = static_cast<int64_t>(load.requests.size());
  json failure_kinds = json::array();
  for (const auto& [kind, f] : failures) {
    failure_kinds.push_back({{"count", f.first}, {"example", f.second}});
  }
  std::optional<double> dev_s;
  if (in.device_seconds_start && in.device_seconds_end) {
    dev_s = *in.device_seconds_end - *in.device_seconds_start;
  }
  const double wall = load.wall_s > 0 ? load.wall_s : 1e-9;
  json rep = {
      {"url", in.url},
      {"model", in.model},
      {"workload", in.workload},
      {"start_unix_s", in.start_unix_s},
      {"time_scale", in.time_scale},
      {"requests", n},
      {"succeeded", n - failed},
      {"failed", failed},
      {"failures", failure_kinds},
      {"slo",
       {{"ttft_ms", in.slo_ttft_ms > 0 ? json(in.slo_ttft_ms) : json(nullptr)},
        {"tpot_ms", in.slo_tpot_ms > 0 ? json(in.slo_tpot_ms) : json(nullptr)}}},
      {"slo_attainment", n > 0 ? static_cast<double>(met) / n : 0.0},
      {"ttft_ms", Summary(ttft, 1e3)},
      {"tpot_ms", Summary(tpot, 1e3)},
      {"e2e_ms", Summary(e2e, 1e3)},
      {"max_token_gap_s", max_gap},
      {"token_gap_s", Summary(gaps, 1)},
      {"max_concurrent", load.max_in_flight},
      {"max_streaming", load.max_streaming},
      {"prompt_tokens", prompt_tokens},
      {"output_tokens", out_tokens},
      {"throughput", out_tokens / wall},
      {"request_throughput", (n - failed) / wall},
      {"wall_s", load.wall_s},
      {"device_seconds", dev_s ? json(*dev_s) : json(nullptr)},
      {"served_by", served_by},
      {"scale_events", ScaleRows(load)},
      {"client",
       {{"cpu_s", in.client_cpu_s},
        {"cpu_share", in.client_cpu_s / wall},
        {"events", events},
        {"cpu_us_per_event", events > 0 ? in.client_cpu_s / events * 1e6 : 0.0},
        {"max_send_lag_s", load.max_send_lag_s},
        {"local_resource_errors", local_errors},
        {"fd_limit", in.fd_limit}}},
  };
  if (in.per_request) rep["per_request"] = std::move(rows);
  return rep;
}

namespace {

std::string Fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), f, v);
  return buf;
}

std::string Row(const char* name, const json& summary, const char* f) {
  std::string line = std::string("  ") + name;
  line.resize(20, ' ');
  if (summary.is_null()) return line + "-\n";
  for (const char* k : {"p50", "p90", "p99", "mean", "max"})
    line += Fmt(f, summary[k].get<double>());
  return line + "\n";
}

}  // namespace

std::string Table(const json& r) {
  std::string t = "serve_bench: " + r["url"].get<std::string>() + ", model " +
                  r["model"].get<std::string>() + ", " + r["workload"].get<std::string>() + "\n";
  t += "  requests " + std::to_string(r["requests"].get<int64_t>()) + ": succeeded " +
       std::to_string(r["succeeded"].get<int64_t>()) + ", failed " +
       std::to_string(r["failed"].get<int64_t>()) + "\n";
  t += "                          p50       p90       p99      mean       max\n";
  t += Row("TTFT ms", r["ttft_ms"], "%10.1f");
  t += Row("TPOT ms", r["tpot_ms"], "%10.2f");
  t += Row("E2E ms", r["e2e_ms"], "%10.1f");
  t += Row("token gap s", r["token_gap_s"], "%10.3f");
  t += "  max token gap " + Fmt("%.3f s", r["max_token_gap_s"].get<double>()) +
       "; max concurrent " + std::to_string(r["max_concurrent"].get<int>()) + " (streaming " +
       std::to_string(r["max_streaming"].get<int>()) + ")\n";
  t += "  throughput " + Fmt("%.1f output tok/s", r["throughput"].get<double>()) +
       Fmt(", %.2f req/s", r["request_throughput"].get<double>()) +
       Fmt(" over %.1f s", r["wall_s"].get<double>()) + "\n";
  t += "  SLO attainment " + Fmt("%.1f%%", r["slo_attainment"].get<double>() * 100);
  if (!r["slo"]["ttft_ms"].is_null())
    t += Fmt(" (TTFT <= %g ms", r["slo"]["ttft_ms"].get<double>());
  if (!r["slo"]["tpot_ms"].is_null())
    t += Fmt(", TPOT <= %g ms", r["slo"]["tpot_ms"].get<double>());
  if (!r["slo"]["ttft_ms"].is_null()) t += ")";
  t += "\n  device-seconds " +
       (r["device_seconds"].is_null() ? std::string("- (no emoe:device_seconds_total in /metrics)")
                                      : Fmt("%.1f", r["device_seconds"].get<double>())) +
       "\n";
  const json& c = r["client"];
  t += "  client: " + Fmt("%.2f CPU s", c["cpu_s"].get<double>()) +
       Fmt(" (%.1f%% of one core)", c["cpu_share"].get<double>() * 100) +
       Fmt(", %.1f us per event", c["cpu_us_per_event"].get<double>()) +
       Fmt(", max send lag %.3f s", c["max_send_lag_s"].get<double>()) + "\n";
  if (!r["scale_events"].empty()) {
    t += "  scale events:    at s  target  sent s  status  latency s  in flight (sent/answered)\n";
    for (const json& e : r["scale_events"]) {
      char buf[200];
      std::snprintf(buf, sizeof(buf), "                %6.1f  %6d  %6.1f  %6d  %9.3f  %d/%d%s%s\n",
                    e["at_s"].get<double>(), e["target"].get<int>(), e["sent_s"].get<double>(),
                    e["status"].get<int>(), e["latency_s"].get<double>(),
                    e["in_flight_at_send"].get<int>(), e["in_flight_at_end"].get<int>(),
                    e["error"].is_null() ? "" : "  ",
                    e["error"].is_null() ? "" : e["error"].get<std::string>().c_str());
      t += buf;
    }
  }
  for (const json& f : r["failures"]) {
    t += "  failed x" + std::to_string(f["count"].get<int64_t>()) + ": " +
         f["example"].get<std::string>() + "\n";
  }
  return t;
}

}  // namespace emoe::bench
