#include "hbm/safetensors.h"

#include <gtest/gtest.h>

#include <sys/stat.h>

#include <cstring>
#include <limits>

#include "test_files.h"

namespace emoe::hbm {
namespace {

using testing::ScratchDir;

std::vector<TensorToWrite> Sample() {
  return {{"a.weight", DType::kF32, {2, 3}, testing::RandomBytes(24, 1)},
          {"b.bias", DType::kBF16, {5}, testing::RandomBytes(10, 2)},
          {"c.empty", DType::kF16, {0, 4}, ""}};
}

TEST(SafetensorsTest, RoundTrip) {
  ScratchDir dir;
  const std::string path = dir.File("m.safetensors");
  ASSERT_TRUE(WriteSafetensors(path, Sample(), {{"format", "pt"}}).ok());
  auto f = ReadSafetensorsHeader(path);
  ASSERT_TRUE(f.ok()) << f.status().ToString();
  EXPECT_EQ(f->metadata.at("format"), "pt");
  ASSERT_EQ(f->tensors.size(), 3u);
  const std::string file = testing::ReadFile(path);
  for (const TensorInfo& t : f->tensors) {
    for (const auto& w : Sample()) {
      if (w.name != t.name) continue;
      EXPECT_EQ(t.dtype, w.dtype);
      EXPECT_EQ(t.shape, w.shape);
      EXPECT_EQ(file.substr(t.file_offset, t.size_bytes), w.bytes) << t.name;
    }
  }
  auto c = OpenCheckpoint(path);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->total_bytes, 34u);
  ASSERT_NE(c->Find("b.bias"), nullptr);
  EXPECT_EQ(c->Find("nope"), nullptr);
}

// Writes a file with a hand-made header and returns the status of reading it.
vmm::Status ReadWithHeader(const ScratchDir& dir, const std::string& header, size_t data_bytes,
                           int64_t declared_len = -1) {
  const std::string path = dir.File("bad.safetensors");
  std::string bytes(8, '\0');
  const uint64_t len = declared_len >= 0 ? declared_len : header.size();
  for (int i = 0; i < 8; ++i) bytes[i] = static_cast<char>(len >> (8 * i));
  bytes += header + std::string(data_bytes, 'x');
  testing::WriteFile(path, bytes);
  return ReadSafetensorsHeader(path).status();
}

TEST(SafetensorsTest, CorruptionsGiveClearErrors) {
  ScratchDir dir;
  struct Case {
    const char* what;
    std::string header;
    size_t data;
    int64_t declared;
    const char* expect;
  } cases[] = {
      {"header longer than the file", R"({})", 0, 1000, "truncated"},
      {"oversized header", R"({})", 0, int64_t{1} << 40, "exceeds the limit"},
      {"not json", "{not json", 0, -1, "not a JSON object"},
      {"unknown dtype", R"({"t":{"dtype":"I8","shape":[1],"data_offsets":[0,1]}})", 1, -1,
       "unsupported dtype 'I8'"},
      {"out of range", R"({"t":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", 8, -1,
       "outside the data section"},
      {"reversed", R"({"t":{"dtype":"F32","shape":[1],"data_offsets":[8,4]}})", 8, -1,
       "outside the data section"},
      {"size mismatch", R"({"t":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", 8, -1,
       "needs 12"},
      {"negative dim", R"({"t":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", 4, -1,
       "negative"},
      {"overlap",
       R"({"t":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"u":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
       12, -1, "overlap"},
      {"missing offsets", R"({"t":{"dtype":"F32","shape":[2]}})", 8, -1, "data_offsets"},
      {"bad metadata", R"({"__metadata__":{"k":1}})", 0, -1, "not a string"},
      // Declared sizes against the file, and overflow.
      {"header length near 2^63", R"({})", 0, std::numeric_limits<int64_t>::max(),
       "exceeds the limit"},
      {"end offset 2^64-1",
       R"({"t":{"dtype":"F32","shape":[1],"data_offsets":[0,18446744073709551615]}})", 4, -1,
       "outside the data section"},
      {"both offsets past the end",
       R"({"t":{"dtype":"F32","shape":[1],"data_offsets":[4096,4100]}})", 4, -1,
       "outside the data section"},
      {"shape product overflows",
       R"({"t":{"dtype":"F32","shape":[4294967296,4294967296],)"
       R"("data_offsets":[0,4]}})",
       4, -1, "overflows"},
      {"dimension 2^64-1",
       R"({"t":{"dtype":"F32","shape":[18446744073709551615],)"
       R"("data_offsets":[0,4]}})",
       4, -1, "negative or non-integer"},
      {"float dimension", R"({"t":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}})", 4, -1,
       "non-integer"},
      {"negative offset", R"({"t":{"dtype":"F32","shape":[1],"data_offsets":[-4,0]}})", 4, -1,
       "two non-negative integers"},
      {"entry not an object", R"({"t":[1,2]})", 0, -1, "not an object"},
  };
  for (const Case& c : cases) {
    vmm::Status s = ReadWithHeader(dir, c.header, c.data, c.declared);
    EXPECT_EQ(s.code(), vmm::StatusCode::kDataLoss) << c.what << ": " << s.ToString();
    EXPECT_NE(s.message().find(c.expect), std::string::npos) << c.what << ": " << s.message();
    EXPECT_NE(s.message().find("bad.safetensors"), std::string::npos) << "names the file";
  }
  testing::WriteFile(dir.File("short"), "abc");
  EXPECT_NE(ReadSafetensorsHeader(dir.File("short")).status().message().find("truncated"),
            std::string::npos);
  EXPECT_EQ(ReadSafetensorsHeader(dir.File("absent")).status().code(), vmm::StatusCode::kNotFound);
}

TEST(SafetensorsTest, TensorNamesAppearInErrors) {
  ScratchDir dir;
  vmm::Status s = ReadWithHeader(
      dir, R"({"layers.3.mlp.experts.7.w1":{"dtype":"BF16","shape":[2],"data_offsets":[0,6]}})", 6);
  EXPECT_NE(s.message().find("layers.3.mlp.experts.7.w1"), std::string::npos) << s.message();
}

TEST(SafetensorsTest, ShardedCheckpointWithIndex) {
  ScratchDir dir;
  auto all = Sample();
  ASSERT_TRUE(WriteSafetensors(dir.File("model-00001-of-00002.safetensors"), {all[0]}).ok());
  ASSERT_TRUE(
      WriteSafetensors(dir.File("model-00002-of-00002.safetensors"), {all[1], all[2]}).ok());
  testing::WriteFile(dir.File("model.safetensors.index.json"),
                     R"({"metadata":{},"weight_map":{
      "a.weight":"model-00001-of-00002.safetensors",
      "b.bias":"model-00002-of-00002.safetensors",
      "c.empty":"model-00002-of-00002.safetensors"}})");
  auto c = OpenCheckpoint(dir.path());
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->shards.size(), 2u);
  ASSERT_NE(c->Find("b.bias"), nullptr);
  EXPECT_NE(c->Find("b.bias")->file.find("00002"), std::string::npos);

  // The index names a tensor that the shard lacks.
  testing::WriteFile(dir.File("model.safetensors.index.json"),
                     R"({"weight_map":{"a.weight":"model-00001-of-00002.safetensors",
      "b.bias":"model-00002-of-00002.safetensors","c.empty":"model-00002-of-00002.safetensors",
      "d.missing":"model-00001-of-00002.safetensors"}})");
  auto bad = OpenCheckpoint(dir.path());
  EXPECT_EQ(bad.status().code(), vmm::StatusCode::kDataLoss);
  EXPECT_NE(bad.status().message().find("d.missing"), std::string::npos);

  testing::WriteFile(dir.File("model.safetensors.index.json"),
                     R"({"weight_map":{"a.weight":"../evil.safetensors"}})");
  EXPECT_NE(OpenCheckpoint(dir.path()).status().message().find("leaves"), std::string::npos);
}

