// The BPE model's word split (tokenizer/src/bpe.h, "Words"): on Mistral's vocabulary a piece is
// encoded word by word, split before each U+2581 that follows another character. Held to the
// unsplit BPE: the same vocabulary with one extra token "a▁b" (which no merge produces, so the
// ids cannot change, but which turns the split off) must give the same ids on generated text:
// words, runs of spaces, literal ▁ characters, newlines, CJK, emoji and characters that only
// byte fallback encodes.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "tokenizer/tokenizer.h"

namespace emoe::tokenizer {
namespace {

const std::string kDir = std::string(EMOE_TOKENIZER_DATA) + "/mistral";

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

TEST(BpeWordsTest, SplitEncodingEqualsWholePieceEncoding) {
  if (!std::filesystem::exists(kDir + "/tokenizer.json")) {
    GTEST_SKIP() << kDir << " is absent: run scripts/fetch_tokenizers.sh";
  }
  const std::string json = ReadFile(kDir + "/tokenizer.json");
  const std::string config = ReadFile(kDir + "/tokenizer_config.json");
  nlohmann::json unsplit = nlohmann::json::parse(json, nullptr, /*allow_exceptions=*/false);
  ASSERT_FALSE(unsplit.is_discarded());
  ASSERT_TRUE(unsplit["model"]["vocab"].is_object());
  const int32_t extra_id = static_cast<int32_t>(unsplit["model"]["vocab"].size());
  ASSERT_FALSE(
      unsplit["model"]["vocab"].contains("a\xE2\x96\x81"
                                         "b"));
  unsplit["model"]["vocab"]
         ["a\xE2\x96\x81"
          "b"] = extra_id;

  auto split = Tokenizer::FromJson(json, config, "mistral");
  auto whole = Tokenizer::FromJson(unsplit.dump(), config,
                                   "mistral + a\xE2\x96\x81"
                                   "b");
  ASSERT_TRUE(split.ok()) << split.status().ToString();
  ASSERT_TRUE(whole.ok()) << whole.status().ToString();

  const std::vector<std::string> atoms = {"the",
                                          "The",
                                          "tokenizer",
                                          "ing",
                                          "a",
                                          "b",
                                          " ",
                                          "  ",
                                          "    ",
                                          "\t",
                                          "\n",
                                          "\n\n",
                                          "\xE2\x96\x81",
                                          "\xE2\x96\x81\xE2\x96\x81",
                                          ".",
                                          ",",
                                          "'s",
                                          "123",
                                          "\xE4\xBD\xA0\xE5\xA5\xBD",
                                          "\xF0\x9F\x98\x80",
                                          "\xC3\xA9",
                                          "\xF0\x90\x8D\x88",
                                          "\xE1\x9A\xA0",
                                          "x\xE2\x96\x81y",
                                          "<s>",
                                          "</s>"};
  std::mt19937 rng(5);
  std::uniform_int_distribution<size_t> pick(0, atoms.size() - 1), length(0, 60);
  for (int i = 0; i < 3000; ++i) {
    std::string text;
    for (size_t k = length(rng); k > 0; --k) text += atoms[pick(rng)];
    const std::vector<int32_t> a = (*split)->Encode(text), b = (*whole)->Encode(text);
    ASSERT_EQ(a, b) << "text '" << text << "'";
    ASSERT_EQ((*split)->Decode(a), (*whole)->Decode(b));
  }
}

}  // namespace
}  // namespace emoe::tokenizer
