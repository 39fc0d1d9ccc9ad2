#include "engine/weight_sources.h"

#include <cstring>

#include "vmm/stats.h"

namespace emoe::engine {

StatusOr<WeightRef> HmmWeightSource::Get(const std::string& name) const {
  auto r = hmm_->Find(name, device_);
  if (!r.ok()) {
    for (int d = 0; d < hmm_->num_devices() && !r.ok(); ++d) r = hmm_->Find(name, d);
  }
  if (!r.ok()) return Status::NotFound("no device of the HMM holds '" + name + "'");
  return WeightRef{r->data(), r->dtype, r->shape};
}

StatusOr<WeightRef> AttachmentWeightSource::Get(const std::string& name) const {
  const hbm::TensorView* v = att_->Find(name, device_);
  for (const hbm::TensorView& t : att_->tensors()) {
    if (v == nullptr && t.name == name) v = &t;
  }
  if (v == nullptr) return Status::NotFound("the attachment has no tensor '" + name + "'");
  return WeightRef{v->data, v->dtype, v->shape};
}

StatusOr<std::unique_ptr<DeviceWeights>> DeviceWeights::Build(
    hbm::Hmm& hmm, const ModelConfig& config, int device, const experts::ExpertPlacement& placement,
    const DeviceWeightsOptions& options, DeviceWeightsStats* stats) {
  if (device < 0 || device >= hmm.num_devices()) {
    return Status::InvalidArgument("device weights: unknown device " + std::to_string(device));
  }
  auto find = [&](const std::string& name) -> StatusOr<Found> {
    VMM_ASSIGN_OR_RETURN(hbm::TensorRecord r, hmm.Find(name, device));
    const void* data = r.data();
    return Found{std::move(r), data};
  };
  return BuildWith(find, &hmm.device(device), config, device, placement, options, stats);
}

StatusOr<std::unique_ptr<DeviceWeights>> DeviceWeights::FromAttachment(
    const hbm::Attachment& att, const ModelConfig& config, int device,
    const experts::ExpertPlacement& placement, const std::string& prefix,
    DeviceWeightsStats* stats) {
  auto find = [&](const std::string& name) -> StatusOr<Found> {
    const hbm::TensorView* v = att.Find(name, device);
    if (v == nullptr) {
      return Status::NotFound("the attachment has no '" + name + "' on device " +
                              std::to_string(device));
    }
    hbm::TensorRecord r;
    r.name = v->name;
    r.device = v->device;
    r.dtype = v->dtype;
    r.shape = v->shape;
    VMM_ASSIGN_OR_RETURN(r.extent, att.arena(v->arena)->View(v->extent_offset, v->extent_size));
    r.offset_in_extent = v->offset - v->extent_offset;
    r.size_bytes = v->size_bytes;
    return Found{std::move(r), v->data};
  };
  DeviceWeightsOptions options;
  options.prefix = prefix;
  return BuildWith(find, nullptr, config, device, placement, options, stats);
}

namespace {

uint64_t AlignDirect(uint64_t bytes) {
  return (bytes + hbm::kDirectAlignment - 1) / hbm::kDirectAlignment * hbm::kDirectAlignment;
}

}  // namespace

StatusOr<std::unique_ptr<DeviceWeights>> DeviceWeights::BuildWith(
    const FindFn& find, hbm::Device* dev, const ModelConfig& config, int device,
    const experts::ExpertPlacement& placement, const DeviceWeightsOptions& options,
    DeviceWeightsStats* stats) {
  if ((options.private_copy || options.experts != ExpertView::kSlots) && dev == nullptr) {
    return Status::InvalidArgument(
        "device weights: private copies need the HMM's device (in-process)");
  }
  if (placement.num_layers() != config.num_hidden_layers ||
      placement.num_experts() != config.num_experts) {
    return Status::InvalidArgument(
        "device weights: the placement's shape does not match the model");
  }
  auto out = std::unique_ptr<DeviceWeights>(new DeviceWeights());
  DeviceWeightsStats st;
  const BuildArgs a{find, dev, device, options, &st};
  const std::vector<TensorSpec> specs = ExpectedTensors(config);
  VMM_RETURN_IF_ERROR(out->BindDense(a, specs));
  ExpertNames expert_names;
  for (const TensorSpec& spec : specs) {
    if (spec.expert >= 0) expert_names[{spec.layer, spec.expert}].push_back(spec.name);
  }
  out->slots_.resize(config.num_hidden_layers);
  for (int l = 0; l < config.num_hidden_layers; ++l) {
    const std::vector<int> local = placement.LocalExperts(l, device);
    if (local.empty()) continue;
    VMM_RETURN_IF_ERROR(out->BindLayerExperts(a, l, local, expert_names));
  }
  if (stats != nullptr) *stats = st;
  return out;
}

Status DeviceWeights::BindDense(const BuildArgs& a, const std::vector<TensorSpec>& specs) {
  // Non-expert tensors: the HMM's pages, or (private_copy) one packed extent of the source's own.
  std::vector<std::pair<const TensorSpec*, Found>> dense;
  uint64_t packed = 0;
  for (const TensorSpec& spec : specs) {
    if (spec.expert >= 0) continue;
    VMM_ASSIGN_OR_RETURN(Found f, a.find(a.options.prefix + spec.name));
    packed += AlignDirect(f.rec.size_bytes);
    dense.emplace_back(&spec, std::move(f));
  }
  uint8_t* copy_at = nullptr;
  if (a.options.private_copy) {
    VMM_ASSIGN_OR_RETURN(vmm::Extent e,
                         a.dev->Allocate(hbm::Usage::kWeights, std::max<uint64_t>(packed, 1)));
    copy_at = static_cast<uint8_t*>(e.data());
    owned_.push_back(std::move(e));
  }
  for (const auto& [spec, f] : dense) {
    const hbm::TensorRecord& r = f.rec;
    const void* data = f.data;
    if (copy_at != nullptr) {
      vmm::CopyBytes(copy_at, f.data, r.size_bytes);
      a.stats->bytes_copied += r.size_bytes;
      data = copy_at;
      copy_at += AlignDirect(r.size_bytes);
    } else {
      owned_.push_back(r.extent);
    }
    refs_[spec->name] = WeightRef{data, r.dtype, r.shape};
  }
  return Status::Ok();
}

Status DeviceWeights::BindLayerExperts(const BuildArgs& a, int l, const std::vector<int>& local,
                                       ExpertNames& expert_names) {
  const DeviceWeightsOptions& options = a.options;
  std::vector<std::vector<Found>> recs;
  std::vector<vmm::Extent> extents;
  for (int e : local) {
    std::vector<Found> rs;
    for (const std::string& n : expert_names[{l, e}]) {
      VMM_ASSIGN_OR_RETURN(Found r, a.find(options.prefix + n));
      if (!rs.empty() && r.rec.extent.offset_bytes() != rs[0].rec.extent.offset_bytes()) {
        return Status::FailedPrecondition(
            "expert " + std::to_string(e) + " of layer " + std::to_string(l) + " on device " +
            std::to_string(a.device) + " is not in one extent (load it with a group)");
      }
      rs.push_back(std::move(r));
    }
    extents.push_back(rs[0].rec.extent);
    recs.push_back(std::move(rs));
  }
  // Experts loaded without a group of their own share a bigger extent: they are viewed where
  // they are (zero-copy, but no slot range to remap).
  bool own = true;
  for (size_t i = 0; i < extents.size(); ++i) {
    uint64_t span = 0;
    for (const Found& f : recs[i]) span += f.rec.size_bytes + 2 * hbm::kDirectAlignment;
    const uint64_t page = extents[i].arena()->page_size();
    own = own && extents[i].size_bytes() <= (span + page - 1) / page * page;
  }
  if (!own && options.experts == ExpertView::kSlots && !options.private_copy) {
    for (const auto& rs : recs) {
      for (const Found& f : rs) {
        refs_[f.rec.name.substr(options.prefix.size())] =
            WeightRef{f.data, f.rec.dtype, f.rec.shape};
        owned_.push_back(f.rec.extent);
      }
    }
    return Status::Ok();
  }
  const uint64_t slot_bytes = experts::SlotBytesFor(extents);
  VMM_ASSIGN_OR_RETURN(const uint8_t* base, LayOutExperts(a, l, slot_bytes, extents));
  for (size_t i = 0; i < local.size(); ++i) {
    for (const Found& f : recs[i]) {
      const hbm::TensorRecord& r = f.rec;
      const std::string name = r.name.substr(options.prefix.size());
      refs_[name] = WeightRef{base + i * slot_bytes + r.offset_in_extent, r.dtype, r.shape};
    }
  }
  return Status::Ok();
}

StatusOr<const uint8_t*> DeviceWeights::LayOutExperts(const BuildArgs& a, int l,
                                                      uint64_t slot_bytes,
                                                      const std::vector<vmm::Extent>& extents) {
  if (a.options.experts == ExpertView::kSlots && !a.options.private_copy) {
    VMM_ASSIGN_OR_RETURN(
        slots_[l], experts::ExpertSlots::Create(
                       "dev" + std::to_string(a.device) + ".layer" + std::to_string(l) + ".experts",
                       slot_bytes, extents));
    a.stats->bytes_mapped += slots_[l]->mapped_bytes();
    a.stats->slots += slots_[l]->num_slots();
    return slots_[l]->base();
  }
  std::vector<const void*> srcs;
  uint64_t bytes = extents[0].size_bytes();
  for (const vmm::Extent& x : extents) {
    srcs.push_back(x.data());
    bytes = std::min(bytes, x.size_bytes());
  }
  hbm::Device* dev = a.dev;
  VMM_ASSIGN_OR_RETURN(experts::NaiveBuffer buf,
                       experts::NaiveContiguousCopy(
                           *dev->arena(hbm::Usage::kExperts), slot_bytes, srcs, bytes,
                           [dev](uint64_t n) { return dev->Allocate(hbm::Usage::kExperts, n); }));
  a.stats->bytes_copied += buf.copied_bytes;
  const uint8_t* base = static_cast<const uint8_t*>(buf.buffer.data());
  owned_.push_back(std::move(buf.buffer));
  return base;
}

StatusOr<WeightRef> DeviceWeights::Get(const std::string& name) const {
  auto it = refs_.find(name);
  if (it == refs_.end()) return Status::NotFound("this device's weights have no '" + name + "'");
  return it->second;
}

}  // namespace emoe::engine
