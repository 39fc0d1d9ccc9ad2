// HmmControl::ApplyCopies and Describe, the contract against both implementations (the fixture
// of control_fixture.h): a batch registers every copy with the right bytes on the right devices
// and the data of its source; every failure registers nothing and frees every extent; Describe
// answers in order, names the missing record and carries every device's stats. Then what only
// the remote one has: a batch the size of a large redistribution in one request, malformed and
// oversized requests that leave the daemon serving.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "control_fixture.h"
#include "hbm/client.h"
#include "hbm/server.h"

namespace emoe::hbm {
namespace {

using vmm::StatusCode;

const char* kE0W1 = "layers.0.experts.0.w1";
const char* kE0W2 = "layers.0.experts.0.w2";
const char* kE1W1 = "layers.0.experts.1.w1";
const char* kE1W2 = "layers.0.experts.1.w2";

class BatchTest : public ControlTest {
 protected:
  void SetUp() override {
    ControlTest::SetUp();
    if (HasFatalFailure()) return;
    auto r = control_->Load(ckpt_, Table(), "");
    ASSERT_TRUE(r.ok()) << r.status().ToString();
  }

  // What an instance sees: every tensor mapped through an attach.
  std::unique_ptr<Attachment> Attach() {
    std::unique_ptr<HmmClient> client;
    if (remote_ != nullptr) {
      auto c = HmmClient::Connect(control_->socket_path());
      EXPECT_TRUE(c.ok()) << c.status().ToString();
      if (!c.ok()) return nullptr;
      client = std::move(*c);
    } else {
      client = HmmClient::InProcess(control_->local());
    }
    auto a = client->Attach();
    EXPECT_TRUE(a.ok()) << a.status().ToString();
    return a.ok() ? std::move(*a) : nullptr;
  }

  const std::string& Written(const std::string& name) const {
    for (const TensorToWrite& w : written_) {
      if (w.name == name) return w.bytes;
    }
    ADD_FAILURE() << name << " was not written";
    return written_.front().bytes;
  }

  // Every arena's used bytes and live extents, to compare before and after a failed batch.
  std::vector<std::pair<uint64_t, uint64_t>> Arenas() {
    std::vector<std::pair<uint64_t, uint64_t>> out;
    for (const DeviceStats& d : Stats()) {
      for (const vmm::ArenaStats& a : d.usage) out.emplace_back(a.used_bytes, a.live_extents);
    }
    return out;
  }

  // Whether each destination of `batch` on a known device is registered.
  std::vector<bool> Destinations(const std::vector<GroupCopy>& batch) {
    std::vector<bool> out;
    for (const GroupCopy& c : batch) {
      if (c.to < 0 || c.to >= control_->num_devices()) continue;
      for (const std::string& n : c.names)
        out.push_back(control_->Find(c.dst_prefix + n, c.to).ok());
    }
    return out;
  }

