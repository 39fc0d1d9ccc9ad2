#include "kernels_avx512.h"

#include <immintrin.h>

// GCC 12's AVX-512 intrinsics initialise their "undefined" operands from themselves, which
// -Wuninitialized reports wherever they are inlined (GCC bug 105593, fixed in GCC 13).
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ < 13
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#include <algorithm>
#include <array>
#include <type_traits>
#include <utility>
#include <vector>

namespace emoe::engine::kernels::avx512 {

namespace {

#define EMOE_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx2,fma,f16c")))
#define EMOE_AVX512BF16 \
  __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16,avx2,fma,f16c")))

enum Kind { kBf16, kF16, kF32 };
template <Kind K>
using Elem = std::conditional_t<K == kF32, float, uint16_t>;

// 16 weights at p as floats; with a mask, the masked-off ones are zero and not read.
template <Kind K>
EMOE_AVX512 inline __m512 Load16(const Elem<K>* p, __mmask16 mask) {
  if constexpr (K == kF32) {
    return _mm512_maskz_loadu_ps(mask, p);
  } else {
    const __m256i h = _mm256_maskz_loadu_epi16(mask, p);
    if constexpr (K == kF16) return _mm512_cvtph_ps(h);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
  }
}

// Lanes (l, l+8), (l, l+4), (l, l+2), (0, 1).
EMOE_AVX512 inline float Reduce16(__m512 v) {
  const __m256 hi = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1));
  __m256 s8 = _mm256_add_ps(_mm512_castps512_ps256(v), hi);
  __m128 a = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps(s8, 1));
  a = _mm_add_ps(a, _mm_movehl_ps(a, a));
  a = _mm_add_ss(a, _mm_movehdup_ps(a));
  return _mm_cvtss_f32(a);
}

EMOE_AVX512 inline float Combine(const __m512* a) {
  return Reduce16(_mm512_add_ps(_mm512_add_ps(a[0], a[1]), _mm512_add_ps(a[2], a[3])));
}

// ---- widening: R rows x T tokens per register tile ----
//
// Every output keeps four accumulators (chunk i of its row to accumulator i mod 4). Holding
// all four for R x T outputs would take 4 R T registers, so a tile runs them one after another:
// pass c sums the chunks c, c + 4, ... in ascending order for all R x T outputs at once, parks
// the sums, and the last pass combines them as Combine does. Per chunk: R weight loads (widened
// in a register), T activation loads, R x T FMAs. The order of every output is the one in
// kernels_avx512.h whatever the tile's shape, so tiles of any size can share a product. (A
// kernel that kept one row's four accumulators per token and streamed the row once was slower
// at every token count on a Zen guest: 25-33 GB/s of weights at one token against 38-47, half
// the multiply rate from four tokens up, in a scratch microbenchmark of 64 MiB of bf16 rows.)
// Pass c of a tile: the chunks c, c + 4, ... of R rows against T tokens, summed into out[r][t].
// `ahead`, when not null: `ahead_lines` cache lines there are prefetched over the pass's
// iterations (the next tile's weights, so that they stream in while this one computes).
template <int R, int T, Kind K>
EMOE_AVX512 inline void TilePass(const Elem<K>* w, int64_t k, const float* x, int c,
                                 float (*out)[T][16], const char* ahead, int64_t ahead_lines) {
  const int64_t whole = k / 16, chunks = (k + 15) / 16;
  const __mmask16 tail = static_cast<__mmask16>((1u << (k % 16)) - 1);  // the partial chunk's
  __m512 a[R][T];
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 6
    for (int t = 0; t < T; ++t) a[r][t] = _mm512_setzero_ps();
  const int64_t per_iteration = ahead == nullptr ? 0 : ahead_lines / ((chunks - c + 3) / 4) + 1;
  int64_t fetched = 0;
  // One loop for the whole chunks and the partial last one (a mask register either way).
  for (int64_t i = c; i < chunks; i += 4) {
    for (int64_t p = 0; p < per_iteration && fetched < ahead_lines; ++p, ++fetched) {
      _mm_prefetch(ahead + 64 * fetched, _MM_HINT_T0);
    }
    const int64_t j = i * 16;
    const __mmask16 mask = i < whole ? __mmask16{0xffff} : tail;
    __m512 wv[R];
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) wv[r] = Load16<K>(w + r * k + j, mask);
#pragma GCC unroll 6
    for (int t = 0; t < T; ++t) {
      const __m512 xv = _mm512_maskz_loadu_ps(mask, x + t * k + j);
#pragma GCC unroll 4
      for (int r = 0; r < R; ++r) a[r][t] = _mm512_fmadd_ps(wv[r], xv, a[r][t]);
    }
  }
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 6
    for (int t = 0; t < T; ++t) _mm512_store_ps(out[r][t], a[r][t]);
}

