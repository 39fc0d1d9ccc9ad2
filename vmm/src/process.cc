#include "vmm/process.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <thread>

extern char** environ;

namespace vmm {

namespace {

// fork + exec with PR_SET_PDEATHSIG set in between (posix_spawn has no hook for it). The child
// only makes async-signal-safe calls. An exec failure comes back through a close-on-exec pipe
// (nothing read: the exec happened). Returns the pid, or the error (the child reaped).
StatusOr<pid_t> ForkExecWithDeathSignal(const std::vector<char*>& args, int socket, int child_fd,
                                        bool stdout_to_stderr, int death_signal,
                                        const std::string& what) {
  int ep[2];
  if (pipe2(ep, O_CLOEXEC) != 0) return Status::FromErrno(errno, "start " + what, "pipe2");
  UniqueFd err_r(ep[0]), err_w(ep[1]);
  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid < 0) return Status::FromErrno(errno, "start " + what, "fork");
  if (pid == 0) {
    int err = 0;
    if (prctl(PR_SET_PDEATHSIG, death_signal) != 0) err = errno;
    // The parent may have died before the prctl: then nobody will send the signal.
    if (err == 0 && getppid() != parent) _exit(127);
    if (err == 0 && dup2(socket, child_fd) < 0) err = errno;
    if (err == 0 && stdout_to_stderr && dup2(STDERR_FILENO, STDOUT_FILENO) < 0) err = errno;
    if (err == 0) {
      execve(args[0], args.data(), environ);
      err = errno;
    }
    (void)!write(err_w.get(), &err, sizeof(err));
    _exit(127);
  }
  err_w.Reset();
  int err = 0;
  ssize_t n;
  do {
    n = read(err_r.get(), &err, sizeof(err));
  } while (n < 0 && errno == EINTR);
  if (n <= 0) return pid;  // closed on exec
  int status;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return Status::FromErrno(err, "start " + what + " '" + args[0] + "'", "execve");
}

}  // namespace

StatusOr<SpawnedChild> SpawnWithSocket(const std::vector<std::string>& argv, int child_fd,
                                       bool stdout_to_stderr, const std::string& what,
                                       int parent_death_signal) {
  if (argv.empty()) return Status::InvalidArgument("start " + what + ": no binary");
  if (child_fd <= STDERR_FILENO) {
    return Status::InvalidArgument("start " + what + ": the socket's descriptor must be > 2");
  }
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) {
    return Status::FromErrno(errno, what + " control socket", "socketpair");
  }
  UniqueFd mine(sv[0]), theirs(sv[1]);
  if (theirs.get() == child_fd) {  // dup2 onto itself would keep close-on-exec
    UniqueFd moved(fcntl(theirs.get(), F_DUPFD_CLOEXEC, child_fd + 1));
    if (!moved.valid()) return Status::FromErrno(errno, what + " control socket", "fcntl");
    theirs = std::move(moved);
  }
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  SpawnedChild c;
  if (parent_death_signal != 0) {
    VMM_ASSIGN_OR_RETURN(c.pid,
                         ForkExecWithDeathSignal(args, theirs.get(), child_fd, stdout_to_stderr,
                                                 parent_death_signal, what));
    c.socket = std::move(mine);
    return c;
  }
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, theirs.get(), child_fd);
  if (stdout_to_stderr) posix_spawn_file_actions_adddup2(&fa, STDERR_FILENO, STDOUT_FILENO);
  const int rc = posix_spawn(&c.pid, argv[0].c_str(), &fa, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) return Status::FromErrno(rc, "start " + what + " '" + argv[0] + "'", "posix_spawn");
  c.socket = std::move(mine);
  return c;
}

std::string DescribeExit(const std::string& who, int wait_status) {
  if (WIFSIGNALED(wait_status)) {
    return who + " was killed by signal " + std::to_string(WTERMSIG(wait_status)) + " (" +
           strsignal(WTERMSIG(wait_status)) + ")";
  }
  return who + " exited with status " + std::to_string(WEXITSTATUS(wait_status));
}

std::optional<int> TryReap(pid_t pid) {
  int status = 0;
  if (pid > 0 && waitpid(pid, &status, WNOHANG) == pid) return status;
  return std::nullopt;
}

std::optional<int> WaitForExit(pid_t pid, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (std::optional<int> s = TryReap(pid)) return s;
    if (std::chrono::steady_clock::now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

std::optional<int> KillAfterGrace(pid_t pid, std::chrono::milliseconds grace) {
  if (std::optional<int> s = WaitForExit(pid, grace)) return s;
  if (pid <= 0) return std::nullopt;
  kill(pid, SIGKILL);
  int status = 0;
  pid_t r;
  do {
    r = waitpid(pid, &status, 0);
  } while (r < 0 && errno == EINTR);
  if (r != pid) return std::nullopt;
  return status;
}

}  // namespace vmm
