// The HMM a binary drives (hmm_session.h).
#include "tools/hmm_session.h"

#include <algorithm>
#include <chrono>
#include <cinttypes>

#include "hbm/remote_control.h"

namespace emoe::tools {

using vmm::Status;

void HmmSession::Reset() {
  hmm_.reset();  // the control first: it drives local_
  local_.reset();
  hmmd_pid_ = 0;
}

Status HmmSession::Use(bool in_process) {
  if (hmm_ != nullptr && (local_ != nullptr) == in_process) return Status::Ok();
  Reset();
  const auto tc = std::chrono::steady_clock::now();
  std::string note, where;
  if (in_process) {
    VMM_ASSIGN_OR_RETURN(local_, hbm::Hmm::Create(o_.hmm));
    hmm_ = std::make_unique<hbm::LocalHmmControl>(local_.get());
    note = local_->page_note();
    where = "in this process";
  } else {
    std::unique_ptr<hbm::RemoteHmmControl> remote;
    if (!o_.hmmd_socket.empty()) {
      VMM_ASSIGN_OR_RETURN(remote, hbm::RemoteHmmControl::Connect(o_.hmmd_socket));
      where = "in the running hmmd at " + o_.hmmd_socket;
    } else {
      hbm::HmmdOptions hd;
      hd.binary = o_.hmmd_binary;
      hd.hmm = o_.hmm;
      hd.extra_args = {"--minloglevel=1"};  // hmmd's warnings and errors only
      hd.extra_args.insert(hd.extra_args.end(), o_.hmmd_flags.begin(), o_.hmmd_flags.end());
      // Its start-up progress, as a line every 2 s (populating takes a while on a VM).
      hd.progress = [prog = o_.prog, last = std::chrono::steady_clock::time_point{}](
                        const hbm::StartProgress& p) mutable {
        const auto now = std::chrono::steady_clock::now();
        if (now - last < std::chrono::seconds(2) && p.done_bytes != p.total_bytes) return;
        last = now;
        std::fprintf(stderr, "%s: hmmd starting: %s\n", prog.c_str(), p.ToString().c_str());
      };
      VMM_ASSIGN_OR_RETURN(remote, hbm::RemoteHmmControl::Launch(hd));
      hmmd_pid_ = remote->pid();
      where = "in hmmd (pid " + std::to_string(remote->pid()) + ")";
    }
    note = remote->page_note();
    hmm_ = std::move(remote);
  }
  VMM_ASSIGN_OR_RETURN(auto stats, hmm_->Stats());
  const auto& ex = stats.at(0).usage[static_cast<int>(hbm::Usage::kExperts)];
  uint64_t arenas = 0;
  for (const auto& u : stats.at(0).usage) arenas += u.capacity_bytes;
  // Arenas are reserved whole; what is populated at start is at most the device's capacity.
  const uint64_t capacity = stats.at(0).capacity_bytes;
  const std::string populated = o_.hmm.memory.populate && o_.hmmd_socket.empty()
                                    ? std::string(", ") +
                                          std::to_string(std::min(arenas, capacity) >> 20) +
                                          " MiB each populated"
                                    : std::string();
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - tc).count();
  std::fprintf(o_.report,
               "HMM %s: %d devices x %" PRIu64 " MiB of arenas (%s pages%s) in %.1f s%s%s\n",
               where.c_str(), hmm_->num_devices(), arenas >> 20, vmm::PageKindName(ex.kind),
               populated.c_str(), seconds, note.empty() ? "" : "; ", note.c_str());
  std::fflush(o_.report);
  return Status::Ok();
}

}  // namespace emoe::tools
