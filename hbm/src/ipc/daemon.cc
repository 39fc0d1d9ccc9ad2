// RunDaemon (hbm/daemon.h): the start-up (start message, devices, populate, preload), serving,
// and the stop, whichever phase it lands in. The watching of stop signals and of the launcher is
// in daemon_watch.cc.
#include "hbm/daemon.h"

#include <glog/logging.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <memory>
#include <optional>

#include "hbm/server.h"
#include "ipc/codec.h"
#include "ipc/daemon_watch.h"
#include "vmm/unix_socket.h"

namespace emoe::hbm {

namespace {

using Clock = std::chrono::steady_clock;

// The launcher's start message on `control`: the HmmOptions it carries (the callbacks, the
// cancel token and the test hooks are `base`'s: they do not travel). Waits for it until
// `stopping`. On failure the error is answered there.
StatusOr<HmmOptions> ReceiveStart(int control, const HmmOptions& base,
                                  const CancelToken& stopping) {
  for (;;) {
    pollfd pf[2] = {{control, POLLIN, 0}, {stopping.fd(), POLLIN, 0}};
    const int n = poll(pf, stopping.fd() >= 0 ? 2 : 1, 100);
    VMM_RETURN_IF_ERROR(stopping.Check("wait for the launcher's start message"));
    if (n > 0 && pf[0].revents != 0) break;
  }
  Incoming in = ReceiveRequest(control);
  if (in.kind == Incoming::kGone)
    return Status::Unavailable("the launcher hung up before starting");
  Status s = in.error;
  HmmOptions o = base;
  if (in.kind == Incoming::kRequest) {
    auto j = ParseJsonObject(in.request, "start");
    s = j.ok() ? ipc::StartMessageFromJson(JsonReader(*j, "start"), &o) : j.status();
  }
  if (!s.ok()) {
    (void)SendReply(control, Reply{ErrorJson(s), {}});
    return s;
  }
  o.loader.progress = base.loader.progress;
  o.populate_progress = base.populate_progress;
  o.cancel = base.cancel;
  o.test_populate_chunk_delay_ms = base.test_populate_chunk_delay_ms;
  return o;
}

// Startup failed: answer the launcher's start request with the error when it is still pending
// (so it learns the code and the message, not only an exit status). Returns the exit code: 1,
// or 0 when the failure is a stop that was asked for (a signal, the launcher gone).
int FailStartup(const vmm::UniqueFd& control, bool start_pending, const Status& s,
                const CancelToken& stopping) {
  if (stopping.cancelled()) {
    LOG(INFO) << "stopped during start-up: " << s.message();
  } else {
    LOG(ERROR) << s.ToString();
  }
  if (control.valid() && start_pending) (void)SendReply(control.get(), Reply{ErrorJson(s), {}});
  return stopping.cancelled() ? 0 : 1;
}

void LogDevices(Hmm& hmm) {
  for (int d = 0; d < hmm.num_devices(); ++d) {
    const auto& arena = hmm.device(d).arena(Usage::kWeights);
    LOG(INFO) << hmm.device(d).spec().ToString()
              << (arena ? std::string(", pages ") + vmm::PageKindName(arena->kind()) : "")
              << (arena && !arena->fallback_reason().empty()
                      ? " (fallback: " + arena->fallback_reason() + ")"
                      : "")
              << (arena && !arena->seal_note().empty()
                      ? " (weights not sealed: " + arena->seal_note() + ")"
                      : "");
  }
  if (!hmm.page_note().empty()) LOG(INFO) << "pages: " << hmm.page_note();
}

// Start-up progress: sent to the launcher (each a sign of life) until the start is answered, and
// the populating logged (at most once a second, and the last chunk). Used from the main thread
// during start-up; the loader may report later from client threads, when nothing is sent.
class StartReporter {
 public:
  explicit StartReporter(int control) : control_(control) {}

  void Send(const StartProgress& p) EXCLUDES(mu_) {
    vmm::MutexLock l(&mu_);
    if (control_ < 0) return;
    if (!SendReply(control_, Reply{ipc::ToJson(p).dump(), {}}).ok()) control_ = -1;  // gone
  }
  void Populated(const PopulateProgress& p) EXCLUDES(mu_) {
    Send(StartProgress{"populate", p.done_bytes, p.total_bytes, p.seconds});
    vmm::MutexLock l(&mu_);
    const auto now = Clock::now();
    if (now - last_log_ >= std::chrono::seconds(1) || p.done_bytes == p.total_bytes) {
      last_log_ = now;
      LOG(INFO) << "start-up: " << p.ToString();
    }
  }
  // The start is answered: from now on the connection carries replies only.
  void Done() EXCLUDES(mu_) {
    vmm::MutexLock l(&mu_);
    control_ = -1;
  }

