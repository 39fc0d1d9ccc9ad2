// emoe: the MoE inference engine's command line.
//
//   emoe --model=DIR --prompt="Hello" [--max_new_tokens=32] [--devices=2]      generate
//   emoe --model=DIR --workload=trace --trace=FILE.csv [--time_scale=10] [--json=report.json]
//   emoe --model=DIR --workload=synthetic --num_requests=64 --rate=20
//   emoe --preset=tiny ...           generate the model into a scratch directory first
//
// The weights live in an in-process HMM (devices, arenas, io_uring loading, P2P replicas); the
// instance attaches to them (DP attention + EP experts over --devices devices) and a continuous-
// batching scheduler serves the prompts or the workload. Token ids are bytes (byte-level
// tokenizer, vocabulary 256).
#include <gflags/gflags.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <thread>

#include "engine/instance.h"
#include "engine/scheduler.h"
#include "engine/weight_sources.h"
#include "experts/placement.h"
#include "hbm/client.h"
#include "hbm/hmm.h"

DEFINE_string(model, "", "model directory (config.json + safetensors)");
DEFINE_string(preset, "",
              "generate this preset (see gen_model --list_presets) into --model, or "
              "into a scratch directory when --model is empty");
DEFINE_int32(devices, 1, "devices of the instance (DP ranks; experts are split over them)");
DEFINE_uint64(device_capacity_mb, 0,
              "memory per device, MiB (0: weights + experts + KV, or the node's memory / devices "
              "when --kv_mb is 0)");
DEFINE_uint64(weights_mb, 0, "weights arena per device, MiB (0: sized from the checkpoint)");
DEFINE_uint64(kv_mb, 0,
              "KV arena per device, MiB (0: the device memory left after the weights, at most "
              "1 GiB; 64 MiB when attached to hmmd)");
DEFINE_string(page_size, "auto", "arena pages: auto, hugetlb, thp, 4k");
DEFINE_int32(block_tokens, 16, "tokens per KV block");
DEFINE_int32(max_tokens_per_step, 512, "token budget of one batch step");
DEFINE_int32(max_batch, 64, "sequences per step");
DEFINE_string(prompt, "", "prompt text; several prompts separated by '|'");
DEFINE_int32(max_new_tokens, 32, "tokens to generate per prompt");
DEFINE_double(temperature, 0.0, "0: greedy; otherwise sampling temperature");
DEFINE_double(top_p, 1.0, "nucleus sampling mass");
DEFINE_uint64(seed, 1, "sampling and synthetic-workload seed");
DEFINE_string(workload, "", "'trace' or 'synthetic' to serve a workload instead of prompts");
DEFINE_string(trace, "data/traces/azure_llm_2023_conv.csv",
              "trace CSV (TIMESTAMP,ContextTokens,GeneratedTokens); a relative path is relative "
              "to the current directory: the default is the Azure trace shipped in the "
              "repository, found when emoe runs from the repository root");
DEFINE_double(time_scale, 1.0, "trace arrivals are divided by this (10: ten times faster)");
DEFINE_int32(num_requests, 64, "requests taken from the trace, or made up");
DEFINE_double(rate, 10.0, "synthetic arrivals per second (Poisson)");
DEFINE_int32(max_prompt_tokens, 256, "prompt lengths are clipped to this");
DEFINE_int32(max_output_tokens, 64, "output lengths are clipped to this");
DEFINE_string(json, "", "write the workload report as JSON here");
DEFINE_string(hmmd_socket, "",
              "attach to a running hmmd (weights zero-copy, read-only) instead of loading them; "
              "--model still gives config.json");
DEFINE_double(compute_share, 1.0,
              "device compute share in (0, 1] (DESIGN 4.4): each device idles (1/share - 1) "
              "times its compute after each step, like a slower accelerator");

namespace {

using emoe::engine::Request;
using emoe::engine::RequestResult;
namespace fs = std::filesystem;

std::vector<int32_t> Encode(const std::string& text) {
  return std::vector<int32_t>(text.begin(), text.end());  // bytes as ids (0..255)
}

std::string Decode(const std::vector<int32_t>& ids) {
  std::string out;
  for (int32_t id : ids) {
    if (id >= 32 && id < 127) {
      out.push_back(static_cast<char>(id));
    } else {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\x%02x", id & 0xff);
      out += buf;
    }
  }
  return out;
}

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p / 100.0 * v.size()))];
}

