#include "engine/remote_instance.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <nlohmann/json.hpp>
#include <thread>

#include "engine/weight_sources.h"
#include "hbm/client.h"
#include "hbm/server.h"
#include "vmm/fd_passing.h"

namespace emoe::engine {

using nlohmann::json;

namespace {

constexpr int kChildControlFd = 3;

// Mailbox layout (see the header).
struct SeqHeader {
  int64_t rank, length, num_blocks, num_tokens;
};

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
  json boot{{"op", "boot"},
            {"config", json::parse(config.ToJson())},
            {"cpus", cpus},
            {"compute_share", options.compute_share}};
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
  if (WIFSIGNALED(wait_status_)) {
    return who + " was killed by signal " + std::to_string(WTERMSIG(wait_status_)) + " (" +
           strsignal(WTERMSIG(wait_status_)) + ")";
  }
  return who + " exited with status " + std::to_string(WEXITSTATUS(wait_status_));
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
  VMM_RETURN_IF_ERROR(Call(req.dump(), fds, &reply));
  mailbox_sent_ = true;
  const json j = json::parse(reply, nullptr, false);
  if (stats != nullptr) {
    stats->bytes_mapped += j.value("bytes_mapped", uint64_t{0});
    stats->slots += j.value("slots", 0);
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
  uint64_t request_bytes = sizeof(int64_t);
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
  for (size_t i = 0; i < batch.size(); ++i) {
    VMM_RETURN_IF_ERROR(seqs[i]->Reserve(seqs[i]->length() + batch[i].tokens.size()));
    request_bytes +=
        sizeof(SeqHeader) + sizeof(int32_t) * (seqs[i]->blocks().size() + batch[i].tokens.size());
  }
  const uint64_t logits_offset = AlignUp(request_bytes, 64);
  const uint64_t need = logits_offset + batch.size() * vocab * sizeof(float);
  json req{{"op", "step"}, {"request_bytes", request_bytes}, {"logits_offset", logits_offset}};
  vmm::ExportedArena exported;
  VMM_RETURN_IF_ERROR(PrepareMailbox(need, &req, &exported));
  std::vector<int> fds;
  if (exported.fd.valid()) fds.push_back(exported.fd.get());
  uint8_t* box = mailbox_->direct_map();
  const int64_t n = static_cast<int64_t>(batch.size());
  std::memcpy(box, &n, sizeof(n));
  uint8_t* at = box + sizeof(n);
  for (size_t i = 0; i < batch.size(); ++i) {
    const SeqHeader h{batch[i].rank, seqs[i]->length(),
                      static_cast<int64_t>(seqs[i]->blocks().size()),
                      static_cast<int64_t>(batch[i].tokens.size())};
    std::memcpy(at, &h, sizeof(h));
    at += sizeof(h);
  }
  for (size_t i = 0; i < batch.size(); ++i) {
    const std::vector<kv::BlockId>& b = seqs[i]->blocks();
    std::memcpy(at, b.data(), b.size() * sizeof(int32_t));
    at += b.size() * sizeof(int32_t);
    std::memcpy(at, batch[i].tokens.data(), batch[i].tokens.size() * sizeof(int32_t));
    at += batch[i].tokens.size() * sizeof(int32_t);
  }
  std::string reply;
  VMM_RETURN_IF_ERROR(Call(req.dump(), fds, &reply));
  mailbox_sent_ = true;
  std::vector<std::vector<float>> logits(batch.size());
  const float* out = reinterpret_cast<const float*>(box + logits_offset);
  for (size_t i = 0; i < batch.size(); ++i) {
    logits[i].assign(out + i * vocab, out + (i + 1) * vocab);
    seqs[i]->SetLength(seqs[i]->length() + batch[i].tokens.size());
  }
  return logits;
}

// ---- The instance process ----

namespace {

class Host {
 public:
  // Handles one request; *exit is set by "exit".
  std::string Handle(const std::string& payload, std::vector<vmm::UniqueFd> fds, bool* exit) {
    const json req = json::parse(payload, nullptr, false);
    if (req.is_discarded() || !req.is_object() || !req.contains("op")) {
      return hbm::ErrorJson(Status::InvalidArgument("malformed request"));
    }
    const std::string op = req.value("op", "");
    StatusOr<json> r = Status::InvalidArgument("unknown op '" + op + "'");
    try {
      if (op == "boot") r = Boot(req);
      if (op == "attach") r = Attach(req, std::move(fds));
      if (op == "warmup") r = WarmUp();
      if (op == "step") r = Step(req, std::move(fds));
      if (op == "exit") {
        *exit = true;
        r = json::object();
      }
    } catch (const json::exception& e) {
      r = Status::InvalidArgument(std::string("bad field in '") + op + "': " + e.what());
    }
    if (!r.ok()) return hbm::ErrorJson(r.status());
    json out = *r;
    out["ok"] = true;
    return out.dump();
  }

