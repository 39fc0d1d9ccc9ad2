// vmm/unix_socket.h: listening on and connecting to a SOCK_SEQPACKET UNIX socket by path.
//
// Every socket is close-on-exec. Errors name the path ("listen on unix socket '/x.sock': bind:
// EADDRINUSE (...)"). A path must have 1 to kMaxUnixSocketPath bytes (sockaddr_un's limit).
//
// Thread safety: the functions are reentrant; two listeners racing for one path is the callers'
// business (the second replaces the first's file).
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
// `backlog`. A stale socket file at `path` (one left by an earlier run) is replaced; any other
// file there is kAlreadyExists. Returns the listening socket, owned by the caller, who removes
// the file (unlink) when done. On failure nothing is left behind (a bound file is removed).
StatusOr<UniqueFd> ListenUnixSocket(const std::string& path, mode_t mode = 0600, int backlog = 64);

// Connects a SOCK_SEQPACKET socket to `path`. Nothing listening: kNotFound (no file) or the
// errno's code (ECONNREFUSED: kUnavailable). Returns the connected socket, owned by the caller.
StatusOr<UniqueFd> ConnectUnixSocket(const std::string& path);

}  // namespace vmm

#endif  // VMM_UNIX_SOCKET_H_
