// Fuzzes config.json parsing (engine/model.h ParseModelConfig) with arbitrary text. It must
// never throw or crash; a config it accepts is valid, and written back (ModelConfig::ToJson) it
// reads back as the same config.
#include <cstddef>
#include <cstdint>
#include <string>

#include "engine/model.h"
#include "fuzz_check.h"

namespace {

using emoe::engine::ModelConfig;

bool Same(const ModelConfig& a, const ModelConfig& b) {
  return a.architecture == b.architecture && a.vocab_size == b.vocab_size &&
         a.hidden_size == b.hidden_size && a.moe_intermediate_size == b.moe_intermediate_size &&
         a.num_hidden_layers == b.num_hidden_layers &&
         a.num_attention_heads == b.num_attention_heads &&
         a.num_key_value_heads == b.num_key_value_heads && a.head_dim == b.head_dim &&
         a.num_experts == b.num_experts && a.num_experts_per_tok == b.num_experts_per_tok &&
         a.norm_topk_prob == b.norm_topk_prob && a.rope_theta == b.rope_theta &&
         a.rms_norm_eps == b.rms_norm_eps &&
         a.max_position_embeddings == b.max_position_embeddings &&
         a.tie_word_embeddings == b.tie_word_embeddings;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  auto config = emoe::engine::ParseModelConfig(text);
  if (!config.ok()) return 0;
  FUZZ_CHECK(config->Validate().ok());
  auto again = emoe::engine::ParseModelConfig(config->ToJson());
  FUZZ_CHECK(again.ok());
  FUZZ_CHECK(Same(*config, *again));
  return 0;
}
