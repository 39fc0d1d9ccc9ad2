// tokenizer/src/fast_split.cc: the matchers of fast_split.h.
//
// How each rule follows from Oniguruma's semantics (leftmost position, then the first
// alternative that matches there, greedy quantifiers giving back one character at a time):
//   * Contractions come first; (?i:...) also folds ASCII case and U+017F (long s, whose case
//     fold is 's'); no other character folds to s, t, r, e, v, m, l or d.
//   * [^\r\n\p{L}\p{N}]?\p{L}+: the optional character is taken when it is in its class and a
//     letter follows; otherwise the alternative matches only at a letter. \p{L}+ takes the whole
//     run (nothing after it can fail).
//   *  ?X+ (X a class): a space is taken when an X follows; the run of X is maximal.
//   * \s*[\r\n]+ (Qwen2, cl100k): \s* takes the whitespace run and gives back characters until
//     [\r\n]+ can start, i.e. up to the run's last \r or \n, which [\r\n]+ then takes (the
//     character after it is not \r or \n): the match ends just after the run's last newline.
//   * \s+(?!\S): the whole run when it ends the text; otherwise (a non-space follows) all of it
//     but its last character, when the run has two or more; else the next alternative, \s+,
//     takes the single character.
#include "fast_split.h"

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "unicode_classes.h"

namespace emoe::tokenizer::internal {
namespace {

enum class Flavor { kQwen2, kCl100k, kGpt2 };

bool IsOther(uint8_t cls) { return (cls & (kLetter | kNumber | kSpace)) == 0; }

// The text being split and the class table; positions are byte offsets.
class Scanner {
 public:
  Scanner(const UnicodeClasses& classes, std::string_view text)
      : classes_(classes),
        ascii_(classes.ascii()),
        s_(reinterpret_cast<const unsigned char*>(text.data())),
        n_(text.size()) {}

  size_t size() const { return n_; }
  unsigned char byte(size_t i) const { return s_[i]; }
  // REQUIRES: i < size(). ASCII by one table load; two- and three-byte characters decoded
  // here; four-byte ones and ill-formed bytes by DecodeNonAscii.
  [[gnu::always_inline]] CharInfo At(size_t i) const {
    const unsigned char b = s_[i];
    if (b < 0x80) return {ascii_[b], 1};
    if (b >= 0xE0 && b < 0xF0 && n_ - i >= 3) {
      const unsigned char c1 = s_[i + 1], c2 = s_[i + 2];
      if ((c1 & 0xC0) == 0x80 && (c2 & 0xC0) == 0x80) {
        const uint32_t cp = ((b & 0x0Fu) << 12) | ((c1 & 0x3Fu) << 6) | (c2 & 0x3Fu);
        if (cp >= 0x800 && (cp < 0xD800 || cp > 0xDFFF)) return {classes_.Of(cp), 3};
      }
    } else if (b >= 0xC2 && b < 0xE0 && n_ - i >= 2 && (s_[i + 1] & 0xC0) == 0x80) {
      return {classes_.Of(((b & 0x1Fu) << 6) | (s_[i + 1] & 0x3Fu)), 2};
    }
    return DecodeNonAscii(classes_, s_, n_, i);
  }
  bool Is(size_t i, uint8_t mask) const { return i < n_ && (At(i).cls & mask) != 0; }

  // End of the run, from i, of the characters whose class bits satisfy `pred`; ASCII bytes
  // are tested without a call.
  template <typename Pred>
  size_t RunEnd(size_t i, Pred pred) const {
    const unsigned char* s = s_;  // in registers across the calls of the slow path
    const uint8_t* ascii = ascii_;
    const size_t n = n_;
    while (i < n) {
      const unsigned char b = s[i];
      if (b < 0x80) {
        if (!pred(ascii[b])) break;
        ++i;
        while (i < n && s[i] < 0x80 && pred(ascii[s[i]])) ++i;  // the common ASCII run
        continue;
      }
      const CharInfo c = At(i);
      if (!pred(c.cls)) break;
      i += c.len;
    }
    return i;
  }
  size_t LetterRunEnd(size_t i) const {
    return RunEnd(i, [](uint8_t cls) { return (cls & kLetter) != 0; });
  }
  size_t NumberRunEnd(size_t i) const {
    return RunEnd(i, [](uint8_t cls) { return (cls & kNumber) != 0; });
  }
  size_t OtherRunEnd(size_t i) const { return RunEnd(i, IsOther); }
  size_t NewlinesEnd(size_t i) const {
    while (i < n_ && (s_[i] == '\r' || s_[i] == '\n')) ++i;
    return i;
  }

  // Length of the contraction ('s 't 're 've 'm 'll 'd) at i, 0 when there is none.
  // REQUIRES: byte(i) == '\''.
  size_t Contraction(size_t i, bool ignore_case) const {
    auto lower = [this, ignore_case](size_t k) -> unsigned char {
      if (k >= n_) return 0;
      const unsigned char c = s_[k];
      return ignore_case && c >= 'A' && c <= 'Z' ? static_cast<unsigned char>(c | 0x20) : c;
    };
    const unsigned char a = lower(i + 1);
    if (a == 's' || a == 't' || a == 'm' || a == 'd') return 2;
    if ((a == 'r' || a == 'v') && lower(i + 2) == 'e') return 3;
    if (a == 'l' && lower(i + 2) == 'l') return 3;
    if (ignore_case && i + 2 < n_ && s_[i + 1] == 0xC5 && s_[i + 2] == 0xBF) return 3;  // 'ſ
    return 0;
  }

