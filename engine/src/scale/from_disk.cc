// The baselines that load the new configuration from disk: cold restart (stop, reload, start),
// extravagant (a new instance on fresh devices, then switch) and colocated (a second copy on the
// new device set next to the old one, its KV shrunk ahead of time to make room).
#include <set>

#include "engine/deployment.h"
#include "scale/procedure.h"

namespace emoe::engine {

namespace {

double Since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

auto All() {
  return [](const TensorSpec&, int) { return true; };
}

// Extravagant: as many fresh devices as asked for, none of them serving now.
StatusOr<std::vector<int>> FreshDevices(const ScaleContext& c, size_t count, size_t serving) {
  std::vector<int> fresh;
  for (int d = 0; d < c.hmm->num_devices() && fresh.size() < count; ++d) {
    if (c.active->rank_of_device(d) < 0) fresh.push_back(d);
  }
  if (fresh.size() < count) {
    return Status::ResourceExhausted("extravagant scaling to " + std::to_string(count) +
                                     " devices needs that many fresh devices besides the " +
                                     std::to_string(serving) + " serving; the HMM has " +
                                     std::to_string(c.hmm->num_devices()));
  }
  return fresh;
}

// The device memory a load of `table` takes, per device (hbm::LoadFootprint), plus a KV store
// for each device of `devices` without one.
StatusOr<std::map<int, uint64_t>> NeedOf(const ScaleContext& c, const hbm::PlacementTable& table,
                                         const std::vector<int>& devices) {
  VMM_ASSIGN_OR_RETURN(const std::vector<hbm::DeviceStats> stats, c.hmm->Stats());
  VMM_ASSIGN_OR_RETURN(hbm::PlacementFn fn,
                       hbm::PlacementFromTable(*c.checkpoint, table, c.hmm->num_devices()));
  auto page_size = [&](int d, hbm::Usage u) {
    return stats.at(d).usage[static_cast<int>(u)].page_size;
  };
  std::map<int, uint64_t> need = hbm::LoadFootprint(*c.checkpoint, fn, page_size);
  for (int d : devices) {
    if (!c.stores->Has(d)) need[d] += c.stores->bytes_per_device();
  }
  return need;
}

// Cold restart, while serving is stopped: the new configuration loaded, attached, warmed and
// switched to.
Status Restart(ScaleEvent& ev, Scheduler* primary, const experts::ExpertPlacement& to,
               const std::string& new_prefix) {
  ScaleContext& c = ev.ctx;
  const std::vector<int>& devices = ev.rep.to_devices;
  VMM_ASSIGN_OR_RETURN(hbm::LoadReport r,
                       c.Load(DeploymentTable(c.specs, devices, to, All()), new_prefix));
  ev.rep.bytes_disk += r.bytes_from_disk;
  ev.Phase("memory");
  VMM_RETURN_IF_ERROR(ev.Injected("memory"));
  c.stores->DropAll();  // preempted: no sequence holds blocks any more
  for (int d : devices) VMM_RETURN_IF_ERROR(c.stores->Ensure(d).status());
  Status s = [&]() -> Status {
    VMM_ASSIGN_OR_RETURN(ev.next, c.Prepare(c.SpecFor(devices, to, new_prefix), false, nullptr));
    return ev.next->WarmUp();
  }();
  ev.Phase("instance");
  VMM_RETURN_IF_ERROR(s);
  return primary->SwitchInstance(ev.next.get(), c.stores->StoresFor(devices), {}).status();
}

}  // namespace

StatusOr<ScaleReport> ScaleColdRestart(ScaleContext& c, std::vector<int> devices,
                                       const ScaleOptions& o) {
  ScaleEvent ev(c, o, std::move(devices));
  VMM_ASSIGN_OR_RETURN(experts::ExpertPlacement to,
                       experts::InitialPlacement(c.config.num_hidden_layers, c.config.num_experts,
                                                 ev.rep.to_devices));
  const std::string old_prefix = c.prefix, new_prefix = c.NewPrefix('g');
  ev.Phase("plan");
  // Stop serving; everything of the old configuration goes; load; start.
  const auto stop_t = std::chrono::steady_clock::now();
  Status s;
  {
    ServingPause pause(*c.loop);
    c.active.reset();
    ev.Cleanup("the old configuration " + old_prefix + "*",
               c.hmm->ReleaseMatching(old_prefix, {}).status());
    ev.Phase("stop");
    s = Restart(ev, pause.primary(), to, new_prefix);
    if (!s.ok()) {
      // The old configuration is gone: this is the cold restart's risk. Say so loudly, and
      // serve nothing rather than step the instance that is gone.
      s = s.Annotate("cold restart to " + DevicesText(ev.rep.to_devices) +
                     " failed after the old instance was stopped; not serving");
      c.down = s.ToString();
      ev.next.reset();
      ev.Cleanup("the new configuration " + new_prefix + "*",
                 c.hmm->ReleaseMatching(new_prefix, {}).status());
    }
    pause.OnResume([&c, &s] {
      c.loop->thread().AssertHeld();
      if (s.ok()) {
        c.loop->NextGeneration();
      } else {
        c.loop->MarkDown(s);
      }
    });
  }
  if (!s.ok()) return s;
  ev.rep.downtime_s = Since(stop_t);
  ev.rep.latency_s = ev.SinceCommand();
  c.active = std::move(ev.next);
  c.prefix = new_prefix;
  c.placement = to;
  ev.Phase("switch");
  return ev.Finish();
}

StatusOr<ScaleReport> ScaleFromDisk(ScaleContext& c, std::vector<int> devices,
                                    const ScaleOptions& o) {
  ScaleEvent ev(c, o, devices);
  if (o.method == ScaleMethod::kExtravagant) {
    VMM_ASSIGN_OR_RETURN(ev.rep.to_devices,
                         FreshDevices(c, devices.size(), ev.rep.from_devices.size()));
  }
  const std::vector<int> to_devices = ev.rep.to_devices;
  VMM_ASSIGN_OR_RETURN(
      experts::ExpertPlacement to,
      experts::InitialPlacement(c.config.num_hidden_layers, c.config.num_experts, to_devices));
  const std::string old_prefix = c.prefix, new_prefix = c.NewPrefix('g');
  ev.Phase("plan");
  const std::string what = "scale to " + DevicesText(to_devices) + " rolled back";
  const hbm::PlacementTable table = DeploymentTable(c.specs, to_devices, to, All());
  VMM_ASSIGN_OR_RETURN(auto need, NeedOf(c, table, to_devices));
  VMM_ASSIGN_OR_RETURN(ev.kv_room,
                       c.stores->ShrinkAhead(need, "scale to " + DevicesText(to_devices),
                                             ev.rep.from_devices, &ev.rep.kv_shrunk_bytes));
  ev.undo.Add([&ev, new_prefix] {
    ev.Cleanup(new_prefix + "*", ev.ctx.hmm->ReleaseMatching(new_prefix, {}).status());
  });
  auto r = c.Load(table, new_prefix);
  if (!r.ok()) return ev.Fail(r.status(), what);
  ev.rep.bytes_disk += r->bytes_from_disk;
  for (int d : to_devices) {
    auto created = c.stores->Ensure(d);
    if (!created.ok()) return ev.Fail(created.status(), what);
    if (*created) ev.undo.Add([&ev, d] { ev.ctx.stores->Drop(d); });
  }
  ev.Phase("memory");
  Status s = [&]() -> Status {
    VMM_ASSIGN_OR_RETURN(ev.next, c.Prepare(c.SpecFor(to_devices, to, new_prefix), true, nullptr));
    return ev.next->WarmUp();
  }();
  ev.Phase("instance");
  if (!s.ok()) return ev.Fail(s, what);
  if (Status sw = SwitchOver(ev, to_devices); !sw.ok()) return ev.Fail(sw, what);
  ev.Cleanup(old_prefix + "*", c.hmm->ReleaseMatching(old_prefix, {}).status());
  const std::set<int> keep(to_devices.begin(), to_devices.end());
  for (int d : ev.rep.from_devices) {
    if (!keep.count(d)) c.stores->Drop(d);
  }
  ev.GrowKvBack();
  c.prefix = new_prefix;
  c.placement = to;
  ev.Phase("cleanup");
  return ev.Finish();
}

}  // namespace emoe::engine
