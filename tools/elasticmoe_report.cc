// The elastic-scaling experiment's outputs (elasticmoe_report.h).
#include "tools/elasticmoe_report.h"

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>

#include "tools/elasticmoe_summary.h"

namespace emoe::tools {
namespace {

using engine::ScaleReport;

double Mib(uint64_t b) { return b / 1048576.0; }

// "phase=seconds;..." in the order of the report's map.
std::string Phases(const ScaleReport& p) {
  std::string phases;
  for (const auto& [k, v] : p.phase_s) {
    char b[64];
    std::snprintf(b, sizeof(b), "%s%s=%.4f", phases.empty() ? "" : ";", k.c_str(), v);
    phases += b;
  }
  return phases;
}

// CSV: a field with a comma, a quote or a line break is quoted (quotes doubled).
std::string Csv(const std::string& field) {
  if (field.find_first_of(",\"\n") == std::string::npos) return field;
  std::string out = "\"";
  for (char ch : field) out += ch == '"' ? std::string("\"\"") : std::string(1, ch);
  return out + "\"";
}

std::string Str(double v) {
  std::ostringstream os;
  os << v;
  return os.str();
}

constexpr const char* kCsvColumns[] = {"method",
                                       "event",
                                       "latency_s",
                                       "downtime_s",
                                       "arena_before_mib",
                                       "arena_peak_mib",
                                       "arena_after_mib",
                                       "pss_before_mib",
                                       "pss_peak_mib",
                                       "remapped_mib",
                                       "p2p_mib",
                                       "disk_mib",
                                       "copied_mib",
                                       "tps_before",
                                       "tps_during",
                                       "tps_after",
                                       "max_token_gap_s",
                                       "failed",
                                       "failed_cumulative",
                                       "experts_moved",
                                       "kept",
                                       "kv_copied",
                                       "recomputed",
                                       "kv_shrunk_mib",
                                       "phases",
                                       "error",
                                       "run",
                                       "position",
                                       "copy_bound_s",
                                       "step_s"};
constexpr size_t kColumns = sizeof(kCsvColumns) / sizeof(kCsvColumns[0]);

// One CSV row: `fields` by column name, the others empty.
void CsvRow(std::ofstream& csv, const std::map<std::string, std::string>& fields) {
  for (size_t i = 0; i < kColumns; ++i) {
    auto it = fields.find(kCsvColumns[i]);
    csv << (i ? "," : "") << (it == fields.end() ? "" : Csv(it->second));
  }
  csv << "\n";
}

// The event's report as engine::ScaleReport::ToJson gives it, with the experiment's own
// copy_bound_s and step_s added (so that every ratio can be recomputed from the file).
std::string ReportJson(const EventRow& r) {
  std::string js = r.rep.ToJson();
  if (js.empty() || js.back() != '}') return js;
  js.pop_back();
  std::ostringstream add;
  add.precision(6);
  add << ",\"copy_bound_s\":" << r.copy_bound_s << ",\"step_s\":" << r.step_s << "}";
  return js + add.str();
}

// One event that was done: its CSV row and JSON object.
void WriteDoneEvent(const EventRow& r, std::ofstream& csv, std::ofstream& js) {
  const ScaleReport& p = r.rep;
  const std::string ev = EventName(p);
  CsvRow(csv, {{"method", r.method},
               {"event", ev},
               {"latency_s", Str(p.latency_s)},
               {"downtime_s", Str(p.downtime_s)},
               {"arena_before_mib", Str(Mib(p.arena_before))},
               {"arena_peak_mib", Str(Mib(p.arena_peak))},
               {"arena_after_mib", Str(Mib(p.arena_after))},
               {"pss_before_mib", Str(Mib(p.pss_before_bytes))},
               {"pss_peak_mib", Str(Mib(p.pss_peak_bytes))},
               {"remapped_mib", Str(Mib(p.bytes_remapped))},
               {"p2p_mib", Str(Mib(p.bytes_p2p))},
               {"disk_mib", Str(Mib(p.bytes_disk))},
               {"copied_mib", Str(Mib(p.bytes_copied))},
               {"tps_before", Str(r.before_tps)},
               {"tps_during", Str(r.during_tps)},
               {"tps_after", Str(r.after_tps)},
               {"max_token_gap_s", Str(r.max_gap_s)},
               {"failed", std::to_string(r.failed)},
               {"failed_cumulative", std::to_string(r.failed_cumulative)},
               {"experts_moved", std::to_string(p.experts_moved)},
               {"kept", std::to_string(p.requests_kept)},
               {"kv_copied", std::to_string(p.requests_kv_copied)},
               {"recomputed", std::to_string(p.requests_recomputed)},
               {"kv_shrunk_mib", Str(Mib(p.kv_shrunk_bytes))},
               {"phases", Phases(p)},
               {"run", std::to_string(r.run)},
               {"position", std::to_string(r.position)},
               {"copy_bound_s", Str(r.copy_bound_s)},
               {"step_s", Str(r.step_s)}});
  js << "    {\"method\":\"" << JsonEscape(r.method) << "\",\"run\":" << r.run
     << ",\"position\":" << r.position << ",\"event\":\"" << ev
     << "\",\"tps_before\":" << r.before_tps << ",\"tps_during\":" << r.during_tps
     << ",\"tps_after\":" << r.after_tps << ",\"max_token_gap_s\":" << r.max_gap_s
     << ",\"failed\":" << r.failed << ",\"failed_cumulative\":" << r.failed_cumulative
     << ",\"report\":" << ReportJson(r) << "}";
}

// One event that was refused or rolled back (serving went on).
void WriteRefusedEvent(const EventRow& r, std::ofstream& csv, std::ofstream& js) {
  const std::string ev = EventName(r.rep);
  CsvRow(csv, {{"method", r.method},
               {"event", ev},
               {"failed", std::to_string(r.failed)},
               {"failed_cumulative", std::to_string(r.failed_cumulative)},
               {"error", r.error},
               {"run", std::to_string(r.run)},
               {"position", std::to_string(r.position)}});
  js << "    {\"method\":\"" << JsonEscape(r.method) << "\",\"run\":" << r.run
     << ",\"position\":" << r.position << ",\"event\":\"" << ev << "\",\"failed\":" << r.failed
     << ",\"failed_cumulative\":" << r.failed_cumulative << ",\"error\":\"" << JsonEscape(r.error)
     << "\"}";
}

std::string Ms(const MeanStd& m, int precision = 1) {
  MeanStd ms = m;
  ms.mean *= 1e3;
  ms.std *= 1e3;
  return FormatMeanStd(ms, precision);
}

// The table line of one (method, event position) over its runs.
void PrintSummaryLine(const EventSummary& s) {
  const std::string runs = std::to_string(s.done) + "/" + std::to_string(s.runs);
  if (s.done == 0) {
    std::printf("%-26s %-6s %-5s not done, serving went on: %s\n", s.method.c_str(),
                s.event.c_str(), runs.c_str(), s.error.c_str());
    return;
  }
  std::printf(
      "%-26s %-6s %-5s %13s %11s %8.1f %9s %7.1f %7.1f %7.1f %7.1f %11s %11s %11s %11s %5d\n",
      s.method.c_str(), s.event.c_str(), runs.c_str(), Ms(s.latency_s).c_str(),
      Ms(s.downtime_s).c_str(), s.arena_peak_mib.mean, FormatMeanStd(s.pss_delta_mib, 0).c_str(),
      s.remapped_mib.mean, s.p2p_mib.mean, s.disk_mib.mean, s.kv_shrunk_mib.mean,
      FormatMeanStd(s.before_tps, 0).c_str(), FormatMeanStd(s.during_tps, 0).c_str(),
      FormatMeanStd(s.after_tps, 0).c_str(), Ms(s.max_gap_s, 0).c_str(), s.failed);
  if (!s.error.empty()) {
    std::printf("%-26s %-6s %d of %d runs not done, serving went on: %s\n", "", "", s.runs - s.done,
                s.runs, s.error.c_str());
  }
}

// The phases of every (method, event position) that was done, ms mean+-std over its runs.
void PrintPhases(const std::vector<EventSummary>& sums) {
  std::printf("\nphases (ms, mean+-std over the runs that did the event):\n");
  for (const EventSummary& s : sums) {
    if (s.done == 0) continue;
    std::string line;
    for (const auto& [phase, m] : s.phase_s) line += " " + phase + " " + Ms(m);
    std::printf("%-26s %-6s%s\n", s.method.c_str(), s.event.c_str(), line.c_str());
  }
}

}  // namespace

void WriteEvents(const std::vector<EventRow>& rows, const RunSummary& sum,
                 const std::string& out_dir) {
  std::ofstream js(out_dir + "/events.json");
  std::ofstream csv(out_dir + "/events.csv");
  for (size_t i = 0; i < kColumns; ++i) csv << (i ? "," : "") << kCsvColumns[i];
  csv << "\n";
  js << "{\n  \"status\": \"" << (sum.status.ok() ? "ok" : "error") << "\",\n";
  if (!sum.status.ok()) {
    js << "  \"error\": \"" << JsonEscape(sum.status.ToString()) << "\",\n  \"error_method\": \""
       << JsonEscape(sum.method) << "\",\n";
  }
  js << "  \"failed_requests\": " << sum.failed_requests
     << ",\n  \"copy_bandwidth_gbs\": " << sum.copy_gbs << ",\n  \"repeat\": " << sum.repeat
     << ",\n  \"window_s\": " << sum.window_s << ",\n  \"events\": [\n";
  for (size_t i = 0; i < rows.size(); ++i) {
    if (rows[i].error.empty()) {
      WriteDoneEvent(rows[i], csv, js);
    } else {
      WriteRefusedEvent(rows[i], csv, js);
    }
    js << (i + 1 == rows.size() ? "\n" : ",\n");
  }
  const std::vector<EventSummary> sums = Summarize(rows);
  js << "  ],\n  \"summary\": [\n";
  for (size_t i = 0; i < sums.size(); ++i) {
    js << "    " << SummaryJson(sums[i]) << (i + 1 == sums.size() ? "\n" : ",\n");
  }
  js << "  ]\n}\n";
  std::printf(
      "\nevery event, mean+-std over the runs that did it (runs: done/reached; throughput in "
      "fixed %g s windows before / during / after the command):\n",
      sum.window_s);
  std::printf("%-26s %-6s %-5s %13s %11s %8s %9s %7s %7s %7s %7s %11s %11s %11s %11s %5s\n",
              "method", "event", "runs", "latency ms", "downtime ms", "peak MiB", "PSS +MiB",
              "remap", "p2p", "disk", "KV -MiB", "tps-pre", "during", "after", "max gap ms",
              "fail");
  for (const EventSummary& s : sums) PrintSummaryLine(s);
  PrintPhases(sums);
  if (!sum.status.ok()) {
    // The run itself ended: one last row, event "run", with the error.
    std::printf("%-26s %-6s the run ended: %s\n", sum.method.c_str(), "run",
                sum.status.ToString().c_str());
    CsvRow(csv, {{"method", sum.method}, {"event", "run"}, {"error", sum.status.ToString()}});
  }
}

void PrintComparison(const std::vector<EventRow>& rows, double copy_gbs) {
  const std::vector<EventSummary> sums = Summarize(rows);
  std::map<std::pair<std::string, int>, const EventSummary*> by;
  for (const EventSummary& s : sums) by[{s.method, s.position}] = &s;
  auto done = [&](const std::string& method, int position) -> const EventSummary* {
    auto it = by.find({method, position});
    return it != by.end() && it->second->done > 0 ? it->second : nullptr;
  };
  std::printf(
      "\nElasticMoE against the baselines (same run, same load; mean+-std over the runs; bound = "
      "bytes moved at the %.1f GB/s memcpy of this run, step = mean decode step before):\n",
      copy_gbs);
  std::printf("%-6s %12s %10s %9s %17s %12s %11s %12s %16s %15s %11s\n", "event", "lat vs cold",
              "bound ms", "step ms", "lat/(bound+step)", "copy bw", "tput kept", "peak vs cold",
              "peak vs extrav.", "peak vs horiz.", "max gap ms");
  for (const EventSummary& s : sums) {
    if (s.method != "elastic" || s.done == 0) continue;
    const EventSummary* cold = done("cold-restart", s.position);
    const EventSummary* ext = done("extravagant", s.position);
    const EventSummary* hor = done("horizontal", s.position);
    // Horizontal's events can differ from the schedule's (it refuses counts that are not a
    // multiple of the first): compare only the same event.
    if (hor && hor->event != s.event) hor = nullptr;
    char lat[32] = "-", pc[32] = "-", pe[32] = "-", ph[32] = "-", bw[32] = "-";
    const double peak = s.arena_peak_mib.mean;
    if (cold && s.latency_s.mean > 0) {
      const double r = cold->latency_s.mean / s.latency_s.mean;  // > 1: elastic is faster
      std::snprintf(lat, sizeof(lat), r >= 1 ? "%.1fx lower" : "%.1fx higher", r >= 1 ? r : 1 / r);
    }
    if (cold && cold->arena_peak_mib.mean > 0) {
      std::snprintf(pc, sizeof(pc), "%+.1f%%", 100.0 * (peak / cold->arena_peak_mib.mean - 1));
    }
    if (ext && ext->arena_peak_mib.mean > 0) {
      std::snprintf(pe, sizeof(pe), "%.1f%% below", 100.0 * (1 - peak / ext->arena_peak_mib.mean));
    }
    if (hor && hor->arena_peak_mib.mean > 0) {
      std::snprintf(ph, sizeof(ph), "%.1f%% below", 100.0 * (1 - peak / hor->arena_peak_mib.mean));
    }
    if (s.p2p_gbs.n > 0 && copy_gbs > 0) {
      MeanStd pct = s.p2p_gbs;
      pct.mean *= 100 / copy_gbs;
      pct.std *= 100 / copy_gbs;
      std::snprintf(bw, sizeof(bw), "%s%%", FormatMeanStd(pct, 0).c_str());
    }
    MeanStd kept = s.tput_kept;
    kept.mean *= 100;
    kept.std *= 100;
    const std::string ratio = FormatMeanStd(s.latency_ratio, 1) + "x";
    std::printf("%-6s %12s %10s %9s %17s %12s %10s%% %12s %16s %15s %11s\n", s.event.c_str(), lat,
                Ms(s.copy_bound_s).c_str(), Ms(s.step_s).c_str(), ratio.c_str(), bw,
                FormatMeanStd(kept, 0).c_str(), pc, pe, ph, Ms(s.max_gap_s, 0).c_str());
  }
}

void WritePlot(const std::vector<EventRow>& rows, const std::vector<std::string>& method_names,
               const std::string& out_dir) {
  {
    std::ofstream gp(out_dir + "/throughput.gp");
    const size_t panels = (method_names.size() + 1) / 2;
    gp << "set terminal pngcairo size 1400," << 60 + 190 * panels << "\nset output '" << out_dir
       << "/throughput.png'\nset datafile separator ','\nset multiplot layout " << panels
       << ",2 title 'throughput (tokens/s, 0.5 s bins, the first run); scale events "
       << "between the dashed lines'\n";
    for (const std::string& name : method_names) {
      gp << "set title '" << name << "'\nset yrange [0:*]\nunset arrow\n";
      for (const EventRow& r : rows) {
        if (r.method != name || r.run != 0 || !r.error.empty()) continue;
        gp << "set arrow from " << r.rep.command_s << ", graph 0 to " << r.rep.command_s
           << ", graph 1 nohead dt 2 lc rgb 'red'\n";
        gp << "set arrow from " << r.rep.command_s + r.rep.latency_s << ", graph 0 to "
           << r.rep.command_s + r.rep.latency_s << ", graph 1 nohead dt 2 lc rgb 'blue'\n";
      }
      gp << "plot '" << out_dir << "/timeline.csv' using (strcol(1) eq '" << name
         << "' && $6 == 0 ? floor($2*2)/2 : 1/0):($3*2) smooth frequency with steps notitle\n";
    }
    gp << "unset multiplot\n";
  }
  if (std::system("command -v gnuplot >/dev/null 2>&1") == 0) {
    const std::string plot = "gnuplot '" + out_dir + "/throughput.gp'";
    if (std::system(plot.c_str()) == 0) {
      std::printf("\nplot: %s/throughput.png\n", out_dir.c_str());
    }
  } else {
    std::printf("\n(gnuplot not installed: %s/throughput.gp draws the plot)\n", out_dir.c_str());
  }
}

}  // namespace emoe::tools
