// engine_bench: prefill and decode throughput of the MoE engine per device count and threads
// per device, against the memory-bandwidth roofline measured in the same run.
//
//   engine_bench [--preset=bench | --model=DIR] [--max_devices=2] [--threads=1,2] [--batch=8]
//                [--prompt_len=64] [--decode_steps=16] [--reps=3]
// Roofline: a decode step must read every non-expert weight once per device, and each expert
// that any token of the batch routes to once (LocalInstance::last_experts_run, averaged over the
// steps); the fastest that can go is those bytes over the read bandwidth of all the threads the
// configuration runs (devices x threads per device), measured in the same run with that many
// threads reading disjoint parts of a 1 GiB buffer. The ratio printed is achieved / roofline
// tokens per second. Each row is the median of --reps runs. The baseline, measured in the same
// run on the same instance shape: every product through BLAS over widened tiles (sgemv for one
// token), as the engine computed before its fused kernels (InstanceOptions::fused_kernels).
#include <gflags/gflags.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <random>
#include <set>
#include <sstream>
#include <thread>

#include "engine/kernels.h"
#include "engine/local_instance.h"
#include "experts/placement.h"
#include "hbm/hmm.h"

DEFINE_string(preset, "bench",
              "model preset generated into --model (when --model is empty, a "
              "scratch directory)");
DEFINE_string(model, "", "model directory; generated from --preset when missing");
DEFINE_int32(max_devices, 2, "device counts 1..max_devices");
DEFINE_string(threads, "1", "threads per device to measure, comma-separated (e.g. 1,2)");
DEFINE_int32(batch, 8, "sequences per step");
DEFINE_int32(prompt_len, 64, "prompt tokens per sequence");
DEFINE_int32(decode_steps, 16, "decode steps measured");
DEFINE_int32(reps, 3, "runs per row (the median is printed)");
DEFINE_bool(baseline, true,
            "also measure every row without the fused kernels (bf16 tiles widened to fp32 for "
            "BLAS, the engine before them) and print ours / baseline");

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

std::atomic<uint64_t> read_sink{0};

// Bytes per second that `threads` threads read together, each its own part of one buffer.
double ReadBandwidth(const std::vector<char>& buf, int threads) {
  double best = 0;
  const size_t part = buf.size() / threads;
  for (int rep = 0; rep < 3; ++rep) {
    std::vector<uint64_t> sums(threads);
    std::vector<std::thread> ts;
    const auto t = Clock::now();
    for (int i = 0; i < threads; ++i) {
      ts.emplace_back([&, i] {
        sums[i] = emoe::engine::kernels::ReadSum(emoe::engine::kernels::ActiveIsa(),
                                                 buf.data() + i * part, part);
      });
    }
    for (auto& th : ts) th.join();
    best = std::max(best, part * threads / Since(t));
    for (uint64_t s : sums) read_sink.fetch_add(s, std::memory_order_relaxed);  // a use
  }
  return best;
}

std::vector<int> ParseList(const std::string& s) {
  std::vector<int> out;
  std::stringstream in(s);
  std::string item;
  while (std::getline(in, item, ',')) {
    char* end = nullptr;
    const long v = std::strtol(item.c_str(), &end, 10);
    if (item.empty() || *end != '\0' || v < 1 || v > 64) {
      std::fprintf(stderr, "engine_bench: --threads: '%s' is not a count in 1..64\n", item.c_str());
      std::exit(2);
    }
    out.push_back(static_cast<int>(v));
  }
  return out;
}

struct Rates {
  double prefill = 0, decode = 0;
  double experts_per_step = 0;  // (layer, expert) pairs a decode step computed, on average
};

