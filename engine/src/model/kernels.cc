#include "engine/kernels.h"

#include <cpuid.h>
#include <immintrin.h>

#include <algorithm>
#include <bit>
#include <cstdlib>
#include <cstring>
#include <string>
#include <type_traits>

#include "kernels_avx512.h"

namespace emoe::engine::kernels {

namespace {

// ---- scalar: the same lanes and reduction order as the vector path, in portable C++ ----

float WidenBf16(uint16_t v) { return std::bit_cast<float>(static_cast<uint32_t>(v) << 16); }

float ReduceLanes(const float* s) {
  float a[4];
  for (int l = 0; l < 4; ++l) a[l] = s[l] + s[l + 4];
  const float b0 = a[0] + a[2], b1 = a[1] + a[3];
  return b0 + b1;
}

// The weight element types, as template arguments.
enum Kind { kBf16, kF16, kF32 };
template <Kind K>
using Elem = std::conditional_t<K == kF32, float, uint16_t>;

template <Kind K>
float Widen(Elem<K> v) {
  if constexpr (K == kF32) return v;
  if constexpr (K == kF16) return HalfToFloat(v);
  return WidenBf16(v);
}

template <Kind K>
void ScalarRows(const Elem<K>* w, int64_t rows, int64_t k, const float* x, int64_t m, float* y,
                int64_t ldy) {
  const int64_t body = k / 8 * 8;
  for (int64_t r = 0; r < rows; ++r) {
    const Elem<K>* wr = w + r * k;
    for (int64_t t = 0; t < m; ++t) {
      const float* xt = x + t * k;
      float s[4][8] = {};  // accumulator c takes the 8-element chunks j / 8 = c (mod 4)
      for (int64_t j = 0; j < body; j += 8) {
        float* acc = s[(j / 8) % 4];
        for (int l = 0; l < 8; ++l) acc[l] += Widen<K>(wr[j + l]) * xt[j + l];
      }
      float lanes[8];
      for (int l = 0; l < 8; ++l) lanes[l] = (s[0][l] + s[1][l]) + (s[2][l] + s[3][l]);
      float sum = ReduceLanes(lanes);
      for (int64_t j = body; j < k; ++j) sum += Widen<K>(wr[j]) * xt[j];
      y[t * ldy + r] = sum;
    }
  }
}

// ---- AVX2 + FMA: R rows x T tokens per block, one 8-lane accumulator per (row, token) ----

#define EMOE_AVX2 __attribute__((target("avx2,fma,f16c")))

template <Kind K>
EMOE_AVX2 inline __m256 Load8(const Elem<K>* p) {
  if constexpr (K == kF32) {
    return _mm256_loadu_ps(p);
  } else {
    const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    if constexpr (K == kF16) return _mm256_cvtph_ps(h);
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
  }
}

EMOE_AVX2 inline float Reduce8(__m256 v) {  // lanes (l, l+4), then (l, l+2), then (0, 1)
  __m128 a = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  a = _mm_add_ps(a, _mm_movehl_ps(a, a));
  a = _mm_add_ss(a, _mm_movehdup_ps(a));
  return _mm_cvtss_f32(a);
}

// One weight row against T tokens: four 8-lane accumulators per token, chunk j / 8 going to
// accumulator j / 8 mod 4, so the row streams from memory as one sequential read (what this
// generation of hardware prefetchers follows best: 1.45x the bandwidth of 8 interleaved rows on
// a Zen 3 guest) with 4 FMA chains per token in flight.
template <int T, Kind K>
EMOE_AVX2 void RowTokens(const Elem<K>* w, int64_t k, const float* x, float* y, int64_t ldy) {
  __m256 a[T][4];
#pragma GCC unroll 4
  for (int t = 0; t < T; ++t)
#pragma GCC unroll 4
    for (int c = 0; c < 4; ++c) a[t][c] = _mm256_setzero_ps();
  const int64_t body = k / 8 * 8, blocks = k / 32 * 32;
  for (int64_t j = 0; j < blocks; j += 32) {
#pragma GCC unroll 4
    for (int c = 0; c < 4; ++c) {
      const __m256 wv = Load8<K>(w + j + 8 * c);
#pragma GCC unroll 4
      for (int t = 0; t < T; ++t) {
        a[t][c] = _mm256_fmadd_ps(wv, _mm256_loadu_ps(x + t * k + j + 8 * c), a[t][c]);
      }
    }
  }
  for (int64_t j = blocks; j < body; j += 8) {  // 1-3 chunks left: accumulators 0, 1, 2
    const int c = static_cast<int>((j - blocks) / 8);
    const __m256 wv = Load8<K>(w + j);
#pragma GCC unroll 4
    for (int t = 0; t < T; ++t)
      a[t][c] = _mm256_fmadd_ps(wv, _mm256_loadu_ps(x + t * k + j), a[t][c]);
  }
  for (int t = 0; t < T; ++t) {
    float sum =
        Reduce8(_mm256_add_ps(_mm256_add_ps(a[t][0], a[t][1]), _mm256_add_ps(a[t][2], a[t][3])));
    for (int64_t j = body; j < k; ++j) sum += Widen<K>(w[j]) * x[t * k + j];
    y[t * ldy] = sum;
  }
}

// Row by row; the tokens in groups of 3 (12 accumulators), the row staying in L1 between groups.
template <Kind K>
EMOE_AVX2 void Avx2Rows(const Elem<K>* w, int64_t rows, int64_t k, const float* x, int64_t m,
                        float* y, int64_t ldy) {
  for (int64_t r = 0; r < rows; ++r) {
    const Elem<K>* wr = w + r * k;
    int64_t t = 0;
    for (; t + 3 <= m; t += 3) RowTokens<3, K>(wr, k, x + t * k, y + t * ldy + r, ldy);
    if (m - t == 2) RowTokens<2, K>(wr, k, x + t * k, y + t * ldy + r, ldy);
    if (m - t == 1) RowTokens<1, K>(wr, k, x + t * k, y + t * ldy + r, ldy);
  }
}

// The sum of the 8-byte words (mod 2^64), then of the bytes after the last whole word: the same
// value whatever loads compute it.
uint64_t WordSum(const char* c, size_t bytes) {
  uint64_t sum = 0;
  size_t i = 0;
  for (; i + 8 <= bytes; i += 8) {
    uint64_t v;
    std::memcpy(&v, c + i, 8);
    sum += v;
  }
  for (; i < bytes; ++i) sum += static_cast<unsigned char>(c[i]);
  return sum;
}

EMOE_AVX2 uint64_t Avx2ReadSum(const void* p, size_t bytes) {
  const char* c = static_cast<const char*>(p);
  __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
  size_t i = 0;
  for (; i + 128 <= bytes; i += 128) {
    a0 = _mm256_add_epi64(a0, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(c + i)));
    a1 = _mm256_add_epi64(a1, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(c + i + 32)));
    a2 = _mm256_add_epi64(a2, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(c + i + 64)));
    a3 = _mm256_add_epi64(a3, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(c + i + 96)));
  }
  const __m256i s = _mm256_add_epi64(_mm256_add_epi64(a0, a1), _mm256_add_epi64(a2, a3));
  uint64_t lanes[4];
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(lanes), s);
  uint64_t sum = lanes[0] + lanes[1] + lanes[2] + lanes[3];
  return sum + WordSum(c + i, bytes - i);
}

