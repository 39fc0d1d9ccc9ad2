// tokenizer/src/regex.cc: Regex over Oniguruma, and the choice of a fast matcher.
//
// Oniguruma is set up as the Rust `tokenizers` crate's onig bindings set it up: onig-rs's
// Regex::new compiles with ONIG_OPTION_NONE and Syntax::default(), which is OnigDefaultSyntax,
// i.e. ONIG_SYNTAX_ONIGURUMA in Oniguruma 6.9 (Ruby syntax in 5.x); the encoding is UTF-8.
// onig_initialize runs once per process (a function-local static: thread-safe).
//
// A compiled regex_t is only read by onig_search, so one Regex serves several threads at once;
// each FindAll call has its own OnigRegion.
#include "regex.h"

#include <oniguruma.h>

#include <string>
#include <utility>

#include "fast_split.h"
#include "unicode_classes.h"

namespace emoe::tokenizer::internal {
namespace {

// Length of the UTF-8 character that starts with byte `b` (1 for a stray continuation byte,
// so a scan always advances).
uint32_t Utf8Length(unsigned char b) {
  if (b < 0xC0) return 1;
  if (b < 0xE0) return 2;
  if (b < 0xF0) return 3;
  return 4;
}

std::string OnigMessage(int code, OnigErrorInfo* info) {
  OnigUChar buffer[ONIG_MAX_ERROR_MESSAGE_LEN];
  if (info != nullptr) {
    onig_error_code_to_str(buffer, code, info);
  } else {
    onig_error_code_to_str(buffer, code);
  }
  return std::string(reinterpret_cast<const char*>(buffer));
}

class OnigurumaRegex final : public Regex {
 public:
  OnigurumaRegex(regex_t* regex, std::string pattern)
      : regex_(regex), pattern_(std::move(pattern)) {}
  ~OnigurumaRegex() override { onig_free(regex_); }
  OnigurumaRegex(const OnigurumaRegex&) = delete;
  OnigurumaRegex& operator=(const OnigurumaRegex&) = delete;

  void FindAll(std::string_view text,
               std::vector<std::pair<uint32_t, uint32_t>>* matches) const override;
  bool fast() const override { return false; }
  const std::string& pattern() const override { return pattern_; }

 private:
  regex_t* regex_;
  std::string pattern_;
};

// onig_search from each position left to right. A search error (Oniguruma's retry or stack
// limits; the patterns tokenizers ship never reach them) ends the scan: the rest of the text
// is left unmatched, as the reference's iterator ends on an error.
void OnigurumaRegex::FindAll(std::string_view text,
                             std::vector<std::pair<uint32_t, uint32_t>>* matches) const {
  const auto* begin = reinterpret_cast<const OnigUChar*>(text.data());
  const OnigUChar* end = begin + text.size();
  OnigRegion region;
  onig_region_init(&region);
  size_t pos = 0;
  while (pos <= text.size()) {
    const int found = onig_search(regex_, begin, end, begin + pos, end, &region, ONIG_OPTION_NONE);
    if (found < 0) break;  // ONIG_MISMATCH, or an error (see above)
    const auto match_begin = static_cast<uint32_t>(region.beg[0]);
    const auto match_end = static_cast<uint32_t>(region.end[0]);
    if (match_end == match_begin) {
      // An empty match is not reported; the next search starts one character further.
      if (match_begin >= text.size()) break;
      pos = match_begin + Utf8Length(static_cast<unsigned char>(text[match_begin]));
      continue;
    }
    matches->emplace_back(match_begin, match_end - match_begin);
    pos = match_end;
  }
  onig_region_free(&region, 0);
}

}  // namespace

vmm::StatusOr<std::unique_ptr<Regex>> Regex::Compile(std::string_view pattern, bool use_fast_path) {
  if (use_fast_path) {
    std::unique_ptr<Regex> fast = MakeFastSplit(pattern);
    if (fast != nullptr) return fast;
  }
  const int init = InitializeOniguruma();
  if (init != ONIG_NORMAL) {
    return vmm::Status::Internal(std::string("regex '") + std::string(pattern) +
                                 "': onig_initialize: " + OnigMessage(init, nullptr));
  }
  regex_t* regex = nullptr;
  OnigErrorInfo info;
  const auto* p = reinterpret_cast<const OnigUChar*>(pattern.data());
  const int r = onig_new(&regex, p, p + pattern.size(), ONIG_OPTION_NONE, ONIG_ENCODING_UTF8,
                         ONIG_SYNTAX_DEFAULT, &info);
  if (r != ONIG_NORMAL) {
    return vmm::Status::InvalidArgument(std::string("regex '") + std::string(pattern) +
                                        "': " + OnigMessage(r, &info));
  }
  return std::unique_ptr<Regex>(new OnigurumaRegex(regex, std::string(pattern)));
}

}  // namespace emoe::tokenizer::internal
