// RemoteHmmControl: the HmmControl operations as requests of the hmmd protocol (hbm/server.h) on
// one control connection.
//
// Concepts:
//  - A Channel is the connection: one request and its whole reply at a time, under its mutex.
//    Once a send or receive fails the channel is closed for good and every later call is
//    kUnavailable "hmmd (pid N): connection lost: <why>" (with how the launched process ended,
//    when it did).
//  - The Channel and the KV mapping (an Attachment of every device's KV arena, read-write) are
//    shared_ptrs held by the RemoteHmmControl and by each KvMemory it handed out, so a KvMemory
//    may outlive the control: its memory stays mapped (this process holds the memfds), and its
//    kv_free goes nowhere once the connection is closed (hmmd freed it with the connection).
//  - A launched hmmd holds the other end of a socketpair as its control connection and exits
//    when it closes; the destructor closes it and reaps the process (SIGKILL after 5 s), then
//    removes the socket file if the process died without removing it.
#include "hbm/remote_control.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <limits>
#include <nlohmann/json.hpp>
#include <thread>

#include "hbm/client.h"
#include "hbm/server.h"
#include "vmm/fd_passing.h"
#include "vmm/stats.h"

namespace emoe::hbm {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

constexpr int kChildControlFd = 3;
constexpr auto kStartTimeout = std::chrono::seconds(60);  // devices and arenas created
constexpr auto kExitTimeout = std::chrono::seconds(5);    // hmmd exits once its connection closes

const char* PageSizeFlag(vmm::PageSizePolicy p) {
  switch (p) {
    case vmm::PageSizePolicy::kAuto:
      return "auto";
    case vmm::PageSizePolicy::kHugetlb:
      return "hugetlb";
    case vmm::PageSizePolicy::kShmemThp:
      return "thp";
    case vmm::PageSizePolicy::kSmall:
      return "4k";
  }
  return "?";
}

// hmmd's flags for `o` (the devices, arenas and loader of its HmmOptions, then extra_args,
// which may override them). hmmd takes sizes in MiB: a byte count that is not a whole number of
// MiB is refused. LoaderOptions::progress (a callback) cannot travel: hmmd logs load progress on
// its stderr every progress_interval_s.
StatusOr<std::vector<std::string>> HmmdFlags(const HmmdOptions& o, const std::string& socket) {
  const HmmOptions& h = o.hmm;
  VMM_RETURN_IF_ERROR(h.devices.Validate());
  VMM_RETURN_IF_ERROR(h.loader.Validate());
  if (h.copy_threads_per_device < 0) {
    return Status::InvalidArgument("copy_threads_per_device must be >= 0, got " +
                                   std::to_string(h.copy_threads_per_device));
  }
  std::vector<std::string> args = {"--socket=" + socket,
                                   "--control_fd=" + std::to_string(kChildControlFd)};
  auto mib = [&](const char* flag, uint64_t bytes) -> Status {
    if (bytes % (1ull << 20) != 0) {
      return Status::InvalidArgument(std::string("hmmd takes --") + flag + " in MiB; " +
                                     std::to_string(bytes) + " bytes is not a whole number of MiB");
    }
    args.push_back(std::string("--") + flag + "=" + std::to_string(bytes >> 20));
    return Status::Ok();
  };
  auto flag = [&](const char* name, const std::string& value) {
    args.push_back(std::string("--") + name + "=" + value);
  };
  auto boolean = [](bool b) { return std::string(b ? "true" : "false"); };
  flag("devices_per_node", std::to_string(h.devices.devices_per_node));
  if (!h.devices.nodes.empty()) {
    std::string nodes;
    for (int n : h.devices.nodes) nodes += (nodes.empty() ? "" : ",") + std::to_string(n);
    flag("nodes", nodes);
  }
  flag("pin_cpus", boolean(h.devices.pin_cpus));
  VMM_RETURN_IF_ERROR(mib("device_capacity_mb", h.devices.capacity_bytes));
  VMM_RETURN_IF_ERROR(mib("weights_mb", h.memory.usage_bytes[static_cast<int>(Usage::kWeights)]));
  VMM_RETURN_IF_ERROR(mib("experts_mb", h.memory.usage_bytes[static_cast<int>(Usage::kExperts)]));
  VMM_RETURN_IF_ERROR(mib("kv_mb", h.memory.usage_bytes[static_cast<int>(Usage::kKv)]));
  flag("page_size", PageSizeFlag(h.memory.page_size));
  flag("populate", boolean(h.memory.populate));
  flag("discard_on_free", boolean(h.memory.discard_on_free));
  flag("queue_depth", std::to_string(h.loader.queue_depth));
  flag("chunk_kb", std::to_string(h.loader.chunk_bytes >> 10));  // a multiple of 4 KiB
  flag("direct_io", boolean(h.loader.direct_io));
  flag("register_buffers", boolean(h.loader.register_buffers));
  char interval[32];
  std::snprintf(interval, sizeof(interval), "%.17g", h.loader.progress_interval_s);
  flag("progress_interval_s", interval);
  flag("copy_threads", std::to_string(h.copy_threads_per_device));
  for (const std::string& a : o.extra_args) args.push_back(a);
  return args;
}

std::string DefaultSocketPath() {
  static std::atomic<uint64_t> serial{0};
  const char* tmp = std::getenv("TMPDIR");
  return std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") + "/emoe-hmmd-" +
         std::to_string(getpid()) + "-" + std::to_string(serial++) + ".sock";
}

// Reads the fields of a reply. A missing or wrongly typed field makes status() kDataLoss (the
// first one is named) and reads as zero / empty; nothing throws.
class ReplyReader {
 public:
  explicit ReplyReader(std::string what) : what_(std::move(what)) {}

