// The BPE model's cuts (tokenizer/src/bpe.h: a long piece is cut where no merge's halves meet,
// and each part is encoded on its own), its heap loop and its caches, on Mistral's vocabulary,
// where a piece is a whole segment (no pre-tokenizer). Held to an independent BPE written here
// over strings: the normalizer (U+2581 prepended, ' ' -> U+2581), the textbook merge loop (the
// lowest-ranked adjacent pair, leftmost first, until none), then tokens to ids with byte
// fallback. Generated text: words, runs of spaces, literal U+2581, newlines, CJK, emoji,
// characters only byte fallback encodes, and long runs (thousands of characters in one piece).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <unordered_map>
#include <vector>

#include "tokenizer/tokenizer.h"

namespace emoe::tokenizer {
namespace {

const std::string kDir = std::string(EMOE_TOKENIZER_DATA) + "/mistral";
const std::string kMeta = "\xE2\x96\x81";

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

class StringBpe {
 public:
  explicit StringBpe(const nlohmann::json& model) {
    for (const auto& [token, id] : model["vocab"].items()) vocab_[token] = id.get<int32_t>();
    int32_t rank = 0;
    for (const auto& merge : model["merges"]) {
      const std::string line = merge.get<std::string>();
      ranks_[line] = rank++;  // "left right"
    }
  }

  std::vector<int32_t> Encode(const std::string& text) const {
    std::string normalized = kMeta;
    for (char c : text) {
      if (c == ' ') {
        normalized += kMeta;
      } else {
        normalized.push_back(c);
      }
    }
    std::vector<std::string> symbols;
    for (size_t i = 0; i < normalized.size();) {
      const unsigned char b = static_cast<unsigned char>(normalized[i]);
      const size_t n = b < 0x80 ? 1 : b < 0xE0 ? 2 : b < 0xF0 ? 3 : 4;
      symbols.push_back(normalized.substr(i, n));
      i += n;
    }
    std::vector<int> rank(symbols.size());
    auto rank_at = [&](size_t i) {
      if (i + 1 >= symbols.size()) return INT32_MAX;
      auto it = ranks_.find(symbols[i] + " " + symbols[i + 1]);
      return it == ranks_.end() ? INT32_MAX : it->second;
    };
    for (size_t i = 0; i < symbols.size(); ++i) rank[i] = rank_at(i);
    for (;;) {
      size_t best = 0;
      for (size_t i = 1; i < rank.size(); ++i) {
        if (rank[i] < rank[best]) best = i;
      }
      if (rank.empty() || rank[best] == INT32_MAX) break;
      symbols[best] += symbols[best + 1];
      symbols.erase(symbols.begin() + best + 1);
      rank.erase(rank.begin() + best + 1);
      rank[best] = rank_at(best);
      if (best > 0) rank[best - 1] = rank_at(best - 1);
    }
    std::vector<int32_t> ids;
    for (const std::string& s : symbols) {
      if (auto it = vocab_.find(s); it != vocab_.end()) {
        ids.push_back(it->second);
        continue;
      }
      for (unsigned char b : s) {
        char name[8];
        std::snprintf(name, sizeof(name), "<0x%02X>", b);
        ids.push_back(vocab_.at(name));
      }
    }
    return ids;
  }

 private:
  std::unordered_map<std::string, int32_t> vocab_;
  std::unordered_map<std::string, int> ranks_;
};

TEST(BpeWordsTest, CutEncodingEqualsAStringBpeOfTheWholePiece) {
  if (!std::filesystem::exists(kDir + "/tokenizer.json")) {
    GTEST_SKIP() << kDir << " is absent: run scripts/fetch_tokenizers.sh";
  }
  const std::string json = ReadFile(kDir + "/tokenizer.json");
  const nlohmann::json doc = nlohmann::json::parse(json, nullptr, /*allow_exceptions=*/false);
  ASSERT_FALSE(doc.is_discarded());
  ASSERT_TRUE(doc["model"]["merges"].is_array());
  ASSERT_TRUE(doc["model"]["merges"][0].is_string());  // the "a b" form this test reads
  const StringBpe reference(doc["model"]);
  auto tok = Tokenizer::FromJson(json, ReadFile(kDir + "/tokenizer_config.json"), "mistral");
  ASSERT_TRUE(tok.ok()) << tok.status().ToString();

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
                                          kMeta,
                                          kMeta + kMeta,
                                          ".",
                                          ",",
                                          "'s",
                                          "123",
                                          "\xE4\xBD\xA0\xE5\xA5\xBD",
                                          "\xF0\x9F\x98\x80",
                                          "\xC3\xA9",
                                          "\xF0\x90\x8D\x88",
                                          "\xE1\x9A\xA0",
                                          "x" + kMeta + "y",
                                          "don't",
                                          "HELLO",
                                          "zzz"};
  std::mt19937 rng(5);
  std::uniform_int_distribution<size_t> pick(0, atoms.size() - 1);
  for (int i = 0; i < 1500; ++i) {
    std::string text;
    const size_t length = i % 100 == 0 ? 1500 : rng() % 60;  // some thousands of characters
    for (size_t k = length; k > 0; --k) text += atoms[pick(rng)];
    const std::vector<int32_t> ours = (*tok)->Encode(text);
    ASSERT_EQ(ours, text.empty() ? std::vector<int32_t>{} : reference.Encode(text))
        << "text '" << text << "'";
    // Again, now from the caches.
    ASSERT_EQ((*tok)->Encode(text), ours);
  }
}

}  // namespace
}  // namespace emoe::tokenizer
