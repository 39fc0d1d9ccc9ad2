// HmmClient and Attachment: attaching to an HMM's memory (hbm/client.h).
#include "hbm/client.h"

#include <set>

#include "ipc/codec.h"
#include "vmm/unix_socket.h"

namespace emoe::hbm {

using ipc::json;

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

Status Attachment::Populate(const TensorView& t) const {
  if (t.arena < 0 || t.arena >= static_cast<int>(maps_.size())) {
    return Status::InvalidArgument("populate '" + t.name + "': not a tensor of this attachment");
  }
  return maps_[t.arena]->Populate(t.extent_offset, t.extent_size);
}

Status Attachment::PopulateKv(int device, uint64_t offset, uint64_t bytes) const {
  auto it = kv_.find(device);
  if (it == kv_.end()) {
    return Status::InvalidArgument("populate KV: device " + std::to_string(device) +
                                   " has no KV arena in this attachment");
  }
  return maps_[it->second]->Populate(offset, bytes);
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
  auto fd = vmm::ConnectUnixSocket(socket_path);
  if (!fd.ok()) {
    Status s = fd.status();
    return s.Annotate("hmmd");
  }
  auto c = std::unique_ptr<HmmClient>(new HmmClient());
  c->socket_ = std::move(*fd);
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
  return Call(ipc::ToJson("release", ipc::RecordRequest{name, device}).dump()).status();
}

StatusOr<std::unique_ptr<Attachment>> HmmClient::Attach(int device, bool writable, bool kv) {
  ipc::AttachRequest q;
  q.device = device;
  q.writable = writable;
  q.kv = kv;
  VMM_ASSIGN_OR_RETURN(vmm::ReceivedMessage m, Roundtrip(ipc::ToJson(q).dump()));
  return Attachment::FromReply(std::move(m), writable);
}

namespace {

// A tensor of the reply as a view into the attachment's mappings; kDataLoss when it lies
// outside its arena or extent.
StatusOr<TensorView> ViewOf(const ipc::WireTensor& t, const std::vector<uint8_t*>& bases,
                            const std::vector<uint64_t>& sizes) {
  TensorView v;
  v.name = t.meta.name;
  v.device = t.meta.device;
  v.usage = UsageName(t.meta.usage);
  v.dtype = t.meta.dtype;
  v.shape = t.meta.shape;
  v.size_bytes = t.meta.size_bytes;
  const int a = t.arena;
  if (a < 0 || a >= static_cast<int>(bases.size()) || t.offset + v.size_bytes > sizes[a]) {
    return Status::DataLoss("attach: tensor '" + v.name + "' lies outside its arena");
  }
  v.data = bases[a] + t.offset;
  v.arena = a;
  v.offset = t.offset;
  v.extent_offset = t.extent_offset;
  v.extent_size = t.meta.extent_bytes;
  if (v.extent_offset > t.offset || v.extent_offset + v.extent_size < t.offset + v.size_bytes ||
      v.extent_offset + v.extent_size > sizes[a]) {
    return Status::DataLoss("attach: tensor '" + v.name + "' lies outside its extent");
  }
  return v;
}

}  // namespace

StatusOr<std::unique_ptr<Attachment>> Attachment::FromReply(vmm::ReceivedMessage m, bool writable) {
  VMM_RETURN_IF_ERROR(ReplyStatus(m.payload));
  VMM_ASSIGN_OR_RETURN(json j, ParseJsonObject(m.payload, "attach reply", StatusCode::kDataLoss));
  const JsonReader r = ipc::ReplyReader(j, "hmm", "attach");
  VMM_ASSIGN_OR_RETURN(std::vector<std::string> arenas, r.StrList("arenas"));
  VMM_ASSIGN_OR_RETURN(std::vector<JsonReader> tensors, r.ObjectList("tensors"));
  if (arenas.size() != m.fds.size()) {
    return Status::DataLoss("attach reply has " + std::to_string(m.fds.size()) + " fds for its " +
                            std::to_string(arenas.size()) + " arenas");
  }
  auto att = std::make_unique<Attachment>();
  att->writable_ = writable;
  std::set<size_t> rw;  // KV arenas
  if (r.Has("kv")) {
    VMM_ASSIGN_OR_RETURN(std::vector<JsonReader> kv, r.ObjectList("kv"));
    for (const JsonReader& k : kv) {
      VMM_ASSIGN_OR_RETURN(int a, k.Int("arena"));
      VMM_ASSIGN_OR_RETURN(int device, k.Int("device"));
      if (a < 0 || a >= static_cast<int>(m.fds.size())) {
        return Status::DataLoss("attach: a KV arena index is out of range");
      }
      att->kv_[device] = a;
      rw.insert(static_cast<size_t>(a));
    }
  }
  std::vector<uint8_t*> bases;
  std::vector<uint64_t> sizes;
  for (size_t i = 0; i < m.fds.size(); ++i) {
    const vmm::MapOptions map{
        writable || rw.count(i) > 0 ? vmm::Protection::kReadWrite : vmm::Protection::kRead, false};
    VMM_ASSIGN_OR_RETURN(vmm::ExportedArena e, vmm::ExportedArena::ParseMetadata(arenas[i]));
    e.fd = std::move(m.fds[i]);
    VMM_ASSIGN_OR_RETURN(auto arena, vmm::Arena::Import(std::move(e), nullptr, false));
    VMM_ASSIGN_OR_RETURN(
        auto res, vmm::Reservation::Reserve(arena->capacity_bytes(), vmm::kHugePageSize, nullptr,
                                            "attach." + arena->name()));
    VMM_ASSIGN_OR_RETURN(vmm::Extent all, arena->View(0, arena->capacity_bytes()));
    VMM_RETURN_IF_ERROR(res->Map(0, all, 0, 0, map));
    bases.push_back(res->base());
    sizes.push_back(arena->capacity_bytes());
    att->arenas_.push_back(std::move(arena));
    att->maps_.push_back(std::move(res));
  }
  for (const JsonReader& t : tensors) {
    ipc::WireTensor w;
    VMM_RETURN_IF_ERROR(ipc::FromJson(t, &w));
    VMM_ASSIGN_OR_RETURN(TensorView v, ViewOf(w, bases, sizes));
    att->index_[{v.name, v.device}] = att->tensors_.size();
    att->tensors_.push_back(std::move(v));
  }
  return att;
}

}  // namespace emoe::hbm
