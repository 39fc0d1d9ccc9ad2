// Expert placement: the initial round-robin deal and the minimal-movement rebalance.
//
// Rebalance, per layer, for N new devices and E experts (base = E / N, extra = E % N):
//  1. Targets: every device gets `base`; the `extra` devices that hold the most experts now (ties
//     to the lower id) get one more. This maximizes sum_d min(held_d, target_d), the number of
//     experts that can stay, over all balanced target vectors: a +1 only helps a device holding
//     more than `base`, and the devices holding the most are exactly those.
//  2. Each staying device keeps its lowest-numbered experts up to its target.
//  3. The rest (experts of removed devices, excess of over-full ones), ascending by expert id,
//     fill the devices below target in ascending device id.
// Every expert not kept in step 2 moves once, so the number of moves is
// E - sum_d min(held_d, target_d): the lower bound for any balanced placement.
#include "experts/placement.h"

#include <algorithm>
#include <numeric>
#include <string>

namespace emoe::experts {

namespace {

std::string JoinInts(const std::vector<int>& v) {
  std::string s;
  for (size_t i = 0; i < v.size(); ++i) {
    if (i > 0) s += ",";
    s += std::to_string(v[i]);
  }
  return s;
}

// Sorts `devices` and checks it is a usable device set: non-empty, no negative or duplicate ids.
Status NormalizeDevices(std::vector<int>& devices, const std::string& what) {
  if (devices.empty()) return Status::InvalidArgument(what + ": no devices");
  std::sort(devices.begin(), devices.end());
  if (devices.front() < 0) {
    return Status::InvalidArgument(what + ": negative device id " +
                                   std::to_string(devices.front()));
  }
  const auto dup = std::adjacent_find(devices.begin(), devices.end());
  if (dup != devices.end()) {
    return Status::InvalidArgument(what + ": device " + std::to_string(*dup) + " listed twice");
  }
  return Status::Ok();
}

// Index of `device` in the ascending `devices`, or -1.
int IndexOf(const std::vector<int>& devices, int device) {
  const auto it = std::lower_bound(devices.begin(), devices.end(), device);
  return it != devices.end() && *it == device ? static_cast<int>(it - devices.begin()) : -1;
}

}  // namespace

vmm::StatusOr<std::vector<int>> BalancedPlacement(int num_experts, int num_devices) {
  if (num_experts <= 0 || num_devices <= 0) {
    return vmm::Status::InvalidArgument("placement of " + std::to_string(num_experts) +
                                        " experts on " + std::to_string(num_devices) + " devices");
  }
  std::vector<int> owner(num_experts);
  for (int e = 0; e < num_experts; ++e) owner[e] = e % num_devices;
  return owner;
}

std::vector<int> ExpertsPerDevice(const std::vector<int>& owner, int num_devices) {
  std::vector<int> n(num_devices, 0);
  for (int d : owner) {
    if (d >= 0 && d < num_devices) ++n[d];
  }
  return n;
}

std::vector<int> ExpertPlacement::LocalExperts(int layer, int device) const {
  std::vector<int> local;
  if (layer < 0 || layer >= num_layers()) return local;
  const std::vector<int>& row = owner[layer];
  for (int e = 0; e < static_cast<int>(row.size()); ++e) {
    if (row[e] == device) local.push_back(e);
  }
  return local;
}

std::vector<int> ExpertPlacement::Counts(int layer) const {
  std::vector<int> counts(devices.size(), 0);
  if (layer < 0 || layer >= num_layers()) return counts;
  for (int d : owner[layer]) {
    const int i = IndexOf(devices, d);
    if (i >= 0) ++counts[i];
  }
  return counts;
}

Status ExpertPlacement::Validate() const {
  // Invariant 1.
  if (devices.empty()) return Status::InvalidArgument("placement: no devices");
  for (size_t i = 0; i < devices.size(); ++i) {
    if (devices[i] < 0) {
      return Status::InvalidArgument("placement: negative device id " + std::to_string(devices[i]));
    }
    if (i > 0 && devices[i] <= devices[i - 1]) {
      return Status::InvalidArgument("placement: devices [" + JoinInts(devices) +
                                     "] are not strictly ascending at position " +
                                     std::to_string(i));
    }
  }
  // Invariant 2. An empty shape is refused like InitialPlacement refuses it: a placement of
  // nothing cannot be served and plans over it would be vacuous.
  if (owner.empty()) return Status::InvalidArgument("placement: no layers");
  const size_t num = owner[0].size();
  if (num == 0) return Status::InvalidArgument("placement: layer 0 has no experts");
  for (size_t l = 0; l < owner.size(); ++l) {
    if (owner[l].size() != num) {
      return Status::InvalidArgument("placement: layer " + std::to_string(l) + " has " +
                                     std::to_string(owner[l].size()) + " experts, layer 0 has " +
                                     std::to_string(num));
    }
    for (size_t e = 0; e < num; ++e) {
      if (IndexOf(devices, owner[l][e]) < 0) {
        return Status::InvalidArgument("placement: expert " + std::to_string(e) + " of layer " +
                                       std::to_string(l) + " is owned by device " +
                                       std::to_string(owner[l][e]) + ", not one of [" +
                                       JoinInts(devices) + "]");
      }
    }
  }
  return Status::Ok();
}

std::string ExpertPlacement::ToString() const {
  if (owner.empty()) return "(no layers)";
  std::string s;
  for (int d : devices) {
    if (!s.empty()) s += " ";
    s += "dev" + std::to_string(d) + ":[" + JoinInts(LocalExperts(0, d)) + "]";
  }
  for (size_t l = 1; l < owner.size(); ++l) {
    if (owner[l] != owner[0]) {
      s += " (layers differ)";
      break;
    }
  }
  return s;
}

StatusOr<ExpertPlacement> InitialPlacement(int num_layers, int num_experts,
                                           std::vector<int> devices) {
  const std::string what = "initial placement of " + std::to_string(num_layers) + " layers x " +
                           std::to_string(num_experts) + " experts";
  if (num_layers <= 0) return Status::InvalidArgument(what + ": no layers");
  if (num_experts <= 0) return Status::InvalidArgument(what + ": no experts");
  VMM_RETURN_IF_ERROR(NormalizeDevices(devices, what));
  ExpertPlacement p;
  p.owner.assign(num_layers, std::vector<int>(num_experts));
  const int n = static_cast<int>(devices.size());
  for (auto& row : p.owner) {
    for (int e = 0; e < num_experts; ++e) row[e] = devices[e % n];
  }
  p.devices = std::move(devices);
  return p;
}

StatusOr<ExpertPlacement> Rebalance(const ExpertPlacement& prev, std::vector<int> new_devices) {
  if (Status s = prev.Validate(); !s.ok()) return s.Annotate("rebalance");
  const std::string what = "rebalance " + std::to_string(prev.num_layers()) + " layers x " +
                           std::to_string(prev.num_experts()) + " experts";
  VMM_RETURN_IF_ERROR(NormalizeDevices(new_devices, what));

  const int n = static_cast<int>(new_devices.size());
  const int num_experts = prev.num_experts();
  const int base = num_experts / n, extra = num_experts % n;
  ExpertPlacement next;
  next.owner.assign(prev.num_layers(), std::vector<int>(num_experts, -1));
  std::vector<int> held(n), target(n), kept(n), order(n);
  std::vector<int> pool;  // experts that must move, ascending
  for (int l = 0; l < prev.num_layers(); ++l) {
    const std::vector<int>& row = prev.owner[l];
    std::vector<int>& out = next.owner[l];
    // Step 1: targets.
    std::fill(held.begin(), held.end(), 0);
    for (int d : row) {
      const int i = IndexOf(new_devices, d);
      if (i >= 0) ++held[i];
    }
    std::iota(order.begin(), order.end(), 0);
    // Indices ascend with device ids, so "ties to the lower id" is "ties to the lower index".
    std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return held[a] > held[b]; });
    for (int k = 0; k < n; ++k) target[order[k]] = base + (k < extra ? 1 : 0);
    // Step 2: keep the lowest-numbered experts up to the target.
    std::fill(kept.begin(), kept.end(), 0);
    pool.clear();
    for (int e = 0; e < num_experts; ++e) {
      const int i = IndexOf(new_devices, row[e]);
      if (i >= 0 && kept[i] < target[i]) {
        out[e] = row[e];
        ++kept[i];
      } else {
        pool.push_back(e);
      }
    }
    // Step 3: fill the devices below target, ascending by id, with the pool in expert order.
    size_t next_expert = 0;
    for (int i = 0; i < n; ++i) {
      for (; kept[i] < target[i]; ++kept[i]) out[pool[next_expert++]] = new_devices[i];
    }
    // sum(target) == num_experts == kept-before-step-3 + pool.size(), so the pool is used up.
  }
  next.devices = std::move(new_devices);
  return next;
}

}  // namespace emoe::experts
