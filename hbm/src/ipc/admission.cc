// HmmServer's admission of connections (hbm/server.h "Admission"): peer checks, the global and
// per-process limits, reclaiming idle connections that hold nothing, the handshake deadline.
#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>

#include "hbm/server.h"

namespace emoe::hbm {

namespace {

std::string Seconds(double s) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%g s", s);
  return buf;
}

std::string Peer(const ucred& c) {
  return "pid " + std::to_string(c.pid) + " (uid " + std::to_string(c.uid) + ")";
}

std::chrono::steady_clock::duration Duration(double seconds) {
  return std::chrono::duration_cast<std::chrono::steady_clock::duration>(
      std::chrono::duration<double>(seconds));
}

// A one-part error reply (wire.h: '0' then the JSON), sent without blocking: the peer may not be
// reading. Best effort.
void TrySendError(int fd, const Status& s) {
  const std::string part = "0" + ErrorJson(s);
  (void)!send(fd, part.data(), part.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
}

}  // namespace

Status ConnectionLimits::Validate() const {
  if (max_clients < 1) {
    return Status::InvalidArgument("max_clients is " + std::to_string(max_clients) +
                                   "; it must be at least 1");
  }
  if (max_clients_per_peer < 1 || max_clients_per_peer > max_clients) {
    return Status::InvalidArgument(
        "max_clients_per_peer is " + std::to_string(max_clients_per_peer) +
        "; it must be between 1 and max_clients (" + std::to_string(max_clients) + ")");
  }
  if (!std::isfinite(handshake_timeout_s) || handshake_timeout_s <= 0) {
    return Status::InvalidArgument("handshake_timeout_s is " + std::to_string(handshake_timeout_s) +
                                   "; it must be a positive number of seconds");
  }
  if (!std::isfinite(idle_timeout_s) || idle_timeout_s < 0) {
    return Status::InvalidArgument(
        "idle_timeout_s is " + std::to_string(idle_timeout_s) +
        "; it must be 0 (never reclaim) or a positive number of seconds");
  }
  return Status::Ok();
}

bool HmmServer::AdmitAccepted(int fd) {
  ucred peer{};
  Status refusal = CheckPeer(fd, &peer);
  vmm::MutexLock l(&mu_);
  const Clock::time_point now = Clock::now();
  if (refusal.ok()) refusal = AdmitLocked(peer, now);
  if (!refusal.ok()) {
    // Said at once, not in answer to a request: the client reads it as the reply to its first.
    ++refused_;
    TrySendError(fd, refusal);
    return false;
  }
  ++accepted_;
  Conn c;
  c.pid = peer.pid;
  c.uid = peer.uid;
  c.idle_since = now;
  conns_[fd] = c;
  client_fds_.insert(fd);
  ++active_clients_;
  std::thread(&HmmServer::Serve, this, fd, nullptr).detach();  // Stop() waits for it
  return true;
}

Status HmmServer::CheckPeer(int fd, ucred* cred) const {
  socklen_t len = sizeof(*cred);
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, cred, &len) != 0) {
    return Status::PermissionDenied("cannot read the peer's credentials (SO_PEERCRED)", errno);
  }
  if (cred->uid == geteuid() || options_.allowed_uids.count(cred->uid) > 0) return Status::Ok();
  return Status::PermissionDenied("uid " + std::to_string(cred->uid) +
                                  " may not use this HMM (server uid " + std::to_string(geteuid()) +
                                  ")");
}

