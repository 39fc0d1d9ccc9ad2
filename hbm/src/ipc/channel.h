// hbm/src/ipc/channel.h: the control connection to hmmd, and what RemoteHmmControl holds of it.
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
//
// Thread safety: Channel and RemoteHmmControl::Impl may be used from any thread (vmm::Mutex).
#ifndef HBM_SRC_IPC_CHANNEL_H_
#define HBM_SRC_IPC_CHANNEL_H_

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include "hbm/client.h"
#include "hbm/remote_control.h"
#include "ipc/codec.h"
#include "vmm/fd_passing.h"
#include "vmm/mutex.h"

namespace emoe::hbm {

namespace ipc {

class Channel {
 public:
  Channel(vmm::UniqueFd fd, std::string who) : fd_(std::move(fd)), who_(std::move(who)) {}

  const std::string& who() const { return who_; }

  // Sends `request` and receives its whole reply (its "ok" is not looked at). `await`, if set,
  // runs before each receive (the connection's fd as argument): a non-OK status from it is
  // returned as it is. `interim`, if set, is given each message received first: true means it
  // was an interim message (hmmd's start-up progress), handled, and the reply is still to come.
  // Any failure closes the connection.
  StatusOr<vmm::ReceivedMessage> Roundtrip(
      const std::string& request, const std::function<Status(int)>& await = nullptr,
      const std::function<StatusOr<bool>(const std::string&)>& interim = nullptr) EXCLUDES(mu_);
  // Roundtrip, then the reply's status (hmmd's errors with their codes) and its JSON object.
  StatusOr<json> Call(const json& request) EXCLUDES(mu_);
  // Hangs up; later calls are kUnavailable.
  void Close() EXCLUDES(mu_);

 private:
  vmm::Mutex mu_;
  vmm::UniqueFd fd_ GUARDED_BY(mu_);
  std::string lost_ GUARDED_BY(mu_);  // why the connection is gone
  const std::string who_;
};

}  // namespace ipc

class RemoteHmmControl::Impl {
 public:
  Impl(std::shared_ptr<ipc::Channel> channel, pid_t pid)
      : channel(std::move(channel)), pid(pid), who("hmmd (pid " + std::to_string(pid) + ")") {}

  // Channel::Call; a lost connection says how a launched hmmd ended, if it did.
  StatusOr<ipc::json> Call(const ipc::json& request);
  // Call, then the reply read as T (kDataLoss naming the field when it is malformed).
  template <typename T>
  StatusOr<T> CallFor(const ipc::json& request, const std::string& op) {
    VMM_ASSIGN_OR_RETURN(ipc::json j, Call(request));
    T out;
    VMM_RETURN_IF_ERROR(ipc::FromJson(ipc::ReplyReader(j, "hmmd", op), &out));
    return out;
  }
  // How the launched process ended ("hmmd (pid N) exited with status 2", "... was killed by
  // signal 9 (Killed)"), waiting for it up to `wait`; empty if it still runs.
  std::string HowItEnded(std::chrono::milliseconds wait) EXCLUDES(proc_mu_);
  // Waits up to 5 s for the launched process to exit, then kills it; reaps it.
  void Reap() EXCLUDES(proc_mu_);
  // Sends `request` (a "devices" request, or the launcher's "start") and fills `c`'s devices and
  // page note from the reply. `await` and `interim` as in Roundtrip.
  Status Handshake(RemoteHmmControl* c, const ipc::json& request,
                   const std::function<Status(int)>& await,
                   const std::function<StatusOr<bool>(const std::string&)>& interim = nullptr);
  // Every device's KV arena mapped read-write, once.
  StatusOr<std::shared_ptr<const Attachment>> KvMap() EXCLUDES(kv_mu_);

  const std::shared_ptr<ipc::Channel> channel;
  const pid_t pid;  // a launched hmmd, else 0
  const std::string who;

 private:
  vmm::Mutex proc_mu_;
  bool reaped_ GUARDED_BY(proc_mu_) = false;
  int wait_status_ GUARDED_BY(proc_mu_) = 0;

  vmm::Mutex kv_mu_;
  std::shared_ptr<const Attachment> kv_map_ GUARDED_BY(kv_mu_);
};

}  // namespace emoe::hbm

#endif  // HBM_SRC_IPC_CHANNEL_H_
