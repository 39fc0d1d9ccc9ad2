// vmm/fd_passing.h: passing file descriptors (and arenas) over UNIX sockets with SCM_RIGHTS.
//
// Messages are one sendmsg each: a payload of up to kMaxPayload bytes plus up to kMaxFds fds.
// Received fds are close-on-exec (MSG_CMSG_CLOEXEC) and owned by the caller. A truncated control
// message (more fds than expected) is an error, and any fds that did arrive are closed.
//
// Starting a child with a control socket is in vmm/process.h (included here for its old users).
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
#include "vmm/process.h"  // SpawnWithSocket used to live here
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

}  // namespace vmm

#endif  // VMM_FD_PASSING_H_
