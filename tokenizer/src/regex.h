// tokenizer/src/regex.h: the Split pre-tokenizer's regular expressions.
//
// Patterns in tokenizer.json are written for Oniguruma (the Rust `tokenizers` crate compiles
// them with onig), so they are compiled with Oniguruma here too, set up as the crate's onig
// bindings set it up (onig-rs Regex::new: ONIG_OPTION_NONE, OnigDefaultSyntax, which is
// ONIG_SYNTAX_ONIGURUMA in Oniguruma 6.9; UTF-8), and mean the same thing. Patterns that tokenizers
// commonly ship (Qwen2/Qwen3's and cl100k's, GPT-2's ByteLevel pattern) also have a hand-written
// matcher (fast_split.h) that gives exactly Oniguruma's matches, held to it by a differential test
// and a fuzz target; Compile picks it when the pattern is one of those, and `fast()` says so.
//
// Thread safety: a compiled Regex is const; FindAll may run on several threads at once (each
// call uses its own match region).
#ifndef TOKENIZER_SRC_REGEX_H_
#define TOKENIZER_SRC_REGEX_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "vmm/status.h"

namespace emoe::tokenizer::internal {

class Regex {
 public:
  virtual ~Regex() = default;
  // Oniguruma's syntax errors are kInvalidArgument quoting onig's message and the pattern.
  // use_fast_path = false forces Oniguruma (the differential tests and benchmarks).
  static vmm::StatusOr<std::unique_ptr<Regex>> Compile(std::string_view pattern,
                                                       bool use_fast_path = true);
  // Appends the non-overlapping matches of the pattern in `text` (valid UTF-8), left to right,
  // as {offset, length} byte ranges relative to `text`; an empty match advances by one
  // character and is not reported (the reference's find_iter skips empty matches too).
  virtual void FindAll(std::string_view text,
                       std::vector<std::pair<uint32_t, uint32_t>>* matches) const = 0;
  virtual bool fast() const = 0;
  virtual const std::string& pattern() const = 0;
};

}  // namespace emoe::tokenizer::internal

#endif  // TOKENIZER_SRC_REGEX_H_
