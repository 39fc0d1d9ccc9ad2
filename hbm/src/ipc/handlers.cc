// The hmmd ops (hbm/server.h): HandleRequest reads the request with the codec and calls one
// function per op; each returns its reply's fields or the error it is answered with.
#include <map>

#include "hbm/control.h"
#include "hbm/server.h"
#include "ipc/codec.h"

namespace emoe::hbm {

namespace {

using ipc::json;

Reply ErrorReply(const Status& s) { return Reply{ErrorJson(s), {}}; }
Reply OkReply(json j) {
  j["ok"] = true;
  return Reply{j.dump(), {}};
}
Reply ToReply(const StatusOr<json>& r) {
  return r.ok() ? OkReply(r.value()) : ErrorReply(r.status());
}

// The arenas of one attach reply, each exported once, and their fds.
class ArenaExports {
 public:
  explicit ArenaExports(Reply* reply) : reply_(reply) {}
  // The index of `a` in the reply, exporting it (read-only unless `rw`) the first time.
  StatusOr<int> Add(const vmm::Arena* a, bool rw) {
    auto it = index_.find(a);
    if (it != index_.end()) return it->second;
    if (index_.size() >= vmm::kMaxPassedFds) {
      return Status::ResourceExhausted("more than 64 arenas in one attach");
    }
    VMM_ASSIGN_OR_RETURN(vmm::ExportedArena e,
                         a->Export(rw ? vmm::ExportMode::kReadWrite : vmm::ExportMode::kReadOnly));
    const int index = static_cast<int>(index_.size());
    index_.emplace(a, index);
    arenas_.push_back(e.SerializeMetadata());
    reply_->fds.push_back(std::move(e.fd));
    return index;
  }
  const json& arenas() const { return arenas_; }

