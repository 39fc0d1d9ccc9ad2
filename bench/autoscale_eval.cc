// The autoscaler evaluation's figures (autoscale_eval.h).
#include "bench/autoscale_eval.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <sstream>

namespace emoe::bench {
namespace {

using nlohmann::json;

// Reads typed fields of one JSON object, keeping the first error ("WHERE: field F ...").
class Fields {
 public:
  Fields(const json& o, std::string where) : o_(o), where_(std::move(where)) {}

  // A required number; 0 (and the error kept) when missing or not a number.
  double Num(const char* k) {
    if (auto v = OptNum(k)) return *v;
    Fail(k, "missing or null (want a number)");
    return 0;
  }
  // A number, or nullopt when missing or null; an error for another type.
  std::optional<double> OptNum(const char* k) {
    if (!o_.contains(k) || o_[k].is_null()) return std::nullopt;
    if (!o_[k].is_number()) {
      Fail(k, "is not a number");
      return std::nullopt;
    }
    return o_[k].get<double>();
  }
  // A string ("" when missing); an error for another type.
  std::string Str(const char* k) {
    if (!o_.contains(k) || o_[k].is_null()) return "";
    if (!o_[k].is_string()) {
      Fail(k, "is not a string");
      return "";
    }
    return o_[k].get<std::string>();
  }
  bool Bool(const char* k) {
    if (!o_.contains(k)) return false;
    if (!o_[k].is_boolean()) {
      Fail(k, "is not true/false");
      return false;
    }
    return o_[k].get<bool>();
  }
  // An object or null (null when missing); an error for another type.
  json ObjOrNull(const char* k) {
    if (!o_.contains(k) || o_[k].is_null()) return nullptr;
    if (!o_[k].is_object()) {
      Fail(k, "is not an object");
      return nullptr;
    }
    return o_[k];
  }
  bool ok() const { return error_.empty(); }
  vmm::Status status() const { return vmm::Status::DataLoss(error_); }

 private:
  void Fail(const char* k, const char* why) {
    if (error_.empty()) error_ = where_ + ": \"" + k + "\" " + why;
  }
  const json& o_;
  std::string where_, error_;
};

bool Met(const LoadRun& load, const LoadRequest& r) {
  if (!r.ok) return false;
  const bool ttft_ok = !load.slo_ttft_ms || r.ttft_ms <= *load.slo_ttft_ms;
  const bool tpot_ok = !load.slo_tpot_ms || !r.tpot_ms || *r.tpot_ms <= *load.slo_tpot_ms;
  return ttft_ok && tpot_ok;
}

json Percentiles(const json& s) {
  if (!s.is_object()) return nullptr;
  json out = json::object();
  for (const char* k : {"p50", "p90", "p99"}) {
    out[k] = s.contains(k) ? s[k] : json(nullptr);
  }
  return out;
}

json OrNull(const std::optional<double>& v) { return v ? json(*v) : json(nullptr); }

// The windows of kSteadyWindowS of the load (by sent_s) and how many requests were sent in
// each; only windows that end by the last send.
std::vector<int64_t> ArrivalsPerWindow(const LoadRun& load) {
  double last = 0;
  for (const LoadRequest& r : load.requests) last = std::max(last, r.sent_s);
  std::vector<int64_t> n(static_cast<size_t>(last / kSteadyWindowS), 0);
  for (const LoadRequest& r : load.requests) {
    const size_t w = static_cast<size_t>(r.sent_s / kSteadyWindowS);
    if (w < n.size()) ++n[w];
  }
  return n;
}

json SteadyFigures(const LoadRun& load, const ServerLog& log) {
  const std::vector<int64_t> n = ArrivalsPerWindow(load);
  int64_t steady = 0, events = 0;
  for (size_t w = 1; w < n.size(); ++w) {
    if (n[w - 1] < kSteadyMinArrivals || n[w] < kSteadyMinArrivals ||
        std::abs(n[w] - n[w - 1]) > kSteadyTolerance * n[w - 1]) {
      continue;
    }
    ++steady;
    for (const LogEvent& e : log.events) {
      events += e.start_s >= w * kSteadyWindowS && e.start_s < (w + 1) * kSteadyWindowS;
    }
  }
  const double minutes = steady * kSteadyWindowS / 60;
  return {{"steady_minutes", minutes},
          {"events_in_steady_minutes", events},
          {"events_per_steady_minute", steady > 0 ? json(events / minutes) : json(nullptr)}};
}

std::string Fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), f, v);
  return buf;
}

std::string NumOr(const json& v, const char* f) {
  return v.is_number() ? Fmt(f, v.get<double>()) : std::string("-");
}

}  // namespace

