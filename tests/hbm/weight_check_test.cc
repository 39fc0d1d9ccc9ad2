// hbm/weight_check.h: NaN and Inf found in each float format, and a load that has some refused
// naming the tensor (or accepted with check_weights off).
#include "hbm/weight_check.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>

#include "hbm/hmm.h"
#include "test_files.h"

namespace emoe::hbm {
namespace {

using testing::ScratchDir;

std::string F32Bytes(const std::vector<float>& v) {
  std::string s(v.size() * 4, '\0');
  std::memcpy(s.data(), v.data(), s.size());
  return s;
}

std::string U16Bytes(const std::vector<uint16_t>& v) {
  std::string s(v.size() * 2, '\0');
  std::memcpy(s.data(), v.data(), s.size());
  return s;
}

TEST(WeightCheckTest, FindsNanAndInfInEachFormat) {
  const float inf = std::numeric_limits<float>::infinity();
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float big = std::numeric_limits<float>::max();
  // Finite extremes are not flagged; -Inf and NaN with any payload are.
  std::string f32 = F32Bytes({1, -big, big, 0, -0.0f, 1e-45f, -inf, nan, 2});
  NonFinite r = FindNonFinite(f32.data(), 9, DType::kF32);
  EXPECT_EQ(r.inf, 1u);
  EXPECT_EQ(r.nan, 1u);
  EXPECT_EQ(r.first_index, 6u);
  // BF16: 0x7f7f is the largest finite, 0x7f80 +Inf, 0xff80 -Inf, 0x7fc1 / 0xffff NaN.
  std::string bf16 = U16Bytes({0x3f80, 0x7f7f, 0xff7f, 0x7f80, 0x7fc1, 0xff80, 0xffff});
  r = FindNonFinite(bf16.data(), 7, DType::kBF16);
  EXPECT_EQ(r.inf, 2u);
  EXPECT_EQ(r.nan, 2u);
  EXPECT_EQ(r.first_index, 3u);
  // F16: 0x7bff is the largest finite, 0x7c00 +Inf, 0xfc00 -Inf, 0x7e00 NaN.
  std::string f16 = U16Bytes({0x7bff, 0xfbff, 0x3c00, 0x7e00, 0xfc00, 0x7c00});
  r = FindNonFinite(f16.data(), 6, DType::kF16);
  EXPECT_EQ(r.inf, 2u);
  EXPECT_EQ(r.nan, 1u);
  EXPECT_EQ(r.first_index, 3u);
  // Unaligned data, and counts past one 2^16-element block.
  std::string big_bf16(1 + 2 * 200000, '\0');
  const uint16_t nan16 = 0x7fc0;
  for (uint64_t i : {70000u, 150001u, 199999u}) std::memcpy(&big_bf16[1 + 2 * i], &nan16, 2);
  r = FindNonFinite(big_bf16.data() + 1, 200000, DType::kBF16);
  EXPECT_EQ(r.nan, 3u);
  EXPECT_EQ(r.first_index, 70000u);
  EXPECT_EQ(FindNonFinite(big_bf16.data() + 1, 70000, DType::kBF16).count(), 0u);
}

TEST(WeightCheckTest, ErrorNamesTheFirstBadTensorAndCountsTheRest) {
  std::string good = F32Bytes({1, 2, 3});
  std::string bad1 =
      F32Bytes({1, std::nanf(""), std::nanf(""), -std::numeric_limits<float>::infinity()});
  std::string bad2 = U16Bytes({0x7f80});
  WeightCheckStats stats;
  Status s = CheckWeightsFinite({{"good", DType::kF32, good.data(), good.size(), "/m/a"},
                                 {"bad1", DType::kF32, bad1.data(), bad1.size(), "/m/a"},
                                 {"bad2", DType::kBF16, bad2.data(), bad2.size(), "/m/b"}},
                                &stats);
  EXPECT_EQ(s.code(), vmm::StatusCode::kDataLoss);
  EXPECT_EQ(s.message(),
            "NaN/Inf in the loaded weights: tensor 'bad1' (F32, /m/a) has 3 non-finite values (2 "
            "NaN, 1 Inf), the first at element 1; 1 more tensor has some; --check_weights=false "
            "(HmmOptions::check_weights) accepts them");
  EXPECT_EQ(stats.tensors, 3u);
  EXPECT_EQ(stats.bytes, good.size() + bad1.size() + bad2.size());
  EXPECT_TRUE(CheckWeightsFinite({{"good", DType::kF32, good.data(), good.size(), "/m/a"}}).ok());
}

HmmOptions Options(bool check) {
  HmmOptions o;
  o.memory.usage_bytes = {8 << 20, 0, 0};
  o.memory.page_size = vmm::PageSizePolicy::kSmall;
  o.copy_threads_per_device = 1;
  o.check_weights = check;
  return o;
}

std::vector<DeviceSpec> TwoDevices() {
  std::vector<DeviceSpec> out(2);
  for (int i = 0; i < 2; ++i) {
    out[i].id = i;
    out[i].cpus = {0};
    out[i].capacity_bytes = 16 << 20;
  }
  return out;
}

// A NaN in one weight of a checkpoint: the load is refused naming it (nothing registered), and
// accepted as it is with check_weights off; a clean load reports what was scanned.
TEST(WeightCheckTest, LoadWithANanIsRefusedUnlessTheCheckIsOff) {
  ScratchDir dir;
  std::string w(2 * 4096, '\0');
  for (size_t i = 0; i < 4096; ++i) {
    const uint16_t one = 0x3f80;
    std::memcpy(&w[2 * i], &one, 2);
  }
  const std::string clean = w;
  const uint16_t nan16 = 0x7fc0;
  std::memcpy(&w[2 * 1234], &nan16, 2);
  const std::string path = dir.File("model.safetensors");
  ASSERT_TRUE(WriteSafetensors(path, {{"layers.0.w", DType::kBF16, {64, 64}, w},
                                      {"norm", DType::kBF16, {4096}, clean}})
                  .ok());
  auto ckpt = OpenCheckpoint(path);
  ASSERT_TRUE(ckpt.ok()) << ckpt.status().ToString();
  auto hmm = Hmm::CreateWithDevices(TwoDevices(), Options(true));
  ASSERT_TRUE(hmm.ok()) << hmm.status().ToString();
  auto load = (*hmm)->LoadCheckpoint(*ckpt, ReplicateEverywhere({0, 1}), "p/");
  EXPECT_EQ(load.status().code(), vmm::StatusCode::kDataLoss);
  EXPECT_NE(load.status().message().find("tensor 'layers.0.w' (BF16, " + path +
                                         ") has 1 non-finite values (1 NaN, 0 Inf), the first at "
                                         "element 1234"),
            std::string::npos)
      << load.status().message();
  EXPECT_TRUE((*hmm)->List().empty()) << "a refused load registers nothing";
  EXPECT_EQ((*hmm)->device(0).Stats().used_bytes, 0u);

  auto off = Hmm::CreateWithDevices(TwoDevices(), Options(false));
  ASSERT_TRUE(off.ok());
  auto accepted = (*off)->LoadCheckpoint(*ckpt, ReplicateEverywhere({0, 1}));
  ASSERT_TRUE(accepted.ok()) << accepted.status().ToString();
  EXPECT_EQ(accepted->bytes_checked, 0u);
  auto rec = (*off)->Find("layers.0.w", 1);
  ASSERT_TRUE(rec.ok());
  EXPECT_EQ(std::memcmp(rec->data(), w.data(), w.size()), 0) << "loaded as it is";

  // A clean checkpoint: scanned once (not per replica), and the report says so.
  ScratchDir d2;
  ASSERT_TRUE(
      WriteSafetensors(d2.File("m.safetensors"), {{"w", DType::kBF16, {4096}, clean}}).ok());
  auto good = OpenCheckpoint(d2.File("m.safetensors"));
  ASSERT_TRUE(good.ok());
  auto checked = (*hmm)->LoadCheckpoint(*good, ReplicateEverywhere({0, 1}));
  ASSERT_TRUE(checked.ok()) << checked.status().ToString();
  EXPECT_EQ(checked->bytes_checked, clean.size());
  EXPECT_NE(checked->ToString().find("checked for NaN/Inf"), std::string::npos)
      << checked->ToString();
}

}  // namespace
}  // namespace emoe::hbm
