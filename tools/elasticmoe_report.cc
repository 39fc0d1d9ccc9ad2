// The elastic-scaling experiment's outputs (elasticmoe_report.h).
#include "tools/elasticmoe_report.h"

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>

namespace emoe::tools {
namespace {

using engine::ScaleReport;

std::string JsonEscape(const std::string& in) {
  std::string out;
  for (char ch : in) {
    if (ch == '"' || ch == '\\') out += '\\';
    if (static_cast<unsigned char>(ch) >= 0x20) out += ch;
  }
  return out;
}

double Mib(uint64_t b) { return b / 1048576.0; }

std::string EventName(const ScaleReport& p) {
  return std::to_string(p.from_devices.size()) + "->" + std::to_string(p.to_devices.size());
}

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

constexpr const char* kCsvColumns[] = {
    "method",         "event",           "latency_s",      "downtime_s",        "arena_before_mib",
    "arena_peak_mib", "arena_after_mib", "pss_before_mib", "pss_peak_mib",      "remapped_mib",
    "p2p_mib",        "disk_mib",        "copied_mib",     "tps_before",        "tps_during",
    "tps_after",      "max_token_gap_s", "failed",         "failed_cumulative", "experts_moved",
    "kept",           "kv_copied",       "recomputed",     "kv_shrunk_mib",     "phases",
    "error"};
constexpr size_t kColumns = sizeof(kCsvColumns) / sizeof(kCsvColumns[0]);

// One CSV row: `fields` by column name, the others empty.
void CsvRow(std::ofstream& csv, const std::map<std::string, std::string>& fields) {
  for (size_t i = 0; i < kColumns; ++i) {
    auto it = fields.find(kCsvColumns[i]);
    csv << (i ? "," : "") << (it == fields.end() ? "" : Csv(it->second));
  }
  csv << "\n";
}

// One event that was done: its table line, CSV row and JSON object.
void WriteDoneEvent(const EventRow& r, std::ofstream& csv, std::ofstream& js) {
  const ScaleReport& p = r.rep;
  const std::string ev = EventName(p);
  std::printf(
      "%-26s %-6s %8.3fs %8.4fs %9.1f %9.1f %8.1f %8.1f %8.1f %7.1f %7.1f %7.1f %7.1f %7.3fs "
      "%5d\n",
      r.method.c_str(), ev.c_str(), p.latency_s, p.downtime_s, Mib(p.arena_peak),
      Mib(p.pss_peak_bytes) - Mib(p.pss_before_bytes), Mib(p.bytes_remapped), Mib(p.bytes_p2p),
      Mib(p.bytes_disk), Mib(p.kv_shrunk_bytes), r.before_tps, r.during_tps, r.after_tps,
      r.max_gap_s, r.failed);
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
               {"phases", Phases(p)}});
  js << "    {\"method\":\"" << JsonEscape(r.method) << "\",\"event\":\"" << ev
     << "\",\"tps_before\":" << r.before_tps << ",\"tps_during\":" << r.during_tps
     << ",\"tps_after\":" << r.after_tps << ",\"max_token_gap_s\":" << r.max_gap_s
     << ",\"failed\":" << r.failed << ",\"failed_cumulative\":" << r.failed_cumulative
     << ",\"report\":" << p.ToJson() << "}";
}

// One event that was refused or rolled back (serving went on).
void WriteRefusedEvent(const EventRow& r, std::ofstream& csv, std::ofstream& js) {
  const std::string ev = EventName(r.rep);
  std::printf("%-26s %-6s not done, serving went on: %s\n", r.method.c_str(), ev.c_str(),
              r.error.c_str());
  CsvRow(csv, {{"method", r.method},
               {"event", ev},
               {"failed", std::to_string(r.failed)},
               {"failed_cumulative", std::to_string(r.failed_cumulative)},
               {"error", r.error}});
  js << "    {\"method\":\"" << JsonEscape(r.method) << "\",\"event\":\"" << ev
     << "\",\"failed\":" << r.failed << ",\"failed_cumulative\":" << r.failed_cumulative
     << ",\"error\":\"" << JsonEscape(r.error) << "\"}";
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
  js << "  \"failed_requests\": " << sum.failed_requests << ",\n  \"events\": [\n";
  std::printf("\n%-26s %-6s %9s %9s %9s %9s %8s %8s %8s %7s %7s %7s %7s %8s %5s\n", "method",
              "event", "latency", "downtime", "peak MiB", "PSS +MiB", "remap", "p2p", "disk",
              "KV -MiB", "tps-pre", "during", "after", "max gap", "fail");
  for (size_t i = 0; i < rows.size(); ++i) {
    if (rows[i].error.empty()) {
      WriteDoneEvent(rows[i], csv, js);
    } else {
      WriteRefusedEvent(rows[i], csv, js);
    }
    js << (i + 1 == rows.size() ? "\n" : ",\n");
  }
  js << "  ]\n}\n";
  if (!sum.status.ok()) {
    // The run itself ended: one last row, event "run", with the error.
    std::printf("%-26s %-6s the run ended: %s\n", sum.method.c_str(), "run",
                sum.status.ToString().c_str());
    CsvRow(csv, {{"method", sum.method}, {"event", "run"}, {"error", sum.status.ToString()}});
  }
}

