// tokenizer/src/unicode.h: Unicode normalization forms and case mapping over utf8proc, as the
// reference's JS string methods give them (internal).
//
// IsNormalized is a quick check: true means `text` is certainly unchanged by the form (so the
// caller skips the work); false means "maybe not" and the caller normalizes. It is true for
// ASCII and for text whose every character is a starter (canonical combining class 0), is not
// a Hangul jamo (composed algorithmically), and
//   NFD/NFKD: has no decomposition of the form's kind (canonical; any), nor is a precomposed
//             Hangul syllable;
//   NFC/NFKC: cannot be the second character of a composition, and has no decomposition of the
//             form's kind unless the form gives it back unchanged (U+00E9, a primary
//             composite; found once per process for the ~2,000 characters concerned).
// tokenizer_stages_test holds this to utf8proc over every code point.
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

// Builds, once per process, the tables the quick check of `form` uses (a few milliseconds;
// otherwise the first check pays it).
void PrepareNormalForm(NormalForm form);

// REQUIRES: valid UTF-8 (all three).
bool IsNormalized(std::string_view text, NormalForm form);
// True when the single code point `cp` passes the quick check (exposed for the tests).
bool IsStableCodePoint(char32_t cp, NormalForm form);
std::string ApplyNormalForm(std::string_view text, NormalForm form);
// *text in `form`, normalizing only the stretches that hold an unstable code point: from the
// stable code point before one to the next stable one (the form maps each such stretch on its
// own, and leaves stable code points as they are). Equal to ApplyNormalForm(*text, form).
void Normalize(std::string* text, NormalForm form);

// String.prototype.toLowerCase (locale-independent full lowercase mapping).
std::string JsLowercase(std::string_view text);

// General category M (Mn, Mc, Me).
bool IsMark(char32_t cp);

}  // namespace emoe::tokenizer::internal

#endif  // TOKENIZER_SRC_UNICODE_H_
