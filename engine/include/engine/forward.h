// engine/forward.h: the MoE forward pass on CPU, fp32 compute over bf16 or fp32 weights.
//
// Weights are never owned here: a WeightSource hands out views (an HMM's records, an attachment
// to hmmd, ...). ModelWeights::Bind resolves every tensor of the schema once and checks shapes.
// Matrix products go through BLAS (serial OpenBLAS: each device owns its threads); bf16 weights
// are widened to fp32 into a scratch buffer per product.
//
// Determinism: expert outputs of a token are summed in ascending expert id, so results do not
// depend on which device computed which expert.
//
// Thread safety: ModelWeights is immutable after Bind. A Forward object holds scratch buffers and
// is used by one thread at a time; use one per worker.
#ifndef ENGINE_FORWARD_H_
#define ENGINE_FORWARD_H_

#include <array>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "engine/model.h"
#include "hbm/safetensors.h"
#include "kv/kv_cache.h"

namespace emoe::engine {

struct WeightRef {
  const void* data = nullptr;
  hbm::DType dtype = hbm::DType::kF32;
  std::vector<int64_t> shape;
};

class WeightSource {
 public:
  virtual ~WeightSource() = default;
  // kNotFound when the source has no such tensor.
  virtual StatusOr<WeightRef> Get(const std::string& name) const = 0;
};

struct LayerWeights {
  WeightRef input_norm, q, k, v, o, q_norm, k_norm, post_norm, router;
  std::vector<std::array<WeightRef, 3>> experts;  // gate (w1), up (w3), down (w2)
};

struct ModelWeights {
  ModelConfig config;
  WeightRef embed, final_norm, lm_head;  // lm_head == embed when tied
  std::vector<LayerWeights> layers;
  // Resolves every tensor of ExpectedTensors(config); names the first missing or misshapen one.
  // With `want_expert`, experts (layer, e) it rejects are left unbound (null): an EP rank binds
  // only its own.
  static StatusOr<ModelWeights> Bind(const ModelConfig& config, const WeightSource& source,
                                     const std::function<bool(int, int)>& want_expert = {});
};

// The KV geometry of a model (fp32 K and V per layer and KV head).
kv::KvGeometry KvGeometryFor(const ModelConfig& config, int64_t block_tokens = 16);

class Forward {
 public:
  explicit Forward(const ModelWeights* weights) : w_(weights) {}
  // Runs `tokens` (appended after kv->length()) through the model and returns the logits of the
  // last token ([vocab]). The sequence's KV is reserved first: kResourceExhausted when the cache
  // cannot hold the tokens, kInvalidArgument for a token id outside the vocabulary; in both
  // cases the sequence is unchanged.
  StatusOr<std::vector<float>> Run(const std::vector<int32_t>& tokens, kv::Sequence* kv);
  // Greedy decoding: prefill `prompt`, then `n` tokens by argmax.
  StatusOr<std::vector<int32_t>> Greedy(const std::vector<int32_t>& prompt, int n,
                                        kv::Sequence* kv);

  // Building blocks, used by Run and by multi-device instances (engine/instance.h).
  // Checks ids, positions and reserves KV for `tokens` after kv->length().
  Status Prepare(const std::vector<int32_t>& tokens, kv::Sequence* kv);
  // h[count x H] = embeddings of `tokens`.
  void Embed(const std::vector<int32_t>& tokens, float* h);
  // h += attention(input_norm(h)) for `count` tokens at positions t0.. of `kv`.
  void AttentionBlock(int layer, int64_t t0, int64_t count, kv::Sequence* kv, float* h);
  // x = post_attention_norm(h); routes[t] = the token's top-k (expert, weight), ascending expert.
  void Route(int layer, const float* h, int64_t count, float* x,
             std::vector<std::vector<std::pair<int, float>>>* routes);
  // ys[n x H] = expert e of `layer` applied to xs[n x H].
  void Expert(int layer, int e, const float* xs, int64_t n, float* ys);
  // logits[vocab] of one hidden state.
  void Logits(const float* h, float* logits);

 private:
  // y[m x n] = x[m x k] * W^T, W [n x k] (bf16 or fp32).
  void MatMul(const float* x, int64_t m, const WeightRef& w, float* y);

  const ModelWeights* w_;
  std::vector<float> x_, q_, k_, v_, attn_, proj_, wide_, logits_, gate_, up_, norm_;
};

// Widens bf16 or copies f32 into `out` (n elements).
void ToFloat(const WeightRef& w, int64_t offset, int64_t n, float* out);

}  // namespace emoe::engine

#endif  // ENGINE_FORWARD_H_
