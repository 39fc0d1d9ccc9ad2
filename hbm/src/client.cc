#include "hbm/client.h"

#include <sys/socket.h>
#include <sys/un.h>

#include <nlohmann/json.hpp>

namespace emoe::hbm {

using nlohmann::json;

const TensorView* Attachment::Find(const std::string& name, int device) const {
  auto it = index_.find({name, device});
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

uint64_t Attachment::mapped_bytes() const {
  uint64_t n = 0;
  for (const auto& m : maps_) n += m->mapped_bytes();
  return n;
}

std::unique_ptr<HmmClient> HmmClient::InProcess(Hmm* hmm) {
  auto c = std::unique_ptr<HmmClient>(new HmmClient());
  c->hmm_ = hmm;
  return c;
}

StatusOr<std::unique_ptr<HmmClient>> HmmClient::Connect(const std::string& socket_path) {
  vmm::UniqueFd fd(socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return Status::FromErrno(errno, "connect to " + socket_path, "socket");
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (socket_path.size() >= sizeof(addr.sun_path)) {
    return Status::InvalidArgument("socket path too long: " + socket_path);
  }
  std::snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", socket_path.c_str());
  if (connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    return Status::FromErrno(errno, "connect to hmmd at " + socket_path, "connect");
  }
  auto c = std::unique_ptr<HmmClient>(new HmmClient());
  c->socket_ = std::move(fd);
  // Handshake: a refusing server (wrong uid, too many clients) is reported here.
  VMM_RETURN_IF_ERROR(c->Call(R"({"op":"ping"})").status());
  return c;
}

StatusOr<vmm::ReceivedMessage> HmmClient::Roundtrip(const std::string& request) {
  if (hmm_ != nullptr) {
    Reply r = HandleRequest(*hmm_, request, /*allow_writable=*/true);
    vmm::ReceivedMessage m;
    m.payload = std::move(r.json);
    m.fds = std::move(r.fds);
    return m;
  }
  if (Status sent = vmm::SendFds(socket_.get(), request, {}); !sent.ok()) {
    // A server that refused us (wrong uid, too many clients) said why before closing.
    auto why = ReceiveReply(socket_.get());
    if (why.ok()) return why;
    return sent.Annotate("hmmd closed the connection");
  }
  return ReceiveReply(socket_.get());
}

namespace {

// The status carried by an error reply, or OK.
Status ReplyStatus(const json& j) {
  if (j.is_discarded() || !j.is_object()) return Status::DataLoss("malformed reply");
  if (j.value("ok", false)) return Status::Ok();
  const std::string code = j.value("code", "INTERNAL");
  const std::string msg = "hmm: " + j.value("error", std::string("unknown error"));
  for (int c = 0; c <= static_cast<int>(vmm::StatusCode::kInternal); ++c) {
    if (code == vmm::StatusCodeName(static_cast<vmm::StatusCode>(c))) {
      return Status(static_cast<vmm::StatusCode>(c), 0, msg);
    }
  }
  return Status::Internal(msg);
}

}  // namespace

StatusOr<std::string> HmmClient::Call(const std::string& request_json) {
  VMM_ASSIGN_OR_RETURN(vmm::ReceivedMessage m, Roundtrip(request_json));
  VMM_RETURN_IF_ERROR(ReplyStatus(json::parse(m.payload, nullptr, false)));
  return m.payload;
}

Status HmmClient::Release(const std::string& name, int device) {
  return Call(json{{"op", "release"}, {"name", name}, {"device", device}}.dump()).status();
}

StatusOr<std::unique_ptr<Attachment>> HmmClient::Attach(int device, bool writable) {
  VMM_ASSIGN_OR_RETURN(
      vmm::ReceivedMessage m,
      Roundtrip(json{{"op", "attach"}, {"device", device}, {"writable", writable}}.dump()));
  const json j = json::parse(m.payload, nullptr, false);
  VMM_RETURN_IF_ERROR(ReplyStatus(j));
  if (!j.contains("arenas") || !j.contains("tensors") || j["arenas"].size() != m.fds.size()) {
    return Status::DataLoss("attach reply has " + std::to_string(m.fds.size()) +
                            " fds for its arenas");
  }
  auto att = std::make_unique<Attachment>();
  att->writable_ = writable;
  const vmm::MapOptions map{writable ? vmm::Protection::kReadWrite : vmm::Protection::kRead, false};
  for (size_t i = 0; i < m.fds.size(); ++i) {
    VMM_ASSIGN_OR_RETURN(vmm::ExportedArena e,
                         vmm::ExportedArena::ParseMetadata(j["arenas"][i].get<std::string>()));
    e.fd = std::move(m.fds[i]);
    VMM_ASSIGN_OR_RETURN(auto arena, vmm::Arena::Import(std::move(e), nullptr, false));
    VMM_ASSIGN_OR_RETURN(
        auto res, vmm::Reservation::Reserve(arena->capacity_bytes(), vmm::kHugePageSize, nullptr,
                                            "attach." + arena->name()));
    VMM_ASSIGN_OR_RETURN(vmm::Extent all, arena->View(0, arena->capacity_bytes()));
    VMM_RETURN_IF_ERROR(res->Map(0, all, 0, 0, map));
    att->arenas_.push_back(std::move(arena));
    att->maps_.push_back(std::move(res));
  }
  for (const json& t : j["tensors"]) {
    TensorView v;
    v.name = t.value("name", "");
    v.device = t.value("device", -1);
    v.usage = t.value("usage", "");
    VMM_ASSIGN_OR_RETURN(v.dtype, ParseDType(t.value("dtype", "")));
    v.shape = t.value("shape", std::vector<int64_t>{});
    const int a = t.value("arena", -1);
    const uint64_t off = t.value("offset", uint64_t{0});
    v.size_bytes = t.value("size", uint64_t{0});
    if (a < 0 || a >= static_cast<int>(att->maps_.size()) ||
        off + v.size_bytes > att->arenas_[a]->capacity_bytes()) {
      return Status::DataLoss("attach: tensor '" + v.name + "' lies outside its arena");
    }
    v.data = att->maps_[a]->base() + off;
    att->index_[{v.name, v.device}] = att->tensors_.size();
    att->tensors_.push_back(std::move(v));
  }
  return att;
}

}  // namespace emoe::hbm
