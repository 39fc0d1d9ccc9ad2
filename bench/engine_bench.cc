// engine_bench: prefill and decode throughput of the MoE engine per device count, against the
// memory-bandwidth roofline measured in the same run.
//
//   engine_bench [--preset=bench | --model=DIR] [--max_devices=2] [--batch=8] [--prompt_len=64]
//                [--decode_steps=16]
// Roofline: a decode step must read every non-expert weight once per device, and each expert
// that any token of the batch routes to once; at memcpy bandwidth B that takes
// bytes_read / B seconds. The ratio printed is achieved / roofline tokens per second.
#include <gflags/gflags.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <random>
#include <set>

#include "engine/local_instance.h"
#include "experts/placement.h"
#include "hbm/hmm.h"

DEFINE_string(preset, "bench",
              "model preset generated into --model (when --model is empty, a "
              "scratch directory)");
DEFINE_string(model, "", "model directory; generated from --preset when missing");
DEFINE_int32(max_devices, 2, "device counts 1..max_devices");
DEFINE_int32(batch, 8, "sequences per step");
DEFINE_int32(prompt_len, 64, "prompt tokens per sequence");
DEFINE_int32(decode_steps, 16, "decode steps measured");

namespace {

using Clock = std::chrono::steady_clock;
double Since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

double CopyBandwidth() {
  const size_t n = 512 << 20;
  std::vector<char> a(n, 1), b(n, 2);
  double best = 0;
  for (int i = 0; i < 3; ++i) {
    const auto t = Clock::now();
    std::memcpy(b.data(), a.data(), n);
    best = std::max(best, n / Since(t));
  }
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  gflags::SetUsageMessage("engine prefill/decode throughput vs the memory-bandwidth roofline");
  gflags::ParseCommandLineFlags(&argc, &argv, true);
  namespace fs = std::filesystem;
  std::string dir = FLAGS_model.empty() ? "/var/tmp/emoe_bench_" + FLAGS_preset : FLAGS_model;
  if (!fs::exists(fs::path(dir) / "config.json")) {
    auto cfg = emoe::engine::PresetConfig(FLAGS_preset);
    vmm::CheckOk(cfg.status(), "preset");
    std::printf("generating %s into %s...\n", FLAGS_preset.c_str(), dir.c_str());
    vmm::CheckOk(emoe::engine::GenerateModel(*cfg, {}, dir), "generate");
  }
  auto config = emoe::engine::LoadModelConfig(dir);
  vmm::CheckOk(config.status(), "config");
  auto ckpt = emoe::hbm::OpenCheckpoint(dir);
  vmm::CheckOk(ckpt.status(), "checkpoint");
  std::map<std::string, emoe::engine::TensorSpec> spec;
  for (const auto& s : emoe::engine::ExpectedTensors(*config)) spec[s.name] = s;
  uint64_t dense = 0, expert_bytes = 0;
  for (const auto& t : ckpt->tensors)
    (spec[t.name].expert >= 0 ? expert_bytes : dense) += t.size_bytes;
  const uint64_t one_expert = expert_bytes / (config->num_experts * config->num_hidden_layers);
  const double bw = CopyBandwidth();
  std::printf(
      "model %s: %.1f MiB non-expert, %.1f MiB experts (%.2f MiB each), top-%lld of %lld; "
      "memcpy bandwidth %.1f GB/s\n",
      dir.c_str(), dense / 1048576.0, expert_bytes / 1048576.0, one_expert / 1048576.0,
      static_cast<long long>(config->num_experts_per_tok),
      static_cast<long long>(config->num_experts), bw / 1e9);
  std::printf("%-8s %-8s %14s %14s %16s %10s\n", "devices", "batch", "prefill tok/s",
              "decode tok/s", "roofline tok/s", "ratio");
  for (int n = 1; n <= FLAGS_max_devices; ++n) {
    emoe::hbm::HmmOptions o;
    o.devices.devices_per_node = n;
    o.devices.nodes = {vmm::NumaNodes()[0].id};
    const uint64_t experts_per_dev =
        expert_bytes / n + (config->num_experts / n + 1) * config->num_hidden_layers * (2ull << 20);
    o.memory.usage_bytes = {dense + (64ull << 20), experts_per_dev, 256ull << 20};
    o.devices.capacity_bytes =
        o.memory.usage_bytes[0] + o.memory.usage_bytes[1] + o.memory.usage_bytes[2];
    auto hmm = emoe::hbm::Hmm::Create(o);
    vmm::CheckOk(hmm.status(), "hmm");
    std::vector<int> devices;
    for (int d = 0; d < n; ++d) devices.push_back(d);
    auto owner = *emoe::experts::BalancedPlacement(config->num_experts, n);
    auto load = (*hmm)->LoadCheckpoint(*ckpt, [&](const emoe::hbm::TensorInfo& t) {
      const auto& s = spec[t.name];
      if (s.expert >= 0) {
        return emoe::hbm::PlacementDecision{
            emoe::hbm::Usage::kExperts,
            {owner[s.expert]},
            "l" + std::to_string(s.layer) + "e" + std::to_string(s.expert)};
      }
      return emoe::hbm::PlacementDecision{emoe::hbm::Usage::kWeights, devices, ""};
    });
    vmm::CheckOk(load.status(), "load");
    auto inst = emoe::engine::LocalInstance::Create(hmm->get(), *config, devices);
    vmm::CheckOk(inst.status(), "instance");
    std::vector<std::unique_ptr<emoe::kv::KvStore>> stores;
    for (int d : devices) {
      stores.push_back(std::move(
          *emoe::kv::KvStore::Create((*hmm)->device(d), emoe::engine::KvGeometryFor(*config))));
    }
    for (int batch : {1, FLAGS_batch}) {
      std::vector<std::unique_ptr<emoe::kv::PagedSequence>> seqs;
      std::vector<emoe::engine::SequenceInput> in;
      std::mt19937 rng(1);
      for (int i = 0; i < batch; ++i) {
        seqs.push_back(std::make_unique<emoe::kv::PagedSequence>(stores[i % n].get()));
        std::vector<int32_t> p(FLAGS_prompt_len);
        for (auto& t : p) t = rng() % config->vocab_size;
        in.push_back({seqs.back().get(), p, i % n});
      }
      auto t0 = Clock::now();
      auto logits = (*inst)->Step(in);
      vmm::CheckOk(logits.status(), "prefill");
      const double prefill = batch * FLAGS_prompt_len / Since(t0);
      t0 = Clock::now();
      for (int s = 0; s < FLAGS_decode_steps; ++s) {
        for (size_t i = 0; i < in.size(); ++i) {
          const auto& l = (*logits)[i];
          in[i].tokens = {static_cast<int32_t>(std::max_element(l.begin(), l.end()) - l.begin())};
        }
        logits = (*inst)->Step(in);
        vmm::CheckOk(logits.status(), "decode");
      }
      const double decode = batch * FLAGS_decode_steps / Since(t0);
      // Bytes a decode step must read at least: the dense weights on each device, plus each
      // expert routed to (at most min(E, batch * k) per layer; all of them is the bound used).
      const int64_t k = config->num_experts_per_tok, e = config->num_experts;
      const uint64_t experts_read = std::min<int64_t>(e, static_cast<int64_t>(batch) * k) *
                                    config->num_hidden_layers * one_expert;
      const double step_bytes = static_cast<double>(dense) * n + experts_read;
      const double roofline = batch * bw / step_bytes;
      std::printf("%-8d %-8d %14.1f %14.1f %16.1f %9.0f%%\n", n, batch, prefill, decode, roofline,
                  100 * decode / roofline);
    }
  }
  return 0;
}
