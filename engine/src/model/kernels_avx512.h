// engine/src/model/kernels_avx512.h: the AVX-512 kernels behind engine/kernels.h (internal to
// kernels.cc; callers check the CPU first with kernels::IsaSupported).
//
// Summation order of one output (kept whatever m, the token grouping or the row range):
//   widening (f16, f32, and bf16 without AVX512_BF16): four 16-lane accumulators, the 16-element
//     chunk j / 16 going to accumulator (j / 16) mod 4, the last partial chunk zero-padded by a
//     masked load; (a0 + a1) + (a2 + a3); lanes (l, l+8), (l, l+4), (l, l+2), (0, 1). Computed
//     in register tiles of up to 4 rows x 6 tokens (one accumulator of each output at a time),
//     whatever the tile's shape in this order.
//   bf16 by vdpbf16ps: the activations split once per call into two bf16 halves, x = hi + lo
//     (hi = x rounded to bf16, lo = the rest rounded to bf16: 16 significant bits, |x - hi - lo|
//     <= 2^-16 |x|); four 16-lane accumulators, the 32-element chunk j / 32 going to accumulator
//     (j / 32) mod 4, each taking the lo product then the hi one; then reduced as above.
#ifndef ENGINE_SRC_MODEL_KERNELS_AVX512_H_
#define ENGINE_SRC_MODEL_KERNELS_AVX512_H_

#include <cstddef>
#include <cstdint>

#include "hbm/safetensors.h"

namespace emoe::engine::kernels::avx512 {

// As kernels::DotRows; bf16_dot: bf16 weights through vdpbf16ps (the CPU has AVX512_BF16).
void DotRows(bool bf16_dot, const void* w, hbm::DType dtype, int64_t rows, int64_t k,
             const float* x, int64_t m, float* y, int64_t ldy);

// The sum (mod 2^64) of the 8-byte words of the first bytes / 256 * 256 bytes at p, read with
// 64-byte loads (kernels::ReadSum adds the rest).
uint64_t ReadSumBlocks(const void* p, size_t bytes);

}  // namespace emoe::engine::kernels::avx512

#endif  // ENGINE_SRC_MODEL_KERNELS_AVX512_H_
