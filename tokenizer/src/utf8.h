// tokenizer/src/utf8.h: small UTF-8 helpers shared by the tokenizer's stages (internal).
//
// The text every stage sees is valid UTF-8 (the core replaces invalid input first, see
// text_pipeline.h), so DecodeUtf8 trusts its input. "Whitespace" here is JavaScript's (the
// reference is JS: String.prototype.trim and the `\s` of a non-Unicode RegExp): TAB, LF, VT, FF,
// CR, U+0020, U+00A0, U+1680, U+2000..U+200A, U+2028, U+2029, U+202F, U+205F, U+3000, U+FEFF.
//
// Thread safety: pure functions.
#ifndef TOKENIZER_SRC_UTF8_H_
#define TOKENIZER_SRC_UTF8_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace emoe::tokenizer::internal {

// Length of the UTF-8 sequence led by byte `b` (1 for ASCII and, defensively, for a stray
// continuation byte).
inline uint32_t Utf8SequenceLength(unsigned char b) {
  if (b < 0xC0) return 1;
  if (b < 0xE0) return 2;
  if (b < 0xF0) return 3;
  return 4;
}

// The code point at text[pos] and its length in bytes. REQUIRES: text is valid UTF-8 and pos
// is a character boundary inside it.
inline char32_t DecodeUtf8(std::string_view text, size_t pos, uint32_t* length) {
  const auto* p = reinterpret_cast<const unsigned char*>(text.data()) + pos;
  const unsigned char b = p[0];
  if (b < 0x80) {
    *length = 1;
    return b;
  }
  if (b < 0xE0) {
    *length = 2;
    return (char32_t(b & 0x1F) << 6) | (p[1] & 0x3F);
  }
  if (b < 0xF0) {
    *length = 3;
    return (char32_t(b & 0x0F) << 12) | (char32_t(p[1] & 0x3F) << 6) | (p[2] & 0x3F);
  }
  *length = 4;
  return (char32_t(b & 0x07) << 18) | (char32_t(p[1] & 0x3F) << 12) | (char32_t(p[2] & 0x3F) << 6) |
         (p[3] & 0x3F);
}

// Appends the UTF-8 encoding of `cp` (a scalar value) to *out.
void AppendUtf8(char32_t cp, std::string* out);

// JavaScript's whitespace (see the concept block).
inline bool IsJsWhitespace(char32_t cp) {
  if (cp < 0x80) return cp == ' ' || (cp >= 0x09 && cp <= 0x0D);
  return cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 ||
         cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000 || cp == 0xFEFF;
}

// `text` without its leading / trailing JavaScript whitespace (String.prototype.trimStart /
// trimEnd). REQUIRES: valid UTF-8.
std::string_view TrimJsWhitespaceStart(std::string_view text);
std::string_view TrimJsWhitespaceEnd(std::string_view text);

// True when every byte is ASCII (< 0x80).
bool IsAscii(std::string_view text);

}  // namespace emoe::tokenizer::internal

#endif  // TOKENIZER_SRC_UTF8_H_