 private:
  Reply* reply_;
  std::map<const vmm::Arena*, int> index_;
  json arenas_ = json::array();
};

StatusOr<Reply> Attach(Hmm& hmm, const ipc::AttachRequest& q, bool allow_writable, bool share_kv) {
  if (q.writable && !allow_writable) {
    return Status::PermissionDenied("this server maps weights read-only");
  }
  if (q.kv && !share_kv) return Status::PermissionDenied("this server does not share KV arenas");
  if (q.device < -1 || q.device >= hmm.num_devices()) {
    return Status::InvalidArgument("no device " + std::to_string(q.device));
  }
  Reply reply;
  ArenaExports exports(&reply);
  json tensors = json::array(), kv_arenas = json::array();
  if (q.tensors) {
    for (const TensorRecord& r : hmm.List(q.device)) {
      if (q.writable && r.extent.arena()->write_sealed()) {
        return Status::FailedPrecondition(
            "arena '" + r.extent.arena()->name() +
            "' is sealed against writes (F_SEAL_FUTURE_WRITE): no process can map it writable; "
            "weights are writable only in an HMM created without seal_weights (hmmd "
            "--allow_writable)");
      }
      VMM_ASSIGN_OR_RETURN(int index, exports.Add(r.extent.arena(), q.writable));
      tensors.push_back(ipc::ToJson(ipc::WireTensorOf(r, index)));
    }
  }
  if (q.kv) {
    // KV arenas are written by the instances (DESIGN 4.3: shareable across processes).
    for (int d = 0; d < hmm.num_devices(); ++d) {
      const vmm::Arena* a = hmm.device(d).arena(Usage::kKv).get();
      if ((q.device != -1 && d != q.device) || a == nullptr) continue;
      VMM_ASSIGN_OR_RETURN(int index, exports.Add(a, true));
      kv_arenas.push_back({{"device", d}, {"arena", index}});
    }
  }
  reply.json = json{
      {"ok", true},
      {"writable", q.writable},
      {"arenas", exports.arenas()},
      {"tensors", tensors},
      {"kv",
       kv_arenas}}.dump();
  return reply;
}

json Devices(Hmm& hmm) {
  ipc::DevicesReply d;
  for (int i = 0; i < hmm.num_devices(); ++i) d.devices.push_back(hmm.device(i).spec());
  d.page_note = hmm.page_note();
  return ipc::ToJson(d);
}

json Stats(Hmm& hmm) { return ipc::ToJson(ipc::StatsReply{hmm.Stats(), hmm.Report()}); }

json List(Hmm& hmm, int device) {
  json tensors = json::array();
  for (const TensorRecord& r : hmm.List(device)) {
    tensors.push_back(ipc::ToJson(ipc::WireTensorOf(r, -1)));
  }
  return json{{"tensors", tensors}};
}

StatusOr<json> Load(Hmm& hmm, const ipc::LoadRequest& q, Session* session) {
  std::shared_ptr<const Checkpoint> ckpt;
  if (session != nullptr && session->checkpoints != nullptr) {
    VMM_ASSIGN_OR_RETURN(ckpt, session->checkpoints->Open(q.checkpoint));
  } else {
    VMM_ASSIGN_OR_RETURN(Checkpoint c, OpenCheckpoint(q.checkpoint));
    ckpt = std::make_shared<const Checkpoint>(std::move(c));
  }
  VMM_ASSIGN_OR_RETURN(PlacementFn where,
                       PlacementFromTable(*ckpt, q.placement, hmm.num_devices()));
  VMM_ASSIGN_OR_RETURN(
      LoadReport report,
      hmm.LoadCheckpoint(*ckpt, where, q.prefix, session != nullptr ? session->cancel : nullptr));
  return json{{"report", ipc::ToJson(report)}};
}

StatusOr<json> CopyGroup(Hmm& hmm, const ipc::CopyGroupRequest& q) {
  VMM_ASSIGN_OR_RETURN(uint64_t bytes, hmm.CopyGroup(q.names, q.from, q.to, q.usage, q.prefix));
  return json{{"bytes", bytes}};
}

StatusOr<json> ApplyCopies(Hmm& hmm, const ipc::ApplyCopiesRequest& q) {
  VMM_ASSIGN_OR_RETURN(CopyBatchReport report, hmm.ApplyCopies(q.copies, q.options));
  return json{{"report", ipc::ToJson(report)}};
}

StatusOr<json> Describe(Hmm& hmm, const ipc::DescribeRequest& q) {
  VMM_ASSIGN_OR_RETURN(std::vector<TensorRecord> found, hmm.FindAll(q.records));
  return ipc::ToJson(SnapshotOf(hmm, found));
}

StatusOr<json> Find(Hmm& hmm, const ipc::RecordRequest& q) {
  VMM_ASSIGN_OR_RETURN(TensorRecord r, hmm.Find(q.name, q.device));
  return json{{"tensor", ipc::ToJson(ipc::WireTensorOf(r, -1))}};
}

json ReleaseMany(Hmm& hmm, const ipc::ReleaseManyRequest& q) {
  // LocalHmmControl::Release's meaning: unknown records are skipped.
  size_t n = 0;
  for (const auto& [name, device] : q.records) n += hmm.Release(name, device).ok() ? 1 : 0;
  return json{{"released", n}};
}

StatusOr<json> KvAlloc(Hmm& hmm, const ipc::KvAllocRequest& q, Session* session) {
  if (session == nullptr) {
    return Status::FailedPrecondition("kv_alloc needs a connection to own the memory");
  }
  if (q.device < 0 || q.device >= hmm.num_devices()) {
    return Status::InvalidArgument("KV memory on unknown device " + std::to_string(q.device));
  }
  if (q.bytes == 0) return Status::InvalidArgument("KV memory of 0 bytes");
  Device& d = hmm.device(q.device);
  if (!d.arena(Usage::kKv)) {
    return Status::FailedPrecondition("device " + std::to_string(q.device) + " has no KV arena");
  }
  VMM_ASSIGN_OR_RETURN(vmm::Extent e, d.Allocate(Usage::kKv, q.bytes));
  const ipc::KvAllocReply a{session->next_kv_id++, e.offset_bytes(), e.size_bytes()};
  session->kv.emplace(a.id, std::move(e));
  return ipc::ToJson(a);
}

StatusOr<json> KvFree(const ipc::KvRequest& q, Session* session) {
  if (session == nullptr) {
    return Status::FailedPrecondition("kv_free needs the connection that owns the memory");
  }
  if (session->kv.erase(q.id) == 0) {
    return Status::NotFound("no KV memory " + std::to_string(q.id) + " on this connection");
  }
  return json::object();
}

StatusOr<json> KvResize(Hmm& hmm, const ipc::KvRequest& q, Session* session) {
  if (session == nullptr) {
    return Status::FailedPrecondition("kv_resize needs the connection that owns the memory");
  }
  auto it = session->kv.find(q.id);
  if (it == session->kv.end()) {
    return Status::NotFound("no KV memory " + std::to_string(q.id) + " on this connection");
  }
  for (int d = 0; d < hmm.num_devices(); ++d) {
    if (hmm.device(d).arena(Usage::kKv).get() != it->second.arena()) continue;
    VMM_RETURN_IF_ERROR(hmm.device(d).Resize(Usage::kKv, it->second, q.bytes));
    return json{{"bytes", it->second.size_bytes()}};
  }
  return Status::Internal("KV memory " + std::to_string(q.id) + " is in no device's KV arena");
}

// Reads a request of type T from `r` and answers it with `op`, or the reader's error.
template <typename T, typename Op>
Reply Serve(const JsonReader& r, Op op) {
  T q;
  if (Status s = ipc::FromJson(r, &q); !s.ok()) return ErrorReply(s);
  return ToReply(op(q));
}

// The ops that do not need a session or the attach options.
Reply Dispatch(Hmm& hmm, const std::string& op, const JsonReader& r, Session* session) {
  if (op == "list") {
    auto device = r.Int("device", -1);
    return device.ok() ? OkReply(List(hmm, *device)) : ErrorReply(device.status());
  }
  if (op == "release") {
    return Serve<ipc::RecordRequest>(r, [&](const ipc::RecordRequest& q) -> StatusOr<json> {
      VMM_RETURN_IF_ERROR(hmm.Release(q.name, q.device));
      return json::object();
    });
  }
  if (op == "stats") return OkReply(Stats(hmm));
  if (op == "devices") return OkReply(Devices(hmm));
  if (op == "load") {
    return Serve<ipc::LoadRequest>(r, [&](const auto& q) { return Load(hmm, q, session); });
  }
  if (op == "copy_group") {
    return Serve<ipc::CopyGroupRequest>(r, [&](const auto& q) { return CopyGroup(hmm, q); });
  }
  if (op == "apply_copies") {
    return Serve<ipc::ApplyCopiesRequest>(r, [&](const auto& q) { return ApplyCopies(hmm, q); });
  }
  if (op == "describe") {
    return Serve<ipc::DescribeRequest>(r, [&](const auto& q) { return Describe(hmm, q); });
  }
  if (op == "find") {
    return Serve<ipc::RecordRequest>(r, [&](const auto& q) { return Find(hmm, q); });
  }
  if (op == "release_many") {
    return Serve<ipc::ReleaseManyRequest>(
        r, [&](const auto& q) -> StatusOr<json> { return ReleaseMany(hmm, q); });
  }
  if (op == "release_matching") {
    return Serve<ipc::ReleaseMatchingRequest>(r, [&](const auto& q) -> StatusOr<json> {
      return json{{"released", ReleaseMatchingIn(hmm, q.prefix, q.devices)}};
    });
  }
  if (op == "kv_alloc") {
    return Serve<ipc::KvAllocRequest>(r, [&](const auto& q) { return KvAlloc(hmm, q, session); });
  }
  if (op == "kv_free" || op == "kv_resize") {
    ipc::KvRequest q;
    if (Status s = ipc::FromJson(r, op == "kv_resize", &q); !s.ok()) return ErrorReply(s);
    return ToReply(op == "kv_free" ? KvFree(q, session) : KvResize(hmm, q, session));
  }
  return ErrorReply(Status::InvalidArgument("unknown op '" + op + "'"));
}

}  // namespace

Reply HandleRequest(Hmm& hmm, const std::string& request, bool allow_writable, bool share_kv,
                    Session* session) {
  if (request.size() > kMaxAssembledRequestBytes) {
    return ErrorReply(Status::InvalidArgument("request of " + std::to_string(request.size()) +
                                              " bytes exceeds " +
                                              std::to_string(kMaxAssembledRequestBytes)));
  }
  auto req = ParseJsonObject(request, "malformed request");
  auto op = req.ok() ? JsonReader(*req, "request").Str("op") : req.status();
  if (!op.ok()) {
    return ErrorReply(Status::InvalidArgument("malformed request: expected {\"op\": ...}"));
  }
  const JsonReader r(*req, *op);
  if (*op == "ping") return OkReply(json::object());
  if (*op == "attach") {
    ipc::AttachRequest q;
    if (Status s = ipc::FromJson(r, &q); !s.ok()) return ErrorReply(s);
    auto reply = Attach(hmm, q, allow_writable, share_kv);
    return reply.ok() ? std::move(*reply) : ErrorReply(reply.status());
  }
  return Dispatch(hmm, *op, r, session);
}

}  // namespace emoe::hbm
