#include "engine/model.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <new>
#include <nlohmann/json.hpp>
#include <random>

#include "../hbm/test_files.h"

// Counts the bytes operator new hands out, so that a test can show that refusing a config that
// claims billions of tensors allocates next to nothing.
std::atomic<uint64_t> g_new_bytes{0};
void* operator new(std::size_t n) {
  g_new_bytes.fetch_add(n, std::memory_order_relaxed);
  void* p = std::malloc(n == 0 ? 1 : n);
  if (p == nullptr) std::abort();  // the test binary has no use for bad_alloc
  return p;
}
// GCC pairs operator new with operator delete and warns that these free() what "new" gave; here
// new is malloc, so free is its match.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

namespace emoe::engine {
namespace {

using nlohmann::json;

using hbm::testing::ScratchDir;

// The relevant part of mistralai/Mixtral-8x7B-v0.1's config.json.
constexpr char kMixtral[] = R"({
  "architectures": ["MixtralForCausalLM"], "hidden_size": 4096, "intermediate_size": 14336,
  "max_position_embeddings": 32768, "model_type": "mixtral", "num_attention_heads": 32,
  "num_experts_per_tok": 2, "num_hidden_layers": 32, "num_key_value_heads": 8,
  "num_local_experts": 8, "rms_norm_eps": 1e-05, "rope_theta": 1000000.0,
  "tie_word_embeddings": false, "torch_dtype": "bfloat16", "vocab_size": 32000})";

// The relevant part of Qwen/Qwen3-30B-A3B's config.json.
constexpr char kQwen3[] = R"({
  "architectures": ["Qwen3MoeForCausalLM"], "decoder_sparse_step": 1, "head_dim": 128,
  "hidden_size": 2048, "intermediate_size": 6144, "max_position_embeddings": 40960,
  "mlp_only_layers": [], "model_type": "qwen3_moe", "moe_intermediate_size": 768,
  "norm_topk_prob": true, "num_attention_heads": 32, "num_experts": 128,
  "num_experts_per_tok": 8, "num_hidden_layers": 48, "num_key_value_heads": 4,
  "rms_norm_eps": 1e-06, "rope_theta": 1000000.0, "tie_word_embeddings": false,
  "vocab_size": 151936})";

const TensorSpec* FindSpec(const std::vector<TensorSpec>& v, const std::string& name) {
  for (const auto& s : v) {
    if (s.name == name) return &s;
  }
  return nullptr;
}

TEST(ModelConfigTest, MixtralTensorsAreNamedAsInTheRealCheckpoint) {
  auto c = ParseModelConfig(kMixtral);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->architecture, Architecture::kMixtral);
  EXPECT_EQ(c->head_dim, 128);
  EXPECT_EQ(c->num_experts, 8);
  EXPECT_EQ(c->moe_intermediate_size, 14336);
  const auto t = ExpectedTensors(*c);
  EXPECT_EQ(t.size(), 1u + 32 * (4 + 2 + 1 + 8 * 3) + 2);
  const TensorSpec* w2 = FindSpec(t, "model.layers.31.block_sparse_moe.experts.7.w2.weight");
  ASSERT_NE(w2, nullptr);
  EXPECT_EQ(w2->shape, (std::vector<int64_t>{4096, 14336}));
  EXPECT_EQ(w2->layer, 31);
  EXPECT_EQ(w2->expert, 7);
  EXPECT_EQ(FindSpec(t, "model.layers.0.self_attn.k_proj.weight")->shape,
            (std::vector<int64_t>{1024, 4096}));
  EXPECT_NE(FindSpec(t, "lm_head.weight"), nullptr);
}

