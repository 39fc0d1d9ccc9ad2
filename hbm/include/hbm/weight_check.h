// hbm/weight_check.h: finding NaN and Inf in loaded weights.
//
// A checkpoint with a NaN or an Inf in one weight loads fine and then serves garbage (every
// token after the first that touches it). Hmm::LoadCheckpoint scans what it read from disk (each
// tensor once, before replicas are copied) when HmmOptions::check_weights is set, and refuses
// the load naming the first bad tensor:
//   "tensor 'model.layers.0.mlp.experts.3.up_proj.weight' (BF16, /m/model.safetensors) has 3
//    non-finite values (2 NaN, 1 Inf), the first at element 17; 1 more tensor has some;
//    --check_weights=false (HmmOptions::check_weights) accepts them"
// The scan is one branch-free pass over the bits (exponent all ones) that the compiler
// vectorizes; its time and bandwidth are in LoadReport.
//
// Thread safety: pure functions of their arguments.
#ifndef HBM_WEIGHT_CHECK_H_
#define HBM_WEIGHT_CHECK_H_

#include <cstdint>
#include <string>
#include <vector>

#include "hbm/safetensors.h"
#include "vmm/status.h"

namespace emoe::hbm {

struct NonFinite {
  uint64_t nan = 0;
  uint64_t inf = 0;
  uint64_t first_index = 0;  // element index of the first NaN or Inf (meaningful if count() > 0)
  uint64_t count() const { return nan + inf; }
};

// The NaN and Inf elements among `elements` values of `dtype` at `data` (any alignment).
NonFinite FindNonFinite(const void* data, uint64_t elements, DType dtype);

// One tensor to check: its name (for the error), dtype, where its bytes are, and its file.
struct WeightToCheck {
  std::string name;
  DType dtype = DType::kF32;
  const void* data = nullptr;
  uint64_t size_bytes = 0;
  std::string file;
};

struct WeightCheckStats {
  uint64_t tensors = 0;
  uint64_t bytes = 0;
  double seconds = 0;
};

// Scans every tensor; kDataLoss naming the first one with a NaN or an Inf (as above) and how
// many others have some. `stats` (if not null) gets what was scanned and how long it took.
Status CheckWeightsFinite(const std::vector<WeightToCheck>& tensors,
                          WeightCheckStats* stats = nullptr);

}  // namespace emoe::hbm

#endif  // HBM_WEIGHT_CHECK_H_
