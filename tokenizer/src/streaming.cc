// tokenizer/src/streaming.cc: incremental detokenization (vLLM's two offsets) and stop strings.
//
// IncrementalDecoder keeps two offsets into ids_ (prompt tail + generated):
//   prefix_offset_: where the decode window starts (context only: its text was emitted or
//                   belongs to the prompt);
//   read_offset_:   the end of what has been emitted; Decode(ids_[prefix, read)) is the
//                   window's already-emitted text.
// Add decodes [prefix, read) and [prefix, end); when the second is longer and does not end in
// U+FFFD (an incomplete UTF-8 sequence decodes to it), the extra text is emitted and the window
// slides: prefix = read, read = end; otherwise nothing changes and Add returns "". As vLLM, the
// first window starts a few tokens back into the prompt (kInitialPromptContext), so the first
// generated token is decoded in context (SentencePiece's leading space, byte fallback sequences
// started in the prompt).
//
// One refinement over vLLM: the emitted text starts where the two decodes first differ (backed
// off to a character boundary), not at the length of the first. The first is not a prefix of
// the second only when the prompt ends in half a character (U+FFFD) that the generated ids
// complete: vLLM would then cut into the completed character and the text after it (and wait
// while the completed text is not longer than U+FFFD); here the completed character is emitted.
#include "tokenizer/streaming.h"

#include <algorithm>

#include "tokenizer/tokenizer.h"

