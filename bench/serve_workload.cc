// serve_bench's schedule, request bodies and scale events (serve_workload.h).
#include "bench/serve_workload.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <sstream>

namespace emoe::bench {
namespace {

// Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar (H. Hinnant's
// days_from_civil).
int64_t DaysFromCivil(int64_t y, int64_t m, int64_t d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const int64_t yoe = y - era * 400;
  const int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

bool DaysInMonthOk(int y, int m, int d) {
  static constexpr int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (m < 1 || m > 12 || d < 1) return false;
  const bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
  return d <= kDays[m - 1] + (m == 2 && leap ? 1 : 0);
}

// A strict integer of the whole of `s` (no sign, no spaces), false otherwise.
bool ParseInt(const std::string& s, int64_t* v) {
  if (s.empty() || s.size() > 12) return false;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
  }
  *v = std::strtoll(s.c_str(), nullptr, 10);
  return true;
}

std::string Trimmed(const std::string& s) {
  const size_t b = s.find_first_not_of(" \t\r");
  if (b == std::string::npos) return "";
  const size_t e = s.find_last_not_of(" \t\r");
  return s.substr(b, e - b + 1);
}

}  // namespace

std::vector<PlannedRequest> PoissonSchedule(int n, double rate_per_s, int prompt_tokens,
                                            int output_tokens, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::exponential_distribution<double> gap(rate_per_s);
  std::vector<PlannedRequest> out;
  out.reserve(n);
  double t = 0;
  for (int i = 0; i < n; ++i) {
    out.push_back({i, t, prompt_tokens, output_tokens});
    t += gap(rng);
  }
  return out;
}

bool ParseTimestamp(const std::string& s, double* seconds) {
  int y, mo, d, h, mi, used = 0;
  double sec;
  if (std::sscanf(s.c_str(), "%4d-%2d-%2d %2d:%2d:%lf%n", &y, &mo, &d, &h, &mi, &sec, &used) != 6 ||
      used != static_cast<int>(s.size())) {
    return false;
  }
  if (!DaysInMonthOk(y, mo, d) || h < 0 || h > 23 || mi < 0 || mi > 59 || !(sec >= 0) ||
      !(sec < 61)) {
    return false;
  }
  *seconds = static_cast<double>(DaysFromCivil(y, mo, d)) * 86400 + h * 3600 + mi * 60 + sec;
  return true;
}

vmm::StatusOr<std::vector<PlannedRequest>> TraceSchedule(const std::string& csv,
                                                         const std::string& path,
                                                         const TraceOptions& o) {
  std::istringstream in(csv);
  std::string line;
  std::getline(in, line);
  if (Trimmed(line) != "TIMESTAMP,ContextTokens,GeneratedTokens") {
    return vmm::Status::InvalidArgument(
        path + ": the first line must be TIMESTAMP,ContextTokens,GeneratedTokens, got '" +
        line.substr(0, 80) + "'");
  }
  std::mt19937_64 rng(o.seed);
  std::bernoulli_distribution keep(o.sample);
  std::vector<PlannedRequest> out;
  double first = 0;
  bool any_row = false;
  int line_no = 1;
  while (static_cast<int>(out.size()) < o.max_requests && std::getline(in, line)) {
    ++line_no;
    line = Trimmed(line);
    if (line.empty()) continue;
    const size_t c1 = line.find(','), c2 = line.find(',', c1 == std::string::npos ? 0 : c1 + 1);
    double t;
    int64_t ctx, gen;
    if (c1 == std::string::npos || c2 == std::string::npos ||
        !ParseTimestamp(line.substr(0, c1), &t) ||
        !ParseInt(Trimmed(line.substr(c1 + 1, c2 - c1 - 1)), &ctx) ||
        !ParseInt(Trimmed(line.substr(c2 + 1)), &gen)) {
      return vmm::Status::DataLoss(path + ":" + std::to_string(line_no) + ": malformed row '" +
                                   line.substr(0, 80) + "'");
    }
    if (!any_row) first = t;
    any_row = true;
    if (t < first) {
      return vmm::Status::DataLoss(path + ":" + std::to_string(line_no) +
                                   ": timestamp earlier than the first row's");
    }
    const double offset = t - first - o.skip_s;  // trace seconds into the segment
    if (offset < 0 || (o.duration_s > 0 && offset >= o.duration_s)) continue;
    if (o.sample < 1 && !keep(rng)) continue;
    PlannedRequest r;
    r.id = static_cast<int64_t>(out.size());
    r.arrival_s = offset / o.time_scale;
    r.prompt_tokens = static_cast<int>(std::clamp<int64_t>(ctx, 1, o.max_prompt_tokens));
    r.output_tokens = static_cast<int>(std::clamp<int64_t>(gen, 1, o.max_output_tokens));
    out.push_back(r);
  }
  if (!any_row) return vmm::Status::InvalidArgument(path + ": the trace has no rows");
  if (out.empty()) {
    char buf[200];
    std::snprintf(buf, sizeof(buf),
                  ": no row in the segment (--trace_skip_s=%g --trace_duration_s=%g "
                  "--trace_sample=%g)",
                  o.skip_s, o.duration_s, o.sample);
    return vmm::Status::InvalidArgument(path + buf);
  }
  // Traces are in time order; a jittered one is sent in arrival order all the same.
  std::stable_sort(out.begin(), out.end(), [](const PlannedRequest& a, const PlannedRequest& b) {
    return a.arrival_s < b.arrival_s;
  });
  for (size_t i = 0; i < out.size(); ++i) out[i].id = static_cast<int64_t>(i);
  return out;
}

vmm::StatusOr<std::vector<PlannedRequest>> TraceSchedule(const std::string& csv,
                                                         const std::string& path, int n,
                                                         double time_scale, int max_prompt_tokens,
                                                         int max_output_tokens) {
  TraceOptions o;
  o.max_requests = n;
  o.time_scale = time_scale;
  o.max_prompt_tokens = max_prompt_tokens;
  o.max_output_tokens = max_output_tokens;
  return TraceSchedule(csv, path, o);
}

vmm::StatusOr<std::vector<RatePoint>> ParseRateProfile(const std::string& spec) {
  std::vector<RatePoint> out;
  std::stringstream ss(spec);
  std::string item;
  auto bad = [&](const std::string& why) {
    return vmm::Status::InvalidArgument("--rate_profile: '" + item + "': " + why +
                                        " (want T:R,T:R,... with T seconds from 0, increasing, "
                                        "and R requests per second)");
  };
  while (std::getline(ss, item, ',')) {
    const size_t colon = item.find(':');
    if (colon == std::string::npos) return bad("no ':'");
    double v[2];
    const std::string parts[2] = {item.substr(0, colon), item.substr(colon + 1)};
    for (int k = 0; k < 2; ++k) {
      char* end = nullptr;
      v[k] = std::strtod(parts[k].c_str(), &end);
      if (parts[k].empty() || end != parts[k].c_str() + parts[k].size() || !std::isfinite(v[k]) ||
          v[k] < 0) {
        return bad(k == 0 ? "T must be a finite number of seconds >= 0"
                          : "R must be a finite rate >= 0");
      }
    }
    if (out.empty() && v[0] != 0) return bad("the first T must be 0");
    if (!out.empty() && v[0] <= out.back().t_s) return bad("T must increase");
    out.push_back({v[0], v[1]});
  }
  item = spec;
  if (!spec.empty() && spec.back() == ',') return bad("ends with ','");
  if (out.size() < 2) return bad("at least two points");
  bool any = false;
  for (const RatePoint& p : out) any = any || p.rate_per_s > 0;
  if (!any) return bad("every rate is 0");
  return out;
}

double RateAt(const std::vector<RatePoint>& profile, double t_s) {
  if (profile.empty() || t_s < profile.front().t_s || t_s > profile.back().t_s) return 0;
  for (size_t i = 1; i < profile.size(); ++i) {
    const RatePoint &a = profile[i - 1], &b = profile[i];
    if (t_s <= b.t_s)
      return a.rate_per_s + (b.rate_per_s - a.rate_per_s) * (t_s - a.t_s) / (b.t_s - a.t_s);
  }
  return profile.back().rate_per_s;
}

std::vector<PlannedRequest> RateProfileSchedule(const std::vector<RatePoint>& profile,
                                                int max_requests, int prompt_tokens,
                                                int output_tokens, uint64_t seed) {
  double peak = 0;
  for (const RatePoint& p : profile) peak = std::max(peak, p.rate_per_s);
  std::vector<PlannedRequest> out;
  if (peak <= 0) return out;
  std::mt19937_64 rng(seed);
  std::exponential_distribution<double> gap(peak);
  std::uniform_real_distribution<double> u(0, 1);
  const double end_s = profile.back().t_s;
  for (double t = gap(rng); t < end_s && static_cast<int>(out.size()) < max_requests;
       t += gap(rng)) {
    if (u(rng) * peak < RateAt(profile, t)) {
      out.push_back({static_cast<int64_t>(out.size()), t, prompt_tokens, output_tokens});
    }
  }
  return out;
}

std::string CompletionBody(const std::string& model, const PlannedRequest& r, int token_ids,
                           std::mt19937_64* rng) {
  std::uniform_int_distribution<int> id(0, token_ids - 1);
  std::vector<int> prompt(r.prompt_tokens);
  for (int& t : prompt) t = id(*rng);
  const nlohmann::json body = {{"model", model},
                               {"prompt", prompt},
                               {"max_tokens", r.output_tokens},
                               {"ignore_eos", true},
                               {"temperature", 0},
                               {"stream", true},
                               {"stream_options", {{"include_usage", true}}}};
  return body.dump();
}

vmm::StatusOr<std::vector<PlannedScale>> ParseScaleAt(const std::string& spec) {
  std::vector<PlannedScale> out;
  if (spec.empty()) return out;
  std::stringstream ss(spec);
  std::string item;
  while (std::getline(ss, item, ',')) {
    const size_t colon = item.find(':');
    auto bad = [&](const std::string& why) {
      return vmm::Status::InvalidArgument("--scale_at: '" + item + "': " + why +
                                          " (want T:N,T:N,... with T seconds and N devices)");
    };
    if (colon == std::string::npos) return bad("no ':'");
    const std::string t = item.substr(0, colon);
    char* end = nullptr;
    const double at = std::strtod(t.c_str(), &end);
    if (t.empty() || end != t.c_str() + t.size() || !std::isfinite(at) || at < 0) {
      return bad("T must be a finite number of seconds >= 0");
    }
    int64_t target;
    if (!ParseInt(item.substr(colon + 1), &target) || target < 1 || target > 4096) {
      return bad("N must be an integer in 1..4096");
    }
    out.push_back({at, static_cast<int>(target)});
  }
  if (spec.back() == ',') return vmm::Status::InvalidArgument("--scale_at: ends with ','");
  std::stable_sort(out.begin(), out.end(),
                   [](const PlannedScale& a, const PlannedScale& b) { return a.at_s < b.at_s; });
  return out;
}

}  // namespace emoe::bench
