#include "engine/weight_sources.h"

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

}  // namespace emoe::engine
