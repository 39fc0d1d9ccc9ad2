// A preloaded hmmd (hmmd --checkpoint=MODEL_DIR) places the model by the engine's one deployment
// rule: each expert of each layer is an extent of its own on its owner, exactly as a coordinator
// loads it, so preloaded experts can be copied and remapped one layer at a time.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <thread>

#include "../hbm/test_files.h"
#include "engine/deployment.h"
#include "engine/model.h"
#include "hbm/remote_control.h"

namespace emoe::engine {
namespace {

TEST(HmmdPreloadTest, ExpertsArePreloadedOneExtentPerLayerLikeACoordinatorLoadsThem) {
  hbm::testing::ScratchDir dir;
  const ModelConfig config = *PresetConfig("tiny");
  ASSERT_TRUE(GenerateModel(config, {}, dir.File("model")).ok());
  const std::string sock = dir.File("run/hmmd.sock");
  const pid_t pid = fork();
  if (pid == 0) {
    const std::string ckpt = "--checkpoint=" + dir.File("model"), s = "--socket=" + sock;
    execl(HMMD_BINARY, "hmmd", ckpt.c_str(), s.c_str(), "--devices_per_node=2",
          "--device_capacity_mb=64", "--weights_mb=8", "--experts_mb=8", "--page_size=4k",
          "--minloglevel=1", static_cast<char*>(nullptr));
    _exit(127);
  }
  std::unique_ptr<hbm::RemoteHmmControl> hmmd;
  for (int i = 0; i < 400 && !hmmd; ++i) {
    auto c = hbm::RemoteHmmControl::Connect(sock);
    if (c.ok()) {
      hmmd = std::move(*c);
    } else {
      std::this_thread::sleep_for(std::chrono::milliseconds(25));
    }
  }
  ASSERT_TRUE(hmmd) << "hmmd did not come up";
  // The reference: the same rule applied by an HMM in this process.
  hbm::HmmOptions o;
  o.memory.usage_bytes = {8 << 20, 8 << 20, 0};
  o.memory.page_size = vmm::PageSizePolicy::kSmall;
  std::vector<hbm::DeviceSpec> specs(2);
  for (int i = 0; i < 2; ++i) {
    specs[i].id = i;
    specs[i].cpus = {0};
    specs[i].capacity_bytes = 64 << 20;
  }
  auto local = std::move(*hbm::Hmm::CreateWithDevices(specs, o));
  hbm::LocalHmmControl ref(local.get());
  const auto placement =
      *experts::InitialPlacement(config.num_hidden_layers, config.num_experts, {0, 1});
  const std::vector<TensorSpec> tensors = ExpectedTensors(config);
  ASSERT_TRUE(ref.Load(dir.File("model"), DeploymentTable(tensors, {0, 1}, placement), "").ok());
  ASSERT_GE(config.num_hidden_layers, 2);
  for (const TensorSpec& t : tensors) {
    if (t.expert < 0) continue;
    const int owner = placement.owner[t.layer][t.expert];
    auto got = hmmd->Find(t.name, owner);
    ASSERT_TRUE(got.ok()) << t.name << ": " << got.status().ToString();
    auto want = ref.Find(t.name, owner);
    ASSERT_TRUE(want.ok()) << want.status().ToString();
    EXPECT_EQ(got->extent_bytes, want->extent_bytes)
        << t.name << ": one extent per layer and expert, as a coordinator loads it";
    EXPECT_FALSE(hmmd->Find(t.name, 1 - owner).ok()) << t.name << " only on its owner";
  }
  // One layer's expert moves alone: copy layer 0's expert 0 to the other device.
  std::vector<std::string> group;
  for (const TensorSpec& t : tensors) {
    if (t.layer == 0 && t.expert == 0) group.push_back(t.name);
  }
  const int owner = placement.owner[0][0];
  hbm::HmmControl& control = *hmmd;
  auto copied = control.CopyGroup(group, owner, 1 - owner, hbm::Usage::kExperts);
  ASSERT_TRUE(copied.ok()) << copied.status().ToString();
  const uint64_t layer_extent = ref.Find(group[0], owner)->extent_bytes;
  EXPECT_GT(*copied, 0u);
  EXPECT_LE(*copied, layer_extent) << "only layer 0's expert 0 moved";
  auto moved = hmmd->Find(group[0], 1 - owner);
  ASSERT_TRUE(moved.ok()) << moved.status().ToString();
  EXPECT_EQ(moved->extent_bytes, layer_extent);
  EXPECT_FALSE(hmmd->Find(tensors.back().name + ".nope", owner).ok());
  hmmd.reset();
  ASSERT_EQ(kill(pid, SIGTERM), 0);
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

}  // namespace
}  // namespace emoe::engine