TEST(ModelConfigTest, Qwen3MoeTensorsAreNamedAsInTheRealCheckpoint) {
  auto c = ParseModelConfig(kQwen3);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->architecture, Architecture::kQwen3Moe);
  const auto t = ExpectedTensors(*c);
  EXPECT_EQ(t.size(), 1u + 48 * (4 + 2 + 2 + 1 + 128 * 3) + 2);
  EXPECT_EQ(FindSpec(t, "model.layers.47.mlp.experts.127.down_proj.weight")->shape,
            (std::vector<int64_t>{2048, 768}));
  EXPECT_EQ(FindSpec(t, "model.layers.0.self_attn.q_proj.weight")->shape,
            (std::vector<int64_t>{4096, 2048}));
  EXPECT_EQ(FindSpec(t, "model.layers.3.self_attn.q_norm.weight")->shape,
            (std::vector<int64_t>{128}));
  EXPECT_EQ(FindSpec(t, "model.layers.3.mlp.gate.weight")->shape,
            (std::vector<int64_t>{128, 2048}));
  // And it round-trips through ToJson.
  auto again = ParseModelConfig(c->ToJson());
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(again->moe_intermediate_size, 768);
  EXPECT_EQ(again->num_key_value_heads, 4);
}

TEST(ModelConfigTest, BadConfigsAreRefusedClearly) {
  struct Case {
    std::string json;
    const char* expect;
  } cases[] = {
      {"[]", "not a JSON object"},
      {R"({"architectures":["LlamaForCausalLM"]})", "unsupported architecture 'LlamaForCausalLM'"},
      {R"({"architectures":["MixtralForCausalLM"],"hidden_size":8})",
       "config.json: field 'vocab_size' is required"},
      {std::string(kMixtral).replace(std::string(kMixtral).find("\"num_key_value_heads\": 8"), 24,
                                     "\"num_key_value_heads\": 5"),
       "not a multiple"},
      {std::string(kMixtral).replace(std::string(kMixtral).find("\"num_experts_per_tok\": 2"), 24,
                                     "\"num_experts_per_tok\": 9"),
       "exceeds num_experts"},
      {std::string(kMixtral).replace(std::string(kMixtral).find("\"hidden_size\": 4096"), 19,
                                     "\"hidden_size\": \"big\""),
       "config.json: field 'hidden_size' must be an integer, got a string"},
      {std::string(kQwen3).replace(std::string(kQwen3).find("\"mlp_only_layers\": []"), 21,
                                   "\"mlp_only_layers\": [0]"),
       "mlp_only_layers"},
  };
  for (const Case& c : cases) {
    auto r = ParseModelConfig(c.json);
    ASSERT_FALSE(r.ok()) << c.json;
    EXPECT_NE(r.status().message().find(c.expect), std::string::npos) << r.status().message();
  }
  EXPECT_EQ(LoadModelConfig("/nonexistent").status().code(), vmm::StatusCode::kNotFound);
}

