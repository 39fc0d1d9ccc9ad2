// The fused decode kernels (engine/kernels.h) on every instruction set this CPU has: against a
// double-precision reference, and the determinism contract the instances rest on (a token's
// output does not depend on the other tokens of the product, nor on the rows a call covers).
#include "engine/kernels.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <bit>
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

namespace emoe::engine::kernels {
namespace {

struct Case {
  Isa isa;
  hbm::DType dtype;
};

std::string Name(const ::testing::TestParamInfo<Case>& info) {
  return std::string(IsaFlag(info.param.isa)) + "_" + hbm::DTypeName(info.param.dtype);
}

// Weights as raw element bytes plus their exact values as doubles.
struct Weights {
  std::vector<uint16_t> w16;
  std::vector<float> w32;
  std::vector<double> exact;
  const void* data(hbm::DType d) const {
    return d == hbm::DType::kF32 ? static_cast<const void*>(w32.data()) : w16.data();
  }
};

// The test's own reading of an IEEE half (normal and subnormal; MakeWeights makes no infinities
// or NaNs), independent of kernels::HalfToFloat, which the kernels under test use.
double F16ToDouble(uint16_t h) {
  const int exp = (h >> 10) & 0x1f, man = h & 0x3ff;
  const double v = exp == 0 ? std::ldexp(man, -24) : std::ldexp(1024 + man, exp - 25);
  return (h & 0x8000) ? -v : v;
}

Weights MakeWeights(hbm::DType dtype, int64_t n, std::mt19937* rng) {
  std::normal_distribution<float> nd(0.0f, 1.0f);
  Weights w;
  for (int64_t i = 0; i < n; ++i) {
    const float v = nd(*rng);
    if (dtype == hbm::DType::kF32) {
      w.w32.push_back(v);
      w.exact.push_back(v);
    } else if (dtype == hbm::DType::kBF16) {
      const uint16_t b = std::bit_cast<uint32_t>(v) >> 16;
      w.w16.push_back(b);
      w.exact.push_back(std::bit_cast<float>(static_cast<uint32_t>(b) << 16));
    } else {
      // Small exact halves: m / 256 for |m| < 1024 (normal and subnormal-free here), and a few
      // subnormals to cover the widening's slow path.
      const int m = static_cast<int>(std::lround(v * 200)) % 1000;
      const double d = m / 256.0;
      uint16_t h = 0;
      if (m != 0) {
        const double a = std::abs(d);
        const int e = std::ilogb(a);
        const int man = static_cast<int>(std::lround(std::ldexp(a, 10 - e))) - 1024;
        h = static_cast<uint16_t>(((e + 15) << 10) | man);
        if (d < 0) h |= 0x8000;
      }
      if (i % 97 == 5) h = 0x0003;  // a subnormal: 3 * 2^-24
      w.w16.push_back(h);
      w.exact.push_back(F16ToDouble(h));
    }
  }
  return w;
}

class KernelsTest : public ::testing::TestWithParam<Case> {
 protected:
  void SetUp() override {
    if (!IsaSupported(GetParam().isa)) GTEST_SKIP() << "this CPU lacks " << IsaName(GetParam().isa);
  }
};

TEST_P(KernelsTest, MatchesDoubleReference) {
  const auto [isa, dtype] = GetParam();
  // fp32 summation of up to 1024 terms; avx512bf16's bf16 products carry the activations as two
  // bf16 halves (16 significant bits: 2^-16 = 1.5e-5 of each term at worst).
  const double tolerance = isa == Isa::kAvx512Bf16 && dtype == hbm::DType::kBF16 ? 2e-5 : 1e-5;
  std::mt19937 rng(7);
  for (int64_t k : {8, 37, 56, 64, 100, 1024}) {
    for (int64_t rows : {1, 4, 7, 8, 13, 33}) {
      const Weights w = MakeWeights(dtype, rows * k, &rng);
      for (int64_t m : {1, 2, 3, 5, 9, 20}) {  // 9 and 20: the register tiles (AVX-512)
        std::vector<float> x(m * k);
        std::normal_distribution<float> nd(0.0f, 1.0f);
        for (float& v : x) v = nd(rng);
        std::vector<float> y(m * rows, NAN);
        DotRows(isa, w.data(dtype), dtype, rows, k, x.data(), m, y.data(), rows);
        for (int64_t t = 0; t < m; ++t) {
          for (int64_t r = 0; r < rows; ++r) {
            double want = 0, mag = 0;
            for (int64_t j = 0; j < k; ++j) {
              want += w.exact[r * k + j] * x[t * k + j];
              mag += std::abs(w.exact[r * k + j] * x[t * k + j]);
            }
            EXPECT_NEAR(y[t * rows + r], want, tolerance * mag + 1e-30)
                << "k=" << k << " rows=" << rows << " m=" << m << " t=" << t << " r=" << r;
          }
        }
      }
    }
  }
}

// Bit for bit: a token alone, a token among others, a row range alone. With AVX-512, 23 tokens
// and 29 rows take full and partial register tiles (4 x 6 down to 1 x 5) where a token alone
// takes tiles of one token.
TEST_P(KernelsTest, OutputsDoNotDependOnTheRestOfTheProduct) {
  const auto [isa, dtype] = GetParam();
  std::mt19937 rng(11);
  const int64_t rows = 29, m = 23;
  for (int64_t k : {37, 200, 1030}) {
    const Weights w = MakeWeights(dtype, rows * k, &rng);
    std::vector<float> x(m * k);
    std::normal_distribution<float> nd(0.0f, 1.0f);
    for (float& v : x) v = nd(rng);
    std::vector<float> all(m * rows);
    DotRows(isa, w.data(dtype), dtype, rows, k, x.data(), m, all.data(), rows);
    for (int64_t t = 0; t < m; ++t) {
      std::vector<float> one(rows);
      DotRows(isa, w.data(dtype), dtype, rows, k, &x[t * k], 1, one.data(), rows);
      EXPECT_EQ(0, std::memcmp(one.data(), &all[t * rows], rows * sizeof(float)))
          << "k " << k << " token " << t;
    }
    const int64_t elem = dtype == hbm::DType::kF32 ? 4 : 2;
    for (auto [r0, n] : {std::pair<int64_t, int64_t>{0, 3}, {3, 10}, {13, 16}}) {
      std::vector<float> part(m * rows, NAN);
      DotRows(isa, static_cast<const char*>(w.data(dtype)) + r0 * k * elem, dtype, n, k, x.data(),
              m, &part[r0], rows);
      for (int64_t t = 0; t < m; ++t) {
        EXPECT_EQ(0, std::memcmp(&part[t * rows + r0], &all[t * rows + r0], n * sizeof(float)))
            << "k " << k << " rows " << r0 << ".." << r0 + n << " token " << t;
      }
    }
  }
}

TEST_P(KernelsTest, ReadSumIsTheWordSum) {
  std::vector<unsigned char> buf(1000 + 77);
  std::mt19937 rng(3);
  for (auto& b : buf) b = rng();
  for (size_t n :
       {size_t{0}, size_t{7}, size_t{8}, size_t{127}, size_t{128}, size_t{300}, buf.size()}) {
    uint64_t want = 0;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
      uint64_t v;
      std::memcpy(&v, &buf[i], 8);
      want += v;
    }
    for (; i < n; ++i) want += buf[i];
    EXPECT_EQ(ReadSum(GetParam().isa, buf.data(), n), want) << n << " bytes";
  }
}

INSTANTIATE_TEST_SUITE_P(
    All, KernelsTest, ::testing::ValuesIn([] {
      std::vector<Case> cases;
      for (Isa isa : {Isa::kScalar, Isa::kAvx2, Isa::kAvx512, Isa::kAvx512Bf16}) {
        for (hbm::DType d : {hbm::DType::kBF16, hbm::DType::kF16, hbm::DType::kF32})
          cases.push_back({isa, d});
      }
      return cases;
    }()),
    Name);

// The bf16 halves carry 16 significant bits: against a float product of activations rounded to
// one bf16 (what a plain vdpbf16ps kernel computes) the error is far smaller.
TEST(KernelsAvx512Bf16Test, ActivationsKeepSixteenBits) {
  if (!IsaSupported(Isa::kAvx512Bf16)) GTEST_SKIP() << "this CPU lacks avx512+bf16";
  const int64_t k = 4096;
  std::vector<uint16_t> w(k, 0x3f80);  // 1.0
  std::vector<float> x(k);
  // 1 + (1..7) * 2^-12: one bf16 (7 bits after the point) would round every term down to 1.
  for (int64_t j = 0; j < k; ++j) x[j] = 1.0f + static_cast<float>(j % 7 + 1) * 0x1p-12f;
  double want = 0;
  for (float v : x) want += v;
  float y = 0;
  DotRows(Isa::kAvx512Bf16, w.data(), hbm::DType::kBF16, 1, k, x.data(), 1, &y, 1);
  // One bf16 would be 3.9e-4 low here (relatively); two halves keep every term exact.
  EXPECT_NEAR(y, want, 1e-6 * want);
}

// Which kernels the forward pass may give prefill-sized products (the others take BLAS there).
TEST(ManyTokensTest, TheAvx512WideningKernels) {
  for (hbm::DType d : {hbm::DType::kBF16, hbm::DType::kF16, hbm::DType::kF32}) {
    EXPECT_TRUE(ManyTokens(Isa::kAvx512, d));
    EXPECT_FALSE(ManyTokens(Isa::kAvx2, d));
    EXPECT_FALSE(ManyTokens(Isa::kScalar, d));
    EXPECT_EQ(ManyTokens(Isa::kAvx512Bf16, d), d != hbm::DType::kBF16) << "vdpbf16ps: rows only";
  }
}

TEST(SelectIsaTest, TheEnvironmentChoosesAndBadValuesAreNamed) {
  ASSERT_EQ(setenv("EMOE_KERNELS", "scalar", 1), 0);
  EXPECT_EQ(*SelectIsa(), Isa::kScalar);
  ASSERT_EQ(setenv("EMOE_KERNELS", "sse9", 1), 0);
  auto bad = SelectIsa();
  EXPECT_EQ(bad.status().code(), vmm::StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("EMOE_KERNELS='sse9'"), std::string::npos);
  ASSERT_EQ(setenv("EMOE_KERNELS", "avx2", 1), 0);
  auto avx2 = SelectIsa();
  if (IsaSupported(Isa::kAvx2)) {
    EXPECT_EQ(*avx2, Isa::kAvx2);
  } else {
    EXPECT_EQ(avx2.status().code(), vmm::StatusCode::kFailedPrecondition);
  }
  for (Isa isa : {Isa::kAvx512, Isa::kAvx512Bf16}) {
    ASSERT_EQ(setenv("EMOE_KERNELS", IsaFlag(isa), 1), 0);
    auto got = SelectIsa();
    if (IsaSupported(isa)) {
      EXPECT_EQ(*got, isa);
    } else {
      EXPECT_EQ(got.status().code(), vmm::StatusCode::kFailedPrecondition);
      EXPECT_NE(got.status().message().find(IsaName(isa)), std::string::npos);
    }
  }
  ASSERT_EQ(unsetenv("EMOE_KERNELS"), 0);
  Isa best = Isa::kScalar;  // the widest the CPU has (avx512bf16 only when asked for)
  for (Isa isa : {Isa::kAvx2, Isa::kAvx512})
    if (IsaSupported(isa)) best = isa;
  EXPECT_EQ(*SelectIsa(), best);
}

}  // namespace
}  // namespace emoe::engine::kernels