uint64_t ScalarReadSum(const void* p, size_t bytes) {
  return WordSum(static_cast<const char*>(p), bytes);
}

}  // namespace

float HalfToFloat(uint16_t h) {
  const uint32_t sign = (h & 0x8000u) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ff;
  uint32_t u;
  if (exp == 0) {
    if (man == 0) return std::bit_cast<float>(sign);
    int e = -1;  // subnormal: normalize
    uint32_t m = man;
    do {
      m <<= 1;
      ++e;
    } while (!(m & 0x400));
    u = sign | ((127 - 15 - e) << 23) | ((m & 0x3ff) << 13);
  } else if (exp == 31) {
    u = sign | 0x7f800000u | (man << 13);
  } else {
    u = sign | ((exp + 112) << 23) | (man << 13);
  }
  return std::bit_cast<float>(u);
}

// Each instruction set with the name EMOE_KERNELS takes and the one start-up prints.
struct IsaInfo {
  Isa isa;
  const char* flag;
  const char* name;
};
constexpr IsaInfo kIsas[] = {{Isa::kScalar, "scalar", "scalar"},
                             {Isa::kAvx2, "avx2", "avx2+fma"},
                             {Isa::kAvx512, "avx512", "avx512"},
                             {Isa::kAvx512Bf16, "avx512bf16", "avx512+bf16"}};

