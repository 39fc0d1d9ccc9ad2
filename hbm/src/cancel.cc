#include "hbm/cancel.h"

#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <thread>

namespace emoe::hbm {

CancelToken::CancelToken() : event_(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {}

void CancelToken::Cancel() {
  cancelled_.store(true, std::memory_order_release);
  if (event_.valid()) {
    const uint64_t one = 1;
    (void)!write(event_.get(), &one, sizeof(one));  // the counter only grows: stays readable
  }
}

vmm::Status CancelToken::Check(const std::string& what) const {
  if (!cancelled()) return vmm::Status::Ok();
  return vmm::Status::Unavailable(what + ": cancelled (stopping)");
}

bool CancelToken::WaitFor(std::chrono::milliseconds d) const {
  if (cancelled()) return true;
  const auto deadline = std::chrono::steady_clock::now() + d;
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return cancelled();
    if (event_.valid()) {
      pollfd pf{event_.get(), POLLIN, 0};
      if (poll(&pf, 1, static_cast<int>(left.count())) < 0 && errno != EINTR) return cancelled();
    } else {
      std::this_thread::sleep_for(std::min(left, std::chrono::milliseconds(10)));
    }
    if (cancelled()) return true;
  }
}

namespace {
void Interrupted(int) {}  // the system call it lands in fails with EINTR; nothing else
}  // namespace

void InstallInterruptHandler(int sig) {
  if (sig <= 0) return;
  struct sigaction old {};
  if (sigaction(sig, nullptr, &old) != 0) return;
  if (old.sa_handler != SIG_DFL && old.sa_handler != SIG_IGN) return;  // the process's own
  struct sigaction sa {};
  sa.sa_handler = Interrupted;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0;  // no SA_RESTART
  sigaction(sig, &sa, nullptr);
}

}  // namespace emoe::hbm
