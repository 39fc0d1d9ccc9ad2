// hbm/cancel.h: a stop request shared between the thread that asks for it and the long loops
// that honour it (hmmd populating its arenas, the loader between batches of reads, a server's
// client threads).
//
// A CancelToken starts not cancelled and is cancelled once, for good. Loops look at cancelled()
// between bounded steps (a chunk populated, a batch of completions reaped) and return Check()'s
// status; a thread that waits (poll) can add fd() to its poll set, which becomes readable when
// the token is cancelled, or sleep interruptibly with WaitFor().
//
// Thread safety: every method may be called from any thread; Cancel() is async-signal-safe (an
// atomic store and a write(2)), so a signal handler may call it.
#ifndef HBM_CANCEL_H_
#define HBM_CANCEL_H_

#include <atomic>
#include <chrono>
#include <string>

#include "vmm/status.h"
#include "vmm/unique_fd.h"

namespace emoe::hbm {

class CancelToken {
 public:
  CancelToken();
  CancelToken(const CancelToken&) = delete;
  CancelToken& operator=(const CancelToken&) = delete;

  void Cancel();
  bool cancelled() const { return cancelled_.load(std::memory_order_acquire); }
  // OK while not cancelled; then kUnavailable "<what>: cancelled (stopping)".
  vmm::Status Check(const std::string& what) const;
  // Sleeps up to `d`, returning early when cancelled; returns cancelled().
  bool WaitFor(std::chrono::milliseconds d) const;
  // An eventfd that is readable once the token is cancelled (never read from: it stays
  // readable). -1 when eventfd failed, then waiters fall back to WaitFor's polling.
  int fd() const { return event_.get(); }

 private:
  std::atomic<bool> cancelled_{false};
  vmm::UniqueFd event_;
};

// Makes `sig` (> 0) interrupt a blocking system call of the thread it is sent to
// (pthread_kill): installs a handler that does nothing, without SA_RESTART, so the call fails
// with EINTR. A process that handles `sig` already keeps its own handler. For threads blocked
// where no cancellation reaches (open() of a FIFO, a read that never ends).
void InstallInterruptHandler(int sig);

// True when either token (null ones never are) is cancelled: a loop that serves two masters,
// e.g. a load stopped by the server or by the whole daemon.
inline bool Cancelled(const CancelToken* a, const CancelToken* b = nullptr) {
  return (a != nullptr && a->cancelled()) || (b != nullptr && b->cancelled());
}

}  // namespace emoe::hbm

#endif  // HBM_CANCEL_H_
