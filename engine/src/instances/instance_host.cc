// The instance process's side of the instance-process protocol (engine/remote_instance.h):
// RunInstanceHost serves one control socket with a Host, which boots a LocalInstance, attaches it
// to the HMM's memory and runs the steps the coordinator leaves in the mailbox
// (instances/mailbox.h). Every request is checked field by field (instances/json_fields.h) and a
// bad one gets an error reply; nothing in a request can crash the process.
#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <cstring>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "engine/remote_instance.h"
#include "engine/weight_sources.h"
#include "hbm/client.h"
#include "hbm/server.h"
#include "instances/json_fields.h"
#include "instances/mailbox.h"
#include "laps.h"
#include "vmm/fd_passing.h"

namespace emoe::engine {

using nlohmann::json;

namespace {

// An attach request, read in full before anything is connected or mapped.
struct AttachRequest {
  struct Store {
    int device = 0;
    uint64_t offset = 0;  // bytes into the device's KV arena
    uint64_t bytes = 0;
  };
  std::string socket;
  std::vector<int> devices;
  experts::ExpertPlacement placement;
  std::string prefix;
  int64_t block_tokens = 16;
  std::vector<Store> stores;
};

Status ParseAttach(const JsonFields& f, AttachRequest* a) {
  VMM_RETURN_IF_ERROR(f.String("socket", &a->socket));
  VMM_RETURN_IF_ERROR(f.IntArray("devices", &a->devices));
  VMM_RETURN_IF_ERROR(f.IntArray("placement_devices", &a->placement.devices));
  VMM_RETURN_IF_ERROR(f.IntArrays("owner", &a->placement.owner));
  VMM_RETURN_IF_ERROR(f.String("prefix", &a->prefix, Need::kOptional));
  VMM_RETURN_IF_ERROR(f.Int("block_tokens", &a->block_tokens, Need::kOptional));
  if (a->block_tokens <= 0) {
    return Status::InvalidArgument(f.context() + ": field 'block_tokens' must be positive");
  }
  std::vector<JsonFields> stores;
  VMM_RETURN_IF_ERROR(f.ObjectArray("stores", &stores));
  for (const JsonFields& s : stores) {
    AttachRequest::Store st;
    VMM_RETURN_IF_ERROR(s.Int("device", &st.device));
    VMM_RETURN_IF_ERROR(s.Uint("offset", &st.offset));
    VMM_RETURN_IF_ERROR(s.Uint("bytes", &st.bytes));
    a->stores.push_back(st);
  }
  return Status::Ok();
}

class Host {
 public:
  // Handles one request; *exit is set by "exit". Returns the reply.
  std::string Handle(const std::string& payload, std::vector<vmm::UniqueFd> fds, bool* exit) {
    const json req = json::parse(payload, nullptr, false);
    if (req.is_discarded() || !req.is_object()) {
      return hbm::ErrorJson(Status::InvalidArgument("malformed request: not a JSON object"));
    }
    std::string op;
    const Status has_op = JsonFields(req, "request").String("op", &op);
    if (!has_op.ok()) return hbm::ErrorJson(has_op);
    const JsonFields f(req, op);
    StatusOr<json> r = Status::InvalidArgument("unknown op '" + op + "'");
    if (op == "boot") r = Boot(f);
    if (op == "attach") r = Attach(f, std::move(fds));
    if (op == "warmup") r = WarmUp();
    if (op == "step") r = Step(f, std::move(fds));
    if (op == "exit") {
      *exit = true;
      r = json::object();
    }
    if (!r.ok()) return hbm::ErrorJson(r.status());
    json out = *r;
    out["ok"] = true;
    return out.dump();
  }

 private:
  StatusOr<json> Boot(const JsonFields& f) {
    if (inst_) return Status::FailedPrecondition("already booted");
    const json* config = nullptr;
    std::vector<std::vector<int>> cpus;
    InstanceOptions o;
    VMM_RETURN_IF_ERROR(f.Object("config", &config));
    VMM_RETURN_IF_ERROR(f.IntArrays("cpus", &cpus));
    VMM_RETURN_IF_ERROR(f.Double("compute_share", &o.compute_share, Need::kOptional));
    VMM_RETURN_IF_ERROR(f.Int("threads_per_device", &o.threads_per_device, Need::kOptional));
    VMM_ASSIGN_OR_RETURN(config_, ParseModelConfig(config->dump()));
    VMM_ASSIGN_OR_RETURN(inst_, LocalInstance::Boot(config_, std::move(cpus), o));
    return json{{"pid", getpid()}};
  }

