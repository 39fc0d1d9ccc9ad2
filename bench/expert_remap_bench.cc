// expert_remap_bench: redistributing experts on a scale event by remapping (copy only the
// incoming experts, rebuild each device's contiguous view over retained + new extents) against
// the naive way (copy every local expert of the new placement into a new contiguous buffer).
//
//   expert_remap_bench [--experts=32] [--layers=4] [--expert_mb=6] [--page_size=auto]
//                      [--events=2:3,2:4,3:4,4:3,3:2] [--runs=3] [--json=path]
//
// Devices are simulated by one vmm arena each (all on the same NUMA node), sized by replaying
// the event's allocations on a buddy allocator so that both methods fit, and faulted in before
// the event like device memory. For each event the old
// placement is a round-robin deal over devices 0..a-1 and the new one is Rebalance() onto
// 0..b-1. Per method it reports the time, the bytes copied (vmm's counters), and the peak of the
// arenas' used bytes summed over devices, against old + incoming bytes (the remap target) and
// old + new bytes (what the naive copy needs). Every expert of the new placement is checked by
// checksum, so a wrong redistribution fails the run instead of reporting a time.
#include <gflags/gflags.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "experts/placement.h"
#include "experts/plan.h"
#include "experts/slots.h"
#include "vmm/arena.h"
#include "vmm/page_allocator.h"
#include "vmm/stats.h"

DEFINE_int32(experts, 32, "experts per layer");
DEFINE_int32(layers, 4, "MoE layers");
DEFINE_uint64(expert_mb, 6, "bytes per expert, MiB");
DEFINE_string(page_size, "auto", "arena pages: auto, hugetlb, thp, 4k");
DEFINE_string(events, "2:3,2:4,3:4,4:3,3:2",
              "scale events a:b (a devices -> b devices), comma-separated; a->b also works "
              "when quoted");
DEFINE_int32(runs, 3, "runs per method and event; the fastest is reported");
DEFINE_string(json, "", "also write the rows as JSON to this path");

