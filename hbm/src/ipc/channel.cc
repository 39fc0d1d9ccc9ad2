#include "ipc/channel.h"

#include "vmm/process.h"

namespace emoe::hbm {

namespace ipc {

StatusOr<vmm::ReceivedMessage> Channel::Roundtrip(
    const std::string& request, const std::function<Status(int)>& await,
    const std::function<StatusOr<bool>(const std::string&)>& interim) {
  if (request.size() > kMaxAssembledRequestBytes) {  // refused here, the connection stays
    return Status::InvalidArgument("request to " + who_ + " of " + std::to_string(request.size()) +
                                   " bytes exceeds " + std::to_string(kMaxAssembledRequestBytes));
  }
  vmm::MutexLock l(&mu_);
  if (!fd_.valid()) return Status::Unavailable(who_ + ": connection lost: " + lost_);
  Status s = SendRequest(fd_.get(), request);
  StatusOr<vmm::ReceivedMessage> m = s;
  while (s.ok()) {
    if (await) {
      Status waited = await(fd_.get());
      if (!waited.ok()) {
        lost_ = waited.message();
        fd_.Reset();
        return waited;
      }
    }
    m = ReceiveReply(fd_.get());
    if (!m.ok() || !interim) break;
    StatusOr<bool> was_interim = interim(m->payload);
    if (!was_interim.ok()) {  // a malformed interim message: the stream cannot be trusted
      lost_ = was_interim.status().message();
      fd_.Reset();
      return was_interim.status();
    }
    if (!*was_interim) break;
  }
  if (!m.ok()) {
    lost_ = m.status().message();
    fd_.Reset();
    return Status::Unavailable(who_ + ": connection lost: " + lost_, m.status().err());
  }
  return m;
}

StatusOr<json> Channel::Call(const json& request) {
  VMM_ASSIGN_OR_RETURN(vmm::ReceivedMessage m, Roundtrip(request.dump()));
  VMM_RETURN_IF_ERROR(ReplyStatus(m.payload, "hmmd"));
  auto j = ParseJsonObject(m.payload, who_ + ": malformed reply", StatusCode::kDataLoss);
  if (!j.ok()) return Status::DataLoss(who_ + ": malformed reply");
  return j;
}

void Channel::Close() {
  vmm::MutexLock l(&mu_);
  if (fd_.valid()) {
    lost_ = "closed by this process";
    fd_.Reset();
  }
}

}  // namespace ipc

StatusOr<ipc::json> RemoteHmmControl::Impl::Call(const ipc::json& request) {
  StatusOr<ipc::json> r = channel->Call(request);
  if (!r.ok() && r.status().code() == vmm::StatusCode::kUnavailable && pid > 0) {
    const std::string how = HowItEnded(std::chrono::milliseconds(500));
    if (!how.empty()) {
      return Status::Unavailable(r.status().message() + " (" + how + ")", r.status().err());
    }
  }
  return r;
}

std::string RemoteHmmControl::Impl::HowItEnded(std::chrono::milliseconds wait) {
  vmm::MutexLock l(&proc_mu_);
  if (pid <= 0) return "";
  if (!reaped_) {
    if (std::optional<int> status = vmm::WaitForExit(pid, wait)) {
      reaped_ = true;
      wait_status_ = *status;
    }
  }
  return reaped_ ? vmm::DescribeExit(who, wait_status_) : "";
}

void RemoteHmmControl::Impl::Reap() {
  vmm::MutexLock l(&proc_mu_);
  if (reaped_ || pid <= 0) return;
  if (std::optional<int> status = vmm::KillAfterGrace(pid, std::chrono::seconds(5))) {
    wait_status_ = *status;
  }
  reaped_ = true;
}

Status RemoteHmmControl::Impl::Handshake(
    RemoteHmmControl* c, const ipc::json& request, const std::function<Status(int)>& await,
    const std::function<StatusOr<bool>(const std::string&)>& interim) {
  VMM_ASSIGN_OR_RETURN(vmm::ReceivedMessage m, channel->Roundtrip(request.dump(), await, interim));
  VMM_RETURN_IF_ERROR(ReplyStatus(m.payload, "hmmd"));
  VMM_ASSIGN_OR_RETURN(ipc::json j, ParseJsonObject(m.payload, "hmmd: malformed devices reply",
                                                    StatusCode::kDataLoss));
  ipc::DevicesReply d;
  VMM_RETURN_IF_ERROR(ipc::FromJson(ipc::ReplyReader(j, "hmmd", "devices"), &d));
  if (d.devices.empty()) return Status::DataLoss(channel->who() + " reports no devices");
  c->page_note_ = d.page_note;
  c->specs_ = std::move(d.devices);
  return Status::Ok();
}

StatusOr<std::shared_ptr<const Attachment>> RemoteHmmControl::Impl::KvMap() {
  vmm::MutexLock l(&kv_mu_);
  if (kv_map_) return kv_map_;
  ipc::AttachRequest q;
  q.tensors = false;
  q.kv = true;
  VMM_ASSIGN_OR_RETURN(vmm::ReceivedMessage m, channel->Roundtrip(ipc::ToJson(q).dump()));
  VMM_ASSIGN_OR_RETURN(std::unique_ptr<Attachment> a,
                       Attachment::FromReply(std::move(m), /*writable=*/false));
  kv_map_ = std::move(a);
  return kv_map_;
}

}  // namespace emoe::hbm
