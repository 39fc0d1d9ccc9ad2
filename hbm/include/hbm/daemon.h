// hbm/daemon.h: hmmd's life, as library code (tools/hmmd.cc parses flags and calls RunDaemon).
//
// RunDaemon creates the devices and their arenas (populating what they can hold, with
// DeviceMemoryOptions::populate), optionally preloads a checkpoint, serves the protocol of
// hbm/server.h on a UNIX socket and returns when a stop signal arrives or the launcher's control
// connection closes.
//
// Stopping: a stop signal is honoured in every phase, within about a second: waiting for the
// start message, populating (between chunks), preloading (between batches of reads), serving
// (HmmServer::Stop cancels clients' loads). A launcher's hang-up stops the daemon during
// start-up too. A second signal, or a stop not done within 5 s (a thread blocked where nothing
// reaches it), ends the process at once (ipc/daemon_watch.h).
//
// Progress: while it starts, a launched daemon sends progress messages on the control
// connection before the start reply (ipc/codec.h: "start", each populated chunk, each load
// report), and logs the populating (at most once a second).
//
// With a control connection (a launched hmmd, hbm/remote_control.h) the daemon's HmmOptions come
// from the launcher's first message, {"op":"start","options":{...}}; DaemonOptions::hmm (from
// flags) is then only the fallback of a hand-started daemon. A startup failure is answered on
// the control connection (code and message), so the launcher learns more than an exit status.
//
// Thread safety: RunDaemon runs on the main thread, once per process.
#ifndef HBM_DAEMON_H_
#define HBM_DAEMON_H_

#include <signal.h>

#include <functional>
#include <string>

#include "hbm/hmm.h"
#include "hbm/server.h"
#include "vmm/unique_fd.h"

namespace emoe::hbm {

struct DaemonOptions {
  HmmOptions hmm;          // a hand-started daemon's devices, arenas and loader
  std::string checkpoint;  // preload this safetensors file or directory; empty: start empty
  // Where each preloaded tensor goes, given the number of devices. Required with a checkpoint.
  std::function<PlacementFn(int num_devices)> preload_placement;
  std::string socket_path;  // required; its directory is created (mode 0700) if missing
  // Testing only: create the weights and experts arenas unsealed (DeviceMemoryOptions::
  // seal_weights off, whatever the launcher sent) and let clients map them writable.
  bool allow_writable = false;
  ConnectionLimits limits;  // admission of connections (hbm/server.h)
  vmm::UniqueFd control;    // the launcher's connected SOCK_SEQPACKET socket, or none
  // Runs once setup is done, before serving (hmmd drops its capabilities there). May be null.
  std::function<void()> after_setup;
};

// Runs the daemon until one of `stop` (which the caller has blocked in every thread, before any
// thread started) arrives or the control connection closes. Returns the process's exit code: 0
// after a clean stop (also one during start-up), 1 when startup failed (logged, and answered to
// the launcher). The caller must not block SIGURG (the stop interrupts blocked calls with it).
// PR_SET_PDEATHSIG is cleared once the control connection is served.
int RunDaemon(DaemonOptions options, const sigset_t& stop);

}  // namespace emoe::hbm

#endif  // HBM_DAEMON_H_