namespace {

using Clock = std::chrono::steady_clock;
using emoe::experts::ExpertPlacement;
using emoe::experts::ExpertSlots;
using emoe::experts::RedistributionPlan;
using Arenas = std::map<int, std::shared_ptr<vmm::Arena>>;  // device id -> its arena

double Seconds(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

double MiB(uint64_t b) { return static_cast<double>(b) / (1 << 20); }

void Die(const std::string& what) {
  std::fprintf(stderr, "expert_remap_bench: %s\n", what.c_str());
  std::exit(1);
}

void Check(const vmm::Status& s, const std::string& what) {
  if (!s.ok()) Die(what + ": " + s.ToString());
}

// --- Expert contents and checksums -------------------------------------------------------------

uint64_t Mix64(uint64_t x) {  // splitmix64's finalizer
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

uint64_t Seed(int layer, int expert) {
  return Mix64((static_cast<uint64_t>(layer) << 32) | static_cast<uint32_t>(expert));
}

// Fills `bytes` at `p` with expert (layer, expert)'s weights: distinct per expert and offset.
void FillExpert(uint8_t* p, uint64_t bytes, int layer, int expert) {
  const uint64_t seed = Seed(layer, expert);
  const uint64_t words = bytes / 8;
  for (uint64_t i = 0; i < words; ++i) {
    const uint64_t w = seed + i * 0x9e3779b97f4a7c15ULL;
    std::memcpy(p + 8 * i, &w, 8);
  }
  for (uint64_t j = words * 8; j < bytes; ++j) p[j] = static_cast<uint8_t>(seed >> (j % 8));
}

uint64_t Checksum(const uint8_t* p, uint64_t bytes) {
  uint64_t h = bytes;
  const uint64_t words = bytes / 8;
  for (uint64_t i = 0; i < words; ++i) {
    uint64_t w;
    std::memcpy(&w, p + 8 * i, 8);
    h += Mix64(w + i);
  }
  for (uint64_t j = words * 8; j < bytes; ++j) h = Mix64(h + p[j]);
  return h;
}

// --- Arenas ------------------------------------------------------------------------------------

uint64_t PagesFor(uint64_t bytes, uint64_t page) { return (bytes + page - 1) / page; }

// The fewest pages (in steps of `step`) on which every sequence of allocations in `phases`
// succeeds, each phase starting from an empty arena.
uint64_t FitPages(const std::vector<std::vector<uint64_t>>& phases, uint64_t step) {
  uint64_t need = 1;
  for (const auto& ph : phases) {
    uint64_t sum = 0;
    for (uint64_t n : ph) sum += n;
    need = std::max(need, sum);
  }
  for (uint64_t cap = need;; cap += step) {
    bool fits = true;
    for (const auto& ph : phases) {
      vmm::BuddyAllocator buddy(cap);
      for (uint64_t n : ph) {
        if (!buddy.Allocate(n).ok()) {
          fits = false;
          break;
        }
      }
      if (!fits) break;
    }
    if (fits) return cap;
  }
}

// Per device: the allocations each method makes, in order, in pages of `page` bytes.
std::map<int, std::vector<std::vector<uint64_t>>> Allocations(const RedistributionPlan& plan,
                                                              uint64_t expert_bytes,
                                                              uint64_t page) {
  const uint64_t xp = PagesFor(expert_bytes, page);
  std::map<int, std::vector<std::vector<uint64_t>>> out;
  std::vector<int> devices;
  std::set_union(plan.from.devices.begin(), plan.from.devices.end(), plan.to.devices.begin(),
                 plan.to.devices.end(), std::back_inserter(devices));
  for (int d : devices) {
    std::vector<uint64_t> remap, naive;
    for (int l = 0; l < plan.from.num_layers(); ++l) {
      const size_t n = plan.from.LocalExperts(l, d).size();
      for (size_t i = 0; i < n; ++i) remap.push_back(xp);
      if (n > 0) naive.push_back(n * xp);
    }
    for (const auto& m : plan.moves) {
      if (m.to == d) remap.push_back(xp);
    }
    for (int l = 0; l < plan.to.num_layers(); ++l) {
      const size_t n = plan.to.LocalExperts(l, d).size();
      if (n > 0) naive.push_back(n * xp);
    }
    out[d] = {remap, naive};
  }
  return out;
}

// One arena per device of any event, of page kind `kind` (not kAuto), each sized so that every
// phase of every event fits (the arenas are shared by the events, and empty between phases).
vmm::StatusOr<Arenas> MakeArenas(const std::vector<RedistributionPlan>& plans,
                                 uint64_t expert_bytes, vmm::PageSizePolicy kind) {
  const uint64_t page =
      kind == vmm::PageSizePolicy::kSmall ? vmm::kSmallPageSize : vmm::kHugePageSize;
  std::map<int, std::vector<std::vector<uint64_t>>> phases;  // device -> all its phases
  for (const RedistributionPlan& plan : plans) {
    for (auto& [d, ph] : Allocations(plan, expert_bytes, page)) {
      phases[d].insert(phases[d].end(), ph.begin(), ph.end());
    }
  }
  Arenas arenas;
  for (const auto& [d, ph] : phases) {
    vmm::ArenaOptions o;
    o.name = "expert_remap.dev" + std::to_string(d);
    o.capacity_bytes = FitPages(ph, PagesFor(expert_bytes, page)) * page;
    o.page_size = kind;
    auto a = vmm::Arena::Create(o);
    if (!a.ok()) return a.status();
    arenas[d] = *a;
  }
  return arenas;
}

// The device arenas of `policy`; for auto those of the largest page kind that can hold them all.
// `note` says why larger kinds were refused. Device memory is resident before any event, so every
// page is faulted in here: neither method's time includes the kernel zeroing fresh pages.
Arenas CreateArenas(const std::vector<RedistributionPlan>& plans, uint64_t expert_bytes,
                    vmm::PageSizePolicy policy, std::string* note) {
  std::vector<vmm::PageSizePolicy> kinds = {policy};
  if (policy == vmm::PageSizePolicy::kAuto) {
    kinds = {vmm::PageSizePolicy::kHugetlb, vmm::PageSizePolicy::kShmemThp,
             vmm::PageSizePolicy::kSmall};
  }
  for (size_t k = 0; k < kinds.size(); ++k) {
    auto arenas = MakeArenas(plans, expert_bytes, kinds[k]);
    if (arenas.ok()) {
      for (const auto& [d, a] : *arenas) std::memset(a->direct_map(), 0, a->capacity_bytes());
      return std::move(*arenas);
    }
    const vmm::Status& failed = arenas.status();
    if (k + 1 == kinds.size() || (failed.code() != vmm::StatusCode::kUnavailable &&
                                  failed.code() != vmm::StatusCode::kResourceExhausted)) {
      Die("create the device arenas: " + failed.ToString());
    }
    *note += (note->empty() ? "" : "; ") + failed.message();
  }
  Die("no page kind left");
  return {};
}

uint64_t UsedBytes(const Arenas& arenas) {
  uint64_t used = 0;
  for (const auto& [d, a] : arenas) used += a->Stats().used_bytes;
  return used;
}

// --- The two methods ---------------------------------------------------------------------------

struct Result {
  double seconds = 0;
  uint64_t copied_bytes = 0;
  uint64_t old_bytes = 0;   // arena bytes in use before the event
  uint64_t peak_bytes = 0;  // highest sum of used bytes during the event
  uint64_t end_bytes = 0;   // in use after the old copies are gone
};

using Expected = std::vector<std::vector<uint64_t>>;  // [layer][expert] -> checksum

// Remap: extents per expert; the event copies only the incoming ones and rebuilds the views.
Result RunRemap(const RedistributionPlan& plan, const Arenas& arenas, uint64_t expert_bytes,
                const Expected& expected) {
  const ExpertPlacement& from = plan.from;
  const ExpertPlacement& to = plan.to;
  const int layers = from.num_layers(), experts = from.num_experts();
  // The HMM's record: [layer][expert] -> the extent holding it.
  std::vector<std::vector<vmm::Extent>> record(layers, std::vector<vmm::Extent>(experts));
  for (int l = 0; l < layers; ++l) {
    for (int e = 0; e < experts; ++e) {
      auto x = arenas.at(from.owner[l][e])->Allocate(expert_bytes);
      Check(x.status(), "allocate expert " + std::to_string(e) + " of layer " + std::to_string(l));
      FillExpert(static_cast<uint8_t*>(x->data()), expert_bytes, l, e);
      record[l][e] = std::move(*x);
    }
  }
  std::vector<vmm::Extent> all;
  for (const auto& row : record) all.insert(all.end(), row.begin(), row.end());
  const uint64_t slot_bytes = emoe::experts::SlotBytesFor(all);
  all.clear();
  auto build_views = [&](const ExpertPlacement& p, const std::vector<std::vector<vmm::Extent>>& rec,
                         const char* tag) {
    std::vector<std::unique_ptr<ExpertSlots>> views;
    for (int d : p.devices) {
      for (int l = 0; l < layers; ++l) {
        std::vector<vmm::Extent> extents;
        for (int e : p.LocalExperts(l, d)) extents.push_back(rec[l][e]);
        auto s = ExpertSlots::Create(
            std::string(tag) + ".dev" + std::to_string(d) + ".layer" + std::to_string(l),
            slot_bytes, extents);
        Check(s.status(), "build a view");
        views.push_back(std::move(*s));
      }
    }
    return views;
  };
  auto old_views = build_views(from, record, "old");

  Result r;
  r.old_bytes = UsedBytes(arenas);
  r.peak_bytes = r.old_bytes;
  const uint64_t copied0 = vmm::GlobalCounters().bytes_copied.load();
  const auto t0 = Clock::now();
  // 1. Copy the incoming experts into new extents on their destination (P2P).
  std::vector<std::vector<vmm::Extent>> next = record;
  for (const auto& m : plan.moves) {
    auto x = arenas.at(m.to)->Allocate(expert_bytes);
    Check(x.status(), "allocate incoming expert " + std::to_string(m.expert) + " of layer " +
                          std::to_string(m.layer) + " on device " + std::to_string(m.to));
    vmm::CopyBytes(x->data(), record[m.layer][m.expert].data(), expert_bytes);
    next[m.layer][m.expert] = std::move(*x);
    r.peak_bytes = std::max(r.peak_bytes, UsedBytes(arenas));
  }
  // 2. The new instance's views over retained + new extents.
  auto new_views = build_views(to, next, "new");
  // 3. Switchover: the old instance's views and the outgoing extents go.
  old_views.clear();
  record = std::move(next);
  r.seconds = Seconds(t0);
  r.copied_bytes = vmm::GlobalCounters().bytes_copied.load() - copied0;
  r.end_bytes = UsedBytes(arenas);

  size_t v = 0;
  for (int d : to.devices) {
    for (int l = 0; l < layers; ++l, ++v) {
      const std::vector<int> local = to.LocalExperts(l, d);
      for (size_t i = 0; i < local.size(); ++i) {
        if (Checksum(new_views[v]->slot(static_cast<int>(i)), expert_bytes) !=
            expected[l][local[i]]) {
          Die("remap: device " + std::to_string(d) + " layer " + std::to_string(l) + " slot " +
              std::to_string(i) + " does not hold expert " + std::to_string(local[i]));
        }
      }
    }
  }
  return r;
}

// Naive: one contiguous buffer per (device, layer); the event copies every expert of the new
// placement into new buffers, retained ones too.
Result RunNaive(const RedistributionPlan& plan, const Arenas& arenas, uint64_t expert_bytes,
                const Expected& expected) {
  const ExpertPlacement& from = plan.from;
  const ExpertPlacement& to = plan.to;
  const int layers = from.num_layers(), experts = from.num_experts();
  uint64_t page = 0;
  for (const auto& [d, a] : arenas) page = std::max(page, a->page_size());
  const uint64_t slot_bytes = PagesFor(expert_bytes, page) * page;
  // Old buffers, and where each expert lives in them.
  std::map<std::pair<int, int>, vmm::Extent> old_buffers;  // (device, layer) -> buffer
  std::vector<std::vector<const uint8_t*>> where(layers, std::vector<const uint8_t*>(experts));
  for (int d : from.devices) {
    for (int l = 0; l < layers; ++l) {
      const std::vector<int> local = from.LocalExperts(l, d);
      if (local.empty()) continue;
      auto b = arenas.at(d)->Allocate(local.size() * slot_bytes);
      Check(b.status(), "allocate an old buffer");
      auto* base = static_cast<uint8_t*>(b->data());
      for (size_t i = 0; i < local.size(); ++i) {
        FillExpert(base + i * slot_bytes, expert_bytes, l, local[i]);
        where[l][local[i]] = base + i * slot_bytes;
      }
      old_buffers[{d, l}] = std::move(*b);
    }
  }

  Result r;
  r.old_bytes = UsedBytes(arenas);
  r.peak_bytes = r.old_bytes;
  const uint64_t copied0 = vmm::GlobalCounters().bytes_copied.load();
  const auto t0 = Clock::now();
  std::vector<emoe::experts::NaiveBuffer> fresh;
  for (int d : to.devices) {
    for (int l = 0; l < layers; ++l) {
      std::vector<const void*> sources;
      for (int e : to.LocalExperts(l, d)) sources.push_back(where[l][e]);
      auto b = emoe::experts::NaiveContiguousCopy(*arenas.at(d), slot_bytes, sources, expert_bytes);
      Check(b.status(), "naive copy");
      fresh.push_back(std::move(*b));
      r.peak_bytes = std::max(r.peak_bytes, UsedBytes(arenas));
    }
  }
  old_buffers.clear();
  r.seconds = Seconds(t0);
  r.copied_bytes = vmm::GlobalCounters().bytes_copied.load() - copied0;
  r.end_bytes = UsedBytes(arenas);

  size_t v = 0;
  for (int d : to.devices) {
    for (int l = 0; l < layers; ++l, ++v) {
      const std::vector<int> local = to.LocalExperts(l, d);
      const auto* base = static_cast<const uint8_t*>(fresh[v].buffer.data());
      for (size_t i = 0; i < local.size(); ++i) {
        if (Checksum(base + i * slot_bytes, expert_bytes) != expected[l][local[i]]) {
          Die("naive: device " + std::to_string(d) + " layer " + std::to_string(l) + " slot " +
              std::to_string(i) + " does not hold expert " + std::to_string(local[i]));
        }
      }
    }
  }
  return r;
}

std::vector<int> Range(int n) {
  std::vector<int> v(n);
  for (int i = 0; i < n; ++i) v[i] = i;
  return v;
}

// "a:b,c->d" -> {(a, b), (c, d)}; dies naming a malformed entry.
std::vector<std::pair<int, int>> ParseEvents(const std::string& list) {
  std::vector<std::pair<int, int>> events;
  for (size_t pos = 0; pos < list.size();) {
    size_t end = list.find(',', pos);
    if (end == std::string::npos) end = list.size();
    const std::string ev = list.substr(pos, end - pos);
    int a = 0, b = 0;
    char rest = 0;
    const bool parsed = std::sscanf(ev.c_str(), "%d:%d%c", &a, &b, &rest) == 2 ||
                        std::sscanf(ev.c_str(), "%d->%d%c", &a, &b, &rest) == 2;
    if (!parsed || a <= 0 || b <= 0) {
      Die("--events: '" + ev + "' is not a:b with positive device counts");
    }
    events.emplace_back(a, b);
    pos = end + 1;
  }
  return events;
}

// Checksums of every expert, from the same generator the setup uses.
Expected ExpectedChecksums(int layers, int experts, uint64_t expert_bytes) {
  Expected expected(layers, std::vector<uint64_t>(experts));
  std::vector<uint8_t> scratch(expert_bytes);
  for (int l = 0; l < layers; ++l) {
    for (int e = 0; e < experts; ++e) {
      FillExpert(scratch.data(), expert_bytes, l, e);
      expected[l][e] = Checksum(scratch.data(), expert_bytes);
    }
  }
  return expected;
}

// The redistribution of each event a->b: initial placement on a devices, rebalanced onto b.
std::vector<RedistributionPlan> PlansFor(const std::vector<std::pair<int, int>>& events, int layers,
                                         int experts) {
  std::vector<RedistributionPlan> plans;
  for (auto [a, b] : events) {
    auto from = emoe::experts::InitialPlacement(layers, experts, Range(a));
    Check(from.status(), "initial placement");
    auto to = emoe::experts::Rebalance(*from, Range(b));
    Check(to.status(), "rebalance");
    auto plan = emoe::experts::PlanRedistribution(*from, *to);
    Check(plan.status(), "plan");
    Check(plan->Validate(), "validate the plan");
    plans.push_back(std::move(*plan));
  }
  return plans;
}

}  // namespace

int main(int argc, char** argv) {
  gflags::SetUsageMessage("expert redistribution: VM remap vs naive contiguous copy");
  gflags::ParseCommandLineFlags(&argc, &argv, true);
  auto policy = vmm::ParsePageSizePolicy(FLAGS_page_size);
  Check(policy.status(), "--page_size");
  if (FLAGS_experts <= 0 || FLAGS_layers <= 0 || FLAGS_expert_mb == 0 || FLAGS_runs <= 0) {
    Die("--experts, --layers, --expert_mb and --runs must be positive");
  }
  const std::vector<std::pair<int, int>> events = ParseEvents(FLAGS_events);
  const uint64_t expert_bytes = FLAGS_expert_mb << 20;
  const int layers = FLAGS_layers, experts = FLAGS_experts;

  const Expected expected = ExpectedChecksums(layers, experts, expert_bytes);
  const std::vector<RedistributionPlan> plans = PlansFor(events, layers, experts);
  std::string note;
  const Arenas arenas = CreateArenas(plans, expert_bytes, *policy, &note);
  const vmm::Arena& first = *arenas.begin()->second;
  const uint64_t xbytes = PagesFor(expert_bytes, first.page_size()) * first.page_size();
  uint64_t capacity = 0;
  std::string sizes;
  for (const auto& [d, arena] : arenas) {
    capacity += arena->capacity_bytes();
    sizes += " dev" + std::to_string(d) + "=" + std::to_string(arena->capacity_bytes() >> 20);
  }

  std::printf("%d layers x %d experts of %llu MiB (%.0f MiB in all), --page_size=%s, best of %d\n",
              layers, experts, static_cast<unsigned long long>(FLAGS_expert_mb),
              MiB(expert_bytes) * layers * experts, FLAGS_page_size.c_str(), FLAGS_runs);
  if (!note.empty()) std::printf("larger pages refused: %s\n", note.c_str());
  std::printf("%s arenas, one per device, faulted in (MiB):%s\n", vmm::PageKindName(first.kind()),
              sizes.c_str());
  std::printf("%-6s %-9s %8s %8s %7s %8s %8s %7s %7s %8s %8s %8s %8s %s\n", "event", "moved",
              "VM ms", "naive ms", "ratio", "VM cp", "naive cp", "old", "+in", "VM peak", "old+in",
              "nv peak", "old+new", "VM<=old+in");

  nlohmann::json rows = nlohmann::json::array();
  bool all_within = true;
  for (size_t ev = 0; ev < events.size(); ++ev) {
    const auto [a, b] = events[ev];
    const RedistributionPlan* plan = &plans[ev];
    Result vm, naive;
    for (int run = 0; run < FLAGS_runs; ++run) {
      const Result rv = RunRemap(*plan, arenas, expert_bytes, expected);
      if (UsedBytes(arenas) != 0) Die("remap left arena bytes in use");
      const Result rn = RunNaive(*plan, arenas, expert_bytes, expected);
      if (UsedBytes(arenas) != 0) Die("naive copy left arena bytes in use");
      if (run == 0 || rv.seconds < vm.seconds) vm = rv;
      if (run == 0 || rn.seconds < naive.seconds) naive = rn;
    }
    const uint64_t incoming = static_cast<uint64_t>(plan->moved_count()) * xbytes;
    const uint64_t new_bytes = static_cast<uint64_t>(layers) * experts * xbytes;
    const bool within = vm.peak_bytes <= vm.old_bytes + incoming;
    all_within = all_within && within;
    const std::string event = std::to_string(a) + "->" + std::to_string(b);
    const std::string moved =
        std::to_string(plan->moved_count()) + "/" + std::to_string(layers * experts);
    const double ratio = naive.seconds / vm.seconds;
    std::printf("%-6s %-9s %8.1f %8.1f %6.2fx %8.0f %8.0f %7.0f %7.0f %8.0f %8.0f %8.0f %8.0f %s\n",
                event.c_str(), moved.c_str(), vm.seconds * 1e3, naive.seconds * 1e3, ratio,
                MiB(vm.copied_bytes), MiB(naive.copied_bytes), MiB(vm.old_bytes), MiB(incoming),
                MiB(vm.peak_bytes), MiB(vm.old_bytes + incoming), MiB(naive.peak_bytes),
                MiB(naive.old_bytes + new_bytes), within ? "yes" : "NO");
    rows.push_back({{"event", event},
                    {"from_devices", a},
                    {"to_devices", b},
                    {"moved_experts", plan->moved_count()},
                    {"retained_experts", plan->retained_count()},
                    {"vm_seconds", vm.seconds},
                    {"naive_seconds", naive.seconds},
                    {"naive_over_vm", ratio},
                    {"vm_copied_bytes", vm.copied_bytes},
                    {"naive_copied_bytes", naive.copied_bytes},
                    {"old_bytes", vm.old_bytes},
                    {"incoming_bytes", incoming},
                    {"new_bytes", new_bytes},
                    {"vm_peak_bytes", vm.peak_bytes},
                    {"vm_target_bytes", vm.old_bytes + incoming},
                    {"vm_within_target", within},
                    {"naive_peak_bytes", naive.peak_bytes},
                    {"naive_reference_bytes", naive.old_bytes + new_bytes},
                    {"vm_end_bytes", vm.end_bytes},
                    {"naive_end_bytes", naive.end_bytes},
                    {"verified", true}});
  }
  std::printf(
      "MiB columns: cp = bytes copied, old = in use before, +in = incoming experts, peak = most in "
      "use during the event (all devices); the arenas are sized for the naive copy's contiguous "
      "buffers. Every expert of every new placement was verified by checksum.\n");
  if (!FLAGS_json.empty()) {
    nlohmann::json doc = {{"experts", experts},
                          {"layers", layers},
                          {"expert_bytes", expert_bytes},
                          {"page_size", FLAGS_page_size},
                          {"runs", FLAGS_runs},
                          {"page_kind", vmm::PageKindName(first.kind())},
                          {"arena_capacity_bytes", capacity},
                          {"rows", rows}};
    std::ofstream out(FLAGS_json);
    out << doc.dump(2) << "\n";
    if (!out) Die("write " + FLAGS_json);
    std::printf("wrote %s\n", FLAGS_json.c_str());
  }
  if (!all_within) {
    std::fprintf(stderr, "expert_remap_bench: the remap peak exceeded old + incoming bytes\n");
    return 2;
  }
  return 0;
}
