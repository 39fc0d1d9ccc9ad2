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

// The bulk of a copy goes four 4 KiB pages at a time, a 128-byte line pair of each in turn with
// the source prefetched two steps ahead (glibc's large memcpy does the same): four streams of
// loads keep more DRAM pages open than one, 9.9-11.1 GB/s on this VM where one stream moves
// 8.2-9.2. kBlock bytes per round; the rest of the body line by line.
constexpr uint64_t kPage = 4096, kBlock = 4 * kPage;

// Each copies n bytes (a multiple of 256) to a 64-byte aligned `dst`, then fences.
__attribute__((target("avx512f"))) void Stream512(uint8_t* dst, const uint8_t* src, uint64_t n) {
  const uint64_t blocks = n / kBlock * kBlock;
  for (uint64_t base = 0; base < blocks; base += kBlock) {
    for (uint64_t off = 0; off < kPage; off += 128) {
      for (uint64_t p = base + off; p < base + kBlock; p += kPage) {
        _mm_prefetch(reinterpret_cast<const char*>(src + p + 256), _MM_HINT_T0);
        const __m512i a = _mm512_loadu_si512(src + p), b = _mm512_loadu_si512(src + p + 64);
        _mm512_stream_si512(reinterpret_cast<__m512i*>(dst + p), a);
        _mm512_stream_si512(reinterpret_cast<__m512i*>(dst + p + 64), b);
      }
    }
  }
  for (uint64_t i = blocks; i < n; i += 256) {
    const __m512i a = _mm512_loadu_si512(src + i), b = _mm512_loadu_si512(src + i + 64);
    const __m512i c = _mm512_loadu_si512(src + i + 128), d = _mm512_loadu_si512(src + i + 192);
    _mm512_stream_si512(reinterpret_cast<__m512i*>(dst + i), a);
    _mm512_stream_si512(reinterpret_cast<__m512i*>(dst + i + 64), b);
    _mm512_stream_si512(reinterpret_cast<__m512i*>(dst + i + 128), c);
    _mm512_stream_si512(reinterpret_cast<__m512i*>(dst + i + 192), d);
  }
  _mm_sfence();
}

// 128 bytes from `src` to `dst` (32-byte aligned) with AVX2 streaming stores.
__attribute__((target("avx2"))) inline void Line256(uint8_t* dst, const uint8_t* src) {
  const auto* s = reinterpret_cast<const __m256i*>(src);
  auto* d = reinterpret_cast<__m256i*>(dst);
  const __m256i a = _mm256_loadu_si256(s), b = _mm256_loadu_si256(s + 1);
  const __m256i c = _mm256_loadu_si256(s + 2), e = _mm256_loadu_si256(s + 3);
  _mm256_stream_si256(d, a);
  _mm256_stream_si256(d + 1, b);
  _mm256_stream_si256(d + 2, c);
  _mm256_stream_si256(d + 3, e);
}

__attribute__((target("avx2"))) void Stream256(uint8_t* dst, const uint8_t* src, uint64_t n) {
  const uint64_t blocks = n / kBlock * kBlock;
  for (uint64_t base = 0; base < blocks; base += kBlock) {
    for (uint64_t off = 0; off < kPage; off += 128) {
      for (uint64_t p = base + off; p < base + kBlock; p += kPage) {
        _mm_prefetch(reinterpret_cast<const char*>(src + p + 256), _MM_HINT_T0);
        Line256(dst + p, src + p);
      }
    }
  }
  for (uint64_t i = blocks; i < n; i += 128) Line256(dst + i, src + i);
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

#endif  // __x86_64__

}  // namespace

bool StreamKindSupported(StreamKind kind) {
#if defined(__x86_64__)
  __builtin_cpu_init();
  switch (kind) {
    case StreamKind::kAvx512:
      return __builtin_cpu_supports("avx512f");
    case StreamKind::kAvx2:
      return __builtin_cpu_supports("avx2");
    case StreamKind::kSse2:
    case StreamKind::kMemcpy:
      return true;
  }
  return false;
#else
  return kind == StreamKind::kMemcpy;
#endif
}

StreamKind BestStreamKind() {
  static const StreamKind best = [] {
    for (StreamKind k : {StreamKind::kAvx512, StreamKind::kAvx2, StreamKind::kSse2}) {
      if (StreamKindSupported(k)) return k;
    }
    return StreamKind::kMemcpy;
  }();
  return best;
}

const char* StreamKindName(StreamKind kind) {
  switch (kind) {
    case StreamKind::kAvx512:
      return "avx512 streaming stores";
    case StreamKind::kAvx2:
      return "avx2 streaming stores";
    case StreamKind::kSse2:
      return "sse2 streaming stores";
    case StreamKind::kMemcpy:
      return "memcpy";
  }
  return "?";
}

void StreamCopyAs(StreamKind kind, void* dst, const void* src, uint64_t n) {
  vmm::GlobalCounters().bytes_copied.fetch_add(n, std::memory_order_relaxed);
#if defined(__x86_64__)
  if (n >= kStreamMinBytes && kind != StreamKind::kMemcpy) {
    auto* d = static_cast<uint8_t*>(dst);
    const auto* s = static_cast<const uint8_t*>(src);
    const uint64_t head = (64 - reinterpret_cast<uintptr_t>(d) % 64) % 64;
    std::memcpy(d, s, head);
    const uint64_t body = (n - head) / 256 * 256;  // a multiple of every kind's stride
    if (kind == StreamKind::kAvx512) {
      Stream512(d + head, s + head, body);
    } else if (kind == StreamKind::kAvx2) {
      Stream256(d + head, s + head, body);
    } else {
      Stream128(d + head, s + head, body);
    }
    std::memcpy(d + head + body, s + head + body, n - head - body);
    return;
  }
#else
  (void)kind;
#endif
  std::memcpy(dst, src, n);
}

void StreamCopy(void* dst, const void* src, uint64_t n) {
  StreamCopyAs(BestStreamKind(), dst, src, n);
}

}  // namespace emoe::hbm
