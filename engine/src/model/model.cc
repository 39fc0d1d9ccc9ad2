#include "engine/model.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

namespace emoe::engine {

using nlohmann::json;
namespace fs = std::filesystem;

Status ForEachExpectedTensor(const ModelConfig& c,
                             const std::function<Status(const TensorSpec&)>& visit) {
  const int64_t h = c.hidden_size, q = c.num_attention_heads * c.head_dim,
                kv = c.num_key_value_heads * c.head_dim, f = c.moe_intermediate_size;
  VMM_RETURN_IF_ERROR(visit({"model.embed_tokens.weight", {c.vocab_size, h}}));
  const bool mixtral = c.architecture == Architecture::kMixtral;
  for (int l = 0; l < c.num_hidden_layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    VMM_RETURN_IF_ERROR(visit({p + "input_layernorm.weight", {h}, l}));
    VMM_RETURN_IF_ERROR(visit({p + "self_attn.q_proj.weight", {q, h}, l}));
    VMM_RETURN_IF_ERROR(visit({p + "self_attn.k_proj.weight", {kv, h}, l}));
    VMM_RETURN_IF_ERROR(visit({p + "self_attn.v_proj.weight", {kv, h}, l}));
    VMM_RETURN_IF_ERROR(visit({p + "self_attn.o_proj.weight", {h, q}, l}));
    if (!mixtral) {
      VMM_RETURN_IF_ERROR(visit({p + "self_attn.q_norm.weight", {c.head_dim}, l}));
      VMM_RETURN_IF_ERROR(visit({p + "self_attn.k_norm.weight", {c.head_dim}, l}));
    }
    VMM_RETURN_IF_ERROR(visit({p + "post_attention_layernorm.weight", {h}, l}));
    const std::string moe = p + (mixtral ? "block_sparse_moe." : "mlp.");
    VMM_RETURN_IF_ERROR(visit({moe + "gate.weight", {c.num_experts, h}, l}));
    for (int e = 0; e < c.num_experts; ++e) {
      const std::string x = moe + "experts." + std::to_string(e) + ".";
      VMM_RETURN_IF_ERROR(visit({x + (mixtral ? "w1" : "gate_proj") + ".weight", {f, h}, l, e}));
      if (mixtral) {
        VMM_RETURN_IF_ERROR(visit({x + "w2.weight", {h, f}, l, e}));
        VMM_RETURN_IF_ERROR(visit({x + "w3.weight", {f, h}, l, e}));
      } else {
        VMM_RETURN_IF_ERROR(visit({x + "up_proj.weight", {f, h}, l, e}));
        VMM_RETURN_IF_ERROR(visit({x + "down_proj.weight", {h, f}, l, e}));
      }
    }
  }
  VMM_RETURN_IF_ERROR(visit({"model.norm.weight", {h}}));
  if (!c.tie_word_embeddings) VMM_RETURN_IF_ERROR(visit({"lm_head.weight", {c.vocab_size, h}}));
  return Status::Ok();
}

std::vector<TensorSpec> ExpectedTensors(const ModelConfig& c) {
  std::vector<TensorSpec> out;
  out.reserve(std::min(c.NumTensors(), kMaxModelTensors));
  Status s = ForEachExpectedTensor(c, [&out](const TensorSpec& t) {
    out.push_back(t);
    return Status::Ok();
  });
  (void)s;  // the visitor never fails
  return out;
}

namespace {

std::string ShapeString(const std::vector<int64_t>& v) {
  std::string o = "[";
  for (size_t i = 0; i < v.size(); ++i) o += (i ? ", " : "") + std::to_string(v[i]);
  return o + "]";
}

}  // namespace

Status ValidateCheckpoint(const ModelConfig& config, const hbm::Checkpoint& checkpoint) {
  VMM_RETURN_IF_ERROR(config.Validate());
  uint64_t have_params = 0;
  for (const hbm::TensorInfo& t : checkpoint.tensors) have_params += t.num_elements();
  const uint64_t want_tensors = config.NumTensors(), want_params = config.ParameterCount();
  const bool totals_differ =
      want_tensors != checkpoint.tensors.size() || want_params != have_params;
  // The totals, compared before any tensor is listed, say how far apart the two are.
  auto with_totals = [&](const std::string& m) {
    if (!totals_differ) return Status::DataLoss(m);
    return Status::DataLoss(m + " (the config implies " + std::to_string(want_tensors) +
                            " tensors, " + std::to_string(want_params) +
                            " parameters; the checkpoint has " +
                            std::to_string(checkpoint.tensors.size()) + " tensors, " +
                            std::to_string(have_params) + " parameters)");
  };
  // Walked, not listed: stops at the first tensor the checkpoint lacks, so at most
  // checkpoint.tensors.size() + 1 specs are made, whatever the config claims.
  uint64_t matched = 0;
  VMM_RETURN_IF_ERROR(ForEachExpectedTensor(config, [&](const TensorSpec& s) -> Status {
    const hbm::TensorInfo* t = checkpoint.Find(s.name);
    if (t == nullptr) {
      return with_totals("checkpoint lacks tensor '" + s.name + "' required by " +
                         ArchitectureName(config.architecture));
    }
    if (t->shape != s.shape) {
      return with_totals("tensor '" + s.name + "' in " + t->file + " has shape " +
                         ShapeString(t->shape) + ", the config needs " + ShapeString(s.shape));
    }
    ++matched;
    return Status::Ok();
  }));
  if (matched == checkpoint.tensors.size()) return Status::Ok();
  // Every expected tensor is there (so there are at most as many as the checkpoint's): name an
  // extra one.
  std::set<std::string> expected;
  Status listed = ForEachExpectedTensor(config, [&expected](const TensorSpec& s) {
    expected.insert(s.name);
    return Status::Ok();
  });
  (void)listed;  // the visitor never fails
  for (const hbm::TensorInfo& t : checkpoint.tensors) {
    if (!expected.count(t.name)) {
      return with_totals("checkpoint has tensor '" + t.name + "' that " +
                         ArchitectureName(config.architecture) + " does not use");
    }
  }
  return Status::Ok();
}

// ---------------------------------------------------------------------------------------------
// Generator

uint16_t FloatToBf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffff) > 0x7f800000) return static_cast<uint16_t>((u >> 16) | 0x40);  // NaN
  u += 0x7fff + ((u >> 16) & 1);
  return static_cast<uint16_t>(u >> 16);
}