namespace emoe::tokenizer {
namespace {

// vLLM's INITIAL_INCREMENTAL_DETOKENIZATION_OFFSET: tokens of the prompt the first decode
// window reaches back, and 2 more are kept as context (as vLLM's prompt_ids[-offset - 2:]).
constexpr size_t kInitialPromptContext = 5;

constexpr std::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD

bool IsContinuation(char c) { return (static_cast<unsigned char>(c) & 0xC0) == 0x80; }

bool EndsWithReplacement(std::string_view s) {
  return s.size() >= kReplacement.size() &&
         s.substr(s.size() - kReplacement.size()) == kReplacement;
}

// The length of the longest common prefix of `a` and `b`, backed off to the start of a
// character of `b`.
size_t CommonPrefix(std::string_view a, std::string_view b) {
  size_t n = 0;
  const size_t limit = std::min(a.size(), b.size());
  while (n < limit && a[n] == b[n]) ++n;
  while (n > 0 && n < b.size() && IsContinuation(b[n])) --n;
  return n;
}

// The length of the longest valid-looking prefix of `s`: `s` without a trailing lead byte and
// the continuation bytes after it when they do not complete its character.
size_t CompletePrefix(std::string_view s) {
  size_t i = s.size();
  size_t back = 0;
  while (i > 0 && back < 4 && IsContinuation(s[i - 1])) --i, ++back;
  if (i == 0) return s.size();
  const unsigned char lead = static_cast<unsigned char>(s[i - 1]);
  size_t need = 0;
  if (lead >= 0xF0 && lead <= 0xF4) {
    need = 3;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    need = 2;
  } else if (lead >= 0xC2 && lead <= 0xDF) {
    need = 1;
  } else {
    return s.size();  // ASCII or not a lead byte: nothing is waiting for more bytes
  }
  return back < need ? i - 1 : s.size();
}

// The start of the earliest stop string in `text` (at the same start, the shortest: it is the
// one a stream sees complete first) into *which; npos when there is none.
size_t EarliestMatch(const std::vector<std::string>& stops, std::string_view text,
                     std::string* which) {
  size_t at = std::string::npos;
  for (const std::string& s : stops) {
    const size_t pos = text.find(s);
    if (pos < at || (pos == at && pos != std::string::npos && s.size() < which->size())) {
      at = pos;
      *which = s;
    }
  }
  return at;
}

// The start of the longest tail of `text` that is a proper prefix of a stop string (at most
// max_len - 1 bytes); text.size() when there is none.
size_t PendingStart(const std::vector<std::string>& stops, size_t max_len, std::string_view text) {
  for (size_t len = std::min(text.size(), max_len > 0 ? max_len - 1 : 0); len > 0; --len) {
    const std::string_view tail = text.substr(text.size() - len);
    const bool prefix = std::any_of(stops.begin(), stops.end(), [&](const std::string& s) {
      return s.size() > len && std::string_view(s).substr(0, len) == tail;
    });
    if (prefix) return text.size() - len;
  }
  return text.size();
}

}  // namespace

IncrementalDecoder::IncrementalDecoder(const Tokenizer& tokenizer, std::span<const int32_t> prompt,
                                       bool skip_special_tokens)
    : tokenizer_(tokenizer), skip_special_(skip_special_tokens) {
  const size_t keep = std::min(prompt.size(), kInitialPromptContext + 2);
  ids_.assign(prompt.end() - static_cast<std::ptrdiff_t>(keep), prompt.end());
  prompt_len_ = keep;
  read_offset_ = keep;
  prefix_offset_ = keep > kInitialPromptContext ? keep - kInitialPromptContext : 0;
}

std::string IncrementalDecoder::Add(int32_t id) {
  ids_.push_back(id);
  const std::span<const int32_t> all(ids_);
  const std::string prefix_text =
      tokenizer_.Decode(all.subspan(prefix_offset_, read_offset_ - prefix_offset_), skip_special_);
  std::string new_text = tokenizer_.Decode(all.subspan(prefix_offset_), skip_special_);
  const size_t from = CommonPrefix(prefix_text, new_text);
  if (from == new_text.size() || EndsWithReplacement(new_text)) return "";
  prefix_offset_ = read_offset_;
  read_offset_ = ids_.size();
  return new_text.substr(from);
}

std::string IncrementalDecoder::Finish() {
  const std::span<const int32_t> all(ids_);
  const std::string prefix_text =
      tokenizer_.Decode(all.subspan(prefix_offset_, read_offset_ - prefix_offset_), skip_special_);
  std::string new_text = tokenizer_.Decode(all.subspan(prefix_offset_), skip_special_);
  prefix_offset_ = read_offset_ = ids_.size();
  return new_text.substr(CommonPrefix(prefix_text, new_text));
}

size_t IncrementalDecoder::generated() const { return ids_.size() - prompt_len_; }

StopStrings::StopStrings(std::vector<std::string> stops) {
  for (std::string& s : stops) {
    if (s.empty()) continue;  // would match everywhere: ignored (streaming.h)
    if (std::find(stops_.begin(), stops_.end(), s) != stops_.end()) continue;
    max_len_ = std::max(max_len_, s.size());
    stops_.push_back(std::move(s));
  }
}

std::string StopStrings::Feed(std::string_view piece) {
  if (stopped_) return "";
  held_.append(piece);
  std::string which;
  const size_t at = EarliestMatch(stops_, held_, &which);
  // A longer stop string that starts before `at` may still complete (it would come first in the
  // text): the start of the longest tail that is a proper prefix of a stop string. A stop string
  // that begins in text released earlier would have been found then.
  size_t cut = PendingStart(stops_, max_len_, held_);
  if (at != std::string::npos && at <= cut) {
    stopped_ = true;
    matched_ = std::move(which);
    std::string out = held_.substr(0, at);
    held_.clear();
    return out;
  }
  // Hold back that tail and any unfinished character.
  cut = std::min(cut, CompletePrefix(held_));
  while (cut > 0 && cut < held_.size() && IsContinuation(held_[cut])) --cut;
  std::string out = held_.substr(0, cut);
  held_.erase(0, cut);
  return out;
}

std::string StopStrings::Finish() {
  if (stopped_) return "";
  std::string out;
  out.swap(held_);
  // A stop string found while a longer one could still have begun before it.
  std::string which;
  const size_t at = EarliestMatch(stops_, out, &which);
  if (at != std::string::npos) {
    stopped_ = true;
    matched_ = std::move(which);
    out.resize(at);
  }
  return out;
}

}  // namespace emoe::tokenizer
