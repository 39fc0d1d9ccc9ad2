// tools/elasticmoe_measure.h: the numbers the elastic-scaling experiment derives from what it
// measured, as pure functions over values (tested on synthetic timelines):
//   - throughput in a fixed window of the serving timeline, the same window for every method
//     (as the paper measures it): before = [command - W, command], during = [command,
//     command + W], after = [command + W, command + 2W];
//   - the mean decode step before an event (mean interval between consecutive steps);
//   - an event's copy bound: the bytes it must move at the memcpy bandwidth of the same run;
//   - mean and standard deviation over the runs of each (method, event position);
//   - the order in which the runs of the methods go (RunOrder).
//
// Thread safety: pure functions over values.
#ifndef TOOLS_ELASTICMOE_MEASURE_H_
#define TOOLS_ELASTICMOE_MEASURE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "engine/scale_types.h"

namespace emoe::tools {

// Tokens per second of the steps that ended in (t0, t1]; 0 when t1 <= t0.
double WindowTps(const std::vector<engine::StepRecord>& timeline, double t0, double t1);

// The mean interval between consecutive steps that ended in [t0, t1], seconds: (last - first) /
// (steps - 1); 0 (unknown) with fewer than two steps there.
double MeanStepSeconds(const std::vector<engine::StepRecord>& timeline, double t0, double t1);

// Throughput of one event in its three fixed windows of `window_s` seconds around `command_s`.
struct WindowThroughput {
  double before_tps = 0, during_tps = 0, after_tps = 0;  // tokens per second
  double step_s = 0;  // MeanStepSeconds of the before window (0: unknown)
};
WindowThroughput EventWindows(const std::vector<engine::StepRecord>& timeline, double command_s,
                              double window_s);

// Seconds to move what the event moved (bytes_p2p + bytes_disk + bytes_copied) at `copy_gbs`
// GB/s (1e9 bytes per second); 0 when copy_gbs is not positive.
double CopyBoundSeconds(const engine::ScaleReport& report, double copy_gbs);

// Mean and sample standard deviation (n - 1 in the denominator; 0 for one value) of `values`;
// n = 0 gives {0, 0, 0}.
struct MeanStd {
  double mean = 0, std = 0;
  int n = 0;
};
MeanStd Aggregate(const std::vector<double>& values);
// "12.3+-0.4" with `precision` decimals (just the mean when n <= 1), "-" when n = 0.
std::string FormatMeanStd(const MeanStd& m, int precision);

// The order of the methods (indices into in_process) in round `round` of the runs: those whose
// HMM is in hmmd first, then those that need one in this process (so that the HMM is switched,
// and its devices populated again, once per round rather than once per method), reversed in
// every other round (so that each round starts on the HMM the last one ended with, and no
// method always runs first after a fresh populate). in_process[i]: method i needs the
// in-process HMM.
std::vector<size_t> RunOrder(const std::vector<bool>& in_process, int round);

}  // namespace emoe::tools

#endif  // TOOLS_ELASTICMOE_MEASURE_H_
