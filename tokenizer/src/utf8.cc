// tokenizer/src/utf8.cc: UTF-8 validation, the WHATWG lossy decoding, JS whitespace trimming.
//
// LossyUtf8 is the WHATWG "UTF-8 decode" with replacement (what the reference's TextDecoder and
// Rust's String::from_utf8_lossy do): each maximal subpart of an ill-formed sequence becomes one
// U+FFFD, and the byte that ended a truncated sequence is decoded afresh.
#include <cstring>

#include "text_pipeline.h"
#include "utf8.h"

namespace emoe::tokenizer::internal {
namespace {

constexpr char kReplacement[] = "\xEF\xBF\xBD";  // U+FFFD

// The number of continuation bytes a lead byte needs and the allowed range of the first one
// (WHATWG's lower/upper boundary); needed = -1 for a byte that cannot start a sequence.
struct Lead {
  int needed;
  unsigned char lower, upper;
};

Lead LeadOf(unsigned char b) {
  if (b < 0x80) return {0, 0x80, 0xBF};
  if (b >= 0xC2 && b <= 0xDF) return {1, 0x80, 0xBF};
  if (b == 0xE0) return {2, 0xA0, 0xBF};
  if (b == 0xED) return {2, 0x80, 0x9F};
  if (b >= 0xE1 && b <= 0xEF) return {2, 0x80, 0xBF};
  if (b == 0xF0) return {3, 0x90, 0xBF};
  if (b >= 0xF1 && b <= 0xF3) return {3, 0x80, 0xBF};
  if (b == 0xF4) return {3, 0x80, 0x8F};
  return {-1, 0, 0};
}

// Length of the well-formed sequence at bytes[i], or 0 when it is ill-formed; *subpart is the
// length of its maximal subpart then (at least 1).
size_t SequenceAt(std::string_view bytes, size_t i, size_t* subpart) {
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
  const Lead lead = LeadOf(p[i]);
  if (lead.needed < 0) {
    *subpart = 1;
    return 0;
  }
  size_t j = i + 1;
  for (int k = 0; k < lead.needed; ++k, ++j) {
    const unsigned char lo = k == 0 ? lead.lower : 0x80;
    const unsigned char hi = k == 0 ? lead.upper : 0xBF;
    if (j >= bytes.size() || p[j] < lo || p[j] > hi) {
      *subpart = j - i;
      return 0;
    }
  }
  return j - i;
}

}  // namespace

void AppendUtf8(char32_t cp, std::string* out) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

bool IsAscii(std::string_view text) {
  size_t i = 0;
  for (; i + 8 <= text.size(); i += 8) {
    uint64_t word;
    std::memcpy(&word, text.data() + i, 8);
    if (word & 0x8080808080808080ull) return false;
  }
  for (; i < text.size(); ++i) {
    if (static_cast<unsigned char>(text[i]) >= 0x80) return false;
  }
  return true;
}

bool IsValidUtf8(std::string_view text) {
  size_t i = 0;
  while (i < text.size()) {
    if (i + 8 <= text.size()) {
      uint64_t word;
      std::memcpy(&word, text.data() + i, 8);
      if ((word & 0x8080808080808080ull) == 0) {
        i += 8;
        continue;
      }
    }
    if (static_cast<unsigned char>(text[i]) < 0x80) {
      ++i;
      continue;
    }
    size_t subpart;
    const size_t n = SequenceAt(text, i, &subpart);
    if (n == 0) return false;
    i += n;
  }
  return true;
}

std::string LossyUtf8(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size() + 8);
  size_t i = 0;
  while (i < bytes.size()) {
    if (static_cast<unsigned char>(bytes[i]) < 0x80) {
      out.push_back(bytes[i++]);
      continue;
    }
    size_t subpart;
    const size_t n = SequenceAt(bytes, i, &subpart);
    if (n == 0) {
      out += kReplacement;
      i += subpart;
    } else {
      out.append(bytes.data() + i, n);
      i += n;
    }
  }
  return out;
}

std::string_view TrimJsWhitespaceStart(std::string_view text) {
  size_t i = 0;
  while (i < text.size()) {
    uint32_t length;
    const char32_t cp = DecodeUtf8(text, i, &length);
    if (!IsJsWhitespace(cp)) break;
    i += length;
  }
  return text.substr(i);
}

std::string_view TrimJsWhitespaceEnd(std::string_view text) {
  size_t end = text.size();
  while (end > 0) {
    size_t start = end - 1;  // back to the lead byte of the last character
    while (start > 0 && (static_cast<unsigned char>(text[start]) & 0xC0) == 0x80) --start;
    uint32_t length;
    if (!IsJsWhitespace(DecodeUtf8(text, start, &length))) break;
    end = start;
  }
  return text.substr(0, end);
}

}  // namespace emoe::tokenizer::internal
