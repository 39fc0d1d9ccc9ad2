// hbm/wire.h: the framing of the hmmd protocol (hbm/server.h) on a SOCK_SEQPACKET socket, and
// the status an error reply carries.
//
// A request is either one raw JSON message starting with '{' (at most kMaxRequestBytes), or a
// framed request in parts like a reply: each part is one byte ('1' = more parts follow, '0' =
// last part) and up to ~60 KiB of JSON text; an assembled request may hold up to
// kMaxAssembledRequestBytes. Each reply is one or more such parts, the first carrying any file
// descriptors (SCM_RIGHTS).
//
// Errors travel as {"ok":false,"code":"NOT_FOUND","error":"..."} (ErrorJson), and come back as
// the same Status code (ReplyStatus).
//
// Thread safety: the functions are reentrant; one request or reply at a time per socket.
#ifndef HBM_WIRE_H_
#define HBM_WIRE_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "vmm/fd_passing.h"
#include "vmm/status.h"
#include "vmm/unique_fd.h"

namespace emoe::hbm {

using vmm::Status;
using vmm::StatusOr;

inline constexpr size_t kMaxRequestBytes = 16 * 1024;             // a raw (unframed) request
inline constexpr size_t kMaxAssembledRequestBytes = 64ull << 20;  // a framed one, all parts

// One request's reply, independent of the transport (used in-process by HmmClient too).
struct Reply {
  std::string json;  // the reply message (may be large)
  std::vector<vmm::UniqueFd> fds;
};

// {"ok":false,"code":"NOT_FOUND","error":"..."} for `s`, and back: the status an "ok"/"code"/
// "error" reply carries (OK for "ok": true; kDataLoss for a malformed one), its message prefixed
// with `who`. Shared with the instance-process protocol (engine/remote_instance.h).
std::string ErrorJson(const Status& s);
Status ReplyStatus(const std::string& payload, const std::string& who = "hmm");

// Sends a reply in parts (fds with the first). Used by the server; exposed for tests.
Status SendReply(int socket, const Reply& reply);
// Receives a whole (possibly multi-part) reply.
StatusOr<vmm::ReceivedMessage> ReceiveReply(int socket);
// Sends a request: raw when it fits in kMaxRequestBytes, else in framed parts.
// kInvalidArgument beyond kMaxAssembledRequestBytes.
Status SendRequest(int socket, const std::string& request);

// The next request on a connection (the server side of SendRequest).
struct Incoming {
  enum Kind {
    kRequest,  // `request` holds it
    kError,    // answer `error`; the connection stays usable (too large, fds attached)
    kFatal,    // answer `error` and hang up: a framed request broke off, the stream is lost
    kGone,     // the peer closed the connection (or it was shut down)
  };
  Kind kind = kRequest;
  std::string request;
  Status error;
};
// Receives a raw request, or all the parts of a framed one.
Incoming ReceiveRequest(int socket);

}  // namespace emoe::hbm

#endif  // HBM_WIRE_H_
