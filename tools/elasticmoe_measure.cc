// The experiment's derived numbers (elasticmoe_measure.h).
#include "tools/elasticmoe_measure.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace emoe::tools {

double WindowTps(const std::vector<engine::StepRecord>& timeline, double t0, double t1) {
  if (t1 <= t0) return 0;
  int64_t n = 0;
  for (const auto& s : timeline) {
    if (s.t > t0 && s.t <= t1) n += s.tokens;
  }
  return n / (t1 - t0);
}

double MeanStepSeconds(const std::vector<engine::StepRecord>& timeline, double t0, double t1) {
  double first = 0, last = 0;
  int n = 0;
  for (const auto& s : timeline) {
    if (s.t < t0 || s.t > t1) continue;
    if (n == 0 || s.t < first) first = s.t;
    if (n == 0 || s.t > last) last = s.t;
    ++n;
  }
  return n < 2 ? 0 : (last - first) / (n - 1);
}

WindowThroughput EventWindows(const std::vector<engine::StepRecord>& timeline, double command_s,
                              double window_s) {
  WindowThroughput w;
  w.before_tps = WindowTps(timeline, command_s - window_s, command_s);
  w.during_tps = WindowTps(timeline, command_s, command_s + window_s);
  w.after_tps = WindowTps(timeline, command_s + window_s, command_s + 2 * window_s);
  w.step_s = MeanStepSeconds(timeline, command_s - window_s, command_s);
  return w;
}

double CopyBoundSeconds(const engine::ScaleReport& report, double copy_gbs) {
  if (!(copy_gbs > 0)) return 0;
  const double bytes = static_cast<double>(report.bytes_p2p) +
                       static_cast<double>(report.bytes_disk) +
                       static_cast<double>(report.bytes_copied);
  return bytes / (copy_gbs * 1e9);
}

MeanStd Aggregate(const std::vector<double>& values) {
  MeanStd m;
  m.n = static_cast<int>(values.size());
  if (m.n == 0) return m;
  for (double v : values) m.mean += v;
  m.mean /= m.n;
  if (m.n > 1) {
    double ss = 0;
    for (double v : values) ss += (v - m.mean) * (v - m.mean);
    m.std = std::sqrt(ss / (m.n - 1));
  }
  return m;
}

std::string FormatMeanStd(const MeanStd& m, int precision) {
  if (m.n == 0) return "-";
  char b[64];
  if (m.n == 1) {
    std::snprintf(b, sizeof(b), "%.*f", precision, m.mean);
  } else {
    std::snprintf(b, sizeof(b), "%.*f+-%.*f", precision, m.mean, precision, m.std);
  }
  return b;
}

std::vector<size_t> RunOrder(const std::vector<bool>& in_process, int round) {
  std::vector<size_t> order;
  for (int pass = 0; pass < 2; ++pass) {
    for (size_t i = 0; i < in_process.size(); ++i) {
      if (in_process[i] == (pass == 1)) order.push_back(i);
    }
  }
  if (round % 2 == 1) std::reverse(order.begin(), order.end());
  return order;
}

}  // namespace emoe::tools
