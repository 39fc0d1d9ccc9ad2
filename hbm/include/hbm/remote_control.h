// hbm/remote_control.h: HmmControl over hmmd's control connection (DESIGN 4.1: the HMM is a
// daemon of its own; the coordinator drives it, instances attach to it).
//
// Launch() starts hmmd as a child process, empty (nothing loaded), hands it one end of a
// socketpair as its control connection and sends it the HmmOptions (devices, arenas, loader) as
// its first message; hmmd exits
// when that connection closes (this process exited or destroyed the control), so a crashed
// coordinator never leaves a daemon holding device memory behind. Instances attach through
// hmmd's listening socket (socket_path()). Connect() drives an hmmd that is already running.
//
// KV memory allocated through a connection belongs to that connection: hmmd frees it when the
// KvMemory is destroyed or the connection closes. The KV arenas are mapped read-write into this
// process once (on the first AllocateKv).
//
// Errors: a dead or unreachable hmmd gives kUnavailable naming it; hmmd's own errors come back
// with their codes ("hmmd: ...").
#ifndef HBM_REMOTE_CONTROL_H_
#define HBM_REMOTE_CONTROL_H_

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "hbm/control.h"
#include "vmm/unique_fd.h"

namespace emoe::hbm {

struct HmmdOptions {
  std::string binary;       // the hmmd executable (required)
  std::string socket_path;  // where instances attach; empty: $TMPDIR (or /tmp)/emoe-hmmd-PID-N.sock
  HmmOptions hmm;           // devices, arenas, loader: hmmd's start message (sizes in whole MiB)
  // More hmmd flags (logging, --allow_writable). Its device, arena and loader flags are still
  // checked but do not override `hmm`.
  std::vector<std::string> extra_args;
};

class RemoteHmmControl : public HmmControl {
 public:
  // Starts hmmd and returns once it answers on the control connection (its devices and
  // arenas exist and its socket listens). hmmd's errors (a bad flag, no memory) come back.
  static StatusOr<std::unique_ptr<RemoteHmmControl>> Launch(const HmmdOptions& options);
  // Drives a running hmmd through its socket.
  static StatusOr<std::unique_ptr<RemoteHmmControl>> Connect(const std::string& socket_path);
  // Closes the connection (its KV memory goes back); a launched hmmd is waited for.
  ~RemoteHmmControl() override;

  pid_t pid() const { return pid_; }  // a launched hmmd's process, 0 when connected
  // The page policy note hmmd reported (Hmm::page_note()).
  const std::string& page_note() const { return page_note_; }

  int num_devices() const override { return static_cast<int>(specs_.size()); }
  const DeviceSpec& device_spec(int device) const override { return specs_.at(device); }
  std::string socket_path() const override { return socket_path_; }
  StatusOr<LoadReport> Load(const std::string& checkpoint_path, const PlacementTable& placement,
                            const std::string& prefix) override;
  StatusOr<uint64_t> CopyGroup(const std::vector<std::string>& names, int from, int to, Usage usage,
                               const std::string& dst_prefix) override;
  StatusOr<TensorMeta> Find(const std::string& name, int device) override;
  StatusOr<size_t> Release(const std::vector<std::pair<std::string, int>>& records) override;
  StatusOr<size_t> ReleaseMatching(const std::string& prefix,
                                   const std::vector<int>& devices) override;
  StatusOr<std::vector<DeviceStats>> Stats() override;
  StatusOr<std::unique_ptr<KvMemory>> AllocateKv(int device, uint64_t bytes) override;
  Status Copy(int device, void* dst, const void* src, uint64_t n) override;

 private:
  RemoteHmmControl() = default;
  class Impl;  // hbm/src/ipc/channel.h
  std::unique_ptr<Impl> impl_;
  pid_t pid_ = 0;
  std::string socket_path_;
  std::string page_note_;
  std::vector<DeviceSpec> specs_;
};

}  // namespace emoe::hbm

#endif  // HBM_REMOTE_CONTROL_H_
