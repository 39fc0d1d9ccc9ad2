// The instance-process protocol's checks: the step mailbox (instances/mailbox.h) round-trips a
// batch and names what is wrong with a malformed one; a real instance process (emoe_instance)
// answers malformed requests with an error naming the field and keeps serving.
#include "instances/mailbox.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstring>
#include <nlohmann/json.hpp>
#include <random>

#include "engine/model.h"
#include "instances/json_fields.h"
#include "vmm/fd_passing.h"

namespace emoe::engine {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;

// A mailbox-like buffer, 8-aligned like the page-aligned arena.
struct Box {
  explicit Box(uint64_t bytes) : words((bytes + 7) / 8), capacity(bytes) {}
  uint8_t* data() { return reinterpret_cast<uint8_t*>(words.data()); }
  std::vector<int64_t> words;
  uint64_t capacity;
};

constexpr int64_t kVocab = 7;

struct Batch {
  std::vector<std::vector<int32_t>> blocks = {{3, 1, 4}, {}, {15, 9}};
  std::vector<std::vector<int32_t>> tokens = {{2, 7}, {1, 8, 2, 8}, {5}};
  std::vector<StepMailbox::Sequence> seqs;
  Batch() {
    const int64_t ranks[] = {0, 2, 1}, lengths[] = {40, 0, 17};
    for (size_t i = 0; i < blocks.size(); ++i) {
      seqs.push_back({ranks[i], lengths[i], blocks[i], tokens[i]});
    }
  }
};

TEST(MailboxTest, RoundTripsEveryField) {
  Batch b;
  const StepMailbox::Layout layout = StepMailbox::Plan(b.seqs, kVocab);
  EXPECT_EQ(layout.n, 3);
  EXPECT_EQ(layout.request_bytes, 8u + 3 * 32 + 4 * (5 + 7));
  EXPECT_EQ(layout.logits_offset % StepMailbox::kLogitsAlignment, 0u);
  EXPECT_GE(layout.logits_offset, layout.request_bytes);
  EXPECT_EQ(layout.logits_bytes, 3u * kVocab * sizeof(float));
  Box box(layout.total_bytes());
  ASSERT_TRUE(StepMailbox::Write(b.seqs, layout, box.data(), box.capacity).ok());

  std::vector<StepMailbox::Sequence> got;
  StepMailbox::Layout read;
  const Status s = StepMailbox::Read(box.data(), box.capacity, layout.request_bytes,
                                     layout.logits_offset, kVocab, &got, &read);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(read.n, layout.n);
  EXPECT_EQ(read.request_bytes, layout.request_bytes);
  EXPECT_EQ(read.logits_offset, layout.logits_offset);
  EXPECT_EQ(read.logits_bytes, layout.logits_bytes);
  ASSERT_EQ(got.size(), b.seqs.size());
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_EQ(got[i].rank, b.seqs[i].rank) << i;
    EXPECT_EQ(got[i].length, b.seqs[i].length) << i;
    EXPECT_EQ(std::vector<int32_t>(got[i].blocks.begin(), got[i].blocks.end()), b.blocks[i]);
    EXPECT_EQ(std::vector<int32_t>(got[i].tokens.begin(), got[i].tokens.end()), b.tokens[i]);
  }
  // The reader's logits are where the writer looks for them.
  for (int64_t i = 0; i < read.n; ++i) {
    for (int64_t v = 0; v < kVocab; ++v) {
      StepMailbox::Logits(box.data(), read, kVocab, i)[v] = static_cast<float>(i * 100 + v);
    }
  }
  const uint8_t* cbox = box.data();
  for (int64_t i = 0; i < layout.n; ++i) {
    EXPECT_EQ(StepMailbox::Logits(cbox, layout, kVocab, i)[kVocab - 1], i * 100.0f + kVocab - 1);
  }
  // An empty batch too.
  const StepMailbox::Layout empty = StepMailbox::Plan({}, kVocab);
  ASSERT_TRUE(StepMailbox::Write({}, empty, box.data(), box.capacity).ok());
  ASSERT_TRUE(StepMailbox::Read(box.data(), box.capacity, empty.request_bytes, empty.logits_offset,
                                kVocab, &got, &read)
                  .ok());
  EXPECT_TRUE(got.empty());
}

