// End to end: the hmmd binary loads a checkpoint, serves a client in this process, and stops
// cleanly on SIGTERM.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <thread>

#include "hbm/client.h"
#include "test_files.h"

namespace emoe::hbm {
namespace {

TEST(HmmdTest, ServesAttachAndStopsOnSigterm) {
  testing::ScratchDir dir;
  std::vector<TensorToWrite> t = {
      {"model.embed_tokens.weight", DType::kBF16, {128, 64}, testing::RandomBytes(16384, 1)},
      {"model.layers.0.mlp.experts.0.w1.weight",
       DType::kBF16,
       {64, 64},
       testing::RandomBytes(8192, 2)},
      {"model.layers.0.mlp.experts.1.w1.weight",
       DType::kBF16,
       {64, 64},
       testing::RandomBytes(8192, 3)},
  };
  ASSERT_TRUE(WriteSafetensors(dir.File("model.safetensors"), t).ok());
  const std::string sock = dir.File("run/hmmd.sock");
  const pid_t pid = fork();
  if (pid == 0) {
    const std::string ckpt = "--checkpoint=" + dir.path(), s = "--socket=" + sock;
    execl(HMMD_PATH, "hmmd", ckpt.c_str(), s.c_str(), "--devices_per_node=2",
          "--device_capacity_mb=64", "--weights_mb=8", "--experts_mb=8", "--page_size=4k",
          static_cast<char*>(nullptr));
    _exit(127);
  }
  std::unique_ptr<HmmClient> client;
  for (int i = 0; i < 200 && !client; ++i) {
    auto c = HmmClient::Connect(sock);
    if (c.ok()) {
      client = std::move(*c);
    } else {
      std::this_thread::sleep_for(std::chrono::milliseconds(25));
    }
  }
  ASSERT_TRUE(client) << "hmmd did not come up";
  struct stat st;
  ASSERT_EQ(stat(sock.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto att = client->Attach();
  ASSERT_TRUE(att.ok()) << att.status().ToString();
  // Embeddings on both devices, expert e on device e % 2.
  EXPECT_EQ((*att)->tensors().size(), 4u);
  ASSERT_NE((*att)->Find("model.embed_tokens.weight", 1), nullptr);
  const TensorView* e1 = (*att)->Find("model.layers.0.mlp.experts.1.w1.weight", 1);
  ASSERT_NE(e1, nullptr);
  EXPECT_EQ((*att)->Find("model.layers.0.mlp.experts.1.w1.weight", 0), nullptr);
  EXPECT_EQ(std::memcmp(e1->data, t[2].bytes.data(), e1->size_bytes), 0);
  att->reset();
  client.reset();
  ASSERT_EQ(kill(pid, SIGTERM), 0);
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
      << "exited " << (WIFEXITED(status) ? WEXITSTATUS(status) : -1) << ", signal "
      << (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
  EXPECT_NE(stat(sock.c_str(), &st), 0) << "the socket file is removed on exit";
}

TEST(HmmdTest, BadCheckpointExitsWithError) {
  testing::ScratchDir dir;
  // Header length 16, but the header is cut short.
  testing::WriteFile(dir.File("broken.safetensors"), std::string("\x10\0\0\0\0\0\0\0{\"a\":", 13));
  const pid_t pid = fork();
  if (pid == 0) {
    const std::string ckpt = "--checkpoint=" + dir.File("broken.safetensors");
    execl(HMMD_PATH, "hmmd", ckpt.c_str(), "--socket=/nonexistent/x.sock",
          static_cast<char*>(nullptr));
    _exit(127);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 1) << status;
}

}  // namespace
}  // namespace emoe::hbm
