#include "serving/switchover.h"

#include <algorithm>
#include <chrono>
#include <thread>

namespace emoe::engine {

namespace {

double Since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

// Running requests stay with the old scheduler (a retiring replica: it shares the KV stores of
// remaining devices, so it steps after the primary); everything else goes to a new one.
Scheduler::SwitchStats Drain(ServingLoop& loop, Instance* next,
                             const std::vector<kv::KvStore*>& stores,
                             const SchedulerOptions& options, Replica** drained)
    REQUIRES(loop.thread()) {
  auto fresh = std::make_unique<Scheduler>(next, stores, options);
  Scheduler::SwitchStats st;
  st.kept = static_cast<int>(loop.primary()->running());
  loop.primary()->HandOverWaiting(fresh.get());
  auto old = std::make_unique<Replica>();
  old->devices = loop.primary()->instance()->devices();
  old->sched = loop.ReplacePrimary(std::move(fresh));
  old->retiring = true;
  *drained = loop.AddReplica(std::move(old));
  return st;
}

}  // namespace

StatusOr<SwitchResult> SwitchServing(ServingLoop& loop, hbm::HmmControl* hmm, const KvStoreSet& set,
                                     Instance* next, const std::vector<int>& devices, bool drain,
                                     const SchedulerOptions& options) {
  const std::vector<kv::KvStore*> stores = set.StoresFor(devices);
  for (size_t i = 0; i < stores.size(); ++i) {
    if (stores[i] == nullptr) {
      return Status::Internal("switch to device " + std::to_string(devices[i]) +
                              " before its KV store exists");
    }
  }
  kv::PagedSequence::CopyFn copy = [hmm, stores, devices](void* dst, const void* src, uint64_t n) {
    for (size_t i = 0; i < stores.size(); ++i) {
      const uint8_t* b = stores[i]->data();
      if (dst >= b && dst < b + stores[i]->size_bytes()) {
        return hmm->Copy(devices[i], dst, src, n);
      }
    }
    return Status::Internal("KV copy to an unknown store");
  };
  StatusOr<Scheduler::SwitchStats> sw = Status::Internal("switch did not run");
  SwitchResult out;
  out.wait = loop.RunBetweenSteps([&] {
    loop.thread().AssertHeld();
    const auto ts = std::chrono::steady_clock::now();
    if (drain) {
      sw = Drain(loop, next, stores, options, &out.drained);
    } else {
      sw = loop.primary()->SwitchInstance(next, stores, copy);
    }
    if (sw.ok()) loop.NextGeneration();
    out.downtime_s = Since(ts);
  });
  VMM_RETURN_IF_ERROR(sw.status());
  out.kept = sw->kept;
  out.copied = sw->copied;
  out.recomputed = sw->preempted;
  out.bytes_copied = sw->bytes_copied;
  return out;
}

void ReportSwitch(const SwitchResult& sw, bool drain, ScaleReport* rep) {
  rep->downtime_s = sw.downtime_s;
  (drain ? rep->requests_drained : rep->requests_kept) = sw.kept;
  rep->requests_kv_copied = sw.copied;
  rep->requests_recomputed = sw.recomputed;
  rep->bytes_p2p += sw.bytes_copied;
  rep->phase_s["switch:wait"] = sw.wait.wait_s;
  rep->switch_steps_waited = sw.wait.steps;
  rep->switch_step_s = sw.wait.longest_step_s;
  rep->switch_step_tokens = sw.wait.step_tokens;
}

void Retire(ServingLoop& loop, const Replica* r) {
  for (bool gone = false; !gone;) {
    loop.RunBetweenSteps([&] {
      loop.thread().AssertHeld();
      auto& reps = loop.replicas();
      auto it = std::find_if(reps.begin(), reps.end(), [&](const auto& p) { return p.get() == r; });
      gone = it == reps.end() || (*it)->sched->idle();
      if (it != reps.end() && gone) reps.erase(it);
    });
    if (!gone) std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
}

}  // namespace emoe::engine
