#include "engine/remote_instance.h"

// The coordinator's side of the instance-process protocol (engine/remote_instance.h); the
// instance process's side is instance_host.cc, and the step mailbox both use is
// instances/mailbox.h.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <map>
#include <nlohmann/json.hpp>
#include <thread>

#include "hbm/server.h"
#include "instances/json_fields.h"
#include "instances/mailbox.h"
#include "laps.h"
#include "vmm/fd_passing.h"
#include "vmm/process.h"

namespace emoe::engine {

using nlohmann::json;

namespace {

constexpr int kChildControlFd = 3;

uint64_t AlignUp(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }

}  // namespace

StatusOr<std::unique_ptr<RemoteInstance>> RemoteInstance::Launch(const std::string& binary,
                                                                 const std::string& hmm_socket,
                                                                 const ModelConfig& config,
                                                                 std::vector<std::vector<int>> cpus,
                                                                 InstanceOptions options) {
  VMM_RETURN_IF_ERROR(options.Validate());
  if (cpus.empty()) return Status::InvalidArgument("an instance needs at least one rank");
  if (access(binary.c_str(), X_OK) != 0) {
    return Status::FromErrno(errno, "instance binary '" + binary + "'", "access");
  }
  VMM_ASSIGN_OR_RETURN(
      vmm::SpawnedChild child,
      vmm::SpawnWithSocket({binary, "--control_fd=" + std::to_string(kChildControlFd)},
                           kChildControlFd, /*stdout_to_stderr=*/false, "instance process"));
  const pid_t pid = child.pid;
  vmm::UniqueFd mine = std::move(child.socket);
  auto inst = std::unique_ptr<RemoteInstance>(new RemoteInstance());
  inst->pid_ = pid;
  inst->control_ = std::move(mine);
  inst->hmm_socket_ = hmm_socket;
  inst->config_ = config;
  inst->num_ranks_ = static_cast<int>(cpus.size());
  json config_json = json::parse(config.ToJson(), nullptr, false);
  if (config_json.is_discarded()) return Status::Internal("the model config is not JSON");
  json boot{{"op", "boot"},
            {"config", std::move(config_json)},
            {"cpus", cpus},
            {"compute_share", options.compute_share},
            {"threads_per_device", options.threads_per_device}};
  std::string reply;
  VMM_RETURN_IF_ERROR(inst->Call(boot.dump(), {}, &reply));  // the destructor reaps on error
  return inst;
}

RemoteInstance::~RemoteInstance() {
  if (pid_ <= 0 || reaped_) return;
  std::string reply;
  if (control_.valid()) (void)Call(R"({"op":"exit"})", {}, &reply);
  control_.Reset();
  for (int i = 0; i < 100 && !reaped_; ++i) {
    if (!alive()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  if (!reaped_) {
    kill(pid_, SIGKILL);
    if (waitpid(pid_, &wait_status_, 0) == pid_) reaped_ = true;
  }
}

bool RemoteInstance::alive() {
  if (reaped_) return false;
  const pid_t r = waitpid(pid_, &wait_status_, WNOHANG);
  if (r == pid_) reaped_ = true;
  return !reaped_;
}

std::string RemoteInstance::DeathReason() {
  if (!reaped_) {
    // The socket closed: give the process a moment to finish dying, then say how it ended.
    for (int i = 0; i < 50 && alive(); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
  const std::string who = "instance process " + std::to_string(pid_);
  if (!reaped_) return who + " closed its control socket";
  return vmm::DescribeExit(who, wait_status_);
}

Status RemoteInstance::Call(const std::string& request, const std::vector<int>& fds,
                            std::string* reply) {
  if (!control_.valid()) return Status::Unavailable(DeathReason());
  Status s = vmm::SendFds(control_.get(), request, fds);
  StatusOr<vmm::ReceivedMessage> m = s;
  if (s.ok()) m = vmm::RecvFds(control_.get(), 0);
  if (!m.ok()) {
    control_.Reset();
    return Status::Unavailable(DeathReason() + " (" + m.status().message() + ")");
  }
  *reply = std::move(m->payload);
  return hbm::ReplyStatus(*reply, "instance process " + std::to_string(pid_));
}

namespace {}  // namespace

Status RemoteInstance::Attach(const AttachSpec& spec, AttachStats* stats) {
  if (spec.private_copy || spec.experts != ExpertView::kSlots) {
    return Status::FailedPrecondition(
        "the no-zero-copy and naive-copy ablations copy weights into the instance's own "
        "device memory, which only in-process instances can allocate (run without instance "
        "processes)");
  }
  if (attached_) return Status::FailedPrecondition("the instance is already attached");
  if (static_cast<int>(spec.devices.size()) != num_ranks_ ||
      spec.stores.size() != spec.devices.size()) {
    return Status::FailedPrecondition("attach: " + std::to_string(spec.devices.size()) +
                                      " devices and " + std::to_string(spec.stores.size()) +
                                      " KV stores for an instance of " +
                                      std::to_string(num_ranks_) + " ranks");
  }
  json stores = json::array();
  for (size_t r = 0; r < spec.stores.size(); ++r) {
    const kv::KvStore* st = spec.stores[r];
    if (st == nullptr)
      return Status::InvalidArgument("attach: rank " + std::to_string(r) + " has no KV store");
    stores.push_back(
        {{"device", spec.devices[r]}, {"offset", st->arena_offset()}, {"bytes", st->size_bytes()}});
  }
  const int64_t block_tokens = spec.stores[0]->geometry().block_tokens;
  json req{{"op", "attach"},
           {"socket", hmm_socket_},
           {"devices", spec.devices},
           {"owner", spec.placement.owner},
           {"placement_devices", spec.placement.devices},
           {"prefix", spec.prefix},
           {"block_tokens", block_tokens},
           {"stores", stores}};
  // The mailbox, sized for a batch of 64 sequences, goes with the attach: an attached instance
  // holds the same resources whether it has stepped or not.
  vmm::ExportedArena exported;
  VMM_RETURN_IF_ERROR(
      PrepareMailbox((64 * config_.vocab_size + 16384) * sizeof(float), &req, &exported));
  std::vector<int> fds;
  if (exported.fd.valid()) fds.push_back(exported.fd.get());
  std::string reply;
  Laps laps;
  VMM_RETURN_IF_ERROR(Call(req.dump(), fds, &reply));
  const double round_trip_s = laps.Total();
  mailbox_sent_ = true;
  const json j = json::parse(reply, nullptr, false);
  const JsonFields f(j, "attach reply");
  uint64_t bytes_mapped = 0;
  int slots = 0;
  VMM_RETURN_IF_ERROR(f.Uint("bytes_mapped", &bytes_mapped, Need::kOptional));
  VMM_RETURN_IF_ERROR(f.Int("slots", &slots, Need::kOptional));
  if (stats != nullptr) {
    stats->bytes_mapped += bytes_mapped;
    stats->slots += slots;
    // Diagnostics never fail an attach that happened: malformed parts are skipped.
    int skipped = 0;
    AddTimingParts(j, round_trip_s, &stats->phase_s, &skipped);
    if (skipped > 0) {
      std::fprintf(stderr, "remote instance: attach reply had %d malformed timing part(s)\n",
                   skipped);
    }
  }
  devices_ = spec.devices;
  placement_ = spec.placement;
  stores_ = spec.stores;
  attached_ = true;
  return Status::Ok();
}

Status RemoteInstance::WarmUp() {
  if (!attached_) return Status::FailedPrecondition("warm-up before attach");
  std::string reply;
  return Call(R"({"op":"warmup"})", {}, &reply);
}

Status RemoteInstance::PrepareMailbox(uint64_t need, json_ref req, vmm::ExportedArena* exported) {
  if (!mailbox_ || mailbox_->capacity_bytes() < need) {
    vmm::ArenaOptions ao;
    ao.name = "instance-mailbox";
    ao.capacity_bytes = AlignUp(std::max<uint64_t>(need * 2, 1 << 20), vmm::kSmallPageSize);
    ao.page_size = vmm::PageSizePolicy::kSmall;
    VMM_ASSIGN_OR_RETURN(mailbox_, vmm::Arena::Create(ao));
    mailbox_sent_ = false;
  }
  if (!mailbox_sent_) {
    VMM_ASSIGN_OR_RETURN(*exported, mailbox_->Export());
    (*req)["mailbox"] = exported->SerializeMetadata();
  }
  return Status::Ok();
}

StatusOr<std::vector<std::vector<float>>> RemoteInstance::Step(
    const std::vector<SequenceInput>& batch) {
  if (!attached_) return Status::FailedPrecondition("step before attach");
  const int64_t vocab = config_.vocab_size;
  // Validate, and reserve every sequence's blocks here, where the block pools live.
  std::vector<kv::PagedSequence*> seqs;
  for (const SequenceInput& in : batch) {
    if (in.rank < 0 || in.rank >= num_ranks_) {
      return Status::InvalidArgument("step: rank " + std::to_string(in.rank) + " out of range");
    }
    auto* ps = dynamic_cast<kv::PagedSequence*>(in.kv);
    if (ps == nullptr || ps->store() != stores_[in.rank]) {
      return Status::InvalidArgument(
          "step: an instance process needs each sequence's KV in the paged store attached for "
          "its rank");
    }
    if (in.tokens.empty()) return Status::InvalidArgument("step: a sequence without tokens");
    seqs.push_back(ps);
  }
  std::vector<StepMailbox::Sequence> records(batch.size());
  for (size_t i = 0; i < batch.size(); ++i) {
    VMM_RETURN_IF_ERROR(seqs[i]->Reserve(seqs[i]->length() + batch[i].tokens.size()));
    records[i] = {batch[i].rank, seqs[i]->length(), seqs[i]->blocks(), batch[i].tokens};
  }
  const StepMailbox::Layout layout = StepMailbox::Plan(records, vocab);
  json req{{"op", "step"},
           {"request_bytes", layout.request_bytes},
           {"logits_offset", layout.logits_offset}};
  vmm::ExportedArena exported;
  VMM_RETURN_IF_ERROR(PrepareMailbox(layout.total_bytes(), &req, &exported));
  std::vector<int> fds;
  if (exported.fd.valid()) fds.push_back(exported.fd.get());
  uint8_t* box = mailbox_->direct_map();
  VMM_RETURN_IF_ERROR(StepMailbox::Write(records, layout, box, mailbox_->capacity_bytes()));
  std::string reply;
  VMM_RETURN_IF_ERROR(Call(req.dump(), fds, &reply));
  mailbox_sent_ = true;
  std::vector<std::vector<float>> logits(batch.size());
  for (size_t i = 0; i < batch.size(); ++i) {
    const float* out = StepMailbox::Logits(box, layout, vocab, i);
    logits[i].assign(out, out + vocab);
    seqs[i]->SetLength(seqs[i]->length() + batch[i].tokens.size());
  }
  return logits;
}

}  // namespace emoe::engine
