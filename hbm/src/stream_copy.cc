// StreamCopy (stream_copy.h): non-temporal stores for the bulk of a large copy, memcpy for the
// unaligned head (up to the destination's first 64-byte line), the tail and small copies.
#include "stream_copy.h"

#include <cstring>

#include "vmm/stats.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace emoe::hbm {

namespace {

#if defined(__x86_64__)

// Each copies n bytes (a multiple of 256) to a 64-byte aligned `dst`, then fences.
__attribute__((target("avx512f"))) void Stream512(uint8_t* dst, const uint8_t* src, uint64_t n) {
  for (uint64_t i = 0; i < n; i += 256) {
    const __m512i a = _mm512_loadu_si512(src + i), b = _mm512_loadu_si512(src + i + 64);
    const __m512i c = _mm512_loadu_si512(src + i + 128), d = _mm512_loadu_si512(src + i + 192);
    _mm512_stream_si512(reinterpret_cast<__m512i*>(dst + i), a);
    _mm512_stream_si512(reinterpret_cast<__m512i*>(dst + i + 64), b);
    _mm512_stream_si512(reinterpret_cast<__m512i*>(dst + i + 128), c);
    _mm512_stream_si512(reinterpret_cast<__m512i*>(dst + i + 192), d);
  }
  _mm_sfence();
}

__attribute__((target("avx2"))) void Stream256(uint8_t* dst, const uint8_t* src, uint64_t n) {
  for (uint64_t i = 0; i < n; i += 128) {
    const auto* s = reinterpret_cast<const __m256i*>(src + i);
    auto* d = reinterpret_cast<__m256i*>(dst + i);
    const __m256i a = _mm256_loadu_si256(s), b = _mm256_loadu_si256(s + 1);
    const __m256i c = _mm256_loadu_si256(s + 2), e = _mm256_loadu_si256(s + 3);
    _mm256_stream_si256(d, a);
    _mm256_stream_si256(d + 1, b);
    _mm256_stream_si256(d + 2, c);
    _mm256_stream_si256(d + 3, e);
  }
  _mm_sfence();
}

void Stream128(uint8_t* dst, const uint8_t* src, uint64_t n) {
  for (uint64_t i = 0; i < n; i += 64) {
    const auto* s = reinterpret_cast<const __m128i*>(src + i);
    auto* d = reinterpret_cast<__m128i*>(dst + i);
    const __m128i a = _mm_loadu_si128(s), b = _mm_loadu_si128(s + 1);
    const __m128i c = _mm_loadu_si128(s + 2), e = _mm_loadu_si128(s + 3);
    _mm_stream_si128(d, a);
    _mm_stream_si128(d + 1, b);
    _mm_stream_si128(d + 2, c);
    _mm_stream_si128(d + 3, e);
  }
  _mm_sfence();
}

using StreamFn = void (*)(uint8_t*, const uint8_t*, uint64_t);

struct Kind {
  StreamFn fn;
  const char* name;
};

const Kind& Picked() {
  static const Kind kind = [] {
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f")) return Kind{Stream512, "avx512 streaming stores"};
    if (__builtin_cpu_supports("avx2")) return Kind{Stream256, "avx2 streaming stores"};
    return Kind{Stream128, "sse2 streaming stores"};
  }();
  return kind;
}

#endif  // __x86_64__

}  // namespace

const char* StreamCopyKind() {
#if defined(__x86_64__)
  return Picked().name;
#else
  return "memcpy";
#endif
}

void StreamCopy(void* dst, const void* src, uint64_t n) {
  vmm::GlobalCounters().bytes_copied.fetch_add(n, std::memory_order_relaxed);
#if defined(__x86_64__)
  if (n >= kStreamMinBytes) {
    auto* d = static_cast<uint8_t*>(dst);
    const auto* s = static_cast<const uint8_t*>(src);
    const uint64_t head = (64 - reinterpret_cast<uintptr_t>(d) % 64) % 64;
    std::memcpy(d, s, head);
    const uint64_t body = (n - head) / 256 * 256;  // a multiple of every kind's stride
    Picked().fn(d + head, s + head, body);
    std::memcpy(d + head + body, s + head + body, n - head - body);
    return;
  }
#endif
  std::memcpy(dst, src, n);
}

}  // namespace emoe::hbm