vmm::StatusOr<LoadRun> ParseLoad(const std::string& text, const std::string& path) {
  const json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return vmm::Status::DataLoss(path + ": not a JSON object (serve_bench --json's report)");
  }
  LoadRun out;
  Fields f(j, path);
  out.start_unix_s = f.Num("start_unix_s");
  out.time_scale = f.OptNum("time_scale").value_or(1);
  out.wall_s = f.Num("wall_s");
  out.failed = static_cast<int64_t>(f.Num("failed"));
  out.device_seconds = f.OptNum("device_seconds");
  out.ttft_ms = f.ObjOrNull("ttft_ms");
  out.tpot_ms = f.ObjOrNull("tpot_ms");
  out.workload = f.Str("workload");
  const json slo = f.ObjOrNull("slo");
  if (!f.ok()) return f.status();
  if (!(out.time_scale > 0)) return vmm::Status::DataLoss(path + ": \"time_scale\" must be > 0");
  if (slo.is_object()) {
    Fields s(slo, path + ": slo");
    out.slo_ttft_ms = s.OptNum("ttft_ms");
    out.slo_tpot_ms = s.OptNum("tpot_ms");
    if (!s.ok()) return s.status();
  }
  if (!j.contains("per_request") || !j["per_request"].is_array()) {
    return vmm::Status::DataLoss(path +
                                 ": no \"per_request\" rows (run serve_bench with "
                                 "--per_request=true, its default)");
  }
  const json& rows = j["per_request"];
  for (size_t i = 0; i < rows.size(); ++i) {
    const std::string where = path + ": per_request[" + std::to_string(i) + "]";
    if (!rows[i].is_object()) return vmm::Status::DataLoss(where + ": not an object");
    Fields r(rows[i], where);
    LoadRequest q;
    q.sent_s = r.Num("sent_s");
    q.ok = !rows[i].contains("failure");
    if (q.ok) {
      q.ttft_ms = r.Num("ttft_ms");
      q.tpot_ms = r.OptNum("tpot_ms");
    }
    if (!r.ok()) return r.status();
    out.requests.push_back(q);
  }
  return out;
}

vmm::StatusOr<ServerLog> ParseServerLog(const std::string& text, const std::string& path,
                                        double start_unix_s) {
  ServerLog out;
  std::istringstream in(text);
  std::string line;
  for (int line_no = 1; std::getline(in, line); ++line_no) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const std::string where = path + ":" + std::to_string(line_no);
    const json j = json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded() || !j.is_object()) {
      return vmm::Status::DataLoss(where + ": not a JSON object: '" + line.substr(0, 80) + "'");
    }
    Fields f(j, where);
    const std::string kind = f.Str("kind");
    if (!f.ok() || kind.empty()) return vmm::Status::DataLoss(where + ": no \"kind\" string");
    if (kind == "start") {
      out.mode = f.Str("mode");
      out.method = f.Str("method");
      out.target_attainment = f.OptNum("target_attainment");
      out.interval_s = f.OptNum("interval_s");
    } else if (kind == "sample") {
      LogSample s;
      s.t_s = f.Num("unix_s") - start_unix_s;
      s.devices = static_cast<int>(f.Num("devices"));
      s.scaling = f.Bool("scaling");
      s.attainment = f.OptNum("attainment");
      const std::optional<double> n = f.OptNum("window_requests");
      s.window_requests = n ? static_cast<int64_t>(*n) : (s.attainment ? 1 : 0);
      if (s.window_requests == 0) s.attainment.reset();
      out.samples.push_back(s);
    } else if (kind == "decision") {
      ++out.decisions;
    } else if (kind == "event") {
      LogEvent e;
      e.end_s = f.Num("unix_s") - start_unix_s;
      e.start_s = f.Num("start_unix_s") - start_unix_s;
      e.from = static_cast<int>(f.Num("from"));
      e.to = static_cast<int>(f.Num("to"));
      e.outcome = f.Str("outcome");
      e.method = f.Str("method");
      e.source = f.Str("source");
      e.error = f.Str("error");
      e.latency_s = f.OptNum("latency_s");
      e.downtime_s = f.OptNum("downtime_s");
      if (f.ok() && e.outcome.empty()) {
        return vmm::Status::DataLoss(where + ": \"outcome\" missing (want ok, refused or failed)");
      }
      out.events.push_back(e);
    }
    if (!f.ok()) return f.status();
  }
  return out;
}

