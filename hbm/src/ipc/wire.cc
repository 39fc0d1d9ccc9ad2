#include "hbm/wire.h"

#include <nlohmann/json.hpp>

#include "hbm/json_reader.h"

namespace emoe::hbm {

using nlohmann::json;

namespace {

constexpr size_t kPartBytes = 60000;

bool PeerGone(const Status& s) {
  return s.code() == vmm::StatusCode::kUnavailable || s.err() == ECONNRESET;
}

bool Framed(const std::string& part) { return !part.empty() && (part[0] == '0' || part[0] == '1'); }

}  // namespace

std::string ErrorJson(const Status& s) {
  return json{{"ok", false}, {"code", vmm::StatusCodeName(s.code())}, {"error", s.message()}}
      .dump();
}

Status ReplyStatus(const std::string& payload, const std::string& who) {
  auto parsed = ParseJsonObject(payload, who + ": malformed reply", vmm::StatusCode::kDataLoss);
  if (!parsed.ok()) return Status::DataLoss(who + ": malformed reply");
  const json& j = *parsed;
  const JsonReader r(j, who);
  // Lenient on purpose, as before: a reply without a boolean "ok" is an error reply.
  if (r.Bool("ok", false).ok() && r.Bool("ok", false).value()) return Status::Ok();
  const auto code = r.Str("code", "INTERNAL");
  const auto error = r.Str("error", "unknown error");
  const std::string msg = who + ": " + (error.ok() ? error.value() : std::string("unknown error"));
  for (int c = 0; code.ok() && c <= static_cast<int>(vmm::StatusCode::kInternal); ++c) {
    if (code.value() == vmm::StatusCodeName(static_cast<vmm::StatusCode>(c))) {
      return Status(static_cast<vmm::StatusCode>(c), 0, msg);
    }
  }
  return Status::Internal(msg);
}

Status SendReply(int socket, const Reply& reply) {
  std::vector<int> fds;
  for (const auto& f : reply.fds) fds.push_back(f.get());
  for (size_t off = 0;;) {
    const size_t n = std::min(kPartBytes, reply.json.size() - off);
    const bool last = off + n >= reply.json.size();
    // One byte of framing: '1' = more parts follow, '0' = last part.
    VMM_RETURN_IF_ERROR(vmm::SendFds(socket, (last ? "0" : "1") + reply.json.substr(off, n),
                                     off == 0 ? fds : std::vector<int>{}));
    off += n;
    if (last) return Status::Ok();
  }
}

StatusOr<vmm::ReceivedMessage> ReceiveReply(int socket) {
  vmm::ReceivedMessage out;
  for (;;) {
    VMM_ASSIGN_OR_RETURN(vmm::ReceivedMessage part, vmm::RecvFds(socket));
    if (!Framed(part.payload)) return Status::DataLoss("malformed reply part from the HMM server");
    out.payload.append(part.payload, 1);
    for (auto& f : part.fds) out.fds.push_back(std::move(f));
    if (part.payload[0] == '0') return out;
  }
}

Status SendRequest(int socket, const std::string& request) {
  if (request.size() <= kMaxRequestBytes) return vmm::SendFds(socket, request, {});
  if (request.size() > kMaxAssembledRequestBytes) {
    return Status::InvalidArgument("request of " + std::to_string(request.size()) +
                                   " bytes exceeds " + std::to_string(kMaxAssembledRequestBytes));
  }
  // Framed like a reply.
  return SendReply(socket, Reply{request, {}});
}

Incoming ReceiveRequest(int fd) {
  auto first = vmm::RecvFds(fd, 0);
  if (!first.ok()) {
    if (PeerGone(first.status())) return {Incoming::kGone, "", first.status()};
    return {Incoming::kError, "", first.status()};  // too large, or fds: say so
  }
  std::string& p = first->payload;
  if (!Framed(p)) {
    if (p.size() > kMaxRequestBytes) {
      return {Incoming::kError, "",
              Status::InvalidArgument("request of " + std::to_string(p.size()) + " bytes exceeds " +
                                      std::to_string(kMaxRequestBytes) +
                                      " (send larger ones in parts)")};
    }
    return {Incoming::kRequest, std::move(p), Status::Ok()};
  }
  Incoming in;
  uint64_t total = 0;
  for (vmm::ReceivedMessage part = std::move(*first);;) {
    total += part.payload.size() - 1;
    if (total > kMaxAssembledRequestBytes && in.kind == Incoming::kRequest) {
      // Keep reading to the last part (the stream stays in step), then refuse.
      in.kind = Incoming::kError;
      in.error = Status::InvalidArgument(
          "request of more than " + std::to_string(kMaxAssembledRequestBytes) + " bytes in parts");
      std::string().swap(in.request);
    }
    if (in.kind == Incoming::kRequest) in.request.append(part.payload, 1);
    if (part.payload[0] == '0') return in;
    auto next = vmm::RecvFds(fd, 0);
    if (!next.ok()) {
      if (PeerGone(next.status())) return {Incoming::kGone, "", next.status()};
      Status s = next.status();
      return {Incoming::kFatal, "", s.Annotate("request part")};
    }
    if (!Framed(next->payload)) {
      return {Incoming::kFatal, "",
              Status::InvalidArgument("a request part lacks its '0'/'1' framing byte")};
    }
    part = std::move(*next);
  }
}

}  // namespace emoe::hbm