  const json& Field(const json& j, const char* k) {
    static const json kNull;
    if (!j.is_object() || !j.contains(k)) {
      Fail(k);
      return kNull;
    }
    return j[k];
  }
  uint64_t U64(const json& j, const char* k) {
    const json& v = Field(j, k);
    if (v.is_number_unsigned()) return v.get<uint64_t>();
    if (!v.is_null()) Fail(k);
    return 0;
  }
  int Int(const json& j, const char* k) {
    const json& v = Field(j, k);
    if (v.is_number_integer() && v.get<int64_t>() >= std::numeric_limits<int>::min() &&
        v.get<int64_t>() <= std::numeric_limits<int>::max()) {
      return static_cast<int>(v.get<int64_t>());
    }
    if (!v.is_null()) Fail(k);
    return 0;
  }
  double Double(const json& j, const char* k) {
    const json& v = Field(j, k);
    if (v.is_number()) return v.get<double>();
    if (!v.is_null()) Fail(k);
    return 0;
  }
  bool Bool(const json& j, const char* k) {
    const json& v = Field(j, k);
    if (v.is_boolean()) return v.get<bool>();
    if (!v.is_null()) Fail(k);
    return false;
  }
  std::string Str(const json& j, const char* k) {
    const json& v = Field(j, k);
    if (v.is_string()) return v.get<std::string>();
    if (!v.is_null()) Fail(k);
    return "";
  }
  // The elements of an array field (empty and failed when it is not one).
  std::vector<json> Array(const json& j, const char* k) {
    const json& v = Field(j, k);
    if (v.is_array()) return std::vector<json>(v.begin(), v.end());
    if (!v.is_null()) Fail(k);
    return {};
  }
  template <typename T>
  std::vector<T> IntList(const json& j, const char* k) {
    std::vector<T> out;
    for (const json& e : Array(j, k)) {
      if (!e.is_number_integer()) {
        Fail(k);
        return {};
      }
      out.push_back(static_cast<T>(e.get<int64_t>()));
    }
    return out;
  }
  void Fail(const std::string& field) {
    if (status_.ok()) {
      status_ = Status::DataLoss("hmmd: malformed " + what_ + " reply (field '" + field + "')");
    }
  }
  const Status& status() const { return status_; }

 private:
  std::string what_;
  Status status_;
};

// One control connection (see the top of the file).
class Channel {
 public:
  Channel(vmm::UniqueFd fd, std::string who) : fd_(std::move(fd)), who_(std::move(who)) {}

  const std::string& who() const { return who_; }

