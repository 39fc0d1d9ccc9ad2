// engine/weight_sources.h: where the engine's weights come from. It owns none: it reads an HMM's
// registry in-process, or an attachment to hmmd.
#ifndef ENGINE_WEIGHT_SOURCES_H_
#define ENGINE_WEIGHT_SOURCES_H_

#include "engine/forward.h"
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

}  // namespace emoe::engine

#endif  // ENGINE_WEIGHT_SOURCES_H_
