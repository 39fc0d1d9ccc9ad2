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
//       + one memfd per arena (read-only file descriptions unless writable is allowed; weights
//       and experts arenas are sealed against writes, DeviceMemoryOptions::seal_weights, so not
//       even a reopen of the fd through /proc/PID/fd can map them writable); with
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
//   {"op":"apply_copies","copies":[{"names":[..],"from":0,"to":2,"usage":"experts","prefix":""},
//       ...],"options":{"max_parallel":0,"chunk_bytes":8388608}}   options (and each) optional
//       -> {"ok":true,"report":{"copies":[{"bytes","start_s","end_s"},...],"bytes","prepare_s",
//           "copy_s","register_s"}}
//       Hmm::ApplyCopies: the whole batch checked first, copied at once, registered together; all
//       or nothing, the error names the copy ("apply copies: copy 3 of 64 (...): ...").
//   {"op":"describe","records":[["x",0],...]}
//       -> {"ok":true,"records":[{"name","device","usage","dtype","shape","size","extent_size"}],
//           "devices":[...as in "stats"]}   the records in order, from one registry snapshot;
//       NOT_FOUND names the first record that is not registered.
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
// Admission (ConnectionLimits): no client of the same uid can lock the others out by holding
// connections open.
//  - A connection is established by its first request answered OK (HmmClient::Connect pings,
//    RemoteHmmControl::Connect asks "devices"). Until then it has handshake_timeout_s from its
//    accept to get there: then it is answered UNAVAILABLE ("no request ... handshake deadline")
//    and closed. While it is not established a receive that stalls mid-request times out too.
//  - Established connections are never closed for being idle while there is room: the
//    coordinator's control connection, instances attached for hours, a controller between scale
//    events stay. When a new connection would pass max_clients, or max_clients_per_peer for its
//    process, the longest-idle connection that holds nothing (no KV memory, no arenas passed to
//    it by an attach, not adopted, no request in progress) and has sent nothing for
//    idle_timeout_s is closed to make room (of that same process when its own cap is what is
//    hit); it is told why (UNAVAILABLE, in the reply its next request reads). Nothing
//    reclaimable: the newcomer is refused with RESOURCE_EXHAUSTED naming the limit, its value
//    and the peer (pid, uid).
//  - Peers are processes: SO_PEERCRED's pid at connect time. max_clients_per_peer (below
//    max_clients) keeps one process from taking every slot. Adopted connections count against
//    neither limit and are never closed by admission.
//  - Refusals and closes are answered without waiting for the peer (non-blocking, best effort).
//
// Thread safety: Start/Adopt/Stop from one thread; the server's client set is guarded by a
// vmm::Mutex (GUARDED_BY). One thread per connection; HandleRequest() is
// reentrant (a Session is used by one thread at a time; a CheckpointCache by any).
#ifndef HBM_SERVER_H_
#define HBM_SERVER_H_

#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/types.h>

#include <atomic>
#include <chrono>
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
#include "vmm/unix_socket.h"

namespace emoe::hbm {

// Admission of connections (see "Admission" above). Validate(): kInvalidArgument naming the field.
struct ConnectionLimits {
  int max_clients = 64;            // connections at once, adopted ones not counted; >= 1
  int max_clients_per_peer = 16;   // of one process; 1 .. max_clients
  double handshake_timeout_s = 5;  // to send a first request answered OK; > 0
  // Idle this long and holding nothing: closed when a newcomer needs the slot. 0: never.
  double idle_timeout_s = 60;
  Status Validate() const;
};

struct ServerOptions {
  std::string socket_path;  // required by Start(); Adopt() alone needs none
  mode_t socket_mode = 0600;
  std::set<uid_t> allowed_uids;  // besides the server's own uid
  // Tests only: let clients attach weights writable. Only an Hmm created without
  // DeviceMemoryOptions::seal_weights can be: a sealed arena is FAILED_PRECONDITION.
  bool allow_writable = false;
  bool share_kv = true;  // pass KV arenas (read-write) to clients that ask ("kv": true)
  ConnectionLimits limits;
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

