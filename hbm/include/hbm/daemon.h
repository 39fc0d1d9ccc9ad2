// hbm/daemon.h: hmmd's life, as library code (tools/hmmd.cc parses flags and calls RunDaemon).
//
// RunDaemon creates the devices and their arenas, optionally preloads a checkpoint, serves the
// protocol of hbm/server.h on a UNIX socket and returns when a stop signal arrives or the
// launcher's control connection closes.
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
// after a clean stop, 1 when startup failed (logged, and answered to the launcher).
int RunDaemon(DaemonOptions options, const sigset_t& stop);

}  // namespace emoe::hbm

#endif  // HBM_DAEMON_H_
