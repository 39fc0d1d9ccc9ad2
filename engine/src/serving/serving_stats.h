// engine/src/serving/serving_stats.h: what serving produced, for any thread to read: finished
// results, the step timeline, the gaps between consecutive tokens of each request, the requests
// in flight and the serving errors.
//
// Without history (a long-running service) only the counts are kept: results, the timeline and
// the gaps go nowhere (the coordinator's observer is told them instead), so memory stays bounded.
//
// The serving thread writes (Record, CountError); any thread reads. Thread safety: every method
// takes the stats' own mutex, which is never held while anything else runs.
#ifndef ENGINE_SRC_SERVING_SERVING_STATS_H_
#define ENGINE_SRC_SERVING_SERVING_STATS_H_

#include <cstdint>
#include <map>
#include <utility>
#include <vector>

#include "engine/scale_types.h"
#include "engine/scheduler.h"
#include "engine/serving_view.h"
#include "vmm/mutex.h"

namespace emoe::engine {

class ServingStats {
 public:
  explicit ServingStats(bool keep_history = true) : keep_history_(keep_history) {}
  // One more request accepted (in flight until its result is recorded).
  void Accepted() EXCLUDES(mu_);
  // A step's outcome at time `now`: `tokens` emitted, `done` finished or rejected requests. A
  // step that ran (`stepped` > 0) gets a timeline record.
  void Record(double now, int stepped, const std::vector<TokenEvent>& tokens, int replica_tokens,
              int generation, std::vector<RequestResult> done) EXCLUDES(mu_);
  void CountError() EXCLUDES(mu_);

  std::vector<RequestResult> TakeFinished() EXCLUDES(mu_);
  size_t outstanding() const EXCLUDES(mu_);
  std::vector<StepRecord> Timeline() const EXCLUDES(mu_);
  // Largest gap between two consecutive tokens of one request, over tokens emitted in [t0, t1].
  double MaxTokenGap(double t0, double t1) const EXCLUDES(mu_);
  int errors() const EXCLUDES(mu_);

 private:
  const bool keep_history_;
  mutable vmm::Mutex mu_;
  size_t outstanding_ GUARDED_BY(mu_) = 0;
  int errors_ GUARDED_BY(mu_) = 0;
  std::vector<RequestResult> finished_ GUARDED_BY(mu_);
  std::vector<StepRecord> timeline_ GUARDED_BY(mu_);
  std::map<int64_t, double> last_token_ GUARDED_BY(mu_);
  // (token time, gap since the previous token of its request)
  std::vector<std::pair<double, double>> gaps_ GUARDED_BY(mu_);
};

}  // namespace emoe::engine

#endif  // ENGINE_SRC_SERVING_SERVING_STATS_H_