Status HmmServer::AdmitLocked(const ucred& peer, Clock::time_point now) {
  const ConnectionLimits& lim = options_.limits;
  int total = 0, of_peer = 0;
  for (const auto& [fd, c] : conns_) {
    if (c.adopted || c.reclaimed) continue;
    ++total;
    if (c.pid == peer.pid) ++of_peer;
  }
  if (of_peer >= lim.max_clients_per_peer) {
    if (ReclaimLocked(peer.pid, now)) return Status::Ok();
    return Status::ResourceExhausted("hmmd: " + Peer(peer) + " already has " +
                                     std::to_string(of_peer) +
                                     " connections, the limit per process (max_clients_per_peer " +
                                     std::to_string(lim.max_clients_per_peer) +
                                     ", hmmd --max_clients_per_peer); none of "
                                     "them is idle and holding nothing: close one first");
  }
  if (total >= lim.max_clients) {
    if (ReclaimLocked(0, now)) return Status::Ok();
    return Status::ResourceExhausted(
        "hmmd: " + std::to_string(total) + " connections are open, the limit (max_clients " +
        std::to_string(lim.max_clients) + ", hmmd --max_clients), and none is idle for " +
        Seconds(lim.idle_timeout_s) + " holding nothing; refused " + Peer(peer));
  }
  return Status::Ok();
}

bool HmmServer::ReclaimLocked(pid_t pid, Clock::time_point now) {
  const double idle_s = options_.limits.idle_timeout_s;
  if (idle_s <= 0) return false;
  const Clock::time_point cutoff = now - Duration(idle_s);
  int victim = -1;
  for (const auto& [fd, c] : conns_) {
    if (c.adopted || c.reclaimed || c.busy || c.holds || !c.established) continue;
    if ((pid != 0 && c.pid != pid) || c.idle_since > cutoff) continue;
    if (victim < 0 || c.idle_since < conns_.at(victim).idle_since) victim = fd;
  }
  if (victim < 0) return false;
  Conn& c = conns_.at(victim);
  c.reclaimed = true;
  const auto idle = std::chrono::duration<double>(now - c.idle_since).count();
  TrySendError(victim,
               Status::Unavailable("hmmd closed this connection: idle for " + Seconds(idle) +
                                   " holding nothing (idle_timeout_s " + Seconds(idle_s) +
                                   ") while a new client needed its slot; connect again"));
  shutdown(victim, SHUT_RDWR);  // its thread sees the end and cleans up
  ++reclaimed_;
  return true;
}

bool HmmServer::AwaitRequest(int fd, Clock::time_point connected) {
  const double limit_s = options_.limits.handshake_timeout_s;
  const Clock::time_point deadline = connected + Duration(limit_s);
  for (;;) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) break;
    pollfd pf{fd, POLLIN, 0};
    const int r = poll(&pf, 1, static_cast<int>(std::min<int64_t>(left + 1, 60000)));
    if (r > 0) {
      // A receive that stalls mid-request cannot outlast the deadline by more than its length.
      timeval tv{static_cast<time_t>(limit_s),
                 static_cast<suseconds_t>(std::fmod(limit_s, 1.0) * 1e6)};
      setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
      return true;  // a request, a hang-up or an error: ReceiveRequest tells which
    }
    if (r < 0 && errno != EINTR) return false;
  }
  MissedHandshake(fd);
  return false;
}

void HmmServer::MissedHandshake(int fd) {
  ++handshake_timeouts_;
  TrySendError(fd, Status::Unavailable("hmmd: no request answered OK within " +
                                       Seconds(options_.limits.handshake_timeout_s) +
                                       " of connecting (the handshake deadline, "
                                       "handshake_timeout_s, hmmd --handshake_timeout_s): "
                                       "closing the connection"));
}

bool HmmServer::BeginRequest(int fd) {
  vmm::MutexLock l(&mu_);
  auto it = conns_.find(fd);
  if (it == conns_.end() || it->second.reclaimed) return false;
  it->second.busy = true;
  return true;
}

void HmmServer::EndRequest(int fd, bool established, bool holds) {
  vmm::MutexLock l(&mu_);
  auto it = conns_.find(fd);
  if (it == conns_.end()) return;
  Conn& c = it->second;
  if (established && !c.established) {
    const timeval none{0, 0};  // established: no receive timeout any more
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &none, sizeof(none));
  }
  c.busy = false;
  c.established = c.established || established;
  c.holds = holds;
  c.idle_since = Clock::now();
}

}  // namespace emoe::hbm
