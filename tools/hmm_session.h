// tools/hmm_session.h: the HMM a binary drives, wherever it lives (DESIGN 4.1): in hmmd, a
// daemon this process starts (or a running one it attaches to by its socket), or in this
// process. One at a time, so that the devices' memory exists once; Use() switches between the
// two (elasticmoe's methods need one or the other) and prints one line saying where the HMM is,
// its devices and arenas, and how long it took.
//
// A started hmmd ends with this process (its parent-death signal and the control connection's
// hang-up) and is waited for when the session lets it go.
//
// Thread safety: Use() from one thread, with no coordinator using the HMM; get() from any
// thread (HmmControl is thread-safe) while no Use() runs.
#ifndef TOOLS_HMM_SESSION_H_
#define TOOLS_HMM_SESSION_H_

#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "hbm/control.h"
#include "hbm/hmm.h"
#include "vmm/status.h"

namespace emoe::tools {

struct HmmSessionOptions {
  hbm::HmmOptions hmm;                  // the devices and arenas (of either kind of HMM)
  std::string hmmd_binary;              // started when hmmd_socket is empty
  std::string hmmd_socket;              // a running hmmd to drive instead of starting one
  std::vector<std::string> hmmd_flags;  // more flags for the hmmd started (e.g. --v=1)
  std::string prog = "hmm";             // names the progress lines ("<prog>: hmmd starting: ...")
  FILE* report = stdout;                // where the one-line report of Use() goes
};

class HmmSession {
 public:
  explicit HmmSession(HmmSessionOptions options) : o_(std::move(options)) {}
  // Destroys the HMM (a started hmmd is stopped and waited for).
  ~HmmSession() { Reset(); }
  HmmSession(const HmmSession&) = delete;
  HmmSession& operator=(const HmmSession&) = delete;

  // The HMM of the last successful Use(), or null.
  hbm::HmmControl* get() const { return hmm_.get(); }
  bool in_process() const { return local_ != nullptr; }
  // A started hmmd's pid; 0 otherwise.
  pid_t hmmd_pid() const { return hmmd_pid_; }

  // Makes the HMM an in-process one (`in_process`) or hmmd's; nothing to do when it already is.
  // The previous one is destroyed first. Errors: the HMM's creation (hbm::Hmm::Create), hmmd's
  // start (its message, its exit status) or the connection to hmmd_socket.
  // REQUIRES: nothing uses the previous HMM any more.
  vmm::Status Use(bool in_process);
  // Destroys the HMM now (stops a started hmmd). Idempotent.
  void Reset();

 private:
  HmmSessionOptions o_;
  std::unique_ptr<hbm::Hmm> local_;
  std::unique_ptr<hbm::HmmControl> hmm_;  // over local_, or hmmd's
  pid_t hmmd_pid_ = 0;
};

}  // namespace emoe::tools

#endif  // TOOLS_HMM_SESSION_H_
