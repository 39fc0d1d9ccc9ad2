// hbm/src/ipc/daemon_watch.h: what stops hmmd (RunDaemon), watched on a thread of its own.
//
// A StopWatcher's thread waits (poll) for
//  - a stop signal: a signalfd over the set the caller blocked in every thread (hbm/daemon.h);
//  - while hmmd starts, the launcher's end of the control connection closing (its process died;
//    watched through a dup of the connection, so the fd number stays this thread's);
//  - the stop token cancelled by anyone else (a served control connection that closed).
// Each of the first two cancels the token; the main thread's loops (populate, load, the wait
// for the start message, the serving wait) look at it. So that a stop always ends the process:
//  - from 0.3 s after the stop, the main thread is interrupted (kInterruptSignal, pthread_kill)
//    every 100 ms, in case it is blocked in a system call that no token reaches (open() of a
//    FIFO): the call fails with EINTR;
//  - a second stop signal more than kRepeatSignalWindow after the first, or kStopGrace without
//    the main thread done, ends the process at once (_exit(1), logged). Repeats within the
//    window are one stop: a launcher with several threads that dies sends its death signal
//    once per thread, as the kernel reparents hmmd to each remaining thread in turn (seen
//    under TSan, whose runtime adds threads).
//
// Thread safety: construct, StartupDone and destroy on the main thread (RunDaemon's).
#ifndef HBM_SRC_IPC_DAEMON_WATCH_H_
#define HBM_SRC_IPC_DAEMON_WATCH_H_

#include <pthread.h>
#include <signal.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "hbm/cancel.h"
#include "vmm/unique_fd.h"

namespace emoe::hbm {

inline constexpr int kInterruptSignal = SIGURG;  // the server's ServerOptions default too
inline constexpr std::chrono::seconds kStopGrace{5};

class StopWatcher {
 public:
  // `control`: the launcher's connection (-1: none), watched until StartupDone(). `token` is
  // cancelled on a stop; it must outlive this watcher.
  StopWatcher(const sigset_t& stop, int control, CancelToken* token);
  // The main thread is done: the watching thread ends (joined).
  ~StopWatcher();
  StopWatcher(const StopWatcher&) = delete;
  StopWatcher& operator=(const StopWatcher&) = delete;

  // The start is answered: the launcher's hang-up is the server's business from now on.
  void StartupDone();

 private:
  void Run();
  void Wake();
  // A stop was seen now or earlier: interrupts the main thread, or ends the process past the
  // grace. `since`: when the stop was first seen.
  void Enforce(std::chrono::steady_clock::time_point since);

  CancelToken* token_;
  vmm::UniqueFd signal_fd_;
  vmm::UniqueFd control_;  // a dup of the launcher's connection; closed by the thread
  vmm::UniqueFd wake_;     // eventfd: StartupDone or the destructor
  pthread_t main_;
  std::atomic<bool> startup_done_{false};
  std::atomic<bool> done_{false};
  std::thread thread_;
};

}  // namespace emoe::hbm

#endif  // HBM_SRC_IPC_DAEMON_WATCH_H_
