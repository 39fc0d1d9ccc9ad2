// HmmServer: the listening socket, peer checks (SO_PEERCRED), one thread and Session per
// connection. What a request means is in handlers.cc; how it is framed, in wire.cc.
#include "hbm/server.h"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>

#include "vmm/unix_socket.h"

namespace emoe::hbm {

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
  InstallInterruptHandler(options_.interrupt_signal);
  VMM_ASSIGN_OR_RETURN(listen_fd_, vmm::ListenUnixSocket(options_.socket_path, options_.socket_mode,
                                                         /*backlog=*/64));
  listening_ = true;  // the file is ours: Stop() removes it
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
  if (listening_) {
    unlink(options_.socket_path.c_str());
    listening_ = false;
  }
}

Status HmmServer::CheckPeer(int fd) const {
  ucred cred{};
  socklen_t len = sizeof(cred);
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
    return Status::PermissionDenied("cannot read the peer's credentials (SO_PEERCRED)", errno);
  }
  if (cred.uid == geteuid() || options_.allowed_uids.count(cred.uid) > 0) return Status::Ok();
  return Status::PermissionDenied("uid " + std::to_string(cred.uid) +
                                  " may not use this HMM (server uid " + std::to_string(geteuid()) +
                                  ")");
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
  VMM_RETURN_IF_ERROR(CheckPeer(fd.get()).Annotate("adopt fd " + std::to_string(fd.get())));
  InstallInterruptHandler(options_.interrupt_signal);
  vmm::MutexLock l(&mu_);
  const int raw = fd.Release();
  client_fds_.insert(raw);
  ++active_clients_;
  ++accepted_;
  std::thread(&HmmServer::Serve, this, raw, Status::Ok(), std::move(on_close))
      .detach();  // Stop() waits for it
  return Status::Ok();
}

void HmmServer::AcceptLoop() {
  for (;;) {
    pollfd pf[2] = {{listen_fd_.get(), POLLIN, 0}, {wake_r_.get(), POLLIN, 0}};
    if (poll(pf, 2, -1) < 0 && errno != EINTR) return;
    if (stopping_) return;
    if (!(pf[0].revents & POLLIN)) continue;
    const int fd = accept4(listen_fd_.get(), nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    Status refusal = CheckPeer(fd);
    vmm::MutexLock l(&mu_);
    if (refusal.ok() && static_cast<int>(client_fds_.size()) >= options_.max_clients) {
      refusal = Status::ResourceExhausted("too many clients (" +
                                          std::to_string(options_.max_clients) + ")");
    }
    if (refusal.ok()) {
      ++accepted_;
    } else {
      ++refused_;
    }
    client_fds_.insert(fd);
    ++active_clients_;
    std::thread(&HmmServer::Serve, this, fd, refusal, nullptr).detach();  // Stop() waits for it
  }
}

void HmmServer::Serve(int fd, Status refusal, std::function<void()> on_close) {
  if (options_.interrupt_signal > 0) {  // Stop's interruption must reach this thread
    sigset_t interrupt;
    sigemptyset(&interrupt);
    sigaddset(&interrupt, options_.interrupt_signal);
    pthread_sigmask(SIG_UNBLOCK, &interrupt, nullptr);
  }
  {
    vmm::MutexLock l(&mu_);
    client_threads_[fd] = pthread_self();
  }
  if (!refusal.ok()) {
    // Answer the first request (so the client learns why), then hang up. A silent peer gets
    // one second.
    pollfd pf{fd, POLLIN, 0};
    if (poll(&pf, 1, 1000) == 1 && vmm::RecvFds(fd, 0).ok()) {
      (void)SendReply(fd, Reply{ErrorJson(refusal), {}});
    }
  }
  {
    Session session;  // its KV memory goes back when the connection ends
    session.checkpoints = &checkpoints_;
    session.cancel = &cancel_;
    while (refusal.ok()) {
      Incoming in = ReceiveRequest(fd);
      if (in.kind == Incoming::kGone || stopping_) break;  // the client went away, or we stop
      if (in.kind != Incoming::kRequest) {
        // Malformed or oversized: say so; keep the connection unless the stream is lost.
        if (!SendReply(fd, Reply{ErrorJson(in.error), {}}).ok() || in.kind == Incoming::kFatal) {
          break;
        }
        continue;
      }
      Reply reply =
          HandleRequest(*hmm_, in.request, options_.allow_writable, options_.share_kv, &session);
      ++served_;
      if (!SendReply(fd, reply).ok()) break;  // EPIPE: the client died mid-request
    }
  }
  if (refusal.ok() && !stopping_ && on_close) on_close();
  vmm::MutexLock l(&mu_);
  client_threads_.erase(fd);
  client_fds_.erase(fd);
  close(fd);
  if (--active_clients_ == 0) idle_cv_.SignalAll();
}

}  // namespace emoe::hbm