std::vector<Violation> Violations(const ServerLog& log, double target, double wall_s) {
  std::vector<Violation> out;
  int below = 0;
  double run_start = 0;
  bool open = false;
  for (const LogSample& s : log.samples) {
    if (!s.attainment || s.t_s < 0 || s.t_s > wall_s) continue;
    if (*s.attainment < target) {
      if (below++ == 0) run_start = s.t_s;
      if (below == kViolationSamples) {
        out.push_back({run_start, wall_s, std::nullopt});
        open = true;
      }
    } else {
      if (open) out.back().end_s = s.t_s;
      open = false;
      below = 0;
    }
  }
  for (Violation& v : out) {
    for (const LogEvent& e : log.events) {
      if (e.outcome != "ok" || e.to <= e.from || e.end_s <= v.start_s || e.end_s > wall_s ||
          e.start_s > v.end_s) {
        continue;
      }
      if (!v.reaction_s || e.end_s - v.start_s < *v.reaction_s) v.reaction_s = e.end_s - v.start_s;
    }
  }
  return out;
}

json AttainmentPerMinute(const LoadRun& load) {
  std::vector<std::pair<int64_t, int64_t>> m;  // met, all
  for (const LoadRequest& r : load.requests) {
    const size_t i = static_cast<size_t>(std::max(0.0, r.sent_s) * load.time_scale / 60);
    if (i >= m.size()) m.resize(i + 1, {0, 0});
    m[i].first += Met(load, r);
    ++m[i].second;
  }
  json out = json::array();
  for (const auto& [met, all] : m) {
    out.push_back(all > 0 ? json(static_cast<double>(met) / all) : json(nullptr));
  }
  return out;
}

json PolicySummary(const LoadRun& load, const ServerLog& log) {
  int64_t met = 0;
  for (const LoadRequest& r : load.requests) met += Met(load, r);
  const int64_t n = static_cast<int64_t>(load.requests.size());
  json events = json::array();
  int64_t ok_events = 0;
  for (const LogEvent& e : log.events) {
    if (e.start_s < 0 || e.start_s > load.wall_s) continue;
    ok_events += e.outcome == "ok";
    events.push_back({{"start_s", e.start_s},
                      {"from", e.from},
                      {"to", e.to},
                      {"method", e.method},
                      {"source", e.source},
                      {"outcome", e.outcome},
                      {"latency_s", OrNull(e.latency_s)},
                      {"downtime_s", OrNull(e.downtime_s)},
                      {"error", e.error}});
  }
  const double target = log.target_attainment.value_or(0.9);
  const std::vector<Violation> v = Violations(log, target, load.wall_s);
  json reactions = json::array(), list = json::array();
  double sum = 0, max = 0;
  int64_t answered = 0;
  for (const Violation& x : v) {
    reactions.push_back(
        {{"start_s", x.start_s}, {"end_s", x.end_s}, {"reaction_s", OrNull(x.reaction_s)}});
    if (!x.reaction_s) continue;
    list.push_back(*x.reaction_s);
    sum += *x.reaction_s;
    max = std::max(max, *x.reaction_s);
    ++answered;
  }
  json s = {
      {"workload", load.workload},
      {"mode", log.mode},
      {"method", log.method},
      {"requests", n},
      {"failed", load.failed},
      {"slo", {{"ttft_ms", OrNull(load.slo_ttft_ms)}, {"tpot_ms", OrNull(load.slo_tpot_ms)}}},
      {"slo_attainment", n > 0 ? json(static_cast<double>(met) / n) : json(nullptr)},
      {"attainment_per_minute", AttainmentPerMinute(load)},
      {"ttft_ms", Percentiles(load.ttft_ms)},
      {"tpot_ms", Percentiles(load.tpot_ms)},
      {"wall_s", load.wall_s},
      {"device_seconds", OrNull(load.device_seconds)},
      {"mean_devices", load.device_seconds && load.wall_s > 0
                           ? json(*load.device_seconds / load.wall_s)
                           : json(nullptr)},
      {"attained_per_device_second", load.device_seconds && *load.device_seconds > 0
                                         ? json(met / *load.device_seconds)
                                         : json(nullptr)},
      {"scale_events", {{"count", events.size()}, {"ok", ok_events}, {"events", events}}},
      {"reaction_s",
       {{"target_attainment", target},
        {"violations", v.size()},
        {"unanswered", static_cast<int64_t>(v.size()) - answered},
        {"list", list},
        {"mean", answered > 0 ? json(sum / answered) : json(nullptr)},
        {"max", answered > 0 ? json(max) : json(nullptr)},
        {"each", reactions}}},
      {"decisions", log.decisions},
  };
  s.update(SteadyFigures(load, log));
  return s;
}

