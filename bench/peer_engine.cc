// peer_engine: the engine's side of the peer benchmark (scripts/peer_bench.sh): given prompt
// token ids, the prefill and decode throughput of one (devices, batch) configuration, median of
// --repeats runs, and the greedy tokens, as JSON. The model, HMM and instance are set up as
// engine_bench does (experts balanced over the devices, a team of --threads_per_device pinned
// threads per device).
//
//   peer_engine --model=DIR --prompts="1,2,3;4,5,6" [--devices=1] [--threads_per_device=1]
//               [--batch=1]
//               [--new_tokens=64] [--repeats=3] [--json=FILE]
// Sequence i of the batch gets prompt i % (number of prompts). A run: fresh KV, one prefill step
// over every sequence's prompt (timed: batch * prompt tokens / s), which gives the first new
// token, then new_tokens - 1 decode steps of one token per sequence (timed: batch *
// (new_tokens - 1) / s). Greedy: argmax, ties to the lower id.
#include <gflags/gflags.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "engine/local_instance.h"
#include "experts/placement.h"
#include "hbm/hmm.h"

DEFINE_string(model, "", "model directory (config.json + safetensors)");
DEFINE_string(prompts, "", "prompt token ids: comma-separated ids, prompts separated by ';'");
DEFINE_int32(devices, 1, "devices, 1..64");
DEFINE_int32(threads_per_device, 1,
             "threads per device (InstanceOptions::threads_per_device), 1..64");
DEFINE_int32(batch, 1, "sequences per step, 1..256");
DEFINE_int32(new_tokens, 64, "tokens generated per sequence (the first by the prefill), 2..4096");
DEFINE_int32(repeats, 3, "runs; the median is reported, 1..100");
DEFINE_string(json, "", "write the result here (else stdout)");

