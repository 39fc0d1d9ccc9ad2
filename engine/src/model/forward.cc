#include "engine/forward.h"

#include "engine/kernels.h"

#include <cblas.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <numeric>

namespace emoe::engine {

namespace {

void RmsNorm(const float* x, const WeightRef& w, int64_t n, double eps, float* out,
             std::vector<float>* scratch) {
  scratch->resize(n);
  ToFloat(w, 0, n, scratch->data());
  double ss = 0;
  for (int64_t i = 0; i < n; ++i) ss += static_cast<double>(x[i]) * x[i];
  const float r = static_cast<float>(1.0 / std::sqrt(ss / n + eps));
  for (int64_t i = 0; i < n; ++i) out[i] = x[i] * r * (*scratch)[i];
}

// RoPE's rotation at position `pos` for a head of d: cs[i] = cos, cs[d/2 + i] = sin of
// pos * theta^(-2i/d), i < d/2 (the same for every head: computed once per token and layer).
void RopeAngles(int64_t d, int64_t pos, double theta, float* cs) {
  const int64_t half = d / 2;
  for (int64_t i = 0; i < half; ++i) {
    const double a = pos * std::pow(theta, -2.0 * i / d);
    cs[i] = static_cast<float>(std::cos(a));
    cs[half + i] = static_cast<float>(std::sin(a));
  }
}

// Hugging Face's rotate_half convention: element i pairs with i + d/2.
void Rope(float* x, int64_t d, const float* cs) {
  const int64_t half = d / 2;
  for (int64_t i = 0; i < half; ++i) {
    const float c = cs[i], s = cs[half + i];
    const float x1 = x[i], x2 = x[i + half];
    x[i] = x1 * c - x2 * s;
    x[i + half] = x2 * c + x1 * s;
  }
}

float Silu(float x) { return x / (1.0f + std::exp(-x)); }

StatusOr<WeightRef> Need(const WeightSource& src, const std::string& name,
                         const std::vector<int64_t>& shape) {
  VMM_ASSIGN_OR_RETURN(WeightRef r, src.Get(name));
  if (r.shape != shape) {
    return Status::DataLoss("weight '" + name + "' has the wrong shape for the config");
  }
  return r;
}

}  // namespace

void ToFloat(const WeightRef& w, int64_t offset, int64_t n, float* out) {
  if (w.dtype == hbm::DType::kF32) {
    std::memcpy(out, static_cast<const float*>(w.data) + offset, n * sizeof(float));
    return;
  }
  const uint16_t* p = static_cast<const uint16_t*>(w.data) + offset;
  if (w.dtype == hbm::DType::kBF16) {
    // bf16 is the top half of an fp32: a shift the compiler vectorizes.
    for (int64_t i = 0; i < n; ++i)
      out[i] = std::bit_cast<float>(static_cast<uint32_t>(p[i]) << 16);
    return;
  }
  for (int64_t i = 0; i < n; ++i) out[i] = kernels::HalfToFloat(p[i]);  // IEEE half
}

StatusOr<ModelWeights> ModelWeights::Bind(const ModelConfig& c, const WeightSource& src,
                                          const std::function<bool(int, int)>& want_expert) {
  VMM_RETURN_IF_ERROR(c.Validate());
  ModelWeights w;
  w.config = c;
  const int64_t h = c.hidden_size, q = c.num_attention_heads * c.head_dim,
                kv = c.num_key_value_heads * c.head_dim, f = c.moe_intermediate_size;
  VMM_ASSIGN_OR_RETURN(w.embed, Need(src, "model.embed_tokens.weight", {c.vocab_size, h}));
  VMM_ASSIGN_OR_RETURN(w.final_norm, Need(src, "model.norm.weight", {h}));
  if (c.tie_word_embeddings) {
    w.lm_head = w.embed;
  } else {
    VMM_ASSIGN_OR_RETURN(w.lm_head, Need(src, "lm_head.weight", {c.vocab_size, h}));
  }
  const bool mixtral = c.architecture == Architecture::kMixtral;
  for (int l = 0; l < c.num_hidden_layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    LayerWeights L;
    VMM_ASSIGN_OR_RETURN(L.input_norm, Need(src, p + "input_layernorm.weight", {h}));
    VMM_ASSIGN_OR_RETURN(L.q, Need(src, p + "self_attn.q_proj.weight", {q, h}));
    VMM_ASSIGN_OR_RETURN(L.k, Need(src, p + "self_attn.k_proj.weight", {kv, h}));
    VMM_ASSIGN_OR_RETURN(L.v, Need(src, p + "self_attn.v_proj.weight", {kv, h}));
    VMM_ASSIGN_OR_RETURN(L.o, Need(src, p + "self_attn.o_proj.weight", {h, q}));
    if (!mixtral) {
      VMM_ASSIGN_OR_RETURN(L.q_norm, Need(src, p + "self_attn.q_norm.weight", {c.head_dim}));
      VMM_ASSIGN_OR_RETURN(L.k_norm, Need(src, p + "self_attn.k_norm.weight", {c.head_dim}));
    }
    VMM_ASSIGN_OR_RETURN(L.post_norm, Need(src, p + "post_attention_layernorm.weight", {h}));
    const std::string moe = p + (mixtral ? "block_sparse_moe." : "mlp.");
    VMM_ASSIGN_OR_RETURN(L.router, Need(src, moe + "gate.weight", {c.num_experts, h}));
    for (int e = 0; e < c.num_experts; ++e) {
      const std::string x = moe + "experts." + std::to_string(e) + ".";
      std::array<WeightRef, 3> ex;
      if (want_expert && !want_expert(l, e)) {  // another rank's expert: left unbound
        L.experts.push_back(std::move(ex));
        continue;
      }
      VMM_ASSIGN_OR_RETURN(ex[0],
                           Need(src, x + (mixtral ? "w1" : "gate_proj") + ".weight", {f, h}));
      VMM_ASSIGN_OR_RETURN(ex[1], Need(src, x + (mixtral ? "w3" : "up_proj") + ".weight", {f, h}));
      VMM_ASSIGN_OR_RETURN(ex[2],
                           Need(src, x + (mixtral ? "w2" : "down_proj") + ".weight", {h, f}));
      L.experts.push_back(std::move(ex));
    }
    w.layers.push_back(std::move(L));
  }
  return w;
}

kv::KvGeometry KvGeometryFor(const ModelConfig& c, int64_t block_tokens) {
  kv::KvGeometry g;
  g.layers = c.num_hidden_layers;
  g.kv_heads = c.num_key_value_heads;
  g.head_dim = c.head_dim;
  g.block_tokens = block_tokens;
  return g;
}

void Forward::MatMul(const float* x, int64_t m, const WeightRef& w, float* y) {
  if (fused_ && (m <= kFusedMaxTokens || kernels::ManyTokens(w.dtype))) {
    return FusedMatMul(x, m, w, y);
  }
  const int64_t n = w.shape[0], k = w.shape[1];
  // Many tokens (prefill): sgemm over cache-sized tiles of rows, compute-bound here; bf16/f16
  // tiles are widened to fp32 first (~256 KiB), paid once per tile for all m tokens. A team
  // splits the tiles, so every sgemm call has the same shape with or without it.
  const int64_t tile = w.dtype == hbm::DType::kF32 ? n : std::max<int64_t>(8, (64 << 10) / k);
  const int members = team_ != nullptr && n > tile ? team_->size() : 1;
  wide_.resize(members);
  auto share = [&](int i) {
    const auto [first, last] = ThreadTeam::Range(n, members, i, tile);
    for (int64_t r0 = first; r0 < last; r0 += tile) {
      const int64_t rows = std::min(tile, last - r0);
      const float* b = static_cast<const float*>(w.data) + r0 * k;
      if (w.dtype != hbm::DType::kF32) {
        wide_[i].resize(tile * k);
        ToFloat(w, r0 * k, rows * k, wide_[i].data());
        b = wide_[i].data();
      }
      if (m == 1) {  // only without fused kernels (the baseline)
        cblas_sgemv(CblasRowMajor, CblasNoTrans, rows, k, 1.0f, b, k, x, 1, 0.0f, y + r0, 1);
      } else {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, rows, k, 1.0f, x, k, b, k, 0.0f,
                    y + r0, n);
      }
    }
  };
  members > 1 ? team_->Run(share) : share(0);
}

