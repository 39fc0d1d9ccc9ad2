// vmm/fd_passing.h: passing file descriptors (and arenas) over UNIX sockets with SCM_RIGHTS.
//
// Messages are one sendmsg each: a payload of up to kMaxPayload bytes plus up to kMaxFds fds.
// Received fds are close-on-exec (MSG_CMSG_CLOEXEC) and owned by the caller. A truncated control
// message (more fds than expected) is an error, and any fds that did arrive are closed.
//
// Thread safety: the functions are reentrant; concurrent use of one socket is the caller's
// business (as with send/recv).
#ifndef VMM_FD_PASSING_H_
#define VMM_FD_PASSING_H_

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "vmm/arena.h"
#include "vmm/status.h"
#include "vmm/unique_fd.h"

namespace vmm {

inline constexpr size_t kMaxPassedFds = 64;
inline constexpr size_t kMaxPassedPayload = 64 * 1024;

struct ReceivedMessage {
  std::string payload;
  std::vector<UniqueFd> fds;
};

// Sends `payload` (non-empty, <= kMaxPassedPayload) with `fds` (<= kMaxPassedFds). EINTR retried.
Status SendFds(int socket, const std::string& payload, const std::vector<int>& fds);
// Receives one message. Peer closed -> kUnavailable; more fds than `max_fds` -> kDataLoss.
StatusOr<ReceivedMessage> RecvFds(int socket, size_t max_fds = kMaxPassedFds);

// Sends arena.Export() (its metadata as payload plus the memfd).
Status SendArena(int socket, const Arena& arena);
// Receives an arena sent with SendArena and imports it.
StatusOr<std::shared_ptr<Arena>> ReceiveArena(int socket, Os* os = nullptr, bool direct_map = true);

// A child process started with one end of a new SOCK_SEQPACKET socket pair as its file
// descriptor `child_fd` (every other descriptor of this process is close-on-exec), and this
// process's end. `argv[0]` is the binary's path. `stdout_to_stderr` points the child's stdout at
// this process's stderr (a daemon's chatter must not mix with this process's output). `what`
// names the child in errors ("start hmmd '/path': posix_spawn: ...").
struct SpawnedChild {
  pid_t pid = 0;
  UniqueFd socket;
};
StatusOr<SpawnedChild> SpawnWithSocket(const std::vector<std::string>& argv, int child_fd,
                                       bool stdout_to_stderr, const std::string& what);

}  // namespace vmm

#endif  // VMM_FD_PASSING_H_