 private:
  StatusOr<json> Boot(const json& req) {
    if (inst_) return Status::FailedPrecondition("already booted");
    VMM_ASSIGN_OR_RETURN(config_, ParseModelConfig(req.at("config").dump()));
    InstanceOptions o;
    o.compute_share = req.value("compute_share", 1.0);
    VMM_ASSIGN_OR_RETURN(
        inst_,
        LocalInstance::Boot(config_, req.at("cpus").get<std::vector<std::vector<int>>>(), o));
    return json{{"pid", getpid()}};
  }

  Status ImportMailbox(const json& req, std::vector<vmm::UniqueFd>* fds) {
    if (!req.contains("mailbox")) return Status::Ok();
    if (fds->size() != 1) return Status::InvalidArgument("the mailbox needs its fd");
    VMM_ASSIGN_OR_RETURN(vmm::ExportedArena e,
                         vmm::ExportedArena::ParseMetadata(req["mailbox"].get<std::string>()));
    e.fd = std::move((*fds)[0]);
    VMM_ASSIGN_OR_RETURN(mailbox_, vmm::Arena::Import(std::move(e)));
    return Status::Ok();
  }

  StatusOr<json> Attach(const json& req, std::vector<vmm::UniqueFd> fds) {
    if (!inst_) return Status::FailedPrecondition("attach before boot");
    VMM_RETURN_IF_ERROR(ImportMailbox(req, &fds));
    const std::string socket = req.at("socket").get<std::string>();
    VMM_ASSIGN_OR_RETURN(client_, hbm::HmmClient::Connect(socket));
    const std::vector<int> devices = req.at("devices").get<std::vector<int>>();
    // Only the instance's own devices: their weights and experts read-only, their KV arenas
    // read-write.
    atts_.clear();
    for (int d : devices) {
      VMM_ASSIGN_OR_RETURN(atts_[d], client_->Attach(d, /*writable=*/false, /*kv=*/true));
    }
    experts::ExpertPlacement placement;
    placement.devices = req.at("placement_devices").get<std::vector<int>>();
    placement.owner = req.at("owner").get<std::vector<std::vector<int>>>();
    VMM_RETURN_IF_ERROR(placement.Validate());
    const std::string prefix = req.value("prefix", "");
    geometry_ = KvGeometryFor(config_, req.value("block_tokens", int64_t{16}));
    std::vector<std::unique_ptr<WeightSource>> sources;
    uint64_t mapped = 0;
    int slots = 0;
    kv_base_.clear();
    kv_blocks_.clear();
    for (const json& st : req.at("stores")) {
      const int d = st.at("device").get<int>();
      const uint64_t off = st.at("offset").get<uint64_t>(), bytes = st.at("bytes").get<uint64_t>();
      auto a = atts_.find(d);
      if (a == atts_.end() || a->second->kv_base(d) == nullptr ||
          off + bytes > a->second->kv_bytes(d)) {
        return Status::InvalidArgument("attach: device " + std::to_string(d) +
                                       " has no KV arena holding the store at offset " +
                                       std::to_string(off));
      }
      kv_base_.push_back(a->second->kv_base(d) + off);
      kv_blocks_.push_back(static_cast<int64_t>(bytes / geometry_.block_bytes()));
    }
    if (kv_base_.size() != devices.size()) {
      return Status::InvalidArgument("attach: one KV store per device needed");
    }
    for (int d : devices) {
      DeviceWeightsStats ws;
      VMM_ASSIGN_OR_RETURN(
          auto w, DeviceWeights::FromAttachment(*atts_[d], config_, d, placement, prefix, &ws));
      mapped += ws.bytes_mapped;
      slots += ws.slots;
      sources.push_back(std::move(w));
    }
    VMM_RETURN_IF_ERROR(inst_->AttachSources(devices, std::move(sources), placement));
    return json{{"bytes_mapped", mapped}, {"slots", slots}};
  }

  StatusOr<json> WarmUp() {
    if (!inst_) return Status::FailedPrecondition("warm-up before boot");
    VMM_RETURN_IF_ERROR(inst_->WarmUp());
    return json::object();
  }