namespace {

using Clock = std::chrono::steady_clock;
using nlohmann::json;
namespace engine = emoe::engine;

double Since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

int Usage(const std::string& m) {
  std::fprintf(stderr, "peer_engine: %s\n", m.c_str());
  return 2;
}

// "1,2;3" -> {{1,2},{3}}; empty on a malformed list or an id outside [0, vocab).
std::vector<std::vector<int32_t>> ParsePrompts(const std::string& s, int64_t vocab) {
  std::vector<std::vector<int32_t>> out;
  std::stringstream prompts(s);
  std::string p;
  while (std::getline(prompts, p, ';')) {
    std::vector<int32_t> ids;
    std::stringstream items(p);
    std::string item;
    while (std::getline(items, item, ',')) {
      char* end = nullptr;
      const long v = std::strtol(item.c_str(), &end, 10);
      if (item.empty() || *end != '\0' || v < 0 || v >= vocab) return {};
      ids.push_back(static_cast<int32_t>(v));
    }
    if (ids.empty()) return {};
    out.push_back(std::move(ids));
  }
  return out;
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
}

int32_t Argmax(const std::vector<float>& l) {
  return static_cast<int32_t>(std::max_element(l.begin(), l.end()) - l.begin());
}

struct Setup {
  std::unique_ptr<emoe::hbm::Hmm> hmm;
  std::unique_ptr<engine::LocalInstance> instance;
  std::vector<std::unique_ptr<emoe::kv::KvStore>> stores;
};

// engine_bench's HMM and instance over `n` devices of the first NUMA node.
Setup Build(const engine::ModelConfig& config, const emoe::hbm::Checkpoint& ckpt, int n) {
  std::map<std::string, engine::TensorSpec> spec;
  for (const auto& s : engine::ExpectedTensors(config)) spec[s.name] = s;
  uint64_t dense = 0, expert_bytes = 0;
  for (const auto& t : ckpt.tensors)
    (spec[t.name].expert >= 0 ? expert_bytes : dense) += t.size_bytes;
  emoe::hbm::HmmOptions o;
  o.devices.devices_per_node = n;
  o.devices.nodes = {vmm::NumaNodes()[0].id};
  const uint64_t experts_per_dev =
      expert_bytes / n + (config.num_experts / n + 1) * config.num_hidden_layers * (2ull << 20);
  o.memory.usage_bytes = {dense + (64ull << 20), experts_per_dev, 256ull << 20};
  o.devices.capacity_bytes =
      o.memory.usage_bytes[0] + o.memory.usage_bytes[1] + o.memory.usage_bytes[2];
  Setup s;
  auto hmm = emoe::hbm::Hmm::Create(o);
  vmm::CheckOk(hmm.status(), "hmm");
  s.hmm = std::move(*hmm);
  std::vector<int> devices;
  for (int d = 0; d < n; ++d) devices.push_back(d);
  auto owner = *emoe::experts::BalancedPlacement(config.num_experts, n);
  auto load = s.hmm->LoadCheckpoint(ckpt, [&](const emoe::hbm::TensorInfo& t) {
    const auto& ts = spec[t.name];
    if (ts.expert >= 0) {
      std::string group = "l";  // appended, not concatenated: GCC 12's -Wrestrict false positive
      group.append(std::to_string(ts.layer)).append("e").append(std::to_string(ts.expert));
      return emoe::hbm::PlacementDecision{emoe::hbm::Usage::kExperts, {owner[ts.expert]}, group};
    }
    return emoe::hbm::PlacementDecision{emoe::hbm::Usage::kWeights, devices, ""};
  });
  vmm::CheckOk(load.status(), "load");
  engine::InstanceOptions io;
  io.threads_per_device = FLAGS_threads_per_device;
  auto inst = engine::LocalInstance::Create(s.hmm.get(), config, devices, io);
  vmm::CheckOk(inst.status(), "instance");
  s.instance = std::move(*inst);
  for (int d : devices) {
    s.stores.push_back(
        std::move(*emoe::kv::KvStore::Create(s.hmm->device(d), engine::KvGeometryFor(config))));
  }
  return s;
}

struct Run {
  double prefill_tok_s = 0, decode_tok_s = 0;
  std::vector<std::vector<int32_t>> tokens;  // per sequence
};

Run OneRun(Setup& s, const std::vector<std::vector<int32_t>>& prompts, int batch, int n) {
  std::vector<std::unique_ptr<emoe::kv::PagedSequence>> seqs;
  std::vector<engine::SequenceInput> in;
  int64_t prompt_tokens = 0;
  for (int i = 0; i < batch; ++i) {
    seqs.push_back(std::make_unique<emoe::kv::PagedSequence>(s.stores[i % n].get()));
    const auto& p = prompts[i % prompts.size()];
    prompt_tokens += static_cast<int64_t>(p.size());
    in.push_back({seqs.back().get(), p, i % n});
  }
  Run r;
  r.tokens.resize(batch);
  auto t0 = Clock::now();
  auto logits = s.instance->Step(in);
  vmm::CheckOk(logits.status(), "prefill");
  r.prefill_tok_s = prompt_tokens / Since(t0);
  t0 = Clock::now();
  for (int step = 1; step < FLAGS_new_tokens; ++step) {
    for (int i = 0; i < batch; ++i) {
      r.tokens[i].push_back(Argmax((*logits)[i]));
      in[i].tokens = {r.tokens[i].back()};
    }
    logits = s.instance->Step(in);
    vmm::CheckOk(logits.status(), "decode");
  }
  r.decode_tok_s = static_cast<double>(batch) * (FLAGS_new_tokens - 1) / Since(t0);
  for (int i = 0; i < batch; ++i) r.tokens[i].push_back(Argmax((*logits)[i]));
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  gflags::SetUsageMessage("the engine's prefill/decode tok/s and greedy tokens on given ids");
  gflags::ParseCommandLineFlags(&argc, &argv, true);
  if (FLAGS_model.empty()) return Usage("--model is required");
  if (FLAGS_devices < 1 || FLAGS_devices > 64) return Usage("--devices must be 1..64");
  if (FLAGS_threads_per_device < 1 || FLAGS_threads_per_device > 64) {
    return Usage("--threads_per_device must be 1..64");
  }
  if (FLAGS_batch < 1 || FLAGS_batch > 256) return Usage("--batch must be 1..256");
  if (FLAGS_new_tokens < 2 || FLAGS_new_tokens > 4096) return Usage("--new_tokens must be 2..4096");
  if (FLAGS_repeats < 1 || FLAGS_repeats > 100) return Usage("--repeats must be 1..100");
  auto config = engine::LoadModelConfig(FLAGS_model);
  vmm::CheckOk(config.status(), "config");
  const auto prompts = ParsePrompts(FLAGS_prompts, config->vocab_size);
  if (prompts.empty()) return Usage("--prompts must be ';'-separated lists of ids in [0, vocab)");
  auto ckpt = emoe::hbm::OpenCheckpoint(FLAGS_model);
  vmm::CheckOk(ckpt.status(), "checkpoint");
  Setup s = Build(*config, *ckpt, FLAGS_devices);
  std::vector<double> prefill, decode;
  Run last;
  for (int i = 0; i < FLAGS_repeats; ++i) {
    last = OneRun(s, prompts, FLAGS_batch, FLAGS_devices);
    prefill.push_back(last.prefill_tok_s);
    decode.push_back(last.decode_tok_s);
  }
  json out = {{"engine", "emoe"},
              {"devices", FLAGS_devices},
              {"threads_per_device", FLAGS_threads_per_device},
              {"batch", FLAGS_batch},
              {"new_tokens", FLAGS_new_tokens},
              {"prefill_tok_s", prefill},
              {"decode_tok_s", decode},
              {"prefill_median", Median(prefill)},
              {"decode_median", Median(decode)},
              {"tokens", last.tokens}};
  if (FLAGS_json.empty()) {
    std::printf("%s\n", out.dump().c_str());
  } else {
    std::ofstream(FLAGS_json) << out.dump(1) << "\n";
  }
  return 0;
}