  // Sends `request` and receives its whole reply (its "ok" is not looked at). `await`, if set,
  // runs between the two (the connection's fd as argument): a non-OK status from it is
  // returned as it is. Any failure closes the connection.
  StatusOr<vmm::ReceivedMessage> Roundtrip(const std::string& request,
                                           const std::function<Status(int)>& await = nullptr) {
    if (request.size() > kMaxAssembledRequestBytes) {  // refused here, the connection stays
      return Status::InvalidArgument("request to " + who_ + " of " +
                                     std::to_string(request.size()) + " bytes exceeds " +
                                     std::to_string(kMaxAssembledRequestBytes));
    }
    std::lock_guard<std::mutex> l(mu_);
    if (!fd_.valid()) return Status::Unavailable(who_ + ": connection lost: " + lost_);
    Status s = SendRequest(fd_.get(), request);
    if (s.ok() && await) {
      Status waited = await(fd_.get());
      if (!waited.ok()) {
        lost_ = waited.message();
        fd_.Reset();
        return waited;
      }
    }
    StatusOr<vmm::ReceivedMessage> m = s;
    if (s.ok()) m = ReceiveReply(fd_.get());
    if (!m.ok()) {
      lost_ = m.status().message();
      fd_.Reset();
      return Status::Unavailable(who_ + ": connection lost: " + lost_, m.status().err());
    }
    return m;
  }

  // Roundtrip, then the reply's status (hmmd's errors with their codes) and its JSON.
  StatusOr<json> Call(const json& request) {
    VMM_ASSIGN_OR_RETURN(vmm::ReceivedMessage m, Roundtrip(request.dump()));
    VMM_RETURN_IF_ERROR(ReplyStatus(m.payload, "hmmd"));
    json j = json::parse(m.payload, nullptr, false);
    if (!j.is_object()) return Status::DataLoss(who_ + ": malformed reply");
    return j;
  }

  // Hangs up; later calls are kUnavailable.
  void Close() {
    std::lock_guard<std::mutex> l(mu_);
    if (fd_.valid()) {
      lost_ = "closed by this process";
      fd_.Reset();
    }
  }

 private:
  std::mutex mu_;
  vmm::UniqueFd fd_;  // guarded by mu_
  std::string lost_;  // guarded by mu_: why the connection is gone
  const std::string who_;
};

// KV memory of a control connection: freed by kv_free, or by hmmd when the connection closes.
class RemoteKvMemory : public KvMemory {
 public:
  RemoteKvMemory(std::shared_ptr<Channel> channel, std::shared_ptr<const Attachment> map,
                 uint64_t id)
      : channel_(std::move(channel)), map_(std::move(map)), id_(id) {}
  ~RemoteKvMemory() override {
    // Errors are ignored: a lost connection has freed it already.
    (void)channel_->Roundtrip(json{{"op", "kv_free"}, {"id", id_}}.dump());
  }
  Status Resize(uint64_t bytes) override {
    VMM_ASSIGN_OR_RETURN(json j,
                         channel_->Call(json{{"op", "kv_resize"}, {"id", id_}, {"bytes", bytes}}));
    ReplyReader r("kv_resize");
    const uint64_t size = r.U64(j, "bytes");
    VMM_RETURN_IF_ERROR(r.status());
    if (size < bytes || arena_offset + size > map_->kv_bytes(device)) {
      return Status::DataLoss("hmmd: KV memory " + std::to_string(id_) + " resized to " +
                              std::to_string(size) + " bytes at " + std::to_string(arena_offset) +
                              ", outside device " + std::to_string(device) +
                              "'s KV arena as mapped here");
    }
    size_bytes = size;
    return Status::Ok();
  }

 private:
  std::shared_ptr<Channel> channel_;
  std::shared_ptr<const Attachment> map_;  // keeps `base` mapped
  uint64_t id_;
};

}  // namespace

class RemoteHmmControl::Impl {
 public:
  Impl(std::shared_ptr<Channel> channel, pid_t pid) : channel(std::move(channel)), pid(pid) {}

  // Channel::Call; a lost connection says how a launched hmmd ended, if it did.
  StatusOr<json> Call(const json& request) {
    StatusOr<json> r = channel->Call(request);
    if (!r.ok() && r.status().code() == vmm::StatusCode::kUnavailable && pid > 0) {
      const std::string how = HowItEnded(std::chrono::milliseconds(500));
      if (!how.empty()) {
        return Status::Unavailable(r.status().message() + " (" + how + ")", r.status().err());
      }
    }
    return r;
  }

