// tokenizer/src/unicode_classes.h: the Unicode character classes the Split patterns use (\p{L},
// \p{N}, \s), as Oniguruma defines them for UTF-8, in a two-stage table for the fast matchers
// (fast_split.h), and Oniguruma's one-time set-up.
//
// The table is built once, at first use, from Oniguruma's own range lists (the encoding's
// get_ctype_code_range for the properties "L" and "N" and for ONIGENC_CTYPE_SPACE), so a fast
// matcher classifies every code point exactly as the compiled pattern does, whatever Unicode
// version the installed Oniguruma carries.
//
// Thread safety: built under a function-local static; const afterwards.
#ifndef TOKENIZER_SRC_UNICODE_CLASSES_H_
#define TOKENIZER_SRC_UNICODE_CLASSES_H_

#include <cstddef>
#include <cstdint>
#include <vector>

namespace emoe::tokenizer::internal {

// onig_initialize for UTF-8, once per process; 0 (ONIG_NORMAL) or Oniguruma's error code.
int InitializeOniguruma();

// Class bits of a code point. A code point with none of kLetter, kNumber, kSpace is "other"
// ([^\s\p{L}\p{N}]); kNewline is \r or \n (also kSpace).
enum : uint8_t {
  kLetter = 1,   // \p{L}
  kNumber = 2,   // \p{N}
  kSpace = 4,    // \s (Oniguruma: Unicode White_Space)
  kNewline = 8,  // \r, \n
};

class UnicodeClasses {
 public:
  static constexpr uint32_t kBlockBits = 8;
  static constexpr uint32_t kCodePoints = 0x110000;

  // The process's table (built on first call).
  static const UnicodeClasses& Get();

  uint8_t Of(uint32_t code_point) const {
    if (code_point >= kCodePoints) return 0;
    return blocks_[(static_cast<size_t>(stage1_[code_point >> kBlockBits]) << kBlockBits) |
                   (code_point & ((1u << kBlockBits) - 1))];
  }
  const uint8_t* ascii() const { return blocks_.data(); }  // Of(c) for c < 0x80 (block 0)
  // False when Oniguruma could not be set up or gave no range list for a class: the fast
  // matchers are then not used (Regex::Compile falls back to Oniguruma).
  bool ok() const { return ok_; }

 private:
  UnicodeClasses();
  bool ok_ = false;
  std::vector<uint16_t> stage1_;  // code_point >> kBlockBits -> block number in blocks_
  std::vector<uint8_t> blocks_;   // distinct blocks of 1 << kBlockBits class bytes; block 0 first
};

// The character at text[i] (i < size): its class bits and its length in bytes. A byte that does
// not start a well-formed UTF-8 sequence (only possible when the contract of valid UTF-8 input
// is broken) is one "other" character of length 1, so scans stay in bounds and advance.
struct CharInfo {
  uint8_t cls;
  uint8_t len;
};
CharInfo DecodeNonAscii(const UnicodeClasses& classes, const unsigned char* text, size_t size,
                        size_t i);
inline CharInfo CharAt(const UnicodeClasses& classes, const unsigned char* text, size_t size,
                       size_t i) {
  const unsigned char b = text[i];
  if (b < 0x80) return {classes.ascii()[b], 1};
  return DecodeNonAscii(classes, text, size, i);
}

}  // namespace emoe::tokenizer::internal

#endif  // TOKENIZER_SRC_UNICODE_CLASSES_H_
