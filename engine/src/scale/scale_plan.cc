#include "scale/scale_plan.h"

#include <algorithm>

namespace emoe::engine {

StatusOr<ScalePlan> PlanElastic(const experts::ExpertPlacement& placement,
                                const std::vector<int>& from, const std::vector<int>& to,
                                const std::vector<TensorSpec>& specs, const std::string& prefix) {
  ScalePlan p;
  p.from = from;
  p.to = to;
  VMM_ASSIGN_OR_RETURN(p.placement, experts::Rebalance(placement, to));
  VMM_ASSIGN_OR_RETURN(p.redistribution, experts::PlanRedistribution(placement, p.placement));
  VMM_RETURN_IF_ERROR(p.redistribution.Validate());
  p.added = p.redistribution.added_devices();
  p.removed = p.redistribution.removed_devices();
  for (const TensorSpec& s : specs) {
    if (s.expert >= 0) {
      p.expert_names[{s.layer, s.expert}].push_back(prefix + s.name);
    } else {
      p.dense.push_back(prefix + s.name);
    }
  }
  for (int d : p.added) p.copies.push_back({p.dense, from[0], d, hbm::Usage::kWeights});
  for (const experts::ExpertMove& m : p.redistribution.moves) {
    const auto& names = p.expert_names[{m.layer, m.expert}];
    p.copies.push_back({names, m.from, m.to, hbm::Usage::kExperts});
    for (const std::string& n : names) p.outgoing.emplace_back(n, m.from);
  }
  return p;
}

namespace {

uint64_t Paged(uint64_t bytes, const hbm::DeviceStats& st, hbm::Usage u) {
  const uint64_t page = std::max<uint64_t>(st.usage[static_cast<int>(u)].page_size, 1);
  return (bytes + page - 1) / page * page;
}

}  // namespace

StatusOr<std::map<int, uint64_t>> PlanNeed(const ScalePlan& plan, const PlanSizes& sizes,
                                           const std::vector<hbm::DeviceStats>& stats,
                                           const std::set<int>& has_store, uint64_t kv_bytes,
                                           const ScaleOptions& o, int num_layers) {
  std::map<int, uint64_t> need_w, need_e;
  for (int d : plan.added) need_w[d] = sizes.dense_bytes;
  for (const experts::ExpertMove& m : plan.redistribution.moves) {
    need_e[m.to] += sizes.expert_extent_bytes.at({m.layer, m.expert});
  }
  std::map<int, uint64_t> need;
  for (int d : plan.to) {
    if (d < 0 || d >= static_cast<int>(stats.size())) {
      return Status::InvalidArgument("scale to " + DevicesText(plan.to) +
                                     ": no statistics of device " + std::to_string(d));
    }
    const hbm::DeviceStats& st = stats[d];
    auto refuse = [&](const char* what, uint64_t bytes, uint64_t free) {
      return Status::ResourceExhausted(
          "scale to " + DevicesText(plan.to) + " refused: device " + std::to_string(d) + " needs " +
          std::to_string(bytes >> 20) + " MiB more " + what + " memory but has " +
          std::to_string(free >> 20) + " MiB free; serving continues on " + DevicesText(plan.from));
    };
    const auto& w = st.usage[static_cast<int>(hbm::Usage::kWeights)];
    const auto& e = st.usage[static_cast<int>(hbm::Usage::kExperts)];
    const auto& k = st.usage[static_cast<int>(hbm::Usage::kKv)];
    const bool new_store = has_store.count(d) == 0;
    if (need_w[d] > w.free_bytes) return refuse("weight", need_w[d], w.free_bytes);
    if (need_e[d] > e.free_bytes) return refuse("expert", need_e[d], e.free_bytes);
    if (new_store && kv_bytes > k.free_bytes) return refuse("KV", kv_bytes, k.free_bytes);
    // Together against the device's capacity: what it receives, a new KV store, and the
    // ablations' private buffers (every local expert copied; no zero-copy: the dense weights too).
    need[d] = need_w[d] + need_e[d] + (new_store ? kv_bytes : 0);
    if (!o.zero_copy) need[d] += Paged(sizes.dense_bytes, st, hbm::Usage::kWeights);
    if (!o.zero_copy || !o.vm_remap) {
      for (int l = 0; l < num_layers; ++l) {
        need[d] += Paged(plan.placement.LocalExperts(l, d).size() * sizes.expert_bytes, st,
                         hbm::Usage::kExperts);
      }
    }
  }
  return need;
}

}  // namespace emoe::engine
