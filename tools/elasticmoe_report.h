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

// The table of every event on stdout; the same rows in out_dir/events.json and events.csv.
// events.json is {"status":"ok"|"error", "error" and "error_method" (with "error": the run's
// error and the method it ended), "failed_requests" (the run's total), "events":[one object per
// row]}; events.csv has one row per event and, when the run ended in an error, a last row whose
// event is "run" and whose error column holds it. Per-event "failed" counts the event's own
// window; "failed_cumulative" the method's total at the window's end.
void WriteEvents(const std::vector<EventRow>& rows, const RunSummary& sum,
                 const std::string& out_dir);

// Per elastic event: latency against cold restart and against the copy bound (bytes copied
// peer-to-peer at `copy_gbs` GB/s), throughput kept, peak memory against cold restart,
// extravagant and horizontal, and the largest token gap.
void PrintComparison(const std::vector<EventRow>& rows, double copy_gbs);

// out_dir/throughput.gp (one panel per method, events between dashed lines), drawn into
// throughput.png when gnuplot is installed; says on stdout which.
void WritePlot(const std::vector<EventRow>& rows, const std::vector<std::string>& method_names,
               const std::string& out_dir);

}  // namespace emoe::tools

#endif  // TOOLS_ELASTICMOE_REPORT_H_
