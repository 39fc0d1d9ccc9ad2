#include "hbm/device.h"

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <set>

namespace emoe::hbm {

namespace {

std::string Mib(uint64_t b) {
  char buf[48];
  std::snprintf(buf, sizeof(buf), "%.1f MiB", b / 1048576.0);
  return buf;
}

}  // namespace

const char* UsageName(Usage u) {
  switch (u) {
    case Usage::kWeights:
      return "weights";
    case Usage::kExperts:
      return "experts";
    case Usage::kKv:
      return "kv";
  }
  return "?";
}

Status DeviceOptions::Validate() const {
  if (devices_per_node < 1 || devices_per_node > 256) {
    return Status::InvalidArgument("devices_per_node must be 1..256, got " +
                                   std::to_string(devices_per_node));
  }
  std::set<int> seen;
  for (int n : nodes) {
    if (n < 0 || !seen.insert(n).second) {
      return Status::InvalidArgument("node list has a negative or repeated node " +
                                     std::to_string(n));
    }
  }
  return Status::Ok();
}

std::string DeviceSpec::ToString() const {
  std::string cpu_list;
  for (int c : cpus) cpu_list += (cpu_list.empty() ? "" : ",") + std::to_string(c);
  return "device " + std::to_string(id) + ": node " + std::to_string(node) + ", cpus [" + cpu_list +
         "], capacity " + Mib(capacity_bytes);
}

StatusOr<std::vector<DeviceSpec>> PlanDevices(const DeviceOptions& options,
                                              const std::vector<vmm::NumaNode>& topology) {
  VMM_RETURN_IF_ERROR(options.Validate());
  std::vector<const vmm::NumaNode*> nodes;
  if (options.nodes.empty()) {
    for (const auto& n : topology) nodes.push_back(&n);
  } else {
    for (int id : options.nodes) {
      const vmm::NumaNode* found = nullptr;
      for (const auto& n : topology) found = n.id == id ? &n : found;
      if (found == nullptr) {
        return Status::InvalidArgument("NUMA node " + std::to_string(id) +
                                       " does not exist or has no memory");
      }
      nodes.push_back(found);
    }
  }
  if (nodes.empty()) return Status::Unavailable("the host reports no NUMA node with memory");
  const uint64_t k = options.devices_per_node;
  std::vector<DeviceSpec> out;
  for (const vmm::NumaNode* n : nodes) {
    const uint64_t node_bytes = n->mem_total_bytes > 0 ? n->mem_total_bytes : 0;
    const uint64_t capacity = options.capacity_bytes ? options.capacity_bytes : node_bytes / k;
    if (capacity == 0 || capacity * k > node_bytes) {
      return Status::InvalidArgument(std::to_string(k) + " devices of " + Mib(capacity) +
                                     " do not fit in node " + std::to_string(n->id) + "'s " +
                                     Mib(node_bytes) + " of memory");
    }
    if (n->cpus.empty()) {
      return Status::InvalidArgument("node " + std::to_string(n->id) + " has no CPUs");
    }
    if (options.pin_cpus && n->cpus.size() < k) {
      return Status::InvalidArgument("cannot pin " + std::to_string(k) +
                                     " devices to their own CPUs: node " + std::to_string(n->id) +
                                     " has " + std::to_string(n->cpus.size()) + " CPUs");
    }
    for (uint64_t d = 0; d < k; ++d) {
      DeviceSpec s;
      s.id = static_cast<int>(out.size());
      s.node = n->id;
      s.capacity_bytes = capacity;
      if (n->cpus.size() >= k) {
        // Contiguous, disjoint CPU ranges: device d gets cpus [d*c/k, (d+1)*c/k).
        const size_t c = n->cpus.size();
        for (size_t i = d * c / k; i < (d + 1) * c / k; ++i) s.cpus.push_back(n->cpus[i]);
      } else {
        s.cpus = n->cpus;  // more devices than CPUs: they share (see DESIGN 4.4)
      }
      out.push_back(std::move(s));
    }
  }
  return out;
}

Status DeviceMemoryOptions::Validate(const DeviceSpec& spec) const {
  uint64_t sum = 0;
  for (uint64_t b : usage_bytes) sum += b;
  if (sum == 0) return Status::InvalidArgument("device memory options give no arena any bytes");
  if (spec.capacity_bytes == 0) {
    return Status::InvalidArgument("device " + std::to_string(spec.id) + " has no capacity");
  }
  return Status::Ok();
}

StatusOr<std::unique_ptr<Device>> Device::Create(const DeviceSpec& spec,
                                                 const DeviceMemoryOptions& memory) {
  VMM_RETURN_IF_ERROR(memory.Validate(spec));
  auto d = std::unique_ptr<Device>(new Device());
  d->spec_ = spec;
  for (int u = 0; u < kNumUsages; ++u) {
    if (memory.usage_bytes[u] == 0) continue;
    vmm::ArenaOptions o;
    o.name = "dev" + std::to_string(spec.id) + "." + UsageName(static_cast<Usage>(u));
    o.capacity_bytes = memory.usage_bytes[u];
    o.page_size = memory.page_size;
    o.numa_node = spec.node;
    o.seal_future_writes = memory.seal_weights && static_cast<Usage>(u) != Usage::kKv;
    o.discard_on_free = memory.discard_on_free && !o.seal_future_writes;
    o.populate = memory.populate;
    o.populate_bytes = 0;  // PopulateAhead, in chunks
    VMM_ASSIGN_OR_RETURN(d->arenas_[u], vmm::Arena::Create(o));
  }
  d->populate_ = memory.populate;
  return d;
}

uint64_t Device::populate_ahead_bytes(Usage u) const {
  const auto& a = arena(u);
  if (!populate_ || !a) return 0;
  // What a serving device always holds in full comes first: its KV store, then the dense
  // weights; the experts, whose share of a device changes with every scale event, get the rest.
  uint64_t left = spec_.capacity_bytes;
  for (Usage v : {Usage::kKv, Usage::kWeights, Usage::kExperts}) {
    const auto& x = arena(v);
    const uint64_t bytes =
        x ? std::min<uint64_t>(x->capacity_bytes(), left) / x->page_size() * x->page_size() : 0;
    if (v == u) return bytes;
    left -= bytes;
  }
  return 0;
}

uint64_t Device::populate_ahead_bytes() const {
  uint64_t n = 0;
  for (int u = 0; u < kNumUsages; ++u) n += populate_ahead_bytes(static_cast<Usage>(u));
  return n;
}

Status Device::PopulateAhead(uint64_t chunk_bytes,
                             const std::function<Status(uint64_t)>& after_chunk) {
  if (chunk_bytes == 0) return Status::InvalidArgument("populate: chunk size 0");
  for (int u = 0; u < kNumUsages; ++u) {
    const uint64_t target = populate_ahead_bytes(static_cast<Usage>(u));
    if (target == 0) continue;
    vmm::Arena& a = *arenas_[u];
    const uint64_t chunk = std::max(chunk_bytes / a.page_size(), uint64_t{1}) * a.page_size();
    for (uint64_t off = 0; off < target; off += chunk) {
      const uint64_t n = std::min(chunk, target - off);
      Status s = a.Populate(off, n);
      if (!s.ok()) {
        return s.Annotate("device " + std::to_string(spec_.id) + " " +
                          UsageName(static_cast<Usage>(u)));
      }
      if (after_chunk) VMM_RETURN_IF_ERROR(after_chunk(n));
    }
  }
  return Status::Ok();
}

uint64_t Device::UsedBytes() const {
  uint64_t used = 0;
  for (const auto& a : arenas_) used += a ? a->Stats().used_bytes : 0;
  return used;
}

uint64_t Device::free_bytes() const {
  vmm::MutexLock l(&mu_);
  const uint64_t used = UsedBytes();
  return used < spec_.capacity_bytes ? spec_.capacity_bytes - used : 0;
}

Status Device::CheckRoom(Usage u, uint64_t bytes) const {
  const uint64_t page = arena(u)->page_size();
  const uint64_t rounded = (bytes + page - 1) / page * page;
  uint64_t used = 0;
  std::string held;
  for (int i = 0; i < kNumUsages; ++i) {
    if (!arenas_[i]) continue;
    const uint64_t b = arenas_[i]->Stats().used_bytes;
    used += b;
    held += std::string(held.empty() ? "" : ", ") + UsageName(static_cast<Usage>(i)) + " " + Mib(b);
  }
  if (used + rounded > spec_.capacity_bytes) {
    return Status::ResourceExhausted(
        "device " + std::to_string(spec_.id) + " is full: " + Mib(rounded) + " more " +
        UsageName(u) + " does not fit in its capacity of " + Mib(spec_.capacity_bytes) +
        ", which holds " + Mib(used) + " (" + held + ")");
  }
  return Status::Ok();
}

StatusOr<vmm::Extent> Device::Allocate(Usage u, uint64_t bytes, uint64_t align_bytes) {
  const auto& a = arena(u);
  if (!a) {
    return Status::FailedPrecondition("device " + std::to_string(spec_.id) + " has no " +
                                      UsageName(u) + " arena");
  }
  vmm::MutexLock l(&mu_);
  VMM_RETURN_IF_ERROR(CheckRoom(u, bytes));
  auto e = a->Allocate(bytes, align_bytes);
  if (!e.ok()) {
    Status s = e.status();
    return s.Annotate("device " + std::to_string(spec_.id) + " " + UsageName(u));
  }
  return e;
}

Status Device::Resize(Usage u, vmm::Extent& extent, uint64_t bytes) {
  const auto& a = arena(u);
  if (!a || extent.arena() != a.get()) {
    return Status::InvalidArgument("device " + std::to_string(spec_.id) + ": " +
                                   extent.DebugString() + " is not of its " + UsageName(u) +
                                   " arena");
  }
  vmm::MutexLock l(&mu_);
  if (bytes > extent.size_bytes()) {
    VMM_RETURN_IF_ERROR(CheckRoom(u, bytes - extent.size_bytes()));
  }
  Status s = a->Resize(extent, bytes);
  return s.ok() ? s : s.Annotate("device " + std::to_string(spec_.id) + " " + UsageName(u));
}

DeviceStats Device::Stats() const {
  DeviceStats s;
  s.device = spec_.id;
  s.capacity_bytes = spec_.capacity_bytes;
  for (int u = 0; u < kNumUsages; ++u) {
    if (!arenas_[u]) continue;
    s.usage[u] = arenas_[u]->Stats();
    s.used_bytes += s.usage[u].used_bytes;
    s.peak_used_bytes += s.usage[u].peak_used_bytes;
  }
  return s;
}

std::string DeviceStats::ToString() const {
  std::string out = "device " + std::to_string(device) + ": used " + Mib(used_bytes) + " of " +
                    Mib(capacity_bytes) + ", peak " + Mib(peak_used_bytes);
  for (const auto& a : usage) {
    if (!a.name.empty()) out += "\n    " + a.ToString();
  }
  return out;
}

}  // namespace emoe::hbm