void Forward::FusedMatMul(const float* x, int64_t m, const WeightRef& w, float* y) {
  const int64_t n = w.shape[0], k = w.shape[1];
  const int members =
      team_ != nullptr && n * k >= kMinTeamElements ? std::min<int64_t>(team_->size(), n / 8) : 1;
  if (members <= 1) return kernels::DotRows(w.data, w.dtype, n, k, x, m, y, n);
  const int64_t elem = hbm::DTypeSize(w.dtype);
  team_->Run([&](int i) {
    const auto [first, last] = ThreadTeam::Range(n, members, i, 8);
    if (last > first) {
      kernels::DotRows(static_cast<const char*>(w.data) + first * k * elem, w.dtype, last - first,
                       k, x, m, y + first, n);
    }
  });
}

void Forward::AttentionBlock(int layer, int64_t t0, int64_t count, kv::Sequence* kv, float* h) {
  AttentionBlocks(layer, {AttentionInput{t0, count, kv, h}});
}

void Forward::AttentionBlocks(int layer, const std::vector<AttentionInput>& seqs) {
  std::vector<AttentionInput> small;
  for (const AttentionInput& s : seqs) {
    if (s.count <= kFusedMaxTokens) {
      small.push_back(s);
    } else {
      AttentionGroup(layer, {s}, /*fused=*/false);
    }
  }
  if (!small.empty()) AttentionGroup(layer, small, /*fused=*/fused_);
}

