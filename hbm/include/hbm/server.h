// hbm/server.h: serving an Hmm to other processes (the hmmd protocol): instances attach to its
// memory, a coordinator drives it (hbm/remote_control.h).
//
// Transport: a SOCK_SEQPACKET UNIX socket; requests and replies are framed as hbm/wire.h says.
// Every message is defined once, for both processes, in hbm/src/ipc/codec.h.
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
//       "failed_allocations","grows","shrinks","failed_grows","discarded_bytes","fragmentation"}
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
// A launcher's first message on hmmd's control connection (hbm/daemon.h, not a server op):
//   {"op":"start","options":{"devices":{...},"memory":{...},"loader":{...},
//       "copy_threads_per_device":N}}   -> answered like "devices" once hmmd serves
// Field types are checked: a missing or wrongly typed field is INVALID_ARGUMENT naming the field
// ("load: field 'placement.embed.devices' must be an array of integers").
// Errors: {"ok":false,"code":"NOT_FOUND","error":"..."}. A malformed or oversized request gets an
// error reply and the connection stays usable; a client that dies mid-request only loses its own
// connection.
//
// Security: the socket file is created with mode 0600 (ServerOptions::socket_mode) and every
// connection's peer uid (SO_PEERCRED) must be the server's uid or in allowed_uids; others get an
// error reply and are disconnected. An adopted connection (Adopt()) is checked the same way.
//
// Thread safety: Start/Adopt/Stop from one thread; the server's client set is guarded by a
// vmm::Mutex (GUARDED_BY). One thread per connection; HandleRequest() is
// reentrant (a Session is used by one thread at a time; a CheckpointCache by any).
#ifndef HBM_SERVER_H_
#define HBM_SERVER_H_

#include <pthread.h>
#include <signal.h>
#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "hbm/cancel.h"
#include "hbm/hmm.h"
#include "hbm/wire.h"
#include "vmm/fd_passing.h"
#include "vmm/mutex.h"
#include "vmm/unique_fd.h"

namespace emoe::hbm {

struct ServerOptions {
  std::string socket_path;  // required by Start(); Adopt() alone needs none
  mode_t socket_mode = 0600;
  std::set<uid_t> allowed_uids;  // besides the server's own uid
  bool allow_writable = false;   // let clients map weight arenas writable (tests only)
  bool share_kv = true;          // pass KV arenas (read-write) to clients that ask ("kv": true)
  int max_clients = 64;
  // Stop() interrupts a client thread blocked in a system call that neither the cancellation of
  // its work nor the shutdown of its socket reaches (open() of a FIFO, a read that never ends)
  // with this signal, every 100 ms until the thread ends. The server installs a handler that does
  // nothing (no SA_RESTART: the call fails with EINTR) unless the process has one; 0: never.
  int interrupt_signal = SIGURG;
};

// Checkpoints opened by "load", by path as given, kept open for the next load of the same path
// (the headers are parsed once). Thread safe.
class CheckpointCache {
 public:
  // The checkpoint at `path`, opened now or earlier; OpenCheckpoint's error otherwise (not
  // cached).
  StatusOr<std::shared_ptr<const Checkpoint>> Open(const std::string& path);

 private:
  vmm::Mutex mu_;
  std::map<std::string, std::shared_ptr<const Checkpoint>> by_path_ GUARDED_BY(mu_);
};

// The state of one connection: the KV memory it allocated (freed with it) and where its loads
// find opened checkpoints. Used by one thread at a time (the connection's).
struct Session {
  CheckpointCache* checkpoints = nullptr;  // not owned; null: each load opens its checkpoint
  const CancelToken* cancel = nullptr;     // not owned; stops its loads (the server's Stop)
  uint64_t next_kv_id = 1;
  std::map<uint64_t, vmm::Extent> kv;  // kv_alloc id -> extent of the device's KV arena
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
  // Stops accepting, cancels the work in flight (loads stop between batches of reads), shuts
  // the clients' sockets down (adopted ones too), interrupts client threads still blocked
  // (ServerOptions::interrupt_signal), joins them and removes the socket file. Connections' KV
  // memory is freed. Returns once every client thread has ended, which takes at most about a
  // batch of reads unless a thread is blocked where no signal reaches (uninterruptible I/O).
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
  vmm::Mutex mu_;
  vmm::CondVar idle_cv_;                    // signalled when a client thread ends
  int active_clients_ GUARDED_BY(mu_) = 0;  // detached client threads still running
  std::set<int> client_fds_ GUARDED_BY(mu_);
  std::map<int, pthread_t> client_threads_ GUARDED_BY(mu_);  // by fd, while Serve runs
  CancelToken cancel_;      // cancelled by Stop: the sessions' loads stop
  bool listening_ = false;  // the socket file is ours to remove
  std::atomic<bool> stopping_{false};
  std::atomic<uint64_t> accepted_{0}, refused_{0}, served_{0};
};

}  // namespace emoe::hbm

#endif  // HBM_SERVER_H_
