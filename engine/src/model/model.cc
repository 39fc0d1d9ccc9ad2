#include "engine/model.h"

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

const char* ArchitectureName(Architecture a) {
  return a == Architecture::kMixtral ? "MixtralForCausalLM" : "Qwen3MoeForCausalLM";
}

Status ModelConfig::Validate() const {
  const std::pair<const char*, int64_t> positive[] = {
      {"vocab_size", vocab_size},
      {"hidden_size", hidden_size},
      {"moe_intermediate_size", moe_intermediate_size},
      {"num_hidden_layers", num_hidden_layers},
      {"num_attention_heads", num_attention_heads},
      {"num_key_value_heads", num_key_value_heads},
      {"head_dim", head_dim},
      {"num_experts", num_experts},
      {"num_experts_per_tok", num_experts_per_tok},
      {"max_position_embeddings", max_position_embeddings}};
  for (auto [name, v] : positive) {
    if (v <= 0 || v > (int64_t{1} << 31)) {
      return Status::InvalidArgument(std::string("config: ") + name + " = " + std::to_string(v) +
                                     " must be positive and below 2^31");
    }
  }
  if (num_attention_heads % num_key_value_heads != 0) {
    return Status::InvalidArgument(
        "config: num_attention_heads " + std::to_string(num_attention_heads) +
        " is not a multiple of num_key_value_heads " + std::to_string(num_key_value_heads));
  }
  if (head_dim % 2 != 0) {
    return Status::InvalidArgument("config: head_dim " + std::to_string(head_dim) +
                                   " must be even for RoPE");
  }
  if (num_experts_per_tok > num_experts) {
    return Status::InvalidArgument("config: num_experts_per_tok " +
                                   std::to_string(num_experts_per_tok) + " exceeds num_experts " +
                                   std::to_string(num_experts));
  }
  if (!(rms_norm_eps > 0) || !(rope_theta > 0)) {
    return Status::InvalidArgument("config: rms_norm_eps and rope_theta must be positive");
  }
  const double total = static_cast<double>(ExpertBytes(2)) * num_experts * num_hidden_layers +
                       2.0 * vocab_size * hidden_size * 2;
  if (total > std::pow(2.0, 40)) {
    return Status::InvalidArgument("config: the model would exceed 1 TiB");
  }
  return Status::Ok();
}

uint64_t ModelConfig::ExpertBytes(int dtype_bytes) const {
  return 3ull * hidden_size * moe_intermediate_size * dtype_bytes;
}

std::string ModelConfig::ToJson() const {
  json j;
  j["architectures"] = {ArchitectureName(architecture)};
  j["vocab_size"] = vocab_size;
  j["hidden_size"] = hidden_size;
  j["num_hidden_layers"] = num_hidden_layers;
  j["num_attention_heads"] = num_attention_heads;
  j["num_key_value_heads"] = num_key_value_heads;
  j["head_dim"] = head_dim;
  j["num_experts_per_tok"] = num_experts_per_tok;
  j["rope_theta"] = rope_theta;
  j["rms_norm_eps"] = rms_norm_eps;
  j["max_position_embeddings"] = max_position_embeddings;
  j["tie_word_embeddings"] = tie_word_embeddings;
  j["torch_dtype"] = "bfloat16";
  if (architecture == Architecture::kMixtral) {
    j["model_type"] = "mixtral";
    j["intermediate_size"] = moe_intermediate_size;
    j["num_local_experts"] = num_experts;
  } else {
    j["model_type"] = "qwen3_moe";
    j["intermediate_size"] = intermediate_size;
    j["moe_intermediate_size"] = moe_intermediate_size;
    j["num_experts"] = num_experts;
    j["norm_topk_prob"] = norm_topk_prob;
    j["decoder_sparse_step"] = 1;
    j["mlp_only_layers"] = json::array();
  }
  return j.dump(2);
}