void Forward::AttentionGroup(int layer, const std::vector<AttentionInput>& seqs, bool fused) {
  const ModelConfig& c = w_->config;
  const LayerWeights& L = w_->layers[layer];
  const int64_t H = c.hidden_size, hd = c.head_dim, nh = c.num_attention_heads,
                nkv = c.num_key_value_heads;
  int64_t rows = 0;
  for (const AttentionInput& s : seqs) rows += s.count;
  x_.resize(rows * H);
  int64_t row = 0;
  for (const AttentionInput& s : seqs) {
    for (int64_t t = 0; t < s.count; ++t, ++row) {
      RmsNorm(&s.h[t * H], L.input_norm, H, c.rms_norm_eps, &x_[row * H], &norm_);
    }
  }
  q_.resize(rows * nh * hd);
  k_.resize(rows * nkv * hd);
  v_.resize(rows * nkv * hd);
  auto product = [&](const float* x, const WeightRef& w, float* y) {
    fused ? FusedMatMul(x, rows, w, y) : MatMul(x, rows, w, y);
  };
  product(x_.data(), L.q, q_.data());
  product(x_.data(), L.k, k_.data());
  product(x_.data(), L.v, v_.data());
  attn_.assign(rows * nh * hd, 0.0f);
  row = 0;
  for (const AttentionInput& s : seqs) {
    StoreKv(layer, s, row);
    Attend(layer, s, row);
    row += s.count;
  }
  proj_.resize(rows * H);
  product(attn_.data(), L.o, proj_.data());
  row = 0;
  for (const AttentionInput& s : seqs) {
    for (int64_t i = 0; i < s.count * H; ++i) s.h[i] += proj_[row * H + i];
    row += s.count;
  }
}

void Forward::StoreKv(int layer, const AttentionInput& s, int64_t row0) {
  const ModelConfig& c = w_->config;
  const LayerWeights& L = w_->layers[layer];
  const int64_t hd = c.head_dim, nh = c.num_attention_heads, nkv = c.num_key_value_heads;
  rope_.resize(hd);
  for (int64_t t = 0; t < s.count; ++t) {
    const int64_t row = row0 + t;
    RopeAngles(hd, s.t0 + t, c.rope_theta, rope_.data());
    for (int64_t i = 0; i < nh; ++i) {
      float* qh = &q_[(row * nh + i) * hd];
      if (L.q_norm.data) RmsNorm(qh, L.q_norm, hd, c.rms_norm_eps, qh, &norm_);
      Rope(qh, hd, rope_.data());
    }
    for (int64_t i = 0; i < nkv; ++i) {
      float* kh = &k_[(row * nkv + i) * hd];
      if (L.k_norm.data) RmsNorm(kh, L.k_norm, hd, c.rms_norm_eps, kh, &norm_);
      Rope(kh, hd, rope_.data());
    }
    std::memcpy(s.kv->Key(layer, s.t0 + t), &k_[row * nkv * hd], nkv * hd * sizeof(float));
    std::memcpy(s.kv->Value(layer, s.t0 + t), &v_[row * nkv * hd], nkv * hd * sizeof(float));
  }
}