TEST(MailboxTest, WriteRefusesWhatDoesNotFit) {
  Batch b;
  const StepMailbox::Layout layout = StepMailbox::Plan(b.seqs, kVocab);
  Box small(layout.total_bytes() - 1);
  Status s = StepMailbox::Write(b.seqs, layout, small.data(), small.capacity);
  EXPECT_EQ(s.code(), vmm::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("does not fit"));
  Box box(layout.total_bytes());
  StepMailbox::Layout other = layout;
  other.request_bytes += 4;
  s = StepMailbox::Write(b.seqs, other, box.data(), box.capacity);
  EXPECT_THAT(s.message(), HasSubstr("not planned for this batch"));
}

class MalformedMailboxTest : public ::testing::Test {
 protected:
  void SetUp() override {
    layout_ = StepMailbox::Plan(b_.seqs, kVocab);
    ASSERT_TRUE(StepMailbox::Write(b_.seqs, layout_, box_.data(), box_.capacity).ok());
  }
  // The error Read gives for the mailbox as it is now.
  std::string ReadError(uint64_t request_bytes, uint64_t logits_offset, int64_t vocab = kVocab) {
    std::vector<StepMailbox::Sequence> got;
    StepMailbox::Layout read;
    const Status s = StepMailbox::Read(box_.data(), box_.capacity, request_bytes, logits_offset,
                                       vocab, &got, &read);
    EXPECT_EQ(s.code(), vmm::StatusCode::kInvalidArgument) << s.ToString();
    return s.message();
  }
  std::string ReadError() { return ReadError(layout_.request_bytes, layout_.logits_offset); }
  void Poke(uint64_t offset, int64_t v) { std::memcpy(box_.data() + offset, &v, sizeof(v)); }
  // Record i's field f (0 rank, 1 length, 2 num_blocks, 3 num_tokens).
  void PokeRecord(int i, int f, int64_t v) { Poke(8 + 32 * i + 8 * f, v); }

  Batch b_;
  StepMailbox::Layout layout_;
  Box box_{4096};
};

TEST_F(MalformedMailboxTest, NTooLargeOrNegative) {
  Poke(0, 1000);
  EXPECT_THAT(ReadError(), HasSubstr("n = 1000 sequences do not fit request_bytes"));
  Poke(0, -1);
  EXPECT_THAT(ReadError(), HasSubstr("n = -1"));
  Poke(0, int64_t{1} << 62);
  EXPECT_THAT(ReadError(), HasSubstr("do not fit"));
}

TEST_F(MalformedMailboxTest, RequestBytesOutOfRange) {
  EXPECT_THAT(ReadError(4, layout_.logits_offset), HasSubstr("request_bytes 4 outside"));
  EXPECT_THAT(ReadError(box_.capacity + 1, layout_.logits_offset),
              HasSubstr("request_bytes 4097 outside"));
}

TEST_F(MalformedMailboxTest, CountsPastTheEnd) {
  PokeRecord(1, 3, 1000);  // num_tokens
  EXPECT_THAT(ReadError(), HasSubstr("sequence 1: 0 blocks and 1000 tokens"));
  PokeRecord(1, 3, 4);
  PokeRecord(2, 2, int64_t{1} << 61);  // num_blocks: 4 x that overflows
  EXPECT_THAT(ReadError(), HasSubstr("sequence 2: 2305843009213693952 blocks"));
  PokeRecord(2, 2, -2);
  EXPECT_THAT(ReadError(), HasSubstr("sequence 2: negative"));
  PokeRecord(2, 2, 2);
  PokeRecord(0, 0, -1);  // rank
  EXPECT_THAT(ReadError(), HasSubstr("sequence 0: negative rank"));
  PokeRecord(0, 0, 0);
  PokeRecord(2, 3, 0);  // one token fewer than the request holds
  EXPECT_THAT(ReadError(), HasSubstr("end at byte"));
}

TEST_F(MalformedMailboxTest, LogitsOffsetOutOfRange) {
  EXPECT_THAT(ReadError(layout_.request_bytes, layout_.logits_offset + 4),
              HasSubstr("logits_offset"));  // misaligned
  EXPECT_THAT(ReadError(layout_.request_bytes, 0), HasSubstr("logits_offset 0"));
  EXPECT_THAT(ReadError(layout_.request_bytes, 8192), HasSubstr("logits_offset 8192"));
  // In range, but the logits run past the end.
  EXPECT_THAT(ReadError(layout_.request_bytes, 4096 - 64), HasSubstr("run past the capacity"));
  EXPECT_THAT(ReadError(layout_.request_bytes, layout_.logits_offset, int64_t{1} << 62),
              HasSubstr("vocab"));
  EXPECT_THAT(ReadError(layout_.request_bytes, layout_.logits_offset, 0), HasSubstr("vocab 0"));
}

