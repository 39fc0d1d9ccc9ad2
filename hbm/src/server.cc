#include "hbm/server.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <limits>
#include <map>
#include <nlohmann/json.hpp>

#include "hbm/control.h"
#include "vmm/fd_passing.h"

namespace emoe::hbm {

using nlohmann::json;

std::string ErrorJson(const Status& s) {
  return json{{"ok", false}, {"code", vmm::StatusCodeName(s.code())}, {"error", s.message()}}
      .dump();
}

Status ReplyStatus(const std::string& payload, const std::string& who) {
  const json j = json::parse(payload, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return Status::DataLoss(who + ": malformed reply");
  if (j.value("ok", false)) return Status::Ok();
  const std::string code = j.value("code", "INTERNAL");
  const std::string msg = who + ": " + j.value("error", std::string("unknown error"));
  for (int c = 0; c <= static_cast<int>(vmm::StatusCode::kInternal); ++c) {
    if (code == vmm::StatusCodeName(static_cast<vmm::StatusCode>(c))) {
      return Status(static_cast<vmm::StatusCode>(c), 0, msg);
    }
  }
  return Status::Internal(msg);
}

StatusOr<Usage> ParseUsage(const std::string& name) {
  for (int u = 0; u < kNumUsages; ++u) {
    if (name == UsageName(static_cast<Usage>(u))) return static_cast<Usage>(u);
  }
  return Status::InvalidArgument("usage '" + name + "' is not one of weights, experts, kv");
}

StatusOr<std::shared_ptr<const Checkpoint>> CheckpointCache::Open(const std::string& path) {
  std::lock_guard<std::mutex> l(mu_);
  auto it = by_path_.find(path);
  if (it == by_path_.end()) {
    VMM_ASSIGN_OR_RETURN(Checkpoint c, OpenCheckpoint(path));
    it = by_path_.emplace(path, std::make_shared<const Checkpoint>(std::move(c))).first;
  }
  return it->second;
}

namespace {

constexpr size_t kPartBytes = 60000;

Reply ErrorReply(const Status& s) { return Reply{ErrorJson(s), {}}; }
Reply OkReply(json j) {
  j["ok"] = true;
  return Reply{j.dump(), {}};
}

// Typed access to the fields of a request: a missing (when required) or wrongly typed field is
// kInvalidArgument naming the op and the field. Never throws.
class Fields {
 public:
  Fields(const json& req, std::string op) : req_(req), op_(std::move(op)) {}

  bool has(const char* k) const { return req_.contains(k); }
  StatusOr<int> Int(const char* k) const { return has(k) ? ToInt(req_[k], k) : Missing(k); }
  StatusOr<int> Int(const char* k, int def) const { return has(k) ? ToInt(req_[k], k) : def; }
  StatusOr<uint64_t> U64(const char* k) const {
    if (!has(k)) return Missing(k);
    if (!req_[k].is_number_unsigned()) return Bad(k, "a non-negative integer");
    return req_[k].get<uint64_t>();
  }
  StatusOr<std::string> Str(const char* k) const {
    if (!has(k)) return Missing(k);
    if (!req_[k].is_string()) return Bad(k, "a string");
    return req_[k].get<std::string>();
  }
  StatusOr<std::string> Str(const char* k, const std::string& def) const {
    return has(k) ? Str(k) : def;
  }
  StatusOr<std::vector<int>> IntList(const char* k) const {
    if (!has(k)) return Missing(k);
    return ToIntList(req_[k], k);
  }
  StatusOr<std::vector<std::string>> StrList(const char* k) const {
    if (!has(k)) return Missing(k);
    if (!req_[k].is_array()) return Bad(k, "an array of strings");
    std::vector<std::string> out;
    for (const json& e : req_[k]) {
      if (!e.is_string()) return Bad(k, "an array of strings");
      out.push_back(e.get<std::string>());
    }
    return out;
  }
  StatusOr<Usage> UsageField(const char* k) const {
    VMM_ASSIGN_OR_RETURN(std::string u, Str(k));
    auto usage = ParseUsage(u);
    if (!usage.ok()) return Status::InvalidArgument(op_ + ": " + usage.status().message());
    return usage;
  }

  // For nested values (placement entries, records).
  StatusOr<int> ToInt(const json& v, const std::string& what) const {
    if (v.is_number_unsigned()) {
      if (v.get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int>::max())) {
        return Bad(what, "an int");
      }
      return static_cast<int>(v.get<uint64_t>());
    }
    if (!v.is_number_integer() || v.get<int64_t>() < std::numeric_limits<int>::min()) {
      return Bad(what, "an integer");
    }
    return static_cast<int>(v.get<int64_t>());
  }
  StatusOr<std::vector<int>> ToIntList(const json& v, const std::string& what) const {
    if (!v.is_array()) return Bad(what, "an array of integers");
    std::vector<int> out;
    for (const json& e : v) {
      VMM_ASSIGN_OR_RETURN(int i, ToInt(e, what));
      out.push_back(i);
    }
    return out;
  }
  Status Bad(const std::string& what, const char* type) const {
    return Status::InvalidArgument(op_ + ": field '" + what + "' must be " + type);
  }
  Status Missing(const std::string& what) const {
    return Status::InvalidArgument(op_ + ": field '" + what + "' is required");
  }

 private:
  const json& req_;
  std::string op_;
};

json TensorJson(const TensorRecord& r, int arena_index) {
  return json{{"name", r.name},
              {"device", r.device},
              {"usage", UsageName(r.usage)},
              {"dtype", DTypeName(r.dtype)},
              {"shape", r.shape},
              {"arena", arena_index},
              {"offset", r.extent.offset_bytes() + r.offset_in_extent},
              {"size", r.size_bytes},
              {"extent_offset", r.extent.offset_bytes()},
              {"extent_size", r.extent.size_bytes()}};
}

json ArenaStatsJson(const vmm::ArenaStats& a) {
  return json{{"name", a.name},
              {"kind", vmm::PageKindName(a.kind)},
              {"page_size", a.page_size},
              {"capacity_bytes", a.capacity_bytes},
              {"used_bytes", a.used_bytes},
              {"free_bytes", a.free_bytes},
              {"peak_used_bytes", a.peak_used_bytes},
              {"largest_free_bytes", a.largest_free_bytes},
              {"live_extents", a.live_extents},
              {"allocations", a.allocations},
              {"frees", a.frees},
              {"failed_allocations", a.failed_allocations},
              {"discarded_bytes", a.discarded_bytes},
              {"fragmentation", a.fragmentation}};
}

json LoadReportJson(const LoadReport& r) {
  return json{{"tensors", r.tensors},
              {"bytes_from_disk", r.bytes_from_disk},
              {"bytes_p2p", r.bytes_p2p},
              {"disk_seconds", r.disk_seconds},
              {"p2p_seconds", r.p2p_seconds},
              {"disk",
               {{"bytes", r.disk.bytes},
                {"seconds", r.disk.seconds},
                {"reads", r.disk.reads},
                {"short_reads", r.disk.short_reads},
                {"direct_io", r.disk.direct_io},
                {"fixed_buffers", r.disk.fixed_buffers},
                {"fallback_reason", r.disk.fallback_reason}}}};
}

// A read-only file description of the same memfd: the client cannot map it writable.
StatusOr<vmm::UniqueFd> ReopenReadOnly(int fd) {
  const std::string path = "/proc/self/fd/" + std::to_string(fd);
  const int ro = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (ro < 0) return Status::FromErrno(errno, "reopen arena memfd read-only", "open");
  return vmm::UniqueFd(ro);
}

Reply Attach(Hmm& hmm, const json& req, int device, bool allow_writable, bool share_kv) {
  const bool writable = req.value("writable", false);
  const bool kv = req.value("kv", false);
  const bool with_tensors = req.value("tensors", true);
  if (writable && !allow_writable) {
    return ErrorReply(Status::PermissionDenied("this server maps weights read-only"));
  }
  if (kv && !share_kv) {
    return ErrorReply(Status::PermissionDenied("this server does not share KV arenas"));
  }
  if (device < -1 || device >= hmm.num_devices()) {
    return ErrorReply(Status::InvalidArgument("no device " + std::to_string(device)));
  }
  Reply reply;
  std::map<const vmm::Arena*, int> arena_index;
  json arenas = json::array(), tensors = json::array(), kv_arenas = json::array();
  // Exports `a` once; weights read-only unless `rw`.
  auto add_arena = [&](const vmm::Arena* a, bool rw) -> StatusOr<int> {
    auto it = arena_index.find(a);
    if (it != arena_index.end()) return it->second;
    if (arena_index.size() >= vmm::kMaxPassedFds) {
      return Status::ResourceExhausted("more than 64 arenas in one attach");
    }
    VMM_ASSIGN_OR_RETURN(vmm::ExportedArena e, a->Export());
    if (!rw) {
      VMM_ASSIGN_OR_RETURN(e.fd, ReopenReadOnly(e.fd.get()));
    }
    const int index = static_cast<int>(arena_index.size());
    arena_index.emplace(a, index);
    arenas.push_back(e.SerializeMetadata());
    reply.fds.push_back(std::move(e.fd));
    return index;
  };
  if (with_tensors) {
    for (const TensorRecord& r : hmm.List(device)) {
      auto index = add_arena(r.extent.arena(), writable);
      if (!index.ok()) return ErrorReply(index.status());
      tensors.push_back(TensorJson(r, *index));
    }
  }
  if (kv) {
    // KV arenas are written by the instances (DESIGN 4.3: shareable across processes).
    for (int d = 0; d < hmm.num_devices(); ++d) {
      const vmm::Arena* a = hmm.device(d).arena(Usage::kKv).get();
      if ((device != -1 && d != device) || a == nullptr) continue;
      auto index = add_arena(a, true);
      if (!index.ok()) return ErrorReply(index.status());
      kv_arenas.push_back({{"device", d}, {"arena", *index}});
    }
  }
  reply.json = json{
      {"ok", true},
      {"writable", writable},
      {"arenas", arenas},
      {"tensors", tensors},
      {"kv",
       kv_arenas}}.dump();
  return reply;
}

StatusOr<json> Devices(Hmm& hmm) {
  json devices = json::array();
  for (int d = 0; d < hmm.num_devices(); ++d) {
    const DeviceSpec& s = hmm.device(d).spec();
    devices.push_back(
        {{"id", s.id}, {"node", s.node}, {"cpus", s.cpus}, {"capacity_bytes", s.capacity_bytes}});
  }
  return json{{"devices", devices}, {"page_note", hmm.page_note()}};
}

StatusOr<json> Load(Hmm& hmm, const Fields& f, const json& req, Session* session) {
  VMM_ASSIGN_OR_RETURN(std::string path, f.Str("checkpoint"));
  VMM_ASSIGN_OR_RETURN(std::string prefix, f.Str("prefix", ""));
  if (!f.has("placement")) return f.Missing("placement");
  const json& list = req["placement"];
  if (!list.is_array()) return f.Bad("placement", "an array of objects");
  PlacementTable table;
  for (const json& e : list) {
    if (!e.is_object()) return f.Bad("placement", "an array of objects");
    Fields entry(e, "load: placement entry");
    VMM_ASSIGN_OR_RETURN(std::string name, entry.Str("name"));
    PlacementDecision d;
    VMM_ASSIGN_OR_RETURN(d.usage, entry.UsageField("usage"));
    VMM_ASSIGN_OR_RETURN(d.devices, entry.IntList("devices"));
    VMM_ASSIGN_OR_RETURN(d.group, entry.Str("group", ""));
    if (!table.emplace(name, std::move(d)).second) {
      return Status::InvalidArgument("load: placement lists '" + name + "' twice");
    }
  }
  std::shared_ptr<const Checkpoint> ckpt;
  if (session != nullptr && session->checkpoints != nullptr) {
    VMM_ASSIGN_OR_RETURN(ckpt, session->checkpoints->Open(path));
  } else {
    VMM_ASSIGN_OR_RETURN(Checkpoint c, OpenCheckpoint(path));
    ckpt = std::make_shared<const Checkpoint>(std::move(c));
  }
  VMM_ASSIGN_OR_RETURN(PlacementFn where, PlacementFromTable(*ckpt, table, hmm.num_devices()));
  VMM_ASSIGN_OR_RETURN(LoadReport report, hmm.LoadCheckpoint(*ckpt, where, prefix));
  return json{{"report", LoadReportJson(report)}};
}

StatusOr<json> CopyGroup(Hmm& hmm, const Fields& f) {
  VMM_ASSIGN_OR_RETURN(std::vector<std::string> names, f.StrList("names"));
  VMM_ASSIGN_OR_RETURN(int from, f.Int("from"));
  VMM_ASSIGN_OR_RETURN(int to, f.Int("to"));
  VMM_ASSIGN_OR_RETURN(Usage usage, f.UsageField("usage"));
  VMM_ASSIGN_OR_RETURN(std::string prefix, f.Str("prefix", ""));
  VMM_ASSIGN_OR_RETURN(uint64_t bytes, hmm.CopyGroup(names, from, to, usage, prefix));
  return json{{"bytes", bytes}};
}

StatusOr<json> Find(Hmm& hmm, const Fields& f) {
  VMM_ASSIGN_OR_RETURN(std::string name, f.Str("name"));
  VMM_ASSIGN_OR_RETURN(int device, f.Int("device"));
  VMM_ASSIGN_OR_RETURN(TensorRecord r, hmm.Find(name, device));
  return json{{"tensor", TensorJson(r, -1)}};
}

StatusOr<json> ReleaseMany(Hmm& hmm, const Fields& f, const json& req) {
  if (!f.has("records")) return f.Missing("records");
  const json& list = req["records"];
  if (!list.is_array()) return f.Bad("records", "an array of [name, device]");
  std::vector<std::pair<std::string, int>> records;
  for (const json& e : list) {
    if (!e.is_array() || e.size() != 2 || !e[0].is_string()) {
      return f.Bad("records", "an array of [name, device]");
    }
    VMM_ASSIGN_OR_RETURN(int device, f.ToInt(e[1], "records"));
    records.emplace_back(e[0].get<std::string>(), device);
  }
  // Validate all, then apply (LocalHmmControl::Release's meaning: unknown records are skipped).
  size_t n = 0;
  for (const auto& [name, device] : records) n += hmm.Release(name, device).ok() ? 1 : 0;
  return json{{"released", n}};
}

StatusOr<json> ReleaseMatching(Hmm& hmm, const Fields& f) {
  // "prefix" is required: a forgotten one must not release everything.
  VMM_ASSIGN_OR_RETURN(std::string prefix, f.Str("prefix"));
  std::vector<int> devices;
  if (f.has("devices")) {
    VMM_ASSIGN_OR_RETURN(devices, f.IntList("devices"));
  }
  return json{{"released", ReleaseMatchingIn(hmm, prefix, devices)}};
}

StatusOr<json> KvAlloc(Hmm& hmm, const Fields& f, Session* session) {
  if (session == nullptr) {
    return Status::FailedPrecondition("kv_alloc needs a connection to own the memory");
  }
  VMM_ASSIGN_OR_RETURN(int device, f.Int("device"));
  VMM_ASSIGN_OR_RETURN(uint64_t bytes, f.U64("bytes"));
  if (device < 0 || device >= hmm.num_devices()) {
    return Status::InvalidArgument("KV memory on unknown device " + std::to_string(device));
  }
  if (bytes == 0) return Status::InvalidArgument("KV memory of 0 bytes");
  Device& d = hmm.device(device);
  if (!d.arena(Usage::kKv)) {
    return Status::FailedPrecondition("device " + std::to_string(device) + " has no KV arena");
  }
  VMM_ASSIGN_OR_RETURN(vmm::Extent e, d.Allocate(Usage::kKv, bytes));
  const uint64_t id = session->next_kv_id++;
  json out{{"id", id}, {"offset", e.offset_bytes()}, {"bytes", e.size_bytes()}};
  session->kv.emplace(id, std::move(e));
  return out;
}

StatusOr<json> KvFree(const Fields& f, Session* session) {
  if (session == nullptr) {
    return Status::FailedPrecondition("kv_free needs the connection that owns the memory");
  }
  VMM_ASSIGN_OR_RETURN(uint64_t id, f.U64("id"));
  if (session->kv.erase(id) == 0) {
    return Status::NotFound("no KV memory " + std::to_string(id) + " on this connection");
  }
  return json::object();
}

StatusOr<json> KvResize(Hmm& hmm, const Fields& f, Session* session) {
  if (session == nullptr) {
    return Status::FailedPrecondition("kv_resize needs the connection that owns the memory");
  }
  VMM_ASSIGN_OR_RETURN(uint64_t id, f.U64("id"));
  VMM_ASSIGN_OR_RETURN(uint64_t bytes, f.U64("bytes"));
  auto it = session->kv.find(id);
  if (it == session->kv.end()) {
    return Status::NotFound("no KV memory " + std::to_string(id) + " on this connection");
  }
  for (int d = 0; d < hmm.num_devices(); ++d) {
    if (hmm.device(d).arena(Usage::kKv).get() != it->second.arena()) continue;
    VMM_RETURN_IF_ERROR(hmm.device(d).Resize(Usage::kKv, it->second, bytes));
    return json{{"bytes", it->second.size_bytes()}};
  }
  return Status::Internal("KV memory " + std::to_string(id) + " is in no device's KV arena");
}

Reply ToReply(const StatusOr<json>& r) {
  return r.ok() ? OkReply(r.value()) : ErrorReply(r.status());
}

}  // namespace

Reply HandleRequest(Hmm& hmm, const std::string& request, bool allow_writable, bool share_kv,
                    Session* session) {
  if (request.size() > kMaxAssembledRequestBytes) {
    return ErrorReply(Status::InvalidArgument("request of " + std::to_string(request.size()) +
                                              " bytes exceeds " +
                                              std::to_string(kMaxAssembledRequestBytes)));
  }
  json req = json::parse(request, nullptr, false);
  if (req.is_discarded() || !req.is_object() || !req.contains("op") || !req["op"].is_string()) {
    return ErrorReply(Status::InvalidArgument("malformed request: expected {\"op\": ...}"));
  }
  const std::string op = req["op"];
  // Type errors in fields (e.g. "device": "x") must not throw out of the server.
  const Fields f(req, op);
  for (const char* k : {"writable", "kv", "tensors"}) {
    if (req.contains(k) && !req[k].is_boolean()) {
      return ErrorReply(
          Status::InvalidArgument(std::string("field '") + k + "' must be a boolean"));
    }
  }
  if (op == "ping") return OkReply(json::object());
  if (op == "attach" || op == "list" || op == "release") {
    auto device = f.Int("device", -1);
    if (!device.ok()) return ErrorReply(device.status());
    if (op == "attach") return Attach(hmm, req, *device, allow_writable, share_kv);
    if (op == "list") {
      json tensors = json::array();
      for (const TensorRecord& r : hmm.List(*device)) tensors.push_back(TensorJson(r, -1));
      return OkReply(json{{"tensors", tensors}});
    }
    auto name = f.Str("name");
    if (!name.ok()) return ErrorReply(name.status());
    Status s = hmm.Release(*name, *device);
    return s.ok() ? OkReply(json::object()) : ErrorReply(s);
  }
  if (op == "stats") {
    json devices = json::array();
    for (const DeviceStats& s : hmm.Stats()) {
      json usage = json::array();
      for (const vmm::ArenaStats& a : s.usage) usage.push_back(ArenaStatsJson(a));
      devices.push_back({{"device", s.device},
                         {"capacity_bytes", s.capacity_bytes},
                         {"used_bytes", s.used_bytes},
                         {"peak_used_bytes", s.peak_used_bytes},
                         {"usage", usage}});
    }
    return OkReply(json{{"devices", devices}, {"report", hmm.Report()}});
  }
  if (op == "devices") return ToReply(Devices(hmm));
  if (op == "load") return ToReply(Load(hmm, f, req, session));
  if (op == "copy_group") return ToReply(CopyGroup(hmm, f));
  if (op == "find") return ToReply(Find(hmm, f));
  if (op == "release_many") return ToReply(ReleaseMany(hmm, f, req));
  if (op == "release_matching") return ToReply(ReleaseMatching(hmm, f));
  if (op == "kv_alloc") return ToReply(KvAlloc(hmm, f, session));
  if (op == "kv_free") return ToReply(KvFree(f, session));
  if (op == "kv_resize") return ToReply(KvResize(hmm, f, session));
  return ErrorReply(Status::InvalidArgument("unknown op '" + op + "'"));
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
    if (part.payload.empty() || (part.payload[0] != '0' && part.payload[0] != '1')) {
      return Status::DataLoss("malformed reply part from the HMM server");
    }
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

namespace {

// The next request of a connection.
struct Incoming {
  enum Kind {
    kRequest,  // `request` holds it
    kError,    // answer `error`; the connection stays usable
    kFatal,    // answer `error` and hang up: a framed request broke off, the stream is lost
    kGone,     // the peer closed the connection (or it was shut down)
  };
  Kind kind = kRequest;
  std::string request;
  Status error;
};

bool PeerGone(const Status& s) {
  return s.code() == vmm::StatusCode::kUnavailable || s.err() == ECONNRESET;
}

// Receives a raw request, or the parts of a framed one (see server.h).
Incoming ReceiveRequest(int fd) {
  auto first = vmm::RecvFds(fd, 0);
  if (!first.ok()) {
    if (PeerGone(first.status())) return {Incoming::kGone, "", first.status()};
    return {Incoming::kError, "", first.status()};  // too large, or fds: say so
  }
  std::string& p = first->payload;
  if (p.empty() || (p[0] != '0' && p[0] != '1')) {
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
    if (next->payload.empty() || (next->payload[0] != '0' && next->payload[0] != '1')) {
      return {Incoming::kFatal, "",
              Status::InvalidArgument("a request part lacks its '0'/'1' framing byte")};
    }
    part = std::move(*next);
  }
}

}  // namespace

// ---------------------------------------------------------------------------------------------

Status HmmServer::Start() {
  if (options_.socket_path.empty() ||
      options_.socket_path.size() >= sizeof(sockaddr_un::sun_path)) {
    return Status::InvalidArgument("socket path '" + options_.socket_path +
                                   "' is empty or too long");
  }
  listen_fd_.Reset(socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
  if (!listen_fd_.valid()) return Status::FromErrno(errno, "hmmd socket", "socket");
  struct stat st;
  if (lstat(options_.socket_path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) {
      return Status::AlreadyExists(options_.socket_path + " exists and is not a socket");
    }
    unlink(options_.socket_path.c_str());  // stale socket of a previous run
  }
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", options_.socket_path.c_str());
  if (bind(listen_fd_.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    return Status::FromErrno(errno, "bind " + options_.socket_path, "bind");
  }
  if (chmod(options_.socket_path.c_str(), options_.socket_mode) != 0) {
    return Status::FromErrno(errno, "chmod " + options_.socket_path, "chmod");
  }
  listening_ = true;  // the file is ours: Stop() removes it
  if (listen(listen_fd_.get(), 64) != 0) return Status::FromErrno(errno, "hmmd", "listen");
  int p[2];
  if (pipe2(p, O_CLOEXEC) != 0) return Status::FromErrno(errno, "hmmd", "pipe2");
  wake_r_.Reset(p[0]);
  wake_w_.Reset(p[1]);
  acceptor_ = std::thread(&HmmServer::AcceptLoop, this);
  return Status::Ok();
}

void HmmServer::Stop() {
  stopping_ = true;
  if (acceptor_.joinable()) {
    (void)!write(wake_w_.get(), "x", 1);
    acceptor_.join();
  }
  {
    std::unique_lock<std::mutex> l(mu_);
    for (int fd : client_fds_) shutdown(fd, SHUT_RDWR);  // unblocks their recv
    idle_cv_.wait(l, [&] { return active_clients_ == 0; });
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
  std::lock_guard<std::mutex> l(mu_);
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
    std::lock_guard<std::mutex> l(mu_);
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
  if (!refusal.ok()) {
    // Answer the first request (so the client learns why), then hang up. A silent peer gets
    // one second.
    pollfd pf{fd, POLLIN, 0};
    if (poll(&pf, 1, 1000) == 1 && vmm::RecvFds(fd, 0).ok()) {
      (void)SendReply(fd, ErrorReply(refusal));
    }
  }
  {
    Session session;  // its KV memory goes back when the connection ends
    session.checkpoints = &checkpoints_;
    while (refusal.ok()) {
      Incoming in = ReceiveRequest(fd);
      if (in.kind == Incoming::kGone || stopping_) break;  // the client went away, or we stop
      if (in.kind != Incoming::kRequest) {
        // Malformed or oversized: say so; keep the connection unless the stream is lost.
        if (!SendReply(fd, ErrorReply(in.error)).ok() || in.kind == Incoming::kFatal) break;
        continue;
      }
      Reply reply =
          HandleRequest(*hmm_, in.request, options_.allow_writable, options_.share_kv, &session);
      ++served_;
      if (!SendReply(fd, reply).ok()) break;  // EPIPE: the client died mid-request
    }
  }
  if (refusal.ok() && !stopping_ && on_close) on_close();
  std::lock_guard<std::mutex> l(mu_);
  client_fds_.erase(fd);
  close(fd);
  if (--active_clients_ == 0) idle_cv_.notify_all();
}

}  // namespace emoe::hbm
