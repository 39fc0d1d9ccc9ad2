// tools/gguf_model.h: our checkpoints (engine/model.h's two families) as GGUF files that
// llama.cpp loads (tools/gguf_writer.h is the container).
//
// Architectures: Qwen3MoeForCausalLM -> llama.cpp "qwen3moe"; MixtralForCausalLM -> "llama" with
// experts. Tensors, in llama.cpp's names (dims innermost first, so an HF [rows, cols] matrix is
// {cols, rows} with the same bytes):
//   token_embd, output_norm, output (absent when tie_word_embeddings: llama.cpp then reuses
//   token_embd), blk.N.{attn_norm, attn_q, attn_k, attn_v, attn_output, attn_q_norm and
//   attn_k_norm (qwen3moe), ffn_norm, ffn_gate_inp, ffn_gate_exps, ffn_up_exps, ffn_down_exps}
//   .weight, the experts stacked in id order into 3-D tensors {cols, rows, experts}.
// RoPE: the engine (like HF) rotates element i with i + d/2 (rotate_half), which is llama.cpp's
// NEOX RoPE, qwen3moe's; "llama" uses the interleaved RoPE (pairs 2i, 2i+1), so its Q and K
// rows are permuted within each head as llama.cpp's converter does (LlamaModel.permute): new
// row 2i + j of a head is old row j * d/2 + i.
// Tokenizer: an SPM ("llama") vocabulary of vocab_size entries, ids 0..255 the byte tokens
// <0x00>..<0xFF> (our byte tokenizer's ids), any further id a plain token "<tN>"; token ids
// are fed directly, so only the ids matter.
// Every value is kept; the output type is f32 or bf16 (bf16 from f32 rounds to nearest even; a
// bf16 checkpoint exported as bf16 keeps its bytes), except the norm weights and the router,
// always f32 (as llama.cpp's converter writes them; ggml multiplies f32 activations
// elementwise by f32 only), which from a bf16 checkpoint is exact.
//
// Thread safety: reentrant.
#ifndef TOOLS_GGUF_MODEL_H_
#define TOOLS_GGUF_MODEL_H_

#include <cstdint>
#include <string>
#include <vector>

#include "engine/model.h"
#include "hbm/safetensors.h"
#include "tools/gguf_writer.h"

namespace emoe::tools {

// "qwen3moe" or "llama".
const char* GgufArchitecture(engine::Architecture a);

// One GGUF tensor and the checkpoint tensors it is made of (one, or the experts in id order).
struct GgufTensorPlan {
  gguf::TensorEntry entry;
  std::vector<std::string> sources;  // checkpoint tensor names, concatenated in this order
  int64_t permute_heads = 0;         // > 0: permute each source's rows for interleaved RoPE
};

// The tensors of `config` in GGUF order, in type `type` (norms and router: f32).
// REQUIRES: config.Validate() is OK.
std::vector<GgufTensorPlan> PlanGgufTensors(const engine::ModelConfig& config,
                                            gguf::TensorType type);
// The metadata llama.cpp's loader needs for `config` (hyperparameters and the tokenizer).
gguf::Metadata GgufMetadata(const engine::ModelConfig& config, gguf::TensorType type,
                            const std::string& name);

// permute_heads's row order: the source row that GGUF row `row` comes from, in a matrix of
// `heads` heads of `head_rows` rows each.
int64_t PermutedSourceRow(int64_t row, int64_t head_rows);

struct GgufExportStats {
  std::string architecture;
  uint64_t tensors = 0;
  uint64_t file_bytes = 0;
  std::vector<std::string> warnings;  // differences llama.cpp will compute (said, not refused)
};
// Reads the checkpoint in `model_dir` (config.json + safetensors, validated against the config)
// and writes `out_path`. Errors name the file and the tensor; a partial output is removed.
vmm::StatusOr<GgufExportStats> ExportGguf(const std::string& model_dir, const std::string& out_path,
                                          gguf::TensorType type);

}  // namespace emoe::tools

#endif  // TOOLS_GGUF_MODEL_H_