  // `batch` fails with `code`, naming `label` (the failing copy) and `why`, and changes nothing:
  // no destination registered, every arena's used bytes and live extents as before.
  void ExpectRefused(const std::vector<GroupCopy>& batch, const CopyBatchOptions& o,
                     StatusCode code, const std::string& label, const std::string& why) {
    const auto arenas = Arenas();
    const std::vector<bool> registered = Destinations(batch);
    auto r = control_->ApplyCopies(batch, o);
    ASSERT_FALSE(r.ok()) << label;
    EXPECT_EQ(r.status().code(), code) << r.status().ToString();
    EXPECT_NE(r.status().message().find(label), std::string::npos) << r.status().ToString();
    EXPECT_NE(r.status().message().find(why), std::string::npos) << r.status().ToString();
    EXPECT_EQ(Arenas(), arenas) << "every extent freed: " << r.status().ToString();
    EXPECT_EQ(Destinations(batch), registered) << "registered by a failed batch";
  }
};

TEST_P(BatchTest, RegistersEveryCopyWithItsSourcesData) {
  const uint64_t experts0 = Used(0, Usage::kExperts), experts1 = Used(1, Usage::kExperts);
  const uint64_t weights1 = Used(1, Usage::kWeights);
  const std::vector<GroupCopy> batch = {
      {{kE0W1, kE0W2}, 0, 1, Usage::kExperts, ""},
      {{kE1W2, kE1W1}, 1, 0, Usage::kExperts, ""},
      {{"norm", "embed"}, 0, 1, Usage::kWeights, "copy."},
  };
  for (const CopyBatchOptions& o : {CopyBatchOptions{}, CopyBatchOptions{1, 4096}}) {
    SCOPED_TRACE("max_parallel " + std::to_string(o.max_parallel));
    auto r = control_->ApplyCopies(batch, o);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    ASSERT_EQ(r->copies.size(), 3u);
    EXPECT_EQ(r->copies[0].bytes, 2 * 8192u);
    EXPECT_EQ(r->copies[1].bytes, 2 * 8192u);
    EXPECT_EQ(r->copies[2].bytes, 400 + 8192u);
    EXPECT_EQ(r->bytes, 4 * 8192u + 400 + 8192);
    for (const GroupCopyStats& s : r->copies) {
      EXPECT_GE(s.start_s, 0);
      EXPECT_LE(s.start_s, s.end_s);
      EXPECT_LE(s.end_s, r->copy_s + 1e-9);
    }
    EXPECT_GE(r->prepare_s, 0);
    EXPECT_GE(r->register_s, 0);
    // Records on the right devices, one extent per copy, accounted in the right arenas.
    auto w1 = control_->Find(kE0W1, 1), w2 = control_->Find(kE0W2, 1);
    ASSERT_TRUE(w1.ok() && w2.ok()) << w1.status().ToString();
    EXPECT_EQ(w1->usage, Usage::kExperts);
    EXPECT_EQ(w1->size_bytes, 8192u);
    EXPECT_EQ(w1->extent_bytes, w2->extent_bytes) << "both tensors in one extent";
    EXPECT_GE(w1->extent_bytes, 2 * 8192u);
    EXPECT_EQ(w1->extent_bytes % 4096, 0u);
    EXPECT_EQ(Used(1, Usage::kExperts), experts1 + w1->extent_bytes);
    auto e1 = control_->Find(kE1W1, 0);
    ASSERT_TRUE(e1.ok()) << e1.status().ToString();
    EXPECT_EQ(Used(0, Usage::kExperts), experts0 + e1->extent_bytes);
    auto norm = control_->Find("copy.norm", 1), embed = control_->Find("copy.embed", 1);
    ASSERT_TRUE(norm.ok() && embed.ok());
    EXPECT_EQ(norm->dtype, DType::kF32);
    EXPECT_EQ(norm->shape, (std::vector<int64_t>{100}));
    EXPECT_EQ(embed->dtype, DType::kBF16);
    EXPECT_EQ(norm->extent_bytes, embed->extent_bytes);
    EXPECT_GE(norm->extent_bytes, 4096u + 8192u);
    EXPECT_EQ(Used(1, Usage::kWeights), weights1 + norm->extent_bytes);
    // The bytes, as an instance maps them.
    auto att = Attach();
    ASSERT_TRUE(att);
    for (const auto& [name, dev] : std::vector<std::pair<std::string, int>>{
             {kE0W1, 1}, {kE0W2, 1}, {kE1W1, 0}, {kE1W2, 0}, {"copy.norm", 1}, {"copy.embed", 1}}) {
      const TensorView* t = att->Find(name, dev);
      ASSERT_NE(t, nullptr) << name << " on " << dev;
      const std::string& want = Written(name.rfind("copy.", 0) == 0 ? name.substr(5) : name);
      ASSERT_EQ(t->size_bytes, want.size()) << name;
      EXPECT_EQ(std::memcmp(t->data, want.data(), want.size()), 0) << name << " on " << dev;
    }
    // Undo, for the second round.
    ASSERT_EQ(control_->Release({{kE0W1, 1}, {kE0W2, 1}, {kE1W1, 0}, {kE1W2, 0}}).value(), 4u);
    ASSERT_EQ(control_->ReleaseMatching("copy.", {}).value(), 2u);
    EXPECT_EQ(Used(1, Usage::kExperts), experts1);
    EXPECT_EQ(Used(1, Usage::kWeights), weights1);
  }
}

TEST_P(BatchTest, EveryFailureRegistersNothingAndFreesEverything) {
  const GroupCopy good = {{kE0W1, kE0W2}, 0, 1, Usage::kExperts, ""};
  const GroupCopy good2 = {{"embed"}, 0, 1, Usage::kWeights, "b."};
  const CopyBatchOptions o;
  ExpectRefused({good, good2, {{kE1W1}, 1, 5, Usage::kExperts, ""}}, o,
                StatusCode::kInvalidArgument,
                "copy 2 of 3 ('layers.0.experts.1.w1', device 1 -> 5)", "unknown device 5");
  ExpectRefused({good, {{"norm"}, -1, 0, Usage::kWeights, "x."}}, o, StatusCode::kInvalidArgument,
                "copy 1 of 2", "unknown device -1");
  ExpectRefused({good, {{kE1W1, "nope"}, 1, 0, Usage::kExperts, ""}}, o, StatusCode::kNotFound,
                "copy 1 of 2 ('layers.0.experts.1.w1' and 1 more, device 1 -> 0)",
                "tensor 'nope' is not on device 1");
  ExpectRefused({good, good2, {{"norm"}, 0, 1, Usage::kWeights, ""}}, o, StatusCode::kAlreadyExists,
                "copy 2 of 3", "tensor 'norm' is already on device 1");
  ExpectRefused({good, {{kE0W2}, 0, 1, Usage::kExperts, ""}}, o, StatusCode::kInvalidArgument,
                "copy 1 of 2", "names destination 'layers.0.experts.0.w2' on device 1 twice");
  ExpectRefused({good, good2, {{"embed", "norm"}, 1, 1, Usage::kWeights, "b."}}, o,
                StatusCode::kInvalidArgument, "copy 2 of 3", "'b.embed' on device 1 twice");
  for (const CopyBatchOptions& bad :
       {CopyBatchOptions{0, 0}, CopyBatchOptions{0, 4097}, CopyBatchOptions{-1, 4096}}) {
    ExpectRefused({good}, bad, StatusCode::kInvalidArgument, "apply copies: ",
                  bad.max_parallel < 0 ? "max_parallel is -1" : "positive multiple of 4096");
  }
  ExpectRefused(std::vector<GroupCopy>(kMaxBatchCopies + 1, GroupCopy{{}, 0, 1, Usage::kKv, ""}), o,
                StatusCode::kInvalidArgument, "apply copies: a batch of 65537 copies",
                "exceeds kMaxBatchCopies (65536)");
  // Private copies of expert 0 onto device 1, more than its experts arena (1 MiB) holds beside
  // expert 1: the batch is refused as a whole, naming the first copy that does not fit.
  const uint64_t expert_bytes = control_->Find(kE0W1, 0).value().extent_bytes;
  const uint64_t used = Used(1, Usage::kExperts);
  const size_t fit = (kExpertsArena - used) / expert_bytes;
  std::vector<GroupCopy> many;
  for (size_t i = 0; i < fit + 5; ++i) {
    many.push_back({{kE0W1, kE0W2}, 0, 1, Usage::kExperts, "p" + std::to_string(i) + "."});
  }
  ExpectRefused(many, o, StatusCode::kResourceExhausted,
                "copy " + std::to_string(fit) + " of " + std::to_string(fit + 5) +
                    " ('layers.0.experts.0.w1' and 1 more, device 0 -> 1)",
                "of experts on device 1 up to this copy, its arena has");
  // And half of it goes through (not all the bytes free: the arena's buddy allocator keeps
  // blocks of 2^k pages, the rest of an extent's last block is free but not usable by the next).
  many.resize(fit / 2);
  auto r = control_->ApplyCopies(many, o);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->bytes, fit / 2 * 2 * 8192u);
  EXPECT_EQ(Used(1, Usage::kExperts), used + fit / 2 * expert_bytes);
}

TEST_P(BatchTest, EmptyBatchAndEmptyCopies) {
  const uint64_t used = TotalUsed();
  auto r = control_->ApplyCopies({}, {});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE(r->copies.empty());
  EXPECT_EQ(r->bytes, 0u);
  EXPECT_EQ(r->copy_s, 0);
  r = control_->ApplyCopies({{{}, 0, 1, Usage::kExperts, ""}}, {});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r->copies.size(), 1u);
  EXPECT_EQ(r->copies[0].bytes, 0u);
  EXPECT_EQ(TotalUsed(), used);
  // Still checked: an empty copy to nowhere.
  EXPECT_EQ(control_->ApplyCopies({{{}, 0, 2, Usage::kExperts, ""}}, {}).status().code(),
            StatusCode::kInvalidArgument);
}