// Every field, given a value of the wrong type (or out of range), is refused naming that field:
// never an exception, whatever the value.
TEST(ModelConfigTest, EveryFieldIsReadByType) {
  const json qwen3 = json::parse(kQwen3), mixtral = json::parse(kMixtral);
  const json not_int[] = {"x",
                          1.5,
                          true,
                          json::array(),
                          json::object(),
                          1e30,
                          json::parse("99999999999999999999"),
                          int64_t{1} << 40};
  const json not_number[] = {"x", true, json::array(), json::object()};
  const json not_bool[] = {"x", 1, 0.5, json::array(), json::object()};
  struct Field {
    const json* base;
    const char* name;
    const json* bad;
    size_t n;
  };
  std::vector<Field> fields;
  for (const char* f : {"vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
                        "num_attention_heads", "num_key_value_heads", "num_experts_per_tok",
                        "max_position_embeddings", "moe_intermediate_size", "num_experts",
                        "head_dim", "decoder_sparse_step"}) {
    fields.push_back({&qwen3, f, not_int, std::size(not_int)});
  }
  for (const char* f : {"num_local_experts", "intermediate_size"}) {
    fields.push_back({&mixtral, f, not_int, std::size(not_int)});
  }
  for (const char* f : {"rope_theta", "rms_norm_eps"}) {
    fields.push_back({&qwen3, f, not_number, std::size(not_number)});
  }
  for (const char* f : {"norm_topk_prob", "tie_word_embeddings"}) {
    fields.push_back({&qwen3, f, not_bool, std::size(not_bool)});
  }
  for (const Field& f : fields) {
    for (size_t i = 0; i < f.n; ++i) {
      json j = *f.base;
      j[f.name] = f.bad[i];
      auto r = ParseModelConfig(j.dump());
      ASSERT_FALSE(r.ok()) << f.name << " = " << f.bad[i].dump();
      EXPECT_EQ(r.status().code(), vmm::StatusCode::kInvalidArgument);
      EXPECT_NE(r.status().message().find(std::string("config.json: field '") + f.name + "'"),
                std::string::npos)
          << f.name << " = " << f.bad[i].dump() << ": " << r.status().message();
    }
  }
  // The issue's case, word for word; values of the right type but out of range name the field.
  json j = qwen3;
  j["decoder_sparse_step"] = "x";
  EXPECT_EQ(ParseModelConfig(j.dump()).status().message(),
            "config.json: field 'decoder_sparse_step' must be an integer, got a string");
  j = qwen3;
  j["num_experts"] = -1;
  EXPECT_EQ(ParseModelConfig(j.dump()).status().message(),
            "config.json: field 'num_experts' must be 1..4096, got -1");
  j = qwen3;
  j["rms_norm_eps"] = -1;
  EXPECT_NE(ParseModelConfig(j.dump()).status().message().find("'rms_norm_eps' must be in (0, 1)"),
            std::string::npos);
  for (const json& arch : {json("MixtralForCausalLM"), json::array(), json::array({1}),
                           json::object(), json(nullptr)}) {
    j = qwen3;
    j["architectures"] = arch;
    EXPECT_NE(ParseModelConfig(j.dump()).status().message().find("field 'architectures'"),
              std::string::npos)
        << arch.dump();
  }
  // Optional fields may be null (Hugging Face's None): the default.
  j = qwen3;
  j["head_dim"] = nullptr;
  j["tie_word_embeddings"] = nullptr;
  auto r = ParseModelConfig(j.dump());
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->head_dim, 2048 / 32);
}

// Arbitrary text: a result or an error, never a crash (a short deterministic fuzz; the libFuzzer
// target goes further).
TEST(ModelConfigTest, JunkNeverCrashes) {
  std::mt19937_64 rng(16);
  const std::string base = kQwen3;
  for (int i = 0; i < 3000; ++i) {
    std::string t = base;
    const int edits = 1 + static_cast<int>(rng() % 4);
    for (int e = 0; e < edits; ++e) {
      const size_t at = rng() % t.size();
      switch (rng() % 3) {
        case 0:
          t[at] = static_cast<char>(rng());
          break;
        case 1:
          t.erase(at, rng() % 16);
          break;
        default:
          t.insert(at, std::string(1 + rng() % 8, "{}[]\",:0-e.9\\"[rng() % 12]));
      }
      if (t.empty()) t = "{";
    }
    (void)ParseModelConfig(t);
  }
  // A number beyond double's range is a parse error.
  std::string overflow = base;
  overflow.replace(overflow.find("151936"), 6, "1e400");
  EXPECT_NE(ParseModelConfig(overflow).status().message().find("not a JSON object"),
            std::string::npos);
  const std::string deep = std::string(100000, '[') + std::string(100000, ']');
  EXPECT_FALSE(ParseModelConfig(deep).ok());
  EXPECT_FALSE(ParseModelConfig(R"({"architectures":["Qwen3MoeForCausalLM"],"vocab_size":)" +
                                std::string(100000, '9') + "}")
                   .ok());
}

TEST(ModelConfigTest, SizesAreCountedWithoutListingTensors) {
  for (const char* text : {kMixtral, kQwen3}) {
    auto c = ParseModelConfig(text);
    ASSERT_TRUE(c.ok());
    for (bool tied : {false, true}) {
      c->tie_word_embeddings = tied;
      const auto specs = ExpectedTensors(*c);
      uint64_t params = 0;
      for (const auto& s : specs) {
        uint64_t n = 1;
        for (int64_t d : s.shape) n *= d;
        params += n;
      }
      EXPECT_EQ(c->NumTensors(), specs.size());
      EXPECT_EQ(c->ParameterCount(), params);
    }
  }
}

