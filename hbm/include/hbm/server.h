// hbm/server.h: serving an Hmm to other processes (the hmmd protocol): instances attach to its
// memory, a coordinator drives it (hbm/remote_control.h).
//
// Transport: a SOCK_SEQPACKET UNIX socket. A request is either one raw JSON message starting with
// '{' (at most kMaxRequestBytes), or a framed request in parts like a reply: each part is one
// byte ('1' = more parts follow, '0' = last part) and up to ~60 KiB of JSON text
// (SendRequest() frames what exceeds kMaxRequestBytes); an assembled request may hold up to
// kMaxAssembledRequestBytes. Each reply is one or more messages of up to ~60 KiB framed the same
// way, the first carrying any file descriptors (SCM_RIGHTS).
//
// Instances (attach, read):
//   {"op":"ping"}                                   -> {"ok":true}
//   {"op":"attach","device":-1,"writable":false,"kv":false,"tensors":true}
//       -> {"ok":true,"arenas":[...],"tensors":[...],"kv":[{"device":d,"arena":i},...]}
//       + one memfd per arena (read-only file descriptions unless writable is allowed); with
//       "kv", also each device's KV arena, read-write (instances write KV; ServerOptions::share_kv)
//       Each tensor names its arena, offset, size and its extent (extent_offset, extent_size:
//       the pages it shares with its group, e.g. one expert), so a client can map expert slots.
//       "tensors": false leaves out the weight arenas and the tensor list: with "kv": true the
//       reply carries the KV arenas only (how a controller maps them, see remote_control.h).
//   {"op":"list","device":-1}                       -> {"ok":true,"tensors":[...]}
//   {"op":"stats"}  -> {"ok":true,"report":"...","devices":[{"device","capacity_bytes",
//       "used_bytes","peak_used_bytes","usage":[A, A, A]}]}: "usage" indexed by Usage (weights,
//       experts, kv), each A = vmm::ArenaStats {"name" ("" when the device has no such arena),
//       "kind" (PageKindName), "page_size","capacity_bytes","used_bytes","free_bytes",
//       "peak_used_bytes","largest_free_bytes","live_extents","allocations","frees",
//       "failed_allocations","discarded_bytes","fragmentation"}
//   {"op":"release","name":"x","device":0}          -> {"ok":true}
// Control (the HmmControl operations, same meaning and failure atomicity as LocalHmmControl):
//   {"op":"devices"}  -> {"ok":true,"devices":[{"id","node","cpus":[..],"capacity_bytes"}],
//                         "page_note":"..."}
//   {"op":"load","checkpoint":"PATH","prefix":"","placement":[{"name":"x","usage":"weights",
//       "devices":[0,1],"group":""},...]}     usage: weights|experts|kv; group optional
//       -> {"ok":true,"report":{"tensors","bytes_from_disk","bytes_p2p","disk_seconds",
//           "p2p_seconds","disk":{"bytes","seconds","reads","short_reads","direct_io",
//           "fixed_buffers","fallback_reason"}}}
//       Checkpoints are opened once per path and kept (Session::checkpoints).
//   {"op":"copy_group","names":[..],"from":0,"to":1,"usage":"experts","prefix":""}
//       -> {"ok":true,"bytes":N}
//   {"op":"find","name":"x","device":0}
//       -> {"ok":true,"tensor":{"name","device","usage","dtype","shape","size","extent_size"}}
//   {"op":"release_many","records":[["x",0],...]}   -> {"ok":true,"released":n}
//   {"op":"release_matching","prefix":"p","devices":[..]}   -> {"ok":true,"released":n}
//   {"op":"kv_alloc","device":0,"bytes":N}  -> {"ok":true,"id":K,"offset":arena_offset,"bytes":M}
//   {"op":"kv_free","id":K}                         -> {"ok":true}
//   {"op":"kv_resize","id":K,"bytes":N}  -> {"ok":true,"bytes":M}  (Device::Resize: same offset,
//       the tail given back to the device or taken from it)
//       KV memory belongs to the connection that allocated it: freed by kv_free or when the
//       connection closes (HandleRequest without a Session answers FAILED_PRECONDITION).
// Field types are checked: a missing or wrongly typed field is INVALID_ARGUMENT.
// Errors: {"ok":false,"code":"NOT_FOUND","error":"..."}. A malformed or oversized request gets an
// error reply and the connection stays usable; a client that dies mid-request only loses its own
// connection.
//
// Security: the socket file is created with mode 0600 (ServerOptions::socket_mode) and every
// connection's peer uid (SO_PEERCRED) must be the server's uid or in allowed_uids; others get an
// error reply and are disconnected. An adopted connection (Adopt()) is checked the same way.
//
// Thread safety: Start/Adopt/Stop from one thread. One thread per connection; HandleRequest() is
// reentrant (a Session is used by one thread at a time; a CheckpointCache by any).
#ifndef HBM_SERVER_H_
#define HBM_SERVER_H_