  // Takes the socket path (vmm::OwnedUnixSocket: a lock file beside it, refused with
  // kAlreadyExists naming the path and the other server's pid while a live server answers there
  // or holds the lock; a stale socket file is replaced), listens, then accepts on a background
  // thread. kInvalidArgument for bad ConnectionLimits.
  Status Start();
  // The same on a socket taken earlier (hmmd takes it before creating any memory, so a second
  // daemon on a live one's path fails at once). Connections wait in its backlog until now.
  Status Start(vmm::OwnedUnixSocket listener);
  // Serves `fd`, a connected socket (e.g. one end of a socketpair inherited from a launcher), on
  // a thread of its own, like an accepted connection (with or without Start()). The peer's uid
  // must be allowed (kPermissionDenied otherwise; `fd` is closed). `on_close`, if set, runs on
  // that thread when the peer closes the connection (not when Stop() ends it).
  Status Adopt(vmm::UniqueFd fd, std::function<void()> on_close = nullptr);
  // Stops accepting, cancels the work in flight (loads stop between batches of reads), shuts
  // the clients' sockets down (adopted ones too), interrupts client threads still blocked
  // (ServerOptions::interrupt_signal), joins them, and removes the socket file if it is still
  // the one Start() created, and its lock. Connections' KV memory is freed. Returns once every
  // client thread has ended, which takes at most about a batch of reads unless a thread is
  // blocked where no signal reaches (uninterruptible I/O).
  void Stop();

  uint64_t connections_accepted() const { return accepted_.load(); }
  uint64_t connections_refused() const { return refused_.load(); }
  uint64_t requests_served() const { return served_.load(); }
  // Closed for missing the handshake deadline / reclaimed for a newcomer (see "Admission").
  uint64_t handshake_timeouts() const { return handshake_timeouts_.load(); }
  uint64_t connections_reclaimed() const { return reclaimed_.load(); }

 private:
  using Clock = std::chrono::steady_clock;
  // What admission knows of a served connection.
  struct Conn {
    pid_t pid = 0;
    uid_t uid = 0;
    bool adopted = false;
    bool established = false;      // a request was answered OK
    bool busy = false;             // a request is being handled
    bool holds = false;            // KV memory, or arenas passed by an attach
    bool reclaimed = false;        // closed by admission; its thread is on its way out
    Clock::time_point idle_since;  // accept, then the end of each request
  };

  void AcceptLoop();
  // Admits an accepted connection (true: a thread serves it and owns `fd`) or refuses it, saying
  // why (false: the caller closes it).
  bool AdmitAccepted(int fd) EXCLUDES(mu_);
  // Serves a client (accepted or adopted) until it leaves or Stop().
  void Serve(int fd, std::function<void()> on_close);
  // SO_PEERCRED into `cred`: OK when the peer's uid is ours or allowed.
  Status CheckPeer(int fd, ucred* cred) const;
  // OK when a new connection of `peer` fits the limits, possibly after reclaiming an idle one.
  Status AdmitLocked(const ucred& peer, Clock::time_point now) REQUIRES(mu_);
  // Closes the longest-idle reclaimable connection (of `pid`, or anyone's when 0); false if none.
  bool ReclaimLocked(pid_t pid, Clock::time_point now) REQUIRES(mu_);
  // Unestablished `fd`: waits until it is readable or the handshake deadline (counted from
  // `connected`) passes; false (after telling the peer) when it passed.
  bool AwaitRequest(int fd, Clock::time_point connected);
  // Counts and tells the peer of `fd` that it missed the handshake deadline.
  void MissedHandshake(int fd);
  // Marks `fd` busy; false when admission reclaimed it meanwhile (drop the request).
  bool BeginRequest(int fd) EXCLUDES(mu_);
  void EndRequest(int fd, bool established, bool holds) EXCLUDES(mu_);

  Hmm* hmm_;
  ServerOptions options_;
  CheckpointCache checkpoints_;    // shared by all connections
  vmm::OwnedUnixSocket listener_;  // the socket file and its lock, while Start()ed
  vmm::UniqueFd wake_r_, wake_w_;  // wakes the accept loop on Stop
  std::thread acceptor_;
  vmm::Mutex mu_;
  vmm::CondVar idle_cv_;                    // signalled when a client thread ends
  int active_clients_ GUARDED_BY(mu_) = 0;  // detached client threads still running
  std::set<int> client_fds_ GUARDED_BY(mu_);
  std::map<int, Conn> conns_ GUARDED_BY(mu_);  // by fd: every connection in client_fds_
  std::map<int, pthread_t> client_threads_ GUARDED_BY(mu_);  // by fd, while Serve runs
  CancelToken cancel_;  // cancelled by Stop: the sessions' loads stop
  std::atomic<bool> stopping_{false};
  std::atomic<uint64_t> accepted_{0}, refused_{0}, served_{0};
  std::atomic<uint64_t> handshake_timeouts_{0}, reclaimed_{0};
};

}  // namespace emoe::hbm

#endif  // HBM_SERVER_H_
