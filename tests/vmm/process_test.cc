// vmm/process.h and vmm/unix_socket.h with real processes and sockets.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>

#include "vmm/vmm.h"

namespace vmm {
namespace {

// A scratch directory, removed with what it holds (two files at most here).
struct TempDir {
  std::string path;
  TempDir() {
    char tmpl[] = "/tmp/vmm-process-test-XXXXXX";
    if (mkdtemp(tmpl) != nullptr) path = tmpl;
  }
  ~TempDir() {
    for (const char* f : {"/s.sock", "/plain", "/s.sock.lock"}) unlink((path + f).c_str());
    rmdir(path.c_str());
  }
  std::string File(const std::string& name) const { return path + "/" + name; }
};

TEST(ProcessTest, DescribeExit) {
  EXPECT_EQ(DescribeExit("x (pid 1)", 2 << 8), "x (pid 1) exited with status 2");
  EXPECT_EQ(DescribeExit("x", SIGKILL), "x was killed by signal 9 (Killed)");
}

// A child spawned with a parent-death signal gets it when its parent dies: a helper process
// spawns a sleeper and dies; this test, the sleeper's subreaper, reaps it killed by the signal.
TEST(ProcessTest, ParentDeathSignalEndsTheChildWithItsParent) {
  ASSERT_EQ(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
  int p[2];
  ASSERT_EQ(pipe(p), 0);
  const pid_t helper = fork();
  ASSERT_GE(helper, 0);
  if (helper == 0) {
    close(p[0]);
    auto child = SpawnWithSocket({"/bin/sleep", "600"}, 3, false, "sleep", SIGTERM);
    const pid_t pid = child.ok() ? child->pid : -1;
    (void)!write(p[1], &pid, sizeof(pid));
    _exit(0);  // the sleeper's parent dies here
  }
  close(p[1]);
  pid_t sleeper = -1;
  ASSERT_EQ(read(p[0], &sleeper, sizeof(sleeper)), static_cast<ssize_t>(sizeof(sleeper)));
  close(p[0]);
  ASSERT_GT(sleeper, 0) << "the helper could not spawn";
  int status = 0;
  ASSERT_EQ(waitpid(helper, &status, 0), helper);
  // Reparented to this process: reap it (a generous bound, only to catch a sleeper that stays).
  std::optional<int> s = WaitForExit(sleeper, std::chrono::seconds(60));
  if (!s) kill(sleeper, SIGKILL);
  ASSERT_TRUE(s.has_value()) << "the sleeper outlived its parent";
  EXPECT_EQ(DescribeExit("sleep", *s), "sleep was killed by signal 15 (Terminated)");
  prctl(PR_SET_CHILD_SUBREAPER, 0);
  // The exec failure of that path comes back like posix_spawn's.
  auto bad = SpawnWithSocket({"/nonexistent/x"}, 3, false, "x", SIGTERM);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("/nonexistent/x"), std::string::npos)
      << bad.status().ToString();
}

TEST(ProcessTest, SpawnWaitAndKill) {
  auto child = SpawnWithSocket({"/bin/sh", "-c", "exit 3"}, 3, false, "sh");
  ASSERT_TRUE(child.ok()) << child.status().ToString();
  std::optional<int> status = WaitForExit(child->pid, std::chrono::seconds(10));
  ASSERT_TRUE(status.has_value());
  EXPECT_EQ(DescribeExit("sh", *status), "sh exited with status 3");
  EXPECT_FALSE(TryReap(child->pid).has_value()) << "reaped once";
  // One that does not end is killed after its grace period.
  auto sleeper = SpawnWithSocket({"/bin/sleep", "60"}, 3, false, "sleep");
  ASSERT_TRUE(sleeper.ok()) << sleeper.status().ToString();
  EXPECT_FALSE(WaitForExit(sleeper->pid, std::chrono::milliseconds(0)).has_value());
  status = KillAfterGrace(sleeper->pid, std::chrono::milliseconds(20));
  ASSERT_TRUE(status.has_value());
  EXPECT_TRUE(WIFSIGNALED(*status));
  EXPECT_EQ(SpawnWithSocket({}, 3, false, "x").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(SpawnWithSocket({"/bin/true"}, 2, false, "x").status().code(),
            StatusCode::kInvalidArgument);
}

TEST(UnixSocketTest, ListenConnectAndStaleFiles) {
  TempDir dir;
  const std::string path = dir.File("s.sock");
  EXPECT_EQ(ConnectUnixSocket(path).status().code(), StatusCode::kNotFound);
  {
    auto l = ListenUnixSocket(path, 0600);
    ASSERT_TRUE(l.ok()) << l.status().ToString();
    struct stat st;
    ASSERT_EQ(lstat(path.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0600u);
    auto c = ConnectUnixSocket(path);
    ASSERT_TRUE(c.ok()) << c.status().ToString();
  }
  // The file of a listener that is gone is replaced.
  auto again = ListenUnixSocket(path);
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  // A live one is not: the probe reaches it and names its process.
  auto taken = ListenUnixSocket(path);
  EXPECT_EQ(taken.status().code(), StatusCode::kAlreadyExists);
  EXPECT_NE(taken.status().message().find("live server (pid " + std::to_string(getpid()) + ")"),
            std::string::npos)
      << taken.status().message();
  EXPECT_TRUE(ConnectUnixSocket(path).ok()) << "the first listener still answers";
  again->Reset();
  unlink(path.c_str());
  // Anything else is not.
  const std::string file = dir.File("plain");
  std::ofstream(file) << "x";
  EXPECT_EQ(ListenUnixSocket(file).status().code(), StatusCode::kAlreadyExists);
  const std::string long_path(kMaxUnixSocketPath + 1, 'a');
  EXPECT_EQ(ListenUnixSocket(long_path).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(ConnectUnixSocket("").status().code(), StatusCode::kInvalidArgument);
}

// OwnedUnixSocket: one owner per path (the lock), a live owner is never replaced, a stale file
// is, and the owner removes only the file it created.
TEST(UnixSocketTest, OwnedSocketIsNeverTakenOver) {
  TempDir dir;
  const std::string path = dir.File("s.sock");
  const std::string lock = OwnedUnixSocket::LockPath(path);
  auto first = OwnedUnixSocket::Listen(path);
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  struct stat st;
  ASSERT_EQ(stat(lock.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  // A second owner (another open file description: the lock refuses it even in this process).
  auto second = OwnedUnixSocket::Listen(path);
  ASSERT_EQ(second.status().code(), StatusCode::kAlreadyExists);
  const std::string& why = second.status().message();
  EXPECT_NE(why.find(path), std::string::npos) << why;
  EXPECT_NE(why.find(lock), std::string::npos) << why;
  EXPECT_NE(why.find("pid " + std::to_string(getpid())), std::string::npos) << why;
  auto c = ConnectUnixSocket(path);
  ASSERT_TRUE(c.ok()) << "the first still answers: " << c.status().ToString();
  c->Reset();
  // Someone replaces the file behind the owner's back: the owner's Remove() leaves it alone.
  ASSERT_EQ(unlink(path.c_str()), 0);
  auto intruder = ListenUnixSocket(path);
  ASSERT_TRUE(intruder.ok()) << intruder.status().ToString();
  first->Remove();
  EXPECT_EQ(lstat(path.c_str(), &st), 0) << "not the owner's file any more: kept";
  EXPECT_NE(lstat(lock.c_str(), &st), 0) << "the lock file goes with its owner";
  EXPECT_TRUE(ConnectUnixSocket(path).ok());
  // The intruder closes without unlinking: a stale file, which the next owner replaces.
  intruder->Reset();
  EXPECT_FALSE(ConnectUnixSocket(path).ok()) << "nothing listens";
  {
    auto next = OwnedUnixSocket::Listen(path);
    ASSERT_TRUE(next.ok()) << next.status().ToString();
    EXPECT_TRUE(ConnectUnixSocket(path).ok());
  }  // the destructor removes both files
  EXPECT_NE(lstat(path.c_str(), &st), 0);
  EXPECT_NE(lstat(lock.c_str(), &st), 0);
  // A file that is not a socket is never replaced.
  std::ofstream(path) << "x";
  EXPECT_EQ(OwnedUnixSocket::Listen(path).status().code(), StatusCode::kAlreadyExists);
  EXPECT_NE(lstat(lock.c_str(), &st), 0) << "a failed Listen leaves no lock file";
}

}  // namespace
}  // namespace vmm
