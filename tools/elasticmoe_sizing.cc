// The experiment's device sizing (elasticmoe_sizing.h).
#include "tools/elasticmoe_sizing.h"

#include <algorithm>
#include <bit>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <sstream>
#include <utility>

#include "engine/deployment.h"
#include "hbm/loader.h"
#include "vmm/host.h"

namespace emoe::tools {
namespace {

constexpr uint64_t kPage = 2ull << 20;  // the arenas' huge page: extents round up to it
constexpr uint64_t kMiB = 1ull << 20;

uint64_t RoundUp(uint64_t v, uint64_t to) { return (v + to - 1) / to * to; }

// A tensor's room in its group's extent, as the HMM lays it out: from the 4 KiB boundary below
// its data in the file to the one above its end.
uint64_t SpanBytes(const hbm::TensorInfo& t) {
  const uint64_t slack = t.file_offset % hbm::kDirectAlignment;
  return std::max(RoundUp(slack + t.size_bytes, hbm::kDirectAlignment), hbm::kDirectAlignment);
}

std::string Gib(uint64_t b) {
  char s[32];
  std::snprintf(s, sizeof(s), "%.1f GiB", b / double(1ull << 30));
  return s;
}

// "Node 0 Active(file):  123 kB" (or /proc/meminfo's "Active(file):  123 kB"): the kB of
// `key`, 0 when absent.
uint64_t MeminfoKb(const std::string& text, const std::string& key) {
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    const size_t at = line.find(key + ":");
    if (at == std::string::npos) continue;
    return std::strtoull(line.c_str() + at + key.size() + 1, nullptr, 10);
  }
  return 0;
}

}  // namespace

SizingModel SizingModelOf(const engine::ModelConfig& config, const hbm::Checkpoint& checkpoint) {
  std::map<std::string, std::pair<int, int>> expert_of;  // name -> (layer, expert)
  for (const engine::TensorSpec& s : engine::ExpectedTensors(config)) {
    if (s.expert >= 0) expert_of[s.name] = {s.layer, s.expert};
  }
  std::map<std::pair<int, int>, uint64_t> extent;
  for (const hbm::TensorInfo& t : checkpoint.tensors) {
    auto it = expert_of.find(t.name);
    if (it != expert_of.end()) extent[it->second] += SpanBytes(t);
  }
  SizingModel m;
  m.weights_bytes = engine::ModelArenaBytes(config, checkpoint, 1).weights_bytes;
  for (const auto& [key, bytes] : extent) {
    m.expert_extent_bytes = std::max(m.expert_extent_bytes, RoundUp(bytes, kPage));
  }
  // The arena's buddy allocator takes an extent from the smallest power-of-two block of pages
  // that holds it and gives the tail back as smaller blocks, which later extents of the same
  // size cannot use: 3 pages take 4.
  m.expert_footprint_bytes = std::bit_ceil(m.expert_extent_bytes / kPage) * kPage;
  m.num_experts = static_cast<int>(config.num_experts);
  m.num_layers = static_cast<int>(config.num_hidden_layers);
  m.kv_bytes_per_token = 2ull * config.num_hidden_layers * config.num_key_value_heads *
                         config.head_dim * sizeof(float);
  return m;
}

namespace {

// One (method, event, kind of device) of the rule's step 5: what that device holds at most.
struct Holding {
  uint64_t weights = 0;  // bytes
  uint64_t experts = 0;  // expert extents, without the spare ones
  uint64_t kv = 0;       // bytes
};

// What a device holds at most in event a -> b of method `m` (rule step 5): on a device that
// serves before and after the event (*retained) and on one new to it (*added; zero when the
// event adds none). `x(n)`: the expert extents of one device of an n-device configuration; `w`: the
// dense weights; `kv`: a full store; `keep`: what a store keeps when it gives back KV.
template <typename X>
void EventHolding(const engine::ScaleOptions& m, int a, int b, uint64_t w, const X& x, uint64_t kv,
                  uint64_t keep, Holding* retained, Holding* added) {
  const uint64_t xa = x(a), xb = x(b), xlo = x(std::min(a, b));
  *retained = {w, xlo, kv};
  *added = b > a ? Holding{w, xb, kv} : Holding{};
  if (m.method == engine::ScaleMethod::kElastic) {
    // The copying ablations' private buffers: every local expert of the new placement, and
    // without zero-copy the dense weights too. On a retained device the old instance's own
    // buffers (of the old placement) are still there until the switch.
    const bool copies_w = !m.zero_copy, copies_e = !(m.zero_copy && m.vm_remap);
    if (copies_w || copies_e) {
      *retained = {w + (copies_w ? 2 * w : 0), xlo + (copies_e ? xa + xb : 0), keep};
      if (b > a) *added = {w + (copies_w ? w : 0), xb + (copies_e ? xb : 0), kv};
    }
  } else if (m.method == engine::ScaleMethod::kColocated) {
    *retained = {2 * w, xa + xb, keep};  // its own copy from disk next to the serving one
  }
}

}  // namespace

