// tests/tokenizer/tokenizer_test_util.h: building small tokenizer.json documents for the
// tokenizer's tests, and reading results back as token strings.
//
// A document starts as a BPE model over a character vocabulary (ids in the order the characters
// are given) with no merges; tests add merges (each adds the merged token to the vocabulary),
// added tokens and components, then load it with Tokenizer::FromJson.
#ifndef TESTS_TOKENIZER_TOKENIZER_TEST_UTIL_H_
#define TESTS_TOKENIZER_TOKENIZER_TEST_UTIL_H_

#include <gtest/gtest.h>

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/tokenizer.h"

namespace emoe::tokenizer::testing {

using nlohmann::json;

// The UTF-8 characters of `text`, each a string.
inline std::vector<std::string> Chars(std::string_view text) {
  std::vector<std::string> out;
  for (size_t i = 0; i < text.size();) {
    const unsigned char b = static_cast<unsigned char>(text[i]);
    const size_t n = b < 0x80 ? 1 : b < 0xE0 ? 2 : b < 0xF0 ? 3 : 4;
    out.emplace_back(text.substr(i, n));
    i += n;
  }
  return out;
}

class Doc {
 public:
  // A BPE model whose vocabulary is the characters of `alphabet`, ids 0, 1, ...
  explicit Doc(std::string_view alphabet) {
    doc_ = json{{"version", "1.0"},          {"truncation", nullptr},
                {"padding", nullptr},        {"added_tokens", json::array()},
                {"normalizer", nullptr},     {"pre_tokenizer", nullptr},
                {"post_processor", nullptr}, {"decoder", nullptr}};
    doc_["model"] =
        json{{"type", "BPE"},          {"dropout", nullptr},     {"unk_token", nullptr},
             {"fuse_unk", false},      {"byte_fallback", false}, {"vocab", json::object()},
             {"merges", json::array()}};
    for (const std::string& c : Chars(alphabet)) Token(c);
  }
  // Adds `token` to the vocabulary (if new); returns its id.
  int32_t Token(const std::string& token) {
    json& vocab = doc_["model"]["vocab"];
    if (!vocab.contains(token)) vocab[token] = next_id_++;
    return vocab[token].get<int32_t>();
  }
  // Appends the merge (a, b) (the next rank) and adds a + b to the vocabulary.
  Doc& Merge(const std::string& a, const std::string& b) {
    doc_["model"]["merges"].push_back(json::array({a, b}));
    Token(a + b);
    return *this;
  }
  // An added token with the next id (after the vocabulary's).
  Doc& Added(const std::string& content, bool special = true, json flags = json::object()) {
    json t = {{"id", 1000 + static_cast<int>(doc_["added_tokens"].size())},
              {"content", content},
              {"single_word", false},
              {"lstrip", false},
              {"rstrip", false},
              {"normalized", false},
              {"special", special}};
    t.update(flags);
    doc_["added_tokens"].push_back(t);
    return *this;
  }
  json& operator[](const char* key) { return doc_[key]; }
  json& model() { return doc_["model"]; }
  std::string Text() const { return doc_.dump(); }

 private:
  json doc_;
  int32_t next_id_ = 0;
};

inline std::unique_ptr<Tokenizer> Load(const Doc& doc, const json& config = nullptr) {
  auto tok = Tokenizer::FromJson(doc.Text(), config.is_null() ? "" : config.dump(), "test");
  EXPECT_TRUE(tok.ok()) << tok.status().ToString();
  return tok.ok() ? std::move(*tok) : nullptr;
}

// The token strings of Encode(text).
inline std::vector<std::string> Tokens(const Tokenizer& tok, std::string_view text,
                                       bool add_special_tokens = false) {
  std::vector<std::string> out;
  for (int32_t id : tok.Encode(text, add_special_tokens)) out.emplace_back(tok.IdToToken(id));
  return out;
}

using Strings = std::vector<std::string>;

}  // namespace emoe::tokenizer::testing

#endif  // TESTS_TOKENIZER_TOKENIZER_TEST_UTIL_H_
