// tokenizer/src/unicode.cc: normalization forms, their quick check, JS lowercase (utf8proc).
#include "unicode.h"

#include <utf8proc.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <utility>
#include <vector>

#include "utf8.h"

namespace emoe::tokenizer::internal {
namespace {

bool IsComposing(NormalForm form) { return form == NormalForm::kNFC || form == NormalForm::kNFKC; }
bool IsCompat(NormalForm form) { return form == NormalForm::kNFKC || form == NormalForm::kNFKD; }

// Canonical decompositions exist only below U+2FA20 (the CJK compatibility supplement).
constexpr char32_t kCompositesEnd = 0x30000;

struct Composites {
  std::vector<bool> nfc_stable, nfkc_stable;  // per code point below kCompositesEnd
};

std::string Utf8Of(char32_t cp) {
  std::string s;
  AppendUtf8(cp, &s);
  return s;
}

// Which characters with a canonical decomposition NFC (NFKC) gives back unchanged: ~2,000
// utf8proc calls, once per process (a few milliseconds).
const Composites& GetComposites() {
  static const Composites composites = [] {
    Composites t;
    t.nfc_stable.assign(kCompositesEnd, false);
    t.nfkc_stable.assign(kCompositesEnd, false);
    for (char32_t cp = 0x80; cp < kCompositesEnd; ++cp) {
      if (cp >= 0xD800 && cp < 0xE000) continue;
      const utf8proc_property_t* p = utf8proc_get_property(static_cast<utf8proc_int32_t>(cp));
      if (p->decomp_seqindex == UINT16_MAX || p->decomp_type != 0) continue;
      const std::string text = Utf8Of(cp);
      t.nfc_stable[cp] = ApplyNormalForm(text, NormalForm::kNFC) == text;
      t.nfkc_stable[cp] = ApplyNormalForm(text, NormalForm::kNFKC) == text;
    }
    return t;
  }();
  return composites;
}

// Cased (Unicode's definition, approximated: a letter of a case category or one with a case
// mapping), for the final-sigma rule.
bool IsCased(char32_t cp) {
  const utf8proc_category_t cat = utf8proc_category(static_cast<utf8proc_int32_t>(cp));
  if (cat == UTF8PROC_CATEGORY_LU || cat == UTF8PROC_CATEGORY_LL || cat == UTF8PROC_CATEGORY_LT) {
    return true;
  }
  const auto c = static_cast<utf8proc_int32_t>(cp);
  return utf8proc_tolower(c) != c || utf8proc_toupper(c) != c;
}

// Case_Ignorable: categories Mn, Me, Cf, Lm, Sk and the word-break MidLetter / MidNumLet /
// Single_Quote characters.
bool IsCaseIgnorable(char32_t cp) {
  switch (cp) {
    case 0x27:
    case 0x2E:
    case 0x3A:
    case 0xB7:
    case 0x387:
    case 0x55F:
    case 0x5F4:
    case 0x2018:
    case 0x2019:
    case 0x2024:
    case 0x2027:
    case 0xFE13:
    case 0xFE52:
    case 0xFE55:
    case 0xFF07:
    case 0xFF0E:
    case 0xFF1A:
      return true;
    default:
      break;
  }
  const utf8proc_category_t cat = utf8proc_category(static_cast<utf8proc_int32_t>(cp));
  return cat == UTF8PROC_CATEGORY_MN || cat == UTF8PROC_CATEGORY_ME ||
         cat == UTF8PROC_CATEGORY_CF || cat == UTF8PROC_CATEGORY_LM || cat == UTF8PROC_CATEGORY_SK;
}

// The previous / next code point's start, skipping case-ignorable ones; npos at the ends.
bool CasedBefore(std::string_view text, size_t pos) {
  while (pos > 0) {
    size_t start = pos - 1;
    while (start > 0 && (static_cast<unsigned char>(text[start]) & 0xC0) == 0x80) --start;
    uint32_t length;
    const char32_t cp = DecodeUtf8(text, start, &length);
    if (!IsCaseIgnorable(cp)) return IsCased(cp);
    pos = start;
  }
  return false;
}

bool CasedAfter(std::string_view text, size_t pos) {
  while (pos < text.size()) {
    uint32_t length;
    const char32_t cp = DecodeUtf8(text, pos, &length);
    if (!IsCaseIgnorable(cp)) return IsCased(cp);
    pos += length;
  }
  return false;
}

}  // namespace

void PrepareNormalForm(NormalForm form) {
  if (IsComposing(form)) GetComposites();
}

bool ParseNormalForm(std::string_view name, NormalForm* form) {
  if (name == "NFC")
    *form = NormalForm::kNFC;
  else if (name == "NFD")
    *form = NormalForm::kNFD;
  else if (name == "NFKC")
    *form = NormalForm::kNFKC;
  else if (name == "NFKD")
    *form = NormalForm::kNFKD;
  else
    return false;
  return true;
}

const char* NormalFormName(NormalForm form) {
  switch (form) {
    case NormalForm::kNFC:
      return "NFC";
    case NormalForm::kNFD:
      return "NFD";
    case NormalForm::kNFKC:
      return "NFKC";
    case NormalForm::kNFKD:
      return "NFKD";
  }
  return "?";
}

bool IsStableCodePoint(char32_t cp, NormalForm form) {
  if (cp < 0x80) return true;
  if (cp >= 0x1100 && cp <= 0x11FF) return false;  // Hangul jamo
  if (cp >= 0xAC00 && cp <= 0xD7A3) return IsComposing(form);
  const auto c = static_cast<utf8proc_int32_t>(cp);
  const utf8proc_property_t* p = utf8proc_get_property(c);
  if (p->combining_class != 0) return false;
  if (p->decomp_seqindex != UINT16_MAX) {
    const bool canonical = p->decomp_type == 0;
    if (!canonical) {
      if (IsCompat(form)) return false;  // NFKC/NFKD rewrite it; NFC/NFD ignore the mapping
    } else {
      // NFD/NFKD decompose it; NFC/NFKC keep it only if it is a primary composite (not a
      // singleton, not excluded from composition) and, for NFKC, has no compatibility
      // mapping below it: which Composites() found once by asking utf8proc.
      if (!IsComposing(form) || cp >= kCompositesEnd) return false;
      const Composites& t = GetComposites();
      if (!(IsCompat(form) ? t.nfkc_stable : t.nfc_stable)[cp]) return false;
    }
  }
  // utf8proc 2.8: comb_index >= 0x8000 (and not UINT16_MAX) marks a possible second character.
  if (IsComposing(form) && p->comb_index != UINT16_MAX && p->comb_index >= 0x8000) return false;
  return true;
}

bool IsNormalized(std::string_view text, NormalForm form) {
  size_t i = 0;
  while (i < text.size()) {
    if (static_cast<unsigned char>(text[i]) < 0x80) {
      ++i;
      continue;
    }
    uint32_t length;
    const char32_t cp = DecodeUtf8(text, i, &length);
    if (!IsStableCodePoint(cp, form)) return false;
    i += length;
  }
  return true;
}

std::string ApplyNormalForm(std::string_view text, NormalForm form) {
  int options = UTF8PROC_STABLE;
  options |= IsComposing(form) ? UTF8PROC_COMPOSE : UTF8PROC_DECOMPOSE;
  if (IsCompat(form)) options |= UTF8PROC_COMPAT;
  utf8proc_uint8_t* out = nullptr;
  const utf8proc_ssize_t n = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(text.data()),
                                          static_cast<utf8proc_ssize_t>(text.size()), &out,
                                          static_cast<utf8proc_option_t>(options));
  if (n < 0) {  // only for invalid UTF-8, which the core never passes: keep the text
    std::free(out);
    return std::string(text);
  }
  std::string result(reinterpret_cast<const char*>(out), static_cast<size_t>(n));
  std::free(out);
  return result;
}

