// Redistribution plans: the per-(device, layer) split of experts into retained, incoming and
// outgoing, derived from two placements, and the validator the engine runs before applying one.
#include "experts/plan.h"

#include <algorithm>
#include <iterator>
#include <string>
#include <tuple>

namespace emoe::experts {

namespace {

std::vector<int> SortedUnion(const std::vector<int>& a, const std::vector<int>& b) {
  std::vector<int> u;
  std::set_union(a.begin(), a.end(), b.begin(), b.end(), std::back_inserter(u));
  return u;
}

std::vector<int> SortedDifference(const std::vector<int>& a, const std::vector<int>& b) {
  std::vector<int> d;
  std::set_difference(a.begin(), a.end(), b.begin(), b.end(), std::back_inserter(d));
  return d;
}

std::string MoveString(const ExpertMove& m) {
  return "expert " + std::to_string(m.expert) + " of layer " + std::to_string(m.layer) +
         " from device " + std::to_string(m.from) + " to device " + std::to_string(m.to);
}

bool StrictlyAscending(const std::vector<int>& v) {
  return std::adjacent_find(v.begin(), v.end(), [](int a, int b) { return a >= b; }) == v.end();
}

// Checks both placements and that they have the same shape (invariant 1).
Status CheckPair(const ExpertPlacement& from, const ExpertPlacement& to) {
  if (Status s = from.Validate(); !s.ok()) return s.Annotate("old placement");
  if (Status s = to.Validate(); !s.ok()) return s.Annotate("new placement");
  if (from.num_layers() != to.num_layers() || from.num_experts() != to.num_experts()) {
    return Status::InvalidArgument(
        "placements differ in shape: " + std::to_string(from.num_layers()) + " layers x " +
        std::to_string(from.num_experts()) + " experts vs " + std::to_string(to.num_layers()) +
        " layers x " + std::to_string(to.num_experts()) + " experts");
  }
  return Status::Ok();
}

// The moves between two placements of the same shape, ascending by (layer, expert).
std::vector<ExpertMove> MovesBetween(const ExpertPlacement& from, const ExpertPlacement& to) {
  std::vector<ExpertMove> moves;
  for (int l = 0; l < from.num_layers(); ++l) {
    for (int e = 0; e < from.num_experts(); ++e) {
      const int a = from.owner[l][e], b = to.owner[l][e];
      if (a != b) moves.push_back({l, e, a, b});
    }
  }
  return moves;
}

}  // namespace

std::vector<int> RedistributionPlan::added_devices() const {
  return SortedDifference(to.devices, from.devices);
}

std::vector<int> RedistributionPlan::removed_devices() const {
  return SortedDifference(from.devices, to.devices);
}

int64_t RedistributionPlan::retained_count() const {
  int64_t n = 0;
  const int layers = std::min(from.num_layers(), to.num_layers());
  for (int l = 0; l < layers; ++l) {
    const size_t experts = std::min(from.owner[l].size(), to.owner[l].size());
    for (size_t e = 0; e < experts; ++e) n += from.owner[l][e] == to.owner[l][e] ? 1 : 0;
  }
  return n;
}

const DeviceLayerPlan* RedistributionPlan::Find(int device, int layer) const {
  const auto it =
      std::lower_bound(per_device.begin(), per_device.end(), std::make_pair(device, layer),
                       [](const DeviceLayerPlan& p, const std::pair<int, int>& key) {
                         return std::make_pair(p.device, p.layer) < key;
                       });
  if (it == per_device.end() || it->device != device || it->layer != layer) return nullptr;
  return &*it;
}

Status RedistributionPlan::Validate() const {
  // Invariant 1.
  if (Status s = CheckPair(from, to); !s.ok()) return s.Annotate("plan");

  // Invariant 2: exactly the differing pairs, with the right endpoints, in order.
  const std::vector<ExpertMove> expected = MovesBetween(from, to);
  for (size_t i = 0; i < moves.size(); ++i) {
    const ExpertMove& m = moves[i];
    if (m.layer < 0 || m.layer >= from.num_layers() || m.expert < 0 ||
        m.expert >= from.num_experts()) {
      return Status::InvalidArgument("plan: move " + std::to_string(i) + " (" + MoveString(m) +
                                     ") names no expert of the placements");
    }
    if (i > 0 && std::tie(moves[i - 1].layer, moves[i - 1].expert) >= std::tie(m.layer, m.expert)) {
      return Status::InvalidArgument("plan: move " + std::to_string(i) + " (" + MoveString(m) +
                                     ") is not in ascending (layer, expert) order");
    }
    const int owner_from = from.owner[m.layer][m.expert], owner_to = to.owner[m.layer][m.expert];
    if (owner_from == owner_to) {
      return Status::InvalidArgument("plan: move " + std::to_string(i) + " (" + MoveString(m) +
                                     ") moves an expert that stays on device " +
                                     std::to_string(owner_from));
    }
    if (m.from != owner_from || m.to != owner_to) {
      return Status::InvalidArgument("plan: move " + std::to_string(i) + " (" + MoveString(m) +
                                     ") disagrees with the placements: from device " +
                                     std::to_string(owner_from) + " to device " +
                                     std::to_string(owner_to));
    }
  }
  // Every listed move is a real, distinct, correct one; equal counts mean none is missing.
  if (moves.size() != expected.size()) {
    for (const ExpertMove& m : expected) {
      if (std::find(moves.begin(), moves.end(), m) == moves.end()) {
        return Status::InvalidArgument("plan: missing move of " + MoveString(m));
      }
    }
  }

  // Invariant 3: one entry per (device of old ∪ new, layer), each a correct split.
  const std::vector<int> devices = SortedUnion(from.devices, to.devices);
  const size_t layers = static_cast<size_t>(from.num_layers());
  size_t next = 0;
  for (int d : devices) {
    for (int l = 0; l < from.num_layers(); ++l, ++next) {
      const std::string where = "plan: device " + std::to_string(d) + " layer " + std::to_string(l);
      if (next >= per_device.size() || per_device[next].device != d ||
          per_device[next].layer != l) {
        std::string found = "nothing";
        if (next < per_device.size()) {
          found = "device " + std::to_string(per_device[next].device) + " layer " +
                  std::to_string(per_device[next].layer);
        }
        return Status::InvalidArgument(where + ": no entry (entry " + std::to_string(next) +
                                       " is " + found + ")");
      }
      const DeviceLayerPlan& p = per_device[next];
      std::vector<int> incoming;
      for (const ExpertMove& m : p.incoming) {
        if (m.layer != l || m.to != d || m.expert < 0 || m.expert >= from.num_experts() ||
            m.from != from.owner[l][m.expert] || m.to != to.owner[l][m.expert]) {
          return Status::InvalidArgument(where + ": incoming " + MoveString(m) +
                                         " disagrees with the placements");
        }
        incoming.push_back(m.expert);
      }
      if (!StrictlyAscending(p.retained) || !StrictlyAscending(incoming) ||
          !StrictlyAscending(p.outgoing)) {
        return Status::InvalidArgument(
            where + ": retained, incoming and outgoing must be strictly ascending");
      }
      std::vector<int> old_local, new_local;
      std::set_union(p.retained.begin(), p.retained.end(), p.outgoing.begin(), p.outgoing.end(),
                     std::back_inserter(old_local));
      std::set_union(p.retained.begin(), p.retained.end(), incoming.begin(), incoming.end(),
                     std::back_inserter(new_local));
      if (old_local.size() != p.retained.size() + p.outgoing.size() ||
          new_local.size() != p.retained.size() + incoming.size()) {
        return Status::InvalidArgument(where + ": retained overlaps incoming or outgoing");
      }
      if (old_local != from.LocalExperts(l, d)) {
        return Status::InvalidArgument(where + ": retained + outgoing != its old experts");
      }
      if (new_local != to.LocalExperts(l, d)) {
        return Status::InvalidArgument(where + ": retained + incoming != its new experts");
      }
    }
  }
  if (per_device.size() != devices.size() * layers) {
    return Status::InvalidArgument("plan: " + std::to_string(per_device.size()) +
                                   " device entries, expected " +
                                   std::to_string(devices.size() * layers));
  }
  return Status::Ok();
}

std::string RedistributionPlan::Summary() const {
  const int64_t total = static_cast<int64_t>(from.num_layers()) * from.num_experts();
  return std::to_string(from.devices.size()) + " -> " + std::to_string(to.devices.size()) +
         " devices: " + std::to_string(moved_count()) + " of " + std::to_string(total) +
         " experts move, " + std::to_string(retained_count()) + " retained";
}

StatusOr<RedistributionPlan> PlanRedistribution(const ExpertPlacement& from,
                                                const ExpertPlacement& to) {
  if (Status s = CheckPair(from, to); !s.ok()) return s.Annotate("plan redistribution");
  RedistributionPlan plan;
  plan.from = from;
  plan.to = to;
  plan.moves = MovesBetween(from, to);
  const std::vector<int> devices = SortedUnion(from.devices, to.devices);
  plan.per_device.reserve(devices.size() * from.num_layers());
  for (int d : devices) {
    for (int l = 0; l < from.num_layers(); ++l) {
      DeviceLayerPlan p;
      p.device = d;
      p.layer = l;
      for (int e = 0; e < from.num_experts(); ++e) {
        const int a = from.owner[l][e], b = to.owner[l][e];
        if (a == d && b == d) {
          p.retained.push_back(e);
        } else if (b == d) {
          p.incoming.push_back({l, e, a, b});
        } else if (a == d) {
          p.outgoing.push_back(e);
        }
      }
      plan.per_device.push_back(std::move(p));
    }
  }
  return plan;
}

}  // namespace emoe::experts