// A FIFO (whose open would block until a writer came) or a directory where a checkpoint file
// belongs is refused by type, at once, naming the path.
TEST(SafetensorsTest, NonRegularFilesAreRefusedByType) {
  ScratchDir dir;
  const std::string fifo = dir.File("model.safetensors");
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  auto expect_refused = [&](const std::string& open_path, const std::string& bad_path,
                            const std::string& type) {
    auto c = testing::Unblocked(bad_path, [&] { return OpenCheckpoint(open_path); });
    EXPECT_EQ(c.status().code(), vmm::StatusCode::kInvalidArgument) << c.status().ToString();
    EXPECT_NE(c.status().message().find(bad_path + ": is " + type + ", not a regular file"),
              std::string::npos)
        << c.status().message();
  };
  // The file itself, and a directory holding it.
  auto header = testing::Unblocked(fifo, [&] { return ReadSafetensorsHeader(fifo); });
  EXPECT_NE(header.status().message().find("is a FIFO"), std::string::npos);
  expect_refused(fifo, fifo, "a FIFO");
  expect_refused(dir.path(), fifo, "a FIFO");
  // A directory named like a shard.
  ScratchDir d2;
  ASSERT_EQ(mkdir(d2.File("model.safetensors").c_str(), 0700), 0);
  expect_refused(d2.path(), d2.File("model.safetensors"), "a directory");
  // The index as a FIFO, and as a directory.
  ScratchDir d3;
  ASSERT_TRUE(WriteSafetensors(d3.File("model-00001-of-00001.safetensors"), Sample()).ok());
  const std::string index = d3.File("model.safetensors.index.json");
  ASSERT_EQ(mkfifo(index.c_str(), 0600), 0);
  expect_refused(d3.path(), index, "a FIFO");
  ASSERT_EQ(unlink(index.c_str()), 0);
  ASSERT_EQ(mkdir(index.c_str(), 0700), 0);
  expect_refused(d3.path(), index, "a directory");
  // A shard the index names that is a FIFO.
  ScratchDir d4;
  ASSERT_EQ(mkfifo(d4.File("model-00001-of-00001.safetensors").c_str(), 0600), 0);
  testing::WriteFile(d4.File("model.safetensors.index.json"),
                     R"({"weight_map":{"a.weight":"model-00001-of-00001.safetensors"}})");
  expect_refused(d4.path(), d4.File("model-00001-of-00001.safetensors"), "a FIFO");
}