void Normalize(std::string* text, NormalForm form) {
  const std::string_view in(*text);
  std::string out;
  size_t copied = 0;       // in[0, copied) is in `out` (or, while out is empty, unchanged)
  size_t last_stable = 0;  // start of the last stable code point seen (the stretch's start)
  size_t i = 0;
  while (i < in.size()) {
    if (static_cast<unsigned char>(in[i]) < 0x80) {
      last_stable = i++;
      continue;
    }
    uint32_t length;
    if (IsStableCodePoint(DecodeUtf8(in, i, &length), form)) {
      last_stable = i;
      i += length;
      continue;
    }
    // A stretch from the stable code point before (it may compose with what follows) to the
    // next stable one (nothing before it can change it: a starter that composes with nothing
    // before it and has no decomposition).
    size_t end = i + length;
    while (end < in.size()) {
      if (static_cast<unsigned char>(in[end]) < 0x80) break;
      if (IsStableCodePoint(DecodeUtf8(in, end, &length), form)) break;
      end += length;
    }
    const size_t start = std::max(last_stable, copied);
    if (out.empty()) out.reserve(in.size() + 16);
    out.append(in.substr(copied, start - copied));
    out += ApplyNormalForm(in.substr(start, end - start), form);
    copied = end;
    last_stable = end;
    i = end;
  }
  if (copied == 0) return;  // every code point was stable: the text is in the form already
  out.append(in.substr(copied));
  *text = std::move(out);
}

std::string JsLowercase(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size();) {
    const unsigned char b = static_cast<unsigned char>(text[i]);
    if (b < 0x80) {
      out.push_back(static_cast<char>(b >= 'A' && b <= 'Z' ? b + 32 : b));
      ++i;
      continue;
    }
    uint32_t length;
    const char32_t cp = DecodeUtf8(text, i, &length);
    if (cp == 0x130) {  // SpecialCasing: LATIN CAPITAL LETTER I WITH DOT ABOVE
      out += "i\xCC\x87";
    } else if (cp == 0x3A3) {  // Final_Sigma
      const bool final_sigma = CasedBefore(text, i) && !CasedAfter(text, i + length);
      AppendUtf8(final_sigma ? 0x3C2 : 0x3C3, &out);
    } else {
      AppendUtf8(static_cast<char32_t>(utf8proc_tolower(static_cast<utf8proc_int32_t>(cp))), &out);
    }
    i += length;
  }
  return out;
}

bool IsMark(char32_t cp) {
  const utf8proc_category_t cat = utf8proc_category(static_cast<utf8proc_int32_t>(cp));
  return cat == UTF8PROC_CATEGORY_MN || cat == UTF8PROC_CATEGORY_MC || cat == UTF8PROC_CATEGORY_ME;
}

}  // namespace emoe::tokenizer::internal