  // End of the whitespace alternatives' match at i (\s*[\r\n]+ when `newlines`, then
  // \s+(?!\S), then \s+). REQUIRES: the character at i is \s.
  size_t WhitespaceEnd(size_t i, bool newlines) const {
    size_t j = i, last_start = i, newline_end = 0, count = 0;
    while (j < n_) {
      const CharInfo c = At(j);
      if ((c.cls & kSpace) == 0) break;
      if ((c.cls & kNewline) != 0) newline_end = j + 1;
      last_start = j;
      j += c.len;
      ++count;
    }
    if (newlines && newline_end != 0) return newline_end;
    if (j == n_ || count == 1) return j;
    return last_start;
  }

 private:
  const UnicodeClasses& classes_;
  const uint8_t* ascii_;
  const unsigned char* s_;
  size_t n_;
};

// Qwen2's and cl100k's pattern (cl100k: up to three digits) at i; returns the match's end.
size_t NextQwen(const Scanner& s, size_t i, int max_digits) {
  const unsigned char b = s.byte(i);
  if (b == '\'') {
    const size_t k = s.Contraction(i, /*ignore_case=*/true);
    if (k != 0) return i + k;
  }
  const CharInfo c = s.At(i);
  if ((c.cls & kLetter) != 0) return s.LetterRunEnd(i + c.len);
  if ((c.cls & (kNewline | kNumber)) == 0 && s.Is(i + c.len, kLetter)) {
    return s.LetterRunEnd(i + c.len);
  }
  if ((c.cls & kNumber) != 0) {
    size_t j = i + c.len;
    for (int d = 1; d < max_digits && j < s.size(); ++d) {
      const CharInfo next = s.At(j);
      if ((next.cls & kNumber) == 0) break;
      j += next.len;
    }
    return j;
  }
  if (b == ' ' && i + 1 < s.size() && IsOther(s.At(i + 1).cls)) {
    return s.NewlinesEnd(s.OtherRunEnd(i + 1));
  }
  if (IsOther(c.cls)) return s.NewlinesEnd(s.OtherRunEnd(i + c.len));
  return s.WhitespaceEnd(i, /*newlines=*/true);
}

// GPT-2's pattern at i; returns the match's end.
size_t NextGpt2(const Scanner& s, size_t i) {
  const unsigned char b = s.byte(i);
  if (b == '\'') {
    const size_t k = s.Contraction(i, /*ignore_case=*/false);
    if (k != 0) return i + k;
  }
  if (b == ' ' && i + 1 < s.size()) {
    const uint8_t next = s.At(i + 1).cls;
    if ((next & kLetter) != 0) return s.LetterRunEnd(i + 1);
    if ((next & kNumber) != 0) return s.NumberRunEnd(i + 1);
    if (IsOther(next)) return s.OtherRunEnd(i + 1);
  }
  const CharInfo c = s.At(i);
  if ((c.cls & kLetter) != 0) return s.LetterRunEnd(i + c.len);
  if ((c.cls & kNumber) != 0) return s.NumberRunEnd(i + c.len);
  if (IsOther(c.cls)) return s.OtherRunEnd(i + c.len);
  return s.WhitespaceEnd(i, /*newlines=*/false);
}

class FastSplitRegex final : public Regex {
 public:
  FastSplitRegex(Flavor flavor, std::string pattern, const UnicodeClasses& classes)
      : flavor_(flavor), pattern_(std::move(pattern)), classes_(classes) {}

  void FindAll(std::string_view text,
               std::vector<std::pair<uint32_t, uint32_t>>* matches) const override {
    switch (flavor_) {
      case Flavor::kQwen2:
        return Scan(text, matches, [](const Scanner& s, size_t i) { return NextQwen(s, i, 1); });
      case Flavor::kCl100k:
        return Scan(text, matches, [](const Scanner& s, size_t i) { return NextQwen(s, i, 3); });
      case Flavor::kGpt2:
        return Scan(text, matches, NextGpt2);
    }
  }
  bool fast() const override { return true; }

  // The matches tile the text: each starts where the previous one ended.
  template <typename Next>
  void Scan(std::string_view text, std::vector<std::pair<uint32_t, uint32_t>>* matches,
            Next next) const {
    const Scanner s(classes_, text);
    size_t i = 0;
    while (i < text.size()) {
      const size_t end = next(s, i);
      matches->emplace_back(static_cast<uint32_t>(i), static_cast<uint32_t>(end - i));
      i = end;
    }
  }
  const std::string& pattern() const override { return pattern_; }

 private:
  Flavor flavor_;
  std::string pattern_;
  const UnicodeClasses& classes_;
};

}  // namespace

std::unique_ptr<Regex> MakeFastSplit(std::string_view pattern) {
  Flavor flavor;
  if (pattern == kQwen2Pattern) {
    flavor = Flavor::kQwen2;
  } else if (pattern == kCl100kPattern) {
    flavor = Flavor::kCl100k;
  } else if (pattern == kGpt2Pattern) {
    flavor = Flavor::kGpt2;
  } else {
    return nullptr;
  }
  const UnicodeClasses& classes = UnicodeClasses::Get();
  if (!classes.ok()) return nullptr;
  return std::make_unique<FastSplitRegex>(flavor, std::string(pattern), classes);
}

}  // namespace emoe::tokenizer::internal
