// The runs folded into summaries (elasticmoe_summary.h).
#include "tools/elasticmoe_summary.h"

#include <sstream>
#include <utility>

namespace emoe::tools {
namespace {

double Mib(uint64_t b) { return b / 1048576.0; }

// The values of one (method, position) over its done runs, by name.
struct Samples {
  std::map<std::string, std::vector<double>> v;
  std::map<std::string, std::vector<double>> phases;
  void Add(const char* name, double x) { v[name].push_back(x); }
};

void AddDone(const EventRow& r, Samples* s) {
  const engine::ScaleReport& p = r.rep;
  s->Add("latency_s", p.latency_s);
  s->Add("downtime_s", p.downtime_s);
  s->Add("arena_peak_mib", Mib(p.arena_peak));
  s->Add("pss_delta_mib", Mib(p.pss_peak_bytes) - Mib(p.pss_before_bytes));
  s->Add("remapped_mib", Mib(p.bytes_remapped));
  s->Add("p2p_mib", Mib(p.bytes_p2p));
  s->Add("disk_mib", Mib(p.bytes_disk));
  s->Add("copied_mib", Mib(p.bytes_copied));
  s->Add("kv_shrunk_mib", Mib(p.kv_shrunk_bytes));
  s->Add("before_tps", r.before_tps);
  s->Add("during_tps", r.during_tps);
  s->Add("after_tps", r.after_tps);
  s->Add("max_gap_s", r.max_gap_s);
  s->Add("copy_bound_s", r.copy_bound_s);
  s->Add("step_s", r.step_s);
  if (r.before_tps > 0) s->Add("tput_kept", r.during_tps / r.before_tps);
  if (r.copy_bound_s + r.step_s > 0) {
    s->Add("latency_ratio", p.latency_s / (r.copy_bound_s + r.step_s));
  }
  if (p.p2p_copy_s > 0) s->Add("p2p_gbs", p.bytes_p2p / p.p2p_copy_s / 1e9);
  for (const auto& [phase, sec] : p.phase_s) s->phases[phase].push_back(sec);
}

void Fill(const Samples& s, EventSummary* out) {
  auto get = [&](const char* name) {
    auto it = s.v.find(name);
    return it == s.v.end() ? MeanStd{} : Aggregate(it->second);
  };
  out->latency_s = get("latency_s");
  out->downtime_s = get("downtime_s");
  out->arena_peak_mib = get("arena_peak_mib");
  out->pss_delta_mib = get("pss_delta_mib");
  out->remapped_mib = get("remapped_mib");
  out->p2p_mib = get("p2p_mib");
  out->disk_mib = get("disk_mib");
  out->copied_mib = get("copied_mib");
  out->kv_shrunk_mib = get("kv_shrunk_mib");
  out->before_tps = get("before_tps");
  out->during_tps = get("during_tps");
  out->after_tps = get("after_tps");
  out->max_gap_s = get("max_gap_s");
  out->copy_bound_s = get("copy_bound_s");
  out->step_s = get("step_s");
  out->tput_kept = get("tput_kept");
  out->latency_ratio = get("latency_ratio");
  out->p2p_gbs = get("p2p_gbs");
  for (const auto& [phase, values] : s.phases) out->phase_s[phase] = Aggregate(values);
}

}  // namespace

std::vector<EventSummary> Summarize(const std::vector<EventRow>& rows) {
  std::vector<std::pair<std::string, int>> order;
  std::map<std::pair<std::string, int>, EventSummary> by;
  std::map<std::pair<std::string, int>, Samples> samples;
  for (const EventRow& r : rows) {
    const auto key = std::make_pair(r.method, r.position);
    auto [it, fresh] = by.try_emplace(key);
    EventSummary& s = it->second;
    if (fresh) {
      order.push_back(key);
      s.method = r.method;
      s.position = r.position;
      s.event = EventName(r.rep);
    }
    ++s.runs;
    s.failed += r.failed;
    if (!r.error.empty()) {
      if (s.error.empty()) s.error = r.error;
      continue;
    }
    if (s.done == 0) s.event = EventName(r.rep);
    ++s.done;
    AddDone(r, &samples[key]);
  }
  std::vector<EventSummary> out;
  for (const auto& key : order) {
    EventSummary s = std::move(by[key]);
    Fill(samples[key], &s);
    out.push_back(std::move(s));
  }
  return out;
}

std::string MeanStdJson(const MeanStd& m) {
  std::ostringstream o;
  o.precision(6);
  o << "{\"mean\":" << m.mean << ",\"std\":" << m.std << ",\"n\":" << m.n << "}";
  return o.str();
}

std::string SummaryJson(const EventSummary& s) {
  std::ostringstream o;
  o << "{\"method\":\"" << JsonEscape(s.method) << "\",\"position\":" << s.position
    << ",\"event\":\"" << s.event << "\",\"runs\":" << s.runs << ",\"done\":" << s.done
    << ",\"failed\":" << s.failed;
  if (!s.error.empty()) o << ",\"error\":\"" << JsonEscape(s.error) << "\"";
  const std::pair<const char*, const MeanStd*> fields[] = {
      {"latency_s", &s.latency_s},
      {"downtime_s", &s.downtime_s},
      {"arena_peak_mib", &s.arena_peak_mib},
      {"pss_delta_mib", &s.pss_delta_mib},
      {"remapped_mib", &s.remapped_mib},
      {"p2p_mib", &s.p2p_mib},
      {"disk_mib", &s.disk_mib},
      {"copied_mib", &s.copied_mib},
      {"kv_shrunk_mib", &s.kv_shrunk_mib},
      {"tps_before", &s.before_tps},
      {"tps_during", &s.during_tps},
      {"tps_after", &s.after_tps},
      {"max_token_gap_s", &s.max_gap_s},
      {"copy_bound_s", &s.copy_bound_s},
      {"step_s", &s.step_s},
      {"throughput_kept", &s.tput_kept},
      {"latency_over_bound", &s.latency_ratio},
      {"p2p_gbs", &s.p2p_gbs},
  };
  for (const auto& [name, m] : fields) o << ",\"" << name << "\":" << MeanStdJson(*m);
  o << ",\"phases_s\":{";
  bool first = true;
  for (const auto& [phase, m] : s.phase_s) {
    o << (first ? "" : ",") << "\"" << JsonEscape(phase) << "\":" << MeanStdJson(m);
    first = false;
  }
  o << "}}";
  return o.str();
}

std::string JsonEscape(const std::string& in) {
  std::string out;
  for (char ch : in) {
    if (ch == '"' || ch == '\\') out += '\\';
    if (static_cast<unsigned char>(ch) >= 0x20) out += ch;
  }
  return out;
}

std::string EventName(const engine::ScaleReport& p) {
  return std::to_string(p.from_devices.size()) + "->" + std::to_string(p.to_devices.size());
}

}  // namespace emoe::tools
