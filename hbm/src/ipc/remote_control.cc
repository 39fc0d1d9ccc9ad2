// RemoteHmmControl: the HmmControl operations as requests of the hmmd protocol (hbm/server.h) on
// one control connection (ipc/channel.h). Launch() is in hmmd_launcher.cc.
#include "hbm/remote_control.h"

#include <sys/stat.h>
#include <unistd.h>

#include "hbm/server.h"
#include "ipc/channel.h"
#include "vmm/stats.h"
#include "vmm/unix_socket.h"

namespace emoe::hbm {

using ipc::json;

namespace {

// KV memory of a control connection: freed by kv_free, or by hmmd when the connection closes.
class RemoteKvMemory : public KvMemory {
 public:
  RemoteKvMemory(std::shared_ptr<ipc::Channel> channel, std::shared_ptr<const Attachment> map,
                 uint64_t id)
      : channel_(std::move(channel)), map_(std::move(map)), id_(id) {}
  ~RemoteKvMemory() override {
    // Errors are ignored: a lost connection has freed it already.
    (void)channel_->Roundtrip(ipc::ToJson("kv_free", ipc::KvRequest{id_, 0}).dump());
  }
  Status Resize(uint64_t bytes) override {
    VMM_ASSIGN_OR_RETURN(json j,
                         channel_->Call(ipc::ToJson("kv_resize", ipc::KvRequest{id_, bytes})));
    VMM_ASSIGN_OR_RETURN(uint64_t size, ipc::ReplyReader(j, "hmmd", "kv_resize").U64("bytes"));
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
  std::shared_ptr<ipc::Channel> channel_;
  std::shared_ptr<const Attachment> map_;  // keeps `base` mapped
  uint64_t id_;
};

}  // namespace

StatusOr<std::unique_ptr<RemoteHmmControl>> RemoteHmmControl::Connect(
    const std::string& socket_path) {
  auto fd = vmm::ConnectUnixSocket(socket_path);
  if (!fd.ok()) {
    Status s = fd.status();
    return s.Annotate("hmmd");
  }
  auto c = std::unique_ptr<RemoteHmmControl>(new RemoteHmmControl());
  c->socket_path_ = socket_path;
  c->impl_ = std::make_unique<Impl>(
      std::make_shared<ipc::Channel>(std::move(*fd), "hmmd at " + socket_path), 0);
  VMM_RETURN_IF_ERROR(c->impl_->Handshake(c.get(), json{{"op", "devices"}}, nullptr));
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
  VMM_ASSIGN_OR_RETURN(
      json j, impl_->Call(ipc::ToJson(ipc::LoadRequest{checkpoint_path, prefix, placement})));
  VMM_ASSIGN_OR_RETURN(JsonReader rep, ipc::ReplyReader(j, "hmmd", "load").Object("report"));
  LoadReport out;
  VMM_RETURN_IF_ERROR(ipc::FromJson(rep, &out));
  return out;
}

StatusOr<uint64_t> RemoteHmmControl::CopyGroup(const std::vector<std::string>& names, int from,
                                               int to, Usage usage, const std::string& dst_prefix) {
  VMM_ASSIGN_OR_RETURN(
      json j, impl_->Call(ipc::ToJson(ipc::CopyGroupRequest{names, from, to, usage, dst_prefix})));
  return ipc::ReplyReader(j, "hmmd", "copy_group").U64("bytes");
}

StatusOr<TensorMeta> RemoteHmmControl::Find(const std::string& name, int device) {
  VMM_ASSIGN_OR_RETURN(json j, impl_->Call(ipc::ToJson("find", ipc::RecordRequest{name, device})));
  VMM_ASSIGN_OR_RETURN(JsonReader t, ipc::ReplyReader(j, "hmmd", "find").Object("tensor"));
  TensorMeta m;
  VMM_RETURN_IF_ERROR(ipc::FromJson(t, &m));
  return m;
}

StatusOr<CopyBatchReport> RemoteHmmControl::ApplyCopies(const std::vector<GroupCopy>& copies,
                                                        const CopyBatchOptions& options) {
  VMM_ASSIGN_OR_RETURN(json j, impl_->Call(ipc::ToJson(ipc::ApplyCopiesRequest{copies, options})));
  VMM_ASSIGN_OR_RETURN(JsonReader rep,
                       ipc::ReplyReader(j, "hmmd", "apply_copies").Object("report"));
  CopyBatchReport out;
  VMM_RETURN_IF_ERROR(ipc::FromJson(rep, &out));
  if (out.copies.size() != copies.size()) {
    return Status::DataLoss("hmmd: apply_copies reported " + std::to_string(out.copies.size()) +
                            " copies of a batch of " + std::to_string(copies.size()));
  }
  return out;
}

StatusOr<HmmSnapshot> RemoteHmmControl::Describe(
    const std::vector<std::pair<std::string, int>>& records) {
  VMM_ASSIGN_OR_RETURN(HmmSnapshot s, impl_->CallFor<HmmSnapshot>(
                                          ipc::ToJson(ipc::DescribeRequest{records}), "describe"));
  if (s.records.size() != records.size()) {
    return Status::DataLoss("hmmd: describe answered " + std::to_string(s.records.size()) +
                            " records for " + std::to_string(records.size()) + " asked for");
  }
  return s;
}

StatusOr<size_t> RemoteHmmControl::Release(
    const std::vector<std::pair<std::string, int>>& records) {
  VMM_ASSIGN_OR_RETURN(json j, impl_->Call(ipc::ToJson(ipc::ReleaseManyRequest{records})));
  VMM_ASSIGN_OR_RETURN(uint64_t n, ipc::ReplyReader(j, "hmmd", "release_many").U64("released"));
  return static_cast<size_t>(n);
}

StatusOr<size_t> RemoteHmmControl::ReleaseMatching(const std::string& prefix,
                                                   const std::vector<int>& devices) {
  VMM_ASSIGN_OR_RETURN(json j,
                       impl_->Call(ipc::ToJson(ipc::ReleaseMatchingRequest{prefix, devices})));
  VMM_ASSIGN_OR_RETURN(uint64_t n, ipc::ReplyReader(j, "hmmd", "release_matching").U64("released"));
  return static_cast<size_t>(n);
}

StatusOr<std::vector<DeviceStats>> RemoteHmmControl::Stats() {
  VMM_ASSIGN_OR_RETURN(ipc::StatsReply s,
                       impl_->CallFor<ipc::StatsReply>(json{{"op", "stats"}}, "stats"));
  return std::move(s.devices);
}

StatusOr<std::unique_ptr<KvMemory>> RemoteHmmControl::AllocateKv(int device, uint64_t bytes) {
  VMM_ASSIGN_OR_RETURN(std::shared_ptr<const Attachment> map, impl_->KvMap());
  VMM_ASSIGN_OR_RETURN(ipc::KvAllocReply a,
                       impl_->CallFor<ipc::KvAllocReply>(
                           ipc::ToJson(ipc::KvAllocRequest{device, bytes}), "kv_alloc"));
  // From here on the memory is freed (kv_free) when `m` goes, on every path.
  auto m = std::make_unique<RemoteKvMemory>(impl_->channel, map, a.id);
  uint8_t* base = map->kv_base(device);
  if (base == nullptr || a.bytes < bytes || a.offset + a.bytes > map->kv_bytes(device)) {
    return Status::DataLoss("hmmd: KV memory " + std::to_string(a.id) + " [" +
                            std::to_string(a.offset) + ", +" + std::to_string(a.bytes) +
                            ") lies outside device " + std::to_string(device) +
                            "'s KV arena as mapped here");
  }
  m->device = device;
  m->base = base + a.offset;
  m->arena_offset = a.offset;
  m->size_bytes = a.bytes;
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
