// engine/model.h: Hugging Face-style MoE model descriptions: config.json, the tensor schema, and
// a deterministic synthetic checkpoint generator.
//
// Supported architectures: MixtralForCausalLM and Qwen3MoeForCausalLM (all layers sparse). The
// tensor names and shapes are exactly those of the real checkpoints, so a real checkpoint of
// these families validates the same way:
//   Mixtral: model.layers.N.block_sparse_moe.{gate, experts.E.{w1,w2,w3}}.weight
//   Qwen3:   model.layers.N.mlp.{gate, experts.E.{gate_proj,up_proj,down_proj}}.weight,
//            model.layers.N.self_attn.{q_norm,k_norm}.weight
// plus model.embed_tokens, model.norm, lm_head (absent when tie_word_embeddings), attention
// q/k/v/o projections and the two RMSNorm weights per layer.
//
// Thread safety: plain values and pure functions.
#ifndef ENGINE_MODEL_H_
#define ENGINE_MODEL_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "hbm/safetensors.h"
#include "vmm/status.h"

namespace emoe::engine {

using vmm::Status;
using vmm::StatusOr;

enum class Architecture : int { kMixtral = 0, kQwen3Moe };
const char* ArchitectureName(Architecture a);  // the config.json "architectures" entry

struct ModelConfig {
  Architecture architecture = Architecture::kQwen3Moe;
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;      // dense MLP width (unused by all-sparse layers)
  int64_t moe_intermediate_size = 0;  // per-expert width (Mixtral: intermediate_size)
  int64_t num_hidden_layers = 0;
  int64_t num_attention_heads = 0;
  int64_t num_key_value_heads = 0;
  int64_t head_dim = 0;     // Mixtral: hidden_size / num_attention_heads
  int64_t num_experts = 0;  // Mixtral: num_local_experts
  int64_t num_experts_per_tok = 0;
  bool norm_topk_prob = true;  // Mixtral always renormalizes the top-k weights
  double rope_theta = 10000.0;
  double rms_norm_eps = 1e-6;
  int64_t max_position_embeddings = 4096;
  bool tie_word_embeddings = false;

  // Every dimension within its bounds (vocab_size <= 2^24, hidden_size <= 2^16, expert width
  // <= 2^18, layers, heads and head_dim <= 1024, experts <= 4096, positions <= 2^24: far above
  // real models), heads divisible by KV heads, even head_dim, top-k <= experts, rope_theta and
  // rms_norm_eps positive and finite, and the sizes the dimensions imply bounded: at most
  // kMaxModelTensors tensors and kMaxModelParameters parameters. So a valid config never implies
  // more than a bounded tensor list, and its products fit in 64 bits. kInvalidArgument naming the
  // field ("config: field 'num_hidden_layers' must be 1..1024, got 2147483648").
  Status Validate() const;
  // A config.json that Hugging Face would read back (architecture-specific field names).
  std::string ToJson() const;
  // Bytes of one expert's three matrices at `dtype_bytes` per element.
  uint64_t ExpertBytes(int dtype_bytes) const;
  // The number of tensors of ExpectedTensors and their elements, computed without listing them.
  // Meaningful only within Validate's bounds (beyond them, wrapped unsigned arithmetic).
  uint64_t NumTensors() const;
  uint64_t ParameterCount() const;
};

// The bounds Validate applies to what a config implies (about 70 MiB of TensorSpecs at most),
// and the largest config.json LoadModelConfig reads (real ones are a few KiB).
inline constexpr uint64_t kMaxModelTensors = 1ull << 19;
inline constexpr uint64_t kMaxModelParameters = 1ull << 41;
inline constexpr uint64_t kMaxConfigBytes = 16ull << 20;

// Parses config.json text. Every field is read by type through hbm::JsonReader (nothing throws,
// whatever the text): a missing, wrongly typed or out-of-range field is kInvalidArgument naming
// it ("config.json: field 'decoder_sparse_step' must be an integer, got a string"); optional
// fields absent or null take the defaults above; then Validate.
StatusOr<ModelConfig> ParseModelConfig(const std::string& json_text);
// Reads <dir>/config.json (vmm::ReadRegularFile: a directory or a FIFO there is refused by
// type, a file above kMaxConfigBytes by size) and parses it, errors naming the path.
StatusOr<ModelConfig> LoadModelConfig(const std::string& model_dir);

struct TensorSpec {
  std::string name;
  std::vector<int64_t> shape;
  int layer = -1;   // -1 for embeddings, final norm, LM head
  int expert = -1;  // -1 for non-expert tensors
};
// Every tensor the architecture needs, in a fixed order (embeddings, layers, norm, head).
// REQUIRES: config.Validate() is OK (which bounds the list to kMaxModelTensors).
std::vector<TensorSpec> ExpectedTensors(const ModelConfig& config);
// The same tensors, one at a time, without building the list; stops at (and returns) the first
// status `visit` returns that is not OK.
Status ForEachExpectedTensor(const ModelConfig& config,
                             const std::function<Status(const TensorSpec&)>& visit);

// Checks that the checkpoint has exactly the expected tensors with the expected shapes, in F32,
// BF16 or F16: a missing, extra or misshapen tensor is named in the error, with the totals the
// config implies against the checkpoint's when they differ ("... (config.json implies 97 tensors,
// 9437184 parameters; the checkpoint has 69 tensors, 6291456 parameters)"). The expected tensors
// are visited one at a time and the walk stops at the first mismatch, so its cost is bounded by
// the checkpoint, not by what the config claims.
Status ValidateCheckpoint(const ModelConfig& config, const hbm::Checkpoint& checkpoint);

struct GeneratorOptions {
  uint64_t seed = 1;
  hbm::DType dtype = hbm::DType::kBF16;     // kBF16 or kF32
  uint64_t max_shard_bytes = 512ull << 20;  // larger models are sharded with an index
};
// Presets: "tiny" (tests, a few MB), "deepseek-v2-lite-experts" (64 experts, top-6),
// "qwen3-30b-a3b-experts" (128 experts, top-8), both at reduced depth and width, "bench"
// (realistic expert geometry: 6 MiB per expert in bf16, ~1.6 GiB in all) and "scale" (the
// elastic-scaling experiment's): all Qwen3-MoE layout with the byte tokenizer's vocabulary of
// 256. Two presets have a real vocabulary (PresetVocabulary): "qwen3-text"
// (qwen3-30b-a3b-experts with Qwen3's 151936 embedding rows, ~220 MiB in bf16) and
// "mixtral-text" (Mixtral layout, Mistral's 32000 tokens, small dimensions).
StatusOr<ModelConfig> PresetConfig(const std::string& name);
std::vector<std::string> PresetNames();
// The tokenizer a preset is made for: "qwen3" or "mistral" (the folder of data/tokenizers/ its
// tokenizer.json comes from; gen_model writes it beside the weights), or "" (no tokenizer.json:
// the byte tokenizer, ids 0..255).
std::string PresetVocabulary(const std::string& name);

// Writes config.json and the safetensors (sharded above max_shard_bytes, with
// model.safetensors.index.json) into `dir`. Deterministic: the same config, seed and dtype give
// byte-identical files. Weights are uniform in +-1/sqrt(fan_in) (norm weights 1), so activations
// keep unit scale through the layers.
Status GenerateModel(const ModelConfig& config, const GeneratorOptions& options,
                     const std::string& dir);

// float -> bf16 with round-to-nearest-even (NaN stays NaN).
uint16_t FloatToBf16(float f);
float Bf16ToFloat(uint16_t b);

}  // namespace emoe::engine

#endif  // ENGINE_MODEL_H_