TEST_P(BatchTest, DescribeAnswersInOrderWithEveryDevicesStats) {
  auto s = control_->Describe({{kE1W2, 1}, {"embed", 1}, {"norm", 0}, {kE0W1, 0}});
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  ASSERT_EQ(s->records.size(), 4u);
  EXPECT_EQ(s->records[0].name, kE1W2);
  EXPECT_EQ(s->records[0].device, 1);
  EXPECT_EQ(s->records[0].usage, Usage::kExperts);
  EXPECT_EQ(s->records[0].extent_bytes, control_->Find(kE1W2, 1).value().extent_bytes);
  EXPECT_EQ(s->records[1].name, "embed");
  EXPECT_EQ(s->records[1].dtype, DType::kBF16);
  EXPECT_EQ(s->records[1].shape, (std::vector<int64_t>{64, 64}));
  EXPECT_EQ(s->records[2].size_bytes, 400u);
  EXPECT_EQ(s->records[2].device, 0);
  EXPECT_EQ(s->records[3].name, kE0W1);
  // Every device's stats, as Stats() gives them.
  const std::vector<DeviceStats> stats = Stats();
  ASSERT_EQ(s->stats.size(), 2u);
  for (int d = 0; d < 2; ++d) {
    EXPECT_EQ(s->stats[d].device, d);
    EXPECT_EQ(s->stats[d].used_bytes, stats[d].used_bytes);
    EXPECT_EQ(s->stats[d].capacity_bytes, 16 * kMiB);
    EXPECT_EQ(s->stats[d].usage[static_cast<int>(Usage::kExperts)].name,
              "dev" + std::to_string(d) + ".experts");
  }
  // The first missing record is named; nothing else is answered.
  auto missing = control_->Describe({{"embed", 0}, {kE0W1, 1}, {"nope", 0}});
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound) << missing.status().ToString();
  EXPECT_NE(missing.status().message().find("tensor 'layers.0.experts.0.w1' is not on device 1"),
            std::string::npos)
      << missing.status().ToString();
  EXPECT_NE(missing.status().message().find("record 1 of 3"), std::string::npos);
  // No records: the stats alone.
  auto none = control_->Describe({});
  ASSERT_TRUE(none.ok()) << none.status().ToString();
  EXPECT_TRUE(none->records.empty());
  EXPECT_EQ(none->stats.size(), 2u);
}

