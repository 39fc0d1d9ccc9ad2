// kElastic (DESIGN 4.3) and its ablations: the new configuration is built next to the old one,
// which keeps serving, from what the devices already hold.
#include <map>
#include <set>

#include "engine/deployment.h"
#include "laps.h"
#include "scale/procedure.h"
#include "scale/scale_plan.h"

namespace emoe::engine {

namespace {

// Phase 1: the plan, and room for it (KV shrunk ahead of time where a device falls short). One
// request to the HMM: the sizes of what moves and every device's statistics (HmmControl::Describe).
Status Plan(ScaleEvent& ev, ScalePlan* plan) {
  ScaleContext& c = ev.ctx;
  const ScaleOptions& o = ev.options;
  VMM_ASSIGN_OR_RETURN(
      *plan, PlanElastic(c.placement, ev.rep.from_devices, ev.rep.to_devices, c.specs, c.prefix));
  ev.rep.experts_moved = plan->redistribution.moved_count();
  ev.rep.experts_retained = plan->redistribution.retained_count();
  const int peer = ev.rep.from_devices[0];
  std::vector<std::pair<std::string, int>> ask;
  const bool dense = !plan->added.empty() || !o.zero_copy;
  if (dense) {
    for (const std::string& n : plan->dense) ask.emplace_back(n, peer);
  }
  // The experts of a layer share their shapes, so one moved expert per layer tells the extent
  // every moved expert of that layer takes (the plan stays one small request however many move).
  std::map<int, size_t> layer_index;  // layer -> index of its answer in `ask`
  for (const experts::ExpertMove& m : plan->redistribution.moves) {
    if (layer_index.emplace(m.layer, ask.size()).second) {
      ask.emplace_back(plan->expert_names[{m.layer, m.expert}][0], m.from);
    }
  }
  const bool one_expert = !o.zero_copy || !o.vm_remap;
  if (one_expert) ask.emplace_back(plan->expert_names[{0, 0}][0], c.placement.owner[0][0]);
  VMM_ASSIGN_OR_RETURN(const hbm::HmmSnapshot snap, c.hmm->Describe(ask));
  PlanSizes sizes;
  if (dense) {
    for (size_t i = 0; i < plan->dense.size(); ++i) {
      sizes.dense_bytes += snap.records[i].size_bytes + hbm::kDirectAlignment;
    }
  }
  for (const experts::ExpertMove& m : plan->redistribution.moves) {
    sizes.expert_extent_bytes[{m.layer, m.expert}] =
        snap.records[layer_index.at(m.layer)].extent_bytes;
  }
  if (one_expert) sizes.expert_bytes = snap.records.back().extent_bytes;
  std::set<int> has_store;
  for (int d : plan->to) {
    if (c.stores->Has(d)) has_store.insert(d);
  }
  VMM_ASSIGN_OR_RETURN(
      auto need, PlanNeed(*plan, sizes, snap.stats, has_store, c.stores->bytes_per_device(), o,
                          c.config.num_hidden_layers));
  VMM_ASSIGN_OR_RETURN(
      ev.kv_room, c.stores->ShrinkAhead(need, "scale to " + DevicesText(plan->to),
                                        ev.rep.from_devices, &ev.rep.kv_shrunk_bytes, &snap.stats));
  return Status::Ok();
}

// Phase 2, P2P: every copy of the plan in ONE request (HmmControl::ApplyCopies: all at once on
// the destinations' copy workers, all or nothing); the records it made go on the undo log.
Status CopyP2p(ScaleEvent& ev, const ScalePlan& plan) {
  ScaleContext& c = ev.ctx;
  std::vector<hbm::GroupCopy> batch;
  std::vector<std::pair<std::string, int>> records;
  for (const ScalePlan::Copy& cp : plan.copies) {
    batch.push_back({cp.names, cp.from, cp.to, cp.usage, ""});
    for (const std::string& n : cp.names) records.emplace_back(n, cp.to);
  }
  if (batch.empty()) return Status::Ok();
  VMM_ASSIGN_OR_RETURN(const hbm::CopyBatchReport r, c.hmm->ApplyCopies(batch, c.copy_options));
  ev.rep.bytes_p2p += r.bytes;
  ev.rep.p2p_copy_s += r.copy_s;
  // The HMM's parts of it: checks and allocations, the copies, the records.
  ev.rep.phase_s["memory:hmm_prepare"] += r.prepare_s;
  ev.rep.phase_s["memory:hmm_copy"] += r.copy_s;
  ev.rep.phase_s["memory:hmm_register"] += r.register_s;
  ev.undo.Add(
      [&ev, records] { ev.Cleanup("copied records", ev.ctx.hmm->Release(records).status()); });
  return Status::Ok();
}

// Phase 2, the no-P2P ablation: new devices read what they need from disk.
Status LoadIncoming(ScaleEvent& ev, const ScalePlan& plan) {
  ScaleContext& c = ev.ctx;
  std::set<std::pair<int, int>> incoming;
  for (const experts::ExpertMove& m : plan.redistribution.moves)
    incoming.insert({m.layer, m.expert});
  const std::set<int> add(plan.added.begin(), plan.added.end());
  auto want = [&](const TensorSpec& sp, int dev) {
    return sp.expert >= 0 ? incoming.count({sp.layer, sp.expert}) > 0 : add.count(dev) > 0;
  };
  VMM_ASSIGN_OR_RETURN(
      hbm::LoadReport r,
      c.Load(DeploymentTable(c.specs, plan.added, plan.placement, want), c.prefix));
  ev.rep.bytes_disk += r.bytes_from_disk;
  std::vector<std::pair<std::string, int>> records;
  for (const TensorSpec& sp : c.specs) {
    if (sp.expert >= 0 && incoming.count({sp.layer, sp.expert})) {
      records.emplace_back(c.prefix + sp.name, plan.placement.owner[sp.layer][sp.expert]);
    } else if (sp.expert < 0) {
      for (int d : plan.added) records.emplace_back(c.prefix + sp.name, d);
    }
  }
  ev.undo.Add(
      [&ev, records] { ev.Cleanup("loaded records", ev.ctx.hmm->Release(records).status()); });
  return Status::Ok();
}

// Phase 2: memory, concurrent with serving.
Status Memory(ScaleEvent& ev, const ScalePlan& plan) {
  // The phase's parts, next to the phases (ScaleReport::phase_s).
  Laps laps;
  VMM_RETURN_IF_ERROR(ev.options.p2p ? CopyP2p(ev, plan) : LoadIncoming(ev, plan));
  laps.Mark(ev.options.p2p ? "memory:copies" : "memory:load", &ev.rep.phase_s);
  for (int d : plan.added) {
    VMM_ASSIGN_OR_RETURN(bool created, ev.ctx.stores->Ensure(d));
    if (created) ev.undo.Add([&ev, d] { ev.ctx.stores->Drop(d); });
  }
  laps.Mark("memory:kv_stores", &ev.rep.phase_s);
  return ev.Injected("memory");
}

// Phase 3: a standby (or a freshly booted instance) attaches.
Status Attach(ScaleEvent& ev, const ScalePlan& plan) {
  ScaleContext& c = ev.ctx;
  AttachSpec spec = c.SpecFor(plan.to, plan.placement, c.prefix);
  spec.private_copy = !ev.options.zero_copy;
  spec.experts = ev.options.vm_remap ? ExpertView::kSlots : ExpertView::kNaiveCopy;
  VMM_ASSIGN_OR_RETURN(ev.next, c.Prepare(spec, ev.options.preinit, &ev.rep));
  return ev.Injected("instance");
}

// Phase 7: the old instance is gone; outgoing experts and leaving devices are freed.
void Cleanup(ScaleEvent& ev, const ScalePlan& plan) {
  ScaleContext& c = ev.ctx;
  ev.Cleanup("outgoing experts", c.hmm->Release(plan.outgoing).status());
  if (!plan.removed.empty()) {
    ev.Cleanup("records on leaving devices " + DevicesText(plan.removed),
               c.hmm->ReleaseMatching(c.record_namespace, plan.removed).status());
  }
  for (int d : plan.removed) c.stores->Drop(d);
  ev.GrowKvBack();
  c.placement = plan.placement;
}

}  // namespace

StatusOr<ScaleReport> ScaleElastic(ScaleContext& c, std::vector<int> devices,
                                   const ScaleOptions& o) {
  ScaleEvent ev(c, o, std::move(devices));
  ScalePlan plan;
  VMM_RETURN_IF_ERROR(Plan(ev, &plan));
  ev.Phase("plan");
  VMM_RETURN_IF_ERROR(ev.Injected("plan"));  // the guard grows the KV back
  const std::string what = "scale to " + DevicesText(plan.to) +
                           " rolled back; serving continues on " + DevicesText(ev.rep.from_devices);
  Status s = Memory(ev, plan);
  ev.Phase("memory");
  if (!s.ok()) return ev.Fail(s, what);
  s = Attach(ev, plan);
  ev.Phase("instance");
  if (!s.ok()) return ev.Fail(s, what);
  if (Status sw = SwitchOver(ev, plan.to); !sw.ok()) return ev.Fail(sw, what);
  Cleanup(ev, plan);
  ev.Phase("cleanup");
  return ev.Finish();
}

}  // namespace emoe::engine
