// Hmm::ApplyCopies, a scale event's memory phase as one unit (DESIGN 4.3), and Hmm::CopyGroup,
// a batch of one.
//
// Phases, each on what the previous one decided (validate everything, then apply; the revert is
// dropping the new extents, which nothing else holds before phase 4):
//  1. Check, under the registry lock (one snapshot): the options, both devices of every copy, the
//     destination's arena for the usage, every source registered, no destination registered or
//     named twice in the batch. The sources are kept as records: their extents keep the source
//     pages alive while they are copied, even if someone releases them meanwhile.
//  2. Lay every copy out as ONE extent (GroupLayout), check what the whole batch needs against
//     the arenas' and the devices' free bytes, then allocate every extent.
//  3. Copy every tensor at once on the destinations' workers, in chunks (CopyEngine::CopyBatch;
//     at most CopyBatchOptions::max_parallel chunks in flight).
//  4. Register every record under one lock, after checking again that no destination appeared
//     meanwhile (a concurrent batch or load).
// An error in any phase returns before phase 4 registers anything: the extents go back to their
// arenas as the records holding them are dropped. Errors name the copy: "apply copies: copy 3 of
// 64 ('layers.0.experts.5.w1' and 2 more, device 0 -> 2): ...".
#include <chrono>
#include <cstdio>
#include <map>
#include <set>

#include "clock_text.h"
#include "hbm/hmm.h"

