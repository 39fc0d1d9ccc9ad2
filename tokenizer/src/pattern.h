// tokenizer/src/pattern.h: the {"String": ...} / {"Regex": ...} patterns of tokenizer.json
// (Replace normalizers and decoders, Split pre-tokenizers), as one matcher.
//
// A String pattern is matched literally (non-overlapping occurrences, left to right); a Regex
// pattern is compiled with Oniguruma (regex.h). Both report non-empty matches only.
//
// Thread safety: immutable after Make; FindAll may run on several threads at once.
#ifndef TOKENIZER_SRC_PATTERN_H_
#define TOKENIZER_SRC_PATTERN_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "json_fields.h"
#include "regex.h"
#include "vmm/status.h"

namespace emoe::tokenizer::internal {

class Pattern {
 public:
  // `spec` is the pattern object at `where`: exactly one of "String" (non-empty) and "Regex".
  static vmm::StatusOr<Pattern> Make(const element& spec, const std::string& where);

  // Appends the matches in `text` (valid UTF-8) as {offset, length}, relative to `text`.
  void FindAll(std::string_view text, std::vector<std::pair<uint32_t, uint32_t>>* matches) const;
  // Every match replaced by `content`.
  std::string ReplaceAll(std::string_view text, std::string_view content) const;
  // *text with every match replaced by `content`; *text is left alone when nothing matches.
  void ReplaceAllInPlace(std::string* text, std::string_view content) const;
  // "String" or "Regex" (for descriptions).
  const char* kind() const { return regex_ ? "Regex" : "String"; }
  const std::string& source() const { return regex_ ? regex_->pattern() : literal_; }

 private:
  std::string literal_;           // a String pattern
  std::shared_ptr<Regex> regex_;  // a Regex pattern (shared: Pattern is copyable)
};

// The reference replaces with String.prototype.replaceAll, which reads "$$", "$&", "$`", "$'",
// "$1".. and "$<name>" in the replacement as substitutions; a Replace content holding one is
// refused (kInvalidArgument at `where`) rather than taken literally as the Rust crate would.
vmm::Status CheckReplaceContent(std::string_view content, const std::string& where);

}  // namespace emoe::tokenizer::internal

#endif  // TOKENIZER_SRC_PATTERN_H_
