// engine::ParseScaleOptions (engine/scale_types.h): every method name and elastic ablation
// parses to the options whose Name() it is; unknown methods and ablations of a baseline are
// refused naming them.
#include <gtest/gtest.h>

#include "engine/scale_types.h"

namespace emoe::engine {
namespace {

TEST(ParseScaleOptionsTest, NamesRoundTrip) {
  for (const char* name :
       {"elastic", "cold-restart", "extravagant", "colocated", "horizontal", "elastic-no-p2p",
        "elastic-no-zero-copy", "elastic-no-preinit", "elastic-no-vm-remap", "elastic-drain",
        "elastic-no-zero-copy-no-p2p", "elastic-no-p2p-drain", "cold-restart-drain"}) {
    auto o = ParseScaleOptions(name);
    ASSERT_TRUE(o.ok()) << name << ": " << o.status().ToString();
    EXPECT_EQ(o->Name(), name);
  }
  auto o = ParseScaleOptions("elastic-no-p2p-no-preinit");
  ASSERT_TRUE(o.ok());
  EXPECT_EQ(o->method, ScaleMethod::kElastic);
  EXPECT_FALSE(o->p2p);
  EXPECT_FALSE(o->preinit);
  EXPECT_TRUE(o->zero_copy);
  EXPECT_TRUE(o->vm_remap);
  EXPECT_FALSE(o->drain);
  // Ablations in another order than Name()'s mean the same.
  o = ParseScaleOptions("elastic-drain-no-p2p-no-zero-copy");
  ASSERT_TRUE(o.ok()) << o.status().ToString();
  EXPECT_EQ(o->Name(), "elastic-no-zero-copy-no-p2p-drain");
}

TEST(ParseScaleOptionsTest, RefusesUnknownMethodsAndBaselineAblations) {
  for (const char* name :
       {"", "nope", "elastic-fast", "-no-p2p", "cold-restart-no-p2p", "horizontal-no-preinit"}) {
    auto o = ParseScaleOptions(name);
    ASSERT_FALSE(o.ok()) << name;
    EXPECT_EQ(o.status().code(), vmm::StatusCode::kInvalidArgument) << name;
  }
  EXPECT_NE(ParseScaleOptions("warp").status().message().find("'warp'"), std::string::npos);
  EXPECT_NE(ParseScaleOptions("colocated-no-p2p").status().message().find("elastic"),
            std::string::npos);
}

}  // namespace
}  // namespace emoe::engine