Sizing SizeDevices(const SizingInput& in) {
  Sizing s;
  s.smallest_config = *std::min_element(in.schedule.begin(), in.schedule.end());
  s.devices = *std::max_element(in.schedule.begin(), in.schedule.end());
  s.devices_why = "the schedule's largest configuration";
  const auto event_name = [&](size_t e) {
    return std::to_string(in.schedule[e - 1]) + "->" + std::to_string(in.schedule[e]);
  };
  for (const engine::ScaleOptions& m : in.methods) {
    if (m.method != engine::ScaleMethod::kExtravagant) continue;
    for (size_t e = 1; e < in.schedule.size(); ++e) {
      const int both = in.schedule[e - 1] + in.schedule[e];
      if (both > s.devices) {
        s.devices = both;
        s.devices_why = "extravagant's " + event_name(e) + " holds its old and new devices at once";
      }
    }
  }
  const uint64_t layers = static_cast<uint64_t>(in.model.num_layers);
  const uint64_t extent = in.model.expert_extent_bytes;
  const uint64_t footprint = std::max(in.model.expert_footprint_bytes, extent);
  const auto x = [&](int n) {  // extents
    const uint64_t d = static_cast<uint64_t>(n);
    return (static_cast<uint64_t>(in.model.num_experts) + d - 1) / d * layers;
  };
  const uint64_t spare = layers;  // one spare extent per layer, for the allocator
  uint64_t experts_arena = 0;     // the most expert extents' footprint
  const uint64_t w = RoundUp(in.model.weights_bytes, kPage);
  const uint64_t blocks = (static_cast<uint64_t>(in.tokens_per_request) + in.block_tokens - 1) /
                          static_cast<uint64_t>(in.block_tokens);
  const uint64_t load_kv = static_cast<uint64_t>(in.concurrency) * blocks * in.block_tokens *
                           in.model.kv_bytes_per_token;
  const uint64_t keep = RoundUp(2 * load_kv, kPage);
  s.kv_bytes = std::max(in.default_kv_bytes, keep);
  const auto consider = [&](const Holding& h, const std::string& why) {
    const uint64_t experts = (h.experts + spare) * extent;
    s.weights_bytes = std::max(s.weights_bytes, h.weights);
    s.experts_bytes = std::max(s.experts_bytes, experts);
    experts_arena = std::max(experts_arena, (h.experts + spare) * footprint);
    if (h.weights + experts + h.kv > s.capacity_bytes) {
      s.capacity_bytes = h.weights + experts + h.kv;
      s.capacity_why = why;
    }
  };
  s.steady_weights_bytes = w;
  s.steady_experts_bytes = (x(s.smallest_config) + spare) * extent;
  consider({w, x(s.smallest_config), s.kv_bytes},
           "the " + std::to_string(s.smallest_config) + "-device configuration's share");
  for (size_t mi = 0; mi < in.methods.size(); ++mi) {
    const std::string name = mi < in.method_names.size() ? in.method_names[mi] : "a method";
    for (size_t e = 1; e < in.schedule.size(); ++e) {
      Holding retained, added;
      EventHolding(in.methods[mi], in.schedule[e - 1], in.schedule[e], w, x, s.kv_bytes, keep,
                   &retained, &added);
      consider(retained, name + "'s " + event_name(e) + " on a device it keeps");
      if (added.kv > 0) consider(added, name + "'s " + event_name(e) + " on a device it adds");
    }
  }
  // Room against fragmentation where extents of other sizes come and go (step 6).
  bool room = false;
  for (const engine::ScaleOptions& m : in.methods) {
    room = room || m.method == engine::ScaleMethod::kColocated ||
           (m.method == engine::ScaleMethod::kElastic && !(m.zero_copy && m.vm_remap));
  }
  s.weights_arena_bytes = (room ? 4 : 1) * s.weights_bytes;
  s.experts_arena_bytes = (room ? 4 : 1) * experts_arena;
  return s;
}

vmm::StatusOr<NodeMemory> NodeAvailableBytes(int node) {
  NodeMemory m;
  m.node = node;
  bool listed = false;
  for (const vmm::NumaNode& nn : vmm::NumaNodes()) {
    if (nn.id != node) continue;
    listed = true;
    if (nn.mem_free_bytes >= 0) m.free_bytes = static_cast<uint64_t>(nn.mem_free_bytes);
  }
  if (!listed) return vmm::Status::NotFound("no NUMA node " + std::to_string(node));
  // One node is the whole host (see vmm::NumaNodes): /proc/meminfo's page cache is its own.
  std::string info =
      vmm::NumaNodes().size() == 1
          ? ""
          : vmm::ReadSysFile("/sys/devices/system/node/node" + std::to_string(node) + "/meminfo");
  if (info.empty()) info = vmm::ReadSysFile("/proc/meminfo");  // no NUMA: the one node
  if (m.free_bytes == 0) m.free_bytes = MeminfoKb(info, "MemFree") << 10;
  m.reclaimable_bytes = (MeminfoKb(info, "Active(file)") + MeminfoKb(info, "Inactive(file)") +
                         MeminfoKb(info, "SReclaimable"))
                        << 10;
  return m;
}

vmm::Status CheckFits(int devices, uint64_t capacity_bytes, const std::string& why,
                      const NodeMemory& node, uint64_t headroom_bytes) {
  const uint64_t need = static_cast<uint64_t>(devices) * capacity_bytes;
  const uint64_t can = node.available_bytes();
  if (need + headroom_bytes <= can) return vmm::Status::Ok();
  return vmm::Status::ResourceExhausted(
      "the devices need " + std::to_string(devices) + " x " +
      std::to_string(capacity_bytes / kMiB) + " MiB" + (why.empty() ? "" : " (for " + why + ")") +
      " = " + Gib(need) + " populated, node " + std::to_string(node.node) + " can give " +
      Gib(can) + " (free " + Gib(node.free_bytes) + " + reclaimable page cache " +
      Gib(node.reclaimable_bytes) + ") less " + Gib(headroom_bytes) +
      " of headroom: run fewer --methods at once (extravagant needs old + new devices; colocated "
      "and the copying ablations a second copy on a device), a schedule whose smallest "
      "configuration has more devices, smaller --device_mb / --max_devices, or free memory");
}

}  // namespace emoe::tools