// Random mailboxes: Read either fails or returns spans inside the request.
TEST(MailboxTest, RandomBytesNeverReadOutOfBounds) {
  std::mt19937_64 rng(42);
  Box box(1024);
  int ok = 0;
  for (int iter = 0; iter < 20000; ++iter) {
    for (int64_t& w : box.words) w = static_cast<int64_t>(rng() % 8);  // small counts
    if (iter % 3 == 0) box.words[0] = static_cast<int64_t>(rng());
    const uint64_t request_bytes = rng() % 1100, logits_offset = rng() % 1100 / 64 * 64;
    std::vector<StepMailbox::Sequence> got;
    StepMailbox::Layout read;
    if (!StepMailbox::Read(box.data(), box.capacity, request_bytes, logits_offset, 3, &got, &read)
             .ok()) {
      continue;
    }
    ++ok;
    const uint8_t* end = box.data() + request_bytes;
    for (const StepMailbox::Sequence& s : got) {
      EXPECT_LE(reinterpret_cast<const uint8_t*>(s.blocks.data() + s.blocks.size()), end);
      EXPECT_LE(reinterpret_cast<const uint8_t*>(s.tokens.data() + s.tokens.size()), end);
    }
    EXPECT_LE(read.total_bytes(), box.capacity);
  }
  EXPECT_GT(ok, 0) << "no random mailbox was well formed: the test checks nothing";
}

// ---- The instance process ----

class InstanceHostTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto child = vmm::SpawnWithSocket({EMOE_INSTANCE_BINARY, "--control_fd=3"}, 3,
                                      /*stdout_to_stderr=*/true, "instance process");
    ASSERT_TRUE(child.ok()) << child.status().ToString();
    pid_ = child->pid;
    sock_ = std::move(child->socket);
  }
  void TearDown() override {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
  }
  json Call(const std::string& request) {
    EXPECT_TRUE(vmm::SendFds(sock_.get(), request, {}).ok());
    auto m = vmm::RecvFds(sock_.get());
    EXPECT_TRUE(m.ok()) << "the instance process died on: " << request;
    if (!m.ok()) return json::object();
    json j = json::parse(m->payload, nullptr, false);
    EXPECT_FALSE(j.is_discarded()) << m->payload;
    return j;
  }
  // The error message of a request that must fail.
  std::string Error(const std::string& request) {
    const json j = Call(request);
    EXPECT_EQ(j.value("ok", true), false) << request << " -> " << j.dump();
    return j.value("error", std::string());
  }
  static json Boot() {
    return json{
        {"op", "boot"}, {"config", json::parse(PresetConfig("tiny")->ToJson())}, {"cpus", {{0}}}};
  }
  static json Attach() {
    return json{{"op", "attach"},
                {"socket", "/nonexistent"},
                {"devices", {0}},
                {"owner", {{0, 0}}},
                {"placement_devices", {0}},
                {"block_tokens", 16},
                {"stores", {{{"device", 0}, {"offset", 0}, {"bytes", 4096}}}}};
  }

  pid_t pid_ = 0;
  vmm::UniqueFd sock_;
};

