#include "hbm/control.h"

#include <algorithm>
#include <set>

namespace emoe::hbm {

TensorMeta MetaOf(const TensorRecord& r) {
  TensorMeta m;
  m.name = r.name;
  m.device = r.device;
  m.usage = r.usage;
  m.dtype = r.dtype;
  m.shape = r.shape;
  m.size_bytes = r.size_bytes;
  m.extent_bytes = r.extent.size_bytes();
  return m;
}

StatusOr<PlacementFn> PlacementFromTable(const Checkpoint& checkpoint,
                                         const PlacementTable& placement, int num_devices) {
  for (const auto& [name, d] : placement) {
    if (checkpoint.Find(name) == nullptr) {
      return Status::NotFound("placement names tensor '" + name + "', which " + checkpoint.path +
                              " does not hold");
    }
    for (int dev : d.devices) {
      if (dev < 0 || dev >= num_devices) {
        return Status::InvalidArgument("placement puts '" + name + "' on device " +
                                       std::to_string(dev) + " (the HMM has " +
                                       std::to_string(num_devices) + ")");
      }
    }
  }
  return PlacementFn([&placement](const TensorInfo& t) {
    auto it = placement.find(t.name);
    return it == placement.end() ? PlacementDecision{} : it->second;
  });
}

HmmSnapshot SnapshotOf(Hmm& hmm, const std::vector<TensorRecord>& records) {
  HmmSnapshot s;
  s.records.reserve(records.size());
  for (const TensorRecord& r : records) s.records.push_back(MetaOf(r));
  s.stats = hmm.Stats();
  return s;
}

size_t ReleaseMatchingIn(Hmm& hmm, const std::string& prefix, const std::vector<int>& devices) {
  const std::set<int> on(devices.begin(), devices.end());
  return hmm.ReleaseIf([&](const TensorRecord& r) {
    return r.name.compare(0, prefix.size(), prefix) == 0 && (on.empty() || on.count(r.device));
  });
}

LocalHmmControl::LocalHmmControl(Hmm* hmm) : hmm_(hmm) {}

StatusOr<LoadReport> LocalHmmControl::Load(const std::string& checkpoint_path,
                                           const PlacementTable& placement,
                                           const std::string& prefix) {
  std::shared_ptr<const Checkpoint> ckpt;
  {
    vmm::MutexLock l(&mu_);
    auto it = checkpoints_.find(checkpoint_path);
    if (it == checkpoints_.end()) {
      VMM_ASSIGN_OR_RETURN(Checkpoint c, OpenCheckpoint(checkpoint_path));
      it = checkpoints_.emplace(checkpoint_path, std::make_shared<Checkpoint>(std::move(c))).first;
    }
    ckpt = it->second;
  }
  VMM_ASSIGN_OR_RETURN(PlacementFn where,
                       PlacementFromTable(*ckpt, placement, hmm_->num_devices()));
  return hmm_->LoadCheckpoint(*ckpt, where, prefix);
}

StatusOr<uint64_t> LocalHmmControl::CopyGroup(const std::vector<std::string>& names, int from,
                                              int to, Usage usage, const std::string& dst_prefix) {
  return hmm_->CopyGroup(names, from, to, usage, dst_prefix);
}

StatusOr<CopyBatchReport> LocalHmmControl::ApplyCopies(const std::vector<GroupCopy>& copies,
                                                       const CopyBatchOptions& options) {
  return hmm_->ApplyCopies(copies, options);
}

StatusOr<HmmSnapshot> LocalHmmControl::Describe(
    const std::vector<std::pair<std::string, int>>& records) {
  VMM_ASSIGN_OR_RETURN(std::vector<TensorRecord> found, hmm_->FindAll(records));
  return SnapshotOf(*hmm_, found);
}

StatusOr<TensorMeta> LocalHmmControl::Find(const std::string& name, int device) {
  VMM_ASSIGN_OR_RETURN(TensorRecord r, hmm_->Find(name, device));
  return MetaOf(r);
}

StatusOr<size_t> LocalHmmControl::Release(const std::vector<std::pair<std::string, int>>& records) {
  size_t n = 0;
  for (const auto& [name, device] : records) n += hmm_->Release(name, device).ok() ? 1 : 0;
  return n;
}

StatusOr<size_t> LocalHmmControl::ReleaseMatching(const std::string& prefix,
                                                  const std::vector<int>& devices) {
  return ReleaseMatchingIn(*hmm_, prefix, devices);
}

namespace {

class LocalKvMemory : public KvMemory {
 public:
  LocalKvMemory(Device* d, vmm::Extent e) : device_(d), extent_(std::move(e)) {}
  Status Resize(uint64_t bytes) override {
    VMM_RETURN_IF_ERROR(device_->Resize(Usage::kKv, extent_, bytes));
    size_bytes = extent_.size_bytes();
    return Status::Ok();
  }

 private:
  Device* device_;
  vmm::Extent extent_;
};

}  // namespace

StatusOr<std::unique_ptr<KvMemory>> KvMemoryFromExtent(Device& device, vmm::Extent extent) {
  if (extent.data() == nullptr) return Status::FailedPrecondition("the KV arena has no direct map");
  auto m = std::make_unique<LocalKvMemory>(&device, extent);
  m->device = device.id();
  m->base = static_cast<uint8_t*>(extent.data());
  m->arena_offset = extent.offset_bytes();
  m->size_bytes = extent.size_bytes();
  return std::unique_ptr<KvMemory>(std::move(m));
}

StatusOr<std::unique_ptr<KvMemory>> LocalHmmControl::AllocateKv(int device, uint64_t bytes) {
  if (device < 0 || device >= hmm_->num_devices()) {
    return Status::InvalidArgument("KV memory on unknown device " + std::to_string(device));
  }
  if (bytes == 0) return Status::InvalidArgument("KV memory of 0 bytes");
  Device& d = hmm_->device(device);
  if (!d.arena(Usage::kKv)) {
    return Status::FailedPrecondition("device " + std::to_string(device) + " has no KV arena");
  }
  VMM_ASSIGN_OR_RETURN(vmm::Extent e, d.Allocate(Usage::kKv, bytes));
  return KvMemoryFromExtent(d, std::move(e));
}

Status LocalHmmControl::Copy(int device, void* dst, const void* src, uint64_t n) {
  return hmm_->copies().Copy(device, dst, src, n);
}

}  // namespace emoe::hbm