// The pure parsers behind ReadSafetensorsHeader and OpenCheckpoint (the fuzz targets' entry
// points) read what the file readers read.
TEST(SafetensorsTest, ParsersOfBytes) {
  ScratchDir dir;
  const std::string path = dir.File("m.safetensors");
  ASSERT_TRUE(WriteSafetensors(path, Sample(), {{"format", "pt"}}).ok());
  const std::string file = testing::ReadFile(path);
  auto from_file = ReadSafetensorsHeader(path);
  auto from_bytes = ParseSafetensorsHeader(path, file, file.size());
  ASSERT_TRUE(from_file.ok() && from_bytes.ok()) << from_bytes.status().ToString();
  EXPECT_EQ(from_bytes->data_start, from_file->data_start);
  ASSERT_EQ(from_bytes->tensors.size(), from_file->tensors.size());
  for (size_t i = 0; i < from_file->tensors.size(); ++i) {
    EXPECT_EQ(from_bytes->tensors[i].name, from_file->tensors[i].name);
    EXPECT_EQ(from_bytes->tensors[i].file_offset, from_file->tensors[i].file_offset);
  }
  // Only the header is needed; fewer bytes than the header is truncation, not a crash.
  EXPECT_TRUE(
      ParseSafetensorsHeader(path, file.substr(0, from_file->data_start), file.size()).ok());
  for (size_t n : {size_t{0}, size_t{7}, size_t{8}, size_t{20}}) {
    auto s = ParseSafetensorsHeader(path, file.substr(0, n), file.size()).status();
    EXPECT_EQ(s.code(), vmm::StatusCode::kDataLoss) << n;
    EXPECT_NE(s.message().find("truncated"), std::string::npos) << s.message();
  }
  EXPECT_EQ(*SafetensorsHeaderLength(path, file, file.size()), from_file->data_start - 8);

  auto map = ParseSafetensorsIndex("index", R"({"weight_map":{"a":"s1.safetensors","b":"s2"}})");
  ASSERT_TRUE(map.ok()) << map.status().ToString();
  EXPECT_EQ(map->at("a"), "s1.safetensors");
  EXPECT_EQ(map->size(), 2u);
  for (const char* shard : {"", ".", "..", "d/s.safetensors", "/abs"}) {
    auto bad =
        ParseSafetensorsIndex("index", std::string(R"({"weight_map":{"a":")") + shard + "\"}}");
    EXPECT_EQ(bad.status().code(), vmm::StatusCode::kDataLoss) << shard;
    EXPECT_NE(bad.status().message().find("index"), std::string::npos) << bad.status().message();
  }
  EXPECT_FALSE(ParseSafetensorsIndex("index", R"({"weight_map":[]})").ok());
  EXPECT_FALSE(ParseSafetensorsIndex("index", "").ok());
}

TEST(SafetensorsTest, DuplicateNamesAcrossShards) {
  ScratchDir dir;
  auto all = Sample();
  ASSERT_TRUE(WriteSafetensors(dir.File("x1.safetensors"), {all[0]}).ok());
  ASSERT_TRUE(WriteSafetensors(dir.File("x2.safetensors"), {all[0]}).ok());
  auto c = OpenCheckpoint(dir.path());
  EXPECT_EQ(c.status().code(), vmm::StatusCode::kDataLoss);
  EXPECT_NE(c.status().message().find("a.weight"), std::string::npos);
}

}  // namespace
}  // namespace emoe::hbm