vmm::StatusOr<std::vector<Request>> TraceRequests(std::mt19937_64* rng) {
  std::ifstream in(FLAGS_trace);
  if (!in) return vmm::Status::NotFound("trace " + FLAGS_trace + " cannot be opened");
  std::string line;
  std::getline(in, line);  // header
  std::vector<Request> out;
  double first = -1;
  while (static_cast<int>(out.size()) < FLAGS_num_requests && std::getline(in, line)) {
    int hh, mm, ctx, gen;
    double ss;
    if (std::sscanf(line.c_str(), "%*d-%*d-%*d %d:%d:%lf,%d,%d", &hh, &mm, &ss, &ctx, &gen) != 5) {
      return vmm::Status::DataLoss(FLAGS_trace + ": malformed line '" + line + "'");
    }
    const double t = hh * 3600 + mm * 60 + ss;
    if (first < 0) first = t;
    Request r;
    r.id = out.size();
    r.arrival_s = (t - first) / FLAGS_time_scale;
    const int plen = std::clamp(ctx, 1, FLAGS_max_prompt_tokens);
    for (int i = 0; i < plen; ++i) r.prompt.push_back(static_cast<int32_t>((*rng)() % 256));
    r.max_new_tokens = std::clamp(gen, 1, FLAGS_max_output_tokens);
    out.push_back(std::move(r));
  }
  return out;
}

std::vector<Request> SyntheticRequests(std::mt19937_64* rng) {
  std::vector<Request> out;
  std::exponential_distribution<double> gap(FLAGS_rate);
  double t = 0;
  for (int i = 0; i < FLAGS_num_requests; ++i) {
    Request r;
    r.id = i;
    r.arrival_s = t;
    t += gap(*rng);
    const int plen = 1 + (*rng)() % FLAGS_max_prompt_tokens;
    for (int k = 0; k < plen; ++k) r.prompt.push_back(static_cast<int32_t>((*rng)() % 256));
    r.max_new_tokens = 1 + (*rng)() % FLAGS_max_output_tokens;
    out.push_back(std::move(r));
  }
  return out;
}

int Fail(const vmm::Status& s) {
  std::fprintf(stderr, "emoe: %s\n", s.ToString().c_str());
  return 1;
}

}  // namespace

struct RemoveAtExit {
  std::string* path;
  ~RemoveAtExit() {
    std::error_code ec;
    if (!path->empty()) fs::remove_all(*path, ec);
  }
};