const char* IsaName(Isa isa) { return kIsas[static_cast<int>(isa)].name; }
const char* IsaFlag(Isa isa) { return kIsas[static_cast<int>(isa)].flag; }

bool IsaSupported(Isa isa) {
  if (isa == Isa::kScalar) return true;
  __builtin_cpu_init();
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  const bool f16c = __get_cpuid(1, &eax, &ebx, &ecx, &edx) && (ecx & bit_F16C) != 0;
  const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && f16c;
  if (isa == Isa::kAvx2) return avx2;
  // AVX512F/BW/VL (the OS saving the zmm state: the runtime checks XCR0 for these).
  const bool avx512 = avx2 && __builtin_cpu_supports("avx512f") &&
                      __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl");
  if (isa == Isa::kAvx512) return avx512;
  // AVX512_BF16: cpuid leaf 7, sub-leaf 1, eax bit 5.
  return avx512 && __get_cpuid_count(7, 1, &eax, &ebx, &ecx, &edx) && (eax & (1u << 5)) != 0;
}

vmm::StatusOr<Isa> SelectIsa() {
  const char* env = std::getenv("EMOE_KERNELS");
  if (env == nullptr || *env == '\0') {
    // avx512 before avx512bf16: widening in a register streams the weights as fast as
    // vdpbf16ps on the two activation halves where the bandwidth is the bound (engine_bench on
    // a Xeon guest with both: 73-75 % of the roofline against 70 %), and keeps fp32 activations.
    for (Isa isa : {Isa::kAvx512, Isa::kAvx512Bf16, Isa::kAvx2}) {
      if (IsaSupported(isa)) return isa;
    }
    return Isa::kScalar;
  }
  const std::string want = env;
  for (const IsaInfo& i : kIsas) {
    if (want != i.flag) continue;
    if (!IsaSupported(i.isa)) {
      return vmm::Status::FailedPrecondition("EMOE_KERNELS='" + want + "': this CPU lacks " +
                                             i.name);
    }
    return i.isa;
  }
  return vmm::Status::InvalidArgument("EMOE_KERNELS='" + want +
                                      "': expected scalar, avx2, avx512 or avx512bf16");
}

Isa ActiveIsa() {
  static const Isa isa = [] {
    vmm::StatusOr<Isa> s = SelectIsa();
    vmm::CheckOk(s.status(), "engine kernels");
    return *s;
  }();
  return isa;
}

void DotRows(Isa isa, const void* w, hbm::DType dtype, int64_t rows, int64_t k, const float* x,
             int64_t m, float* y, int64_t ldy) {
  if (isa == Isa::kAvx512 || isa == Isa::kAvx512Bf16) {
    return avx512::DotRows(isa == Isa::kAvx512Bf16, w, dtype, rows, k, x, m, y, ldy);
  }
  const bool avx2 = isa == Isa::kAvx2;
  switch (dtype) {
    case hbm::DType::kF32: {
      const float* p = static_cast<const float*>(w);
      return avx2 ? Avx2Rows<kF32>(p, rows, k, x, m, y, ldy)
                  : ScalarRows<kF32>(p, rows, k, x, m, y, ldy);
    }
    case hbm::DType::kF16: {
      const uint16_t* p = static_cast<const uint16_t*>(w);
      return avx2 ? Avx2Rows<kF16>(p, rows, k, x, m, y, ldy)
                  : ScalarRows<kF16>(p, rows, k, x, m, y, ldy);
    }
    case hbm::DType::kBF16: {
      const uint16_t* p = static_cast<const uint16_t*>(w);
      return avx2 ? Avx2Rows<kBf16>(p, rows, k, x, m, y, ldy)
                  : ScalarRows<kBf16>(p, rows, k, x, m, y, ldy);
    }
  }
}

bool ManyTokens(Isa isa, hbm::DType dtype) {
  return isa == Isa::kAvx512 || (isa == Isa::kAvx512Bf16 && dtype != hbm::DType::kBF16);
}

uint64_t ReadSum(Isa isa, const void* p, size_t bytes) {
  if (isa == Isa::kAvx512 || isa == Isa::kAvx512Bf16) {
    const size_t blocks = bytes / 256 * 256;
    return avx512::ReadSumBlocks(p, blocks) +
           ScalarReadSum(static_cast<const char*>(p) + blocks, bytes - blocks);
  }
  return isa == Isa::kAvx2 ? Avx2ReadSum(p, bytes) : ScalarReadSum(p, bytes);
}

}  // namespace emoe::engine::kernels