StatusOr<ModelConfig> ParseModelConfig(const std::string& json_text) {
  json j = json::parse(json_text, nullptr, false);
  if (j.is_discarded() || !j.is_object())
    return Status::DataLoss("config.json is not a JSON object");
  if (!j.contains("architectures") || !j["architectures"].is_array() ||
      j["architectures"].empty() || !j["architectures"][0].is_string()) {
    return Status::DataLoss("config.json has no architectures list");
  }
  const std::string arch = j["architectures"][0];
  ModelConfig c;
  if (arch == "MixtralForCausalLM") {
    c.architecture = Architecture::kMixtral;
  } else if (arch == "Qwen3MoeForCausalLM") {
    c.architecture = Architecture::kQwen3Moe;
  } else {
    return Status::InvalidArgument("unsupported architecture '" + arch +
                                   "' (supported: MixtralForCausalLM, Qwen3MoeForCausalLM)");
  }
  const bool mixtral = c.architecture == Architecture::kMixtral;
  auto get_int = [&](const char* key, int64_t* out, bool required) -> Status {
    if (!j.contains(key)) {
      return required ? Status::DataLoss(std::string("config.json: missing '") + key + "'")
                      : Status::Ok();
    }
    if (!j[key].is_number_integer()) {
      return Status::DataLoss(std::string("config.json: '") + key + "' is not an integer");
    }
    *out = j[key].get<int64_t>();
    return Status::Ok();
  };
  VMM_RETURN_IF_ERROR(get_int("vocab_size", &c.vocab_size, true));
  VMM_RETURN_IF_ERROR(get_int("hidden_size", &c.hidden_size, true));
  VMM_RETURN_IF_ERROR(get_int("intermediate_size", &c.intermediate_size, mixtral));
  VMM_RETURN_IF_ERROR(get_int("num_hidden_layers", &c.num_hidden_layers, true));
  VMM_RETURN_IF_ERROR(get_int("num_attention_heads", &c.num_attention_heads, true));
  c.num_key_value_heads = c.num_attention_heads;
  VMM_RETURN_IF_ERROR(get_int("num_key_value_heads", &c.num_key_value_heads, false));
  VMM_RETURN_IF_ERROR(get_int("num_experts_per_tok", &c.num_experts_per_tok, true));
  VMM_RETURN_IF_ERROR(get_int("max_position_embeddings", &c.max_position_embeddings, false));
  if (mixtral) {
    c.moe_intermediate_size = c.intermediate_size;
    VMM_RETURN_IF_ERROR(get_int("num_local_experts", &c.num_experts, true));
    c.norm_topk_prob = true;
  } else {
    VMM_RETURN_IF_ERROR(get_int("moe_intermediate_size", &c.moe_intermediate_size, true));
    VMM_RETURN_IF_ERROR(get_int("num_experts", &c.num_experts, true));
    if (j.contains("norm_topk_prob") && j["norm_topk_prob"].is_boolean()) {
      c.norm_topk_prob = j["norm_topk_prob"];
    }
    if (j.contains("mlp_only_layers") && j["mlp_only_layers"].is_array() &&
        !j["mlp_only_layers"].empty()) {
      return Status::InvalidArgument("config.json: dense mlp_only_layers are not supported");
    }
    if (j.value("decoder_sparse_step", 1) != 1) {
      return Status::InvalidArgument("config.json: decoder_sparse_step != 1 is not supported");
    }
  }
  c.head_dim =
      c.hidden_size > 0 && c.num_attention_heads > 0 ? c.hidden_size / c.num_attention_heads : 0;
  VMM_RETURN_IF_ERROR(get_int("head_dim", &c.head_dim, false));
  if (j.contains("rope_theta") && j["rope_theta"].is_number()) c.rope_theta = j["rope_theta"];
  if (j.contains("rms_norm_eps") && j["rms_norm_eps"].is_number()) {
    c.rms_norm_eps = j["rms_norm_eps"];
  }
  if (j.contains("tie_word_embeddings") && j["tie_word_embeddings"].is_boolean()) {
    c.tie_word_embeddings = j["tie_word_embeddings"];
  }
  VMM_RETURN_IF_ERROR(c.Validate());
  return c;
}

