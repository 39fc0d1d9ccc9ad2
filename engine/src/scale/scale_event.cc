#include "scale/scale_event.h"

#include <algorithm>
#include <cstdio>

#include "laps.h"

namespace emoe::engine {

namespace {

double Since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

}  // namespace

Status ScaleContext::CheckServing() const {
  if (active) return Status::Ok();
  return Status::FailedPrecondition("not serving: " + down);
}

std::vector<int> ScaleContext::ServingDevices() const {
  std::vector<int> d = active ? active->devices() : std::vector<int>{};
  for (const auto& r : loop->ReplicaDevices()) d.insert(d.end(), r.begin(), r.end());
  std::sort(d.begin(), d.end());
  return d;
}

uint64_t ScaleContext::ArenaUsedBytes() const {
  auto stats = hmm->Stats();
  if (!stats.ok()) {
    std::fprintf(stderr, "coordinator: HMM statistics: %s\n", stats.status().ToString().c_str());
    return 0;
  }
  uint64_t used = 0;
  for (const hbm::DeviceStats& s : *stats) used += s.used_bytes;
  return used;
}

StatusOr<hbm::LoadReport> ScaleContext::Load(const hbm::PlacementTable& table,
                                             const std::string& p) {
  return hmm->Load(checkpoint->path, table, p);
}

AttachSpec ScaleContext::SpecFor(const std::vector<int>& devices, const experts::ExpertPlacement& p,
                                 const std::string& weights_prefix) const {
  AttachSpec spec;
  spec.devices = devices;
  spec.placement = p;
  spec.prefix = weights_prefix;
  for (kv::KvStore* s : stores->StoresFor(devices)) spec.stores.push_back(s);
  return spec;
}

StatusOr<std::unique_ptr<Instance>> ScaleContext::Prepare(const AttachSpec& spec,
                                                          bool allow_standby, ScaleReport* rep) {
  for (size_t i = 0; i < spec.stores.size(); ++i) {
    if (spec.stores[i] == nullptr)
      return Status::Internal("attach before the KV store of a device");
  }
  Laps laps;
  VMM_ASSIGN_OR_RETURN(auto inst, pool->Take(spec.devices, allow_standby));
  AttachStats st;
  laps.Mark("take", &st.phase_s);
  VMM_RETURN_IF_ERROR(inst->Attach(spec, &st));
  if (rep != nullptr) {
    rep->bytes_remapped += st.bytes_mapped;
    rep->bytes_copied += st.bytes_copied;
    // The instance phase's parts (AttachStats::phase_s), next to the phases.
    for (const auto& [part, s] : st.phase_s) rep->phase_s["instance:" + part] += s;
  }
  return inst;
}

void UndoLog::Run() {
  for (auto it = steps_.rbegin(); it != steps_.rend(); ++it) (*it)();
  steps_.clear();
}

ScaleEvent::ScaleEvent(ScaleContext& c, const ScaleOptions& o, std::vector<int> to)
    : ctx(c), options(o), pss_(std::chrono::milliseconds(20)) {
  rep.name = o.Name();
  rep.from_devices = c.ServingDevices();
  rep.to_devices = std::move(to);
  rep.command_s = c.clock();
  rep.arena_before = c.ArenaUsedBytes();
  Sample();
}

void ScaleEvent::Sample() { rep.arena_peak = std::max(rep.arena_peak, ctx.ArenaUsedBytes()); }

void ScaleEvent::Phase(const char* name) {
  rep.phase_s[name] = Since(t_);
  t_ = std::chrono::steady_clock::now();
  Sample();
  if (ctx.on_phase) ctx.on_phase(name);
}

Status ScaleEvent::Injected(const char* name) const {
  if (options.fail_after == name) {
    return Status::Internal(std::string("injected failure after ") + name);
  }
  return Status::Ok();
}

double ScaleEvent::SinceCommand() const { return Since(t0_); }

Status ScaleEvent::Fail(Status s, const std::string& what) {
  next.reset();
  undo.Run();
  kv_room.GrowBack();
  return s.Annotate(what);
}

void ScaleEvent::Cleanup(const std::string& what, const Status& s) {
  if (s.ok()) return;
  ++rep.cleanup_errors;
  std::fprintf(stderr, "coordinator: %s: %s not released: %s\n", rep.name.c_str(), what.c_str(),
               s.ToString().c_str());
}

void ScaleEvent::GrowKvBack() { rep.cleanup_errors += kv_room.GrowBack(); }

ScaleReport ScaleEvent::Finish() {
  undo.Commit();
  GrowKvBack();
  rep.arena_after = ctx.ArenaUsedBytes();
  rep.pss_peak_bytes = pss_.Stop();
  rep.pss_before_bytes = pss_.first();
  return rep;
}

}  // namespace emoe::engine
