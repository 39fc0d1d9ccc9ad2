// HmmServer: the listening socket, peer checks (SO_PEERCRED), one thread and Session per
// connection. What a request means is in handlers.cc; how it is framed, in wire.cc.
#include "hbm/server.h"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <vector>

#include "vmm/unix_socket.h"

namespace emoe::hbm {

namespace {

// How long a refused connection waits for its first request before it is closed.
constexpr std::chrono::seconds kRefusalLinger{1};

}  // namespace

StatusOr<std::shared_ptr<const Checkpoint>> CheckpointCache::Open(const std::string& path) {
  vmm::MutexLock l(&mu_);
  auto it = by_path_.find(path);
  if (it == by_path_.end()) {
    VMM_ASSIGN_OR_RETURN(Checkpoint c, OpenCheckpoint(path));
    it = by_path_.emplace(path, std::make_shared<const Checkpoint>(std::move(c))).first;
  }
  return it->second;
}

Status HmmServer::Start() {
  VMM_RETURN_IF_ERROR(options_.limits.Validate().Annotate("hmmd connection limits"));
  // Refuses a path a live server answers on or whose lock another server holds; Stop() removes
  // the file only while it is still ours.
  VMM_ASSIGN_OR_RETURN(vmm::OwnedUnixSocket listener,
                       vmm::OwnedUnixSocket::Listen(options_.socket_path, options_.socket_mode,
                                                    /*backlog=*/64));
  return Start(std::move(listener));
}

Status HmmServer::Start(vmm::OwnedUnixSocket listener) {
  if (!listener.valid()) return Status::InvalidArgument("hmmd: start without a listening socket");
  VMM_RETURN_IF_ERROR(options_.limits.Validate().Annotate("hmmd connection limits"));
  listener_ = std::move(listener);
  InstallInterruptHandler(options_.interrupt_signal);
  int p[2];
  if (pipe2(p, O_CLOEXEC) != 0) return Status::FromErrno(errno, "hmmd", "pipe2");
  wake_r_.Reset(p[0]);
  wake_w_.Reset(p[1]);
  acceptor_ = std::thread(&HmmServer::AcceptLoop, this);
  return Status::Ok();
}

void HmmServer::Stop() {
  stopping_ = true;
  cancel_.Cancel();  // loads in flight stop between batches of reads
  if (acceptor_.joinable()) {
    (void)!write(wake_w_.get(), "x", 1);
    acceptor_.join();
  }
  {
    vmm::MutexLock l(&mu_);
    for (int fd : client_fds_) shutdown(fd, SHUT_RDWR);  // unblocks their recv
    while (active_clients_ != 0) {
      if (idle_cv_.WaitFor(&mu_, std::chrono::milliseconds(100))) continue;
      // Still blocked (open() of a FIFO, a read that never ends): interrupt them. A thread
      // leaves client_threads_ under mu_ before it ends, so each one signalled here is alive.
      for (const auto& [fd, thread] : client_threads_) {
        if (options_.interrupt_signal > 0) pthread_kill(thread, options_.interrupt_signal);
      }
    }
  }
  listener_.Remove();
}

Status HmmServer::Adopt(vmm::UniqueFd fd, std::function<void()> on_close) {
  if (!fd.valid()) return Status::InvalidArgument("adopt: no socket");
  if (stopping_) return Status::FailedPrecondition("adopt: the server is stopping");
  int type = 0;
  socklen_t len = sizeof(type);
  if (getsockopt(fd.get(), SOL_SOCKET, SO_TYPE, &type, &len) != 0) {
    return Status::FromErrno(errno, "adopt fd " + std::to_string(fd.get()), "getsockopt");
  }
  if (type != SOCK_SEQPACKET) {
    return Status::InvalidArgument("adopt fd " + std::to_string(fd.get()) +
                                   ": not a SOCK_SEQPACKET socket");
  }
  ucred peer{};
  VMM_RETURN_IF_ERROR(CheckPeer(fd.get(), &peer).Annotate("adopt fd " + std::to_string(fd.get())));
  InstallInterruptHandler(options_.interrupt_signal);
  vmm::MutexLock l(&mu_);
  const int raw = fd.Release();
  Conn c;  // established from the start, outside the limits (hbm/server.h "Admission")
  c.pid = peer.pid;
  c.uid = peer.uid;
  c.adopted = true;
  c.established = true;
  c.idle_since = Clock::now();
  conns_[raw] = c;
  client_fds_.insert(raw);
  ++active_clients_;
  ++accepted_;
  std::thread(&HmmServer::Serve, this, raw, std::move(on_close)).detach();  // Stop() waits
  return Status::Ok();
}

void HmmServer::AcceptLoop() {
  // Refused connections, answered at once: each is closed once its first request has come (a
  // connection closed with a request unread is reset, and the peer would lose the answer), or
  // after a second. Few at a time: beyond kMaxPending, closed at once.
  constexpr size_t kMaxPending = 256;
  std::vector<std::pair<vmm::UniqueFd, Clock::time_point>> refused;
  for (;;) {
    std::vector<pollfd> pf = {{listener_.fd(), POLLIN, 0}, {wake_r_.get(), POLLIN, 0}};
    int timeout_ms = -1;
    const Clock::time_point now = Clock::now();
    for (const auto& [fd, until] : refused) {
      pf.push_back({fd.get(), POLLIN, 0});
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - now);
      const int ms = static_cast<int>(std::max<int64_t>(0, left.count() + 1));
      timeout_ms = timeout_ms < 0 ? ms : std::min(timeout_ms, ms);
    }
    if (poll(pf.data(), pf.size(), timeout_ms) < 0 && errno != EINTR) return;
    if (stopping_) return;
    const Clock::time_point after = Clock::now();
    size_t kept = 0;
    for (size_t i = 0; i < refused.size(); ++i) {
      if (pf[2 + i].revents == 0 && after < refused[i].second) {
        refused[kept++] = std::move(refused[i]);
        continue;
      }
      char drain[256];
      while (recv(refused[i].first.get(), drain, sizeof(drain), MSG_DONTWAIT) > 0) {
      }
    }
    refused.resize(kept);  // the dropped ones close here
    if (!(pf[0].revents & POLLIN)) continue;
    vmm::UniqueFd fd(accept4(listener_.fd(), nullptr, nullptr, SOCK_CLOEXEC));
    if (!fd.valid() || AdmitAccepted(fd.get())) {
      (void)fd.Release();  // admitted: its thread owns it
      continue;
    }
    if (refused.size() < kMaxPending) refused.emplace_back(std::move(fd), after + kRefusalLinger);
  }
}

