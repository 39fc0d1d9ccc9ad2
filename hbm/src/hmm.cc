#include "hbm/hmm.h"

#include <chrono>
#include <cstdio>
#include <map>
#include <set>
#include <thread>

#include "clock_text.h"
#include "hbm/weight_check.h"

namespace emoe::hbm {

namespace {

using internal::Clock;
using internal::Mib;
using internal::Since;

}  // namespace

PlacementFn ReplicateEverywhere(std::vector<int> devices) {
  return [devices = std::move(devices)](const TensorInfo&) {
    return PlacementDecision{Usage::kWeights, devices, ""};
  };
}

std::string LoadReport::ToString() const {
  char buf[320];
  std::snprintf(buf, sizeof(buf),
                "%llu tensors; %s from disk in %.3f s (%.2f GB/s, %s); %s peer-to-peer in %.3f s "
                "(%.2f GB/s)",
                static_cast<unsigned long long>(tensors), Mib(bytes_from_disk).c_str(),
                disk_seconds, disk_seconds > 0 ? bytes_from_disk / disk_seconds / 1e9 : 0.0,
                disk.direct_io ? "O_DIRECT" : ("buffered: " + disk.fallback_reason).c_str(),
                Mib(bytes_p2p).c_str(), p2p_seconds,
                p2p_seconds > 0 ? bytes_p2p / p2p_seconds / 1e9 : 0.0);
  std::string out = buf;
  if (bytes_checked > 0) {
    std::snprintf(buf, sizeof(buf), "; %s checked for NaN/Inf in %.3f s (%.2f GB/s)",
                  Mib(bytes_checked).c_str(), check_seconds,
                  check_seconds > 0 ? bytes_checked / check_seconds / 1e9 : 0.0);
    out += buf;
  }
  return out;
}

std::string PopulateProgress::ToString() const {
  char buf[128];
  std::snprintf(buf, sizeof(buf), "populated %llu of %llu MiB (%.0f%%) in %.1f s",
                static_cast<unsigned long long>(done_bytes >> 20),
                static_cast<unsigned long long>(total_bytes >> 20),
                total_bytes ? 100.0 * done_bytes / total_bytes : 100.0, seconds);
  return buf;
}

namespace {

// Create's last phase: what every device can hold, populated chunk by chunk, with progress after
// each chunk (and once before the first) and a stop honoured between chunks.
Status PopulateDevices(const std::vector<std::unique_ptr<Device>>& devices,
                       const HmmOptions& options) {
  PopulateProgress p;
  for (const auto& d : devices) p.total_bytes += d->populate_ahead_bytes();
  if (p.total_bytes == 0) return Status::Ok();
  const auto t0 = Clock::now();
  if (options.populate_progress) options.populate_progress(p);
  auto after_chunk = [&](uint64_t bytes) -> Status {
    p.done_bytes += bytes;
    p.seconds = Since(t0);
    if (options.populate_progress) options.populate_progress(p);
    if (options.test_populate_chunk_delay_ms > 0) {
      const auto delay = std::chrono::milliseconds(options.test_populate_chunk_delay_ms);
      if (options.cancel != nullptr) {
        options.cancel->WaitFor(delay);
      } else {
        std::this_thread::sleep_for(delay);
      }
    }
    return options.cancel != nullptr ? options.cancel->Check("populate device memory")
                                     : Status::Ok();
  };
  for (const auto& d : devices) {
    VMM_RETURN_IF_ERROR(d->PopulateAhead(kPopulateChunkBytes, after_chunk));
  }
  return Status::Ok();
}

}  // namespace

StatusOr<std::unique_ptr<Hmm>> Hmm::Create(const HmmOptions& options) {
  VMM_ASSIGN_OR_RETURN(auto specs, PlanDevices(options.devices, vmm::NumaNodes()));
  return CreateWithDevices(specs, options);
}

StatusOr<std::unique_ptr<Hmm>> Hmm::CreateWithDevices(const std::vector<DeviceSpec>& specs,
                                                      const HmmOptions& options) {
  VMM_RETURN_IF_ERROR(options.loader.Validate());
  if (specs.empty()) return Status::InvalidArgument("an HMM needs at least one device");
  auto h = std::unique_ptr<Hmm>(new Hmm());
  h->options_ = options;
  DeviceMemoryOptions memory = options.memory;
  if (memory.page_size == vmm::PageSizePolicy::kAuto) {
    // One page kind for all devices: hugetlb only if the pool holds all of them.
    constexpr uint64_t kHuge = 2ull << 20;
    long need = 0;
    for (uint64_t b : memory.usage_bytes) need += static_cast<long>((b + kHuge - 1) / kHuge);
    need *= static_cast<long>(specs.size());
    const vmm::HugePagePool pool = vmm::ReadHugePagePool(-1);
    if (pool.available() < need) {
      std::string why;
      const bool thp = vmm::ShmemThpUsable(&why);
      memory.page_size = thp ? vmm::PageSizePolicy::kShmemThp : vmm::PageSizePolicy::kSmall;
      h->page_note_ = std::to_string(specs.size()) + " devices need " + std::to_string(need) +
                      " hugetlb pages, " + std::to_string(std::max(0L, pool.available())) +
                      " available: all devices use " +
                      (thp ? std::string("shmem THP") : "4 KiB pages (shmem THP: " + why + ")");
    }
  }
  for (size_t i = 0; i < specs.size(); ++i) {
    if (specs[i].id != static_cast<int>(i)) {
      return Status::InvalidArgument("device ids must be 0..n-1 in order");
    }
    VMM_ASSIGN_OR_RETURN(auto d, Device::Create(specs[i], memory));
    h->devices_.push_back(std::move(d));
  }
  VMM_RETURN_IF_ERROR(PopulateDevices(h->devices_, options));
  h->copies_ = std::make_unique<CopyEngine>(specs, options.copy_threads_per_device);
  return h;
}

namespace {

// A tensor's room in its group extent: from the 4 KiB boundary below its data in the file to the
// one above its end (so that an aligned O_DIRECT read lands it in place).
uint64_t SpanBytes(const TensorInfo& t) {
  const uint64_t slack = t.file_offset % kDirectAlignment;
  const uint64_t span =
      (slack + t.size_bytes + kDirectAlignment - 1) / kDirectAlignment * kDirectAlignment;
  return std::max<uint64_t>(span, kDirectAlignment);
}

// The extent a tensor placed on `dev` shares with its group.
std::string GroupKey(int dev, const PlacementDecision& d) {
  return std::to_string(dev) + "/" + UsageName(d.usage) + "/" + d.group;
}

}  // namespace

std::map<int, uint64_t> LoadFootprint(const Checkpoint& checkpoint, const PlacementFn& placement,
                                      const std::function<uint64_t(int, Usage)>& page_bytes) {
  std::map<std::string, std::pair<std::pair<int, Usage>, uint64_t>> groups;
  for (const TensorInfo& t : checkpoint.tensors) {
    const PlacementDecision d = placement(t);
    for (int dev : d.devices) {
      auto& g = groups[GroupKey(dev, d)];
      g.first = {dev, d.usage};
      g.second += SpanBytes(t);
    }
  }
  std::map<int, uint64_t> out;
  for (const auto& [key, g] : groups) {
    const uint64_t page = std::max<uint64_t>(page_bytes(g.first.first, g.first.second), 1);
    out[g.first.first] += (g.second + page - 1) / page * page;
  }
  return out;
}

namespace {

// One load's phases (LoadCheckpoint), each a function of what the previous ones decided.
struct Planned {
  const TensorInfo* info;
  PlacementDecision where;
};

// A tensor's copy on one of its devices: the decision's k-th device, in extent group `key`.
struct Slot {
  size_t plan = 0;
  size_t k = 0;           // index into the decision's devices
  std::string key;        // the extent group
  uint64_t span_off = 0;  // 4 KiB-aligned start of the tensor's span in the group extent
};

struct Layout {
  std::vector<Slot> slots;
  std::map<std::string, uint64_t> group_bytes;
  std::map<std::string, std::pair<int, Usage>> group_where;  // (device, usage)
};

// What the load creates: records (primaries first in each tensor's run), the reads that fill
// the primaries, and the (replica, primary) record pairs copied peer to peer.
struct Batch {
  std::vector<TensorRecord> records;
  std::vector<ReadRequest> reads;
  std::vector<std::pair<size_t, size_t>> replicas;
  uint64_t bytes_from_disk = 0;
};

// 1. Every decision checked: devices exist and are not repeated, nothing is registered yet.
StatusOr<std::vector<Planned>> PlanLoad(const Checkpoint& checkpoint, const PlacementFn& placement,
                                        const std::string& prefix, int num_devices,
                                        const std::function<bool(const std::string&, int)>& taken) {
  std::vector<Planned> plan;
  for (const TensorInfo& t : checkpoint.tensors) {
    PlacementDecision d = placement(t);
    if (d.devices.empty()) continue;
    std::set<int> seen;
    for (int dev : d.devices) {
      if (dev < 0 || dev >= num_devices || !seen.insert(dev).second) {
        return Status::InvalidArgument("placement of '" + t.name + "' names device " +
                                       std::to_string(dev) + " (unknown or repeated; " +
                                       std::to_string(num_devices) + " devices)");
      }
      if (taken(prefix + t.name, dev)) {
        return Status::AlreadyExists("tensor '" + prefix + t.name + "' is already on device " +
                                     std::to_string(dev));
      }
    }
    plan.push_back({&t, std::move(d)});
  }
  return plan;
}

// 2a. One extent per (device, usage, group), each tensor at a 4 KiB boundary of it.
Layout LayOut(const std::vector<Planned>& plan) {
  Layout l;
  for (size_t i = 0; i < plan.size(); ++i) {
    for (size_t k = 0; k < plan[i].where.devices.size(); ++k) {
      const int dev = plan[i].where.devices[k];
      const std::string key = GroupKey(dev, plan[i].where);
      uint64_t& used = l.group_bytes[key];
      l.slots.push_back({i, k, key, used});
      used += SpanBytes(*plan[i].info);
      l.group_where[key] = {dev, plan[i].where.usage};
    }
  }
  return l;
}

// 2b. The extents, by group key; on failure the ones allocated are released with the map.
StatusOr<std::map<std::string, vmm::Extent>> AllocateGroups(
    const Layout& l, const std::vector<std::unique_ptr<Device>>& devices) {
  std::map<std::string, vmm::Extent> extents;
  for (const auto& [key, bytes] : l.group_bytes) {
    auto [dev, usage] = l.group_where.at(key);
    auto e = devices[dev]->Allocate(usage, bytes);
    if (!e.ok()) {
      Status s = e.status();
      return s.Annotate("load group '" + key + "'");
    }
    if (e->data() == nullptr) {
      return Status::FailedPrecondition("device arenas need a direct map to load into");
    }
    extents[key] = std::move(*e);
  }
  return extents;
}

// 2b'. What the layout needs per (device, usage), each extent rounded to the arena's pages,
// against what the arena and the device have free: a checkpoint far larger than the devices is
// refused before anything is allocated. (Allocation still checks: fragmentation, or memory taken
// meanwhile by another usage, can refuse a load that passes here.)
Status CheckFits(const Layout& l, const std::vector<std::unique_ptr<Device>>& devices,
                 const std::string& checkpoint) {
  std::map<std::pair<int, Usage>, uint64_t> need;
  std::map<int, uint64_t> need_device;
  for (const auto& [key, bytes] : l.group_bytes) {
    auto [dev, usage] = l.group_where.at(key);
    const auto& arena = devices[dev]->arena(usage);
    if (!arena) continue;  // Allocate names the missing arena
    const uint64_t page = std::max<uint64_t>(arena->page_size(), 1);
    const uint64_t rounded = (bytes + page - 1) / page * page;
    need[{dev, usage}] += rounded;
    need_device[dev] += rounded;
  }
  for (const auto& [where, bytes] : need) {
    const vmm::ArenaStats a = devices[where.first]->arena(where.second)->Stats();
    if (bytes > a.free_bytes) {
      return Status::ResourceExhausted("load " + checkpoint + ": needs " + Mib(bytes) + " of " +
                                       UsageName(where.second) + " on device " +
                                       std::to_string(where.first) + ", its arena has " +
                                       Mib(a.free_bytes) + " free of " + Mib(a.capacity_bytes));
    }
  }
  for (const auto& [dev, bytes] : need_device) {
    if (bytes > devices[dev]->free_bytes()) {
      return Status::ResourceExhausted("load " + checkpoint + ": needs " + Mib(bytes) +
                                       " on device " + std::to_string(dev) + ", which has " +
                                       Mib(devices[dev]->free_bytes()) + " free");
    }
  }
  return Status::Ok();
}

// 2c. The records, laid out so that an aligned O_DIRECT read lands each primary in place: the
// data starts (file offset mod 4 KiB) past its boundary.
Batch MakeRecords(const std::vector<Planned>& plan, const Layout& l,
                  std::map<std::string, vmm::Extent>& extents, const std::string& prefix) {
  Batch b;
  size_t primary = 0;
  for (const Slot& sl : l.slots) {
    const TensorInfo& t = *plan[sl.plan].info;
    const uint64_t slack = t.file_offset % kDirectAlignment;
    TensorRecord r;
    r.name = prefix + t.name;
    r.device = plan[sl.plan].where.devices[sl.k];
    r.usage = plan[sl.plan].where.usage;
    r.dtype = t.dtype;
    r.shape = t.shape;
    r.extent = extents[sl.key];
    r.offset_in_extent = sl.span_off + slack;
    r.size_bytes = t.size_bytes;
    if (sl.k == 0) {
      primary = b.records.size();
      if (t.size_bytes > 0) {
        ReadRequest rq;
        rq.path = t.file;
        rq.file_offset = t.file_offset - slack;
        rq.length =
            (slack + t.size_bytes + kDirectAlignment - 1) / kDirectAlignment * kDirectAlignment;
        rq.required = slack + t.size_bytes;
        rq.dest = static_cast<uint8_t*>(r.extent.data()) + sl.span_off;
        b.reads.push_back(rq);
      }
      b.bytes_from_disk += t.size_bytes;
    } else {
      b.replicas.emplace_back(b.records.size(), primary);
    }
    b.records.push_back(std::move(r));
  }
  return b;
}

// The first error of `copies`, after all of them finished.
Status AwaitAll(std::vector<std::future<Status>>& copies) {
  Status first;
  for (auto& f : copies) {
    Status s = f.get();
    if (first.ok()) first = s;
  }
  return first;
}

// 4. Replicas by peer-to-peer copy, all in flight at once on the destinations' workers.
// Returns the bytes copied.
StatusOr<uint64_t> CopyReplicas(Batch& b, CopyEngine& engine) {
  std::vector<std::future<Status>> copies;
  uint64_t bytes = 0;
  for (auto [rep, pri] : b.replicas) {
    TensorRecord& dst = b.records[rep];
    const TensorRecord& src = b.records[pri];
    copies.push_back(
        engine.CopyAsync(dst.device, const_cast<void*>(dst.data()), src.data(), src.size_bytes));
    bytes += src.size_bytes;
  }
  VMM_RETURN_IF_ERROR(AwaitAll(copies));
  return bytes;
}

// 3b. NaN/Inf in what was read (the primaries; replicas are copies of them).
Status CheckPrimaries(const Batch& b, const Checkpoint& checkpoint, const std::string& prefix,
                      LoadReport* report) {
  std::vector<bool> replica(b.records.size(), false);
  for (auto [rep, pri] : b.replicas) replica[rep] = true;
  std::vector<WeightToCheck> check;
  for (size_t i = 0; i < b.records.size(); ++i) {
    if (replica[i]) continue;
    const TensorRecord& r = b.records[i];
    const TensorInfo* t = checkpoint.Find(r.name.substr(prefix.size()));  // named prefix + name
    check.push_back({t != nullptr ? t->name : r.name, r.dtype, r.data(), r.size_bytes,
                     t != nullptr ? t->file : checkpoint.path});
  }
  WeightCheckStats stats;
  Status s = CheckWeightsFinite(check, &stats);
  report->bytes_checked = stats.bytes;
  report->check_seconds = stats.seconds;
  return s;
}

}  // namespace

StatusOr<LoadReport> Hmm::LoadCheckpoint(const Checkpoint& checkpoint, const PlacementFn& placement,
                                         const std::string& name_prefix,
                                         const CancelToken* cancel) {
  vmm::MutexLock load_lock(&load_mu_);
  std::vector<Planned> plan;
  {
    vmm::MutexLock l(&mu_);
    // Runs under the lock taken here (PlanLoad calls it before returning).
    auto taken = [this](const std::string& name, int dev) {
      mu_.AssertHeld();
      return registry_.count({name, dev}) > 0;
    };
    VMM_ASSIGN_OR_RETURN(plan, PlanLoad(checkpoint, placement, name_prefix, num_devices(), taken));
  }
  // 2. Allocate, then lay the records out in the extents (released on any failure below).
  const Layout layout = LayOut(plan);
  VMM_RETURN_IF_ERROR(CheckFits(layout, devices_, checkpoint.path));
  VMM_ASSIGN_OR_RETURN(auto extents, AllocateGroups(layout, devices_));
  Batch batch = MakeRecords(plan, layout, extents, name_prefix);
  LoadReport report;
  report.bytes_from_disk = batch.bytes_from_disk;
  // 3. Read each tensor once.
  auto t0 = Clock::now();
  LoaderOptions lo = options_.loader;
  if (lo.cancel == nullptr) lo.cancel = options_.cancel;
  Loader loader(std::move(lo));
  VMM_ASSIGN_OR_RETURN(report.disk, loader.Load(batch.reads, cancel));
  report.disk_seconds = Since(t0);
  if (options_.check_weights)
    VMM_RETURN_IF_ERROR(CheckPrimaries(batch, checkpoint, name_prefix, &report));
  if (Cancelled(cancel, options_.cancel)) {
    return Status::Unavailable("load: cancelled (stopping) before the peer-to-peer copies");
  }
  t0 = Clock::now();
  VMM_ASSIGN_OR_RETURN(report.bytes_p2p, CopyReplicas(batch, *copies_));
  report.p2p_seconds = Since(t0);
  // 5. Publish.
  vmm::MutexLock l(&mu_);
  for (TensorRecord& r : batch.records) {
    const Key key{r.name, r.device};
    registry_.emplace(key, std::move(r));
  }
  report.tensors = batch.records.size();
  return report;
}

Status Hmm::Replicate(const std::string& name, int from_device, int to_device) {
  VMM_ASSIGN_OR_RETURN(TensorRecord src, Find(name, from_device));
  if (to_device < 0 || to_device >= num_devices()) {
    return Status::InvalidArgument("replicate '" + name + "': unknown device " +
                                   std::to_string(to_device));
  }
  {
    vmm::MutexLock l(&mu_);
    if (registry_.count({name, to_device})) {
      return Status::AlreadyExists("tensor '" + name + "' is already on device " +
                                   std::to_string(to_device));
    }
  }
  // Its own extent on the target, with the same 4 KiB slack as the source (same alignment).
  const uint64_t slack = src.offset_in_extent % kDirectAlignment;
  VMM_ASSIGN_OR_RETURN(
      vmm::Extent e,
      devices_[to_device]->Allocate(src.usage, std::max<uint64_t>(slack + src.size_bytes, 1)));
  TensorRecord r = src;
  r.device = to_device;
  r.extent = std::move(e);
  r.offset_in_extent = slack;
  VMM_RETURN_IF_ERROR(
      copies_->Copy(to_device, const_cast<void*>(r.data()), src.data(), src.size_bytes));
  vmm::MutexLock l(&mu_);
  if (!registry_.emplace(Key{name, to_device}, std::move(r)).second) {
    return Status::AlreadyExists("tensor '" + name + "' appeared on device " +
                                 std::to_string(to_device) + " meanwhile");
  }
  return Status::Ok();
}

size_t Hmm::ReleaseIf(const std::function<bool(const TensorRecord&)>& pred) {
  vmm::MutexLock l(&mu_);
  size_t n = 0;
  for (auto it = registry_.begin(); it != registry_.end();) {
    if (pred(it->second)) {
      it = registry_.erase(it);
      ++n;
    } else {
      ++it;
    }
  }
  return n;
}

StatusOr<TensorRecord> Hmm::Find(const std::string& name, int device) const {
  vmm::MutexLock l(&mu_);
  auto it = registry_.find({name, device});
  if (it == registry_.end()) {
    return Status::NotFound("tensor '" + name + "' is not on device " + std::to_string(device));
  }
  return it->second;
}

StatusOr<std::vector<TensorRecord>> Hmm::FindAll(
    const std::vector<std::pair<std::string, int>>& records) const {
  std::vector<TensorRecord> out;
  out.reserve(records.size());
  vmm::MutexLock l(&mu_);
  for (size_t i = 0; i < records.size(); ++i) {
    auto it = registry_.find(records[i]);
    if (it == registry_.end()) {
      return Status::NotFound("tensor '" + records[i].first + "' is not on device " +
                              std::to_string(records[i].second) + " (record " + std::to_string(i) +
                              " of " + std::to_string(records.size()) + " asked for)");
    }
    out.push_back(it->second);
  }
  return out;
}

std::vector<TensorRecord> Hmm::List(int device) const {
  vmm::MutexLock l(&mu_);
  std::vector<TensorRecord> out;
  for (const auto& [key, r] : registry_) {
    if (device < 0 || key.second == device) out.push_back(r);
  }
  return out;
}

Status Hmm::Release(const std::string& name, int device) {
  vmm::MutexLock l(&mu_);
  if (registry_.erase({name, device}) == 0) {
    return Status::NotFound("release: tensor '" + name + "' is not on device " +
                            std::to_string(device));
  }
  return Status::Ok();
}

void Hmm::ReleaseAll() {
  vmm::MutexLock l(&mu_);
  registry_.clear();
}

std::vector<DeviceStats> Hmm::Stats() const {
  std::vector<DeviceStats> out;
  for (const auto& d : devices_) out.push_back(d->Stats());
  return out;
}

std::string Hmm::Report() const {
  std::string out;
  uint64_t used = 0, peak = 0;
  for (const DeviceStats& s : Stats()) {
    out += s.ToString() + "\n";
    used += s.used_bytes;
    peak += s.peak_used_bytes;
  }
  size_t n;
  {
    vmm::MutexLock l(&mu_);
    n = registry_.size();
  }
  return out + "total: " + std::to_string(n) + " tensor records, used " + Mib(used) + ", peak " +
         Mib(peak) + "\n";
}

}  // namespace emoe::hbm
