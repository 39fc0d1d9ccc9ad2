// tools/elasticmoe_summary.h: the runs of the elastic-scaling experiment folded into one
// summary per (method, event position in the schedule): the mean and standard deviation over the
// runs of every number an event reports (as the paper's Tables 1 and 3), the ratios the
// comparison prints, and how many runs did the event (a refused event is counted, not averaged).
//
// Thread safety: pure functions over values.
#ifndef TOOLS_ELASTICMOE_SUMMARY_H_
#define TOOLS_ELASTICMOE_SUMMARY_H_

#include <map>
#include <string>
#include <vector>

#include "tools/elasticmoe_experiment.h"
#include "tools/elasticmoe_measure.h"

namespace emoe::tools {

struct EventSummary {
  std::string method;
  int position = 0;   // 1..events: the schedule's entry the event scaled to
  std::string event;  // "2->4": of the first run that did it (else of the first run)
  int runs = 0;       // runs that reached the event
  int done = 0;       // of which did it (the others were refused or rolled back)
  std::string error;  // the first refusal's reason ("" when every run did it)
  int failed = 0;     // failed requests in the event's windows, over all runs
  // Over the runs that did the event. MiB for bytes, seconds for times.
  MeanStd latency_s, downtime_s, arena_peak_mib, pss_delta_mib, remapped_mib, p2p_mib, disk_mib,
      copied_mib, kv_shrunk_mib, before_tps, during_tps, after_tps, max_gap_s, copy_bound_s, step_s;
  MeanStd tput_kept;      // during_tps / before_tps (runs with before_tps > 0)
  MeanStd latency_ratio;  // latency / (copy bound + step) (runs where that sum is > 0)
  MeanStd p2p_gbs;        // bytes_p2p / p2p_copy_s, GB/s (runs that report p2p_copy_s > 0)
  std::map<std::string, MeanStd> phase_s;  // every phase any run reported
};

// One summary per (method, position), in the order the rows first show each pair (the rows of a
// run are in schedule order; methods in the order they ran first).
std::vector<EventSummary> Summarize(const std::vector<EventRow>& rows);

// {"mean":..,"std":..,"n":..}
std::string MeanStdJson(const MeanStd& m);
// The summary as one JSON object (method, position, event, runs, done, error, failed, and every
// MeanStd under its name; phases_s an object of them).
std::string SummaryJson(const EventSummary& s);
// `in` as the body of a JSON string (quotes and backslashes escaped, control characters dropped).
std::string JsonEscape(const std::string& in);
// "2->3": the device counts of an event.
std::string EventName(const engine::ScaleReport& p);

}  // namespace emoe::tools

#endif  // TOOLS_ELASTICMOE_SUMMARY_H_
