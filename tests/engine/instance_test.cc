// DP attention + EP experts: the same greedy tokens, bit for bit, on 1, 2, 3 and 4 devices.
#include "engine/local_instance.h"

#include <gtest/gtest.h>

#include "../hbm/test_files.h"

namespace emoe::engine {
namespace {

using hbm::testing::ScratchDir;

struct World {
  ScratchDir dir;
  ModelConfig config;
  std::unique_ptr<hbm::Hmm> hmm;
  std::vector<std::unique_ptr<kv::KvStore>> stores;  // one per device
};

std::unique_ptr<World> MakeWorld(const ModelConfig& config, std::vector<int> cpus = {}) {
  auto w = std::make_unique<World>();
  w->config = config;
  EXPECT_TRUE(GenerateModel(w->config, {}, w->dir.path()).ok());
  auto ckpt = hbm::OpenCheckpoint(w->dir.path());
  hbm::HmmOptions o;
  o.memory.usage_bytes = {16 << 20, 0, 4 << 20};
  o.memory.page_size = vmm::PageSizePolicy::kSmall;
  std::vector<hbm::DeviceSpec> specs(4);
  for (int i = 0; i < 4; ++i) {
    specs[i].id = i;
    specs[i].cpus = cpus.empty() ? std::vector<int>{i % 2} : cpus;
    specs[i].capacity_bytes = 32 << 20;
  }
  w->hmm = std::move(*hbm::Hmm::CreateWithDevices(specs, o));
  EXPECT_TRUE(w->hmm->LoadCheckpoint(*ckpt, hbm::ReplicateEverywhere({0, 1, 2, 3})).ok());
  for (int i = 0; i < 4; ++i) {
    w->stores.push_back(
        std::move(*kv::KvStore::Create(w->hmm->device(i), KvGeometryFor(w->config, 8))));
  }
  return w;
}

std::unique_ptr<World> MakeWorld(const std::string& preset) {
  return MakeWorld(*PresetConfig(preset));
}

// Greedy decoding of `prompts` as one batch on the first `n` devices (sequence i on rank i % n).
std::vector<std::vector<int32_t>> Generate(World& w, int n,
                                           const std::vector<std::vector<int32_t>>& prompts,
                                           int steps, std::vector<float>* first_logits,
                                           int threads_per_device = 1) {
  std::vector<int> devices;
  for (int d = 0; d < n; ++d) devices.push_back(d);
  InstanceOptions o;
  o.threads_per_device = threads_per_device;
  auto inst = LocalInstance::Create(w.hmm.get(), w.config, devices, o);
  EXPECT_TRUE(inst.ok()) << inst.status().ToString();
  std::vector<std::unique_ptr<kv::PagedSequence>> seqs;
  std::vector<SequenceInput> batch;
  for (size_t i = 0; i < prompts.size(); ++i) {
    const int rank = static_cast<int>(i) % n;
    seqs.push_back(std::make_unique<kv::PagedSequence>(w.stores[rank].get()));
    batch.push_back({seqs.back().get(), prompts[i], rank});
  }
  std::vector<std::vector<int32_t>> out(prompts.size());
  for (int s = 0; s < steps; ++s) {
    auto logits = (*inst)->Step(batch);
    EXPECT_TRUE(logits.ok()) << logits.status().ToString();
    if (s == 0) *first_logits = (*logits)[0];
    for (size_t i = 0; i < batch.size(); ++i) {
      const auto& l = (*logits)[i];
      const int32_t next = static_cast<int32_t>(std::max_element(l.begin(), l.end()) - l.begin());
      out[i].push_back(next);
      batch[i].tokens = {next};
    }
  }
  return out;
}

TEST(InstanceTest, SameTokensBitForBitOnOneToFourDevices) {
  auto w = MakeWorld("tiny");
  const std::vector<std::vector<int32_t>> prompts = {
      {72, 101, 108, 108, 111}, {87, 111, 114, 108, 100, 33, 32, 49}, {1, 2, 3}, {200}, {9, 9}};
  std::vector<float> l1;
  const auto want = Generate(*w, 1, prompts, 12, &l1);
  for (int n = 2; n <= 4; ++n) {
    std::vector<float> ln;
    EXPECT_EQ(Generate(*w, n, prompts, 12, &ln), want) << n << " devices";
    EXPECT_EQ(ln, l1) << "logits differ in bits on " << n << " devices";
  }
}

// A device as a team of threads: products large enough to split (experts 2048 wide: the fused
// products and, for the 20-token prompt, the widened sgemm tiles) give the same bits with 1, 2
// and 3 threads per device, on 1 and 2 devices.
TEST(InstanceTest, SameBitsForEveryThreadCountPerDevice) {
  ModelConfig c = *PresetConfig("tiny");
  c.moe_intermediate_size = 2048;
  auto w = MakeWorld(c, {0, 1});
  std::vector<int32_t> longer;
  for (int i = 0; i < 20; ++i) longer.push_back((i * 29 + 3) % 256);
  const std::vector<std::vector<int32_t>> prompts = {{72, 101, 108, 108, 111}, longer, {7}};
  std::vector<float> l1;
  const auto want = Generate(*w, 1, prompts, 6, &l1);
  for (int n = 1; n <= 2; ++n) {
    for (int threads = 2; threads <= 3; ++threads) {
      std::vector<float> ln;
      EXPECT_EQ(Generate(*w, n, prompts, 6, &ln, threads), want)
          << n << " devices, " << threads << " threads each";
      EXPECT_EQ(ln, l1) << "logits differ in bits: " << n << " devices, " << threads << " threads";
    }
  }
  InstanceOptions o;
  o.threads_per_device = 0;
  EXPECT_EQ(LocalInstance::Create(w->hmm.get(), w->config, {0}, o).status().code(),
            vmm::StatusCode::kInvalidArgument);
  o.threads_per_device = 2;
  o.compute_share = 0.5;
  EXPECT_EQ(LocalInstance::Create(w->hmm.get(), w->config, {0}, o).status().code(),
            vmm::StatusCode::kInvalidArgument)
      << "a compute share is accounted per thread";
}

// The experts a step computed: one token computes top-k per layer, on whichever ranks own them.
TEST(InstanceTest, CountsTheExpertsAStepRan) {
  auto w = MakeWorld("tiny");
  auto inst = std::move(*LocalInstance::Create(w->hmm.get(), w->config, {0, 1}));
  kv::PagedSequence a(w->stores[0].get());
  ASSERT_TRUE(inst->Step({{&a, {5}, 0}}).ok());
  EXPECT_EQ(inst->last_experts_run(), w->config.num_experts_per_tok * w->config.num_hidden_layers);
  std::vector<int32_t> prompt;
  for (int i = 0; i < 40; ++i) prompt.push_back(i * 7 % 256);
  kv::PagedSequence b(w->stores[1].get());
  ASSERT_TRUE(inst->Step({{&b, prompt, 1}}).ok());
  EXPECT_GT(inst->last_experts_run(), w->config.num_experts_per_tok * w->config.num_hidden_layers);
  EXPECT_LE(inst->last_experts_run(), w->config.num_experts * w->config.num_hidden_layers);
}

TEST(InstanceTest, ExpertsAreSpreadOverRanks) {
  auto w = MakeWorld("tiny");
  auto inst = LocalInstance::Create(w->hmm.get(), w->config, {0, 1, 2});
  ASSERT_TRUE(inst.ok());
  std::vector<int> per(3, 0);
  for (int e = 0; e < w->config.num_experts; ++e) ++per[(*inst)->expert_owner(0, e)];
  EXPECT_EQ(per, (std::vector<int>{3, 3, 2}));
  EXPECT_EQ(LocalInstance::Create(w->hmm.get(), w->config, {0, 7}).status().code(),
            vmm::StatusCode::kInvalidArgument);
}

TEST(InstanceTest, ComputeShareIdlesInProportion) {
  auto w = MakeWorld("tiny");
  InstanceOptions o;
  o.compute_share = 0.25;
  auto inst = std::move(*LocalInstance::Create(w->hmm.get(), w->config, {0, 1}, o));
  kv::PagedSequence a(w->stores[0].get()), b(w->stores[1].get());
  std::vector<int32_t> prompt(32, 5);
  ASSERT_TRUE(inst->Step({{&a, prompt, 0}, {&b, prompt, 1}}).ok());
  for (int r = 0; r < 2; ++r) {
    EXPECT_GT(inst->last_busy_s()[r], 0.0);
    EXPECT_DOUBLE_EQ(inst->last_idle_s()[r], inst->last_busy_s()[r] * 3.0) << "share 1/4";
  }
  o.compute_share = 0.0;
  EXPECT_EQ(LocalInstance::Create(w->hmm.get(), w->config, {0}, o).status().code(),
            vmm::StatusCode::kInvalidArgument);
  o.compute_share = 1.5;
  EXPECT_FALSE(LocalInstance::Create(w->hmm.get(), w->config, {0}, o).ok());
}

TEST(InstanceTest, BadStepChangesNothing) {
  auto w = MakeWorld("tiny");
  auto inst = std::move(*LocalInstance::Create(w->hmm.get(), w->config, {0, 1}));
  kv::PagedSequence a(w->stores[0].get()), b(w->stores[1].get());
  auto r = inst->Step({{&a, {1, 2, 3}, 0}, {&b, {999}, 1}});
  EXPECT_EQ(r.status().code(), vmm::StatusCode::kInvalidArgument);
  EXPECT_EQ(a.length(), 0);
  EXPECT_EQ(b.length(), 0);
  EXPECT_EQ(inst->Step({{&a, {1}, 5}}).status().code(), vmm::StatusCode::kInvalidArgument);
  ASSERT_TRUE(inst->Step({{&a, {1, 2, 3}, 0}, {&b, {4}, 1}}).ok());
  EXPECT_EQ(a.length(), 3);
  EXPECT_EQ(b.length(), 1);
}

}  // namespace
}  // namespace emoe::engine
