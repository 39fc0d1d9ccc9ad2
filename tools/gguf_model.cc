#include "tools/gguf_model.h"

#include <bit>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>

namespace emoe::tools {

using engine::Architecture;
using engine::ModelConfig;
using gguf::TensorType;
using vmm::Status;
using vmm::StatusOr;

const char* GgufArchitecture(Architecture a) {
  return a == Architecture::kMixtral ? "llama" : "qwen3moe";
}

int64_t PermutedSourceRow(int64_t row, int64_t head_rows) {
  const int64_t head = row / head_rows, k = row % head_rows;
  return head * head_rows + (k % 2) * (head_rows / 2) + k / 2;
}

namespace {

uint64_t U(int64_t v) { return static_cast<uint64_t>(v); }

GgufTensorPlan One(const std::string& name, std::vector<uint64_t> dims, TensorType type,
                   const std::string& source, int64_t permute_heads = 0) {
  return {{name, std::move(dims), type}, {source}, permute_heads};
}

// The experts of one layer stacked: {cols, rows, experts}, sources in expert id order.
GgufTensorPlan Stacked(const std::string& name, uint64_t cols, uint64_t rows, TensorType type,
                       const ModelConfig& c, const std::string& prefix, const std::string& leaf) {
  GgufTensorPlan p{{name, {cols, rows, U(c.num_experts)}, type}, {}, 0};
  for (int64_t e = 0; e < c.num_experts; ++e) {
    p.sources.push_back(prefix + "experts." + std::to_string(e) + "." + leaf + ".weight");
  }
  return p;
}

}  // namespace

std::vector<GgufTensorPlan> PlanGgufTensors(const ModelConfig& c, TensorType t) {
  const bool mixtral = c.architecture == Architecture::kMixtral;
  const uint64_t h = U(c.hidden_size), q = U(c.num_attention_heads * c.head_dim),
                 kv = U(c.num_key_value_heads * c.head_dim), f = U(c.moe_intermediate_size),
                 hd = U(c.head_dim);
  // Norm weights and the router stay f32 (as llama.cpp's converter keeps them): ggml's CPU
  // backend multiplies f32 activations elementwise by f32 weights only.
  const TensorType f32 = TensorType::kF32;
  std::vector<GgufTensorPlan> out;
  out.push_back(One("token_embd.weight", {h, U(c.vocab_size)}, t, "model.embed_tokens.weight"));
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    const std::string b = "blk." + std::to_string(l) + ".";
    const std::string p = "model.layers." + std::to_string(l) + ".";
    out.push_back(One(b + "attn_norm.weight", {h}, f32, p + "input_layernorm.weight"));
    // Interleaved RoPE ("llama"): Q and K rows permuted per head.
    out.push_back(One(b + "attn_q.weight", {h, q}, t, p + "self_attn.q_proj.weight",
                      mixtral ? c.num_attention_heads : 0));
    out.push_back(One(b + "attn_k.weight", {h, kv}, t, p + "self_attn.k_proj.weight",
                      mixtral ? c.num_key_value_heads : 0));
    out.push_back(One(b + "attn_v.weight", {h, kv}, t, p + "self_attn.v_proj.weight"));
    out.push_back(One(b + "attn_output.weight", {q, h}, t, p + "self_attn.o_proj.weight"));
    if (!mixtral) {
      out.push_back(One(b + "attn_q_norm.weight", {hd}, f32, p + "self_attn.q_norm.weight"));
      out.push_back(One(b + "attn_k_norm.weight", {hd}, f32, p + "self_attn.k_norm.weight"));
    }
    out.push_back(One(b + "ffn_norm.weight", {h}, f32, p + "post_attention_layernorm.weight"));
    const std::string moe = p + (mixtral ? "block_sparse_moe." : "mlp.");
    out.push_back(One(b + "ffn_gate_inp.weight", {h, U(c.num_experts)}, f32, moe + "gate.weight"));
    out.push_back(
        Stacked(b + "ffn_gate_exps.weight", h, f, t, c, moe, mixtral ? "w1" : "gate_proj"));
    out.push_back(Stacked(b + "ffn_up_exps.weight", h, f, t, c, moe, mixtral ? "w3" : "up_proj"));
    out.push_back(
        Stacked(b + "ffn_down_exps.weight", f, h, t, c, moe, mixtral ? "w2" : "down_proj"));
  }
  out.push_back(One("output_norm.weight", {h}, f32, "model.norm.weight"));
  if (!c.tie_word_embeddings) {
    out.push_back(One("output.weight", {h, U(c.vocab_size)}, t, "lm_head.weight"));
  }
  return out;
}

