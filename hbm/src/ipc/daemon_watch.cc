#include "ipc/daemon_watch.h"

#include <fcntl.h>
#include <glog/logging.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <cstring>
#include <optional>

namespace emoe::hbm {

using Clock = std::chrono::steady_clock;

// Stop signals this close to the first one are its repetitions (daemon_watch.h).
constexpr std::chrono::milliseconds kRepeatSignalWindow{500};

StopWatcher::StopWatcher(const sigset_t& stop, int control, CancelToken* token)
    : token_(token),
      signal_fd_(signalfd(-1, &stop, SFD_CLOEXEC | SFD_NONBLOCK)),
      wake_(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)),
      main_(pthread_self()) {
  if (!signal_fd_.valid()) LOG(ERROR) << "signalfd: " << strerror(errno) << ": signals unseen";
  if (control >= 0) control_.Reset(fcntl(control, F_DUPFD_CLOEXEC, 3));
  InstallInterruptHandler(kInterruptSignal);
  thread_ = std::thread(&StopWatcher::Run, this);
}

StopWatcher::~StopWatcher() {
  done_ = true;
  Wake();
  thread_.join();
}

void StopWatcher::StartupDone() {
  startup_done_ = true;
  Wake();
}

void StopWatcher::Wake() {
  const uint64_t one = 1;
  (void)!write(wake_.get(), &one, sizeof(one));
}

void StopWatcher::Enforce(Clock::time_point since) {
  const auto elapsed = Clock::now() - since;
  if (elapsed >= kStopGrace) {
    LOG(ERROR) << "not stopped " << kStopGrace.count()
               << " s after the stop request (a thread is blocked): exiting now";
    _exit(1);
  }
  if (elapsed >= std::chrono::milliseconds(300)) pthread_kill(main_, kInterruptSignal);
}

void StopWatcher::Run() {
  std::optional<Clock::time_point> stop_at;
  // A second signal ends the process at once, unless it is a repeat within
  // kRepeatSignalWindow of the first.
  bool signalled = false;
  Clock::time_point first_signal;
  for (;;) {
    if (startup_done_) control_.Reset();
    pollfd pf[4];
    nfds_t n = 0;
    pf[n++] = {wake_.get(), POLLIN, 0};
    pf[n++] = {signal_fd_.get(), POLLIN, 0};
    pf[n++] = {stop_at ? -1 : token_->fd(), POLLIN, 0};  // a negative fd is skipped
    const nfds_t control = n;
    pf[n++] = {stop_at ? -1 : control_.get(), POLLRDHUP, 0};  // POLLHUP is always reported
    if (poll(pf, n, stop_at ? 100 : -1) < 0 && errno != EINTR) {
      LOG(ERROR) << "stop watcher: poll: " << strerror(errno);
      return;
    }
    uint64_t ignored;
    (void)!read(wake_.get(), &ignored, sizeof(ignored));
    if (done_) return;
    signalfd_siginfo si;
    if ((pf[1].revents & POLLIN) && read(signal_fd_.get(), &si, sizeof(si)) == sizeof(si)) {
      if (signalled && Clock::now() - first_signal < kRepeatSignalWindow) {
        // A launcher with several threads that dies sends its death signal once per thread
        // (the kernel reparents hmmd to each remaining thread in turn): one stop, not a second
        // request to exit at once.
        LOG(INFO) << "signal " << si.ssi_signo << " again within " << kRepeatSignalWindow.count()
                  << " ms: already stopping";
      } else if (signalled) {
        LOG(ERROR) << "second signal " << si.ssi_signo << " (" << strsignal(si.ssi_signo)
                   << "): exiting now";
        _exit(1);
      } else {
        LOG(INFO) << "signal " << si.ssi_signo << " (" << strsignal(si.ssi_signo) << "): stopping";
        signalled = true;
        first_signal = Clock::now();
        token_->Cancel();
      }
    }
    if (!startup_done_ && pf[control].fd >= 0 && pf[control].revents != 0) {
      LOG(INFO) << "the launcher hung up during start-up: stopping";
      token_->Cancel();
    }
    if (!stop_at && token_->cancelled()) stop_at = Clock::now();
    if (stop_at) Enforce(*stop_at);
  }
}

}  // namespace emoe::hbm
