// Fuzzes the hmmd protocol's framing (hbm/wire.h) as a peer on the socket can drive it: the
// input is split at NUL bytes into datagrams (an empty piece is an empty datagram) that are sent
// on a SOCK_SEQPACKET socketpair, then read back with ReceiveRequest (hmmd's side) until the
// peer is gone, and with ReceiveReply (a client's side). Nothing may crash or hang, an assembled
// request stays within kMaxAssembledRequestBytes, and a lost stream ends the connection.
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_check.h"
#include "hbm/wire.h"

namespace {

std::vector<std::string_view> Datagrams(const uint8_t* data, size_t size) {
  std::vector<std::string_view> out;
  const std::string_view all(reinterpret_cast<const char*>(data), size);
  size_t start = 0;
  for (size_t i = 0; i <= all.size(); ++i) {
    if (i == all.size() || all[i] == '\0') {
      out.push_back(all.substr(start, i - start));
      start = i + 1;
    }
  }
  return out;
}

// A socket whose peer sent `datagrams` (as many as the socket buffer takes) and hung up.
vmm::UniqueFd Connection(const std::vector<std::string_view>& datagrams) {
  int sv[2];
  FUZZ_CHECK(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) == 0);
  vmm::UniqueFd ours(sv[0]), peer(sv[1]);
  for (std::string_view d : datagrams) {
    // Non-blocking: a full socket buffer ends the conversation instead of blocking the fuzzer.
    if (send(peer.get(), d.data(), d.size(), MSG_DONTWAIT | MSG_NOSIGNAL) < 0) {
      FUZZ_CHECK(errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS);
      break;
    }
  }
  return ours;  // the peer's end closes here
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::vector<std::string_view> datagrams = Datagrams(data, size);
  {
    vmm::UniqueFd hmmd = Connection(datagrams);
    // Each request takes at least one datagram, so the loop ends; the bound catches a reader
    // that stops consuming.
    for (size_t i = 0; i <= datagrams.size(); ++i) {
      const emoe::hbm::Incoming in = emoe::hbm::ReceiveRequest(hmmd.get());
      if (in.kind == emoe::hbm::Incoming::kGone || in.kind == emoe::hbm::Incoming::kFatal) break;
      FUZZ_CHECK(i < datagrams.size());
      if (in.kind == emoe::hbm::Incoming::kRequest) {
        FUZZ_CHECK(in.request.size() <= emoe::hbm::kMaxAssembledRequestBytes);
        (void)emoe::hbm::ReplyStatus(in.request, "fuzz");
      } else {
        FUZZ_CHECK(!in.error.ok());
      }
    }
  }
  vmm::UniqueFd client = Connection(datagrams);
  for (size_t i = 0; i <= datagrams.size(); ++i) {
    auto reply = emoe::hbm::ReceiveReply(client.get());
    if (!reply.ok()) break;
    FUZZ_CHECK(i < datagrams.size());
  }
  return 0;
}
