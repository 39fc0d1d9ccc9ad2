// The replica baseline: whole replicas of the primary configuration added from disk next to it
// (each on devices of its own, stepped concurrently), or removed (their waiting requests move to
// the primary, their running ones drain where they are).
#include <algorithm>

#include "engine/deployment.h"
#include "scale/procedure.h"
#include "serving/switchover.h"

namespace emoe::engine {

namespace {

bool Subset(const std::vector<int>& a, const std::vector<int>& b) {  // a within b (sorted)
  return std::includes(b.begin(), b.end(), a.begin(), a.end());
}

struct NewReplica {
  std::vector<int> devices;
  std::string prefix;
  experts::ExpertPlacement placement;
  std::unique_ptr<Instance> inst;
};

// Scale out, memory and instances: each new replica loaded from disk with KV stores of its own,
// then attached and warmed up. Everything it creates is on the undo log.
Status Build(ScaleEvent& ev, std::vector<NewReplica>& added) {
  ScaleContext& c = ev.ctx;
  for (NewReplica& n : added) {
    ev.undo.Add([&ev, &n] {
      n.inst.reset();
      ev.Cleanup(n.prefix + "*", ev.ctx.hmm->ReleaseMatching(n.prefix, {}).status());
    });
    auto all = [](const TensorSpec&, int) { return true; };
    VMM_ASSIGN_OR_RETURN(hbm::LoadReport l,
                         c.Load(DeploymentTable(c.specs, n.devices, n.placement, all), n.prefix));
    ev.rep.bytes_disk += l.bytes_from_disk;
    for (int d : n.devices) {
      VMM_ASSIGN_OR_RETURN(bool created, c.stores->Ensure(d));
      if (created) ev.undo.Add([&ev, d] { ev.ctx.stores->Drop(d); });
    }
  }
  VMM_RETURN_IF_ERROR(ev.Injected("memory"));
  ev.Phase("memory");
  for (NewReplica& n : added) {
    VMM_ASSIGN_OR_RETURN(n.inst, c.Prepare(c.SpecFor(n.devices, n.placement, n.prefix),
                                           ev.options.preinit, nullptr));
    VMM_RETURN_IF_ERROR(ev.Injected("instance"));
    VMM_RETURN_IF_ERROR(n.inst->WarmUp());
    VMM_RETURN_IF_ERROR(ev.Injected("warmup"));
  }
  ev.Phase("instance");
  return Status::Ok();
}

StatusOr<ScaleReport> ScaleOut(ScaleEvent& ev, const std::vector<int>& primary) {
  ScaleContext& c = ev.ctx;
  const std::vector<int>& from = ev.rep.from_devices;
  const std::vector<int>& to = ev.rep.to_devices;
  std::vector<int> fresh;
  std::set_difference(to.begin(), to.end(), from.begin(), from.end(), std::back_inserter(fresh));
  const size_t r = primary.size();
  std::vector<NewReplica> added;
  for (size_t i = 0; i < fresh.size(); i += r) {
    NewReplica n;
    n.devices.assign(fresh.begin() + i, fresh.begin() + i + r);
    n.prefix = c.NewPrefix('h');
    VMM_ASSIGN_OR_RETURN(n.placement, experts::InitialPlacement(c.config.num_hidden_layers,
                                                                c.config.num_experts, n.devices));
    added.push_back(std::move(n));
  }
  ev.Phase("plan");
  VMM_RETURN_IF_ERROR(ev.Injected("plan"));
  if (Status s = Build(ev, added); !s.ok()) {
    return ev.Fail(s, "horizontal scaling to " + DevicesText(to) +
                          " rolled back; serving continues on " + DevicesText(from));
  }
  c.loop->RunBetweenSteps([&] {
    c.loop->thread().AssertHeld();
    for (NewReplica& n : added) {
      auto rp = std::make_unique<Replica>();
      rp->devices = n.devices;
      rp->prefix = n.prefix;
      rp->sched =
          std::make_unique<Scheduler>(n.inst.get(), c.stores->StoresFor(n.devices), c.scheduler);
      rp->inst = std::move(n.inst);
      rp->concurrent = true;
      c.loop->AddReplica(std::move(rp));
    }
  });
  ev.undo.Commit();
  ev.rep.latency_s = ev.SinceCommand();
  ev.Phase("switch");
  return ev.Finish();
}

StatusOr<ScaleReport> ScaleIn(ScaleEvent& ev, const std::vector<int>& primary,
                              const std::function<Status(const std::string&)>& refuse) {
  ScaleContext& c = ev.ctx;
  const std::vector<int>& to = ev.rep.to_devices;
  // Plan and switch in one stop between two steps: leaving replicas get no new requests, their
  // queues move to the primary, their running requests finish where they are.
  std::vector<Replica*> leaving;
  std::vector<int> kept = primary;
  const Status injected = ev.Injected("plan");
  c.loop->RunBetweenSteps([&] {
    c.loop->thread().AssertHeld();
    for (const auto& rp : c.loop->replicas()) {
      if (rp->retiring) continue;
      if (Subset(rp->devices, to)) {
        kept.insert(kept.end(), rp->devices.begin(), rp->devices.end());
      } else {
        leaving.push_back(rp.get());
      }
    }
    std::sort(kept.begin(), kept.end());
    if (kept != to || !injected.ok()) return;
    for (Replica* rp : leaving) {
      rp->retiring = true;
      ev.rep.requests_drained += static_cast<int>(rp->sched->running());
      rp->sched->HandOverWaiting(c.loop->primary());
    }
  });
  VMM_RETURN_IF_ERROR(injected);
  if (kept != to) {
    return refuse("the replicas left would serve " + DevicesText(kept) +
                  " (replicas leave whole: primary " + DevicesText(primary) + ")");
  }
  ev.rep.latency_s = ev.SinceCommand();
  ev.Phase("switch");
  std::vector<std::pair<std::string, std::vector<int>>> memory;
  for (Replica* rp : leaving) {
    memory.emplace_back(rp->prefix, rp->devices);
    Retire(*c.loop, rp);
  }
  ev.Phase("drain");
  for (const auto& [prefix, devs] : memory) {
    if (!prefix.empty()) {
      ev.Cleanup(prefix + "*", c.hmm->ReleaseMatching(prefix, {}).status());
    }
    for (int d : devs) c.stores->Drop(d);
  }
  ev.Phase("cleanup");
  return ev.Finish();
}

}  // namespace

StatusOr<ScaleReport> ScaleHorizontal(ScaleContext& c, std::vector<int> to, const ScaleOptions& o) {
  ScaleEvent ev(c, o, to);
  const std::vector<int> primary = c.active->devices();
  const std::vector<int>& from = ev.rep.from_devices;
  const size_t r = primary.size();
  auto refuse = [&](const std::string& why) {
    return Status::InvalidArgument("horizontal scaling to " + DevicesText(to) + " refused: " + why +
                                   "; serving continues on " + DevicesText(from));
  };
  if (to.size() % r != 0) {
    return refuse("replicas are whole copies of the first configuration (" + std::to_string(r) +
                  " devices, " + DevicesText(primary) + "), and " + std::to_string(to.size()) +
                  " is not a multiple of " + std::to_string(r));
  }
  if (to == from) return refuse("already serving there");
  if (to.size() > from.size()) {
    // Scale out: each group of r new devices gets a replica of its own, loaded from disk.
    if (!Subset(from, to))
      return refuse("a scale-out keeps the devices serving (" + DevicesText(from) + ")");
    return ScaleOut(ev, primary);
  }
  // Scale in: added replicas leave whole; the primary stays.
  if (!Subset(primary, to)) {
    return refuse("the primary replica on " + DevicesText(primary) +
                  " stays; only replicas added by horizontal scaling leave");
  }
  return ScaleIn(ev, primary, refuse);
}

}  // namespace emoe::engine
