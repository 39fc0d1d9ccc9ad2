// ModelConfig: its bounds, config.json in (through hbm::JsonReader: every field typed, nothing
// throws) and out, and the sizes it implies.
#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "engine/model.h"
#include "hbm/json_reader.h"
#include "vmm/file.h"

namespace emoe::engine {

using nlohmann::json;
namespace fs = std::filesystem;

namespace {

// One dimension's bounds. Far above any real model (DeepSeek-V3: 61 layers, 256 experts, hidden
// 7168; Qwen3-235B: 94 layers, vocab 151936; Llama 4 Scout: 10M positions), low enough that the
// products of ParameterCount() fit in 64 bits whatever the values.
struct DimLimit {
  int64_t ModelConfig::*member;
  const char* name;  // the config.json field (Mixtral's names differ for two, see JsonName)
  int64_t min, max;
};
constexpr DimLimit kDimLimits[] = {
    {&ModelConfig::vocab_size, "vocab_size", 1, int64_t{1} << 24},
    {&ModelConfig::hidden_size, "hidden_size", 1, int64_t{1} << 16},
    {&ModelConfig::intermediate_size, "intermediate_size", 0, int64_t{1} << 18},
    {&ModelConfig::moe_intermediate_size, "moe_intermediate_size", 1, int64_t{1} << 18},
    {&ModelConfig::num_hidden_layers, "num_hidden_layers", 1, 1024},
    {&ModelConfig::num_attention_heads, "num_attention_heads", 1, 1024},
    {&ModelConfig::num_key_value_heads, "num_key_value_heads", 1, 1024},
    {&ModelConfig::head_dim, "head_dim", 1, 1024},
    {&ModelConfig::num_experts, "num_experts", 1, 4096},
    {&ModelConfig::num_experts_per_tok, "num_experts_per_tok", 1, 4096},
    {&ModelConfig::max_position_embeddings, "max_position_embeddings", 1, int64_t{1} << 24},
};

// The config.json name of a dimension: Mixtral calls the expert width intermediate_size and the
// expert count num_local_experts.
std::string JsonName(const DimLimit& l, Architecture a) {
  if (a == Architecture::kMixtral) {
    if (l.member == &ModelConfig::moe_intermediate_size) return "intermediate_size";
    if (l.member == &ModelConfig::num_experts) return "num_local_experts";
  }
  return l.name;
}

std::string Num(uint64_t v) { return std::to_string(v); }

// Every bound and cross-field rule; errors read "<what>: field '<name>' ...".
Status ValidateConfig(const ModelConfig& c, const std::string& what) {
  auto bad = [&](const std::string& field, const std::string& message) {
    return Status::InvalidArgument(what + ": field '" + field + "' " + message);
  };
  for (const DimLimit& l : kDimLimits) {
    if (l.member == &ModelConfig::intermediate_size && c.architecture == Architecture::kMixtral) {
      continue;  // Mixtral's is the expert width, checked as moe_intermediate_size
    }
    const int64_t v = c.*l.member;
    if (v < l.min || v > l.max) {
      return bad(JsonName(l, c.architecture), "must be " + std::to_string(l.min) + ".." +
                                                  std::to_string(l.max) + ", got " +
                                                  std::to_string(v));
    }
  }
  if (c.num_attention_heads % c.num_key_value_heads != 0) {
    return bad("num_attention_heads", "= " + std::to_string(c.num_attention_heads) +
                                          " is not a multiple of num_key_value_heads " +
                                          std::to_string(c.num_key_value_heads));
  }
  if (c.head_dim % 2 != 0) {
    return bad("head_dim", "= " + std::to_string(c.head_dim) + " must be even for RoPE");
  }
  if (c.num_experts_per_tok > c.num_experts) {
    return bad("num_experts_per_tok", "= " + std::to_string(c.num_experts_per_tok) +
                                          " exceeds num_experts " + std::to_string(c.num_experts));
  }
  if (!std::isfinite(c.rope_theta) || !(c.rope_theta > 0)) {
    return bad("rope_theta", "must be a positive finite number");
  }
  if (!std::isfinite(c.rms_norm_eps) || !(c.rms_norm_eps > 0) || !(c.rms_norm_eps < 1)) {
    return bad("rms_norm_eps", "must be in (0, 1)");
  }
  // With the dimensions bounded above, these products cannot overflow.
  if (c.NumTensors() > kMaxModelTensors) {
    return Status::InvalidArgument(what + ": the model would have " + Num(c.NumTensors()) +
                                   " tensors, more than the limit of " + Num(kMaxModelTensors) +
                                   " (num_hidden_layers x num_experts is too large)");
  }
  if (c.ParameterCount() > kMaxModelParameters) {
    return Status::InvalidArgument(what + ": the model would have " + Num(c.ParameterCount()) +
                                   " parameters, more than the limit of " +
                                   Num(kMaxModelParameters));
  }
  return Status::Ok();
}

// Reads config.json's fields into a ModelConfig (types only; ValidateConfig checks values).
// Optional fields that are absent or null (Hugging Face writes None as null) keep the default.
class ConfigFields {
 public:
  explicit ConfigFields(const hbm::JsonReader& r) : r_(r) {}