  StatusOr<json> Step(const json& req, std::vector<vmm::UniqueFd> fds) {
    if (!inst_ || !inst_->attached()) return Status::FailedPrecondition("step before attach");
    VMM_RETURN_IF_ERROR(ImportMailbox(req, &fds));
    if (!mailbox_) return Status::FailedPrecondition("step: no mailbox");
    const uint64_t request_bytes = req.at("request_bytes").get<uint64_t>();
    const uint64_t logits_offset = req.at("logits_offset").get<uint64_t>();
    const uint64_t cap = mailbox_->capacity_bytes();
    uint8_t* box = mailbox_->direct_map();
    if (request_bytes > cap || request_bytes < sizeof(int64_t)) {
      return Status::InvalidArgument("step: the request does not fit the mailbox");
    }
    int64_t n = 0;
    std::memcpy(&n, box, sizeof(n));
    if (n < 0 || sizeof(int64_t) + n * sizeof(SeqHeader) > request_bytes ||
        logits_offset < request_bytes ||
        logits_offset + n * config_.vocab_size * sizeof(float) > cap) {
      return Status::InvalidArgument("step: malformed batch of " + std::to_string(n));
    }
    std::vector<SeqHeader> heads(n);
    std::memcpy(heads.data(), box + sizeof(int64_t), n * sizeof(SeqHeader));
    const uint8_t* at = box + sizeof(int64_t) + n * sizeof(SeqHeader);
    const uint8_t* end = box + request_bytes;
    std::vector<std::unique_ptr<kv::MappedSequence>> seqs;
    std::vector<SequenceInput> batch;
    for (const SeqHeader& h : heads) {
      if (h.rank < 0 || h.rank >= static_cast<int64_t>(kv_base_.size()) || h.num_blocks < 0 ||
          h.num_tokens < 0 || h.length < 0 ||
          at + sizeof(int32_t) * (h.num_blocks + h.num_tokens) > end) {
        return Status::InvalidArgument("step: malformed sequence header");
      }
      std::vector<kv::BlockId> blocks(h.num_blocks);
      std::memcpy(blocks.data(), at, h.num_blocks * sizeof(int32_t));
      at += h.num_blocks * sizeof(int32_t);
      for (kv::BlockId b : blocks) {
        if (b < 0 || b >= kv_blocks_[h.rank]) {
          return Status::InvalidArgument("step: block " + std::to_string(b) + " outside the store");
        }
      }
      SequenceInput in;
      in.tokens.resize(h.num_tokens);
      std::memcpy(in.tokens.data(), at, h.num_tokens * sizeof(int32_t));
      at += h.num_tokens * sizeof(int32_t);
      seqs.push_back(std::make_unique<kv::MappedSequence>(kv_base_[h.rank], geometry_,
                                                          std::move(blocks), h.length));
      in.kv = seqs.back().get();
      in.rank = static_cast<int>(h.rank);
      batch.push_back(std::move(in));
    }
    VMM_ASSIGN_OR_RETURN(auto logits, inst_->Step(batch));
    float* out = reinterpret_cast<float*>(box + logits_offset);
    for (size_t i = 0; i < logits.size(); ++i) {
      std::memcpy(out + i * config_.vocab_size, logits[i].data(),
                  config_.vocab_size * sizeof(float));
    }
    return json::object();
  }

  ModelConfig config_;
  std::unique_ptr<hbm::HmmClient> client_;
  // Per device; declared before inst_: they outlive the instance's views into them.
  std::map<int, std::unique_ptr<hbm::Attachment>> atts_;
  std::unique_ptr<LocalInstance> inst_;
  kv::KvGeometry geometry_;
  std::vector<uint8_t*> kv_base_;
  std::vector<int64_t> kv_blocks_;
  std::shared_ptr<vmm::Arena> mailbox_;
};

}  // namespace

int RunInstanceHost(int control_fd) {
  // Die with the coordinator: an orphaned instance would hold mappings of the HMM's memory.
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() == 1) return 1;
  prctl(PR_SET_NAME, "emoe-instance");
  Host host;
  for (;;) {
    auto m = vmm::RecvFds(control_fd);
    if (!m.ok()) return m.status().code() == vmm::StatusCode::kUnavailable ? 0 : 2;
    bool exit = false;
    const std::string reply = host.Handle(m->payload, std::move(m->fds), &exit);
    if (!vmm::SendFds(control_fd, reply, {}).ok()) return 3;
    if (exit) return 0;
  }
}

}  // namespace emoe::engine
