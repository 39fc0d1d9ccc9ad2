// RemoteHmmControl::Launch: starts hmmd with a control connection and hands it its HmmOptions as
// one message, {"op":"start","options":{...}} (codec.h), answered like "devices" once the
// devices and arenas exist and the socket listens. Until then hmmd sends progress messages; the
// wait lasts as long as they come (HmmdOptions::start_stall_timeout between two).
#include <glog/logging.h>
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>

#include "hbm/remote_control.h"
#include "ipc/channel.h"
#include "vmm/process.h"
#include "vmm/unix_socket.h"

namespace emoe::hbm {

using ipc::json;
using Clock = std::chrono::steady_clock;

namespace {

constexpr int kChildControlFd = 3;
constexpr auto kLogEvery = std::chrono::seconds(2);  // Launch's own progress log lines

// What hmmd would refuse, refused here before anything starts. Arena and device sizes are whole
// MiB, as a hand-started hmmd takes them (--weights_mb ...), so both start the same daemons.
Status CheckOptions(const HmmOptions& h) {
  VMM_RETURN_IF_ERROR(h.devices.Validate());
  VMM_RETURN_IF_ERROR(h.loader.Validate());
  if (h.copy_threads_per_device < 0) {
    return Status::InvalidArgument("copy_threads_per_device must be >= 0, got " +
                                   std::to_string(h.copy_threads_per_device));
  }
  auto mib = [](const char* what, uint64_t bytes) -> Status {
    if (bytes % (1ull << 20) == 0) return Status::Ok();
    return Status::InvalidArgument(std::string("hmmd takes ") + what + " in MiB; " +
                                   std::to_string(bytes) + " bytes is not a whole number of MiB");
  };
  VMM_RETURN_IF_ERROR(mib("the device capacity", h.devices.capacity_bytes));
  for (int u = 0; u < kNumUsages; ++u) {
    VMM_RETURN_IF_ERROR(mib(UsageName(static_cast<Usage>(u)), h.memory.usage_bytes[u]));
  }
  return Status::Ok();
}

std::string DefaultSocketPath() {
  static std::atomic<uint64_t> serial{0};
  const char* tmp = std::getenv("TMPDIR");
  return std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") + "/emoe-hmmd-" +
         std::to_string(getpid()) + "-" + std::to_string(serial++) + ".sock";
}

}  // namespace

std::string StartProgress::ToString() const {
  char buf[160];
  if (total_bytes == 0) {
    std::snprintf(buf, sizeof(buf), "%s after %.1f s", phase.c_str(), seconds);
  } else {
    std::snprintf(buf, sizeof(buf), "%s: %llu of %llu MiB (%.0f%%) after %.1f s", phase.c_str(),
                  static_cast<unsigned long long>(done_bytes >> 20),
                  static_cast<unsigned long long>(total_bytes >> 20),
                  100.0 * done_bytes / total_bytes, seconds);
  }
  return buf;
}

StatusOr<std::unique_ptr<RemoteHmmControl>> RemoteHmmControl::Launch(const HmmdOptions& options) {
  if (options.binary.empty()) return Status::InvalidArgument("HmmdOptions::binary is required");
  if (access(options.binary.c_str(), X_OK) != 0) {
    return Status::FromErrno(errno, "hmmd binary '" + options.binary + "'", "access");
  }
  const std::string socket =
      options.socket_path.empty() ? DefaultSocketPath() : options.socket_path;
  VMM_RETURN_IF_ERROR(vmm::CheckUnixSocketPath(socket).Annotate("hmmd socket"));
  VMM_RETURN_IF_ERROR(CheckOptions(options.hmm));
  std::vector<std::string> argv = {options.binary, "--socket=" + socket,
                                   "--control_fd=" + std::to_string(kChildControlFd)};
  argv.insert(argv.end(), options.extra_args.begin(), options.extra_args.end());
  // hmmd logs to stderr; its stdout goes there too, so this process's stdout stays its own.
  VMM_ASSIGN_OR_RETURN(
      vmm::SpawnedChild child,
      vmm::SpawnWithSocket(argv, kChildControlFd, /*stdout_to_stderr=*/true, "hmmd",
                           /*parent_death_signal=*/SIGTERM));
  auto c = std::unique_ptr<RemoteHmmControl>(new RemoteHmmControl());
  c->pid_ = child.pid;
  c->socket_path_ = socket;
  const std::string who = "hmmd (pid " + std::to_string(child.pid) + ")";
  c->impl_ = std::make_unique<Impl>(std::make_shared<ipc::Channel>(std::move(child.socket), who),
                                    child.pid);
  // Wait for the answer while watching the process: one that exits early (a bad flag, no
  // memory) is reported with its exit status, one that stays silent too long as stuck. The
  // destructor reaps it on any error.
  Impl* impl = c->impl_.get();
  Clock::time_point last_sign = Clock::now(), last_log{};
  bool stuck = false;
  auto await = [&](int fd) -> Status {
    for (;;) {
      pollfd pf{fd, POLLIN, 0};
      if (poll(&pf, 1, 100) == 1) return Status::Ok();  // a message, or the hang-up
      const std::string how = impl->HowItEnded(std::chrono::milliseconds(0));
      if (!how.empty()) {
        return Status::Unavailable(how + " before answering (see its log on stderr)");
      }
      const auto silent = Clock::now() - last_sign;
      if (silent >= options.start_stall_timeout) {
        stuck = true;  // the connection closes: hmmd stops (the destructor reaps it)
        return Status::Unavailable(
            impl->who + " is stuck: no sign of progress for " +
            std::to_string(std::chrono::duration_cast<std::chrono::seconds>(silent).count()) +
            " s while starting (see its log on stderr)");
      }
    }
  };
  auto interim = [&](const std::string& payload) -> StatusOr<bool> {
    auto j = ParseJsonObject(payload, impl->who + ": malformed message", StatusCode::kDataLoss);
    if (!j.ok()) return false;  // not progress: the reply's own checks report it
    StartProgress p;
    VMM_ASSIGN_OR_RETURN(bool is_progress, ipc::ProgressFromReply(*j, impl->who, &p));
    if (!is_progress) return false;
    last_sign = Clock::now();
    if (options.progress) {
      options.progress(p);
    } else if (last_sign - last_log >= kLogEvery || p.done_bytes == p.total_bytes) {
      last_log = last_sign;
      LOG(INFO) << impl->who << " starting: " << p.ToString();
    }
    return true;
  };
  Status s = impl->Handshake(c.get(), ipc::StartMessage(options.hmm), await, interim);
  if (s.ok()) return c;
  if (s.code() == vmm::StatusCode::kUnavailable && !stuck) {
    // The connection closed: most likely hmmd exited; say how.
    const std::string how = impl->HowItEnded(std::chrono::seconds(2));
    if (!how.empty() && s.message().find(how) == std::string::npos) {
      return Status::Unavailable(how + " before answering (see its log on stderr)");
    }
    return s;
  }
  return s.Annotate("start " + who);
}

}  // namespace emoe::hbm