  Status Int(const char* key, int64_t* out) {
    VMM_ASSIGN_OR_RETURN(*out, r_.Int64(key));
    return Status::Ok();
  }
  Status OptInt(const char* key, int64_t* out) {
    if (Absent(key)) return Status::Ok();
    return Int(key, out);
  }
  Status OptDouble(const char* key, double* out) {
    if (Absent(key)) return Status::Ok();
    VMM_ASSIGN_OR_RETURN(*out, r_.Double(key));
    return Status::Ok();
  }
  Status OptBool(const char* key, bool* out) {
    if (Absent(key)) return Status::Ok();
    VMM_ASSIGN_OR_RETURN(*out, r_.Bool(key));
    return Status::Ok();
  }
  bool Absent(const char* key) const {
    auto it = r_.value().find(key);
    return it == r_.value().end() || it->is_null();
  }
  const hbm::JsonReader& reader() const { return r_; }

 private:
  const hbm::JsonReader& r_;
};

StatusOr<Architecture> ReadArchitecture(const hbm::JsonReader& r) {
  VMM_ASSIGN_OR_RETURN(const std::vector<std::string> archs, r.StrList("architectures"));
  if (archs.empty()) return r.Invalid("architectures", "is empty");
  if (archs[0] == "MixtralForCausalLM") return Architecture::kMixtral;
  if (archs[0] == "Qwen3MoeForCausalLM") return Architecture::kQwen3Moe;
  return r.Invalid("architectures", "names unsupported architecture '" + archs[0].substr(0, 80) +
                                        "' (supported: MixtralForCausalLM, Qwen3MoeForCausalLM)");
}

// Qwen3-MoE's own fields: the expert width and count, and the (unsupported) dense layers.
Status ReadQwen3Fields(ConfigFields& f, ModelConfig* c) {
  VMM_RETURN_IF_ERROR(f.Int("moe_intermediate_size", &c->moe_intermediate_size));
  VMM_RETURN_IF_ERROR(f.Int("num_experts", &c->num_experts));
  VMM_RETURN_IF_ERROR(f.OptBool("norm_topk_prob", &c->norm_topk_prob));
  const hbm::JsonReader& r = f.reader();
  if (!f.Absent("mlp_only_layers")) {
    VMM_ASSIGN_OR_RETURN(const std::vector<int64_t> dense, r.Int64List("mlp_only_layers"));
    if (!dense.empty()) {
      return r.Invalid("mlp_only_layers", "lists dense layers, which are not supported");
    }
  }
  int64_t step = 1;
  VMM_RETURN_IF_ERROR(f.OptInt("decoder_sparse_step", &step));
  if (step != 1) {
    return r.Invalid("decoder_sparse_step",
                     "is " + std::to_string(step) + ": only 1 (every layer sparse) is supported");
  }
  return Status::Ok();
}

// ParseModelConfig, naming the text `what` in errors.
StatusOr<ModelConfig> ParseConfig(const std::string& json_text, const std::string& what) {
  VMM_ASSIGN_OR_RETURN(const json j, hbm::ParseJsonObject(json_text, what));
  const hbm::JsonReader r(j, what);
  ConfigFields f(r);
  ModelConfig c;
  VMM_ASSIGN_OR_RETURN(c.architecture, ReadArchitecture(r));
  const bool mixtral = c.architecture == Architecture::kMixtral;
  VMM_RETURN_IF_ERROR(f.Int("vocab_size", &c.vocab_size));
  VMM_RETURN_IF_ERROR(f.Int("hidden_size", &c.hidden_size));
  if (mixtral) {
    VMM_RETURN_IF_ERROR(f.Int("intermediate_size", &c.intermediate_size));
  } else {
    VMM_RETURN_IF_ERROR(f.OptInt("intermediate_size", &c.intermediate_size));
  }
  VMM_RETURN_IF_ERROR(f.Int("num_hidden_layers", &c.num_hidden_layers));
  VMM_RETURN_IF_ERROR(f.Int("num_attention_heads", &c.num_attention_heads));
  c.num_key_value_heads = c.num_attention_heads;
  VMM_RETURN_IF_ERROR(f.OptInt("num_key_value_heads", &c.num_key_value_heads));
  VMM_RETURN_IF_ERROR(f.Int("num_experts_per_tok", &c.num_experts_per_tok));
  VMM_RETURN_IF_ERROR(f.OptInt("max_position_embeddings", &c.max_position_embeddings));
  if (mixtral) {
    c.moe_intermediate_size = c.intermediate_size;
    VMM_RETURN_IF_ERROR(f.Int("num_local_experts", &c.num_experts));
    c.norm_topk_prob = true;
  } else {
    VMM_RETURN_IF_ERROR(ReadQwen3Fields(f, &c));
  }
  // Mixtral has no head_dim field: hidden_size / heads (0 when that is not positive: refused).
  c.head_dim =
      c.hidden_size > 0 && c.num_attention_heads > 0 ? c.hidden_size / c.num_attention_heads : 0;
  VMM_RETURN_IF_ERROR(f.OptInt("head_dim", &c.head_dim));
  VMM_RETURN_IF_ERROR(f.OptDouble("rope_theta", &c.rope_theta));
  VMM_RETURN_IF_ERROR(f.OptDouble("rms_norm_eps", &c.rms_norm_eps));
  VMM_RETURN_IF_ERROR(f.OptBool("tie_word_embeddings", &c.tie_word_embeddings));
  VMM_RETURN_IF_ERROR(ValidateConfig(c, what));
  return c;
}

}  // namespace

const char* ArchitectureName(Architecture a) {
  return a == Architecture::kMixtral ? "MixtralForCausalLM" : "Qwen3MoeForCausalLM";
}

Status ModelConfig::Validate() const { return ValidateConfig(*this, "config"); }

uint64_t ModelConfig::ExpertBytes(int dtype_bytes) const {
  return 3ull * hidden_size * moe_intermediate_size * dtype_bytes;
}

uint64_t ModelConfig::NumTensors() const {
  const uint64_t per_layer = 4 + 2 + (architecture == Architecture::kMixtral ? 0 : 2) + 1 +
                             3 * static_cast<uint64_t>(num_experts);
  return 1 + static_cast<uint64_t>(num_hidden_layers) * per_layer + 1 +
         (tie_word_embeddings ? 0 : 1);
}

uint64_t ModelConfig::ParameterCount() const {
  // Unsigned throughout: an unvalidated config gives a meaningless count, never overflow UB.
  const uint64_t h = hidden_size, d = head_dim, f = moe_intermediate_size, e = num_experts,
                 v = vocab_size, layers = num_hidden_layers;
  const uint64_t q = static_cast<uint64_t>(num_attention_heads) * d,
                 kv = static_cast<uint64_t>(num_key_value_heads) * d;
  const uint64_t norms = architecture == Architecture::kMixtral ? 2 * h : 2 * h + 2 * d;
  const uint64_t per_layer = norms + 2 * q * h + 2 * kv * h + e * h + e * 3 * f * h;
  return v * h * (tie_word_embeddings ? 1 : 2) + h + layers * per_layer;
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
  return ParseConfig(json_text, "config.json");
}

StatusOr<ModelConfig> LoadModelConfig(const std::string& model_dir) {
  const std::string path = (fs::path(model_dir) / "config.json").string();
  // A directory, a FIFO or a device named config.json is refused by type before any read.
  VMM_ASSIGN_OR_RETURN(const std::string text,
                       vmm::ReadRegularFile(path, "model config", kMaxConfigBytes));
  return ParseConfig(text, path);
}

}  // namespace emoe::engine
