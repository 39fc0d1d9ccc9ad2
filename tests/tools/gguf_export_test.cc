// gguf_export's writer (tools/gguf_model.h) checked by a reader written here from the GGUF
// specification, independently of the writer: header, metadata, tensor infos, alignment, data
// offsets, and every tensor's bytes against the checkpoint's (the experts stacked, Mixtral's Q/K
// rows permuted for llama.cpp's interleaved RoPE); then, when tests/tools/node/node_modules holds
// @huggingface/gguf (scripts/fetch_test_clients.sh installs it), that reader's parse of the same
// file.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "engine/model.h"
#include "tools/gguf_model.h"

namespace emoe::tools {
namespace {

namespace fs = std::filesystem;

// --- the independent reader -----------------------------------------------------------------

struct Kv {
  uint32_t type = 0;
  uint64_t u = 0;  // integer and bool values
  float f = 0;
  std::string s;
  uint32_t array_type = 0;
  uint64_t array_len = 0;
  std::vector<std::string> strings;  // a string array's items
};

struct Info {
  std::string name;
  std::vector<uint64_t> dims;
  uint32_t type = 0;
  uint64_t offset = 0;
};

struct Parsed {
  uint32_t version = 0;
  std::map<std::string, Kv> kv;
  std::vector<Info> tensors;
  uint64_t data_start = 0;
  std::string bytes;  // the whole file
};

class Cursor {
 public:
  explicit Cursor(const std::string& b) : b_(b) {}
  template <typename T>
  T Get() {
    T v{};
    if (at_ + sizeof(T) > b_.size()) throw std::runtime_error("truncated");
    std::memcpy(&v, b_.data() + at_, sizeof(T));
    at_ += sizeof(T);
    return v;
  }
  std::string Str() {
    const uint64_t n = Get<uint64_t>();
    if (at_ + n > b_.size()) throw std::runtime_error("truncated string");
    std::string s = b_.substr(at_, n);
    at_ += n;
    return s;
  }
  size_t at() const { return at_; }

