// tokenizer/src/unicode.h: Unicode normalization forms and case mapping over utf8proc, as the
// reference's JS string methods give them (internal).
//
// IsNormalized is a quick check: true means `text` is certainly unchanged by the form (so the
// caller skips the work); false means "maybe not" and the caller normalizes. It is true for
// ASCII and for text whose every character is a starter (canonical combining class 0), has no
// decomposition of the form's kind (canonical for NFC/NFD, any for NFKC/NFKD), is not a Hangul
// jamo (composed algorithmically) and, for the composing forms, cannot be the second character
// of a primary composite; for NFD/NFKD a precomposed Hangul syllable is not stable either.
//
// Thread safety: pure functions.
#ifndef TOKENIZER_SRC_UNICODE_H_
#define TOKENIZER_SRC_UNICODE_H_

#include <string>
#include <string_view>

namespace emoe::tokenizer::internal {

enum class NormalForm { kNFC, kNFD, kNFKC, kNFKD };

// "NFC" -> kNFC, ...; false for other names.
bool ParseNormalForm(std::string_view name, NormalForm* form);
const char* NormalFormName(NormalForm form);

// REQUIRES: valid UTF-8 (all three).
bool IsNormalized(std::string_view text, NormalForm form);
// True when the single code point `cp` passes the quick check (exposed for the tests).
bool IsStableCodePoint(char32_t cp, NormalForm form);
std::string ApplyNormalForm(std::string_view text, NormalForm form);

// String.prototype.toLowerCase (locale-independent full lowercase mapping).
std::string JsLowercase(std::string_view text);

// General category M (Mn, Mc, Me).
bool IsMark(char32_t cp);

}  // namespace emoe::tokenizer::internal

#endif  // TOKENIZER_SRC_UNICODE_H_