INSTANTIATE_TEST_SUITE_P(Both, BatchTest, ::testing::Values(Kind::kLocal, Kind::kRemote),
                         [](const ::testing::TestParamInfo<Kind>& i) {
                           return i.param == Kind::kLocal ? "Local" : "Remote";
                         });

// ------------------------------------------------------------------------------------------
// RemoteHmmControl only.

TEST(RemoteBatchTest, LargeRedistributionIsOneRequest) {
  // 2000 copies of 3 tensors with checkpoint-length names, as a large redistribution sends them
  // (here 2000 private copies of one expert's three tensors, 12 KiB each on the destination).
  testing::ScratchDir dir;
  std::vector<TensorToWrite> t;
  std::vector<std::string> names;
  for (const char* w : {"gate_proj", "up_proj", "down_proj"}) {
    names.push_back(std::string("model.layers.47.mlp.experts.127.") + w + ".weight");
    t.push_back({names.back(), DType::kBF16, {8}, testing::RandomBytes(16, names.size())});
  }
  ASSERT_TRUE(WriteSafetensors(dir.File("e.safetensors"), t).ok());
  HmmdOptions o;
  o.binary = HMMD_PATH;
  o.hmm = SmallOptions();
  o.hmm.devices.capacity_bytes = 48 * kMiB;
  o.hmm.memory.usage_bytes = {32 * kMiB, kExpertsArena, kKvArena};
  auto c = RemoteHmmControl::Launch(o);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  PlacementTable table;
  for (const std::string& n : names) table[n] = {Usage::kWeights, {0}, "expert"};
  ASSERT_TRUE((*c)->Load(dir.File("e.safetensors"), table, "").ok());
  std::vector<GroupCopy> batch;
  std::vector<std::pair<std::string, int>> records;
  size_t name_bytes = 0;
  for (int i = 0; i < 2000; ++i) {
    char prefix[32];
    std::snprintf(prefix, sizeof(prefix), "redistribution.%04d.", i);
    batch.push_back({names, 0, 1, Usage::kWeights, prefix});
    for (const std::string& n : names) {
      records.emplace_back(prefix + n, 1);
      name_bytes += n.size();
    }
  }
  ASSERT_GT(name_bytes, 250000u) << "far beyond one message part (60 KB)";
  auto r = (*c)->ApplyCopies(batch, {});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r->copies.size(), 2000u);
  EXPECT_EQ(r->bytes, 2000u * 3 * 16);
  EXPECT_EQ(r->copies[1999].bytes, 3 * 16u);
  auto s = (*c)->Describe(records);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  ASSERT_EQ(s->records.size(), 6000u);
  EXPECT_EQ(s->records[5999].name, records[5999].first);
  EXPECT_EQ(s->records[5999].extent_bytes, 3 * 4096u);
  EXPECT_EQ(s->stats[1].usage[static_cast<int>(Usage::kWeights)].used_bytes, 2000u * 3 * 4096);
  EXPECT_EQ((*c)->ReleaseMatching("redistribution.", {1}).value(), 6000u);
}

