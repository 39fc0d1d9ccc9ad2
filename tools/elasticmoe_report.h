// tools/elasticmoe_report.h: the elastic-scaling experiment's outputs: the event table on
// stdout with events.json and events.csv, the comparison of ElasticMoE against the baselines
// measured in the same run, and the throughput plot. tests/engine/elasticmoe_e2e.sh reads the
// CSV columns and the table's "not done" lines.
//
// Thread safety: writes stdout and files; call from one thread.
#ifndef TOOLS_ELASTICMOE_REPORT_H_
#define TOOLS_ELASTICMOE_REPORT_H_

#include <string>
#include <vector>

#include "tools/elasticmoe_experiment.h"

namespace emoe::tools {

// The summary of every (method, event position) on stdout, mean+-std over the runs
// (elasticmoe_summary.h), then their phase times; every run's rows in out_dir/events.json and
// events.csv. events.json is {"status":"ok"|"error", "error" and "error_method" (with "error":
// the run's error and the method it ended), "failed_requests" (the run's total),
// "copy_bandwidth_gbs" (the memcpy bandwidth of this run), "repeat", "window_s", "events":[one
// object per row, with its "run" and "position"; a done one's "report" is the engine's
// ScaleReport plus "copy_bound_s" and "step_s"], "summary":[SummaryJson of each]}; events.csv has
// one row per event and run and, when the run ended in an error, a last row whose event is "run"
// and whose error column holds it. Per-event "failed" counts the event's own window;
// "failed_cumulative" the run's total at the window's end.
void WriteEvents(const std::vector<EventRow>& rows, const RunSummary& sum,
                 const std::string& out_dir);

// Per elastic event position, over the runs: latency against cold restart, against the copy
// bound plus one decode step (latency / (copy_bound_s + step_s)), the copy bandwidth its P2P
// copies reached (bytes_p2p / p2p_copy_s) as a share of `copy_gbs` (GB/s, the same run's
// memcpy), throughput kept (during / before, fixed windows), peak memory against cold restart,
// extravagant and horizontal, and the largest token gap.
void PrintComparison(const std::vector<EventRow>& rows, double copy_gbs);

// out_dir/throughput.gp (one panel per method, events between dashed lines), drawn into
// throughput.png when gnuplot is installed; says on stdout which.
void WritePlot(const std::vector<EventRow>& rows, const std::vector<std::string>& method_names,
               const std::string& out_dir);

}  // namespace emoe::tools

#endif  // TOOLS_ELASTICMOE_REPORT_H_
