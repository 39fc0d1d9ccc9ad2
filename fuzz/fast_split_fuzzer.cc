// Fuzzes the fast Split matchers (tokenizer/src/fast_split.h) against Oniguruma. The first byte
// picks the pattern (Qwen2, cl100k, GPT-2); the rest is the text when it is valid UTF-8, and
// otherwise each byte picks a character from a table of the classes the patterns tell apart
// (letters of several scripts, digits, marks, whitespace kinds, apostrophes, punctuation,
// emoji), so mutations explore mixes of classes rather than byte errors. The fast matcher's
// matches must tile the text and equal Oniguruma's.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "fast_split.h"
#include "fuzz_check.h"
#include "regex.h"

namespace {

using emoe::tokenizer::internal::Regex;
using Spans = std::vector<std::pair<uint32_t, uint32_t>>;

struct Matchers {
  std::unique_ptr<Regex> fast[3], onig[3];
};

const Matchers& GetMatchers() {
  static const Matchers* matchers = [] {
    auto* m = new Matchers;
    const std::string_view patterns[3] = {emoe::tokenizer::internal::kQwen2Pattern,
                                          emoe::tokenizer::internal::kCl100kPattern,
                                          emoe::tokenizer::internal::kGpt2Pattern};
    for (int p = 0; p < 3; ++p) {
      auto fast = Regex::Compile(patterns[p]);
      auto onig = Regex::Compile(patterns[p], /*use_fast_path=*/false);
      FUZZ_CHECK(fast.ok() && onig.ok() && (*fast)->fast() && !(*onig)->fast());
      m->fast[p] = std::move(*fast);
      m->onig[p] = std::move(*onig);
    }
    return m;
  }();
  return *matchers;
}

// Strict UTF-8 validation (no overlongs, surrogates or code points above U+10FFFF).
bool ValidUtf8(const uint8_t* s, size_t n) {
  size_t i = 0;
  while (i < n) {
    const uint8_t b = s[i];
    size_t len;
    uint32_t cp, min;
    if (b < 0x80) {
      ++i;
      continue;
    } else if (b >= 0xC2 && b <= 0xDF) {
      len = 2, cp = b & 0x1F, min = 0x80;
    } else if (b >= 0xE0 && b <= 0xEF) {
      len = 3, cp = b & 0x0F, min = 0x800;
    } else if (b >= 0xF0 && b <= 0xF4) {
      len = 4, cp = b & 0x07, min = 0x10000;
    } else {
      return false;
    }
    if (n - i < len) return false;
    for (size_t k = 1; k < len; ++k) {
      if ((s[i + k] & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (s[i + k] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += len;
  }
  return true;
}

// The characters a byte picks when the input is not UTF-8 (64 entries; the byte modulo 64).
const char* const kAtoms[64] = {"a",
                                "b",
                                "Z",
                                "s",
                                "S",
                                "t",
                                "re",
                                "VE",
                                "m",
                                "ll",
                                "D",
                                "'",
                                "'",
                                "\xE2\x80\x99",
                                "\xC5\xBF",
                                "\xE2\x84\xAA",
                                "0",
                                "7",
                                "\xD9\xA1",
                                "\xEF\xBC\x91",
                                "\xE2\x85\xAB",
                                "\xC2\xB2",
                                " ",
                                " ",
                                " ",
                                "\t",
                                "\n",
                                "\r",
                                "\x0B",
                                "\x0C",
                                "\xC2\x85",
                                "\xC2\xA0",
                                "\xE3\x80\x80",
                                "\xE2\x80\xA8",
                                "\xE2\x80\x8B",
                                "\xEF\xBB\xBF",
                                ".",
                                ",",
                                "!",
                                "?",
                                "-",
                                "(",
                                "\"",
                                "\\",
                                "\xE3\x80\x82",
                                "\xE4\xBD\xA0",
                                "\xE5\xA5\xBD",
                                "\xEA\xB0\x80",
                                "\xD9\x85",
                                "\xD8\xB1",
                                "\xE0\xA4\x95",
                                "\xE0\xA4\xBF",
                                "\xCC\x81",
                                "\xD9\x8B",
                                "\xE2\x80\x8D",
                                "\xEF\xB8\x8F",
                                "\xF0\x9F\x91\x8D",
                                "\xF0\x9F\x8F\xBD",
                                "\xF0\x9F\x87\xBA",
                                "\xF0\x9D\x90\x80",
                                "\xC3\xA9",
                                "\xCE\xA9",
                                "\x7F",
                                "\xEE\x80\x80"};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const Matchers& matchers = GetMatchers();
  const int p = data[0] % 3;
  std::string text;
  if (ValidUtf8(data + 1, size - 1)) {
    text.assign(reinterpret_cast<const char*>(data + 1), size - 1);
  } else {
    for (size_t i = 1; i < size; ++i) text += kAtoms[data[i] % 64];
  }
  Spans fast, onig;
  matchers.fast[p]->FindAll(text, &fast);
  matchers.onig[p]->FindAll(text, &onig);
  size_t next = 0;
  for (const auto& span : fast) {
    FUZZ_CHECK(span.first == next && span.second > 0);
    next += span.second;
  }
  FUZZ_CHECK(next == text.size());
  FUZZ_CHECK(fast == onig);
  return 0;
}
