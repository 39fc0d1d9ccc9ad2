// tokenizer/src/added_tokens.h: finding added tokens in text (internal).
//
// The reference splits text at its added tokens before anything else: at each position, the
// longest added token starting there, scanning from the left (leftmost-longest; its
// DictionarySplitter, the Rust crate's Aho-Corasick LeftmostLongest). The text between two
// tokens is a segment for the normalizer and the pre-tokenizer. A byte trie does it here; a
// table of the tokens' first bytes (or memchr, when they all start with one byte, as Qwen3's
// '<' and Mistral's '<') skips text that cannot start a token.
//
// single_word (the Rust crate's meaning; the JS reference ignores the flag): a match with a
// word character (\w: letters, marks, digits, connector punctuation) right before or after it
// is not a token, and scanning resumes after it. lstrip / rstrip are the caller's (they trim
// the neighbouring segments).
//
// Thread safety: immutable after Build; Split may run on several threads at once.
#ifndef TOKENIZER_SRC_ADDED_TOKENS_H_
#define TOKENIZER_SRC_ADDED_TOKENS_H_

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace emoe::tokenizer::internal {

class AddedTokenMatcher {
 public:
  struct Token {
    std::string content;  // non-empty
    int32_t id;
    bool single_word, lstrip, rstrip;
  };
  // A stretch of the text: an added token (token >= 0, an index for token()) or plain text.
  struct Segment {
    uint32_t start, length;
    int32_t token;
  };

  // Adds a token; a later token with the same content replaces an earlier one.
  void Add(Token token);
  bool empty() const { return tokens_.empty(); }
  const Token& token(int32_t index) const { return tokens_[index]; }

  // Appends the segments of `text` (valid UTF-8), in order and covering it; plain-text
  // segments are non-empty.
  void Split(std::string_view text, std::vector<Segment>* out) const;

 private:
  struct Node {
    int32_t token = -1;                             // the token ending here, or -1
    std::vector<std::pair<uint8_t, int32_t>> next;  // sorted by byte
  };
  int32_t Child(int32_t node, uint8_t byte) const;
  // The longest token at text[pos]: its index, and *end; -1 when none.
  int32_t LongestAt(std::string_view text, size_t pos, size_t* end) const;
  bool SingleWordOk(std::string_view text, size_t start, size_t end) const;

  std::vector<Token> tokens_;
  std::vector<Node> nodes_{Node()};  // nodes_[0] is the root
  std::array<bool, 256> first_byte_{};
  int distinct_first_bytes_ = 0;
  unsigned char only_first_byte_ = 0;
};

}  // namespace emoe::tokenizer::internal

#endif  // TOKENIZER_SRC_ADDED_TOKENS_H_