namespace emoe::hbm {

namespace {

using internal::Clock;
using internal::Mib;
using internal::Since;

// "copy 3 of 64 ('a' and 2 more, device 0 -> 2)": how errors name a copy of the batch.
std::string CopyLabel(size_t i, size_t n, const GroupCopy& c) {
  std::string first = c.names.empty() ? std::string("no tensors") : "'" + c.names[0] + "'";
  if (c.names.size() > 1) first += " and " + std::to_string(c.names.size() - 1) + " more";
  return "copy " + std::to_string(i) + " of " + std::to_string(n) + " (" + first + ", device " +
         std::to_string(c.from) + " -> " + std::to_string(c.to) + ")";
}

Status CopyError(const Status& s, size_t i, size_t n, const GroupCopy& c) {
  return Status(s.code(), s.err(), "apply copies: " + CopyLabel(i, n, c) + ": " + s.message());
}

// Where a group's tensors go in its one new extent: each at a 4 KiB boundary plus its source's
// slack (offset_in_extent mod 4 KiB, so that the copy keeps the source's alignment), spans of
// whole 4 KiB (at least one per tensor, even an empty one), as a load lays out a group.
struct GroupLayout {
  std::vector<uint64_t> offsets;  // of each tensor's data in the extent
  uint64_t extent_bytes = 0;      // before the arena rounds it to its pages
  uint64_t tensor_bytes = 0;
};

GroupLayout LayOutGroup(const std::vector<TensorRecord>& src) {
  GroupLayout l;
  for (const TensorRecord& r : src) {
    const uint64_t slack = r.offset_in_extent % kDirectAlignment;
    l.offsets.push_back(l.extent_bytes + slack);
    l.extent_bytes += (slack + std::max<uint64_t>(r.size_bytes, 1) + kDirectAlignment - 1) /
                      kDirectAlignment * kDirectAlignment;
    l.tensor_bytes += r.size_bytes;
  }
  return l;
}

// One copy of the batch as the phases fill it in.
struct PlannedCopy {
  std::vector<TensorRecord> src;  // phase 1: the sources, in the copy's order
  GroupLayout layout;             // phase 2
  vmm::Extent extent;             // phase 2: on the destination; empty for a copy of no tensors
};

Status CheckOptions(const CopyBatchOptions& o) {
  if (o.chunk_bytes == 0 || o.chunk_bytes % 4096 != 0) {
    return Status::InvalidArgument("apply copies: chunk_bytes is " + std::to_string(o.chunk_bytes) +
                                   "; it must be a positive multiple of 4096");
  }
  if (o.max_parallel < 0) {
    return Status::InvalidArgument("apply copies: max_parallel is " +
                                   std::to_string(o.max_parallel) +
                                   "; it must be 0 (every worker) or a positive number of chunks");
  }
  return Status::Ok();
}

using FindFn = std::function<const TensorRecord*(const std::string&, int)>;

// Phase 1 for copy `c`: its devices and arena, its sources (by `find`, under the registry lock),
// its destinations (not registered, not in `dests` yet: added).
Status CheckCopy(const GroupCopy& c, const std::vector<std::unique_ptr<Device>>& devices,
                 const FindFn& find, std::set<std::pair<std::string, int>>* dests,
                 PlannedCopy* out) {
  const int n = static_cast<int>(devices.size());
  for (int dev : {c.from, c.to}) {
    if (dev < 0 || dev >= n) {
      return Status::InvalidArgument("unknown device " + std::to_string(dev) + " (the HMM has " +
                                     std::to_string(n) + ")");
    }
  }
  if (!devices[c.to]->arena(c.usage)) {
    return Status::FailedPrecondition("device " + std::to_string(c.to) + " has no " +
                                      UsageName(c.usage) + " arena");
  }
  for (const std::string& name : c.names) {
    const TensorRecord* r = find(name, c.from);
    if (r == nullptr) {
      return Status::NotFound("tensor '" + name + "' is not on device " + std::to_string(c.from));
    }
    const std::string dst = c.dst_prefix + name;
    if (find(dst, c.to) != nullptr) {
      return Status::AlreadyExists("tensor '" + dst + "' is already on device " +
                                   std::to_string(c.to));
    }
    if (!dests->insert({dst, c.to}).second) {
      return Status::InvalidArgument("the batch names destination '" + dst + "' on device " +
                                     std::to_string(c.to) + " twice");
    }
    out->src.push_back(*r);
  }
  return Status::Ok();
}

// Phase 2a: the batch's extents, each rounded to its arena's pages, against what the arenas and
// the devices have free, copy by copy: the first copy that does not fit is named. (Allocation
// still checks: fragmentation can refuse a batch that passes here.)
Status CheckBatchFits(const std::vector<GroupCopy>& copies, const std::vector<PlannedCopy>& plan,
                      const std::vector<std::unique_ptr<Device>>& devices) {
  std::map<std::pair<int, Usage>, uint64_t> need;
  std::map<int, uint64_t> need_device;
  for (size_t i = 0; i < copies.size(); ++i) {
    const GroupCopy& c = copies[i];
    if (plan[i].src.empty()) continue;
    const vmm::ArenaStats a = devices[c.to]->arena(c.usage)->Stats();
    const uint64_t page = std::max<uint64_t>(a.page_size, 1);
    const uint64_t rounded = (plan[i].layout.extent_bytes + page - 1) / page * page;
    const uint64_t arena_need = need[{c.to, c.usage}] += rounded;
    const uint64_t device_need = need_device[c.to] += rounded;
    if (arena_need > a.free_bytes) {
      return CopyError(
          Status::ResourceExhausted("the batch needs " + Mib(arena_need) + " of " +
                                    UsageName(c.usage) + " on device " + std::to_string(c.to) +
                                    " up to this copy, its arena has " + Mib(a.free_bytes) +
                                    " free of " + Mib(a.capacity_bytes)),
          i, copies.size(), c);
    }
    if (device_need > devices[c.to]->free_bytes()) {
      return CopyError(
          Status::ResourceExhausted("the batch needs " + Mib(device_need) + " on device " +
                                    std::to_string(c.to) + " up to this copy, which has " +
                                    Mib(devices[c.to]->free_bytes()) + " free"),
          i, copies.size(), c);
    }
  }
  return Status::Ok();
}

// Phase 2b: every extent. On failure the ones allocated go back with `plan`.
Status AllocateCopies(const std::vector<GroupCopy>& copies, std::vector<PlannedCopy>& plan,
                      const std::vector<std::unique_ptr<Device>>& devices) {
  for (size_t i = 0; i < copies.size(); ++i) {
    if (plan[i].src.empty()) continue;
    auto e = devices[copies[i].to]->Allocate(copies[i].usage, plan[i].layout.extent_bytes);
    if (!e.ok()) return CopyError(e.status(), i, copies.size(), copies[i]);
    if (e->data() == nullptr) {
      return CopyError(Status::FailedPrecondition("device arenas need a direct map to copy into"),
                       i, copies.size(), copies[i]);
    }
    plan[i].extent = std::move(*e);
  }
  return Status::Ok();
}

// Phase 3's input: one span per tensor, `owner[k]` the copy of span k.
std::vector<CopySpan> SpansOf(const std::vector<GroupCopy>& copies,
                              const std::vector<PlannedCopy>& plan, std::vector<size_t>* owner) {
  std::vector<CopySpan> spans;
  for (size_t i = 0; i < copies.size(); ++i) {
    for (size_t k = 0; k < plan[i].src.size(); ++k) {
      const TensorRecord& s = plan[i].src[k];
      uint8_t* dst = static_cast<uint8_t*>(plan[i].extent.data()) + plan[i].layout.offsets[k];
      spans.push_back({copies[i].to, dst, s.data(), s.size_bytes});
      owner->push_back(i);
    }
  }
  return spans;
}

// Per copy: its bytes, and its first chunk's start and last chunk's end (empty tensors have no
// chunks: they do not count).
void FillStats(const std::vector<PlannedCopy>& plan, const std::vector<CopySpan>& spans,
               const std::vector<size_t>& owner, const CopyBatchTimes& times,
               CopyBatchReport* report) {
  report->copies.assign(plan.size(), GroupCopyStats{});
  for (size_t i = 0; i < plan.size(); ++i) {
    report->copies[i].bytes = plan[i].layout.tensor_bytes;
    report->bytes += plan[i].layout.tensor_bytes;
  }
  std::vector<bool> seen(plan.size(), false);
  for (size_t k = 0; k < spans.size(); ++k) {
    if (spans[k].bytes == 0) continue;
    GroupCopyStats& s = report->copies[owner[k]];
    const SpanTimes& t = times.spans[k];
    s.start_s = seen[owner[k]] ? std::min(s.start_s, t.start_s) : t.start_s;
    s.end_s = std::max(s.end_s, t.end_s);
    seen[owner[k]] = true;
  }
  report->copy_s = times.wall_s;
}

}  // namespace

StatusOr<CopyBatchReport> Hmm::ApplyCopies(const std::vector<GroupCopy>& copies,
                                           const CopyBatchOptions& options) {
  const auto t0 = Clock::now();
  VMM_RETURN_IF_ERROR(CheckOptions(options));
  if (copies.size() > kMaxBatchCopies) {
    return Status::InvalidArgument("apply copies: a batch of " + std::to_string(copies.size()) +
                                   " copies exceeds kMaxBatchCopies (" +
                                   std::to_string(kMaxBatchCopies) + "); split it");
  }
  std::vector<PlannedCopy> plan(copies.size());
  {
    vmm::MutexLock l(&mu_);
    // Runs under the lock taken here (CheckCopy calls it before returning).
    auto find = [this](const std::string& name, int dev) -> const TensorRecord* {
      mu_.AssertHeld();
      auto it = registry_.find({name, dev});
      return it == registry_.end() ? nullptr : &it->second;
    };
    std::set<std::pair<std::string, int>> dests;
    for (size_t i = 0; i < copies.size(); ++i) {
      Status s = CheckCopy(copies[i], devices_, find, &dests, &plan[i]);
      if (!s.ok()) return CopyError(s, i, copies.size(), copies[i]);
    }
  }
  for (PlannedCopy& p : plan) p.layout = LayOutGroup(p.src);
  VMM_RETURN_IF_ERROR(CheckBatchFits(copies, plan, devices_));
  VMM_RETURN_IF_ERROR(AllocateCopies(copies, plan, devices_));
  CopyBatchReport report;
  report.prepare_s = Since(t0);

  std::vector<size_t> owner;
  const std::vector<CopySpan> spans = SpansOf(copies, plan, &owner);
  auto times = copies_->CopyBatch(spans, options.chunk_bytes, options.max_parallel);
  if (!times.ok()) {
    Status s = times.status();
    return s.Annotate("apply copies");
  }
  FillStats(plan, spans, owner, *times, &report);

  const auto t_register = Clock::now();
  std::vector<TensorRecord> records;
  for (size_t i = 0; i < copies.size(); ++i) {
    for (size_t k = 0; k < plan[i].src.size(); ++k) {
      TensorRecord r = plan[i].src[k];
      r.name = copies[i].dst_prefix + r.name;
      r.device = copies[i].to;
      r.usage = copies[i].usage;
      r.extent = plan[i].extent;
      r.offset_in_extent = plan[i].layout.offsets[k];
      records.push_back(std::move(r));
    }
  }
  plan.clear();  // the records hold the extents now; the sources are not needed any more
  vmm::MutexLock l(&mu_);
  for (size_t i = 0, k = 0; i < copies.size(); ++i) {
    for (size_t j = 0; j < copies[i].names.size(); ++j, ++k) {
      if (registry_.count({records[k].name, records[k].device})) {
        return CopyError(
            Status::AlreadyExists("tensor '" + records[k].name + "' appeared on device " +
                                  std::to_string(records[k].device) + " meanwhile"),
            i, copies.size(), copies[i]);
      }
    }
  }
  for (TensorRecord& r : records) {
    const Key key{r.name, r.device};
    registry_.emplace(key, std::move(r));
  }
  report.register_s = Since(t_register);
  return report;
}

StatusOr<uint64_t> Hmm::CopyGroup(const std::vector<std::string>& names, int from_device,
                                  int to_device, Usage usage, const std::string& dst_prefix) {
  VMM_ASSIGN_OR_RETURN(CopyBatchReport r,
                       ApplyCopies({GroupCopy{names, from_device, to_device, usage, dst_prefix}}));
  return r.bytes;
}

}  // namespace emoe::hbm
