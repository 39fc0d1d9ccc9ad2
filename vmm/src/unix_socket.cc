#include "vmm/unix_socket.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>

#include "vmm/os.h"

namespace vmm {

static_assert(sizeof(sockaddr_un::sun_path) == kMaxUnixSocketPath + 1);

namespace {

// `path` as a sockaddr_un. REQUIRES: CheckUnixSocketPath(path) is OK.
sockaddr_un Address(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", path.c_str());
  return addr;
}

// What is at `path` before a listener binds it: OK when nothing is, or a stale socket was (it
// is removed); kAlreadyExists when a live server answers there (naming its pid) or the file is
// not a socket; the connect error when the probe cannot tell.
Status ClearStaleSocket(const std::string& path) {
  struct stat st;
  if (lstat(path.c_str(), &st) != 0) {
    return errno == ENOENT ? Status::Ok() : Status::FromErrno(errno, path, "lstat");
  }
  if (!S_ISSOCK(st.st_mode)) return Status::AlreadyExists(path + " exists and is not a socket");
  // Non-blocking, so a live server with a full backlog answers EAGAIN instead of blocking us.
  UniqueFd probe(socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!probe.valid()) return Status::FromErrno(errno, "probe unix socket '" + path + "'", "socket");
  const sockaddr_un addr = Address(path);
  if (connect(probe.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) == 0 ||
      errno == EAGAIN) {
    ucred cred{};
    socklen_t len = sizeof(cred);
    const std::string who =
        getsockopt(probe.get(), SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0 && cred.pid > 0
            ? " (pid " + std::to_string(cred.pid) + ")"
            : "";
    return Status::AlreadyExists("a live server" + who + " answers on unix socket '" + path +
                                 "': stop it first or choose another path");
  }
  if (errno != ECONNREFUSED) {
    return Status::FromErrno(errno, "probe unix socket '" + path + "' (is a server live there?)",
                             "connect");
  }
  if (unlink(path.c_str()) != 0 && errno != ENOENT) {
    return Status::FromErrno(errno, "remove the stale socket '" + path + "'", "unlink");
  }
  return Status::Ok();
}

// Opens and exclusively locks `lock_path` (flock, not waiting), retrying when the file it opened
// was unlinked by the previous holder before the lock was taken (it would lock nothing). Writes
// this process's pid into it.
StatusOr<UniqueFd> LockBeside(const std::string& path, const std::string& lock_path) {
  for (int attempt = 0; attempt < 16; ++attempt) {
    UniqueFd lock(open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600));
    if (!lock.valid()) return Status::FromErrno(errno, "lock file '" + lock_path + "'", "open");
    if (RetryOnEintr([&] { return flock(lock.get(), LOCK_EX | LOCK_NB); }) != 0) {
      if (errno != EWOULDBLOCK) {
        return Status::FromErrno(errno, "lock file '" + lock_path + "'", "flock");
      }
      char buf[32] = {};
      const ssize_t n = pread(lock.get(), buf, sizeof(buf) - 1, 0);
      const int holder = n > 0 ? std::atoi(buf) : 0;
      return Status::AlreadyExists(
          "unix socket '" + path + "' is taken: another server" +
          (holder > 0 ? " (pid " + std::to_string(holder) + ")" : std::string()) + " holds " +
          lock_path + "; stop it first or choose another path");
    }
    struct stat held, now;
    if (fstat(lock.get(), &held) != 0) return Status::FromErrno(errno, lock_path, "fstat");
    if (stat(lock_path.c_str(), &now) != 0 || held.st_dev != now.st_dev ||
        held.st_ino != now.st_ino) {
      continue;  // unlinked (and maybe recreated) under us: lock the file that is there now
    }
    const std::string pid = std::to_string(getpid()) + "\n";
    if (ftruncate(lock.get(), 0) != 0 ||
        pwrite(lock.get(), pid.data(), pid.size(), 0) != static_cast<ssize_t>(pid.size())) {
      return Status::FromErrno(errno, "lock file '" + lock_path + "': record the pid", "pwrite");
    }
    return lock;
  }
  return Status::Unavailable("lock file '" + lock_path + "' keeps being replaced");
}

}  // namespace

Status CheckUnixSocketPath(const std::string& path) {
  if (path.empty() || path.size() > kMaxUnixSocketPath) {
    return Status::InvalidArgument("unix socket path '" + path + "' is empty or too long (" +
                                   std::to_string(path.size()) + " bytes; at most " +
                                   std::to_string(kMaxUnixSocketPath) + ")");
  }
  return Status::Ok();
}

StatusOr<UniqueFd> ListenUnixSocket(const std::string& path, mode_t mode, int backlog) {
  VMM_RETURN_IF_ERROR(CheckUnixSocketPath(path));
  const std::string what = "listen on unix socket '" + path + "'";
  UniqueFd fd(socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return Status::FromErrno(errno, what, "socket");
  VMM_RETURN_IF_ERROR(ClearStaleSocket(path));
  const sockaddr_un addr = Address(path);
  if (bind(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) != 0) {
    return Status::FromErrno(errno, what, "bind");
  }
  Status s;
  if (chmod(path.c_str(), mode) != 0) {
    s = Status::FromErrno(errno, what, "chmod");
  } else if (listen(fd.get(), backlog) != 0) {
    s = Status::FromErrno(errno, what, "listen");
  }
  if (!s.ok()) {
    unlink(path.c_str());  // the file is ours: bind created it
    return s;
  }
  return fd;
}

StatusOr<OwnedUnixSocket> OwnedUnixSocket::Listen(const std::string& path, mode_t mode,
                                                  int backlog) {
  VMM_RETURN_IF_ERROR(CheckUnixSocketPath(path));
  OwnedUnixSocket s;
  VMM_ASSIGN_OR_RETURN(s.lock_, LockBeside(path, LockPath(path)));
  s.path_ = path;  // from here on, Remove() on failure unlinks the lock file
  VMM_ASSIGN_OR_RETURN(s.fd_, ListenUnixSocket(path, mode, backlog));
  struct stat st;
  if (stat(path.c_str(), &st) != 0) {
    return Status::FromErrno(errno, "listen on unix socket '" + path + "'", "stat");
  }
  s.dev_ = st.st_dev;
  s.ino_ = st.st_ino;
  return s;
}

void OwnedUnixSocket::Remove() {
  if (fd_.valid()) {
    struct stat st;
    if (lstat(path_.c_str(), &st) == 0 && st.st_dev == dev_ && st.st_ino == ino_) {
      unlink(path_.c_str());
    }
    fd_.Reset();
  }
  if (lock_.valid()) {
    unlink(LockPath(path_).c_str());  // still locked: a waiting Listen() re-checks the file
    lock_.Reset();
  }
}

StatusOr<UniqueFd> ConnectUnixSocket(const std::string& path) {
  VMM_RETURN_IF_ERROR(CheckUnixSocketPath(path));
  const std::string what = "connect to unix socket '" + path + "'";
  UniqueFd fd(socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return Status::FromErrno(errno, what, "socket");
  const sockaddr_un addr = Address(path);
  if (connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) != 0)
    return Status::FromErrno(errno, what, "connect");
  return fd;
}

}  // namespace vmm
