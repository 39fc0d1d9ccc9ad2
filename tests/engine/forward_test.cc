// The engine's forward pass against a plain reference (dense loops in double, no BLAS, no KV
// reuse), on generated Qwen3-MoE and Mixtral checkpoints loaded through the HMM.
#include "engine/forward.h"

#include <gtest/gtest.h>

#include <cmath>
#include <memory>
#include <set>

#include "../hbm/test_files.h"
#include "engine/weight_sources.h"
#include "hbm/hmm.h"

namespace emoe::engine {
namespace {

using hbm::testing::ScratchDir;

// ---- The reference: the same model, written as plainly as possible. ----
struct Ref {
  const ModelWeights& w;
  std::vector<double> W(const WeightRef& r) const {
    int64_t n = 1;
    for (int64_t d : r.shape) n *= d;
    std::vector<float> f(n);
    ToFloat(r, 0, n, f.data());
    return std::vector<double>(f.begin(), f.end());
  }
  static std::vector<double> Norm(const std::vector<double>& x, const std::vector<double>& g,
                                  double eps) {
    double ss = 0;
    for (double v : x) ss += v * v;
    const double r = 1.0 / std::sqrt(ss / x.size() + eps);
    std::vector<double> o(x.size());
    for (size_t i = 0; i < x.size(); ++i) o[i] = x[i] * r * g[i];
    return o;
  }
  static std::vector<double> Mv(const std::vector<double>& m, const std::vector<double>& x,
                                size_t rows) {
    std::vector<double> y(rows, 0.0);
    const size_t cols = x.size();
    for (size_t r = 0; r < rows; ++r) {
      for (size_t c = 0; c < cols; ++c) y[r] += m[r * cols + c] * x[c];
    }
    return y;
  }
  static void Rope(double* x, int64_t d, int64_t pos, double theta) {
    for (int64_t i = 0; i < d / 2; ++i) {
      const double a = pos * std::pow(theta, -2.0 * i / d);
      const double x1 = x[i], x2 = x[i + d / 2];
      x[i] = x1 * std::cos(a) - x2 * std::sin(a);
      x[i + d / 2] = x2 * std::cos(a) + x1 * std::sin(a);
    }
  }
  // Logits of the last token of `tokens`, recomputing everything from scratch.
  std::vector<double> Logits(const std::vector<int32_t>& tokens) const {
    const ModelConfig& c = w.config;
    const int64_t H = c.hidden_size, hd = c.head_dim, nh = c.num_attention_heads,
                  nkv = c.num_key_value_heads, T = tokens.size();
    const auto emb = W(w.embed);
    std::vector<std::vector<double>> h(T);
    for (int64_t t = 0; t < T; ++t) {
      h[t].assign(emb.begin() + tokens[t] * H, emb.begin() + (tokens[t] + 1) * H);
    }
    for (const LayerWeights& L : w.layers) {
      std::vector<std::vector<double>> q(T), k(T), v(T);
      const auto wq = W(L.q), wk = W(L.k), wv = W(L.v), wo = W(L.o), g1 = W(L.input_norm);
      for (int64_t t = 0; t < T; ++t) {
        const auto x = Norm(h[t], g1, c.rms_norm_eps);
        q[t] = Mv(wq, x, nh * hd);
        k[t] = Mv(wk, x, nkv * hd);
        v[t] = Mv(wv, x, nkv * hd);
        for (int64_t i = 0; i < nh; ++i) {
          if (L.q_norm.data) {
            std::vector<double> s(q[t].begin() + i * hd, q[t].begin() + (i + 1) * hd);
            s = Norm(s, W(L.q_norm), c.rms_norm_eps);
            std::copy(s.begin(), s.end(), q[t].begin() + i * hd);
          }
          Rope(&q[t][i * hd], hd, t, c.rope_theta);
        }
        for (int64_t i = 0; i < nkv; ++i) {
          if (L.k_norm.data) {
            std::vector<double> s(k[t].begin() + i * hd, k[t].begin() + (i + 1) * hd);
            s = Norm(s, W(L.k_norm), c.rms_norm_eps);
            std::copy(s.begin(), s.end(), k[t].begin() + i * hd);
          }
          Rope(&k[t][i * hd], hd, t, c.rope_theta);
        }
      }
      for (int64_t t = 0; t < T; ++t) {
        std::vector<double> att(nh * hd, 0.0);
        for (int64_t i = 0; i < nh; ++i) {
          const int64_t g = i / (nh / nkv);
          std::vector<double> s(t + 1);
          double mx = -1e300, sum = 0;
          for (int64_t j = 0; j <= t; ++j) {
            double d = 0;
            for (int64_t e = 0; e < hd; ++e) d += q[t][i * hd + e] * k[j][g * hd + e];
            s[j] = d / std::sqrt(static_cast<double>(hd));
            mx = std::max(mx, s[j]);
          }
          for (auto& x : s) sum += (x = std::exp(x - mx));
          for (int64_t j = 0; j <= t; ++j) {
            for (int64_t e = 0; e < hd; ++e) att[i * hd + e] += s[j] / sum * v[j][g * hd + e];
          }
        }
        const auto o = Mv(wo, att, H);
        for (int64_t d = 0; d < H; ++d) h[t][d] += o[d];
      }
      const auto g2 = W(L.post_norm), wr = W(L.router);
      for (int64_t t = 0; t < T; ++t) {
        const auto x = Norm(h[t], g2, c.rms_norm_eps);
        auto lg = Mv(wr, x, c.num_experts);
        const double mx = *std::max_element(lg.begin(), lg.end());
        double sum = 0;
        for (auto& l : lg) sum += (l = std::exp(l - mx));
        std::vector<int> idx(c.num_experts);
        for (int e = 0; e < c.num_experts; ++e) idx[e] = e;
        std::stable_sort(idx.begin(), idx.end(), [&](int a, int b) { return lg[a] > lg[b]; });
        double top = 0;
        for (int i = 0; i < c.num_experts_per_tok; ++i) top += lg[idx[i]];
        std::vector<double> acc(H, 0.0);
        std::vector<int> chosen(idx.begin(), idx.begin() + c.num_experts_per_tok);
        std::sort(chosen.begin(), chosen.end());
        for (int e : chosen) {
          const double wgt = lg[e] / (c.norm_topk_prob ? top : sum);
          const auto gt = Mv(W(L.experts[e][0]), x, c.moe_intermediate_size);
          const auto up = Mv(W(L.experts[e][1]), x, c.moe_intermediate_size);
          std::vector<double> a(gt.size());
          for (size_t i = 0; i < a.size(); ++i) a[i] = gt[i] / (1 + std::exp(-gt[i])) * up[i];
          const auto y = Mv(W(L.experts[e][2]), a, H);
          for (int64_t d = 0; d < H; ++d) acc[d] += wgt * y[d];
        }
        for (int64_t d = 0; d < H; ++d) h[t][d] += acc[d];
      }
    }
    const auto x = Norm(h[T - 1], W(w.final_norm), c.rms_norm_eps);
    return Mv(W(w.lm_head), x, c.vocab_size);
  }
};

struct Loaded {
  ScratchDir dir;
  std::unique_ptr<hbm::Hmm> hmm;
  std::unique_ptr<HmmWeightSource> source;
  ModelWeights weights;
};

std::unique_ptr<Loaded> Load(const ModelConfig& config, hbm::DType dtype) {
  auto l = std::make_unique<Loaded>();
  GeneratorOptions g;
  g.dtype = dtype;
  EXPECT_TRUE(GenerateModel(config, g, l->dir.path()).ok());
  auto ckpt = hbm::OpenCheckpoint(l->dir.path());
  EXPECT_TRUE(ckpt.ok());
  hbm::HmmOptions o;
  o.memory.usage_bytes = {64 << 20, 0, 0};
  o.memory.page_size = vmm::PageSizePolicy::kSmall;
  hbm::DeviceSpec spec;
  spec.cpus = {0};
  spec.capacity_bytes = 64 << 20;
  l->hmm = std::move(*hbm::Hmm::CreateWithDevices({spec}, o));
  EXPECT_TRUE(l->hmm->LoadCheckpoint(*ckpt, hbm::ReplicateEverywhere({0})).ok());
  l->source = std::make_unique<HmmWeightSource>(l->hmm.get(), 0);
  auto w = ModelWeights::Bind(config, *l->source);
  EXPECT_TRUE(w.ok()) << w.status().ToString();
  l->weights = std::move(*w);
  return l;
}

double RelErr(const std::vector<float>& got, const std::vector<double>& want) {
  double max_diff = 0, max_abs = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    max_diff = std::max(max_diff, std::abs(got[i] - want[i]));
    max_abs = std::max(max_abs, std::abs(want[i]));
  }
  return max_diff / max_abs;
}

ModelConfig TinyMixtral() {
  ModelConfig c = *PresetConfig("tiny");
  c.architecture = Architecture::kMixtral;
  c.norm_topk_prob = true;
  return c;
}

class ForwardTest : public ::testing::TestWithParam<std::tuple<int, hbm::DType>> {};

TEST_P(ForwardTest, MatchesReferenceThroughPrefillAndDecode) {
  const ModelConfig config = std::get<0>(GetParam()) == 0 ? *PresetConfig("tiny") : TinyMixtral();
  auto l = Load(config, std::get<1>(GetParam()));
  Forward fwd(&l->weights);
  kv::ContiguousSequence kv(KvGeometryFor(config), 64);
  std::vector<int32_t> seq = {72, 101, 108, 108, 111, 32};
  auto logits = fwd.Run(seq, &kv);
  ASSERT_TRUE(logits.ok()) << logits.status().ToString();
  Ref ref{l->weights};
  EXPECT_LT(RelErr(*logits, ref.Logits(seq)), 1e-4) << "prefill";
  for (int32_t next : {87, 3, 200}) {  // decode steps reuse the cache
    seq.push_back(next);
    logits = fwd.Run({next}, &kv);
    ASSERT_TRUE(logits.ok());
    EXPECT_LT(RelErr(*logits, ref.Logits(seq)), 1e-4) << "decode at " << seq.size();
  }
  EXPECT_EQ(kv.length(), static_cast<int64_t>(seq.size()));
}

INSTANTIATE_TEST_SUITE_P(Models, ForwardTest,
                         ::testing::Combine(::testing::Values(0, 1),
                                            ::testing::Values(hbm::DType::kBF16, hbm::DType::kF32)),
                         [](const auto& info) {
                           return std::string(std::get<0>(info.param) == 0 ? "qwen3" : "mixtral") +
                                  (std::get<1>(info.param) == hbm::DType::kF32 ? "_f32" : "_bf16");
                         });

// A prompt longer than kFusedMaxTokens takes the BLAS path (widened tiles + sgemm); its decode
// steps then run fused.
TEST_P(ForwardTest, LongPrefillThroughBlasMatchesReference) {
  const ModelConfig config = std::get<0>(GetParam()) == 0 ? *PresetConfig("tiny") : TinyMixtral();
  auto l = Load(config, std::get<1>(GetParam()));
  Forward fwd(&l->weights);
  kv::ContiguousSequence kv(KvGeometryFor(config), 64);
  std::vector<int32_t> seq;
  for (int i = 0; i < kFusedMaxTokens + 5; ++i) seq.push_back((i * 37 + 11) % 256);
  auto logits = fwd.Run(seq, &kv);
  ASSERT_TRUE(logits.ok()) << logits.status().ToString();
  Ref ref{l->weights};
  EXPECT_LT(RelErr(*logits, ref.Logits(seq)), 1e-4) << "prefill of " << seq.size();
  seq.push_back(42);
  logits = fwd.Run({42}, &kv);
  ASSERT_TRUE(logits.ok());
  EXPECT_LT(RelErr(*logits, ref.Logits(seq)), 1e-4) << "decode after a long prefill";
}

// Several sequences' attention in one call (their projections one fused product) gives each the
// bits it gets alone; a long one among them runs on its own path.
TEST(AttentionBlocksTest, BatchedSequencesGetTheirOwnBits) {
  const ModelConfig config = *PresetConfig("tiny");
  auto l = Load(config, hbm::DType::kBF16);
  const int64_t H = config.hidden_size;
  const std::vector<std::vector<int32_t>> prompts = {
      {1, 2, 3}, {40, 50}, {7}, std::vector<int32_t>(kFusedMaxTokens + 3, 9), {100, 101, 102}};
  auto run = [&](bool batched) {
    Forward fwd(&l->weights);
    std::vector<std::unique_ptr<kv::ContiguousSequence>> kvs;
    std::vector<std::vector<float>> h(prompts.size());
    std::vector<AttentionInput> in;
    for (size_t i = 0; i < prompts.size(); ++i) {
      kvs.push_back(std::make_unique<kv::ContiguousSequence>(KvGeometryFor(config), 64));
      EXPECT_TRUE(fwd.Prepare(prompts[i], kvs[i].get()).ok());
      h[i].resize(prompts[i].size() * H);
      fwd.Embed(prompts[i], h[i].data());
      in.push_back({0, static_cast<int64_t>(prompts[i].size()), kvs[i].get(), h[i].data()});
    }
    for (int layer = 0; layer < config.num_hidden_layers; ++layer) {
      if (batched) {
        fwd.AttentionBlocks(layer, in);
      } else {
        for (const AttentionInput& s : in) fwd.AttentionBlock(layer, s.t0, s.count, s.kv, s.h);
      }
    }
    return h;
  };
  const auto alone = run(false), together = run(true);
  for (size_t i = 0; i < prompts.size(); ++i) EXPECT_EQ(alone[i], together[i]) << "sequence " << i;
}

TEST(GreedyTest, GeneratedModelIsNotDegenerate) {
  const ModelConfig config = *PresetConfig("tiny");
  auto l = Load(config, hbm::DType::kBF16);
  Forward fwd(&l->weights);
  kv::ContiguousSequence kv(KvGeometryFor(config), 128);
  auto out = fwd.Greedy({84, 104, 101, 32, 113, 117, 105, 99, 107}, 24, &kv);
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  ASSERT_EQ(out->size(), 24u);
  const std::set<int32_t> distinct(out->begin(), out->end());
  EXPECT_GE(distinct.size(), 4u) << "greedy output collapsed to a few tokens";
  // Same input, same output: deterministic.
  kv::ContiguousSequence kv2(KvGeometryFor(config), 128);
  EXPECT_EQ(*fwd.Greedy({84, 104, 101, 32, 113, 117, 105, 99, 107}, 24, &kv2), *out);
}

TEST(PagedKvTest, PagedCacheGivesTheSameLogitsAsContiguous) {
  const ModelConfig config = *PresetConfig("tiny");
  auto l = Load(config, hbm::DType::kBF16);
  hbm::DeviceSpec spec;
  spec.capacity_bytes = 8 << 20;
  hbm::DeviceMemoryOptions m;
  m.usage_bytes = {0, 0, 4 << 20};
  m.page_size = vmm::PageSizePolicy::kSmall;
  auto dev = std::move(*hbm::Device::Create(spec, m));
  const kv::KvGeometry g = KvGeometryFor(config, /*block_tokens=*/4);
  auto store = std::move(*kv::KvStore::Create(*dev, g, 6 * g.block_bytes()));
  Forward fwd(&l->weights);
  kv::PagedSequence paged(store.get());
  kv::ContiguousSequence flat(g, 64);
  const std::vector<int32_t> prompt = {10, 20, 30, 40, 50, 60, 70};
  auto a = fwd.Run(prompt, &paged);
  auto b = fwd.Run(prompt, &flat);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(*a, *b) << "same arithmetic, different storage";
  for (int32_t t : {1, 2, 3, 4, 5, 6}) {
    a = fwd.Run({t}, &paged);
    b = fwd.Run({t}, &flat);
    ASSERT_TRUE(a.ok()) << a.status().ToString();
    EXPECT_EQ(*a, *b);
  }
  EXPECT_EQ(paged.blocks().size(), 4u);  // 13 tokens in blocks of 4
  // A second sequence cannot get the 3 blocks it needs: refused, nothing changes.
  kv::PagedSequence other(store.get());
  auto full = fwd.Run({1, 2, 3, 4, 5, 6, 7, 8, 9}, &other);
  EXPECT_EQ(full.status().code(), vmm::StatusCode::kResourceExhausted);
  EXPECT_EQ(other.length(), 0);
  EXPECT_EQ(store->pool().free_blocks(), 2);
  paged.Release();
  EXPECT_TRUE(fwd.Run({1, 2, 3, 4, 5, 6, 7, 8, 9}, &other).ok());
}

TEST(ForwardErrorsTest, BadInputsAreRefused) {
  const ModelConfig config = *PresetConfig("tiny");
  auto l = Load(config, hbm::DType::kBF16);
  Forward fwd(&l->weights);
  kv::ContiguousSequence kv(KvGeometryFor(config), 4);
  EXPECT_EQ(fwd.Run({256}, &kv).status().code(), vmm::StatusCode::kInvalidArgument);
  EXPECT_EQ(fwd.Run({1, 2, 3, 4, 5}, &kv).status().code(), vmm::StatusCode::kResourceExhausted);
  EXPECT_EQ(fwd.Run({}, &kv).status().code(), vmm::StatusCode::kInvalidArgument);
  EXPECT_EQ(kv.length(), 0) << "a refused step leaves the cache as it was";
  // A source without the weights the config needs.
  ModelConfig bigger = config;
  bigger.num_hidden_layers = 3;
  auto w = ModelWeights::Bind(bigger, *l->source);
  EXPECT_EQ(w.status().code(), vmm::StatusCode::kNotFound);
  EXPECT_NE(w.status().message().find("model.layers.2"), std::string::npos);
}

}  // namespace
}  // namespace emoe::engine
