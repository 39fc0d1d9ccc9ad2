// End to end: the hmmd binary loads a checkpoint, serves a client in this process, and stops
// cleanly on SIGTERM.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <thread>
#include <vector>

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
    const std::string sock = "--socket=" + dir.File("x.sock");
    execl(HMMD_PATH, "hmmd", ckpt.c_str(), sock.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 1) << status;
}

// Starts an empty hmmd on `sock` with small 4 KiB arenas and `extra` flags, its stderr into `log`.
pid_t StartEmptyHmmd(const std::string& sock, const std::string& log,
                     const std::vector<std::string>& extra = {}) {
  std::vector<std::string> args = {"hmmd",
                                   "--socket=" + sock,
                                   "--devices_per_node=1",
                                   "--device_capacity_mb=16",
                                   "--weights_mb=4",
                                   "--experts_mb=4",
                                   "--kv_mb=0",
                                   "--page_size=4k"};
  args.insert(args.end(), extra.begin(), extra.end());
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  const pid_t pid = fork();
  if (pid == 0) {
    const int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0 || dup2(fd, 2) != 2) _exit(126);
    execv(HMMD_PATH, argv.data());
    _exit(127);
  }
  return pid;
}

// A client of the hmmd on `sock`, once it answers (generous: start-up may be slow on a loaded
// host), or null when `pid` exited first or a minute passed.
std::unique_ptr<HmmClient> WaitForHmmd(const std::string& sock, pid_t pid) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (std::chrono::steady_clock::now() < deadline) {
    auto c = HmmClient::Connect(sock);
    if (c.ok()) return std::move(*c);
    if (waitpid(pid, nullptr, WNOHANG) == pid) return nullptr;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return nullptr;
}

int WaitExit(pid_t pid) {
  int status = 0;
  if (waitpid(pid, &status, 0) != pid) return -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

// A second hmmd on a live daemon's socket refuses to start, naming the path and the daemon, and
// takes nothing away from it; a stale socket (its daemon killed) is replaced.
TEST(HmmdTest, SecondDaemonOnTheSameSocketIsRefused) {
  testing::ScratchDir dir;
  const std::string sock = dir.File("run/hmmd.sock");
  const pid_t first = StartEmptyHmmd(sock, dir.File("first.log"));
  std::unique_ptr<HmmClient> client = WaitForHmmd(sock, first);
  ASSERT_TRUE(client) << "hmmd did not come up: " << testing::ReadFile(dir.File("first.log"));
  const pid_t second = StartEmptyHmmd(sock, dir.File("second.log"));
  EXPECT_EQ(WaitExit(second), 1);
  const std::string why = testing::ReadFile(dir.File("second.log"));
  EXPECT_NE(why.find("--socket=" + sock), std::string::npos) << why;
  EXPECT_NE(why.find("pid " + std::to_string(first)), std::string::npos) << why;
  // The first daemon is untouched: its connection and a new one both work.
  EXPECT_TRUE(client->Call(R"({"op":"stats"})").ok());
  auto again = HmmClient::Connect(sock);
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  again->reset();
  client.reset();
  // Killed, the first leaves a stale socket file (and its lock file, unlocked) behind.
  ASSERT_EQ(kill(first, SIGKILL), 0);
  EXPECT_EQ(WaitExit(first), 128 + SIGKILL);
  struct stat st;
  ASSERT_EQ(lstat(sock.c_str(), &st), 0);
  ASSERT_TRUE(S_ISSOCK(st.st_mode));
  const pid_t third = StartEmptyHmmd(sock, dir.File("third.log"));
  client = WaitForHmmd(sock, third);
  ASSERT_TRUE(client) << "the stale socket was not replaced: "
                      << testing::ReadFile(dir.File("third.log"));
  client.reset();
  ASSERT_EQ(kill(third, SIGTERM), 0);
  EXPECT_EQ(WaitExit(third), 0);
  EXPECT_NE(lstat(sock.c_str(), &st), 0) << "its socket file is removed on exit";
  EXPECT_NE(lstat((sock + ".lock").c_str(), &st), 0) << "and its lock file";
}

// The admission flags reach the server, and bad ones are refused by name before anything starts.
TEST(HmmdTest, AdmissionFlags) {
  testing::ScratchDir dir;
  const std::string sock = dir.File("hmmd.sock");
  const pid_t bad = StartEmptyHmmd(sock, dir.File("bad.log"), {"--max_clients_per_peer=65"});
  EXPECT_EQ(WaitExit(bad), 2);
  const std::string why = testing::ReadFile(dir.File("bad.log"));
  EXPECT_NE(why.find("--max_clients_per_peer must be an integer in 1..64, got 65"),
            std::string::npos)
      << why;
  const pid_t pid = StartEmptyHmmd(sock, dir.File("hmmd.log"), {"--max_clients_per_peer=1"});
  std::unique_ptr<HmmClient> client = WaitForHmmd(sock, pid);
  ASSERT_TRUE(client) << "hmmd did not come up: " << testing::ReadFile(dir.File("hmmd.log"));
  auto second = HmmClient::Connect(sock);
  EXPECT_EQ(second.status().code(), vmm::StatusCode::kResourceExhausted);
  EXPECT_NE(second.status().message().find("max_clients_per_peer 1"), std::string::npos)
      << second.status().ToString();
  client.reset();
  ASSERT_EQ(kill(pid, SIGTERM), 0);
  EXPECT_EQ(WaitExit(pid), 0);
}

}  // namespace
}  // namespace emoe::hbm
