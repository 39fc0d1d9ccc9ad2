// vmm/process.h: child processes: start one with a control socket, wait for it, reap it, say how
// it ended, kill it after a grace period.
//
// A pid is reaped at most once: after a function here returned its wait status, the caller must
// not pass that pid again (the kernel may have given the number to another process).
//
// Thread safety: the functions are reentrant; waiting for one child from two threads at once is
// the caller's business (one of them reaps it, the other finds ECHILD).
#ifndef VMM_PROCESS_H_
#define VMM_PROCESS_H_

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "vmm/status.h"
#include "vmm/unique_fd.h"

namespace vmm {

// A child process started with one end of a new SOCK_SEQPACKET socket pair as its file
// descriptor `child_fd` (every other descriptor of this process is close-on-exec), and this
// process's end. `argv[0]` is the binary's path. `stdout_to_stderr` points the child's stdout at
// this process's stderr (a daemon's chatter must not mix with this process's output). `what`
// names the child in errors ("start hmmd '/path': posix_spawn: ...").
// `parent_death_signal` (0: none) is sent to the child when this process dies
// (PR_SET_PDEATHSIG, set in the child before it executes the binary, and kept across the exec
// of a binary that is not set-uid). The race of the classic recipe is closed: a parent that died
// before the prctl took effect is noticed (getppid() no longer this process) and the child exits
// at once with status 127 instead of running orphaned. Beware: Linux sends the signal when the
// *thread* that spawned the child ends, not only the process; a child that outlives the
// spawning thread should clear it (prctl(PR_SET_PDEATHSIG, 0)) once it has another way to learn
// of its parent's death (hmmd does, once its control connection is served; emoe_instance, once
// its first message came).
struct SpawnedChild {
  pid_t pid = 0;
  UniqueFd socket;
};
StatusOr<SpawnedChild> SpawnWithSocket(const std::vector<std::string>& argv, int child_fd,
                                       bool stdout_to_stderr, const std::string& what,
                                       int parent_death_signal = 0);

// How a child ended, from its wait status: "<who> exited with status 2", "<who> was killed by
// signal 9 (Killed)".
std::string DescribeExit(const std::string& who, int wait_status);

// Reaps `pid` if it has ended (waitpid WNOHANG): its wait status, or nullopt while it runs (or
// when waitpid fails: not our child, already reaped).
std::optional<int> TryReap(pid_t pid);

// Waits up to `timeout` (polling every 10 ms; zero: one look) for `pid` to end and reaps it: its
// wait status, or nullopt when it still runs.
std::optional<int> WaitForExit(pid_t pid, std::chrono::milliseconds timeout);

// Waits up to `grace` for `pid` to end, then kills it (SIGKILL); reaps it either way. Returns its
// wait status, or nullopt when waitpid fails (not our child, already reaped).
std::optional<int> KillAfterGrace(pid_t pid, std::chrono::milliseconds grace);

}  // namespace vmm

#endif  // VMM_PROCESS_H_