  // Maps the mailbox the request carries, if it carries one (its metadata and one fd).
  Status ImportMailbox(const JsonFields& f, std::vector<vmm::UniqueFd>* fds) {
    if (!f.Has("mailbox")) return Status::Ok();
    std::string meta;
    VMM_RETURN_IF_ERROR(f.String("mailbox", &meta));
    if (fds->size() != 1) return Status::InvalidArgument("the mailbox needs its fd");
    VMM_ASSIGN_OR_RETURN(vmm::ExportedArena e, vmm::ExportedArena::ParseMetadata(meta));
    e.fd = std::move((*fds)[0]);
    VMM_ASSIGN_OR_RETURN(mailbox_, vmm::Arena::Import(std::move(e)));
    return Status::Ok();
  }

  // Finds each store in its device's KV arena (kv_base_, kv_blocks_).
  Status MapStores(const AttachRequest& a) {
    kv_base_.clear();
    kv_blocks_.clear();
    for (const AttachRequest::Store& st : a.stores) {
      auto att = atts_.find(st.device);
      const uint64_t kv_bytes = att == atts_.end() ? 0 : att->second->kv_bytes(st.device);
      if (att == atts_.end() || att->second->kv_base(st.device) == nullptr ||
          st.offset > kv_bytes || st.bytes > kv_bytes - st.offset) {
        return Status::InvalidArgument("attach: device " + std::to_string(st.device) +
                                       " has no KV arena holding the store at offset " +
                                       std::to_string(st.offset));
      }
      kv_base_.push_back(att->second->kv_base(st.device) + st.offset);
      kv_blocks_.push_back(static_cast<int64_t>(st.bytes / geometry_.block_bytes()));
    }
    if (kv_base_.size() != a.devices.size()) {
      return Status::InvalidArgument("attach: one KV store per device needed");
    }
    return Status::Ok();
  }

  // Attach is mapping only (#19): the page tables of every dense tensor the ranks read and of
  // the KV stores they write are filled here (the experts' slots are populated when mapped), so
  // that the first step after a switch runs at full speed without a warm-up step. Returns the
  // bytes populated.
  StatusOr<uint64_t> Populate(const AttachRequest& a) {
    uint64_t bytes = 0;
    for (int d : a.devices) {
      std::set<std::pair<int, uint64_t>> done;  // (arena, extent offset): dense tensors share one
      for (const TensorSpec& sp : ExpectedTensors(config_)) {
        if (sp.expert >= 0) continue;
        const hbm::TensorView* v = atts_[d]->Find(a.prefix + sp.name, d);
        if (v == nullptr) continue;  // FromAttachment names a missing tensor
        if (!done.insert({v->arena, v->extent_offset}).second) continue;
        VMM_RETURN_IF_ERROR(atts_[d]->Populate(*v));
        bytes += v->extent_size;
      }
    }
    for (const AttachRequest::Store& st : a.stores) {
      VMM_RETURN_IF_ERROR(atts_[st.device]->PopulateKv(st.device, st.offset, st.bytes));
      bytes += st.bytes;
    }
    return bytes;
  }

  StatusOr<json> Attach(const JsonFields& f, std::vector<vmm::UniqueFd> fds) {
    if (!inst_) return Status::FailedPrecondition("attach before boot");
    AttachRequest a;
    std::map<std::string, double> parts;  // AttachStats::phase_s
    Laps laps;
    VMM_RETURN_IF_ERROR(ParseAttach(f, &a));
    VMM_RETURN_IF_ERROR(ImportMailbox(f, &fds));
    VMM_ASSIGN_OR_RETURN(client_, hbm::HmmClient::Connect(a.socket));
    laps.Mark("connect", &parts);
    // Only the instance's own devices: their weights and experts read-only, their KV arenas
    // read-write.
    atts_.clear();
    for (int d : a.devices) {
      VMM_ASSIGN_OR_RETURN(atts_[d], client_->Attach(d, /*writable=*/false, /*kv=*/true));
    }
    laps.Mark("hmm_attach", &parts);
    VMM_RETURN_IF_ERROR(a.placement.Validate());
    geometry_ = KvGeometryFor(config_, a.block_tokens);
    VMM_RETURN_IF_ERROR(MapStores(a));
    std::vector<std::unique_ptr<WeightSource>> sources;
    uint64_t mapped = 0;
    int slots = 0;
    for (int d : a.devices) {
      DeviceWeightsStats ws;
      VMM_ASSIGN_OR_RETURN(
          auto w, DeviceWeights::FromAttachment(*atts_[d], config_, d, a.placement, a.prefix, &ws));
      mapped += ws.bytes_mapped;
      slots += ws.slots;
      sources.push_back(std::move(w));
    }
    laps.Mark("weights", &parts);
    VMM_ASSIGN_OR_RETURN(const uint64_t populated, Populate(a));
    laps.Mark("populate", &parts);
    VMM_RETURN_IF_ERROR(inst_->AttachSources(a.devices, std::move(sources), a.placement));
    laps.Mark("sources", &parts);
    return json{{"bytes_mapped", mapped},
                {"slots", slots},
                {"bytes_populated", populated},
                {"phases", parts}};
  }