// Causal attention of the sequence's rows (q_ from row0) over its KV, into attn_ from row0.
void Forward::Attend(int layer, const AttentionInput& s, int64_t row0) {
  const ModelConfig& c = w_->config;
  const int64_t hd = c.head_dim, nh = c.num_attention_heads, group = nh / c.num_key_value_heads;
  // K and V of every position, resolved once per layer (the paged lookup is not per head).
  const int64_t total = s.t0 + s.count;
  keys_.resize(total);
  values_.resize(total);
  for (int64_t j = 0; j < total; ++j) {
    keys_[j] = s.kv->Key(layer, j);
    values_[j] = s.kv->Value(layer, j);
  }
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  for (int64_t t = 0; t < s.count; ++t) {
    const int64_t len = s.t0 + t + 1;  // causal: positions 0..t0+t
    scores_.resize(len);
    for (int64_t i = 0; i < nh; ++i) {
      const float* qh = &q_[((row0 + t) * nh + i) * hd];
      const int64_t g = i / group;
      float mx = -INFINITY;
      for (int64_t j = 0; j < len; ++j) {
        const float* kj = keys_[j] + g * hd;
        float sc = 0;
        for (int64_t d = 0; d < hd; ++d) sc += qh[d] * kj[d];
        scores_[j] = sc * scale;
        mx = std::max(mx, scores_[j]);
      }
      double sum = 0;
      for (int64_t j = 0; j < len; ++j) sum += (scores_[j] = std::exp(scores_[j] - mx));
      float* out = &attn_[((row0 + t) * nh + i) * hd];
      for (int64_t j = 0; j < len; ++j) {
        const float p = static_cast<float>(scores_[j] / sum);
        const float* vj = values_[j] + g * hd;
        for (int64_t d = 0; d < hd; ++d) out[d] += p * vj[d];
      }
    }
  }
}

void Forward::Route(int layer, const float* h, int64_t count, float* x,
                    std::vector<std::vector<std::pair<int, float>>>* routes) {
  const ModelConfig& c = w_->config;
  const LayerWeights& L = w_->layers[layer];
  const int64_t H = c.hidden_size, E = c.num_experts, K = c.num_experts_per_tok;
  for (int64_t t = 0; t < count; ++t) {
    RmsNorm(&h[t * H], L.post_norm, H, c.rms_norm_eps, &x[t * H], &norm_);
  }
  logits_.resize(count * E);
  MatMul(x, count, L.router, logits_.data());
  // Softmax over all experts, top-k (ties to the lower id), renormalized when asked (always for
  // Mixtral, where softmax over the top-k logits is the same thing).
  const bool renorm = c.norm_topk_prob || c.architecture == Architecture::kMixtral;
  routes->assign(count, {});
  std::vector<int64_t> order(E);
  std::vector<double> p(E);
  for (int64_t t = 0; t < count; ++t) {
    const float* lg = &logits_[t * E];
    const float mx = *std::max_element(lg, lg + E);
    double sum = 0;
    for (int64_t e = 0; e < E; ++e) sum += (p[e] = std::exp(static_cast<double>(lg[e]) - mx));
    std::iota(order.begin(), order.end(), 0);
    std::partial_sort(order.begin(), order.begin() + K, order.end(),
                      [&](int64_t a, int64_t b) { return p[a] != p[b] ? p[a] > p[b] : a < b; });
    double top = 0;
    for (int64_t i = 0; i < K; ++i) top += p[order[i]];
    auto& r = (*routes)[t];
    for (int64_t i = 0; i < K; ++i) {
      r.emplace_back(static_cast<int>(order[i]),
                     static_cast<float>(p[order[i]] / (renorm ? top : sum)));
    }
    std::sort(r.begin(), r.end());  // ascending expert id: the fixed summation order
  }
}

void Forward::Expert(int layer, int e, const float* xs, int64_t n, float* ys) {
  const ModelConfig& c = w_->config;
  const auto& ex = w_->layers[layer].experts[e];
  if (ex[0].data == nullptr) {
    vmm::CheckOk(Status::FailedPrecondition("expert " + std::to_string(e) + " of layer " +
                                            std::to_string(layer) + " is not bound on this rank"),
                 "Forward::Expert");
  }
  const int64_t F = c.moe_intermediate_size;
  gate_.resize(n * F);
  up_.resize(n * F);
  MatMul(xs, n, ex[0], gate_.data());
  MatMul(xs, n, ex[1], up_.data());
  for (int64_t i = 0; i < n * F; ++i) gate_[i] = Silu(gate_[i]) * up_[i];
  MatMul(gate_.data(), n, ex[2], ys);
}

