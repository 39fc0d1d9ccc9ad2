// engine/forward.h: the MoE forward pass on CPU, fp32 compute over bf16 or fp32 weights.
//
// Weights are never owned here: a WeightSource hands out views (an HMM's records, an attachment
// to hmmd, ...). ModelWeights::Bind resolves every tensor of the schema once and checks shapes.
// Matrix products of at most kFusedMaxTokens tokens (decode, small expert batches) run on the
// fused kernels of engine/kernels.h: each weight element read in its own type. Larger ones
// (prefill) too where those kernels are built for many tokens (kernels::ManyTokens: AVX-512);
// elsewhere they widen a cache-sized tile of bf16/f16 rows to fp32 and call BLAS sgemm (serial
// BLIS: each device owns its threads). The attention projections of all the short sequences of a
// step run as one fused product over all their tokens (AttentionBlocks), so the weights are
// read once per step, not once per sequence.
//
// Determinism: expert outputs of a token are summed in ascending expert id, so results do not
// depend on which device computed which expert; a fused product's output for one token does not
// depend on the other tokens of the product (engine/kernels.h), and whether a sequence's product
// is fused depends on its own token count only, so a token's result does not depend on which
// sequences share its device or step.
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
#include "engine/thread_team.h"
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

// Products over at most this many tokens run fused (engine/kernels.h); more go to BLAS unless
// the kernels are built for many tokens (kernels::ManyTokens).
inline constexpr int64_t kFusedMaxTokens = 16;
// A fused product is split among a team's members from this many weight elements up (below,
// waking the team costs more than the rows it shares).
inline constexpr int64_t kMinTeamElements = 64 << 10;

// One sequence's share of an attention layer: `count` tokens at positions t0.. of `kv`, their
// hidden states h[count x H].
struct AttentionInput {
  int64_t t0 = 0, count = 0;
  kv::Sequence* kv = nullptr;
  float* h = nullptr;
};

class Forward {
 public:
  explicit Forward(const ModelWeights* weights) : w_(weights) {}
  // Products split their rows among `team`'s members (null: this thread alone). Each output is
  // computed by the same code on the same rows either way: results are bit-identical.
  void SetTeam(ThreadTeam* team) { team_ = team; }
  // false: every product takes the BLAS path (bf16/f16 tiles widened to fp32, sgemv for one
  // token), as the engine did before the fused kernels: engine_bench's baseline. A token's
  // result may then depend on the other tokens of its product.
  void SetFusedKernels(bool on) { fused_ = on; }
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
  // The same for several sequences: those of at most kFusedMaxTokens tokens share one fused
  // product per projection; each longer one runs on its own.
  void AttentionBlocks(int layer, const std::vector<AttentionInput>& seqs);
  // x = post_attention_norm(h); routes[t] = the token's top-k (expert, weight), ascending expert.
  void Route(int layer, const float* h, int64_t count, float* x,
             std::vector<std::vector<std::pair<int, float>>>* routes);
  // ys[n x H] = expert e of `layer` applied to xs[n x H].
  void Expert(int layer, int e, const float* xs, int64_t n, float* ys);
  // logits[vocab] of one hidden state.
  void Logits(const float* h, float* logits);

 private:
  // y[m x n] = x[m x k] * W^T, W [n x k] (bf16, f16 or fp32): fused for m <= kFusedMaxTokens.
  void MatMul(const float* x, int64_t m, const WeightRef& w, float* y);
  // The same, always fused.
  void FusedMatMul(const float* x, int64_t m, const WeightRef& w, float* y);
  // Attention over sequences whose rows are stacked: projections fused or by MatMul.
  void AttentionGroup(int layer, const std::vector<AttentionInput>& seqs, bool fused);
  // q/k norms and RoPE of the sequence's rows from row0, K and V into its cache.
  void StoreKv(int layer, const AttentionInput& s, int64_t row0);
  void Attend(int layer, const AttentionInput& s, int64_t row0);

  const ModelWeights* w_;
  ThreadTeam* team_ = nullptr;
  bool fused_ = true;
  std::vector<float> x_, q_, k_, v_, attn_, proj_, logits_, gate_, up_, norm_, scores_;
  std::vector<float> rope_;  // one token's RoPE cos/sin (RopeAngles), shared by its heads
  std::vector<std::vector<float>> wide_;  // a widening tile per team member
  std::vector<const float*> keys_, values_;
};

// Widens bf16 or copies f32 into `out` (n elements).
void ToFloat(const WeightRef& w, int64_t offset, int64_t n, float* out);

}  // namespace emoe::engine

#endif  // ENGINE_FORWARD_H_
