// hmmd's start-up and end, with the real binary: SIGTERM while it populates ends it promptly; it
// does not outlive a launcher killed during its start-up; a start slower than any fixed deadline
// succeeds because progress keeps coming, and a silent one is reported as stuck. The populate is
// slowed with hmmd's test hook --test_populate_delay_ms (a sleep after each 32 MiB chunk).
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

#include "hbm/remote_control.h"
#include "test_files.h"
#include "vmm/host.h"
#include "vmm/process.h"

namespace emoe::hbm {
namespace {

using Clock = std::chrono::steady_clock;
constexpr uint64_t kMiB = 1 << 20;

double Since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// Two devices of 96 MiB, populated: 6 chunks of 32 MiB.
HmmOptions PopulatedOptions() {
  HmmOptions o;
  o.devices.devices_per_node = 2;
  o.devices.nodes = {vmm::NumaNodes().at(0).id};
  o.devices.capacity_bytes = 96 * kMiB;
  o.memory.usage_bytes = {32 * kMiB, 64 * kMiB, 32 * kMiB};  // more than the capacity
  o.memory.page_size = vmm::PageSizePolicy::kSmall;
  o.memory.populate = true;
  o.copy_threads_per_device = 1;
  return o;
}

std::string ReadAll(const std::string& path) {
  std::ifstream f(path);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

// Waits, bounded only to catch a hang, until `done` holds.
bool WaitUntil(const std::function<bool()>& done, std::chrono::seconds bound) {
  const auto deadline = Clock::now() + bound;
  while (!done()) {
    if (Clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return true;
}

// The pid of the process whose command line contains `needle` (0: none).
pid_t FindProcess(const std::string& needle) {
  for (const auto& e : std::filesystem::directory_iterator("/proc")) {
    const std::string name = e.path().filename();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::string cmd = ReadAll(e.path() / "cmdline");
    for (char& c : cmd) c = c == '\0' ? ' ' : c;
    if (cmd.find(needle) != std::string::npos && cmd.find("hmmd") != std::string::npos) {
      return static_cast<pid_t>(std::stoi(name));
    }
  }
  return 0;
}

TEST(HmmdLifecycleTest, SigtermWhilePopulatingEndsItPromptly) {
  testing::ScratchDir dir;
  const std::string log = dir.File("hmmd.log");
  const pid_t pid = fork();
  if (pid == 0) {
    freopen(log.c_str(), "w", stderr);
    const std::string s = "--socket=" + dir.File("hmmd.sock");
    // 6 chunks, 3 s after each: the populate takes > 15 s.
    execl(HMMD_PATH, "hmmd", s.c_str(), "--devices_per_node=2", "--device_capacity_mb=96",
          "--weights_mb=32", "--experts_mb=64", "--kv_mb=32", "--page_size=4k", "--populate",
          "--test_populate_delay_ms=3000", static_cast<char*>(nullptr));
    _exit(127);
  }
  // The second progress line: a chunk is populated, more are to come.
  auto populating = [&] {
    const std::string l = ReadAll(log);
    const size_t first = l.find("start-up: populated");
    return first != std::string::npos &&
           l.find("start-up: populated", first + 1) != std::string::npos;
  };
  if (!WaitUntil(populating, std::chrono::seconds(120))) {
    kill(pid, SIGKILL);
    waitpid(pid, nullptr, 0);
    FAIL() << "hmmd did not start populating: " << ReadAll(log);
  }
  const auto t0 = Clock::now();
  ASSERT_EQ(kill(pid, SIGTERM), 0);
  std::optional<int> status = vmm::WaitForExit(pid, std::chrono::seconds(60));
  if (!status) kill(pid, SIGKILL);
  ASSERT_TRUE(status.has_value()) << "hmmd ignored SIGTERM while populating";
  EXPECT_LT(Since(t0), 5.0) << ReadAll(log);
  EXPECT_EQ(vmm::DescribeExit("hmmd", *status), "hmmd exited with status 0") << ReadAll(log);
  EXPECT_NE(ReadAll(log).find("stopped during start-up"), std::string::npos) << ReadAll(log);
}

// A launcher process starts hmmd and is killed (SIGKILL, no clean-up) while hmmd populates:
// hmmd ends (its launcher's death signal, and the control connection's hang-up) long before its
// populate would have finished. This test is the subreaper of the orphaned hmmd, to reap it.
TEST(HmmdLifecycleTest, LauncherKilledDuringStartUpTakesHmmdWithIt) {
  testing::ScratchDir dir;
  const std::string socket = dir.File("orphan-test.sock");
  ASSERT_EQ(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
  const pid_t launcher = fork();
  if (launcher == 0) {
    HmmdOptions o;
    o.binary = HMMD_PATH;
    o.socket_path = socket;
    o.hmm = PopulatedOptions();
    o.extra_args = {"--test_populate_delay_ms=5000"};  // > 25 s to start
    auto c = RemoteHmmControl::Launch(o);
    _exit(c.ok() ? 0 : 1);
  }
  pid_t hmmd = 0;
  ASSERT_TRUE(
      WaitUntil([&] { return (hmmd = FindProcess(socket)) != 0; }, std::chrono::seconds(60)));
  // Let it get into its populate (the control connection is open, the start message read).
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  ASSERT_EQ(kill(launcher, SIGKILL), 0);
  int st = 0;
  ASSERT_EQ(waitpid(launcher, &st, 0), launcher);
  const auto t0 = Clock::now();
  std::optional<int> status = vmm::WaitForExit(hmmd, std::chrono::seconds(60));
  if (!status) kill(hmmd, SIGKILL);
  prctl(PR_SET_CHILD_SUBREAPER, 0);
  ASSERT_TRUE(status.has_value()) << "hmmd outlived its launcher";
  EXPECT_LT(Since(t0), 10.0);
  EXPECT_EQ(vmm::DescribeExit("hmmd", *status), "hmmd exited with status 0");
}

// 6 chunks, 1 s apart: a start of > 6 s, three times the stall timeout given, succeeds.
TEST(HmmdLifecycleTest, SlowStartSucceedsWhileProgressComes) {
  HmmdOptions o;
  o.binary = HMMD_PATH;
  o.hmm = PopulatedOptions();
  o.extra_args = {"--test_populate_delay_ms=1000"};
  o.start_stall_timeout = std::chrono::seconds(2);
  std::vector<StartProgress> seen;
  o.progress = [&](const StartProgress& p) { seen.push_back(p); };
  const auto t0 = Clock::now();
  auto c = RemoteHmmControl::Launch(o);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_GT(Since(t0), 3 * 2.0);
  ASSERT_GE(seen.size(), 7u);  // "start", then every chunk of the populate
  EXPECT_EQ(seen.front().phase, "start");
  EXPECT_EQ(seen.back().phase, "populate");
  EXPECT_EQ(seen.back().done_bytes, 192 * kMiB);  // the capacity, not the 256 MiB of arenas
  EXPECT_EQ(seen.back().total_bytes, 192 * kMiB);
  auto stats = (*c)->Stats();
  ASSERT_TRUE(stats.ok()) << stats.status().ToString();
}

// hmmd that sends nothing for longer than the stall timeout is reported stuck, and reaped.
TEST(HmmdLifecycleTest, SilentStartIsReportedStuck) {
  HmmdOptions o;
  o.binary = HMMD_PATH;
  o.hmm = PopulatedOptions();
  o.extra_args = {"--test_populate_delay_ms=30000"};
  o.start_stall_timeout = std::chrono::seconds(2);
  const auto t0 = Clock::now();
  auto c = RemoteHmmControl::Launch(o);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), vmm::StatusCode::kUnavailable);
  EXPECT_NE(c.status().message().find("is stuck: no sign of progress for 2 s"), std::string::npos)
      << c.status().ToString();
  EXPECT_LT(Since(t0), 25.0) << "the stuck hmmd was stopped, not waited for";
}

}  // namespace
}  // namespace emoe::hbm