  // How the launched process ended ("hmmd (pid N) exited with status 2", "... was killed by
  // signal 9 (Killed)"), waiting for it up to `wait`; empty if it still runs.
  std::string HowItEnded(Clock::duration wait) {
    std::lock_guard<std::mutex> l(proc_mu);
    const auto deadline = Clock::now() + wait;
    while (!ReapLocked(false) && Clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    if (!reaped) return "";
    const std::string who = "hmmd (pid " + std::to_string(pid) + ")";
    if (WIFSIGNALED(wait_status)) {
      return who + " was killed by signal " + std::to_string(WTERMSIG(wait_status)) + " (" +
             strsignal(WTERMSIG(wait_status)) + ")";
    }
    return who + " exited with status " + std::to_string(WEXITSTATUS(wait_status));
  }

  // Waits up to kExitTimeout for the launched process to exit, then kills it; reaps it.
  void Reap() {
    std::lock_guard<std::mutex> l(proc_mu);
    const auto deadline = Clock::now() + kExitTimeout;
    while (!ReapLocked(false) && Clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    if (!reaped) {
      kill(pid, SIGKILL);
      ReapLocked(true);
    }
  }

  // The "devices" handshake: fills `c`'s devices, page note. `await` as in Roundtrip.
  Status Handshake(RemoteHmmControl* c, const std::function<Status(int)>& await) {
    VMM_ASSIGN_OR_RETURN(vmm::ReceivedMessage m,
                         channel->Roundtrip(json{{"op", "devices"}}.dump(), await));
    VMM_RETURN_IF_ERROR(ReplyStatus(m.payload, "hmmd"));
    const json j = json::parse(m.payload, nullptr, false);
    ReplyReader r("devices");
    c->page_note_ = r.Str(j, "page_note");
    c->specs_.clear();
    for (const json& d : r.Array(j, "devices")) {
      DeviceSpec s;
      s.id = r.Int(d, "id");
      s.node = r.Int(d, "node");
      s.cpus = r.IntList<int>(d, "cpus");
      s.capacity_bytes = r.U64(d, "capacity_bytes");
      if (s.id != static_cast<int>(c->specs_.size())) r.Fail("id");
      c->specs_.push_back(std::move(s));
    }
    VMM_RETURN_IF_ERROR(r.status());
    if (c->specs_.empty()) return Status::DataLoss(channel->who() + " reports no devices");
    return Status::Ok();
  }

  // Every device's KV arena mapped read-write, once.
  StatusOr<std::shared_ptr<const Attachment>> KvMap() {
    std::lock_guard<std::mutex> l(kv_mu);
    if (kv_map) return kv_map;
    const json attach{{"op", "attach"}, {"device", -1}, {"tensors", false}, {"kv", true}};
    VMM_ASSIGN_OR_RETURN(vmm::ReceivedMessage m, channel->Roundtrip(attach.dump()));
    VMM_ASSIGN_OR_RETURN(std::unique_ptr<Attachment> a,
                         Attachment::FromReply(std::move(m), /*writable=*/false));
    kv_map = std::move(a);
    return kv_map;
  }

  const std::shared_ptr<Channel> channel;
  const pid_t pid;  // a launched hmmd, else 0

 private:
  // waitpid; true once reaped. REQUIRES: proc_mu held.
  bool ReapLocked(bool block) {
    if (reaped || pid <= 0) return true;
    if (waitpid(pid, &wait_status, block ? 0 : WNOHANG) == pid) reaped = true;
    return reaped;
  }

  std::mutex proc_mu;
  bool reaped = false;  // guarded by proc_mu
  int wait_status = 0;  // guarded by proc_mu

  std::mutex kv_mu;
  std::shared_ptr<const Attachment> kv_map;  // guarded by kv_mu
};

StatusOr<std::unique_ptr<RemoteHmmControl>> RemoteHmmControl::Launch(const HmmdOptions& options) {
  if (options.binary.empty()) return Status::InvalidArgument("HmmdOptions::binary is required");
  if (access(options.binary.c_str(), X_OK) != 0) {
    return Status::FromErrno(errno, "hmmd binary '" + options.binary + "'", "access");
  }
  const std::string socket =
      options.socket_path.empty() ? DefaultSocketPath() : options.socket_path;
  if (socket.size() >= sizeof(sockaddr_un::sun_path)) {
    return Status::InvalidArgument("hmmd socket path '" + socket + "' is too long (" +
                                   std::to_string(socket.size()) + " bytes; at most " +
                                   std::to_string(sizeof(sockaddr_un::sun_path) - 1) + ")");
  }
  VMM_ASSIGN_OR_RETURN(std::vector<std::string> flags, HmmdFlags(options, socket));

  std::vector<std::string> argv = {options.binary};
  argv.insert(argv.end(), flags.begin(), flags.end());
  // hmmd logs to stderr; its stdout goes there too, so this process's stdout stays its own.
  VMM_ASSIGN_OR_RETURN(
      vmm::SpawnedChild child,
      vmm::SpawnWithSocket(argv, kChildControlFd, /*stdout_to_stderr=*/true, "hmmd"));
  const pid_t pid = child.pid;
  vmm::UniqueFd mine = std::move(child.socket);

  auto c = std::unique_ptr<RemoteHmmControl>(new RemoteHmmControl());
  c->pid_ = pid;
  c->socket_path_ = socket;
  const std::string who = "hmmd (pid " + std::to_string(pid) + ")";
  c->impl_ = std::make_unique<Impl>(std::make_shared<Channel>(std::move(mine), who), pid);
  // Wait for the answer while watching the process: one that exits early (a bad flag, no
  // memory) is reported with its exit status. The destructor reaps it on any error.
  Impl* impl = c->impl_.get();
  auto await = [impl, &who](int fd) -> Status {
    const auto deadline = Clock::now() + kStartTimeout;
    for (;;) {
      pollfd pf{fd, POLLIN, 0};
      if (poll(&pf, 1, 100) == 1) return Status::Ok();  // the reply, or the hang-up
      if (Clock::now() >= deadline) {
        return Status::Unavailable(who + " did not answer within " +
                                   std::to_string(kStartTimeout.count()) +
                                   " s (see its log on stderr)");
      }
      const std::string how = impl->HowItEnded(Clock::duration::zero());
      if (!how.empty())
        return Status::Unavailable(how + " before answering (see its log on stderr)");
    }
  };
  Status s = impl->Handshake(c.get(), await);
  if (!s.ok()) {
    if (s.code() == vmm::StatusCode::kUnavailable) {
      // The connection closed: most likely hmmd exited; say how.
      const std::string how = impl->HowItEnded(std::chrono::seconds(2));
      if (!how.empty() && s.message().find(how) == std::string::npos) {
        return Status::Unavailable(how + " before answering (see its log on stderr)");
      }
      return s;
    }
    return s.Annotate("start " + who);
  }
  return c;
}

StatusOr<std::unique_ptr<RemoteHmmControl>> RemoteHmmControl::Connect(
    const std::string& socket_path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (socket_path.size() >= sizeof(addr.sun_path)) {
    return Status::InvalidArgument("hmmd socket path too long: " + socket_path);
  }
  std::snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", socket_path.c_str());
  vmm::UniqueFd fd(socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return Status::FromErrno(errno, "connect to hmmd at " + socket_path, "socket");
  if (connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    return Status::FromErrno(errno, "connect to hmmd at " + socket_path, "connect");
  }
  auto c = std::unique_ptr<RemoteHmmControl>(new RemoteHmmControl());
  c->socket_path_ = socket_path;
  c->impl_ =
      std::make_unique<Impl>(std::make_shared<Channel>(std::move(fd), "hmmd at " + socket_path), 0);
  VMM_RETURN_IF_ERROR(c->impl_->Handshake(c.get(), nullptr));
  return c;
}

RemoteHmmControl::~RemoteHmmControl() {
  if (!impl_) return;
  impl_->channel->Close();  // a launched hmmd exits now
  if (pid_ <= 0) return;
  impl_->Reap();
  // A clean exit removed the socket file; one that died (SIGKILL) left it behind. The path was
  // given to this daemon, which is gone: remove what remains.
  struct stat st;
  if (lstat(socket_path_.c_str(), &st) == 0 && S_ISSOCK(st.st_mode)) unlink(socket_path_.c_str());
}

StatusOr<LoadReport> RemoteHmmControl::Load(const std::string& checkpoint_path,
                                            const PlacementTable& placement,
                                            const std::string& prefix) {
  json entries = json::array();
  for (const auto& [name, d] : placement) {
    entries.push_back({{"name", name},
                       {"usage", UsageName(d.usage)},
                       {"devices", d.devices},
                       {"group", d.group}});
  }
  VMM_ASSIGN_OR_RETURN(json j, impl_->Call(json{{"op", "load"},
                                                {"checkpoint", checkpoint_path},
                                                {"prefix", prefix},
                                                {"placement", std::move(entries)}}));
  ReplyReader r("load");
  const json& rep = r.Field(j, "report");
  const json& disk = r.Field(rep, "disk");
  LoadReport out;
  out.tensors = r.U64(rep, "tensors");
  out.bytes_from_disk = r.U64(rep, "bytes_from_disk");
  out.bytes_p2p = r.U64(rep, "bytes_p2p");
  out.disk_seconds = r.Double(rep, "disk_seconds");
  out.p2p_seconds = r.Double(rep, "p2p_seconds");
  out.disk.bytes = r.U64(disk, "bytes");
  out.disk.seconds = r.Double(disk, "seconds");
  out.disk.reads = r.U64(disk, "reads");
  out.disk.short_reads = r.U64(disk, "short_reads");
  out.disk.direct_io = r.Bool(disk, "direct_io");
  out.disk.fixed_buffers = r.Bool(disk, "fixed_buffers");
  out.disk.fallback_reason = r.Str(disk, "fallback_reason");
  VMM_RETURN_IF_ERROR(r.status());
  return out;
}

StatusOr<uint64_t> RemoteHmmControl::CopyGroup(const std::vector<std::string>& names, int from,
                                               int to, Usage usage, const std::string& dst_prefix) {
  VMM_ASSIGN_OR_RETURN(json j, impl_->Call(json{{"op", "copy_group"},
                                                {"names", names},
                                                {"from", from},
                                                {"to", to},
                                                {"usage", UsageName(usage)},
                                                {"prefix", dst_prefix}}));
  ReplyReader r("copy_group");
  const uint64_t bytes = r.U64(j, "bytes");
  VMM_RETURN_IF_ERROR(r.status());
  return bytes;
}

StatusOr<TensorMeta> RemoteHmmControl::Find(const std::string& name, int device) {
  VMM_ASSIGN_OR_RETURN(json j,
                       impl_->Call(json{{"op", "find"}, {"name", name}, {"device", device}}));
  ReplyReader r("find");
  const json& t = r.Field(j, "tensor");
  TensorMeta m;
  m.name = r.Str(t, "name");
  m.device = r.Int(t, "device");
  m.shape = r.IntList<int64_t>(t, "shape");
  m.size_bytes = r.U64(t, "size");
  m.extent_bytes = r.U64(t, "extent_size");
  auto usage = ParseUsage(r.Str(t, "usage"));
  auto dtype = ParseDType(r.Str(t, "dtype"));
  VMM_RETURN_IF_ERROR(r.status());
  if (!usage.ok()) r.Fail("usage");
  if (!dtype.ok()) r.Fail("dtype");
  VMM_RETURN_IF_ERROR(r.status());
  m.usage = *usage;
  m.dtype = *dtype;
  return m;
}

StatusOr<size_t> RemoteHmmControl::Release(
    const std::vector<std::pair<std::string, int>>& records) {
  json list = json::array();
  for (const auto& [name, device] : records) list.push_back(json::array({name, device}));
  VMM_ASSIGN_OR_RETURN(json j, impl_->Call(json{{"op", "release_many"}, {"records", list}}));
  ReplyReader r("release_many");
  const uint64_t n = r.U64(j, "released");
  VMM_RETURN_IF_ERROR(r.status());
  return static_cast<size_t>(n);
}

StatusOr<size_t> RemoteHmmControl::ReleaseMatching(const std::string& prefix,
                                                   const std::vector<int>& devices) {
  VMM_ASSIGN_OR_RETURN(
      json j,
      impl_->Call(json{{"op", "release_matching"}, {"prefix", prefix}, {"devices", devices}}));
  ReplyReader r("release_matching");
  const uint64_t n = r.U64(j, "released");
  VMM_RETURN_IF_ERROR(r.status());
  return static_cast<size_t>(n);
}

StatusOr<std::vector<DeviceStats>> RemoteHmmControl::Stats() {
  VMM_ASSIGN_OR_RETURN(json j, impl_->Call(json{{"op", "stats"}}));
  ReplyReader r("stats");
  std::vector<DeviceStats> out;
  for (const json& d : r.Array(j, "devices")) {
    DeviceStats s;
    s.device = r.Int(d, "device");
    s.capacity_bytes = r.U64(d, "capacity_bytes");
    s.used_bytes = r.U64(d, "used_bytes");
    s.peak_used_bytes = r.U64(d, "peak_used_bytes");
    const std::vector<json> usage = r.Array(d, "usage");
    if (usage.size() != s.usage.size()) r.Fail("usage");
    for (size_t u = 0; u < usage.size() && u < s.usage.size(); ++u) {
      const json& a = usage[u];
      vmm::ArenaStats& st = s.usage[u];
      st.name = r.Str(a, "name");
      const std::string kind = r.Str(a, "kind");
      bool known = false;
      for (vmm::PageKind k :
           {vmm::PageKind::kHugetlb2M, vmm::PageKind::kShmemThp2M, vmm::PageKind::kSmall4K}) {
        if (kind == vmm::PageKindName(k)) {
          st.kind = k;
          known = true;
        }
      }
      if (!known) r.Fail("kind");
      st.page_size = r.U64(a, "page_size");
      st.capacity_bytes = r.U64(a, "capacity_bytes");
      st.used_bytes = r.U64(a, "used_bytes");
      st.free_bytes = r.U64(a, "free_bytes");
      st.peak_used_bytes = r.U64(a, "peak_used_bytes");
      st.largest_free_bytes = r.U64(a, "largest_free_bytes");
      st.live_extents = r.U64(a, "live_extents");
      st.allocations = r.U64(a, "allocations");
      st.frees = r.U64(a, "frees");
      st.failed_allocations = r.U64(a, "failed_allocations");
      st.discarded_bytes = r.U64(a, "discarded_bytes");
      st.fragmentation = r.Double(a, "fragmentation");
    }
    out.push_back(std::move(s));
  }
  VMM_RETURN_IF_ERROR(r.status());
  return out;
}

StatusOr<std::unique_ptr<KvMemory>> RemoteHmmControl::AllocateKv(int device, uint64_t bytes) {
  VMM_ASSIGN_OR_RETURN(std::shared_ptr<const Attachment> map, impl_->KvMap());
  VMM_ASSIGN_OR_RETURN(json j,
                       impl_->Call(json{{"op", "kv_alloc"}, {"device", device}, {"bytes", bytes}}));
  ReplyReader r("kv_alloc");
  const uint64_t id = r.U64(j, "id");
  const uint64_t offset = r.U64(j, "offset");
  const uint64_t size = r.U64(j, "bytes");
  VMM_RETURN_IF_ERROR(r.status());
  // From here on the memory is freed (kv_free) when `m` goes, on every path.
  auto m = std::make_unique<RemoteKvMemory>(impl_->channel, map, id);
  uint8_t* base = map->kv_base(device);
  if (base == nullptr || size < bytes || offset + size > map->kv_bytes(device)) {
    return Status::DataLoss("hmmd: KV memory " + std::to_string(id) + " [" +
                            std::to_string(offset) + ", +" + std::to_string(size) +
                            ") lies outside device " + std::to_string(device) +
                            "'s KV arena as mapped here");
  }
  m->device = device;
  m->base = base + offset;
  m->arena_offset = offset;
  m->size_bytes = size;
  return std::unique_ptr<KvMemory>(std::move(m));
}

Status RemoteHmmControl::Copy(int device, void* dst, const void* src, uint64_t n) {
  if (device < 0 || device >= num_devices()) {
    return Status::InvalidArgument("copy onto unknown device " + std::to_string(device));
  }
  vmm::CopyBytes(dst, src, n);
  return Status::Ok();
}

}  // namespace emoe::hbm
