// The fixture of HmmControl's contract tests: each test runs against both implementations,
// LocalHmmControl over an Hmm in this process (Kind::kLocal) and RemoteHmmControl driving a real
// hmmd child process (Kind::kRemote, HMMD_PATH), on two small devices with a checkpoint of dense
// tensors and two experts (Table()). Used by remote_control_test.cc and copy_batch_test.cc, each
// of which instantiates its own suites.
#ifndef TESTS_HBM_CONTROL_FIXTURE_H_
#define TESTS_HBM_CONTROL_FIXTURE_H_

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "hbm/control.h"
#include "hbm/remote_control.h"
#include "test_files.h"
#include "vmm/host.h"

namespace emoe::hbm {

inline constexpr uint64_t kMiB = 1 << 20;
inline constexpr uint64_t kExpertsArena = 1 * kMiB;
inline constexpr uint64_t kKvArena = 2 * kMiB;

// Two 16 MiB devices on the first node, 4 KiB pages: runs anywhere.
inline HmmOptions SmallOptions() {
  HmmOptions o;
  o.devices.devices_per_node = 2;
  o.devices.nodes = {vmm::NumaNodes().at(0).id};
  o.devices.capacity_bytes = 16 * kMiB;
  o.memory.usage_bytes = {4 * kMiB, kExpertsArena, kKvArena};
  o.memory.page_size = vmm::PageSizePolicy::kSmall;
  o.copy_threads_per_device = 1;
  return o;
}

inline bool Exists(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0;
}

enum class Kind { kLocal, kRemote };
inline void PrintTo(Kind k, std::ostream* os) { *os << (k == Kind::kLocal ? "local" : "remote"); }

class ControlTest : public ::testing::TestWithParam<Kind> {
 protected:
  void SetUp() override {
    written_ = {
        {"embed", DType::kBF16, {64, 64}, testing::RandomBytes(8192, 1)},
        {"norm", DType::kF32, {100}, testing::RandomBytes(400, 2)},
        {"layers.0.experts.0.w1", DType::kF32, {32, 64}, testing::RandomBytes(8192, 3)},
        {"layers.0.experts.0.w2", DType::kF32, {64, 32}, testing::RandomBytes(8192, 4)},
        {"layers.0.experts.1.w1", DType::kF32, {32, 64}, testing::RandomBytes(8192, 5)},
        {"layers.0.experts.1.w2", DType::kF32, {64, 32}, testing::RandomBytes(8192, 6)},
        // Larger than the experts arena.
        {"huge", DType::kF32, {3, 128, 1024}, testing::RandomBytes(3 * 128 * 4096, 7)},
    };
    ckpt_ = dir_.File("model.safetensors");
    ASSERT_TRUE(WriteSafetensors(ckpt_, written_).ok());
    if (GetParam() == Kind::kLocal) {
      auto hmm = Hmm::Create(SmallOptions());
      ASSERT_TRUE(hmm.ok()) << hmm.status().ToString();
      hmm_ = std::move(*hmm);
      control_ = std::make_unique<LocalHmmControl>(hmm_.get());
    } else {
      HmmdOptions o;
      o.binary = HMMD_PATH;
      o.hmm = SmallOptions();
      auto c = RemoteHmmControl::Launch(o);
      ASSERT_TRUE(c.ok()) << c.status().ToString();
      remote_ = c->get();
      control_ = std::move(*c);
    }
  }

  // Dense tensors replicated on both devices; expert e on device e, one group per expert.
  static PlacementTable Table() {
    PlacementTable t;
    t["embed"] = {Usage::kWeights, {0, 1}, ""};
    t["norm"] = {Usage::kWeights, {0, 1}, ""};
    for (int e = 0; e < 2; ++e) {
      for (const char* w : {"w1", "w2"}) {
        t["layers.0.experts." + std::to_string(e) + "." + w] = {
            Usage::kExperts, {e}, "expert" + std::to_string(e)};
      }
    }
    return t;
  }

  std::vector<DeviceStats> Stats() {
    auto s = control_->Stats();
    EXPECT_TRUE(s.ok()) << s.status().ToString();
    return s.ok() ? *s : std::vector<DeviceStats>(2);
  }
  uint64_t Used(int device, Usage u) {
    return Stats().at(device).usage[static_cast<int>(u)].used_bytes;
  }
  uint64_t TotalUsed() {
    uint64_t n = 0;
    for (const DeviceStats& s : Stats()) n += s.used_bytes;
    return n;
  }

  testing::ScratchDir dir_;
  std::vector<TensorToWrite> written_;
  std::string ckpt_;
  std::unique_ptr<Hmm> hmm_;            // kLocal
  RemoteHmmControl* remote_ = nullptr;  // kRemote
  std::unique_ptr<HmmControl> control_;
};

}  // namespace emoe::hbm

#endif  // TESTS_HBM_CONTROL_FIXTURE_H_
