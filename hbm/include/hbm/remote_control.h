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
// Each HmmControl operation is one request on the control connection (hbm/server.h lists them):
// a scale event's plan asks "describe" once, its memory phase sends one "apply_copies".
//
// Errors: a dead or unreachable hmmd gives kUnavailable naming it; hmmd's own errors come back
// with their codes ("hmmd: ...").
#ifndef HBM_REMOTE_CONTROL_H_
#define HBM_REMOTE_CONTROL_H_

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "hbm/control.h"
#include "vmm/unique_fd.h"

namespace emoe::hbm {

// hmmd's start-up progress as its launcher hears it: one message per step (options received,
// each populated chunk, each load progress report), each a sign of life.
struct StartProgress {
  std::string phase;  // "start" (options received), "populate", "load" (a --checkpoint preload)
  uint64_t done_bytes = 0;
  uint64_t total_bytes = 0;
  double seconds = 0;            // since the phase began
  std::string ToString() const;  // "populate: 512 of 4480 MiB (11%) after 2.1 s"
};

// How long Launch waits for hmmd's next sign of life while it starts (a dead hmmd is seen at
// once, by its exit): populating a chunk takes well under a second even on a loaded VM, so two
// minutes of silence means hmmd is stuck (stopped, or blocked on something), not slow.
inline constexpr std::chrono::seconds kStartStallTimeout{120};

struct HmmdOptions {
  std::string binary;       // the hmmd executable (required)
  std::string socket_path;  // where instances attach; empty: $TMPDIR (or /tmp)/emoe-hmmd-PID-N.sock
  HmmOptions hmm;           // devices, arenas, loader: hmmd's start message (sizes in whole MiB)
  // More hmmd flags (logging, --allow_writable). Its device, arena and loader flags are still
  // checked but do not override `hmm`.
  std::vector<std::string> extra_args;
  // Launch fails (kUnavailable, hmmd killed) when hmmd sends no sign of life for this long while
  // starting; there is no deadline on a start that keeps making progress.
  std::chrono::milliseconds start_stall_timeout = kStartStallTimeout;
  // Called on Launch's thread with each progress message; null: Launch logs them itself (glog
  // INFO, at most every 2 s, and the last).
  std::function<void(const StartProgress&)> progress;
};

class RemoteHmmControl : public HmmControl {
 public:
  // Starts hmmd and returns once it answers on the control connection (its devices and
  // arenas exist, what they can hold is populated, and its socket listens), for as long as
  // hmmd keeps reporting progress (HmmdOptions::start_stall_timeout). hmmd's errors (a bad flag,
  // no memory) come back; so does its exit before answering, with its exit status. hmmd is
  // started with PR_SET_PDEATHSIG (SIGTERM) and watches the control connection while it starts,
  // so it does not outlive this process even during start-up.
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
  StatusOr<CopyBatchReport> ApplyCopies(const std::vector<GroupCopy>& copies,
                                        const CopyBatchOptions& options) override;
  StatusOr<HmmSnapshot> Describe(const std::vector<std::pair<std::string, int>>& records) override;
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