StatusOr<ModelConfig> LoadModelConfig(const std::string& model_dir) {
  const std::string path = (fs::path(model_dir) / "config.json").string();
  std::ifstream in(path);
  if (!in) return Status::NotFound(path + " does not exist");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto c = ParseModelConfig(text);
  if (!c.ok()) {
    Status s = c.status();
    return s.Annotate(path);
  }
  return c;
}

std::vector<TensorSpec> ExpectedTensors(const ModelConfig& c) {
  std::vector<TensorSpec> out;
  const int64_t h = c.hidden_size, q = c.num_attention_heads * c.head_dim,
                kv = c.num_key_value_heads * c.head_dim, f = c.moe_intermediate_size;
  out.push_back({"model.embed_tokens.weight", {c.vocab_size, h}});
  const bool mixtral = c.architecture == Architecture::kMixtral;
  for (int l = 0; l < c.num_hidden_layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    out.push_back({p + "input_layernorm.weight", {h}, l});
    out.push_back({p + "self_attn.q_proj.weight", {q, h}, l});
    out.push_back({p + "self_attn.k_proj.weight", {kv, h}, l});
    out.push_back({p + "self_attn.v_proj.weight", {kv, h}, l});
    out.push_back({p + "self_attn.o_proj.weight", {h, q}, l});
    if (!mixtral) {
      out.push_back({p + "self_attn.q_norm.weight", {c.head_dim}, l});
      out.push_back({p + "self_attn.k_norm.weight", {c.head_dim}, l});
    }
    out.push_back({p + "post_attention_layernorm.weight", {h}, l});
    const std::string moe = p + (mixtral ? "block_sparse_moe." : "mlp.");
    out.push_back({moe + "gate.weight", {c.num_experts, h}, l});
    for (int e = 0; e < c.num_experts; ++e) {
      const std::string x = moe + "experts." + std::to_string(e) + ".";
      if (mixtral) {
        out.push_back({x + "w1.weight", {f, h}, l, e});
        out.push_back({x + "w2.weight", {h, f}, l, e});
        out.push_back({x + "w3.weight", {f, h}, l, e});
      } else {
        out.push_back({x + "gate_proj.weight", {f, h}, l, e});
        out.push_back({x + "up_proj.weight", {f, h}, l, e});
        out.push_back({x + "down_proj.weight", {h, f}, l, e});
      }
    }
  }
  out.push_back({"model.norm.weight", {h}});
  if (!c.tie_word_embeddings) out.push_back({"lm_head.weight", {c.vocab_size, h}});
  return out;
}

Status ValidateCheckpoint(const ModelConfig& config, const hbm::Checkpoint& checkpoint) {
  std::set<std::string> expected;
  for (const TensorSpec& s : ExpectedTensors(config)) {
    expected.insert(s.name);
    const hbm::TensorInfo* t = checkpoint.Find(s.name);
    if (t == nullptr) {
      return Status::DataLoss("checkpoint lacks tensor '" + s.name + "' required by " +
                              ArchitectureName(config.architecture));
    }
    if (t->shape != s.shape) {
      auto str = [](const std::vector<int64_t>& v) {
        std::string o = "[";
        for (size_t i = 0; i < v.size(); ++i) o += (i ? ", " : "") + std::to_string(v[i]);
        return o + "]";
      };
      return Status::DataLoss("tensor '" + s.name + "' in " + t->file + " has shape " +
                              str(t->shape) + ", the config needs " + str(s.shape));
    }
  }
  for (const hbm::TensorInfo& t : checkpoint.tensors) {
    if (!expected.count(t.name)) {
      return Status::DataLoss("checkpoint has tensor '" + t.name + "' that " +
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
  return {"tiny", "deepseek-v2-lite-experts", "qwen3-30b-a3b-experts", "bench", "scale"};
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
  } else if (name == "qwen3-30b-a3b-experts") {
    c.vocab_size = 256;
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
