// hbm/server.h: serving an Hmm's registry to other processes (the hmmd protocol).
//
// Transport: a SOCK_SEQPACKET UNIX socket. Each request is one JSON message (at most
// kMaxRequestBytes); each reply is one or more JSON messages of up to ~60 KiB ("more": true on
// all but the last), the first carrying any file descriptors (SCM_RIGHTS).
//   {"op":"ping"}                                   -> {"ok":true}
//   {"op":"attach","device":-1,"writable":false,"kv":false}
//       -> {"ok":true,"arenas":[...],"tensors":[...],"kv":[{"device":d,"arena":i},...]}
//       + one memfd per arena (read-only file descriptions unless writable is allowed); with
//       "kv", also each device's KV arena, read-write (instances write KV; ServerOptions::share_kv)
//       Each tensor names its arena, offset, size and its extent (extent_offset, extent_size:
//       the pages it shares with its group, e.g. one expert), so a client can map expert slots.
//   {"op":"list","device":-1}                       -> {"ok":true,"tensors":[...]}
//   {"op":"stats"}                                  -> {"ok":true,"devices":[...],"report":"..."}
//   {"op":"release","name":"x","device":0}          -> {"ok":true}
// Errors: {"ok":false,"code":"NOT_FOUND","error":"..."}. A malformed or oversized request gets an
// error reply and the connection stays usable; a client that dies mid-request only loses its own
// connection.
//
// Security: the socket file is created with mode 0600 (ServerOptions::socket_mode) and every
// connection's peer uid (SO_PEERCRED) must be the server's uid or in allowed_uids; others get an
// error reply and are disconnected.
//
// Thread safety: Start/Stop from one thread. One thread per client; Handle() is reentrant.
#ifndef HBM_SERVER_H_
#define HBM_SERVER_H_

#include <sys/types.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "hbm/hmm.h"
#include "vmm/fd_passing.h"
#include "vmm/unique_fd.h"

namespace emoe::hbm {

inline constexpr size_t kMaxRequestBytes = 16 * 1024;

struct ServerOptions {
  std::string socket_path;  // required
  mode_t socket_mode = 0600;
  std::set<uid_t> allowed_uids;  // besides the server's own uid
  bool allow_writable = false;   // let clients map weight arenas writable (tests only)
  bool share_kv = true;          // pass KV arenas (read-write) to clients that ask ("kv": true)
  int max_clients = 64;
};

// One request and its reply, independent of the transport (used in-process by HmmClient too).
struct Reply {
  std::string json;  // the reply message (may be large)
  std::vector<vmm::UniqueFd> fds;
};
Reply HandleRequest(Hmm& hmm, const std::string& request, bool allow_writable,
                    bool share_kv = true);

class HmmServer {
 public:
  HmmServer(Hmm* hmm, ServerOptions options) : hmm_(hmm), options_(std::move(options)) {}
  ~HmmServer() { Stop(); }

  // Binds and listens (replacing a stale socket file), then accepts on a background thread.
  Status Start();
  // Stops accepting, disconnects clients, joins threads, removes the socket file.
  void Stop();

  uint64_t connections_accepted() const { return accepted_.load(); }
  uint64_t connections_refused() const { return refused_.load(); }
  uint64_t requests_served() const { return served_.load(); }

 private:
  void AcceptLoop();
  // Serves a client; with a non-OK `refusal`, answers its first request with it and hangs up.
  void Serve(int fd, Status refusal);

  Hmm* hmm_;
  ServerOptions options_;
  vmm::UniqueFd listen_fd_;
  vmm::UniqueFd wake_r_, wake_w_;  // wakes the accept loop on Stop
  std::thread acceptor_;
  std::mutex mu_;
  std::condition_variable idle_cv_;  // signalled when a client thread ends
  int active_clients_ = 0;           // detached client threads still running
  std::set<int> client_fds_;
  std::atomic<bool> stopping_{false};
  std::atomic<uint64_t> accepted_{0}, refused_{0}, served_{0};
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

}  // namespace emoe::hbm

#endif  // HBM_SERVER_H_