int main(int argc, char** argv) {
  gflags::SetUsageMessage("MoE inference engine: generate from prompts or serve a workload");
  gflags::ParseCommandLineFlags(&argc, &argv, true);
  std::string model = FLAGS_model;
  std::string scratch;  // a generated model nobody asked to keep: removed at exit
  RemoveAtExit cleanup{&scratch};
  if (!FLAGS_preset.empty()) {
    if (model.empty())
      model = scratch = "/tmp/emoe-" + std::to_string(getpid()) + "-" + FLAGS_preset;
    auto cfg = emoe::engine::PresetConfig(FLAGS_preset);
    if (!cfg.ok()) return Fail(cfg.status());
    if (auto s = emoe::engine::GenerateModel(*cfg, {}, model); !s.ok()) return Fail(s);
  }
  if (model.empty()) {
    std::fprintf(stderr, "emoe: --model or --preset is required (see --help)\n");
    return 2;
  }
  if (FLAGS_devices < 1 || FLAGS_devices > 64) {
    std::fprintf(stderr, "emoe: --devices must be 1..64\n");
    return 2;
  }
  auto config = emoe::engine::LoadModelConfig(model);
  if (!config.ok()) return Fail(config.status());
  auto ckpt = emoe::hbm::OpenCheckpoint(model);
  if (!ckpt.ok()) return Fail(ckpt.status());
  if (auto s = emoe::engine::ValidateCheckpoint(*config, *ckpt); !s.ok()) return Fail(s);
  auto policy = vmm::ParsePageSizePolicy(FLAGS_page_size);
  if (!policy.ok()) return Fail(policy.status());

  std::unique_ptr<emoe::hbm::Hmm> hmm_owner;
  std::unique_ptr<emoe::hbm::HmmClient> client;
  std::unique_ptr<emoe::hbm::Attachment> attachment;
  std::vector<std::unique_ptr<emoe::hbm::Device>> kv_devices;
  std::unique_ptr<emoe::engine::Instance> instance;
  std::vector<std::unique_ptr<emoe::kv::KvStore>> stores;
  std::vector<emoe::kv::KvStore*> store_ptrs;
  emoe::engine::InstanceOptions io;
  io.compute_share = FLAGS_compute_share;
  if (!FLAGS_hmmd_socket.empty()) {
    // Weights from a running hmmd (zero-copy, read-only); KV in local per-device arenas.
    auto c = emoe::hbm::HmmClient::Connect(FLAGS_hmmd_socket);
    if (!c.ok()) return Fail(c.status());
    client = std::move(*c);
    auto att = client->Attach(-1, /*writable=*/false);
    if (!att.ok()) return Fail(att.status());
    attachment = std::move(*att);
    int n = 0;
    for (const auto& t : attachment->tensors()) n = std::max(n, t.device + 1);
    if (n == 0) return Fail(vmm::Status::NotFound("hmmd serves no tensors"));
    const auto cpus = vmm::NumaNodes()[0].cpus;
    std::vector<std::unique_ptr<emoe::engine::WeightSource>> sources;
    std::vector<std::vector<int>> rank_cpus;
    for (int d = 0; d < n; ++d) {
      sources.push_back(
          std::make_unique<emoe::engine::AttachmentWeightSource>(attachment.get(), d));
      rank_cpus.push_back({cpus[d % cpus.size()]});
      emoe::hbm::DeviceSpec spec;
      spec.id = d;
      spec.node = vmm::NumaNodes()[0].id;
      spec.cpus = rank_cpus.back();
      const uint64_t kv = (FLAGS_kv_mb ? FLAGS_kv_mb : 64) << 20;
      spec.capacity_bytes = kv;
      emoe::hbm::DeviceMemoryOptions m;
      m.usage_bytes = {0, 0, kv};
      m.page_size = *policy;
      auto dev = emoe::hbm::Device::Create(spec, m);
      if (!dev.ok()) return Fail(dev.status());
      kv_devices.push_back(std::move(*dev));
      auto s = emoe::kv::KvStore::Create(*kv_devices.back(),
                                         emoe::engine::KvGeometryFor(*config, FLAGS_block_tokens));
      if (!s.ok()) return Fail(s.status());
      store_ptrs.push_back(s->get());
      stores.push_back(std::move(*s));
    }
    auto inst = emoe::engine::Instance::CreateFromSources(std::move(sources), std::move(rank_cpus),
                                                          *config, io);
    if (!inst.ok()) return Fail(inst.status());
    instance = std::move(*inst);
    std::fprintf(stderr, "attached to hmmd at %s: %zu tensors on %d devices, %.1f MiB mapped\n",
                 FLAGS_hmmd_socket.c_str(), attachment->tensors().size(), n,
                 attachment->mapped_bytes() / 1048576.0);
  } else {
    // Devices: --devices slices of the first NUMA node (or one per node when there are enough).
    emoe::hbm::HmmOptions o;
    const auto nodes = vmm::NumaNodes();
    o.devices.devices_per_node = FLAGS_devices;
    o.devices.nodes = {nodes[0].id};
    o.devices.capacity_bytes = FLAGS_device_capacity_mb << 20;
    // Arena sizes from the checkpoint: every device holds the non-expert tensors and its share of
    // the experts (one extent per expert, rounded to 2 MiB pages in the worst case).
    uint64_t dense = 0, expert_bytes = 0;
    {
      std::map<std::string, int> is_expert;
      for (const auto& s : emoe::engine::ExpectedTensors(*config)) is_expert[s.name] = s.expert;
      for (const auto& t : ckpt->tensors) {
        (is_expert[t.name] >= 0 ? expert_bytes : dense) += t.size_bytes + 8192;
      }
    }
    const uint64_t per_device_experts =
        expert_bytes / FLAGS_devices +
        (config->num_experts / FLAGS_devices + 1) * config->num_hidden_layers * (2ull << 20);
    const uint64_t weights = FLAGS_weights_mb ? FLAGS_weights_mb << 20 : dense + (4ull << 20);
    // KV: what --kv_mb says, or the device memory left after the weights (at most 1 GiB).
    uint64_t kv = FLAGS_kv_mb << 20;
    if (kv == 0) {
      auto plan = emoe::hbm::PlanDevices(o.devices, nodes);
      if (!plan.ok()) return Fail(plan.status());
      const uint64_t cap = (*plan)[0].capacity_bytes, used = weights + per_device_experts;
      if (cap <= used + (1 << 20)) {
        return Fail(vmm::Status::ResourceExhausted("the weights need " +
                                                   std::to_string(used >> 20) +
                                                   " MiB per device, leaving no KV "
                                                   "memory in a device of " +
                                                   std::to_string(cap >> 20) + " MiB"));
      }
      kv = std::min<uint64_t>(cap - used, 1ull << 30);
    }
    o.memory.usage_bytes = {weights, per_device_experts, kv};
    o.memory.page_size = *policy;
    if (o.devices.capacity_bytes == 0) {
      o.devices.capacity_bytes =
          o.memory.usage_bytes[0] + o.memory.usage_bytes[1] + o.memory.usage_bytes[2];
    }
    auto hmm = emoe::hbm::Hmm::Create(o);
    if (!hmm.ok()) return Fail(hmm.status());
    hmm_owner = std::move(*hmm);
    std::vector<int> devices;
    for (int d = 0; d < hmm_owner->num_devices(); ++d) devices.push_back(d);
    // Attention weights on every device; each expert only on the device that owns it.
    auto owner = emoe::experts::BalancedPlacement(config->num_experts, devices.size());
    if (!owner.ok()) return Fail(owner.status());
    std::vector<emoe::engine::TensorSpec> specs = emoe::engine::ExpectedTensors(*config);
    std::map<std::string, int> expert_of;
    std::map<std::string, size_t> spec_index;
    for (size_t i = 0; i < specs.size(); ++i) {
      expert_of[specs[i].name] = specs[i].expert;
      spec_index[specs[i].name] = i;
    }
    auto placement = [&](const emoe::hbm::TensorInfo& t) {
      const int e = expert_of.count(t.name) ? expert_of[t.name] : -1;
      if (e >= 0) {  // one extent per expert, on its owner: the unit a redistribution remaps
        const auto& spec = specs[spec_index[t.name]];
        return emoe::hbm::PlacementDecision{
            emoe::hbm::Usage::kExperts,
            {(*owner)[e]},
            "layer" + std::to_string(spec.layer) + ".expert" + std::to_string(e)};
      }
      return emoe::hbm::PlacementDecision{emoe::hbm::Usage::kWeights, devices, ""};
    };
    auto load = hmm_owner->LoadCheckpoint(*ckpt, placement);
    if (!load.ok()) return Fail(load.status());
    std::fprintf(stderr, "loaded %s: %s\n", model.c_str(), load->ToString().c_str());
    auto inst = emoe::engine::Instance::Create(hmm_owner.get(), *config, devices, io);
    if (!inst.ok()) return Fail(inst.status());
    instance = std::move(*inst);
    for (int d : devices) {
      auto s = emoe::kv::KvStore::Create(hmm_owner->device(d),
                                         emoe::engine::KvGeometryFor(*config, FLAGS_block_tokens));
      if (!s.ok()) return Fail(s.status());
      store_ptrs.push_back(s->get());
      stores.push_back(std::move(*s));
    }
  }
  const auto start = std::chrono::steady_clock::now();
  auto now = [&] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  };
  emoe::engine::SchedulerOptions so;
  so.clock = now;
  so.max_tokens_per_step = FLAGS_max_tokens_per_step;
  so.max_batch = FLAGS_max_batch;
  if (auto s = so.Validate(); !s.ok()) return Fail(s);
  emoe::engine::Scheduler sched(instance.get(), store_ptrs, so);

  std::mt19937_64 rng(FLAGS_seed);
  std::vector<Request> reqs;
  if (FLAGS_workload.empty()) {
    if (FLAGS_prompt.empty()) {
      std::fprintf(stderr, "emoe: give --prompt or --workload (see --help)\n");
      return 2;
    }
    std::stringstream ss(FLAGS_prompt);
    std::string p;
    while (std::getline(ss, p, '|')) {
      Request r;
      r.id = reqs.size();
      r.prompt = Encode(p);
      r.max_new_tokens = FLAGS_max_new_tokens;
      r.temperature = FLAGS_temperature;
      r.top_p = FLAGS_top_p;
      r.seed = FLAGS_seed + r.id;
      reqs.push_back(std::move(r));
    }
  } else if (FLAGS_workload == "trace") {
    auto t = TraceRequests(&rng);
    if (!t.ok()) return Fail(t.status());
    reqs = std::move(*t);
  } else if (FLAGS_workload == "synthetic") {
    reqs = SyntheticRequests(&rng);
  } else {
    std::fprintf(stderr, "emoe: --workload must be trace or synthetic\n");
    return 2;
  }
  for (const Request& r : reqs) {
    if (auto s = sched.Submit(r); !s.ok()) return Fail(s);
  }
  const bool stream = FLAGS_workload.empty() && reqs.size() == 1;
  if (stream) std::printf("%s", Decode(reqs[0].prompt).c_str());
  while (!sched.idle()) {
    auto n = sched.Step(now(), [&](int64_t, int32_t tok) {
      if (stream) {
        std::printf("%s", Decode({tok}).c_str());
        std::fflush(stdout);
      }
    });
    if (!n.ok()) return Fail(n.status());
    if (*n == 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));  // next arrival
  }
  const double wall = now();
  auto results = sched.TakeFinished();
  std::sort(results.begin(), results.end(),
            [](const RequestResult& a, const RequestResult& b) { return a.id < b.id; });
  if (stream) std::printf("\n");
  if (FLAGS_workload.empty()) {
    for (const RequestResult& r : results) {
      if (!stream) {
        std::printf("[%lld] %s -> %s\n", static_cast<long long>(r.id),
                    Decode(reqs[r.id].prompt).c_str(), Decode(r.output).c_str());
      }
      std::printf("[%lld] tokens:", static_cast<long long>(r.id));
      for (int32_t t : r.output) std::printf(" %d", t);
      std::printf("\n[%lld] ttft %.1f ms, tpot %.2f ms, e2e %.1f ms\n",
                  static_cast<long long>(r.id), r.ttft_s() * 1e3, r.tpot_s() * 1e3,
                  r.e2e_s() * 1e3);
    }
    return 0;
  }
  std::vector<double> ttft, tpot, e2e;
  uint64_t out_tokens = 0, in_tokens = 0, preempted = 0;
  for (const RequestResult& r : results) {
    ttft.push_back(r.ttft_s());
    tpot.push_back(r.tpot_s());
    e2e.push_back(r.e2e_s());
    out_tokens += r.output.size();
    in_tokens += reqs[r.id].prompt.size();
    preempted += r.preemptions;
  }
  nlohmann::json rep = {{"model", model},
                        {"devices", FLAGS_devices},
                        {"workload", FLAGS_workload},
                        {"requests", results.size()},
                        {"wall_s", wall},
                        {"requests_per_s", results.size() / wall},
                        {"output_tokens_per_s", out_tokens / wall},
                        {"prompt_tokens", in_tokens},
                        {"output_tokens", out_tokens},
                        {"preemptions", preempted},
                        {"ttft_ms",
                         {{"p50", Percentile(ttft, 50) * 1e3},
                          {"p90", Percentile(ttft, 90) * 1e3},
                          {"p99", Percentile(ttft, 99) * 1e3}}},
                        {"tpot_ms",
                         {{"p50", Percentile(tpot, 50) * 1e3},
                          {"p90", Percentile(tpot, 90) * 1e3},
                          {"p99", Percentile(tpot, 99) * 1e3}}},
                        {"e2e_ms",
                         {{"p50", Percentile(e2e, 50) * 1e3},
                          {"p90", Percentile(e2e, 90) * 1e3},
                          {"p99", Percentile(e2e, 99) * 1e3}}}};
  std::printf("%s\n", rep.dump(2).c_str());
  if (!FLAGS_json.empty()) {
    std::ofstream out(FLAGS_json);
    out << rep.dump(2) << "\n";
    if (!out) return Fail(vmm::Status::DataLoss("cannot write " + FLAGS_json));
  }
  return 0;
}