template <int R, int T, Kind K>
EMOE_AVX512 void WidenTile(const Elem<K>* w, int64_t k, const float* x, float* y, int64_t ldy,
                           const void* ahead, int64_t ahead_bytes) {
  alignas(64) float part[4][R][T][16];
  TilePass<R, T, K>(w, k, x, 0, part[0], static_cast<const char*>(ahead), ahead_bytes / 64);
  for (int c = 1; c < 4; ++c) TilePass<R, T, K>(w, k, x, c, part[c], nullptr, 0);
  for (int r = 0; r < R; ++r) {
    for (int t = 0; t < T; ++t) {
      const __m512 sums[4] = {_mm512_load_ps(part[0][r][t]), _mm512_load_ps(part[1][r][t]),
                              _mm512_load_ps(part[2][r][t]), _mm512_load_ps(part[3][r][t])};
      y[t * ldy + r] = Combine(sums);
    }
  }
}

template <Kind K>
using TileFn = void (*)(const Elem<K>*, int64_t, const float*, float*, int64_t, const void*,
                        int64_t);
constexpr int kTileRows = 4, kTileTokens = 6;

template <Kind K, int R, int... Ts>
constexpr std::array<TileFn<K>, sizeof...(Ts)> TileRow(std::integer_sequence<int, Ts...>) {
  return {&WidenTile<R, Ts + 1, K>...};
}
template <Kind K, int... Rs>
constexpr std::array<std::array<TileFn<K>, kTileTokens>, sizeof...(Rs)> TileTable(
    std::integer_sequence<int, Rs...>) {
  return {TileRow<K, Rs + 1>(std::make_integer_sequence<int, kTileTokens>{})...};
}

// Tokens in tiles of kTileTokens x kTileRows over a block of tokens whose activations stay in
// the L2 cache while every weight row passes by.
template <Kind K>
EMOE_AVX512 void WidenRows(const Elem<K>* w, int64_t rows, int64_t k, const float* x, int64_t m,
                           float* y, int64_t ldy) {
  static constexpr auto table = TileTable<K>(std::make_integer_sequence<int, kTileRows>{});
  const int64_t block =
      std::max<int64_t>(kTileTokens, (256 << 10) / (4 * k) / kTileTokens * kTileTokens);
  for (int64_t t0 = 0; t0 < m; t0 += block) {
    const int64_t tm = std::min(block, m - t0);
    for (int64_t r = 0; r < rows; r += kTileRows) {
      const int64_t rr = std::min<int64_t>(kTileRows, rows - r);
      // The first token tile of a row block fetches the next row block's weights.
      const int64_t next = std::min<int64_t>(kTileRows, rows - r - rr);
      const void* ahead = next > 0 ? w + (r + rr) * k : nullptr;
      for (int64_t t = t0; t < t0 + tm; t += kTileTokens) {
        const int64_t tt = std::min<int64_t>(kTileTokens, t0 + tm - t);
        table[rr - 1][tt - 1](w + r * k, k, x + t * k, y + t * ldy + r, ldy, ahead,
                              next * k * static_cast<int64_t>(sizeof(Elem<K>)));
        ahead = nullptr;
      }
    }
  }
}

// ---- bf16 weights by vdpbf16ps: the activations as two bf16 halves ----

EMOE_AVX512BF16 inline __m512bh AsBh(__m512i v) { return (__m512bh)v; }

// hi = x rounded to bf16 (nearest even), lo = (x - hi) rounded to bf16; the subtraction is
// exact. (A non-finite x gives a NaN product, as an infinite activation has no meaning here.)
EMOE_AVX512BF16 void Split(const float* x, int64_t n, uint16_t* hi, uint16_t* lo) {
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 mask =
        n - i >= 16 ? __mmask16{0xffff} : static_cast<__mmask16>((1u << (n - i)) - 1);
    const __m512 v = _mm512_maskz_loadu_ps(mask, x + i);
    const __m256i h = (__m256i)_mm512_cvtneps_pbh(v);
    const __m512 back = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
    const __m256i l = (__m256i)_mm512_cvtneps_pbh(_mm512_sub_ps(v, back));
    _mm256_mask_storeu_epi16(hi + i, mask, h);
    _mm256_mask_storeu_epi16(lo + i, mask, l);
  }
}

