#include "vmm/fd_passing.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>

#include "vmm/os.h"

namespace vmm {

Status SendFds(int socket, const std::string& payload, const std::vector<int>& fds) {
  if (payload.empty() || payload.size() > kMaxPassedPayload) {
    return Status::InvalidArgument("send: payload of " + std::to_string(payload.size()) +
                                   " bytes (must be 1 to " + std::to_string(kMaxPassedPayload) +
                                   ")");
  }
  if (fds.size() > kMaxPassedFds) {
    return Status::InvalidArgument("send: " + std::to_string(fds.size()) + " fds (at most " +
                                   std::to_string(kMaxPassedFds) + ")");
  }
  iovec iov{const_cast<char*>(payload.data()), payload.size()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  std::vector<char> control(CMSG_SPACE(sizeof(int) * std::max<size_t>(fds.size(), 1)));
  if (!fds.empty()) {
    msg.msg_control = control.data();
    msg.msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
    std::memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
  }
  const ssize_t n = RetryOnEintr([&] { return sendmsg(socket, &msg, MSG_NOSIGNAL); });
  if (n < 0)
    return Status::FromErrno(errno, "send " + std::to_string(fds.size()) + " fds", "sendmsg");
  if (static_cast<size_t>(n) != payload.size()) {
    // SOCK_SEQPACKET/DGRAM send atomically; a stream socket may not. Refuse partial messages.
    return Status::DataLoss("send: only " + std::to_string(n) + " of " +
                            std::to_string(payload.size()) +
                            " bytes were sent (use a SOCK_SEQPACKET socket)");
  }
  return Status::Ok();
}

StatusOr<ReceivedMessage> RecvFds(int socket, size_t max_fds) {
  if (max_fds > kMaxPassedFds) max_fds = kMaxPassedFds;
  ReceivedMessage out;
  std::string buf(kMaxPassedPayload, '\0');
  iovec iov{buf.data(), buf.size()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  std::vector<char> control(CMSG_SPACE(sizeof(int) * std::max<size_t>(max_fds, 1)));
  msg.msg_control = control.data();
  msg.msg_controllen = control.size();
  const ssize_t n = RetryOnEintr([&] { return recvmsg(socket, &msg, MSG_CMSG_CLOEXEC); });
  if (n < 0) return Status::FromErrno(errno, "receive fds", "recvmsg");
  // Take ownership of every fd that arrived before judging the message.
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    const size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < count; ++i) {
      int fd;
      std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
      out.fds.emplace_back(fd);
    }
  }
  if (n == 0) return Status::Unavailable("receive fds: the peer closed the connection");
  if (msg.msg_flags & MSG_CTRUNC) {
    return Status::DataLoss("receive fds: more than " + std::to_string(max_fds) +
                            " fds were sent; the extra ones were dropped (and all are closed)");
  }
  if (msg.msg_flags & MSG_TRUNC) {
    return Status::DataLoss("receive fds: the message exceeds " +
                            std::to_string(kMaxPassedPayload) + " bytes");
  }
  buf.resize(n);
  out.payload = std::move(buf);
  return out;
}

Status SendArena(int socket, const Arena& arena) {
  VMM_ASSIGN_OR_RETURN(ExportedArena e, arena.Export());
  return SendFds(socket, e.SerializeMetadata(), {e.fd.get()})
      .Annotate("send arena '" + arena.name() + "'");
}

StatusOr<std::shared_ptr<Arena>> ReceiveArena(int socket, Os* os, bool direct_map) {
  VMM_ASSIGN_OR_RETURN(ReceivedMessage m, RecvFds(socket, 1));
  if (m.fds.size() != 1) {
    return Status::DataLoss("receive arena: expected 1 fd, got " + std::to_string(m.fds.size()));
  }
  VMM_ASSIGN_OR_RETURN(ExportedArena e, ExportedArena::ParseMetadata(m.payload));
  e.fd = std::move(m.fds[0]);
  return Arena::Import(std::move(e), os, direct_map);
}

}  // namespace vmm