namespace {

// The tokenizer: SPM ids 0..255 are the byte tokens, the rest plain tokens.
void AddTokenizer(const ModelConfig& c, gguf::Metadata* m) {
  std::vector<std::string> tokens;
  std::vector<float> scores;
  std::vector<int32_t> types;
  for (int64_t i = 0; i < c.vocab_size; ++i) {
    char b[32];
    if (i < 256) {
      std::snprintf(b, sizeof b, "<0x%02X>", static_cast<unsigned>(i));
    } else {
      std::snprintf(b, sizeof b, "<t%lld>", static_cast<long long>(i));
    }
    tokens.emplace_back(b);
    scores.push_back(0.0f);
    types.push_back(i < 256 ? 6 : 1);  // LLAMA_TOKEN_TYPE_BYTE, _NORMAL
  }
  m->String("tokenizer.ggml.model", "llama");
  m->StringArray("tokenizer.ggml.tokens", tokens);
  m->F32Array("tokenizer.ggml.scores", scores);
  m->I32Array("tokenizer.ggml.token_type", types);
  m->U32("tokenizer.ggml.unknown_token_id", 0);
  m->U32("tokenizer.ggml.bos_token_id", 1);
  m->U32("tokenizer.ggml.eos_token_id", 2);
  m->Bool("tokenizer.ggml.add_bos_token", false);
  m->Bool("tokenizer.ggml.add_eos_token", false);
}

}  // namespace

gguf::Metadata GgufMetadata(const ModelConfig& c, TensorType t, const std::string& name) {
  gguf::Metadata m;
  const std::string a = GgufArchitecture(c.architecture);
  const bool mixtral = c.architecture == Architecture::kMixtral;
  auto u = [](int64_t v) { return static_cast<uint32_t>(v); };
  m.String("general.architecture", a);
  m.String("general.name", name);
  m.U32("general.file_type", t == TensorType::kF32 ? 0 : 32);  // ALL_F32, MOSTLY_BF16
  m.U32("general.alignment", gguf::kDefaultAlignment);
  m.U32(a + ".vocab_size", u(c.vocab_size));
  m.U32(a + ".context_length", u(c.max_position_embeddings));
  m.U32(a + ".embedding_length", u(c.hidden_size));
  m.U32(a + ".block_count", u(c.num_hidden_layers));
  // Mixtral's intermediate_size is its experts' width (llama.cpp's n_ff for "llama" experts).
  m.U32(a + ".feed_forward_length", u(mixtral ? c.moe_intermediate_size : c.intermediate_size));
  if (!mixtral) m.U32(a + ".expert_feed_forward_length", u(c.moe_intermediate_size));
  m.U32(a + ".attention.head_count", u(c.num_attention_heads));
  m.U32(a + ".attention.head_count_kv", u(c.num_key_value_heads));
  m.U32(a + ".attention.key_length", u(c.head_dim));
  m.U32(a + ".attention.value_length", u(c.head_dim));
  m.U32(a + ".rope.dimension_count", u(c.head_dim));
  m.F32(a + ".rope.freq_base", static_cast<float>(c.rope_theta));
  m.F32(a + ".attention.layer_norm_rms_epsilon", static_cast<float>(c.rms_norm_eps));
  m.U32(a + ".expert_count", u(c.num_experts));
  m.U32(a + ".expert_used_count", u(c.num_experts_per_tok));
  AddTokenizer(c, &m);
  return m;
}

