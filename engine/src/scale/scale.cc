// Validation of a scale request, the devices of a scale to N, and the dispatch to a procedure.
#include <algorithm>

#include "scale/procedure.h"
#include "serving/switchover.h"

namespace emoe::engine {

namespace {

Status ValidateDevices(const ScaleContext& c, const std::vector<int>& devices) {
  if (devices.empty()) {
    return Status::InvalidArgument("scale to no devices: an instance needs at least one");
  }
  for (size_t i = 0; i < devices.size(); ++i) {
    if (devices[i] < 0 || devices[i] >= c.hmm->num_devices() ||
        (i > 0 && devices[i] == devices[i - 1])) {
      return Status::InvalidArgument("scale to " + DevicesText(devices) + ": device " +
                                     std::to_string(devices[i]) + " is unknown or repeated (" +
                                     std::to_string(c.hmm->num_devices()) + " devices)");
    }
  }
  return Status::Ok();
}

// A replica whose instance failed has handed its requests to the primary: free it first.
void FreeFailedReplicas(ScaleContext& c) {
  if (!c.loop->AnyFailedReplica()) return;
  std::vector<std::pair<std::string, std::vector<int>>> failed;
  c.loop->RunBetweenSteps([&] {
    c.loop->thread().AssertHeld();
    auto& reps = c.loop->replicas();
    for (auto it = reps.begin(); it != reps.end();) {
      if ((*it)->failed && (*it)->sched->idle()) {
        failed.emplace_back((*it)->prefix, (*it)->devices);
        it = reps.erase(it);
      } else {
        ++it;
      }
    }
  });
  for (const auto& [prefix, devs] : failed) {
    if (!prefix.empty()) {
      if (auto n = c.hmm->ReleaseMatching(prefix, {}); !n.ok()) {
        std::fprintf(stderr, "coordinator: failed replica %s* not released: %s\n", prefix.c_str(),
                     n.status().ToString().c_str());
      }
    }
    for (int d : devs) c.stores->Drop(d);
  }
}

}  // namespace

StatusOr<ScaleReport> Scale(ScaleContext& c, std::vector<int> devices, const ScaleOptions& o) {
  std::sort(devices.begin(), devices.end());
  VMM_RETURN_IF_ERROR(c.CheckServing());
  VMM_RETURN_IF_ERROR(ValidateDevices(c, devices));
  FreeFailedReplicas(c);
  if (o.method == ScaleMethod::kHorizontal) return ScaleHorizontal(c, std::move(devices), o);
  const std::vector<int> primary = c.active->devices();
  if (const size_t n = c.loop->ReplicaDevices().size(); n > 0) {
    return Status::FailedPrecondition(
        "scale to " + DevicesText(devices) + " with " + o.Name() +
        " refused: " + std::to_string(n) + " horizontal replica(s) serve besides the primary on " +
        DevicesText(primary) + "; remove them first (horizontal, to " + DevicesText(primary) + ")");
  }
  if (devices == primary && o.method == ScaleMethod::kElastic) {
    return Status::InvalidArgument("scale to " + DevicesText(devices) + ": already serving there");
  }
  if (o.drain && o.method == ScaleMethod::kColdRestart) {
    return Status::InvalidArgument(
        "scale to " + DevicesText(devices) +
        ": cold-restart cannot drain (the old instance stops before the new one starts)");
  }
  switch (o.method) {
    case ScaleMethod::kElastic:
      return ScaleElastic(c, std::move(devices), o);
    case ScaleMethod::kColdRestart:
      return ScaleColdRestart(c, std::move(devices), o);
    default:
      return ScaleFromDisk(c, std::move(devices), o);
  }
}

StatusOr<std::vector<int>> TargetDevices(const ScaleContext& c, int count) {
  VMM_RETURN_IF_ERROR(c.CheckServing());
  const int n = c.hmm->num_devices();
  if (count < 1 || count > n) {
    return Status::InvalidArgument("scale to " + std::to_string(count) +
                                   " devices: the HMM has 1.." + std::to_string(n));
  }
  std::vector<int> order = c.active->devices();
  for (const auto& r : c.loop->ReplicaDevices()) order.insert(order.end(), r.begin(), r.end());
  std::vector<int> to;
  if (count <= static_cast<int>(order.size())) {
    to.assign(order.begin(), order.begin() + count);
  } else {
    to = order;
    for (int d = 0; d < n && static_cast<int>(to.size()) < count; ++d) {
      if (std::find(order.begin(), order.end(), d) == order.end()) to.push_back(d);
    }
  }
  std::sort(to.begin(), to.end());
  return to;
}

Status SwitchOver(ScaleEvent& ev, const std::vector<int>& devices) {
  ScaleContext& c = ev.ctx;
  const bool drain = ev.options.drain;
  VMM_ASSIGN_OR_RETURN(SwitchResult sw, SwitchServing(*c.loop, c.hmm, *c.stores, ev.next.get(),
                                                      devices, drain, c.scheduler));
  ReportSwitch(sw, drain, &ev.rep);
  ev.rep.latency_s = ev.SinceCommand();
  ev.Phase("switch");
  ev.undo.Commit();
  std::swap(c.active, ev.next);  // ev.next: the old instance now
  if (sw.drained != nullptr) {
    // The old instance finishes its running requests, then exits.
    c.loop->RunBetweenSteps([&] {
      c.loop->thread().AssertHeld();
      sw.drained->inst = std::move(ev.next);
    });
    Retire(*c.loop, sw.drained);
    ev.Phase("drain");
  }
  ev.next.reset();
  return Status::Ok();
}

}  // namespace emoe::engine
