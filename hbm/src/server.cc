#include "hbm/server.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <map>
#include <nlohmann/json.hpp>

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

namespace {

constexpr size_t kPartBytes = 60000;

Reply ErrorReply(const Status& s) { return Reply{ErrorJson(s), {}}; }

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

// A read-only file description of the same memfd: the client cannot map it writable.
StatusOr<vmm::UniqueFd> ReopenReadOnly(int fd) {
  const std::string path = "/proc/self/fd/" + std::to_string(fd);
  const int ro = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (ro < 0) return Status::FromErrno(errno, "reopen arena memfd read-only", "open");
  return vmm::UniqueFd(ro);
}

Reply Attach(Hmm& hmm, const json& req, bool allow_writable, bool share_kv) {
  const int device = req.value("device", -1);
  const bool writable = req.value("writable", false);
  const bool kv = req.value("kv", false);
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
  for (const TensorRecord& r : hmm.List(device)) {
    auto index = add_arena(r.extent.arena(), writable);
    if (!index.ok()) return ErrorReply(index.status());
    tensors.push_back(TensorJson(r, *index));
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

}  // namespace

Reply HandleRequest(Hmm& hmm, const std::string& request, bool allow_writable, bool share_kv) {
  if (request.size() > kMaxRequestBytes) {
    return ErrorReply(Status::InvalidArgument("request of " + std::to_string(request.size()) +
                                              " bytes exceeds " +
                                              std::to_string(kMaxRequestBytes)));
  }
  json req = json::parse(request, nullptr, false);
  if (req.is_discarded() || !req.is_object() || !req.contains("op") || !req["op"].is_string()) {
    return ErrorReply(Status::InvalidArgument("malformed request: expected {\"op\": ...}"));
  }
  const std::string op = req["op"];
  // Type errors in fields (e.g. "device": "x") must not throw out of the server.
  auto int_field = [&](const char* k, int def) -> StatusOr<int> {
    if (!req.contains(k)) return def;
    if (!req[k].is_number_integer()) {
      return Status::InvalidArgument(std::string("field '") + k + "' must be an integer");
    }
    return req[k].get<int>();
  };
  for (const char* k : {"writable", "kv"}) {
    if (req.contains(k) && !req[k].is_boolean()) {
      return ErrorReply(
          Status::InvalidArgument(std::string("field '") + k + "' must be a boolean"));
    }
  }
  auto device = int_field("device", -1);
  if (!device.ok()) return ErrorReply(device.status());
  if (op == "ping") return Reply{json{{"ok", true}}.dump(), {}};
  if (op == "attach") return Attach(hmm, req, allow_writable, share_kv);
  if (op == "list") {
    json tensors = json::array();
    for (const TensorRecord& r : hmm.List(*device)) tensors.push_back(TensorJson(r, -1));
    return Reply{json{{"ok", true}, {"tensors", tensors}}.dump(), {}};
  }
  if (op == "stats") {
    json devices = json::array();
    for (const DeviceStats& s : hmm.Stats()) {
      devices.push_back({{"device", s.device},
                         {"capacity_bytes", s.capacity_bytes},
                         {"used_bytes", s.used_bytes},
                         {"peak_used_bytes", s.peak_used_bytes}});
    }
    return Reply{json{{"ok", true}, {"devices", devices}, {"report", hmm.Report()}}.dump(), {}};
  }
  if (op == "release") {
    if (!req.contains("name") || !req["name"].is_string()) {
      return ErrorReply(Status::InvalidArgument("release needs a string 'name'"));
    }
    Status s = hmm.Release(req["name"].get<std::string>(), *device);
    return s.ok() ? Reply{json{{"ok", true}}.dump(), {}} : ErrorReply(s);
  }
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
  if (listen(listen_fd_.get(), 64) != 0) return Status::FromErrno(errno, "hmmd", "listen");
  int p[2];
  if (pipe2(p, O_CLOEXEC) != 0) return Status::FromErrno(errno, "hmmd", "pipe2");
  wake_r_.Reset(p[0]);
  wake_w_.Reset(p[1]);
  acceptor_ = std::thread(&HmmServer::AcceptLoop, this);
  return Status::Ok();
}

void HmmServer::Stop() {
  if (!acceptor_.joinable()) return;
  stopping_ = true;
  (void)!write(wake_w_.get(), "x", 1);
  acceptor_.join();
  {
    std::unique_lock<std::mutex> l(mu_);
    for (int fd : client_fds_) shutdown(fd, SHUT_RDWR);  // unblocks their recv
    idle_cv_.wait(l, [&] { return active_clients_ == 0; });
  }
  unlink(options_.socket_path.c_str());
}

void HmmServer::AcceptLoop() {
  for (;;) {
    pollfd pf[2] = {{listen_fd_.get(), POLLIN, 0}, {wake_r_.get(), POLLIN, 0}};
    if (poll(pf, 2, -1) < 0 && errno != EINTR) return;
    if (stopping_) return;
    if (!(pf[0].revents & POLLIN)) continue;
    const int fd = accept4(listen_fd_.get(), nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    ucred cred{};
    socklen_t len = sizeof(cred);
    const bool known = getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0;
    const bool allowed =
        known && (cred.uid == geteuid() || options_.allowed_uids.count(cred.uid) > 0);
    std::lock_guard<std::mutex> l(mu_);
    Status refusal;
    if (!allowed) {
      refusal = Status::PermissionDenied("uid " + std::to_string(cred.uid) +
                                         " may not use this HMM (server uid " +
                                         std::to_string(geteuid()) + ")");
    } else if (static_cast<int>(client_fds_.size()) >= options_.max_clients) {
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
    std::thread(&HmmServer::Serve, this, fd, refusal).detach();  // Stop() waits for it
  }
}

void HmmServer::Serve(int fd, Status refusal) {
  if (!refusal.ok()) {
    // Answer the first request (so the client learns why), then hang up. A silent peer gets
    // one second.
    pollfd pf{fd, POLLIN, 0};
    if (poll(&pf, 1, 1000) == 1 && vmm::RecvFds(fd, 0).ok()) {
      (void)SendReply(fd, ErrorReply(refusal));
    }
  }
  while (refusal.ok()) {
    auto msg = vmm::RecvFds(fd, 0);
    if (!msg.ok()) {
      if (msg.status().code() == vmm::StatusCode::kUnavailable ||
          msg.status().err() == ECONNRESET || stopping_) {
        break;  // the client went away (or we are stopping)
      }
      // Oversized or malformed at the socket level: say so and keep the connection.
      if (!SendReply(fd, ErrorReply(msg.status())).ok()) break;
      continue;
    }
    Reply reply = HandleRequest(*hmm_, msg->payload, options_.allow_writable, options_.share_kv);
    ++served_;
    if (!SendReply(fd, reply).ok()) break;  // EPIPE: the client died mid-request
  }
  std::lock_guard<std::mutex> l(mu_);
  client_fds_.erase(fd);
  close(fd);
  if (--active_clients_ == 0) idle_cv_.notify_all();
}

}  // namespace emoe::hbm
