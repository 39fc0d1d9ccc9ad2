// tools/flag_checks: the checks name the flag and refuse what they must (NaN, infinities, empty
// lists, FIFOs as files); ParseFlags gives exit code 2 for a bad command line and sets the flags
// of a good one.
#include "tools/flag_checks.h"

#include <gflags/gflags.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

DEFINE_int32(fc_count, 1, "an int flag for the ParseFlags tests");
DEFINE_double(fc_seconds, 1.0, "a double flag for the ParseFlags tests");
DEFINE_bool(fc_switch, true, "a bool flag for the ParseFlags tests");
DEFINE_string(fc_name, "", "a string flag for the ParseFlags tests");

namespace emoe::tools {
namespace {

void ExpectNamed(const vmm::Status& s, const std::string& flag, const std::string& what = "") {
  ASSERT_FALSE(s.ok()) << flag;
  EXPECT_EQ(s.code(), vmm::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message().rfind("--" + flag, 0), 0u) << s.message();
  if (!what.empty()) {
    EXPECT_NE(s.message().find(what), std::string::npos) << s.message();
  }
}

TEST(FlagChecksTest, Integers) {
  EXPECT_TRUE(IntIn("n", 1, 1, 8).ok());
  EXPECT_TRUE(IntIn("n", 8, 1, 8).ok());
  ExpectNamed(IntIn("n", 0, 1, 8), "n", "in 1..8, got 0");
  ExpectNamed(IntIn("n", -1, 0, std::numeric_limits<int64_t>::max()), "n", ">= 0, got -1");
}

TEST(FlagChecksTest, RealsAreFiniteAndInRange) {
  const double nan = std::nan(""), inf = INFINITY;
  EXPECT_TRUE(RealIn("settle_s", 0, 0, false).ok());
  EXPECT_TRUE(RealIn("top_p", 1, 0, true, 1).ok());
  ExpectNamed(RealIn("settle_s", -1, 0, false), "settle_s", "finite number >= 0, got -1");
  ExpectNamed(RealIn("settle_s", nan, 0, false), "settle_s", "got nan");
  ExpectNamed(RealIn("settle_s", inf, 0, false), "settle_s", "got inf");
  ExpectNamed(RealIn("top_p", 0, 0, true, 1), "top_p", "in (0, 1], got 0");
  ExpectNamed(RealIn("top_p", 2, 0, true, 1), "top_p", "got 2");
  ExpectNamed(RealIn("rate", -inf, 0, true), "rate", "> 0");
}

TEST(FlagChecksTest, ListsAndChoices) {
  std::vector<std::string> items;
  ASSERT_TRUE(List("methods", "a,b", ',', &items).ok());
  EXPECT_EQ(items, (std::vector<std::string>{"a", "b"}));
  ExpectNamed(List("methods", "", ',', nullptr), "methods", "non-empty");
  ExpectNamed(List("methods", "a,,b", ',', nullptr), "methods", "item 2 is empty");
  ExpectNamed(List("methods", "a,", ',', nullptr), "methods", "item 2 is empty");
  std::vector<int> ints;
  ASSERT_TRUE(IntList("schedule", "2,3,4", 1, 7, &ints).ok());
  EXPECT_EQ(ints, (std::vector<int>{2, 3, 4}));
  ExpectNamed(IntList("schedule", "2,x", 1, 7, nullptr), "schedule", "'x'");
  ExpectNamed(IntList("schedule", "2,8", 1, 7, nullptr), "schedule", "'8'");
  ExpectNamed(IntList("schedule", "2,3a", 1, 7, nullptr), "schedule", "'3a'");
  ExpectNamed(IntList("schedule", "99999999999999999999", 1, 7, nullptr), "schedule");
  EXPECT_TRUE(OneOf("dtype", "f32", {"bf16", "f32"}).ok());
  ExpectNamed(OneOf("dtype", "f16", {"bf16", "f32"}), "dtype", "one of bf16, f32, got 'f16'");
  ExpectNamed(NonEmpty("out", ""), "out");
  const vmm::Status lib = vmm::Status::NotFound("unknown preset 'x'");
  ExpectNamed(Named("preset", lib), "preset", "unknown preset 'x'");
  EXPECT_TRUE(Named("preset", vmm::Status::Ok()).ok());
  EXPECT_TRUE(FirstError({vmm::Status::Ok(), vmm::Status::Ok()}).ok());
  ExpectNamed(FirstError({vmm::Status::Ok(), IntIn("a", 0, 1, 2), IntIn("b", 0, 1, 2)}), "a");
}

TEST(FlagChecksTest, PathsByType) {
  const std::string dir = ::testing::TempDir() + "/flag_checks_" + std::to_string(getpid());
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  const std::string file = dir + "/file", fifo = dir + "/fifo", sock = dir + "/sock";
  {
    std::FILE* f = std::fopen(file.c_str(), "w");
    ASSERT_NE(f, nullptr);
    std::fclose(f);
  }
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  const int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", sock.c_str());
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  close(fd);
  EXPECT_TRUE(Directory("model", "").ok());  // not given
  EXPECT_TRUE(Directory("model", dir).ok());
  ExpectNamed(Directory("model", file), "model", "existing directory");
  EXPECT_TRUE(RegularFile("trace", file).ok());
  ExpectNamed(RegularFile("trace", fifo), "trace", "regular file");  // would block a reader
  ExpectNamed(RegularFile("trace", dir), "trace");
  EXPECT_TRUE(Socket("hmmd_socket", sock).ok());
  ExpectNamed(Socket("hmmd_socket", file), "hmmd_socket", "UNIX socket");
  ExpectNamed(Executable("hmmd_binary", file), "hmmd_binary", "executable");
  EXPECT_TRUE(Executable("hmmd_binary", "/bin/sh").ok());
  EXPECT_TRUE(CreatableFile("json", dir + "/new.json").ok());
  ExpectNamed(CreatableFile("json", dir + "/no/such/dir.json"), "json", "existing directory");
  ExpectNamed(CreatableFile("json", dir), "json", "directory");
  std::filesystem::remove_all(dir);
}

// ParseFlags over an argv of its own (gflags' registry is process-wide: flags restored after).
class ParseFlagsTest : public ::testing::Test {
 protected:
  std::optional<int> Parse(std::vector<std::string> args) {
    args.insert(args.begin(), "flag_checks_test");
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    int argc = static_cast<int>(args.size());
    char** p = argv.data();
    return ParseFlags("flag_checks_test", &argc, &p);
  }
  gflags::FlagSaver saver_;
};

TEST_F(ParseFlagsTest, GoodCommandLineSetsTheFlags) {
  EXPECT_FALSE(Parse({"--fc_count=3", "--fc_seconds", "0.5", "--nofc_switch", "-fc_name=x"}));
  EXPECT_EQ(FLAGS_fc_count, 3);
  EXPECT_EQ(FLAGS_fc_seconds, 0.5);
  EXPECT_FALSE(FLAGS_fc_switch);
  EXPECT_EQ(FLAGS_fc_name, "x");
  EXPECT_FALSE(Parse({"--fc_switch=true", "--"}));
  EXPECT_TRUE(FLAGS_fc_switch);
}

TEST_F(ParseFlagsTest, BadCommandLinesExitTwoAndSetNothing) {
  const std::vector<std::vector<std::string>> bad = {
      {"--no_such_flag=1"},  {"--fc_count=abc"},    {"--fc_count=1.5"}, {"--fc_seconds=x"},
      {"--fc_switch=maybe"}, {"--fc_count"},        {"stray"},          {"--", "stray"},
      {"--nofc_count"},      {"--fc_count=2", "-"},
  };
  for (const auto& args : bad) {
    testing::internal::CaptureStderr();
    const std::optional<int> rc = Parse(args);
    const std::string err = testing::internal::GetCapturedStderr();
    ASSERT_TRUE(rc.has_value()) << args[0];
    EXPECT_EQ(*rc, kExitUsage) << args[0];
    EXPECT_EQ(err.rfind("flag_checks_test: ", 0), 0u) << err;
    EXPECT_EQ(FLAGS_fc_count, 1) << "a refused command line set a flag: " << args[0];
  }
}

}  // namespace
}  // namespace emoe::tools