 private:
  vmm::Mutex mu_;
  int control_ GUARDED_BY(mu_);
  Clock::time_point last_log_ GUARDED_BY(mu_){};
};

// Takes the socket path (its directory created private if missing): refused while a live daemon
// answers there or holds its lock (vmm::OwnedUnixSocket), a stale socket file replaced.
StatusOr<vmm::OwnedUnixSocket> TakeSocket(const std::string& path) {
  const size_t slash = path.rfind('/');
  if (slash != std::string::npos && slash > 0) {
    mkdir(path.substr(0, slash).c_str(), 0700);  // the runtime directory, private
  }
  auto listener = vmm::OwnedUnixSocket::Listen(path, 0600, /*backlog=*/64);
  if (!listener.ok()) {
    Status s = listener.status();
    return s.Annotate("hmmd --socket=" + path);
  }
  return listener;
}

// Creates the HMM and loads the checkpoint, if any (both stop when `hmm_options.cancel` is).
StatusOr<std::unique_ptr<Hmm>> Setup(const DaemonOptions& o, const HmmOptions& hmm_options) {
  std::optional<Checkpoint> ckpt;
  if (!o.checkpoint.empty()) {
    VMM_ASSIGN_OR_RETURN(Checkpoint c, OpenCheckpoint(o.checkpoint));
    ckpt = std::move(c);
  }
  VMM_ASSIGN_OR_RETURN(std::unique_ptr<Hmm> hmm, Hmm::Create(hmm_options));
  LogDevices(*hmm);
  if (ckpt) {
    if (!o.preload_placement) return Status::InvalidArgument("a preload needs a placement");
    auto report = hmm->LoadCheckpoint(*ckpt, o.preload_placement(hmm->num_devices()));
    if (!report.ok()) {
      Status st = report.status();
      return st.Annotate("load " + o.checkpoint);
    }
    LOG(INFO) << "loaded: " << report->ToString();
  }
  return hmm;
}

// The options Setup runs with: `base` with the daemon's stop token and progress reports.
HmmOptions WithLifecycle(HmmOptions o, StartReporter& reporter, const CancelToken& stopping) {
  o.cancel = &stopping;
  o.populate_progress = [&reporter](const PopulateProgress& p) { reporter.Populated(p); };
  o.loader.progress = [&reporter, log = o.loader.progress](const LoadProgress& p) {
    if (log) log(p);
    reporter.Send(StartProgress{"load", p.bytes_done, p.bytes_total, p.seconds});
  };
  return o;
}

// Serves until `stopping`: the launcher's connection adopted (its close stops the daemon).
// Returns the exit code.
int Serve(DaemonOptions& o, Hmm& hmm, StartReporter& reporter, CancelToken& stopping,
          vmm::OwnedUnixSocket listener) {
  ServerOptions so;
  so.socket_path = o.socket_path;
  so.allow_writable = o.allow_writable;
  so.limits = o.limits;
  const bool launched = o.control.valid();
  HmmServer server(&hmm, so);
  if (Status s = server.Start(std::move(listener)); !s.ok()) {
    return FailStartup(o.control, launched, s, stopping);
  }
  const int control_fd = o.control.get();
  if (launched) {
    // The start request is answered like "devices", then the connection is served like any.
    reporter.Done();
    Reply devices = HandleRequest(hmm, R"({"op":"devices"})", false);
    if (Status s = SendReply(control_fd, devices); !s.ok()) {
      LOG(ERROR) << "control connection: " << s.ToString();
      return 1;
    }
    // The launcher's end closing (it exited or let go of us) stops the daemon like SIGTERM.
    Status adopted = server.Adopt(std::move(o.control), [&stopping] {
      LOG(INFO) << "control connection closed: stopping";
      stopping.Cancel();
    });
    if (!adopted.ok()) {
      LOG(ERROR) << "control connection: " << adopted.ToString();
      return 1;
    }
    // From here the served connection tells of the launcher's death; the parent-death signal
    // would also fire when the launcher's spawning *thread* ends (vmm/process.h).
    prctl(PR_SET_PDEATHSIG, 0);
  }
  if (o.after_setup) o.after_setup();
  LOG(INFO) << "serving on " << so.socket_path << " (mode 0600, uid " << geteuid() << " only)"
            << (launched ? ", control connection on fd " + std::to_string(control_fd)
                         : std::string());
  if (!o.checkpoint.empty()) {
    std::printf("%s", hmm.Report().c_str());
    std::fflush(stdout);
  } else {
    LOG(INFO) << "nothing loaded yet: waiting for a controller";
  }
  while (!stopping.WaitFor(std::chrono::hours(1))) {
  }
  LOG(INFO) << "stopping after " << server.requests_served() << " requests";
  server.Stop();
  return 0;
}

}  // namespace

int RunDaemon(DaemonOptions o, const sigset_t& stop) {
  CancelToken stopping;
  const bool launched = o.control.valid();
  // Until the start is answered, the launcher's hang-up stops the daemon (after that, the
  // served connection's close does).
  StopWatcher watcher(stop, launched ? o.control.get() : -1, &stopping);
  StartReporter reporter(launched ? o.control.get() : -1);
  HmmOptions hmm_options = o.hmm;
  if (launched) {
    auto start = ReceiveStart(o.control.get(), o.hmm, stopping);
    if (!start.ok()) return FailStartup(o.control, false, start.status(), stopping);
    hmm_options = std::move(*start);
    reporter.Send(StartProgress{"start", 0, 0, 0});
  }
  // Sealing the weights is the daemon's decision (hbm/daemon.h), never its launcher's.
  hmm_options.memory.seal_weights = !o.allow_writable;
  // The socket first: a second daemon on a live one's path fails before it creates any memory.
  auto listener = TakeSocket(o.socket_path);
  if (!listener.ok()) return FailStartup(o.control, launched, listener.status(), stopping);
  auto hmm = Setup(o, WithLifecycle(std::move(hmm_options), reporter, stopping));
  if (!hmm.ok()) return FailStartup(o.control, launched, hmm.status(), stopping);
  watcher.StartupDone();
  return Serve(o, **hmm, reporter, stopping, std::move(*listener));
}

}  // namespace emoe::hbm