namespace {

float HalfToFloat(uint16_t h) {
  const uint32_t sign = (h >> 15) & 1, exp = (h >> 10) & 0x1f, man = h & 0x3ff;
  float v;
  if (exp == 0) {
    v = std::ldexp(static_cast<float>(man), -24);
  } else if (exp == 31) {
    v = man ? NAN : INFINITY;
  } else {
    v = std::ldexp(static_cast<float>(man | 0x400), static_cast<int>(exp) - 25);
  }
  return sign ? -v : v;
}

// `raw` (elements of `from`) in type `to`; identical types keep the bytes.
std::string Convert(const std::string& raw, hbm::DType from, TensorType to) {
  const bool same = (from == hbm::DType::kF32 && to == TensorType::kF32) ||
                    (from == hbm::DType::kBF16 && to == TensorType::kBF16) ||
                    (from == hbm::DType::kF16 && to == TensorType::kF16);
  if (same) return raw;
  const uint64_t n = raw.size() / hbm::DTypeSize(from);
  std::string out(n * gguf::TensorTypeSize(to), '\0');
  for (uint64_t i = 0; i < n; ++i) {
    float v;
    if (from == hbm::DType::kF32) {
      std::memcpy(&v, &raw[i * 4], 4);
    } else {
      uint16_t b;
      std::memcpy(&b, &raw[i * 2], 2);
      v = from == hbm::DType::kBF16 ? engine::Bf16ToFloat(b) : HalfToFloat(b);
    }
    if (to == TensorType::kF32) {
      std::memcpy(&out[i * 4], &v, 4);
    } else {
      const uint16_t b = engine::FloatToBf16(v);  // kF16 output is not offered (Plan: f32, bf16)
      std::memcpy(&out[i * 2], &b, 2);
    }
  }
  return out;
}

// Rows of a [heads * head_rows, cols] matrix in PermutedSourceRow's order.
std::string PermuteRows(const std::string& bytes, int64_t heads, int64_t rows) {
  const uint64_t row_bytes = bytes.size() / U(rows);
  const int64_t head_rows = rows / heads;
  std::string out(bytes.size(), '\0');
  for (int64_t r = 0; r < rows; ++r) {
    std::memcpy(&out[U(r) * row_bytes], &bytes[U(PermutedSourceRow(r, head_rows)) * row_bytes],
                row_bytes);
  }
  return out;
}

struct FileCloser {
  void operator()(std::FILE* f) const { std::fclose(f); }
};

// Reads tensors' bytes from their shards, keeping the last shard open.
class TensorReader {
 public:
  StatusOr<std::string> Read(const hbm::TensorInfo& t) {
    if (t.file != path_) {
      f_.reset(std::fopen(t.file.c_str(), "rb"));
      if (!f_) return Status::NotFound("open " + t.file + ": " + std::strerror(errno));
      path_ = t.file;
    }
    std::string out(t.size_bytes, '\0');
    if (fseeko(f_.get(), static_cast<off_t>(t.file_offset), SEEK_SET) != 0 ||
        std::fread(out.data(), 1, out.size(), f_.get()) != out.size()) {
      return Status::DataLoss("read tensor '" + t.name + "' from " + t.file + " failed (" +
                              std::to_string(t.size_bytes) + " bytes at " +
                              std::to_string(t.file_offset) + ")");
    }
    return out;
  }

 private:
  std::string path_;
  std::unique_ptr<std::FILE, FileCloser> f_;
};

std::vector<std::string> Warnings(const ModelConfig& c) {
  std::vector<std::string> w;
  if (c.architecture == Architecture::kQwen3Moe && !c.norm_topk_prob) {
    w.push_back(
        "norm_topk_prob is false, but llama.cpp's qwen3moe always renormalizes the top-k "
        "routing weights: its outputs will differ from the engine's");
  }
  return w;
}

}  // namespace

StatusOr<GgufExportStats> ExportGguf(const std::string& model_dir, const std::string& out_path,
                                     TensorType type) {
  if (type != TensorType::kF32 && type != TensorType::kBF16) {
    return Status::InvalidArgument("gguf export writes f32 or bf16");
  }
  VMM_ASSIGN_OR_RETURN(ModelConfig config, engine::LoadModelConfig(model_dir));
  VMM_ASSIGN_OR_RETURN(hbm::Checkpoint ckpt, hbm::OpenCheckpoint(model_dir));
  VMM_RETURN_IF_ERROR(engine::ValidateCheckpoint(config, ckpt));
  const std::vector<GgufTensorPlan> plan = PlanGgufTensors(config, type);
  std::vector<gguf::TensorEntry> entries;
  for (const GgufTensorPlan& p : plan) entries.push_back(p.entry);
  const std::string name = std::string("emoe ") + engine::ArchitectureName(config.architecture);
  VMM_ASSIGN_OR_RETURN(gguf::GgufFile file,
                       gguf::GgufFile::Create(out_path, GgufMetadata(config, type, name), entries));
  TensorReader reader;
  for (size_t i = 0; i < plan.size(); ++i) {
    for (const std::string& source : plan[i].sources) {
      const hbm::TensorInfo* t = ckpt.Find(source);
      if (t == nullptr) return Status::DataLoss("checkpoint lacks tensor '" + source + "'");
      VMM_ASSIGN_OR_RETURN(std::string raw, reader.Read(*t));
      std::string bytes = Convert(raw, t->dtype, plan[i].entry.type);
      if (plan[i].permute_heads > 0) {
        bytes = PermuteRows(bytes, plan[i].permute_heads, t->shape[0]);
      }
      VMM_RETURN_IF_ERROR(file.Append(i, bytes));
    }
  }
  VMM_RETURN_IF_ERROR(file.Finish());
  GgufExportStats stats;
  stats.architecture = GgufArchitecture(config.architecture);
  stats.tensors = plan.size();
  stats.file_bytes = file.file_bytes();
  stats.warnings = Warnings(config);
  return stats;
}

}  // namespace emoe::tools
