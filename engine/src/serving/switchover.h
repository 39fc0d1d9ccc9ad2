// engine/src/serving/switchover.h: the moment a new instance takes over serving, and the end of
// an old one (DESIGN 4.3 step 5).
//
// Switchover: between two steps on the serving thread, `next` serves from now on with the KV
// stores of its devices. Running requests are handed over: kept (their device stays: the block
// table moves, nothing is copied), copied P2P (their device leaves) or recomputed (no room); or,
// with `drain`, they stay on the old scheduler, which becomes a retiring replica stepped next to
// the new one until it is idle (Retire).
//
// Thread safety: called by the control thread; the work happens in ServingLoop tasks.
#ifndef ENGINE_SRC_SERVING_SWITCHOVER_H_
#define ENGINE_SRC_SERVING_SWITCHOVER_H_

#include <vector>

#include "engine/scale_types.h"
#include "hbm/control.h"
#include "serving/kv_store_set.h"
#include "serving/serving_loop.h"

namespace emoe::engine {

struct SwitchResult {
  double downtime_s = 0;  // the serving thread was blocked this long
  int kept = 0, copied = 0, recomputed = 0;
  uint64_t bytes_copied = 0;
  Replica* drained = nullptr;  // with drain: the old scheduler, now a retiring replica
  ServingLoop::TaskWait wait;  // what the switch waited for: the step in flight
};

// Makes `next` (attached to `devices`) the primary's instance. On error nothing changed.
StatusOr<SwitchResult> SwitchServing(ServingLoop& loop, hbm::HmmControl* hmm,
                                     const KvStoreSet& stores, Instance* next,
                                     const std::vector<int>& devices, bool drain,
                                     const SchedulerOptions& options);
// Fills the downtime and hand-over fields of `rep` from `sw`.
void ReportSwitch(const SwitchResult& sw, bool drain, ScaleReport* rep);
// Waits until the retiring replica `r` is idle, then destroys it (serving goes on).
void Retire(ServingLoop& loop, const Replica* r);

}  // namespace emoe::engine

#endif  // ENGINE_SRC_SERVING_SWITCHOVER_H_
