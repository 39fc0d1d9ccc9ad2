// engine/kernels.h: matrix products of tokens against weight rows, fused: each weight element is
// loaded in its own type (bf16, f16 or f32), widened in a register and multiplied there; no fp32
// copy of the weights is written.
//
// Instruction sets, chosen once at run time from the CPU (cpuid), overridable with the environment
// variable EMOE_KERNELS=scalar|avx2|avx512|avx512bf16 (an unknown or unsupported value is an
// error at start-up); the default is the first the CPU has of avx512, avx2, scalar:
//   avx512      AVX512F/BW/VL: 16 lanes, every type widened in a register, the row's last
//               partial chunk by a masked load; register tiles of 4 rows x 6 tokens with the
//               next rows prefetched, at every token count, so that prefill runs here too
//               (ManyTokens) instead of on BLAS
//   avx512bf16  (only when asked for) AVX512F/BW/VL + AVX512_BF16: bf16 weights by vdpbf16ps
//               against the activations carried as two bf16 halves (hi + lo: 16 significant
//               bits, |error| <= 2^-16 of sum |w x| plus fp32 summation), so the weights are
//               never widened; f16 and f32 weights as avx512. Not the default: where memory
//               bandwidth is the bound it measured no faster than avx512 (README).
//               See src/model/kernels_avx512.h for the AVX-512 summation orders.
//   avx2        AVX2 + FMA (+ F16C for f16 weights): 8 lanes, bf16 widened by a shift, f16 by
//               vcvtph2ps
//   scalar      portable C++ with avx2's 8-lane blocking (for CPUs without AVX2, and for tests)
//
// Determinism (the instance's bit-identical outputs for 1..N devices rest on it): every output
// y[t][r] is summed in one fixed order -- four 8-lane accumulators, the 8-element chunk j / 8 of
// row r going to accumulator (j / 8) mod 4, combined as (a0 + a1) + (a2 + a3), the lanes reduced
// pairwise (l, l+4), (l, l+2), (0, 1), then the k % 8 tail in ascending order -- whatever m, n,
// the token grouping or the row range a thread takes. So the rows of a product can be split
// among threads, and a token's result does not depend on the other tokens of its batch. (Each
// ISA keeps one order -- avx2 and scalar this one, the AVX-512 ones their own 16-lane ones --
// and their results differ in rounding: scalar does not fuse multiply and add. One process uses
// one ISA, and an instance's processes inherit EMOE_KERNELS, so its devices agree.)

// Thread safety: pure functions of their arguments.
#ifndef ENGINE_KERNELS_H_
#define ENGINE_KERNELS_H_

#include <cstddef>
#include <cstdint>

#include "hbm/safetensors.h"
#include "vmm/status.h"

namespace emoe::engine::kernels {

enum class Isa { kScalar, kAvx2, kAvx512, kAvx512Bf16 };
const char* IsaName(Isa isa);  // "scalar", "avx2+fma", "avx512", "avx512+bf16"
const char* IsaFlag(Isa isa);  // its EMOE_KERNELS value: "scalar", "avx2", "avx512", "avx512bf16"
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

// Whether DotRows is built for products of many tokens too (prefill): the AVX-512 widening
// kernels' register tiles (avx512; avx512bf16 for f16 and f32 weights). Elsewhere callers take
// BLAS above a few tokens.
bool ManyTokens(Isa isa, hbm::DType dtype);
inline bool ManyTokens(hbm::DType dtype) { return ManyTokens(ActiveIsa(), dtype); }

// An IEEE half as a float (exact: subnormals, infinities and NaNs included).
float HalfToFloat(uint16_t h);

// Reads `bytes` at `p` with the widest loads the ISA has and returns the sum of its 8-byte words
// (mod 2^64) plus the bytes after the last whole word, the same for every ISA: the
// read-bandwidth probe of engine_bench (a result the compiler cannot drop).
uint64_t ReadSum(Isa isa, const void* p, size_t bytes);

}  // namespace emoe::engine::kernels

#endif  // ENGINE_KERNELS_H_
