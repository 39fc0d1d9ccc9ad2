// tokenizer/src/unicode_classes.cc: Oniguruma's set-up and its Unicode classes as a table.
#include "unicode_classes.h"

#include <oniguruma.h>

#include <string>
#include <string_view>
#include <unordered_map>

namespace emoe::tokenizer::internal {
namespace {

// Sets `bit` in flat[c] for every code point c of Oniguruma's ctype; false when Oniguruma gives
// no range list for it.
bool MarkCtype(OnigCtype ctype, uint8_t bit, std::vector<uint8_t>* flat) {
  OnigEncoding enc = ONIG_ENCODING_UTF8;
  OnigCodePoint single_byte_out = 0;
  const OnigCodePoint* ranges = nullptr;
  if (enc->get_ctype_code_range(ctype, &single_byte_out, &ranges) != 0 || ranges == nullptr) {
    return false;
  }
  // ranges[0] is the number of ranges, then {first, last} pairs (inclusive).
  for (OnigCodePoint r = 0; r < ranges[0]; ++r) {
    const OnigCodePoint first = ranges[1 + 2 * r], last = ranges[2 + 2 * r];
    for (OnigCodePoint c = first; c <= last && c < UnicodeClasses::kCodePoints; ++c) {
      (*flat)[c] |= bit;
    }
  }
  return true;
}

bool MarkProperty(const char* name, uint8_t bit, std::vector<uint8_t>* flat) {
  OnigEncoding enc = ONIG_ENCODING_UTF8;
  auto* p = reinterpret_cast<OnigUChar*>(const_cast<char*>(name));
  const int ctype = enc->property_name_to_ctype(enc, p, p + std::char_traits<char>::length(name));
  if (ctype < 0) return false;
  return MarkCtype(static_cast<OnigCtype>(ctype), bit, flat);
}

}  // namespace

int InitializeOniguruma() {
  static const int result = [] {
    OnigEncoding encodings[] = {ONIG_ENCODING_UTF8};
    return onig_initialize(encodings, 1);
  }();
  return result;
}

const UnicodeClasses& UnicodeClasses::Get() {
  static const UnicodeClasses* classes = new UnicodeClasses();  // never destroyed
  return *classes;
}

UnicodeClasses::UnicodeClasses() {
  std::vector<uint8_t> flat(kCodePoints, 0);
  ok_ = InitializeOniguruma() == ONIG_NORMAL && MarkProperty("L", kLetter, &flat) &&
        MarkProperty("N", kNumber, &flat) && MarkCtype(ONIGENC_CTYPE_SPACE, kSpace, &flat);
  flat['\r'] |= kNewline;
  flat['\n'] |= kNewline;
  // Two stages: identical blocks of 256 code points are stored once.
  constexpr uint32_t kBlock = 1u << kBlockBits;
  std::unordered_map<std::string_view, uint16_t> seen;
  stage1_.resize(kCodePoints >> kBlockBits);
  for (uint32_t b = 0; b < stage1_.size(); ++b) {
    const std::string_view block(reinterpret_cast<const char*>(flat.data()) + b * kBlock, kBlock);
    auto [it, inserted] = seen.try_emplace(block, static_cast<uint16_t>(seen.size()));
    if (inserted) blocks_.insert(blocks_.end(), block.begin(), block.end());
    stage1_[b] = it->second;
  }
}

CharInfo DecodeNonAscii(const UnicodeClasses& classes, const unsigned char* text, size_t size,
                        size_t i) {
  constexpr CharInfo kInvalid = {0, 1};
  const unsigned char b = text[i];
  uint32_t len, cp, min;
  if (b >= 0xC2 && b <= 0xDF) {
    len = 2, cp = b & 0x1F, min = 0x80;
  } else if (b >= 0xE0 && b <= 0xEF) {
    len = 3, cp = b & 0x0F, min = 0x800;
  } else if (b >= 0xF0 && b <= 0xF4) {
    len = 4, cp = b & 0x07, min = 0x10000;
  } else {
    return kInvalid;
  }
  if (size - i < len) return kInvalid;
  for (uint32_t k = 1; k < len; ++k) {
    const unsigned char c = text[i + k];
    if ((c & 0xC0) != 0x80) return kInvalid;
    cp = (cp << 6) | (c & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return kInvalid;
  return {classes.Of(cp), static_cast<uint8_t>(len)};
}

}  // namespace emoe::tokenizer::internal