void HmmServer::Serve(int fd, std::function<void()> on_close) {
  if (options_.interrupt_signal > 0) {  // Stop's interruption must reach this thread
    sigset_t interrupt;
    sigemptyset(&interrupt);
    sigaddset(&interrupt, options_.interrupt_signal);
    pthread_sigmask(SIG_UNBLOCK, &interrupt, nullptr);
  }
  bool established = false;  // adopted connections are from the start
  {
    vmm::MutexLock l(&mu_);
    established = conns_.at(fd).established;
    client_threads_[fd] = pthread_self();
  }
  const Clock::time_point connected = Clock::now();
  {
    Session session;  // its KV memory goes back when the connection ends
    session.checkpoints = &checkpoints_;
    session.cancel = &cancel_;
    bool attached = false;  // arenas were passed to the peer
    for (;;) {
      if (!established && !AwaitRequest(fd, connected)) break;  // the handshake deadline
      Incoming in = ReceiveRequest(fd);
      if (in.kind == Incoming::kGone || stopping_) {  // the client went away, or we stop
        // Unestablished, a request stalled past the deadline (SO_RCVTIMEO) ends the same way.
        if (!established && in.error.err() == EAGAIN && !stopping_) MissedHandshake(fd);
        break;
      }
      if (in.kind != Incoming::kRequest) {
        // Malformed or oversized: say so; keep the connection unless the stream is lost.
        if (!SendReply(fd, Reply{ErrorJson(in.error), {}}).ok() || in.kind == Incoming::kFatal) {
          break;
        }
        continue;
      }
      if (!BeginRequest(fd)) break;  // reclaimed meanwhile: the reply it read says so
      Reply reply =
          HandleRequest(*hmm_, in.request, options_.allow_writable, options_.share_kv, &session);
      ++served_;
      attached = attached || !reply.fds.empty();
      established = established || ReplyStatus(reply.json).ok();
      EndRequest(fd, established, attached || !session.kv.empty());
      if (!SendReply(fd, reply).ok()) break;  // EPIPE: the client died mid-request
    }
  }
  if (!stopping_ && on_close) on_close();
  vmm::MutexLock l(&mu_);
  conns_.erase(fd);
  client_threads_.erase(fd);
  client_fds_.erase(fd);
  close(fd);
  if (--active_clients_ == 0) idle_cv_.SignalAll();
}

}  // namespace emoe::hbm
