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

  // Every count positive, heads divisible by KV heads, top-k <= experts, sizes below 2^40 bytes.
  Status Validate() const;
  // A config.json that Hugging Face would read back (architecture-specific field names).
  std::string ToJson() const;
  // Bytes of one expert's three matrices at `dtype_bytes` per element.
  uint64_t ExpertBytes(int dtype_bytes) const;
};

// Parses config.json text; unknown architectures and missing fields are named in the error.
StatusOr<ModelConfig> ParseModelConfig(const std::string& json_text);
// Reads <dir>/config.json.
StatusOr<ModelConfig> LoadModelConfig(const std::string& model_dir);

struct TensorSpec {
  std::string name;
  std::vector<int64_t> shape;
  int layer = -1;   // -1 for embeddings, final norm, LM head
  int expert = -1;  // -1 for non-expert tensors
};
// Every tensor the architecture needs, in a fixed order (embeddings, layers, norm, head).
std::vector<TensorSpec> ExpectedTensors(const ModelConfig& config);

// Checks that the checkpoint has exactly the expected tensors with the expected shapes, in F32,
// BF16 or F16: a missing, extra or misshapen tensor is named in the error.
Status ValidateCheckpoint(const ModelConfig& config, const hbm::Checkpoint& checkpoint);

struct GeneratorOptions {
  uint64_t seed = 1;
  hbm::DType dtype = hbm::DType::kBF16;     // kBF16 or kF32
  uint64_t max_shard_bytes = 512ull << 20;  // larger models are sharded with an index
};
// Presets: "tiny" (tests, a few MB), "deepseek-v2-lite-experts" (64 experts, top-6),
// "qwen3-30b-a3b-experts" (128 experts, top-8), both at reduced depth and width, and "bench"
// (realistic expert geometry: 6 MiB per expert in bf16, ~1.6 GiB in all). All Qwen3-MoE layout.
StatusOr<ModelConfig> PresetConfig(const std::string& name);
std::vector<std::string> PresetNames();

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
