#include "hbm/client.h"

#include <sys/socket.h>
#include <sys/un.h>

#include <nlohmann/json.hpp>
#include <set>

namespace emoe::hbm {

using nlohmann::json;

const TensorView* Attachment::Find(const std::string& name, int device) const {
  auto it = index_.find({name, device});
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

uint8_t* Attachment::kv_base(int device) const {
  auto it = kv_.find(device);
  return it == kv_.end() ? nullptr : maps_[it->second]->base();
}

uint64_t Attachment::kv_bytes(int device) const {
  auto it = kv_.find(device);
  return it == kv_.end() ? 0 : arenas_[it->second]->capacity_bytes();
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

StatusOr<std::string> HmmClient::Call(const std::string& request_json) {
  VMM_ASSIGN_OR_RETURN(vmm::ReceivedMessage m, Roundtrip(request_json));
  VMM_RETURN_IF_ERROR(ReplyStatus(m.payload));
  return m.payload;
}

Status HmmClient::Release(const std::string& name, int device) {
  return Call(json{{"op", "release"}, {"name", name}, {"device", device}}.dump()).status();
}

StatusOr<std::unique_ptr<Attachment>> HmmClient::Attach(int device, bool writable, bool kv) {
  VMM_ASSIGN_OR_RETURN(
      vmm::ReceivedMessage m,
      Roundtrip(
          json{{"op", "attach"}, {"device", device}, {"writable", writable}, {"kv", kv}}.dump()));
  return Attachment::FromReply(std::move(m), writable);
}

StatusOr<std::unique_ptr<Attachment>> Attachment::FromReply(vmm::ReceivedMessage m, bool writable) {
  VMM_RETURN_IF_ERROR(ReplyStatus(m.payload));
  const json j = json::parse(m.payload, nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("arenas") || !j.contains("tensors") ||
      j["arenas"].size() != m.fds.size()) {
    return Status::DataLoss("attach reply has " + std::to_string(m.fds.size()) +
                            " fds for its arenas");
  }
  auto att = std::make_unique<Attachment>();
  att->writable_ = writable;
  std::set<size_t> rw;  // KV arenas
  if (j.contains("kv")) {
    for (const json& k : j["kv"]) {
      const int a = k.value("arena", -1);
      if (a < 0 || a >= static_cast<int>(m.fds.size())) {
        return Status::DataLoss("attach: a KV arena index is out of range");
      }
      att->kv_[k.value("device", -1)] = a;
      rw.insert(static_cast<size_t>(a));
    }
  }
  for (size_t i = 0; i < m.fds.size(); ++i) {
    const vmm::MapOptions map{
        writable || rw.count(i) > 0 ? vmm::Protection::kReadWrite : vmm::Protection::kRead, false};
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
    v.arena = a;
    v.offset = off;
    v.extent_offset = t.value("extent_offset", off);
    v.extent_size = t.value("extent_size", v.size_bytes);
    if (v.extent_offset > off || v.extent_offset + v.extent_size < off + v.size_bytes ||
        v.extent_offset + v.extent_size > att->arenas_[a]->capacity_bytes()) {
      return Status::DataLoss("attach: tensor '" + v.name + "' lies outside its extent");
    }
    att->index_[{v.name, v.device}] = att->tensors_.size();
    att->tensors_.push_back(std::move(v));
  }
  return att;
}

}  // namespace emoe::hbm
