// engine/remote_instance.h: an inference instance in a process of its own (DESIGN 4.1).
//
// RemoteInstance::Launch starts the instance binary (tools/emoe_instance) with one end of a
// SOCK_SEQPACKET socket pair; the process boots an engine::Instance (worker threads pinned to
// their CPUs, BLAS warmed) and reports ready: a pre-initialized standby that owns no model
// memory. Attach() makes it connect to the HMM's socket (hmm/server.h) and attach: weights
// read-only and zero-copy (each rank's experts as a slot range over their own pages, mapped by
// the instance process itself), and the KV arenas read-write. Nothing is copied or read from
// disk. The coordinator keeps the scheduler and the KV block tables; a step sends each
// sequence's block table, length and new tokens, and the instance writes KV into the shared
// arena and returns the logits.
//
// Control protocol (one JSON message each way per call, vmm::SendFds/RecvFds):
//   {"op":"boot","config":{...},"cpus":[[...]],"compute_share":1,"threads_per_device":1}
//                                                                       -> {"ok":true,"pid":N}
//   {"op":"attach","mailbox":meta,"socket":path,"devices":[...],"owner":[[...]],"prefix":"...",
//    "block_tokens":16,"stores":[{"device":d,"offset":o,"bytes":b}]}
//                                                       -> {"ok":true,"bytes_mapped":B,"slots":S}
//   {"op":"warmup"}                                     -> {"ok":true}
//   {"op":"step","request_bytes":B,"logits_offset":O[,"mailbox":meta]}  -> {"ok":true}
//   {"op":"exit"}                                       -> {"ok":true}, then the process exits
// Errors: {"ok":false,"code":...,"error":...} (hbm::ErrorJson). The step's batch and its logits
// travel through a "mailbox": a small shared memfd arena made by the coordinator side and passed
// with the first step that needs it (and again when it must grow). Its layout:
//   int64 n; n x {int64 rank, length, num_blocks, num_tokens}; then every sequence's blocks
//   (int32) and tokens (int32), in order; logits at logits_offset: n x vocab floats.
// (engine/src/instances/mailbox.h defines it once, with the writer and the checked reader.)
// Every field of a request is checked by type: a mistyped or missing one gets an error reply
// naming it, and the instance process keeps serving.
//
// Failure: a dead instance process (crash, kill) makes every later call fail with kUnavailable
// naming the pid and how it ended; its sequences' KV and the HMM's memory are untouched, and a
// new instance can attach to the same memory (Coordinator::RestartInstance).
//
// Thread safety: one thread at a time drives a RemoteInstance.
#ifndef ENGINE_REMOTE_INSTANCE_H_
#define ENGINE_REMOTE_INSTANCE_H_

#include <sys/types.h>

#include <map>
#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

#include "engine/instance.h"
#include "engine/local_instance.h"
#include "vmm/arena.h"
#include "vmm/unique_fd.h"

namespace emoe::engine {

using json_ref = nlohmann::json*;

class RemoteInstance : public Instance {
 public:
  // Starts `binary` and boots an instance of `config` with one worker per CPU set. The process
  // is ready (pre-initialized, not attached) when this returns; it attaches through the HMM's
  // server socket `hmm_socket` (hbm::HmmServer).
  static StatusOr<std::unique_ptr<RemoteInstance>> Launch(const std::string& binary,
                                                          const std::string& hmm_socket,
                                                          const ModelConfig& config,
                                                          std::vector<std::vector<int>> cpus,
                                                          InstanceOptions options = {});
  // Asks the process to exit and reaps it (SIGKILL after a second).
  ~RemoteInstance() override;
  RemoteInstance(const RemoteInstance&) = delete;
  RemoteInstance& operator=(const RemoteInstance&) = delete;

  // kFailedPrecondition when already attached, the rank count differs from the CPU sets, a rank
  // has no KV store, or `spec` asks for a private copy; the instance process's errors (a missing
  // tensor, an unreachable socket) come back named.
  Status Attach(const AttachSpec& spec, AttachStats* stats) override;

  const ModelConfig& config() const override { return config_; }
  int num_ranks() const override { return num_ranks_; }
  const std::vector<int>& devices() const override { return devices_; }
  const experts::ExpertPlacement& placement() const override { return placement_; }
  bool attached() const override { return attached_; }
  Status WarmUp() override;
  // Every input's KV must be a kv::PagedSequence of the store attached for its rank: its blocks
  // are reserved here (the block pool lives in this process), then the instance computes.
  StatusOr<std::vector<std::vector<float>>> Step(const std::vector<SequenceInput>& batch) override;
  pid_t pid() const override { return pid_; }
  // Whether the process is still running (reaps it if not).
  bool alive();

 private:
  RemoteInstance() = default;
  // One request and its reply; a transport failure marks the instance dead.
  Status Call(const std::string& request, const std::vector<int>& fds, std::string* reply);
  std::string DeathReason();
  // Makes the mailbox hold `need` bytes; when it is new, adds its metadata to the request
  // (*req is a JSON object) and its fd to `exported`.
  Status PrepareMailbox(uint64_t need, json_ref req, vmm::ExportedArena* exported);

  ModelConfig config_;
  std::string hmm_socket_;
  int num_ranks_ = 0;
  std::vector<int> devices_;
  experts::ExpertPlacement placement_;
  std::vector<const kv::KvStore*> stores_;
  bool attached_ = false;
  pid_t pid_ = 0;
  bool reaped_ = false;
  int wait_status_ = 0;
  vmm::UniqueFd control_;
  std::shared_ptr<vmm::Arena> mailbox_;
  bool mailbox_sent_ = false;
};

// The instance process's main loop: serves `control_fd` until "exit" or until the peer closes.
// Returns the process's exit code.
int RunInstanceHost(int control_fd);

}  // namespace emoe::engine

#endif  // ENGINE_REMOTE_INSTANCE_H_