#include <sys/types.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "hbm/hmm.h"
#include "vmm/fd_passing.h"
#include "vmm/unique_fd.h"

namespace emoe::hbm {

inline constexpr size_t kMaxRequestBytes = 16 * 1024;             // a raw (unframed) request
inline constexpr size_t kMaxAssembledRequestBytes = 64ull << 20;  // a framed one, all parts

struct ServerOptions {
  std::string socket_path;  // required by Start(); Adopt() alone needs none
  mode_t socket_mode = 0600;
  std::set<uid_t> allowed_uids;  // besides the server's own uid
  bool allow_writable = false;   // let clients map weight arenas writable (tests only)
  bool share_kv = true;          // pass KV arenas (read-write) to clients that ask ("kv": true)
  int max_clients = 64;
};

// Checkpoints opened by "load", by path as given, kept open for the next load of the same path
// (the headers are parsed once). Thread safe.
class CheckpointCache {
 public:
  // The checkpoint at `path`, opened now or earlier; OpenCheckpoint's error otherwise (not
  // cached).
  StatusOr<std::shared_ptr<const Checkpoint>> Open(const std::string& path);

 private:
  std::mutex mu_;
  std::map<std::string, std::shared_ptr<const Checkpoint>> by_path_;  // guarded by mu_
};

// The state of one connection: the KV memory it allocated (freed with it) and where its loads
// find opened checkpoints. Used by one thread at a time (the connection's).
struct Session {
  CheckpointCache* checkpoints = nullptr;  // not owned; null: each load opens its checkpoint
  uint64_t next_kv_id = 1;
  std::map<uint64_t, vmm::Extent> kv;  // kv_alloc id -> extent of the device's KV arena
};

// One request and its reply, independent of the transport (used in-process by HmmClient too).
struct Reply {
  std::string json;  // the reply message (may be large)
  std::vector<vmm::UniqueFd> fds;
};
// Answers one request (at most kMaxAssembledRequestBytes). Never throws: every error, including a
// malformed request, is an error reply. `session` null: kv_alloc / kv_free / kv_resize are refused.
Reply HandleRequest(Hmm& hmm, const std::string& request, bool allow_writable, bool share_kv = true,
                    Session* session = nullptr);

// "weights", "experts", "kv" (UsageName) back to the Usage; kInvalidArgument otherwise.
StatusOr<Usage> ParseUsage(const std::string& name);

class HmmServer {
 public:
  HmmServer(Hmm* hmm, ServerOptions options) : hmm_(hmm), options_(std::move(options)) {}
  ~HmmServer() { Stop(); }

  // Binds and listens (replacing a stale socket file), then accepts on a background thread.
  Status Start();
  // Serves `fd`, a connected socket (e.g. one end of a socketpair inherited from a launcher), on
  // a thread of its own, like an accepted connection (with or without Start()). The peer's uid
  // must be allowed (kPermissionDenied otherwise; `fd` is closed). `on_close`, if set, runs on
  // that thread when the peer closes the connection (not when Stop() ends it).
  Status Adopt(vmm::UniqueFd fd, std::function<void()> on_close = nullptr);
  // Stops accepting, disconnects clients (adopted ones too), joins threads, removes the socket
  // file. Connections' KV memory is freed.
  void Stop();

  uint64_t connections_accepted() const { return accepted_.load(); }
  uint64_t connections_refused() const { return refused_.load(); }
  uint64_t requests_served() const { return served_.load(); }

 private:
  void AcceptLoop();
  // Serves a client; with a non-OK `refusal`, answers its first request with it and hangs up.
  void Serve(int fd, Status refusal, std::function<void()> on_close);
  // SO_PEERCRED: OK when the peer's uid is ours or allowed.
  Status CheckPeer(int fd) const;

  Hmm* hmm_;
  ServerOptions options_;
  CheckpointCache checkpoints_;  // shared by all connections
  vmm::UniqueFd listen_fd_;
  vmm::UniqueFd wake_r_, wake_w_;  // wakes the accept loop on Stop
  std::thread acceptor_;
  std::mutex mu_;
  std::condition_variable idle_cv_;  // signalled when a client thread ends
  int active_clients_ = 0;           // detached client threads still running
  std::set<int> client_fds_;
  bool listening_ = false;  // the socket file is ours to remove
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
// Sends a request: raw when it fits in kMaxRequestBytes, else in framed parts.
// kInvalidArgument beyond kMaxAssembledRequestBytes.
Status SendRequest(int socket, const std::string& request);

}  // namespace emoe::hbm

#endif  // HBM_SERVER_H_