TEST_F(InstanceHostTest, MalformedRequestsGetErrorsNamingTheField) {
  EXPECT_THAT(Error("not json"), HasSubstr("not a JSON object"));
  EXPECT_THAT(Error("[1,2]"), HasSubstr("not a JSON object"));
  EXPECT_THAT(Error("{}"), HasSubstr("field 'op' is required"));
  EXPECT_THAT(Error(R"({"op":5})"), HasSubstr("field 'op' must be a string"));
  EXPECT_THAT(Error(R"({"op":"fly"})"), HasSubstr("unknown op 'fly'"));
  EXPECT_THAT(Error(R"({"op":"attach"})"), HasSubstr("attach before boot"));

  json b = Boot();
  b["cpus"] = 5;
  EXPECT_THAT(Error(b.dump()), HasSubstr("boot: field 'cpus' must be an array of arrays"));
  b["cpus"] = {0, 1};
  EXPECT_THAT(Error(b.dump()), HasSubstr("boot: field 'cpus' must be an array of arrays"));
  b = Boot();
  b.erase("cpus");
  EXPECT_THAT(Error(b.dump()), HasSubstr("boot: field 'cpus' is required"));
  b = Boot();
  b["config"] = "tiny";
  EXPECT_THAT(Error(b.dump()), HasSubstr("boot: field 'config' must be an object"));
  b = Boot();
  b["compute_share"] = "half";
  EXPECT_THAT(Error(b.dump()), HasSubstr("boot: field 'compute_share' must be a number"));

  // Still serving: boot for real, then attaches with wrong types.
  const json booted = Call(Boot().dump());
  ASSERT_EQ(booted.value("ok", false), true) << booted.dump();
  EXPECT_EQ(booted.value("pid", 0), pid_);
  json a = Attach();
  a["devices"] = "0";
  EXPECT_THAT(Error(a.dump()), HasSubstr("attach: field 'devices' must be an array of integers"));
  a = Attach();
  a["devices"] = {0, 1.5};
  EXPECT_THAT(Error(a.dump()), HasSubstr("attach: field 'devices' must be an array of integers"));
  a = Attach();
  a.erase("socket");
  EXPECT_THAT(Error(a.dump()), HasSubstr("attach: field 'socket' is required"));
  a = Attach();
  a["owner"] = {{0, "x"}};
  EXPECT_THAT(Error(a.dump()), HasSubstr("attach: field 'owner' must be an array of arrays"));
  a = Attach();
  a["block_tokens"] = 0;
  EXPECT_THAT(Error(a.dump()), HasSubstr("attach: field 'block_tokens' must be positive"));
  a = Attach();
  a["block_tokens"] = "16";
  EXPECT_THAT(Error(a.dump()), HasSubstr("attach: field 'block_tokens' must be an integer"));
  a = Attach();
  a["stores"] = {{{"device", 0}, {"offset", -1}, {"bytes", 4096}}};
  EXPECT_THAT(Error(a.dump()),
              HasSubstr("attach: stores[0]: field 'offset' must be a non-negative integer"));
  a = Attach();
  a["stores"] = {1, 2};
  EXPECT_THAT(Error(a.dump()), HasSubstr("attach: field 'stores' must be an array of objects"));
  a = Attach();
  a["mailbox"] = 3;
  EXPECT_THAT(Error(a.dump()), HasSubstr("attach: field 'mailbox' must be a string"));
  // Well typed, but no HMM listens there: the connect fails, named.
  EXPECT_FALSE(Error(Attach().dump()).empty());
  EXPECT_THAT(Error(R"({"op":"step","request_bytes":"8","logits_offset":64})"),
              HasSubstr("step before attach"));

  // And it still answers, then exits when told to.
  const json bye = Call(R"({"op":"exit"})");
  EXPECT_EQ(bye.value("ok", false), true);
  int status = 0;
  ASSERT_EQ(waitpid(pid_, &status, 0), pid_);
  pid_ = 0;
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
}

// The timing parts of an attach reply are diagnostics: malformed ones are skipped and counted,
// never an error, and "rpc" is the round trip outside the valid ones.
TEST(TimingPartsTest, MalformedPartsAreSkippedNotFatal) {
  std::map<std::string, double> out;
  int skipped = 0;
  AddTimingParts(nlohmann::json::parse(R"({"phases":{"weights":0.25,"populate":0.5}})"), 1.0, &out,
                 &skipped);
  EXPECT_EQ(skipped, 0);
  EXPECT_DOUBLE_EQ(out["weights"], 0.25);
  EXPECT_DOUBLE_EQ(out["rpc"], 0.25);
  AddTimingParts(nlohmann::json::parse(
                     R"({"phases":{"weights":"fast","populate":-1,"sources":0.125,"x":null}})"),
                 0.1, &out, &skipped);
  EXPECT_EQ(skipped, 3);
  EXPECT_DOUBLE_EQ(out["weights"], 0.25);
  EXPECT_DOUBLE_EQ(out["sources"], 0.125);
  EXPECT_DOUBLE_EQ(out["rpc"], 0.25) << "the round trip was shorter than its parts: adds 0";
  AddTimingParts(nlohmann::json::parse(R"({"phases":[1,2]})"), 0.5, &out, &skipped);
  EXPECT_EQ(skipped, 4);
  EXPECT_DOUBLE_EQ(out["rpc"], 0.75);
  AddTimingParts(nlohmann::json::parse("[]"), 0.5, &out, &skipped);  // not even an object
  EXPECT_EQ(skipped, 4);
  EXPECT_DOUBLE_EQ(out["rpc"], 1.25);
}

}  // namespace
}  // namespace emoe::engine
