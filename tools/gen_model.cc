// gen_model: writes a seeded, deterministic synthetic MoE checkpoint (config.json + safetensors,
// sharded with an index above --max_shard_mb) in the Qwen3-MoE layout.
//
//   gen_model --preset=tiny --out=/tmp/tiny [--dtype=bf16|f32] [--seed=1]
//   gen_model --list_presets
#include <gflags/gflags.h>

#include <cstdio>

#include "engine/model.h"
#include "hbm/safetensors.h"

DEFINE_string(preset, "tiny", "model preset (see --list_presets)");
DEFINE_string(out, "", "output directory (created)");
DEFINE_string(dtype, "bf16", "bf16 or f32");
DEFINE_uint64(seed, 1, "weights seed: same seed, same bytes");
DEFINE_uint64(max_shard_mb, 512, "largest safetensors shard, MiB");
DEFINE_bool(list_presets, false, "print the presets and exit");

int main(int argc, char** argv) {
  gflags::SetUsageMessage("writes a deterministic synthetic MoE checkpoint");
  gflags::ParseCommandLineFlags(&argc, &argv, true);
  if (FLAGS_list_presets) {
    for (const auto& name : emoe::engine::PresetNames()) {
      auto c = emoe::engine::PresetConfig(name);
      std::printf(
          "%-26s %2lld layers, hidden %lld, %3lld experts top-%lld, %.1f MiB per expert "
          "(bf16)\n",
          name.c_str(), static_cast<long long>(c->num_hidden_layers),
          static_cast<long long>(c->hidden_size), static_cast<long long>(c->num_experts),
          static_cast<long long>(c->num_experts_per_tok), c->ExpertBytes(2) / 1048576.0);
    }
    return 0;
  }
  if (FLAGS_out.empty()) {
    std::fprintf(stderr, "gen_model: --out is required (see --help)\n");
    return 2;
  }
  auto config = emoe::engine::PresetConfig(FLAGS_preset);
  if (!config.ok()) {
    std::fprintf(stderr, "gen_model: %s\n", config.status().message().c_str());
    return 2;
  }
  emoe::engine::GeneratorOptions o;
  o.seed = FLAGS_seed;
  o.max_shard_bytes = FLAGS_max_shard_mb << 20;
  if (FLAGS_dtype == "bf16") {
    o.dtype = emoe::hbm::DType::kBF16;
  } else if (FLAGS_dtype == "f32") {
    o.dtype = emoe::hbm::DType::kF32;
  } else {
    std::fprintf(stderr, "gen_model: --dtype must be bf16 or f32, got '%s'\n", FLAGS_dtype.c_str());
    return 2;
  }
  vmm::Status s = emoe::engine::GenerateModel(*config, o, FLAGS_out);
  if (!s.ok()) {
    std::fprintf(stderr, "gen_model: %s\n", s.ToString().c_str());
    return 1;
  }
  auto ckpt = emoe::hbm::OpenCheckpoint(FLAGS_out);
  if (!ckpt.ok() || !emoe::engine::ValidateCheckpoint(*config, *ckpt).ok()) {
    std::fprintf(stderr, "gen_model: the written checkpoint does not validate\n");
    return 1;
  }
  std::printf("wrote %s: preset %s, %zu tensors in %zu shard(s), %.1f MiB, %s, seed %llu\n",
              FLAGS_out.c_str(), FLAGS_preset.c_str(), ckpt->tensors.size(), ckpt->shards.size(),
              ckpt->total_bytes / 1048576.0, FLAGS_dtype.c_str(),
              static_cast<unsigned long long>(FLAGS_seed));
  return 0;
}