 private:
  const std::string& b_;
  size_t at_ = 0;
};

uint64_t ScalarSize(uint32_t t) {
  static const std::map<uint32_t, uint64_t> k = {{0, 1}, {1, 1}, {2, 2},  {3, 2},  {4, 4}, {5, 4},
                                                 {6, 4}, {7, 1}, {10, 8}, {11, 8}, {12, 8}};
  return k.at(t);
}

void ReadValue(Cursor& c, uint32_t type, Kv* kv) {
  if (type == 8) {
    kv->s = c.Str();
  } else if (type == 9) {
    kv->array_type = c.Get<uint32_t>();
    kv->array_len = c.Get<uint64_t>();
    for (uint64_t i = 0; i < kv->array_len; ++i) {
      if (kv->array_type == 8) {
        kv->strings.push_back(c.Str());
      } else {
        for (uint64_t j = 0; j < ScalarSize(kv->array_type); ++j) c.Get<uint8_t>();
      }
    }
  } else if (type == 6) {
    kv->f = c.Get<float>();
  } else {
    for (uint64_t j = 0, n = ScalarSize(type); j < n; ++j) {
      kv->u |= static_cast<uint64_t>(c.Get<uint8_t>()) << (8 * j);
    }
  }
}

Parsed Parse(const std::string& path) {
  Parsed p;
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  p.bytes = ss.str();
  Cursor c(p.bytes);
  if (c.Get<uint32_t>() != 0x46554747) throw std::runtime_error("bad magic");
  p.version = c.Get<uint32_t>();
  const uint64_t n_tensors = c.Get<uint64_t>(), n_kv = c.Get<uint64_t>();
  for (uint64_t i = 0; i < n_kv; ++i) {
    const std::string key = c.Str();
    Kv kv;
    kv.type = c.Get<uint32_t>();
    ReadValue(c, kv.type, &kv);
    if (!p.kv.emplace(key, kv).second) throw std::runtime_error("duplicate key " + key);
  }
  for (uint64_t i = 0; i < n_tensors; ++i) {
    Info t;
    t.name = c.Str();
    const uint32_t n_dims = c.Get<uint32_t>();
    for (uint32_t d = 0; d < n_dims; ++d) t.dims.push_back(c.Get<uint64_t>());
    t.type = c.Get<uint32_t>();
    t.offset = c.Get<uint64_t>();
    p.tensors.push_back(t);
  }
  const uint64_t align = p.kv.count("general.alignment") ? p.kv["general.alignment"].u : 32;
  p.data_start = (c.at() + align - 1) / align * align;
  return p;
}

uint64_t Elements(const Info& t) {
  uint64_t n = 1;
  for (uint64_t d : t.dims) n *= d;
  return n;
}

// --- fixtures -------------------------------------------------------------------------------

// Every TempDir, removed when the test program ends (kept with GGUF_EXPORT_TEST_KEEP=1, e.g. to
// load the files in llama.cpp).
struct TempDirs {
  std::vector<fs::path> dirs;
  ~TempDirs() {
    std::error_code ec;
    if (const char* keep = std::getenv("GGUF_EXPORT_TEST_KEEP"); keep && *keep == '1') return;
    for (const fs::path& d : dirs) fs::remove_all(d, ec);
  }
};
TempDirs temp_dirs;

std::string TempDir(const std::string& name) {
  const fs::path d =
      fs::temp_directory_path() / ("gguf_export_test_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  temp_dirs.dirs.push_back(d);
  return d.string();
}

std::string ReadTensor(const hbm::Checkpoint& ckpt, const std::string& name) {
  const hbm::TensorInfo* t = ckpt.Find(name);
  if (t == nullptr) throw std::runtime_error("no tensor " + name);
  std::ifstream in(t->file, std::ios::binary);
  in.seekg(static_cast<std::streamoff>(t->file_offset));
  std::string out(t->size_bytes, '\0');
  in.read(out.data(), static_cast<std::streamsize>(out.size()));
  return out;
}

std::string Bf16ToF32Bytes(const std::string& b) {
  std::string out(b.size() * 2, '\0');
  for (size_t i = 0; i < b.size() / 2; ++i) {
    uint16_t h;
    std::memcpy(&h, &b[i * 2], 2);
    const float f = engine::Bf16ToFloat(h);
    std::memcpy(&out[i * 4], &f, 4);
  }
  return out;
}

// The GGUF tensor's expected bytes: its sources from the checkpoint, in order, (permuted,) widened.
std::string Expected(const hbm::Checkpoint& ckpt, const GgufTensorPlan& plan, bool f32) {
  std::string out;
  for (const std::string& s : plan.sources) {
    std::string b = ReadTensor(ckpt, s);
    if (f32) b = Bf16ToF32Bytes(b);
    if (plan.permute_heads > 0) {
      const int64_t rows = ckpt.Find(s)->shape[0], head_rows = rows / plan.permute_heads;
      const size_t row_bytes = b.size() / rows;
      std::string p(b.size(), '\0');
      for (int64_t r = 0; r < rows; ++r) {
        const int64_t h = r / head_rows, k = r % head_rows;  // spec: row 2i+j <- j*hr/2 + i
        const int64_t src = h * head_rows + (k % 2) * (head_rows / 2) + k / 2;
        std::memcpy(&p[r * row_bytes], &b[src * row_bytes], row_bytes);
      }
      b = p;
    }
    out += b;
  }
  return out;
}

struct Exported {
  engine::ModelConfig config;
  hbm::Checkpoint ckpt;
  Parsed gguf;
  std::string path;
};

Exported Export(const engine::ModelConfig& config, const std::string& name, gguf::TensorType t) {
  const std::string dir = TempDir(name);
  EXPECT_TRUE(engine::GenerateModel(config, {}, dir + "/model").ok());
  Exported e;
  e.config = config;
  e.path = dir + "/model.gguf";
  auto stats = ExportGguf(dir + "/model", e.path, t);
  EXPECT_TRUE(stats.ok()) << stats.status().ToString();
  e.ckpt = *hbm::OpenCheckpoint(dir + "/model");
  e.gguf = Parse(e.path);
  return e;
}

// Layout: offsets aligned, ascending, non-overlapping, inside the file; bytes as expected.
void CheckTensors(const Exported& e, gguf::TensorType type) {
  const auto plan = PlanGgufTensors(e.config, type);
  ASSERT_EQ(e.gguf.tensors.size(), plan.size());
  uint64_t end = 0;
  for (size_t i = 0; i < plan.size(); ++i) {
    const Info& t = e.gguf.tensors[i];
    SCOPED_TRACE(t.name);
    EXPECT_EQ(t.name, plan[i].entry.name);
    // Norms (1-D) and the router stay f32 whatever the type: llama.cpp needs f32 norms.
    const bool always_f32 = t.dims.size() == 1 || t.name.find("ffn_gate_inp") != std::string::npos;
    const gguf::TensorType want_type = always_f32 ? gguf::TensorType::kF32 : type;
    const uint64_t tsize = want_type == gguf::TensorType::kF32 ? 4 : 2;
    EXPECT_EQ(t.type, static_cast<uint32_t>(want_type));
    EXPECT_EQ(t.offset % 32, 0u);
    EXPECT_GE(t.offset, end);
    end = t.offset + Elements(t) * tsize;
    ASSERT_LE(e.gguf.data_start + end, e.gguf.bytes.size());
    const std::string want = Expected(e.ckpt, plan[i], want_type == gguf::TensorType::kF32);
    ASSERT_EQ(want.size(), Elements(t) * tsize);
    EXPECT_TRUE(std::memcmp(e.gguf.bytes.data() + e.gguf.data_start + t.offset, want.data(),
                            want.size()) == 0);
  }
}

// --- tests ----------------------------------------------------------------------------------

TEST(GgufExportTest, TinyHeaderAndMetadata) {
  const Exported e = Export(*engine::PresetConfig("tiny"), "tiny_meta", gguf::TensorType::kBF16);
  const auto& kv = e.gguf.kv;
  EXPECT_EQ(e.gguf.version, 3u);
  EXPECT_EQ(kv.at("general.architecture").s, "qwen3moe");
  EXPECT_EQ(kv.at("general.alignment").u, 32u);
  EXPECT_EQ(kv.at("general.file_type").u, 32u);  // MOSTLY_BF16
  EXPECT_EQ(kv.at("qwen3moe.block_count").u, 2u);
  EXPECT_EQ(kv.at("qwen3moe.embedding_length").u, 64u);
  EXPECT_EQ(kv.at("qwen3moe.expert_feed_forward_length").u, 32u);
  EXPECT_EQ(kv.at("qwen3moe.attention.head_count").u, 4u);
  EXPECT_EQ(kv.at("qwen3moe.attention.head_count_kv").u, 2u);
  EXPECT_EQ(kv.at("qwen3moe.attention.key_length").u, 16u);
  EXPECT_EQ(kv.at("qwen3moe.expert_count").u, 8u);
  EXPECT_EQ(kv.at("qwen3moe.expert_used_count").u, 2u);
  EXPECT_EQ(kv.at("qwen3moe.context_length").u, 512u);
  EXPECT_EQ(kv.at("qwen3moe.rope.freq_base").f, 1e6f);
  EXPECT_EQ(kv.at("qwen3moe.attention.layer_norm_rms_epsilon").f, 1e-6f);
  EXPECT_EQ(kv.at("tokenizer.ggml.model").s, "llama");
  ASSERT_EQ(kv.at("tokenizer.ggml.tokens").strings.size(), 256u);
  EXPECT_EQ(kv.at("tokenizer.ggml.tokens").strings[10], "<0x0A>");
  EXPECT_EQ(kv.at("tokenizer.ggml.token_type").array_len, 256u);
  // 1 + 2 layers x 12 + output_norm + output.
  EXPECT_EQ(e.gguf.tensors.size(), 27u);
  EXPECT_EQ(e.gguf.tensors[0].name, "token_embd.weight");
  EXPECT_EQ(e.gguf.tensors[0].dims, (std::vector<uint64_t>{64, 256}));
  for (const Info& t : e.gguf.tensors) {
    if (t.name == "blk.1.ffn_down_exps.weight") {
      EXPECT_EQ(t.dims, (std::vector<uint64_t>{32, 64, 8}));
    }
  }
}

TEST(GgufExportTest, TinyBytesBf16AndF32) {
  CheckTensors(Export(*engine::PresetConfig("tiny"), "tiny_bf16", gguf::TensorType::kBF16),
               gguf::TensorType::kBF16);
  const Exported f = Export(*engine::PresetConfig("tiny"), "tiny_f32", gguf::TensorType::kF32);
  EXPECT_EQ(f.gguf.kv.at("general.file_type").u, 0u);
  CheckTensors(f, gguf::TensorType::kF32);
}

TEST(GgufExportTest, MixtralPermutesQueryAndKeyRows) {
  engine::ModelConfig c = *engine::PresetConfig("mixtral-text");
  c.vocab_size = 300;  // byte tokens and 44 plain ones; small
  const Exported e = Export(c, "mixtral", gguf::TensorType::kF32);
  EXPECT_EQ(e.gguf.kv.at("general.architecture").s, "llama");
  EXPECT_EQ(e.gguf.kv.at("llama.feed_forward_length").u, 128u);
  EXPECT_EQ(e.gguf.kv.at("llama.rope.dimension_count").u, 32u);
  EXPECT_EQ(e.gguf.kv.at("tokenizer.ggml.tokens").strings[299], "<t299>");
  EXPECT_EQ(e.gguf.tensors.back().name, "output.weight");
  CheckTensors(e, gguf::TensorType::kF32);
  // The permutation itself: a head of 4 rows takes source rows 0, 2, 1, 3.
  EXPECT_EQ(PermutedSourceRow(1, 4), 2);
  EXPECT_EQ(PermutedSourceRow(2, 4), 1);
  EXPECT_EQ(PermutedSourceRow(5, 4), 6);
}

TEST(GgufExportTest, TiedEmbeddingsHaveNoOutputTensor) {
  engine::ModelConfig c = *engine::PresetConfig("tiny");
  c.tie_word_embeddings = true;  // llama.cpp then reuses token_embd
  const Exported e = Export(c, "tied", gguf::TensorType::kBF16);
  for (const Info& t : e.gguf.tensors) EXPECT_NE(t.name, "output.weight");
  CheckTensors(e, gguf::TensorType::kBF16);
}

TEST(GgufExportTest, BadInputIsAnErrorAndLeavesNoFile) {
  const std::string dir = TempDir("bad");
  auto missing = ExportGguf(dir + "/nope", dir + "/x.gguf", gguf::TensorType::kF32);
  EXPECT_FALSE(missing.ok());
  ASSERT_TRUE(engine::GenerateModel(*engine::PresetConfig("tiny"), {}, dir + "/m").ok());
  // A truncated shard: the checkpoint no longer opens or a read fails; no partial output.
  for (const auto& f : fs::directory_iterator(dir + "/m")) {
    if (f.path().extension() == ".safetensors") fs::resize_file(f.path(), fs::file_size(f) / 2);
  }
  auto truncated = ExportGguf(dir + "/m", dir + "/y.gguf", gguf::TensorType::kF32);
  EXPECT_FALSE(truncated.ok());
  EXPECT_FALSE(fs::exists(dir + "/y.gguf"));
}

// The independent npm reader (@huggingface/gguf), when installed.
TEST(GgufExportTest, HuggingFaceGgufReadsTheSameHeader) {
  const fs::path node_dir = fs::path(EMOE_SOURCE_DIR) / "tests/tools/node";
  if (!fs::exists(node_dir / "node_modules/@huggingface/gguf/package.json")) {
    GTEST_SKIP() << "no " << (node_dir / "node_modules/@huggingface/gguf")
                 << ": run scripts/fetch_test_clients.sh (npm ci there)";
  }
  const Exported e = Export(*engine::PresetConfig("tiny"), "tiny_hf", gguf::TensorType::kBF16);
  const std::string script = (fs::path(EMOE_SOURCE_DIR) / "tests/tools/gguf_read.mjs").string();
  const std::string cmd =
      "node '" + script + "' '" + e.path + "' '" + (node_dir / "node_modules").string() + "' 2>&1";
  std::FILE* p = ::popen(cmd.c_str(), "r");
  ASSERT_NE(p, nullptr);
  std::string out;
  char buf[4096];
  while (size_t n = std::fread(buf, 1, sizeof buf, p)) out.append(buf, n);
  ASSERT_EQ(::pclose(p), 0) << out;
  const auto j = nlohmann::json::parse(out);
  EXPECT_EQ(j["data_offset"].get<uint64_t>(), e.gguf.data_start);
  EXPECT_EQ(j["scalars"]["general.architecture"], "qwen3moe");
  EXPECT_EQ(j["scalars"]["qwen3moe.expert_count"], 8);
  EXPECT_EQ(j["arrays"]["tokenizer.ggml.tokens"], 256);
  ASSERT_EQ(j["tensors"].size(), e.gguf.tensors.size());
  for (size_t i = 0; i < e.gguf.tensors.size(); ++i) {
    const Info& t = e.gguf.tensors[i];
    EXPECT_EQ(j["tensors"][i]["name"], t.name);
    EXPECT_EQ(j["tensors"][i]["shape"].get<std::vector<uint64_t>>(), t.dims);
    EXPECT_EQ(j["tensors"][i]["type"].get<uint32_t>(), t.type);
    EXPECT_EQ(j["tensors"][i]["offset"].get<uint64_t>(), t.offset);
  }
}

}  // namespace
}  // namespace emoe::tools
