// tokenizer/src/added_tokens.cc: the added-token trie and the leftmost-longest split.
#include "added_tokens.h"

#include <utf8proc.h>

#include <algorithm>
#include <cstring>

#include "utf8.h"

namespace emoe::tokenizer::internal {
namespace {

// \w of the Rust regex crate, closely enough: letters, marks, decimal digits, letter numbers,
// connector punctuation, ZWNJ/ZWJ.
bool IsWordChar(char32_t cp) {
  if (cp < 0x80) {
    return (cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z') || (cp >= '0' && cp <= '9') ||
           cp == '_';
  }
  if (cp == 0x200C || cp == 0x200D) return true;
  switch (utf8proc_category(static_cast<utf8proc_int32_t>(cp))) {
    case UTF8PROC_CATEGORY_LU:
    case UTF8PROC_CATEGORY_LL:
    case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_LO:
    case UTF8PROC_CATEGORY_MN:
    case UTF8PROC_CATEGORY_MC:
    case UTF8PROC_CATEGORY_ME:
    case UTF8PROC_CATEGORY_ND:
    case UTF8PROC_CATEGORY_NL:
    case UTF8PROC_CATEGORY_PC:
      return true;
    default:
      return false;
  }
}

}  // namespace

int32_t AddedTokenMatcher::Child(int32_t node, uint8_t byte) const {
  const auto& next = nodes_[node].next;
  auto it = std::lower_bound(next.begin(), next.end(), std::make_pair(byte, int32_t{-1}));
  return it != next.end() && it->first == byte ? it->second : -1;
}

void AddedTokenMatcher::Add(Token token) {
  int32_t node = 0;
  for (unsigned char b : token.content) {
    int32_t child = Child(node, b);
    if (child < 0) {
      child = static_cast<int32_t>(nodes_.size());
      nodes_.emplace_back();
      auto& next = nodes_[node].next;
      next.insert(std::lower_bound(next.begin(), next.end(), std::make_pair(b, int32_t{-1})),
                  {b, child});
    }
    node = child;
  }
  if (nodes_[node].token >= 0) {
    tokens_[nodes_[node].token] = std::move(token);
    return;
  }
  const unsigned char first = static_cast<unsigned char>(token.content[0]);
  if (!first_byte_[first]) {
    first_byte_[first] = true;
    ++distinct_first_bytes_;
    only_first_byte_ = first;
  }
  nodes_[node].token = static_cast<int32_t>(tokens_.size());
  tokens_.push_back(std::move(token));
}

int32_t AddedTokenMatcher::LongestAt(std::string_view text, size_t pos, size_t* end) const {
  int32_t node = 0, found = -1;
  for (size_t i = pos; i < text.size(); ++i) {
    node = Child(node, static_cast<uint8_t>(text[i]));
    if (node < 0) break;
    if (nodes_[node].token >= 0) {
      found = nodes_[node].token;
      *end = i + 1;
    }
  }
  return found;
}

bool AddedTokenMatcher::SingleWordOk(std::string_view text, size_t start, size_t end) const {
  if (start > 0) {
    size_t lead = start - 1;
    while (lead > 0 && (static_cast<unsigned char>(text[lead]) & 0xC0) == 0x80) --lead;
    uint32_t length;
    if (IsWordChar(DecodeUtf8(text, lead, &length))) return false;
  }
  if (end < text.size()) {
    uint32_t length;
    if (IsWordChar(DecodeUtf8(text, end, &length))) return false;
  }
  return true;
}

void AddedTokenMatcher::Split(std::string_view text, std::vector<Segment>* out) const {
  size_t prev = 0, i = 0;
  while (i < text.size()) {
    if (distinct_first_bytes_ == 1) {
      const void* hit = std::memchr(text.data() + i, only_first_byte_, text.size() - i);
      if (hit == nullptr) break;
      i = static_cast<const char*>(hit) - text.data();
    } else if (!first_byte_[static_cast<unsigned char>(text[i])]) {
      ++i;
      continue;
    }
    size_t end = 0;
    const int32_t token = LongestAt(text, i, &end);
    if (token < 0) {
      ++i;
      continue;
    }
    if (tokens_[token].single_word && !SingleWordOk(text, i, end)) {
      i = end;
      continue;
    }
    if (i > prev)
      out->push_back({static_cast<uint32_t>(prev), static_cast<uint32_t>(i - prev), -1});
    out->push_back({static_cast<uint32_t>(i), static_cast<uint32_t>(end - i), token});
    prev = i = end;
  }
  if (prev < text.size()) {
    out->push_back({static_cast<uint32_t>(prev), static_cast<uint32_t>(text.size() - prev), -1});
  }
}

}  // namespace emoe::tokenizer::internal