TEST(RemoteBatchTest, MalformedAndOversizedRequestsLeaveHmmdServing) {
  HmmdOptions o;
  o.binary = HMMD_PATH;
  o.hmm = SmallOptions();
  auto c = RemoteHmmControl::Launch(o);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  auto client = HmmClient::Connect((*c)->socket_path());
  ASSERT_TRUE(client.ok()) << client.status().ToString();
  const std::vector<std::pair<std::string, std::string>> bad = {
      {R"({"op":"apply_copies"})", "field 'copies' is required"},
      {R"({"op":"apply_copies","copies":[{"names":"x","from":0,"to":1,"usage":"weights"}]})",
       "field 'copies[0].names' must be an array of strings"},
      {R"({"op":"apply_copies","copies":[{"names":["x"],"from":0,"usage":"weights"}]})",
       "field 'copies[0].to' is required"},
      {R"({"op":"apply_copies","copies":[{"names":["x"],"from":0,"to":1,"usage":"gpu"}]})",
       "field 'copies[0].usage' is 'gpu'"},
      {R"({"op":"apply_copies","copies":[],"options":{"chunk_bytes":-4096}})",
       "field 'options.chunk_bytes' must be a non-negative integer"},
      {R"({"op":"apply_copies","copies":[],"options":{"chunk_bytes":1000}})",
       "chunk_bytes is 1000; it must be a positive multiple of 4096"},
      {R"({"op":"apply_copies","copies":[],"options":{"max_parallel":-2}})", "max_parallel is -2"},
      {R"({"op":"describe"})", "field 'records' is required"},
      {R"({"op":"describe","records":[["x"]]})", "must be an array of [name, device]"},
      {R"({"op":"describe","records":[["x",4294967296]]})", "must be an array of [name, device]"},
  };
  for (const auto& [request, why] : bad) {
    auto reply = (*client)->Call(request);  // an error reply is its status
    EXPECT_EQ(reply.status().code(), StatusCode::kInvalidArgument) << request;
    EXPECT_NE(reply.status().message().find(why), std::string::npos)
        << request << " -> " << reply.status().ToString();
  }
  // Larger than any request may be: refused before it is sent; the connection stays in step.
  auto huge = (*c)->ApplyCopies(
      {{{std::string(kMaxAssembledRequestBytes, 'x')}, 0, 1, Usage::kWeights, ""}}, {});
  EXPECT_EQ(huge.status().code(), StatusCode::kInvalidArgument) << huge.status().ToString();
  EXPECT_NE(huge.status().message().find("exceeds"), std::string::npos);
  auto stats = (*c)->Stats();
  ASSERT_TRUE(stats.ok()) << stats.status().ToString();
  EXPECT_EQ(stats->size(), 2u);
  EXPECT_EQ((*c)->Describe({{"nope", 0}}).status().code(), StatusCode::kNotFound);
}

}  // namespace
}  // namespace emoe::hbm
