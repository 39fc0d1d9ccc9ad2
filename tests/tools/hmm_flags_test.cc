// tools/hmm_flags: defaults per binary, the options the flags give, bad values named, aliases.
#include "tools/hmm_flags.h"

#include <gflags/gflags.h>
#include <gtest/gtest.h>

#include <string>

DEFINE_int32(old_devices, 7, "an older name of --devices_per_node (for the alias test)");

namespace emoe::tools {
namespace {

// Each test starts from hmmd's defaults, nothing set on the "command line".
class HmmFlagsTest : public ::testing::Test {
 protected:
  void SetUp() override { saver_ = std::make_unique<gflags::FlagSaver>(); }
  void TearDown() override { saver_.reset(); }
  std::unique_ptr<gflags::FlagSaver> saver_;
};

TEST_F(HmmFlagsTest, HmmdDefaultsGiveTheLibraryDefaults) {
  auto o = HmmOptionsFromFlags();
  ASSERT_TRUE(o.ok()) << o.status().ToString();
  const hbm::HmmOptions lib;
  EXPECT_EQ(o->devices.devices_per_node, 1);
  EXPECT_TRUE(o->devices.nodes.empty());
  EXPECT_FALSE(o->devices.pin_cpus);
  EXPECT_EQ(o->devices.capacity_bytes, 0u);
  EXPECT_EQ(o->memory.usage_bytes[0], 512ull << 20);
  EXPECT_EQ(o->memory.usage_bytes[1], 512ull << 20);
  EXPECT_EQ(o->memory.usage_bytes[2], 0u);
  EXPECT_EQ(o->memory.page_size, vmm::PageSizePolicy::kAuto);
  EXPECT_FALSE(o->memory.populate);
  EXPECT_FALSE(o->memory.discard_on_free);
  EXPECT_EQ(o->loader.queue_depth, lib.loader.queue_depth);
  EXPECT_EQ(o->loader.chunk_bytes, lib.loader.chunk_bytes);
  EXPECT_EQ(o->loader.direct_io, lib.loader.direct_io);
  EXPECT_EQ(o->loader.register_buffers, lib.loader.register_buffers);
  EXPECT_EQ(o->loader.progress_interval_s, lib.loader.progress_interval_s);
  EXPECT_EQ(o->copy_threads_per_device, lib.copy_threads_per_device);
  EXPECT_TRUE(o->check_weights);
  EXPECT_EQ(o->check_weights, lib.check_weights);
}

TEST_F(HmmFlagsTest, BinaryDefaultsAndCommandLine) {
  HmmFlagDefaults d;
  d.devices_per_node = 7;
  d.device_capacity_mb = 640;
  d.weights_mb = 96;
  d.experts_mb = 1024;
  d.kv_mb = 320;
  d.populate = true;
  d.progress_interval_s = 0.25;
  SetHmmFlagDefaults(d);
  gflags::CommandLineFlagInfo info;
  ASSERT_TRUE(gflags::GetCommandLineFlagInfo("kv_mb", &info));
  EXPECT_EQ(info.default_value, "320");  // what --help shows
  EXPECT_TRUE(info.is_default);
  ASSERT_FALSE(gflags::SetCommandLineOption("nodes", "0").empty());
  ASSERT_FALSE(gflags::SetCommandLineOption("page_size", "4k").empty());
  ASSERT_FALSE(gflags::SetCommandLineOption("chunk_kb", "256").empty());
  ASSERT_FALSE(gflags::SetCommandLineOption("check_weights", "false").empty());
  auto o = HmmOptionsFromFlags();
  ASSERT_TRUE(o.ok()) << o.status().ToString();
  EXPECT_EQ(o->devices.devices_per_node, 7);
  EXPECT_EQ(o->devices.nodes, std::vector<int>{0});
  EXPECT_EQ(o->devices.capacity_bytes, 640ull << 20);
  EXPECT_EQ(o->memory.usage_bytes[0], 96ull << 20);
  EXPECT_EQ(o->memory.usage_bytes[1], 1024ull << 20);
  EXPECT_EQ(o->memory.usage_bytes[2], 320ull << 20);
  EXPECT_EQ(o->memory.page_size, vmm::PageSizePolicy::kSmall);
  EXPECT_TRUE(o->memory.populate);
  EXPECT_EQ(o->loader.chunk_bytes, 256u << 10);
  EXPECT_EQ(o->loader.progress_interval_s, 0.25);
  EXPECT_FALSE(o->check_weights);
}

// A bad value is kInvalidArgument whose message starts with the flag.
TEST_F(HmmFlagsTest, BadValuesNameTheFlag) {
  const std::pair<const char*, const char*> bad[] = {
      {"page_size", "huge"},
      {"nodes", "0,a"},
      {"nodes", "1,1"},
      {"devices_per_node", "0"},
      {"weights_mb", "17592186044416"},
      {"chunk_kb", "6"},
      {"queue_depth", "0"},
      {"copy_threads", "-1"},
      {"copy_threads", "100000"},
      {"progress_interval_s", "-1"},
      {"progress_interval_s", "nan"},
      {"progress_interval_s", "inf"},
  };
  for (const auto& [flag, value] : bad) {
    gflags::FlagSaver restore;
    ASSERT_FALSE(gflags::SetCommandLineOption(flag, value).empty()) << flag;
    auto o = HmmOptionsFromFlags();
    ASSERT_FALSE(o.ok()) << flag << "=" << value;
    EXPECT_EQ(o.status().code(), vmm::StatusCode::kInvalidArgument);
    EXPECT_EQ(o.status().message().rfind(std::string("--") + flag, 0), 0u) << o.status().ToString();
  }
}

TEST_F(HmmFlagsTest, AliasForwardsOnlyWhenGiven) {
  ASSERT_TRUE(ForwardFlagAlias("old_devices", "devices_per_node").ok());
  EXPECT_EQ(HmmOptionsFromFlags()->devices.devices_per_node, 1);  // alias not given
  ASSERT_FALSE(gflags::SetCommandLineOption("old_devices", "4").empty());
  ASSERT_TRUE(ForwardFlagAlias("old_devices", "devices_per_node").ok());
  EXPECT_EQ(HmmOptionsFromFlags()->devices.devices_per_node, 4);
  ASSERT_TRUE(ForwardFlagAlias("old_devices", "devices_per_node").ok());  // same value: fine
  ASSERT_FALSE(gflags::SetCommandLineOption("devices_per_node", "3").empty());
  vmm::Status both = ForwardFlagAlias("old_devices", "devices_per_node");
  EXPECT_EQ(both.code(), vmm::StatusCode::kInvalidArgument);
  EXPECT_NE(both.message().find("--old_devices=4"), std::string::npos) << both.ToString();
  EXPECT_FALSE(ForwardFlagAlias("no_such_flag", "devices_per_node").ok());
}

// A bad value given through an alias names the alias the user typed (elasticmoe
// --max_devices=1000 once said --devices_per_node).
TEST_F(HmmFlagsTest, BadValueThroughAnAliasNamesTheAlias) {
  ASSERT_FALSE(gflags::SetCommandLineOption("old_devices", "1000").empty());
  ASSERT_TRUE(ForwardFlagAlias("old_devices", "devices_per_node").ok());
  auto o = HmmOptionsFromFlags();
  ASSERT_FALSE(o.ok());
  EXPECT_EQ(o.status().message().rfind("--old_devices must be", 0), 0u) << o.status().ToString();
  EXPECT_NE(o.status().message().find("got 1000"), std::string::npos) << o.status().ToString();
}

}  // namespace
}  // namespace emoe::tools
