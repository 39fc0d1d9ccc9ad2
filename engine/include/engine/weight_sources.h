// engine/weight_sources.h: where the engine's weights come from. The engine owns no model
// memory by default: it reads an HMM's registry in-process, or an attachment to hmmd.
//
// DeviceWeights builds the view one DP rank has of the HMM on its device: the non-expert tensors
// of that device (zero-copy: the HMM's pages) and, per layer, the rank's local experts as ONE
// contiguous range of expert slots (experts/slots.h) mapped over each expert's own extent. That
// is the "attach" of a new instance: a few mmaps, no copy. The ablations of #5 replace parts of
// it: kNaiveCopy copies the local experts into one new contiguous buffer per layer (what a system
// without VM remapping does), and private_copy copies every tensor into extents of the source's
// own (no zero-copy attach). The source keeps everything it maps or copies alive; dropping it
// unmaps its view and frees its own copies.
#ifndef ENGINE_WEIGHT_SOURCES_H_
#define ENGINE_WEIGHT_SOURCES_H_

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "engine/forward.h"
#include "experts/placement.h"
#include "experts/slots.h"
#include "hbm/client.h"
#include "hbm/hmm.h"

namespace emoe::engine {

// The tensors an HMM holds on one device (first), falling back to any device that has them (the
// experts of other devices, as EP would fetch them).
class HmmWeightSource : public WeightSource {
 public:
  HmmWeightSource(const hbm::Hmm* hmm, int device) : hmm_(hmm), device_(device) {}
  StatusOr<WeightRef> Get(const std::string& name) const override;

 private:
  const hbm::Hmm* hmm_;
  int device_;
};

// The tensors of an attachment (zero-copy views of hmmd's arenas), same device preference.
class AttachmentWeightSource : public WeightSource {
 public:
  AttachmentWeightSource(const hbm::Attachment* att, int device) : att_(att), device_(device) {}
  StatusOr<WeightRef> Get(const std::string& name) const override;

 private:
  const hbm::Attachment* att_;
  int device_;
};

enum class ExpertView {
  kSlots,      // VM remap: slots mapped over the experts' own extents (no copy)
  kNaiveCopy,  // baseline: one new contiguous buffer per layer, every local expert copied in
};

struct DeviceWeightsOptions {
  ExpertView experts = ExpertView::kSlots;
  bool private_copy = false;  // copy non-expert tensors too (ablation: no zero-copy attach)
  std::string prefix;         // the HMM names are prefix + checkpoint name
};

struct DeviceWeightsStats {
  uint64_t bytes_mapped = 0;  // expert slot bytes mapped over the HMM's pages
  uint64_t bytes_copied = 0;  // bytes copied into the source's own extents
  int slots = 0;              // expert slots mapped
};

// A fixed table of views, keeping their memory alive.
class DeviceWeights : public WeightSource {
 public:
  // The weights of `device` under `placement` (the device's local experts only).
  // kNotFound names a tensor the HMM lacks on that device; kResourceExhausted comes from a full
  // arena (copies) and leaves nothing allocated.
  static StatusOr<std::unique_ptr<DeviceWeights>> Build(hbm::Hmm& hmm, const ModelConfig& config,
                                                        int device,
                                                        const experts::ExpertPlacement& placement,
                                                        const DeviceWeightsOptions& options,
                                                        DeviceWeightsStats* stats = nullptr);
  // The same view in another process, over an hmmd attachment (zero-copy: dense tensors where
  // the attachment maps them, each layer's local experts as a slot range over their pages).
  static StatusOr<std::unique_ptr<DeviceWeights>> FromAttachment(
      const hbm::Attachment& att, const ModelConfig& config, int device,
      const experts::ExpertPlacement& placement, const std::string& prefix,
      DeviceWeightsStats* stats = nullptr);
  StatusOr<WeightRef> Get(const std::string& name) const override;
  const experts::ExpertSlots* slots(int layer) const {
    return layer < static_cast<int>(slots_.size()) ? slots_[layer].get() : nullptr;
  }

 private:
  struct Found {
    hbm::TensorRecord rec;  // its extent: the HMM's, or a view of an attached arena
    const void* data = nullptr;
  };
  using FindFn = std::function<StatusOr<Found>(const std::string&)>;
  using ExpertNames = std::map<std::pair<int, int>, std::vector<std::string>>;  // (layer, e)
  // What every phase of a build reads (and the stats it adds to).
  struct BuildArgs {
    const FindFn& find;
    hbm::Device* dev;  // null out of process (no copies)
    int device;
    const DeviceWeightsOptions& options;
    DeviceWeightsStats* stats;
  };
  // Validates, then binds the dense tensors and each layer's local experts.
  static StatusOr<std::unique_ptr<DeviceWeights>> BuildWith(
      const FindFn& find, hbm::Device* dev, const ModelConfig& config, int device,
      const experts::ExpertPlacement& placement, const DeviceWeightsOptions& options,
      DeviceWeightsStats* stats);
  // The non-expert tensors of `specs`: viewed in place, or copied (private_copy).
  Status BindDense(const BuildArgs& a, const std::vector<TensorSpec>& specs);
  // Layer l's `local` experts: viewed in place when they share an extent, else laid out as
  // slots (LayOutExperts).
  Status BindLayerExperts(const BuildArgs& a, int l, const std::vector<int>& local,
                          ExpertNames& expert_names);
  // The experts' slot range (kSlots) or a naive contiguous copy of them; returns its base.
  StatusOr<const uint8_t*> LayOutExperts(const BuildArgs& a, int l, uint64_t slot_bytes,
                                         const std::vector<vmm::Extent>& extents);
  std::map<std::string, WeightRef> refs_;
  std::vector<std::unique_ptr<experts::ExpertSlots>> slots_;  // per layer (kSlots)
  std::vector<vmm::Extent> owned_;  // the HMM's extents it views, or its own copies
};

}  // namespace emoe::engine

#endif  // ENGINE_WEIGHT_SOURCES_H_
