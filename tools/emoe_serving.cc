// emoe's serving (emoe_serving.h).
#include "tools/emoe_serving.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <thread>
#include <vector>

#include "engine/deployment.h"
#include "engine/weight_sources.h"
#include "experts/placement.h"
#include "hbm/client.h"
#include "tools/emoe_report.h"
#include "tools/preset_tokenizer.h"

namespace emoe::tools {
namespace {

using engine::Request;
using engine::RequestResult;
using vmm::Status;
using vmm::StatusOr;

// Everything that serves, kept alive together; members are destroyed in reverse order (the
// stores and the instance before the memory they use).
struct Serving {
  std::unique_ptr<hbm::Hmm> hmm;
  std::unique_ptr<hbm::HmmClient> client;
  std::unique_ptr<hbm::Attachment> attachment;
  std::vector<std::unique_ptr<hbm::Device>> kv_devices;
  std::unique_ptr<engine::LocalInstance> instance;
  std::vector<std::unique_ptr<kv::KvStore>> stores;
  std::vector<kv::KvStore*> store_ptrs;

  Status AddStore(hbm::Device& device, const engine::ModelConfig& config, int block_tokens) {
    VMM_ASSIGN_OR_RETURN(auto s,
                         kv::KvStore::Create(device, engine::KvGeometryFor(config, block_tokens)));
    store_ptrs.push_back(s.get());
    stores.push_back(std::move(s));
    return Status::Ok();
  }
};

// A model generated into a directory nobody asked to keep: removed when this goes.
struct RemoveAtExit {
  std::string path;
  ~RemoveAtExit() {
    std::error_code ec;
    if (!path.empty()) std::filesystem::remove_all(path, ec);
  }
};

// Weights from a running hmmd (zero-copy, read-only); KV in local per-device arenas.
Status AttachToHmmd(const EmoeOptions& o, const engine::ModelConfig& config, Serving* s) {
  VMM_ASSIGN_OR_RETURN(s->client, hbm::HmmClient::Connect(o.hmmd_socket));
  VMM_ASSIGN_OR_RETURN(s->attachment, s->client->Attach(-1, /*writable=*/false));
  int n = 0;
  for (const auto& t : s->attachment->tensors()) n = std::max(n, t.device + 1);
  if (n == 0) return Status::NotFound("hmmd serves no tensors");
  const auto cpus = vmm::NumaNodes()[0].cpus;
  const uint64_t kv_flag = o.hmm.memory.usage_bytes[static_cast<int>(hbm::Usage::kKv)];
  const uint64_t kv = kv_flag ? kv_flag : 64ull << 20;
  std::vector<std::unique_ptr<engine::WeightSource>> sources;
  std::vector<std::vector<int>> rank_cpus;
  for (int d = 0; d < n; ++d) {
    sources.push_back(std::make_unique<engine::AttachmentWeightSource>(s->attachment.get(), d));
    rank_cpus.push_back({cpus[d % cpus.size()]});
    hbm::DeviceSpec spec;
    spec.id = d;
    spec.node = vmm::NumaNodes()[0].id;
    spec.cpus = rank_cpus.back();
    spec.capacity_bytes = kv;
    hbm::DeviceMemoryOptions m = o.hmm.memory;
    m.usage_bytes = {0, 0, kv};
    VMM_ASSIGN_OR_RETURN(auto dev, hbm::Device::Create(spec, m));
    s->kv_devices.push_back(std::move(dev));
    VMM_RETURN_IF_ERROR(s->AddStore(*s->kv_devices.back(), config, o.block_tokens));
  }
  VMM_ASSIGN_OR_RETURN(s->instance,
                       engine::LocalInstance::CreateFromSources(
                           std::move(sources), std::move(rank_cpus), config, o.instance));
  std::fprintf(stderr, "attached to hmmd at %s: %zu tensors on %d devices, %.1f MiB mapped\n",
               o.hmmd_socket.c_str(), s->attachment->tensors().size(), n,
               s->attachment->mapped_bytes() / 1048576.0);
  return Status::Ok();
}

// The in-process HMM's options: arenas sized from the model where the flags left them 0.
StatusOr<hbm::HmmOptions> SizedHmmOptions(const EmoeOptions& o, const engine::ModelConfig& config,
                                          const hbm::Checkpoint& ckpt) {
  hbm::HmmOptions h = o.hmm;
  const int n = h.devices.devices_per_node;
  const engine::ArenaBytes model = engine::ModelArenaBytes(config, ckpt, n);
  auto& usage = h.memory.usage_bytes;
  uint64_t& weights = usage[static_cast<int>(hbm::Usage::kWeights)];
  uint64_t& experts = usage[static_cast<int>(hbm::Usage::kExperts)];
  uint64_t& kv = usage[static_cast<int>(hbm::Usage::kKv)];
  if (weights == 0) weights = model.weights_bytes;
  if (experts == 0) experts = model.experts_bytes;
  if (kv == 0) {  // the device memory left after the weights (at most 1 GiB)
    VMM_ASSIGN_OR_RETURN(auto plan, hbm::PlanDevices(h.devices, vmm::NumaNodes()));
    VMM_ASSIGN_OR_RETURN(kv, engine::KvBytesLeft(plan[0].capacity_bytes, weights + experts));
  }
  if (h.devices.capacity_bytes == 0) h.devices.capacity_bytes = weights + experts + kv;
  return h;
}

// The weights in an HMM of this process: attention on every device, each expert only on the
// device that owns it (engine::DeploymentTable under the initial placement).
Status LoadInProcess(const EmoeOptions& o, const std::string& model,
                     const engine::ModelConfig& config, const hbm::Checkpoint& ckpt, Serving* s) {
  VMM_ASSIGN_OR_RETURN(const hbm::HmmOptions h, SizedHmmOptions(o, config, ckpt));
  VMM_ASSIGN_OR_RETURN(s->hmm, hbm::Hmm::Create(h));
  std::vector<int> devices;
  for (int d = 0; d < s->hmm->num_devices(); ++d) devices.push_back(d);
  VMM_ASSIGN_OR_RETURN(auto placement, experts::InitialPlacement(config.num_hidden_layers,
                                                                 config.num_experts, devices));
  const hbm::PlacementTable table =
      engine::DeploymentTable(engine::ExpectedTensors(config), devices, placement);
  VMM_ASSIGN_OR_RETURN(auto where, hbm::PlacementFromTable(ckpt, table, s->hmm->num_devices()));
  VMM_ASSIGN_OR_RETURN(auto load, s->hmm->LoadCheckpoint(ckpt, where));
  std::fprintf(stderr, "loaded %s: %s\n", model.c_str(), load.ToString().c_str());
  VMM_ASSIGN_OR_RETURN(s->instance,
                       engine::LocalInstance::Create(s->hmm.get(), config, devices, o.instance));
  for (int d : devices) VMM_RETURN_IF_ERROR(s->AddStore(s->hmm->device(d), config, o.block_tokens));
  return Status::Ok();
}

// Submits `reqs` and steps until every one finished; with `stream`, prints the one prompt and
// its text as it comes (decoded by `text`). A request the scheduler refuses is a result too,
// rejected (its finish_reason says why). *results gets the results sorted by id (on an error,
// those finished before it), *wall_s the wall time.
Status Serve(const EmoeOptions& o, Serving* s, const std::vector<Request>& reqs,
             const ModelText& text, bool stream, std::vector<RequestResult>* results,
             double* wall_s) {
  const auto start = std::chrono::steady_clock::now();
  auto now = [&] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  };
  engine::SchedulerOptions so = o.scheduler;
  so.clock = now;
  VMM_RETURN_IF_ERROR(so.Validate());
  engine::Scheduler sched(s->instance.get(), s->store_ptrs, so);
  std::vector<RequestResult> rejected;
  for (const Request& r : reqs) {
    if (Status st = sched.Submit(r); !st.ok()) {
      RequestResult res;
      res.id = r.id;
      res.arrival_s = res.first_token_s = res.finish_s = r.arrival_s;
      res.finish_reason = "rejected: " + st.ToString();
      rejected.push_back(std::move(res));
    }
  }
  std::unique_ptr<TextStream> out;
  if (stream && rejected.empty()) {
    std::printf("%s", text.DecodePrompt(reqs[0].prompt).c_str());
    out = text.NewStream(reqs[0].prompt);
  }
  Status status;
  while (!sched.idle() && status.ok()) {
    auto n = sched.Step(now(), [&](int64_t, int32_t tok) {
      if (out != nullptr) {
        std::printf("%s", out->Add(tok).c_str());
        std::fflush(stdout);
      }
    });
    if (!n.ok()) status = n.status();
    if (n.ok() && *n == 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  *wall_s = now();
  *results = sched.TakeFinished();
  results->insert(results->end(), rejected.begin(), rejected.end());
  std::sort(results->begin(), results->end(),
            [](const RequestResult& a, const RequestResult& b) { return a.id < b.id; });
  if (out != nullptr) std::printf("%s\n", out->Finish().c_str());
  return status;
}

// The weights on devices and an instance over them (Serving), for `model`.
Status Deploy(const EmoeOptions& o, const std::string& model, engine::ModelConfig* config,
              Serving* s) {
  VMM_ASSIGN_OR_RETURN(*config, engine::LoadModelConfig(model));
  VMM_ASSIGN_OR_RETURN(const hbm::Checkpoint ckpt, hbm::OpenCheckpoint(model));
  VMM_RETURN_IF_ERROR(engine::ValidateCheckpoint(*config, ckpt));
  if (!o.hmmd_socket.empty()) return AttachToHmmd(o, *config, s);
  return LoadInProcess(o, model, *config, ckpt, s);
}

int Rejected(const std::vector<RequestResult>& results) {
  return static_cast<int>(
      std::count_if(results.begin(), results.end(), [](const auto& r) { return !r.served(); }));
}

}  // namespace

StatusOr<int> RunEmoe(const EmoeOptions& o) {
  std::string model = o.model;
  RemoveAtExit scratch;  // a generated model nobody asked to keep
  std::vector<Request> reqs;
  std::vector<RequestResult> results;
  std::unique_ptr<ModelText> text;
  double wall_s = 0;
  const bool prompts = o.workload.kind.empty();
  Status status = [&]() -> Status {
    if (!o.preset.empty()) {
      if (model.empty()) {
        model = scratch.path = "/tmp/emoe-" + std::to_string(getpid()) + "-" + o.preset;
      }
      VMM_ASSIGN_OR_RETURN(auto cfg, engine::PresetConfig(o.preset));
      VMM_RETURN_IF_ERROR(engine::GenerateModel(cfg, {}, model));
      VMM_RETURN_IF_ERROR(WritePresetTokenizer(o.preset, DefaultTokenizerDir(o.preset), model));
    }
    // The text before the weights: a tokenizer that does not fit the model fails fast.
    VMM_ASSIGN_OR_RETURN(const engine::ModelConfig declared, engine::LoadModelConfig(model));
    VMM_ASSIGN_OR_RETURN(text, ModelText::ForModel(model, declared.vocab_size));
    std::fprintf(stderr, "%s\n", text->start_line().c_str());
    VMM_ASSIGN_OR_RETURN(reqs, MakeRequests(o.workload, *text));
    engine::ModelConfig config;
    Serving s;
    VMM_RETURN_IF_ERROR(Deploy(o, model, &config, &s));
    return Serve(o, &s, reqs, *text, prompts && reqs.size() == 1, &results, &wall_s);
  }();
  if (prompts) {
    if (status.ok()) PrintPromptResults(results, reqs, *text, reqs.size() == 1);
  } else {
    // The report also when the run failed: what was measured, and the error.
    const nlohmann::json rep = WorkloadReport(model, o.hmm.devices.devices_per_node,
                                              o.workload.kind, results, reqs, wall_s, status);
    if (status.ok()) std::printf("%s\n", rep.dump(2).c_str());
    if (!o.json.empty()) {
      Status w = WriteReport(rep, o.json);
      if (status.ok()) status = w;
    }
  }
  VMM_RETURN_IF_ERROR(status);
  const int rejected = Rejected(results);
  if (rejected > 0)
    std::fprintf(stderr, "emoe: %d of %zu requests rejected\n", rejected, reqs.size());
  return rejected;
}

}  // namespace emoe::tools