std::string MarkdownTable(const json& summary, const std::vector<std::string>& order) {
  const json& p = summary["policies"];
  std::optional<double> peak;
  if (p.contains("static-peak") && p["static-peak"]["device_seconds"].is_number()) {
    peak = p["static-peak"]["device_seconds"].get<double>();
  }
  std::string t =
      "| policy | SLO attainment | device-s | vs static-peak | failed | TTFT p90 ms | TPOT p90 ms "
      "| scale events (ok) | reaction s mean / max (unanswered) | events / steady min |\n"
      "|---|---|---|---|---|---|---|---|---|---|\n";
  for (const std::string& name : order) {
    if (!p.contains(name)) continue;
    const json& s = p[name];
    const json& d = s["device_seconds"];
    const json& r = s["reaction_s"];
    t += "| " + name + " | " +
         (s["slo_attainment"].is_number() ? Fmt("%.1f%%", s["slo_attainment"].get<double>() * 100)
                                          : std::string("-")) +
         " | " + NumOr(d, "%.1f") + " | " +
         (peak && *peak > 0 && d.is_number() ? Fmt("%.0f%%", d.get<double>() / *peak * 100)
                                             : std::string("-")) +
         " | " + std::to_string(s["failed"].get<int64_t>()) + " | " +
         NumOr(s["ttft_ms"].is_object() ? s["ttft_ms"]["p90"] : json(nullptr), "%.0f") + " | " +
         NumOr(s["tpot_ms"].is_object() ? s["tpot_ms"]["p90"] : json(nullptr), "%.1f") + " | " +
         std::to_string(s["scale_events"]["count"].get<int64_t>()) + " (" +
         std::to_string(s["scale_events"]["ok"].get<int64_t>()) + ") | " +
         NumOr(r["mean"], "%.1f") + " / " + NumOr(r["max"], "%.1f") + " (" +
         std::to_string(r["unanswered"].get<int64_t>()) + " of " +
         std::to_string(r["violations"].get<int64_t>()) + ") | " +
         NumOr(s["events_per_steady_minute"], "%.2f") + " |\n";
  }
  return t;
}

std::string TimelineData(const LoadRun& load, const ServerLog& log, double bin_s) {
  std::vector<std::pair<int64_t, int64_t>> bins;  // sent, met
  for (const LoadRequest& r : load.requests) {
    const size_t i = static_cast<size_t>(std::max(0.0, r.sent_s) / bin_s);
    if (i >= bins.size()) bins.resize(i + 1, {0, 0});
    ++bins[i].first;
    bins[i].second += Met(load, r);
  }
  std::string out = "# t_s arrivals_per_s client_attainment (" + Fmt("%g", bin_s) + " s bins)\n";
  for (size_t i = 0; i < bins.size(); ++i) {
    const auto& [sent, met] = bins[i];
    out += Fmt("%.2f", (i + 0.5) * bin_s) + " " + Fmt("%.3f", sent / bin_s) + " " +
           (sent > 0 ? Fmt("%.4f", static_cast<double>(met) / sent) : std::string("NaN")) + "\n";
  }
  out += "\n\n# t_s devices server_attainment (the server's samples)\n";
  for (const LogSample& s : log.samples) {
    if (s.t_s < 0 || s.t_s > load.wall_s) continue;
    out += Fmt("%.3f", s.t_s) + " " + std::to_string(s.devices) + " " +
           (s.attainment ? Fmt("%.4f", *s.attainment) : std::string("NaN")) + "\n";
  }
  return out;
}

std::string GnuplotScript(const std::string& dir, const std::vector<std::string>& order,
                          const std::string& png) {
  const size_t n = std::max<size_t>(order.size(), 1);
  std::string g = "set terminal pngcairo size 1400," + std::to_string(80 + 230 * n) +
                  "\nset output '" + png + "'\nset multiplot layout " + std::to_string(n) +
                  ",1\nset grid\nset key outside top center horizontal\n"
                  "set ylabel 'req/s, devices'\nset y2label 'SLO attainment'\n"
                  "set y2range [0:1.05]\nset offsets 0, 0, 0.5, 0\nset ytics nomirror\nset y2tics "
                  "0.25\nset yrange [0:*]\n";
  for (size_t i = 0; i < order.size(); ++i) {
    const std::string f = "'" + dir + "/" + order[i] + "/timeline.dat'";
    g += "set title '" + order[i] + "'\n";
    g += i + 1 == order.size() ? "set xlabel 'load time, s'\n" : "unset xlabel\n";
    g += "plot " + f + " index 0 using 1:2 with lines lw 1.5 title 'arrivals/s', " + f +
         " index 1 using 1:2 with steps lw 2.5 title 'devices serving', " + f +
         " index 1 using 1:3 axes x1y2 with lines lw 1.5 title 'server window attainment', " + f +
         " index 0 using 1:3 axes x1y2 with points pt 7 ps 0.5 title 'client attainment per bin'\n";
  }
  return g + "unset multiplot\n";
}

}  // namespace emoe::bench
