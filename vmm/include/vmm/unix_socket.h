// vmm/unix_socket.h: listening on and connecting to a SOCK_SEQPACKET UNIX socket by path.
//
// Every socket is close-on-exec. Errors name the path ("listen on unix socket '/x.sock': bind:
// EADDRINUSE (...)"). A path must have 1 to kMaxUnixSocketPath bytes (sockaddr_un's limit).
//
// A path a live listener answers on is never taken over: ListenUnixSocket probes it first, and
// OwnedUnixSocket (what a daemon uses) also holds a lock file beside it for its whole life, so two
// servers starting at once cannot both take it, and removes the socket file on exit only if it is
// still the one it created.
//
// Thread safety: the functions are reentrant; an OwnedUnixSocket is used by one thread at a time.
#ifndef VMM_UNIX_SOCKET_H_
#define VMM_UNIX_SOCKET_H_

#include <sys/types.h>

#include <cstddef>
#include <string>

#include "vmm/status.h"
#include "vmm/unique_fd.h"

namespace vmm {

// The longest path a sockaddr_un holds (sizeof sun_path less its NUL).
inline constexpr size_t kMaxUnixSocketPath = 107;

// OK when `path` fits a sockaddr_un; kInvalidArgument naming it and its length otherwise.
Status CheckUnixSocketPath(const std::string& path);

// Binds a SOCK_SEQPACKET socket at `path`, sets the file's mode to `mode` and listens with
// `backlog`. A stale socket file at `path` (one nothing listens on any more: connecting to it is
// refused) is replaced; a socket a live server answers on is kAlreadyExists naming the server's
// pid (SO_PEERCRED of a probe connection), and so is any other file. Returns the listening
// socket, owned by the caller, who removes the file (unlink) when done. On failure nothing is
// left behind (a bound file is removed).
StatusOr<UniqueFd> ListenUnixSocket(const std::string& path, mode_t mode = 0600, int backlog = 64);

// A listening socket that owns its path: made by Listen(), which first takes an exclusive
// flock(2) on "PATH.lock" (created mode 0600, holding the owner's pid) and keeps it until
// Remove(), then listens as ListenUnixSocket does. A second Listen() on the same path, from any
// process, fails while the first holds the lock: kAlreadyExists naming the path, the lock file
// and the holder's pid. Remove() (also run by the destructor) closes the socket, unlinks the
// socket file only if it is still the one Listen() bound (same device and inode: not a file
// someone else put there since) and the lock file, and releases the lock. Movable.
class OwnedUnixSocket {
 public:
  OwnedUnixSocket() = default;
  ~OwnedUnixSocket() { Remove(); }
  OwnedUnixSocket(OwnedUnixSocket&&) = default;
  OwnedUnixSocket& operator=(OwnedUnixSocket&& o) noexcept {
    if (this != &o) {
      Remove();
      fd_ = std::move(o.fd_);
      lock_ = std::move(o.lock_);
      path_ = std::move(o.path_);
      dev_ = o.dev_;
      ino_ = o.ino_;
    }
    return *this;
  }

  static StatusOr<OwnedUnixSocket> Listen(const std::string& path, mode_t mode = 0600,
                                          int backlog = 64);
  // The lock file of a socket path: path + ".lock".
  static std::string LockPath(const std::string& path) { return path + ".lock"; }

  bool valid() const { return fd_.valid(); }
  int fd() const { return fd_.get(); }
  const std::string& path() const { return path_; }
  void Remove();

 private:
  UniqueFd fd_;
  UniqueFd lock_;
  std::string path_;
  dev_t dev_ = 0;
  ino_t ino_ = 0;
};

// Connects a SOCK_SEQPACKET socket to `path`. Nothing listening: kNotFound (no file) or the
// errno's code (ECONNREFUSED: kUnavailable). Returns the connected socket, owned by the caller.
StatusOr<UniqueFd> ConnectUnixSocket(const std::string& path);

}  // namespace vmm

#endif  // VMM_UNIX_SOCKET_H_
