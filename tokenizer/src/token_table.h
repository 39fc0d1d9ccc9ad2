// tokenizer/src/token_table.h: what the tokenizer knows about each id (internal).
//
// Every id in [0, size()) has its token as tokenizer.json spells it (json(id); for byte-level
// vocabularies in GPT-2's alphabet), the bytes it decodes to when the vocabulary is byte-level
// (raw(id)), and flags. Ids no token names ("holes") have neither and no kPresent flag. An added
// token's id takes the added token's content (as the reference's vocab[id] = content does).
//
// Thread safety: immutable after loading.
#ifndef TOKENIZER_SRC_TOKEN_TABLE_H_
#define TOKENIZER_SRC_TOKEN_TABLE_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace emoe::tokenizer::internal {

struct TokenTable {
  enum Flag : uint8_t {
    kPresent = 1,   // some token has this id
    kAdded = 2,     // an added token (tokenizer.json "added_tokens")
    kSpecial = 4,   // its string is a special token's (skipped by skip_special_tokens)
    kVerbatim = 8,  // its string is an added token's content: the ByteLevel decoder passes it
                    // through as text instead of mapping its characters to bytes
  };

  int32_t size() const { return static_cast<int32_t>(flags.size()); }
  bool present(int32_t id) const { return id >= 0 && id < size() && (flags[id] & kPresent); }
  std::string_view json(int32_t id) const {
    return std::string_view(json_arena)
        .substr(json_offsets[id], json_offsets[id + 1] - json_offsets[id]);
  }
  // REQUIRES: byte_level.
  std::string_view raw(int32_t id) const {
    return std::string_view(raw_arena).substr(raw_offsets[id],
                                              raw_offsets[id + 1] - raw_offsets[id]);
  }

  bool byte_level = false;
  std::string json_arena;
  std::vector<uint32_t> json_offsets;  // size() + 1
  std::string raw_arena;               // byte_level only
  std::vector<uint32_t> raw_offsets;   // size() + 1, byte_level only
  std::vector<uint8_t> flags;          // Flag bits, per id
};

}  // namespace emoe::tokenizer::internal

#endif  // TOKENIZER_SRC_TOKEN_TABLE_H_