// config.json that is a directory, a FIFO (whose open would wait for a writer), or huge: refused
// by type or size before it is read, naming the path.
TEST(ModelConfigTest, ConfigFileThatIsNotARegularFileIsRefused) {
  ScratchDir dir;
  const std::string cfg = dir.File("config.json");
  ASSERT_EQ(mkdir(cfg.c_str(), 0700), 0);
  auto r = LoadModelConfig(dir.path());
  EXPECT_EQ(r.status().code(), vmm::StatusCode::kInvalidArgument);
  EXPECT_EQ(r.status().message(), "model config " + cfg + ": is a directory, not a regular file");
  ASSERT_EQ(rmdir(cfg.c_str()), 0);
  ASSERT_EQ(mkfifo(cfg.c_str(), 0600), 0);
  r = hbm::testing::Unblocked(cfg, [&] { return LoadModelConfig(dir.path()); });
  EXPECT_NE(r.status().message().find(cfg + ": is a FIFO"), std::string::npos)
      << r.status().message();
  ASSERT_EQ(unlink(cfg.c_str()), 0);
  ASSERT_EQ(truncate(cfg.c_str(), 0), -1);  // absent
  { std::ofstream(cfg) << " "; }
  ASSERT_EQ(truncate(cfg.c_str(), kMaxConfigBytes + 1), 0);
  r = LoadModelConfig(dir.path());
  EXPECT_NE(r.status().message().find("exceed the limit"), std::string::npos)
      << r.status().message();
  // A well-formed file with a bad field: the error names the file and the field.
  json j = json::parse(kQwen3);
  j["decoder_sparse_step"] = "x";
  { std::ofstream(cfg, std::ios::trunc) << j.dump(); }
  r = LoadModelConfig(dir.path());
  EXPECT_EQ(r.status().message(),
            cfg + ": field 'decoder_sparse_step' must be an integer, got a string");
}

// num_hidden_layers = 2^31 with tiny dimensions used to pass validation and then grow the tensor
// list until bad_alloc: it is refused by its bound, and nothing proportional to what the config
// claims is allocated, by parsing or by validating a checkpoint against a large valid config.
TEST(ModelConfigTest, HugeLayerCountIsRefusedWithoutAllocating) {
  json j = json::parse(kQwen3);
  j["num_hidden_layers"] = int64_t{1} << 31;
  j["hidden_size"] = 8;
  j["moe_intermediate_size"] = 8;
  j["num_experts"] = 2;
  j["num_experts_per_tok"] = 1;
  j["head_dim"] = 2;
  j["num_attention_heads"] = 4;
  j["vocab_size"] = 16;
  const std::string text = j.dump();
  const uint64_t before = g_new_bytes.load();
  auto r = ParseModelConfig(text);
  const uint64_t used = g_new_bytes.load() - before;
  EXPECT_EQ(r.status().message(),
            "config.json: field 'num_hidden_layers' must be 1..1024, got 2147483648");
  EXPECT_LT(used, 1u << 20) << "bytes allocated while refusing it";
  // Each dimension in bounds, their product not.
  j = json::parse(kQwen3);
  j["num_hidden_layers"] = 1024;
  j["num_experts"] = 4096;
  j["num_experts_per_tok"] = 8;
  EXPECT_NE(ParseModelConfig(j.dump()).status().message().find("more than the limit of"),
            std::string::npos);
  // A valid large config against a tiny checkpoint: the walk stops at the first missing tensor.
  ScratchDir dir;
  auto tiny = PresetConfig("tiny");
  ASSERT_TRUE(GenerateModel(*tiny, {}, dir.path()).ok());
  auto ckpt = hbm::OpenCheckpoint(dir.path());
  ASSERT_TRUE(ckpt.ok());
  ModelConfig large = *tiny;
  large.num_hidden_layers = 1000;
  large.num_experts = 128;
  ASSERT_TRUE(large.Validate().ok());
  const uint64_t before2 = g_new_bytes.load();
  vmm::Status s = ValidateCheckpoint(large, *ckpt);
  const uint64_t used2 = g_new_bytes.load() - before2;
  EXPECT_EQ(s.code(), vmm::StatusCode::kDataLoss);
  EXPECT_NE(s.message().find("has shape [8, 64], the config needs [128, 64] (the config implies " +
                             std::to_string(large.NumTensors()) + " tensors"),
            std::string::npos)
      << s.message();
  EXPECT_LT(used2, 1u << 20) << "bytes allocated validating " << large.NumTensors() << " tensors";
}

