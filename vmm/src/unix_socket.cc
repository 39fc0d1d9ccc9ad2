#include "vmm/unix_socket.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdio>

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
  struct stat st;
  if (lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) return Status::AlreadyExists(path + " exists and is not a socket");
    unlink(path.c_str());  // stale socket of a previous run
  }
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
