// engine/kernels.h: matrix products for the decode path (few tokens against many weight rows),
// fused: each weight element is loaded once in its own type (bf16, f16 or f32), widened in a
// register and multiplied there; no fp32 copy of the weights is written.
//
// Instruction sets, chosen once at run time from the CPU (cpuid), overridable with the environment
// variable EMOE_KERNELS=scalar|avx2 (an unknown or unsupported value is an error at start-up):
//   avx2    AVX2 + FMA (+ F16C for f16 weights): 8 lanes, bf16 widened by a shift, f16 by vcvtph2ps
//   scalar  portable C++ with the same 8-lane blocking (for CPUs without AVX2, and for tests)
//
// Determinism (the instance's bit-identical outputs for 1..N devices rest on it): every output
// y[t][r] is summed in one fixed order -- four 8-lane accumulators, the 8-element chunk j / 8 of
// row r going to accumulator (j / 8) mod 4, combined as (a0 + a1) + (a2 + a3), the lanes reduced
// pairwise (l, l+4), (l, l+2), (0, 1), then the k % 8 tail in ascending order -- whatever m, n,
// the token grouping or the row range a thread takes. So the rows of a product can be split
// among threads, and a token's result does not depend on the other tokens of its batch. (Each
// ISA keeps this order; their results differ in rounding: only AVX2 fuses multiply and add.)

// Thread safety: pure functions of their arguments.
#ifndef ENGINE_KERNELS_H_
#define ENGINE_KERNELS_H_

#include <cstddef>
#include <cstdint>

#include "hbm/safetensors.h"
#include "vmm/status.h"

namespace emoe::engine::kernels {

enum class Isa { kScalar, kAvx2 };
const char* IsaName(Isa isa);  // "scalar", "avx2+fma"
// What this CPU runs (EMOE_KERNELS when set and supported, else the best the CPU has).
vmm::StatusOr<Isa> SelectIsa();
// The selected one, decided on first use; aborts naming EMOE_KERNELS when it is unusable.
Isa ActiveIsa();
bool IsaSupported(Isa isa);

// y[t * ldy + r] = sum_j x[t * k + j] * W[r][j] for t < m, r < rows, where W is `rows` rows of
// k elements of `dtype` (bf16, f16 or f32) starting at `w`.
void DotRows(Isa isa, const void* w, hbm::DType dtype, int64_t rows, int64_t k, const float* x,
             int64_t m, float* y, int64_t ldy);
inline void DotRows(const void* w, hbm::DType dtype, int64_t rows, int64_t k, const float* x,
                    int64_t m, float* y, int64_t ldy) {
  DotRows(ActiveIsa(), w, dtype, rows, k, x, m, y, ldy);
}

// An IEEE half as a float (exact: subnormals, infinities and NaNs included).
float HalfToFloat(uint16_t h);

// Reads `bytes` at `p` with the widest loads the ISA has and returns the sum of its 8-byte words
// (mod 2^64) plus the bytes after the last whole word, the same for every ISA: the
// read-bandwidth probe of engine_bench (a result the compiler cannot drop).
uint64_t ReadSum(Isa isa, const void* p, size_t bytes);

}  // namespace emoe::engine::kernels

#endif  // ENGINE_KERNELS_H_
