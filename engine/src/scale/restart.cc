// A new instance over the same memory: no weight is read from disk, running requests keep their
// KV. The supervisor's answer to a crashed instance process.
#include "scale/procedure.h"

namespace emoe::engine {

StatusOr<ScaleReport> RestartActive(ScaleContext& c) {
  VMM_RETURN_IF_ERROR(c.CheckServing());
  ScaleReport rep;
  rep.name = "restart";
  rep.from_devices = rep.to_devices = c.active->devices();
  const auto t0 = std::chrono::steady_clock::now();
  rep.command_s = c.clock();
  rep.arena_before = c.ArenaUsedBytes();
  const std::vector<int> devices = c.active->devices();
  VMM_ASSIGN_OR_RETURN(auto next,
                       c.Prepare(c.SpecFor(devices, c.placement, c.prefix), false, &rep));
  VMM_RETURN_IF_ERROR(next->WarmUp());
  const std::vector<kv::KvStore*> stores = c.stores->StoresFor(devices);
  StatusOr<Scheduler::SwitchStats> sw = Status::Internal("switch did not run");
  c.loop->RunBetweenSteps([&] {
    c.loop->thread().AssertHeld();
    const auto ts = std::chrono::steady_clock::now();
    sw = c.loop->primary()->SwitchInstance(next.get(), stores, {});
    if (sw.ok()) {
      c.loop->NextGeneration();
      c.loop->ClearCrashed();
    }
    rep.downtime_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - ts).count();
  });
  VMM_RETURN_IF_ERROR(sw.status());
  rep.requests_kept = sw->kept;
  rep.latency_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  c.active = std::move(next);
  rep.arena_after = c.ArenaUsedBytes();
  return rep;
}

}  // namespace emoe::engine