TEST(Bf16Test, RoundsToNearestEven) {
  EXPECT_EQ(FloatToBf16(1.0f), 0x3f80);
  EXPECT_EQ(Bf16ToFloat(FloatToBf16(-2.5f)), -2.5f);
  // 1 + 2^-8 is exactly half-way between two bf16 values: ties go to the even one (1.0).
  EXPECT_EQ(FloatToBf16(1.0f + 1.0f / 256), 0x3f80);
  EXPECT_EQ(FloatToBf16(1.0f + 3.0f / 256), 0x3f82);
  EXPECT_TRUE(std::isnan(Bf16ToFloat(FloatToBf16(std::nanf("")))));
}

std::string Slurp(const std::string& p) { return hbm::testing::ReadFile(p); }

TEST(GeneratorTest, TinyIsDeterministicAndValid) {
  ScratchDir dir;
  auto c = PresetConfig("tiny");
  ASSERT_TRUE(c.ok());
  GeneratorOptions o;
  ASSERT_TRUE(GenerateModel(*c, o, dir.File("a")).ok());
  ASSERT_TRUE(GenerateModel(*c, o, dir.File("b")).ok());
  o.seed = 2;
  ASSERT_TRUE(GenerateModel(*c, o, dir.File("c")).ok());
  const std::string a = Slurp(dir.File("a/model.safetensors"));
  EXPECT_EQ(a, Slurp(dir.File("b/model.safetensors"))) << "same seed, same bytes";
  EXPECT_NE(a, Slurp(dir.File("c/model.safetensors")));
  auto cfg = LoadModelConfig(dir.File("a"));
  ASSERT_TRUE(cfg.ok()) << cfg.status().ToString();
  auto ckpt = hbm::OpenCheckpoint(dir.File("a"));
  ASSERT_TRUE(ckpt.ok());
  EXPECT_TRUE(ValidateCheckpoint(*cfg, *ckpt).ok());
  for (const auto& t : ckpt->tensors) {
    EXPECT_EQ(t.file_offset % 4096, 0u) << t.name << ": aligned for O_DIRECT loads";
  }
  // Weights: uniform in +-sqrt(3/fan_in), mean near 0; norms exactly 1.
  const hbm::TensorInfo* w = ckpt->Find("model.layers.1.mlp.experts.3.up_proj.weight");
  ASSERT_NE(w, nullptr);
  double sum = 0, max_abs = 0;
  for (uint64_t i = 0; i < w->num_elements(); ++i) {
    uint16_t b;
    std::memcpy(&b, a.data() + w->file_offset + 2 * i, 2);
    const double v = Bf16ToFloat(b);
    sum += v;
    max_abs = std::max(max_abs, std::abs(v));
  }
  EXPECT_LT(std::abs(sum / w->num_elements()), 0.05);
  EXPECT_LE(max_abs, std::sqrt(3.0 / 64) * 1.01);
  EXPECT_GT(max_abs, std::sqrt(3.0 / 64) * 0.8);
  const hbm::TensorInfo* norm = ckpt->Find("model.norm.weight");
  uint16_t one;
  std::memcpy(&one, a.data() + norm->file_offset, 2);
  EXPECT_EQ(Bf16ToFloat(one), 1.0f);
}

