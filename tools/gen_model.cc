// gen_model: writes a seeded, deterministic synthetic MoE checkpoint (config.json + safetensors,
// sharded with an index above --max_shard_mb) in the preset's layout (Qwen3-MoE or Mixtral). A
// preset with a real vocabulary (qwen3-text, mixtral-text) also gets the family's tokenizer.json
// and tokenizer_config.json beside the weights, copied from --tokenizer_dir
// (tools/preset_tokenizer.h), so that emoe serves it text.
//
//   gen_model --preset=tiny --out=/tmp/tiny [--dtype=bf16|f32] [--seed=1]
//   gen_model --preset=qwen3-text --out=/tmp/qwen3 [--tokenizer_dir=data/tokenizers/qwen3]
//   gen_model --list_presets
//
// Exit codes (tools/flag_checks.h): 0 written (or listed); 1 writing failed; 2 a bad flag.
#include <gflags/gflags.h>

#include <cstdio>
#include <string>

#include "engine/model.h"
#include "hbm/safetensors.h"
#include "tools/flag_checks.h"
#include "tools/preset_tokenizer.h"

DEFINE_string(preset, "tiny", "model preset (see --list_presets)");
DEFINE_string(out, "", "output directory (created)");
DEFINE_string(dtype, "bf16", "bf16 or f32");
DEFINE_uint64(seed, 1, "weights seed: same seed, same bytes");
DEFINE_uint64(max_shard_mb, 512, "largest safetensors shard, MiB, 1..1048576");
DEFINE_bool(list_presets, false, "print the presets and exit");
DEFINE_string(tokenizer_dir, "",
              "for a preset with a real vocabulary: the folder holding its tokenizer.json and "
              "tokenizer_config.json (empty: the source tree's data/tokenizers/qwen3 or "
              "/mistral, filled by scripts/fetch_tokenizers.sh)");

namespace {

// The folder the preset's tokenizer is copied from ("" for a byte-tokenizer preset).
std::string TokenizerDir() {
  return FLAGS_tokenizer_dir.empty() ? emoe::tools::DefaultTokenizerDir(FLAGS_preset)
                                     : FLAGS_tokenizer_dir;
}

// Every flag checked under its own name (--list_presets needs none of the others).
vmm::Status CheckFlags() {
  namespace t = emoe::tools;
  return t::FirstError({
      t::Named("preset", emoe::engine::PresetConfig(FLAGS_preset).status()),
      t::NonEmpty("out", FLAGS_out),
      t::OneOf("dtype", FLAGS_dtype, {"bf16", "f32"}),
      t::Directory("tokenizer_dir", FLAGS_tokenizer_dir),
      t::Named("tokenizer_dir", emoe::tools::CheckPresetTokenizerDir(FLAGS_preset, TokenizerDir())),
      FLAGS_max_shard_mb < 1 || FLAGS_max_shard_mb > (1u << 20)
          ? vmm::Status::InvalidArgument("--max_shard_mb must be an integer in 1..1048576, got " +
                                         std::to_string(FLAGS_max_shard_mb))
          : vmm::Status::Ok(),
  });
}

void ListPresets() {
  for (const auto& name : emoe::engine::PresetNames()) {
    auto c = emoe::engine::PresetConfig(name);
    const std::string vocabulary = emoe::engine::PresetVocabulary(name);
    std::printf(
        "%-26s %-19s %2lld layers, hidden %lld, %3lld experts top-%lld, %.1f MiB per expert "
        "(bf16), vocab %lld (%s)\n",
        name.c_str(), emoe::engine::ArchitectureName(c->architecture),
        static_cast<long long>(c->num_hidden_layers), static_cast<long long>(c->hidden_size),
        static_cast<long long>(c->num_experts), static_cast<long long>(c->num_experts_per_tok),
        c->ExpertBytes(2) / 1048576.0, static_cast<long long>(c->vocab_size),
        vocabulary.empty() ? "bytes" : (vocabulary + " tokenizer").c_str());
  }
}

}  // namespace

int main(int argc, char** argv) {
  gflags::SetUsageMessage("writes a deterministic synthetic MoE checkpoint" +
                          emoe::tools::ExitCodesHelp(/*requests=*/false));
  if (auto rc = emoe::tools::ParseFlags("gen_model", &argc, &argv)) return *rc;
  if (FLAGS_list_presets) {
    ListPresets();
    return emoe::tools::kExitOk;
  }
  if (vmm::Status s = CheckFlags(); !s.ok()) {
    std::fprintf(stderr, "gen_model: %s\n", s.message().c_str());
    return emoe::tools::kExitUsage;
  }
  auto config = emoe::engine::PresetConfig(FLAGS_preset);
  emoe::engine::GeneratorOptions o;
  o.seed = FLAGS_seed;
  o.max_shard_bytes = FLAGS_max_shard_mb << 20;
  o.dtype = FLAGS_dtype == "f32" ? emoe::hbm::DType::kF32 : emoe::hbm::DType::kBF16;
  vmm::Status s = emoe::engine::GenerateModel(*config, o, FLAGS_out);
  if (s.ok()) s = emoe::tools::WritePresetTokenizer(FLAGS_preset, TokenizerDir(), FLAGS_out);
  if (!s.ok()) {
    std::fprintf(stderr, "gen_model: %s\n", s.ToString().c_str());
    return emoe::tools::kExitError;
  }
  auto ckpt = emoe::hbm::OpenCheckpoint(FLAGS_out);
  if (!ckpt.ok() || !emoe::engine::ValidateCheckpoint(*config, *ckpt).ok()) {
    std::fprintf(stderr, "gen_model: the written checkpoint does not validate\n");
    return emoe::tools::kExitError;
  }
  std::printf("wrote %s: preset %s, %zu tensors in %zu shard(s), %.1f MiB, %s, seed %llu\n",
              FLAGS_out.c_str(), FLAGS_preset.c_str(), ckpt->tensors.size(), ckpt->shards.size(),
              ckpt->total_bytes / 1048576.0, FLAGS_dtype.c_str(),
              static_cast<unsigned long long>(FLAGS_seed));
  if (!emoe::engine::PresetVocabulary(FLAGS_preset).empty()) {
    std::printf("tokenizer: %s/tokenizer.json and tokenizer_config.json, from %s\n",
                FLAGS_out.c_str(), TokenizerDir().c_str());
  }
  return emoe::tools::kExitOk;
}
