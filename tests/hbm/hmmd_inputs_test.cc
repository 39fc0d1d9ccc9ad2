// hmmd given bad checkpoints, by a client's load or by --checkpoint: a FIFO is refused at once
// (it used to block the client thread, and with it the daemon's shutdown, forever), a NaN in a
// weight is refused naming the tensor unless the check is off; the daemon keeps serving.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <thread>

#include "hbm/remote_control.h"
#include "test_files.h"
#include "vmm/host.h"

namespace emoe::hbm {
namespace {

HmmOptions SmallOptions(bool check_weights) {
  HmmOptions o;
  o.devices.devices_per_node = 2;
  o.devices.nodes = {vmm::NumaNodes().at(0).id};
  o.devices.capacity_bytes = 16 << 20;
  o.memory.usage_bytes = {4 << 20, 0, 0};
  o.memory.page_size = vmm::PageSizePolicy::kSmall;
  o.copy_threads_per_device = 1;
  o.check_weights = check_weights;
  return o;
}

std::unique_ptr<RemoteHmmControl> Launch(bool check_weights) {
  HmmdOptions o;
  o.binary = HMMD_PATH;
  o.hmm = SmallOptions(check_weights);
  auto c = RemoteHmmControl::Launch(o);
  EXPECT_TRUE(c.ok()) << c.status().ToString();
  return c.ok() ? std::move(*c) : nullptr;
}

PlacementTable Everywhere(const std::vector<std::string>& names) {
  PlacementTable t;
  for (const auto& n : names) t[n] = {Usage::kWeights, {0, 1}, ""};
  return t;
}

// A 64 x 64 BF16 weight of ones, with a NaN at element `nan_at` (none if negative).
std::string Weight(int nan_at) {
  std::string w(2 * 4096, '\0');
  for (int i = 0; i < 4096; ++i) {
    const uint16_t v = i == nan_at ? 0x7fc0 : 0x3f80;
    std::memcpy(&w[2 * i], &v, 2);
  }
  return w;
}

TEST(HmmdInputsTest, LoadOfAFifoIsRefusedAtOnceAndTheDaemonServesOn) {
  testing::ScratchDir dir;
  auto hmm = Launch(true);
  ASSERT_NE(hmm, nullptr);
  const std::string fifo = dir.File("model.safetensors");
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  for (const std::string& path : {fifo, dir.path()}) {
    auto r = testing::Unblocked(fifo, [&] { return hmm->Load(path, Everywhere({"w"}), ""); });
    EXPECT_EQ(r.status().code(), vmm::StatusCode::kInvalidArgument) << r.status().ToString();
    EXPECT_NE(r.status().message().find(fifo + ": is a FIFO, not a regular file"),
              std::string::npos)
        << r.status().message();
  }
  // Still serving: a good checkpoint loads.
  ASSERT_EQ(unlink(fifo.c_str()), 0);
  ASSERT_TRUE(WriteSafetensors(fifo, {{"w", DType::kBF16, {64, 64}, Weight(-1)}}).ok());
  auto ok = hmm->Load(fifo, Everywhere({"w"}), "");
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  EXPECT_EQ(ok->bytes_checked, 8192u) << "the check ran in hmmd";
}

TEST(HmmdInputsTest, NanInAWeightIsRefusedUnlessTheCheckIsOff) {
  testing::ScratchDir dir;
  const std::string path = dir.File("model.safetensors");
  ASSERT_TRUE(WriteSafetensors(path, {{"w", DType::kBF16, {64, 64}, Weight(77)}}).ok());
  auto checked = Launch(true);
  ASSERT_NE(checked, nullptr);
  auto r = checked->Load(path, Everywhere({"w"}), "");
  EXPECT_EQ(r.status().code(), vmm::StatusCode::kDataLoss);
  EXPECT_NE(r.status().message().find("tensor 'w' (BF16, " + path +
                                      ") has 1 non-finite values (1 NaN, 0 Inf), the first at "
                                      "element 77"),
            std::string::npos)
      << r.status().message();
  checked.reset();
  auto unchecked = Launch(false);  // the start message carries check_weights
  ASSERT_NE(unchecked, nullptr);
  auto accepted = unchecked->Load(path, Everywhere({"w"}), "");
  ASSERT_TRUE(accepted.ok()) << accepted.status().ToString();
  EXPECT_EQ(accepted->bytes_checked, 0u);
}

// hmmd --checkpoint=<a directory whose model.safetensors is a FIFO>: exits 1 at once, saying so.
TEST(HmmdInputsTest, PreloadOfAFifoExitsWithTheError) {
  testing::ScratchDir dir;
  const std::string fifo = dir.File("model.safetensors");
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  const std::string log = dir.File("hmmd.log");
  const pid_t pid = fork();
  if (pid == 0) {
    const int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    dup2(fd, 2);
    const std::string ckpt = "--checkpoint=" + dir.path(), s = "--socket=" + dir.File("h.sock");
    execl(HMMD_PATH, "hmmd", ckpt.c_str(), s.c_str(), "--devices_per_node=1",
          "--device_capacity_mb=16", "--weights_mb=4", "--experts_mb=4", "--page_size=4k",
          static_cast<char*>(nullptr));
    _exit(127);
  }
  // Generous: a regression (a blocked open) fails here instead of hanging the suite.
  int status = 0;
  pid_t done = 0;
  for (int i = 0; i < 1200 && done == 0; ++i) {
    done = waitpid(pid, &status, WNOHANG);
    if (done == 0) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  if (done == 0) {
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    FAIL() << "hmmd blocked on the FIFO";
  }
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 1) << status;
  EXPECT_NE(testing::ReadFile(log).find(fifo + ": is a FIFO"), std::string::npos)
      << testing::ReadFile(log);
}

}  // namespace
}  // namespace emoe::hbm