template <int T>
EMOE_AVX512BF16 void DotBf16Row(const uint16_t* w, int64_t k, const uint16_t* hi,
                                const uint16_t* lo, float* y, int64_t ldy) {
  __m512 a[T][4];
#pragma GCC unroll 4
  for (int t = 0; t < T; ++t)
#pragma GCC unroll 4
    for (int c = 0; c < 4; ++c) a[t][c] = _mm512_setzero_ps();
  auto step = [&](__m512i wv, int c, int64_t j, __mmask32 mask) EMOE_AVX512BF16 {
#pragma GCC unroll 4
    for (int t = 0; t < T; ++t) {
      a[t][c] =
          _mm512_dpbf16_ps(a[t][c], AsBh(wv), AsBh(_mm512_maskz_loadu_epi16(mask, lo + t * k + j)));
      a[t][c] =
          _mm512_dpbf16_ps(a[t][c], AsBh(wv), AsBh(_mm512_maskz_loadu_epi16(mask, hi + t * k + j)));
    }
  };
  const int64_t body = k / 32 * 32, blocks = k / 128 * 128;
  for (int64_t j = 0; j < blocks; j += 128) {
#pragma GCC unroll 4
    for (int c = 0; c < 4; ++c)
      step(_mm512_loadu_si512(w + j + 32 * c), c, j + 32 * c, ~__mmask32{0});
  }
  int c = 0;
  for (int64_t j = blocks; j < body; j += 32, ++c)
    step(_mm512_loadu_si512(w + j), c, j, ~__mmask32{0});
  if (body < k) {
    const __mmask32 mask = static_cast<__mmask32>((uint64_t{1} << (k - body)) - 1);
    step(_mm512_maskz_loadu_epi16(mask, w + body), c, body, mask);
  }
  for (int t = 0; t < T; ++t) y[t * ldy] = Combine(a[t]);
}

EMOE_AVX512BF16 void DotBf16Rows(const uint16_t* w, int64_t rows, int64_t k, const float* x,
                                 int64_t m, float* y, int64_t ldy) {
  thread_local std::vector<uint16_t> hi, lo;  // grows to the largest product a thread has seen
  if (hi.size() < static_cast<size_t>(m * k)) {
    hi.resize(m * k);
    lo.resize(m * k);
  }
  Split(x, m * k, hi.data(), lo.data());
  for (int64_t r = 0; r < rows; ++r) {
    const uint16_t* wr = w + r * k;
    float* yr = y + r;
    int64_t t = 0;
    for (; t + 4 <= m; t += 4) DotBf16Row<4>(wr, k, &hi[t * k], &lo[t * k], yr + t * ldy, ldy);
    if (m - t == 3) DotBf16Row<3>(wr, k, &hi[t * k], &lo[t * k], yr + t * ldy, ldy);
    if (m - t == 2) DotBf16Row<2>(wr, k, &hi[t * k], &lo[t * k], yr + t * ldy, ldy);
    if (m - t == 1) DotBf16Row<1>(wr, k, &hi[t * k], &lo[t * k], yr + t * ldy, ldy);
  }
}

}  // namespace

void DotRows(bool bf16_dot, const void* w, hbm::DType dtype, int64_t rows, int64_t k,
             const float* x, int64_t m, float* y, int64_t ldy) {
  switch (dtype) {
    case hbm::DType::kF32:
      return WidenRows<kF32>(static_cast<const float*>(w), rows, k, x, m, y, ldy);
    case hbm::DType::kF16:
      return WidenRows<kF16>(static_cast<const uint16_t*>(w), rows, k, x, m, y, ldy);
    case hbm::DType::kBF16: {
      const uint16_t* p = static_cast<const uint16_t*>(w);
      return bf16_dot ? DotBf16Rows(p, rows, k, x, m, y, ldy)
                      : WidenRows<kBf16>(p, rows, k, x, m, y, ldy);
    }
  }
}

EMOE_AVX512 uint64_t ReadSumBlocks(const void* p, size_t bytes) {
  const char* c = static_cast<const char*>(p);
  __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0;
  for (size_t i = 0; i + 256 <= bytes; i += 256) {
    a0 = _mm512_add_epi64(a0, _mm512_loadu_si512(c + i));
    a1 = _mm512_add_epi64(a1, _mm512_loadu_si512(c + i + 64));
    a2 = _mm512_add_epi64(a2, _mm512_loadu_si512(c + i + 128));
    a3 = _mm512_add_epi64(a3, _mm512_loadu_si512(c + i + 192));
  }
  const __m512i s = _mm512_add_epi64(_mm512_add_epi64(a0, a1), _mm512_add_epi64(a2, a3));
  return static_cast<uint64_t>(_mm512_reduce_add_epi64(s));
}

}  // namespace emoe::engine::kernels::avx512