  StatusOr<json> WarmUp() {
    if (!inst_) return Status::FailedPrecondition("warm-up before boot");
    VMM_RETURN_IF_ERROR(inst_->WarmUp());
    return json::object();
  }

  StatusOr<json> Step(const JsonFields& f, std::vector<vmm::UniqueFd> fds) {
    if (!inst_ || !inst_->attached()) return Status::FailedPrecondition("step before attach");
    uint64_t request_bytes = 0, logits_offset = 0;
    VMM_RETURN_IF_ERROR(f.Uint("request_bytes", &request_bytes));
    VMM_RETURN_IF_ERROR(f.Uint("logits_offset", &logits_offset));
    VMM_RETURN_IF_ERROR(ImportMailbox(f, &fds));
    if (!mailbox_) return Status::FailedPrecondition("step: no mailbox");
    const int64_t vocab = config_.vocab_size;
    uint8_t* box = mailbox_->direct_map();
    std::vector<StepMailbox::Sequence> in;
    StepMailbox::Layout layout;
    VMM_RETURN_IF_ERROR(StepMailbox::Read(box, mailbox_->capacity_bytes(), request_bytes,
                                          logits_offset, vocab, &in, &layout));
    std::vector<std::unique_ptr<kv::MappedSequence>> seqs;
    std::vector<SequenceInput> batch;
    for (const StepMailbox::Sequence& s : in) {
      if (s.rank >= static_cast<int64_t>(kv_base_.size())) {
        return Status::InvalidArgument("step: rank " + std::to_string(s.rank) +
                                       " of an instance of " + std::to_string(kv_base_.size()));
      }
      for (kv::BlockId b : s.blocks) {
        if (b < 0 || b >= kv_blocks_[s.rank]) {
          return Status::InvalidArgument("step: block " + std::to_string(b) + " outside the store");
        }
      }
      seqs.push_back(std::make_unique<kv::MappedSequence>(
          kv_base_[s.rank], geometry_, std::vector<kv::BlockId>(s.blocks.begin(), s.blocks.end()),
          s.length));
      SequenceInput si;
      si.kv = seqs.back().get();
      si.tokens.assign(s.tokens.begin(), s.tokens.end());
      si.rank = static_cast<int>(s.rank);
      batch.push_back(std::move(si));
    }
    VMM_ASSIGN_OR_RETURN(auto logits, inst_->Step(batch));
    for (size_t i = 0; i < logits.size(); ++i) {
      std::memcpy(StepMailbox::Logits(box, layout, vocab, i), logits[i].data(),
                  vocab * sizeof(float));
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
  // Until the first message, by the parent-death signal; from then on by the control socket,
  // which closes when the coordinator dies (its end is close-on-exec, so no other child holds
  // it). The signal is cleared then because Linux sends it when the *thread* that spawned this
  // process ends, and a coordinator may boot instances from a thread that ends before they do
  // (the HTTP service's scale thread).
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() == 1) return 1;
  prctl(PR_SET_NAME, "emoe-instance");
  Host host;
  for (bool first = true;; first = false) {
    auto m = vmm::RecvFds(control_fd);
    if (!m.ok()) return m.status().code() == vmm::StatusCode::kUnavailable ? 0 : 2;
    if (first) prctl(PR_SET_PDEATHSIG, 0);
    bool exit = false;
    const std::string reply = host.Handle(m->payload, std::move(m->fds), &exit);
    if (!vmm::SendFds(control_fd, reply, {}).ok()) return 3;
    if (exit) return 0;
  }
}

}  // namespace emoe::engine
