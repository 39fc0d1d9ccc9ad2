// engine/src/scale/procedure.h: the scale procedures, one file each, over a ScaleContext.
//
//   elastic.cc     kElastic and its ablations (DESIGN 4.3): plan, memory (P2P), instance,
//                  warm-up, switch, drain, cleanup, while the old instance serves
//   from_disk.cc   the baselines that load from disk: cold restart, extravagant, colocated
//   horizontal.cc  whole replicas added from disk or drained away
//   restart.cc     a new instance over the same memory (a crashed instance restarted)
//   scale.cc       validation, TargetDevices and the dispatch to the procedures
//
// Each returns the event's report, or an error with serving unchanged (every procedure's
// failures before its switch roll back through the event's UndoLog; a cold restart's after the
// stop are loud: it is the method's risk). REQUIRES: the caller holds the coordinator's control
// mutex (one control operation at a time).
#ifndef ENGINE_SRC_SCALE_PROCEDURE_H_
#define ENGINE_SRC_SCALE_PROCEDURE_H_

#include <vector>

#include "engine/scale_types.h"
#include "scale/scale_event.h"

namespace emoe::engine {

// Validates `devices` (sorted here) and `o`, frees failed replicas, runs the procedure.
StatusOr<ScaleReport> Scale(ScaleContext& c, std::vector<int> devices, const ScaleOptions& o);
// The devices a scale to `count` moves to (Coordinator::TargetDevices).
StatusOr<std::vector<int>> TargetDevices(const ScaleContext& c, int count);

StatusOr<ScaleReport> ScaleElastic(ScaleContext& c, std::vector<int> devices,
                                   const ScaleOptions& o);
StatusOr<ScaleReport> ScaleColdRestart(ScaleContext& c, std::vector<int> devices,
                                       const ScaleOptions& o);
StatusOr<ScaleReport> ScaleFromDisk(ScaleContext& c, std::vector<int> devices,
                                    const ScaleOptions& o);  // extravagant, colocated
StatusOr<ScaleReport> ScaleHorizontal(ScaleContext& c, std::vector<int> devices,
                                      const ScaleOptions& o);
// The crashed (or any) active instance replaced by a new one over the same memory.
// `on_switched` runs on the serving thread right after the switch (clears the crash mark).
StatusOr<ScaleReport> RestartActive(ScaleContext& c);

// Shared by the procedures that build the new instance next to the old one: ev.next (attached to
// `devices`) takes over serving (phase "switch": the event's latency ends there and it commits),
// becomes the active instance, and the old one exits, with a draining switch once it has finished
// its running requests (phase "drain"). On error nothing changed (the caller rolls back).
Status SwitchOver(ScaleEvent& ev, const std::vector<int>& devices);

}  // namespace emoe::engine

#endif  // ENGINE_SRC_SCALE_PROCEDURE_H_
