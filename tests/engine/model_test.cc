#include "engine/model.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "../hbm/test_files.h"

namespace emoe::engine {
namespace {

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
      {R"({"architectures":["MixtralForCausalLM"],"hidden_size":8})", "missing 'vocab_size'"},
      {std::string(kMixtral).replace(std::string(kMixtral).find("\"num_key_value_heads\": 8"), 24,
                                     "\"num_key_value_heads\": 5"),
       "not a multiple"},
      {std::string(kMixtral).replace(std::string(kMixtral).find("\"num_experts_per_tok\": 2"), 24,
                                     "\"num_experts_per_tok\": 9"),
       "exceeds num_experts"},
      {std::string(kMixtral).replace(std::string(kMixtral).find("\"hidden_size\": 4096"), 19,
                                     "\"hidden_size\": \"big\""),
       "'hidden_size' is not an integer"},
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

}  // namespace
}  // namespace emoe::engine
