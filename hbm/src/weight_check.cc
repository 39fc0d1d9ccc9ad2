// The NaN/Inf scan (weight_check.h). Compiled at -O3 (hbm/CMakeLists.txt): the counting loops
// are written to vectorize (no branches, no early exit); the first bad index is looked for only
// in a tensor that has some.
#include "hbm/weight_check.h"

#include <algorithm>
#include <chrono>
#include <cstring>

namespace emoe::hbm {

namespace {

// An IEEE format's bits without the sign: `inf` is the all-ones exponent with a zero mantissa;
// above it, NaN.
template <typename Bits>
struct Format {
  Bits abs_mask;
  Bits inf;
};
constexpr Format<uint16_t> kBf16{0x7fff, 0x7f80};
constexpr Format<uint16_t> kF16{0x7fff, 0x7c00};
constexpr Format<uint32_t> kF32{0x7fffffff, 0x7f800000};

template <typename Bits>
NonFinite Scan(const uint8_t* p, uint64_t n, Format<Bits> f) {
  // Pass 1, over every tensor: how many are not finite. Blocks of 2^16 keep the per-block
  // counter narrow (what the vectorizer wants).
  constexpr uint64_t kBlock = 1 << 16;
  uint64_t bad = 0;
  for (uint64_t start = 0; start < n; start += kBlock) {
    const uint64_t end = std::min(n, start + kBlock);
    uint32_t block_bad = 0;
    for (uint64_t i = start; i < end; ++i) {
      Bits v;
      std::memcpy(&v, p + i * sizeof(Bits), sizeof(Bits));  // any alignment
      block_bad += (v & f.abs_mask) >= f.inf;
    }
    bad += block_bad;
  }
  NonFinite out;
  if (bad == 0) return out;
  // Pass 2, only over a bad tensor: NaN or Inf, and where the first is.
  bool first = true;
  for (uint64_t i = 0; i < n; ++i) {
    Bits v;
    std::memcpy(&v, p + i * sizeof(Bits), sizeof(Bits));
    const Bits a = v & f.abs_mask;
    if (a < f.inf) continue;
    if (first) out.first_index = i;
    first = false;
    (a == f.inf ? out.inf : out.nan) += 1;
  }
  return out;
}

std::string Describe(const WeightToCheck& t, const NonFinite& bad) {
  return "tensor '" + t.name + "' (" + DTypeName(t.dtype) + ", " + t.file + ") has " +
         std::to_string(bad.count()) + " non-finite values (" + std::to_string(bad.nan) + " NaN, " +
         std::to_string(bad.inf) + " Inf), the first at element " + std::to_string(bad.first_index);
}

}  // namespace

NonFinite FindNonFinite(const void* data, uint64_t elements, DType dtype) {
  const auto* p = static_cast<const uint8_t*>(data);
  switch (dtype) {
    case DType::kBF16:
      return Scan(p, elements, kBf16);
    case DType::kF16:
      return Scan(p, elements, kF16);
    case DType::kF32:
      return Scan(p, elements, kF32);
  }
  return {};
}

Status CheckWeightsFinite(const std::vector<WeightToCheck>& tensors, WeightCheckStats* stats) {
  const auto start = std::chrono::steady_clock::now();
  WeightCheckStats s;
  std::string first;
  uint64_t bad_tensors = 0;
  for (const WeightToCheck& t : tensors) {
    const NonFinite bad = FindNonFinite(t.data, t.size_bytes / DTypeSize(t.dtype), t.dtype);
    ++s.tensors;
    s.bytes += t.size_bytes;
    if (bad.count() == 0) continue;
    if (bad_tensors++ == 0) first = Describe(t, bad);
  }
  s.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (stats != nullptr) *stats = s;
  if (bad_tensors == 0) return Status::Ok();
  const uint64_t more = bad_tensors - 1;
  return Status::DataLoss("NaN/Inf in the loaded weights: " + first +
                          (more == 0 ? std::string()
                                     : "; " + std::to_string(more) +
                                           (more == 1 ? " more tensor has" : " more tensors have") +
                                           " some") +
                          "; --check_weights=false (HmmOptions::check_weights) accepts them");
}

}  // namespace emoe::hbm