// Prefill of `batch` random prompts, then decode_steps greedy steps, on `inst`.
Rates Measure(emoe::engine::LocalInstance* inst, const emoe::engine::ModelConfig& config,
              const std::vector<std::unique_ptr<emoe::kv::KvStore>>& stores, int batch) {
  const int n = static_cast<int>(stores.size());
  std::vector<std::unique_ptr<emoe::kv::PagedSequence>> seqs;
  std::vector<emoe::engine::SequenceInput> in;
  std::mt19937 rng(1);
  for (int i = 0; i < batch; ++i) {
    seqs.push_back(std::make_unique<emoe::kv::PagedSequence>(stores[i % n].get()));
    std::vector<int32_t> p(FLAGS_prompt_len);
    for (auto& t : p) t = rng() % config.vocab_size;
    in.push_back({seqs.back().get(), p, i % n});
  }
  Rates r;
  auto t0 = Clock::now();
  auto logits = inst->Step(in);
  vmm::CheckOk(logits.status(), "prefill");
  r.prefill = batch * FLAGS_prompt_len / Since(t0);
  t0 = Clock::now();
  for (int s = 0; s < FLAGS_decode_steps; ++s) {
    for (size_t i = 0; i < in.size(); ++i) {
      const auto& l = (*logits)[i];
      in[i].tokens = {static_cast<int32_t>(std::max_element(l.begin(), l.end()) - l.begin())};
    }
    logits = inst->Step(in);
    vmm::CheckOk(logits.status(), "decode");
    r.experts_per_step += static_cast<double>(inst->last_experts_run()) / FLAGS_decode_steps;
  }
  r.decode = batch * FLAGS_decode_steps / Since(t0);
  return r;
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
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
  const std::vector<int> thread_counts = ParseList(FLAGS_threads);
  const double bw = CopyBandwidth();
  std::printf(
      "model %s: %.1f MiB non-expert, %.1f MiB experts (%.2f MiB each), top-%lld of %lld; "
      "memcpy bandwidth %.1f GB/s (one thread); kernels %s\n",
      dir.c_str(), dense / 1048576.0, expert_bytes / 1048576.0, one_expert / 1048576.0,
      static_cast<long long>(config->num_experts_per_tok),
      static_cast<long long>(config->num_experts), bw / 1e9,
      emoe::engine::kernels::IsaName(emoe::engine::kernels::ActiveIsa()));
  std::map<int, double> read_bw;  // threads -> bytes/s
  {
    std::vector<char> buf(1ull << 30, 1);
    for (int d = 1; d <= FLAGS_max_devices; ++d) {
      for (int t : thread_counts) {
        if (!read_bw.count(d * t)) read_bw[d * t] = ReadBandwidth(buf, d * t);
      }
    }
  }
  for (const auto& [t, b] : read_bw)
    std::printf("read bandwidth, %d threads: %.1f GB/s\n", t, b / 1e9);
  std::printf("%-8s %-8s %-6s %9s %14s %14s %16s %10s", "devices", "threads", "batch", "experts",
              "prefill tok/s", "decode tok/s", "roofline tok/s", "ratio");
  if (FLAGS_baseline) {
    std::printf(" %10s %10s %8s %8s", "base pre", "base dec", "pre x", "dec x");
  }
  std::printf("\n");
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
    std::vector<std::unique_ptr<emoe::kv::KvStore>> stores;
    for (int d : devices) {
      stores.push_back(std::move(
          *emoe::kv::KvStore::Create((*hmm)->device(d), emoe::engine::KvGeometryFor(*config))));
    }
    for (int threads : thread_counts) {
      std::map<bool, std::unique_ptr<emoe::engine::LocalInstance>> insts;
      for (bool fused : {true, false}) {
        if (!fused && !FLAGS_baseline) continue;
        emoe::engine::InstanceOptions io;
        io.threads_per_device = threads;
        io.fused_kernels = fused;
        auto inst = emoe::engine::LocalInstance::Create(hmm->get(), *config, devices, io);
        vmm::CheckOk(inst.status(), "instance");
        insts[fused] = std::move(*inst);
      }
      for (int batch : {1, FLAGS_batch}) {
        std::map<bool, std::vector<double>> prefill, decode;
        double experts_per_step = 0;
        for (int rep = 0; rep < FLAGS_reps; ++rep) {
          for (auto& [fused, inst] : insts) {  // interleaved: drift hits both alike
            const Rates r = Measure(inst.get(), *config, stores, batch);
            prefill[fused].push_back(r.prefill);
            decode[fused].push_back(r.decode);
            if (fused) experts_per_step = r.experts_per_step;  // the same tokens every run
          }
        }
        // Bytes a decode step must read at least: the dense weights on each device, plus each
        // expert the step computed (counted by the instance, averaged over the steps).
        const double step_bytes =
            static_cast<double>(dense) * n + experts_per_step * static_cast<double>(one_expert);
        const double roofline = batch * read_bw[n * threads] / step_bytes;
        const double dec = Median(decode[true]);
        std::printf("%-8d %-8d %-6d %9.1f %14.1f %14.1f %16.1f %9.0f%%", n, threads, batch,
                    experts_per_step / config->num_hidden_layers, Median(prefill[true]), dec,
                    roofline, 100 * dec / roofline);
        if (FLAGS_baseline) {
          const double bp = Median(prefill[false]), bd = Median(decode[false]);
          std::printf(" %10.1f %10.1f %7.2fx %7.2fx", bp, bd, Median(prefill[true]) / bp, dec / bd);
        }
        std::printf("\n");
      }
    }
  }
  return 0;
}