void PrintComparison(const std::vector<EventRow>& rows, double copy_gbs) {
  std::map<std::string, const EventRow*> by;
  for (const EventRow& r : rows) by[r.method + "|" + EventName(r.rep)] = &r;
  std::printf("\nElasticMoE against the baselines (same run, same load):\n");
  std::printf("%-6s %14s %16s %12s %14s %16s %16s %12s\n", "event", "lat vs cold", "lat/copy bound",
              "tput kept", "peak vs cold", "peak vs extrav.", "peak vs horiz.", "max gap");
  for (const EventRow& r : rows) {
    if (r.method != "elastic" || !r.error.empty()) continue;
    const std::string ev = EventName(r.rep);
    auto done = [&](const std::string& key) -> const EventRow* {
      auto it = by.find(key);
      return it != by.end() && it->second->error.empty() ? it->second : nullptr;
    };
    const EventRow* cold = done("cold-restart|" + ev);
    const EventRow* ext = done("extravagant|" + ev);
    const EventRow* hor = done("horizontal|" + ev);
    char lat[32] = "-", pc[32] = "-", pe[32] = "-", ph[32] = "-";
    if (hor) {
      std::snprintf(ph, sizeof(ph), "%.1f%% below",
                    100.0 * (1 - double(r.rep.arena_peak) / hor->rep.arena_peak));
    }
    if (cold) std::snprintf(lat, sizeof(lat), "%.1fx lower", cold->rep.latency_s / r.rep.latency_s);
    if (cold) {
      std::snprintf(pc, sizeof(pc), "%+.1f%%",
                    100.0 * (double(r.rep.arena_peak) / cold->rep.arena_peak - 1));
    }
    if (ext) {
      std::snprintf(pe, sizeof(pe), "%.1f%% below",
                    100.0 * (1 - double(r.rep.arena_peak) / ext->rep.arena_peak));
    }
    const double bound = r.rep.bytes_p2p / (copy_gbs * 1e9);
    char cb[32] = "-";
    if (bound > 0) std::snprintf(cb, sizeof(cb), "%.1fx", r.rep.latency_s / bound);
    std::printf("%-6s %14s %16s %11.0f%% %14s %16s %16s %11.3fs\n", ev.c_str(), lat, cb,
                r.before_tps > 0 ? 100.0 * r.during_tps / r.before_tps : 0.0, pc, pe, ph,
                r.max_gap_s);
  }
}

void WritePlot(const std::vector<EventRow>& rows, const std::vector<std::string>& method_names,
               const std::string& out_dir) {
  {
    std::ofstream gp(out_dir + "/throughput.gp");
    const size_t panels = (method_names.size() + 1) / 2;
    gp << "set terminal pngcairo size 1400," << 60 + 190 * panels << "\nset output '" << out_dir
       << "/throughput.png'\nset datafile separator ','\nset multiplot layout " << panels
       << ",2 title 'throughput (tokens/s, 0.5 s bins); scale events "
       << "between the dashed lines'\n";
    for (const std::string& name : method_names) {
      gp << "set title '" << name << "'\nset yrange [0:*]\nunset arrow\n";
      for (const EventRow& r : rows) {
        if (r.method != name) continue;
        gp << "set arrow from " << r.rep.command_s << ", graph 0 to " << r.rep.command_s
           << ", graph 1 nohead dt 2 lc rgb 'red'\n";
        gp << "set arrow from " << r.rep.command_s + r.rep.latency_s << ", graph 0 to "
           << r.rep.command_s + r.rep.latency_s << ", graph 1 nohead dt 2 lc rgb 'blue'\n";
      }
      gp << "plot '" << out_dir << "/timeline.csv' using (strcol(1) eq '" << name
         << "' ? floor($2*2)/2 : 1/0):($3*2) smooth frequency with steps notitle\n";
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
