#include "hbm/daemon.h"

#include <glog/logging.h>
#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <memory>
#include <optional>

#include "hbm/server.h"
#include "ipc/codec.h"
#include "vmm/unix_socket.h"

namespace emoe::hbm {

namespace {

// The launcher's start message on `control`: the HmmOptions it carries (the progress callback
// is the caller's). On failure the error is answered there.
StatusOr<HmmOptions> ReceiveStart(int control, const HmmOptions& base) {
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
  return o;
}

// Startup failed: answer the launcher's start request with the error when it is still pending
// (so it learns the code and the message, not only an exit status); returns the exit code 1.
int FailStartup(const vmm::UniqueFd& control, bool start_pending, const Status& s) {
  LOG(ERROR) << s.ToString();
  if (control.valid() && start_pending) (void)SendReply(control.get(), Reply{ErrorJson(s), {}});
  return 1;
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

// Creates the HMM and loads the checkpoint, if any.
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

}  // namespace

int RunDaemon(DaemonOptions o, const sigset_t& stop) {
  HmmOptions hmm_options = o.hmm;
  const bool launched = o.control.valid();
  if (launched) {
    auto start = ReceiveStart(o.control.get(), o.hmm);
    if (!start.ok()) return FailStartup(o.control, false, start.status());
    hmm_options = std::move(*start);
  }
  // Sealing the weights is the daemon's decision (hbm/daemon.h), never its launcher's.
  hmm_options.memory.seal_weights = !o.allow_writable;
  // The socket first: a second daemon on a live one's path fails before it creates any memory.
  auto listener = TakeSocket(o.socket_path);
  if (!listener.ok()) return FailStartup(o.control, launched, listener.status());
  auto hmm = Setup(o, hmm_options);
  if (!hmm.ok()) return FailStartup(o.control, launched, hmm.status());

  ServerOptions so;
  so.socket_path = o.socket_path;
  so.allow_writable = o.allow_writable;
  so.limits = o.limits;
  HmmServer server(hmm->get(), so);
  if (Status s = server.Start(std::move(*listener)); !s.ok()) {
    return FailStartup(o.control, launched, s);
  }
  const int control_fd = o.control.get();
  if (launched) {
    // The start request is answered like "devices", then the connection is served like any.
    Reply devices = HandleRequest(**hmm, R"({"op":"devices"})", false);
    if (Status s = SendReply(control_fd, devices); !s.ok()) {
      LOG(ERROR) << "control connection: " << s.ToString();
      return 1;
    }
    // The launcher's end closing (it exited or let go of us) stops the daemon like SIGTERM.
    // kill(), not raise(): the signal must be pending for the process (the main thread's
    // sigwait), not for the serving thread that notices the close.
    Status adopted = server.Adopt(std::move(o.control), [] {
      LOG(INFO) << "control connection closed: stopping";
      kill(getpid(), SIGTERM);
    });
    if (!adopted.ok()) {
      LOG(ERROR) << "control connection: " << adopted.ToString();
      return 1;
    }
  }
  if (o.after_setup) o.after_setup();
  LOG(INFO) << "serving on " << so.socket_path << " (mode 0600, uid " << geteuid() << " only)"
            << (launched ? ", control connection on fd " + std::to_string(control_fd)
                         : std::string());
  if (!o.checkpoint.empty()) {
    std::printf("%s", (*hmm)->Report().c_str());
    std::fflush(stdout);
  } else {
    LOG(INFO) << "nothing loaded yet: waiting for a controller";
  }
  int sig = 0;
  sigwait(&stop, &sig);
  LOG(INFO) << "signal " << sig << ": stopping after " << server.requests_served() << " requests";
  server.Stop();
  return 0;
}

}  // namespace emoe::hbm