void Forward::Logits(const float* h, float* logits) {
  const ModelConfig& c = w_->config;
  std::vector<float> last(c.hidden_size);
  RmsNorm(h, w_->final_norm, c.hidden_size, c.rms_norm_eps, last.data(), &norm_);
  MatMul(last.data(), 1, w_->lm_head, logits);
}

Status Forward::Prepare(const std::vector<int32_t>& tokens, kv::Sequence* kv) {
  const ModelConfig& c = w_->config;
  const int64_t count = tokens.size(), t0 = kv->length();
  if (count == 0) return Status::InvalidArgument("forward: no tokens");
  for (int32_t tok : tokens) {
    if (tok < 0 || tok >= c.vocab_size) {
      return Status::InvalidArgument("token id " + std::to_string(tok) +
                                     " outside the vocabulary of " + std::to_string(c.vocab_size));
    }
  }
  if (t0 + count > c.max_position_embeddings) {
    return Status::OutOfRange("forward: position " + std::to_string(t0 + count) +
                              " beyond max_position_embeddings " +
                              std::to_string(c.max_position_embeddings));
  }
  return kv->Reserve(t0 + count);
}

void Forward::Embed(const std::vector<int32_t>& tokens, float* h) {
  const int64_t H = w_->config.hidden_size;
  for (size_t t = 0; t < tokens.size(); ++t) {
    ToFloat(w_->embed, static_cast<int64_t>(tokens[t]) * H, H, &h[t * H]);
  }
}

StatusOr<std::vector<float>> Forward::Run(const std::vector<int32_t>& tokens, kv::Sequence* kv) {
  VMM_RETURN_IF_ERROR(Prepare(tokens, kv));
  const ModelConfig& c = w_->config;
  const int64_t count = tokens.size(), H = c.hidden_size, t0 = kv->length();
  std::vector<float> h(count * H), x(count * H), ys, out(count * H);
  Embed(tokens, h.data());
  std::vector<std::vector<std::pair<int, float>>> routes;
  for (int l = 0; l < c.num_hidden_layers; ++l) {
    AttentionBlock(l, t0, count, kv, h.data());
    Route(l, h.data(), count, x.data(), &routes);
    // Rows per expert, in token order; then each token sums its experts in ascending id.
    std::vector<std::vector<int64_t>> rows(c.num_experts);
    for (int64_t t = 0; t < count; ++t) {
      for (auto [e, w] : routes[t]) rows[e].push_back(t);
    }
    std::vector<std::vector<float>> expert_out(c.num_experts);
    std::vector<float> xs;
    for (int e = 0; e < c.num_experts; ++e) {
      if (rows[e].empty()) continue;
      xs.resize(rows[e].size() * H);
      for (size_t i = 0; i < rows[e].size(); ++i) {
        std::memcpy(&xs[i * H], &x[rows[e][i] * H], H * sizeof(float));
      }
      expert_out[e].resize(rows[e].size() * H);
      Expert(l, e, xs.data(), rows[e].size(), expert_out[e].data());
    }
    std::vector<size_t> next(c.num_experts, 0);
    for (int64_t t = 0; t < count; ++t) {
      float* o = &out[t * H];
      std::fill(o, o + H, 0.0f);
      for (auto [e, w] : routes[t]) {
        const float* y = &expert_out[e][next[e]++ * H];
        for (int64_t d = 0; d < H; ++d) o[d] += w * y[d];
      }
      for (int64_t d = 0; d < H; ++d) h[t * H + d] += o[d];
    }
  }
  kv->SetLength(t0 + count);
  std::vector<float> logits(c.vocab_size);
  Logits(&h[(count - 1) * H], logits.data());
  return logits;
}

StatusOr<std::vector<int32_t>> Forward::Greedy(const std::vector<int32_t>& prompt, int n,
                                               kv::Sequence* kv) {
  std::vector<int32_t> out;
  VMM_ASSIGN_OR_RETURN(std::vector<float> logits, Run(prompt, kv));
  for (int i = 0; i < n; ++i) {
    const int32_t next =
        static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
    out.push_back(next);
    if (i + 1 == n) break;
    VMM_ASSIGN_OR_RETURN(logits, Run({next}, kv));
  }
  return out;
}

}  // namespace emoe::engine