TEST(GeneratorTest, ShardsWithAnIndexAndF32) {
  ScratchDir dir;
  auto c = PresetConfig("tiny");
  GeneratorOptions o;
  o.dtype = hbm::DType::kF32;
  o.max_shard_bytes = 100 << 10;
  ASSERT_TRUE(GenerateModel(*c, o, dir.path()).ok());
  EXPECT_TRUE(std::filesystem::exists(dir.File("model.safetensors.index.json")));
  auto ckpt = hbm::OpenCheckpoint(dir.path());
  ASSERT_TRUE(ckpt.ok()) << ckpt.status().ToString();
  EXPECT_GT(ckpt->shards.size(), 3u);
  EXPECT_TRUE(ValidateCheckpoint(*c, *ckpt).ok());
  EXPECT_EQ(ckpt->Find("model.embed_tokens.weight")->dtype, hbm::DType::kF32);
  // Regenerating unsharded into the same directory leaves no stale shards behind.
  o.max_shard_bytes = 1 << 30;
  ASSERT_TRUE(GenerateModel(*c, o, dir.path()).ok());
  EXPECT_FALSE(std::filesystem::exists(dir.File("model.safetensors.index.json")));
  auto again = hbm::OpenCheckpoint(dir.path());
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(again->shards.size(), 1u);
}

TEST(GeneratorTest, ValidationNamesMissingAndMisshapenTensors) {
  ScratchDir dir;
  auto c = PresetConfig("tiny");
  ASSERT_TRUE(GenerateModel(*c, {}, dir.path()).ok());
  auto ckpt = hbm::OpenCheckpoint(dir.path());
  ModelConfig wider = *c;
  wider.moe_intermediate_size = 48;
  vmm::Status s = ValidateCheckpoint(wider, *ckpt);
  EXPECT_EQ(s.code(), vmm::StatusCode::kDataLoss);
  EXPECT_NE(s.message().find("has shape [32, 64], the config needs [48, 64]"), std::string::npos)
      << s.message();
  ModelConfig more = *c;
  more.num_hidden_layers = 3;
  s = ValidateCheckpoint(more, *ckpt);
  EXPECT_NE(s.message().find("lacks tensor 'model.layers.2.input_layernorm.weight'"),
            std::string::npos)
      << s.message();
  ModelConfig tied = *c;
  tied.tie_word_embeddings = true;
  s = ValidateCheckpoint(tied, *ckpt);
  EXPECT_NE(s.message().find("'lm_head.weight' that"), std::string::npos) << s.message();
  EXPECT_EQ(PresetConfig("huge").status().code(), vmm::StatusCode::kInvalidArgument);
  for (const auto& name : PresetNames()) EXPECT_TRUE(PresetConfig(name).ok()) << name;
}

// The presets with a real vocabulary: Qwen3's embedding rows on qwen3-30b-a3b-experts'
// dimensions, and a small Mixtral with Mistral's 32000 tokens; each round-trips through its
// config.json. The others keep the byte tokenizer's 256.
TEST(PresetTest, TextPresetsHaveRealVocabularies) {
  auto qwen3 = PresetConfig("qwen3-text");
  auto base = PresetConfig("qwen3-30b-a3b-experts");
  ASSERT_TRUE(qwen3.ok() && base.ok());
  EXPECT_EQ(qwen3->vocab_size, 151936);
  EXPECT_EQ(qwen3->architecture, Architecture::kQwen3Moe);
  ModelConfig same = *qwen3;
  same.vocab_size = base->vocab_size;
  EXPECT_EQ(same.ToJson(), base->ToJson()) << "only the vocabulary differs";
  auto mixtral = PresetConfig("mixtral-text");
  ASSERT_TRUE(mixtral.ok());
  EXPECT_EQ(mixtral->architecture, Architecture::kMixtral);
  EXPECT_EQ(mixtral->vocab_size, 32000);
  EXPECT_EQ(mixtral->head_dim * mixtral->num_attention_heads, mixtral->hidden_size);
  for (const ModelConfig& c : {*qwen3, *mixtral}) {
    auto again = ParseModelConfig(c.ToJson());
    ASSERT_TRUE(again.ok()) << again.status().ToString();
    EXPECT_EQ(again->ToJson(), c.ToJson());
    EXPECT_EQ(again->ParameterCount(), c.ParameterCount());
  }
  EXPECT_EQ(PresetVocabulary("qwen3-text"), "qwen3");
  EXPECT_EQ(PresetVocabulary("mixtral-text"), "mistral");
  for (const auto& name : PresetNames()) {
    if (PresetVocabulary(name).empty()) {
      EXPECT_EQ(PresetConfig(name)->vocab_size, 256) << name;
    }
  }
}

}  // namespace
}  // namespace emoe::engine