float Bf16ToFloat(uint16_t b) {
  const uint32_t u = static_cast<uint32_t>(b) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

std::vector<std::string> PresetNames() {
  return {"tiny",
          "deepseek-v2-lite-experts",
          "qwen3-30b-a3b-experts",
          "qwen3-text",
          "bench",
          "scale",
          "scale-large",
          "mixtral-text"};
}

std::string PresetVocabulary(const std::string& name) {
  if (name == "qwen3-text") return "qwen3";
  if (name == "mixtral-text") return "mistral";
  return "";
}

StatusOr<ModelConfig> PresetConfig(const std::string& name) {
  ModelConfig c;
  c.architecture = Architecture::kQwen3Moe;
  c.rope_theta = 1000000.0;
  c.max_position_embeddings = 4096;
  if (name == "tiny") {
    c.vocab_size = 256;  // the byte-level tokenizer's vocabulary
    c.hidden_size = 64;
    c.intermediate_size = 128;
    c.moe_intermediate_size = 32;
    c.num_hidden_layers = 2;
    c.num_attention_heads = 4;
    c.num_key_value_heads = 2;
    c.head_dim = 16;
    c.num_experts = 8;
    c.num_experts_per_tok = 2;
    c.max_position_embeddings = 512;
  } else if (name == "deepseek-v2-lite-experts") {
    c.vocab_size = 256;
    c.hidden_size = 256;
    c.intermediate_size = 1024;
    c.moe_intermediate_size = 128;
    c.num_hidden_layers = 4;
    c.num_attention_heads = 8;
    c.num_key_value_heads = 4;
    c.head_dim = 32;
    c.num_experts = 64;
    c.num_experts_per_tok = 6;
  } else if (name == "qwen3-30b-a3b-experts" || name == "qwen3-text") {
    // qwen3-text: Qwen3's embedding rows (151936: its 151669 tokens padded, as the real
    // config.json has them), for the real tokenizer gen_model writes beside the weights.
    c.vocab_size = name == "qwen3-text" ? 151936 : 256;
    c.hidden_size = 256;
    c.intermediate_size = 1024;
    c.moe_intermediate_size = 96;
    c.num_hidden_layers = 4;
    c.num_attention_heads = 8;
    c.num_key_value_heads = 4;
    c.head_dim = 32;
    c.num_experts = 128;
    c.num_experts_per_tok = 8;
  } else if (name == "bench") {
    c.vocab_size = 256;
    c.hidden_size = 1024;
    c.intermediate_size = 4096;
    c.moe_intermediate_size = 1024;  // 3 x 1024 x 1024 x 2 B = 6 MiB per expert in bf16
    c.num_hidden_layers = 8;
    c.num_attention_heads = 16;
    c.num_key_value_heads = 4;
    c.head_dim = 64;
    c.num_experts = 32;
    c.num_experts_per_tok = 4;
  } else if (name == "mixtral-text") {  // Mixtral's layout and 32000-token vocabulary, small
    c.architecture = Architecture::kMixtral;
    c.vocab_size = 32000;
    c.hidden_size = 128;
    c.intermediate_size = 128;  // Mixtral's intermediate_size is the experts' width
    c.moe_intermediate_size = 128;
    c.num_hidden_layers = 2;
    c.num_attention_heads = 4;
    c.num_key_value_heads = 2;
    c.head_dim = 32;  // hidden_size / num_attention_heads, as Mixtral derives it
    c.num_experts = 8;
    c.num_experts_per_tok = 2;
    c.rms_norm_eps = 1e-5;
  } else if (name == "scale") {  // the elastic-scaling experiment: 384 MiB of 6 MiB experts
    c.vocab_size = 256;
    c.hidden_size = 1024;
    c.intermediate_size = 4096;
    c.moe_intermediate_size = 1024;
    c.num_hidden_layers = 4;
    c.num_attention_heads = 16;
    c.num_key_value_heads = 4;
    c.head_dim = 64;
    c.num_experts = 16;
    c.num_experts_per_tok = 2;
  } else if (name == "scale-large") {
    // The large elastic-scaling experiment: 4 x 144 experts of 3.94 MiB, two 2 MiB pages each
    // (no buddy gap in an arena); 2 -> 4 moves 1.1 GiB while a step of 8 requests reads ~15
    // experts a layer (240 MiB, less than scale's); elasticmoe_parts_test checks the arithmetic.
    c.vocab_size = 256;
    c.hidden_size = 1024;
    c.intermediate_size = 4096;
    c.moe_intermediate_size = 672;
    c.num_hidden_layers = 4;
    c.num_attention_heads = 16;
    c.num_key_value_heads = 4;
    c.head_dim = 64;
    c.num_experts = 144;
    c.num_experts_per_tok = 2;
  } else {
    std::string names;
    for (const auto& n : PresetNames()) names += (names.empty() ? "" : ", ") + n;
    return Status::InvalidArgument("unknown preset '" + name + "' (presets: " + names + ")");
  }
  VMM_RETURN_IF_ERROR(c.Validate());
  return c;
}

namespace {

uint64_t SplitMix(uint64_t* s) {
  uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

uint64_t NameHash(const std::string& s) {
  uint64_t h = 1469598103934665603ull;  // FNV-1a
  for (unsigned char ch : s) h = (h ^ ch) * 1099511628211ull;
  return h;
}

// The tensor's bytes: a stream seeded by (seed, name), so values do not depend on order or
// sharding.
std::string TensorBytes(const TensorSpec& s, const GeneratorOptions& o) {
  uint64_t n = 1;
  for (int64_t d : s.shape) n *= d;
  const bool is_norm = s.shape.size() == 1;
  // Embeddings: unit-variance rows; matrices: uniform +-1/sqrt(fan_in) (fan_in = columns).
  const double fan_in = s.shape.size() == 2 ? static_cast<double>(s.shape[1]) : 1.0;
  const bool embedding = s.name == "model.embed_tokens.weight";
  const double scale = embedding ? std::sqrt(3.0) : std::sqrt(3.0 / fan_in);
  const size_t width = o.dtype == hbm::DType::kF32 ? 4 : 2;
  std::string out(n * width, '\0');
  uint64_t state = o.seed * 0x2545f4914f6cdd1dull ^ NameHash(s.name);
  for (uint64_t i = 0; i < n; ++i) {
    float v = 1.0f;
    if (!is_norm) {
      const double u = (SplitMix(&state) >> 11) * (1.0 / 9007199254740992.0);  // [0, 1)
      v = static_cast<float>((2 * u - 1) * scale);
    }
    if (width == 4) {
      std::memcpy(&out[i * 4], &v, 4);
    } else {
      const uint16_t b = FloatToBf16(v);
      std::memcpy(&out[i * 2], &b, 2);
    }
  }
  return out;
}

}  // namespace

Status GenerateModel(const ModelConfig& config, const GeneratorOptions& options,
                     const std::string& dir) {
  VMM_RETURN_IF_ERROR(config.Validate());
  if (options.dtype != hbm::DType::kBF16 && options.dtype != hbm::DType::kF32) {
    return Status::InvalidArgument("the generator writes BF16 or F32");
  }
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return Status::PermissionDenied("create " + dir + ": " + ec.message());
  // A previous model in the same directory must not mix with this one.
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const std::string n = e.path().filename().string();
    if (e.path().extension() == ".safetensors" || n == "model.safetensors.index.json") {
      fs::remove(e.path(), ec);
    }
  }
  {
    std::ofstream cfg(fs::path(dir) / "config.json");
    cfg << config.ToJson() << "\n";
    if (!cfg) return Status::DataLoss("write " + dir + "/config.json failed");
  }
  const std::vector<TensorSpec> specs = ExpectedTensors(config);
  const uint64_t width = options.dtype == hbm::DType::kF32 ? 4 : 2;
  // Group tensors into shards of at most max_shard_bytes (a tensor never spans shards).
  std::vector<std::vector<const TensorSpec*>> shards(1);
  uint64_t in_shard = 0;
  for (const TensorSpec& s : specs) {
    uint64_t bytes = width;
    for (int64_t d : s.shape) bytes *= d;
    if (in_shard > 0 && in_shard + bytes > options.max_shard_bytes) {
      shards.emplace_back();
      in_shard = 0;
    }
    shards.back().push_back(&s);
    in_shard += bytes;
  }
  const bool sharded = shards.size() > 1;
  json weight_map = json::object();
  for (size_t i = 0; i < shards.size(); ++i) {
    char name[64];
    if (sharded) {
      std::snprintf(name, sizeof(name), "model-%05zu-of-%05zu.safetensors", i + 1, shards.size());
    } else {
      std::snprintf(name, sizeof(name), "model.safetensors");
    }
    std::vector<hbm::TensorToWrite> tensors;
    for (const TensorSpec* s : shards[i]) {
      tensors.push_back({s->name, options.dtype, s->shape, TensorBytes(*s, options)});
      weight_map[s->name] = name;
    }
    VMM_RETURN_IF_ERROR(
        hbm::WriteSafetensors((fs::path(dir) / name).string(), tensors, {{"format", "pt"}}, 4096));
  }
  if (sharded) {
    std::ofstream idx(fs::path(dir) / "model.safetensors.index.json");
    idx << json{{"metadata", json::object()}, {"weight_map", weight_map}}.dump(1) << "\n";
    if (!idx) return Status::DataLoss("write the index in " + dir + " failed");
  }
  return Status::Ok();
}

}  // namespace emoe::engine
