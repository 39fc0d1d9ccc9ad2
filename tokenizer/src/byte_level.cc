// tokenizer/src/byte_level.cc: GPT-2's byte alphabet (bytes_to_unicode in GPT-2's encoder.py).
#include "byte_level.h"

#include <array>

#include "utf8.h"

namespace emoe::tokenizer::internal {
namespace {

constexpr bool IsPrintable(int b) {
  return (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
}

struct Tables {
  std::array<char32_t, 256> to_unicode{};
  std::array<int16_t, 0x144> to_byte{};  // U+0000..U+0143 (the alphabet's largest is U+0143)
};

constexpr Tables MakeTables() {
  Tables t;
  for (auto& v : t.to_byte) v = -1;
  int n = 0;
  for (int b = 0; b < 256; ++b) {
    const char32_t cp = IsPrintable(b) ? static_cast<char32_t>(b) : 0x100 + n++;
    t.to_unicode[b] = cp;
    t.to_byte[cp] = static_cast<int16_t>(b);
  }
  return t;
}

constexpr Tables kTables = MakeTables();

}  // namespace

char32_t ByteToUnicode(uint8_t b) { return kTables.to_unicode[b]; }

int UnicodeToByte(char32_t cp) { return cp < kTables.to_byte.size() ? kTables.to_byte[cp] : -1; }

bool AlphabetToBytes(std::string_view alphabet, std::string* bytes) {
  // The alphabet is U+0021..U+0143: one UTF-8 byte, or two with a lead byte 0xC2..0xC5.
  bytes->resize(alphabet.size());
  char* out = bytes->data();
  const auto* p = reinterpret_cast<const unsigned char*>(alphabet.data());
  const auto* end = p + alphabet.size();
  while (p < end) {
    char32_t cp;
    if (*p < 0x80) {
      cp = *p++;
    } else if (*p >= 0xC2 && *p <= 0xC5 && p + 1 < end) {
      cp = (char32_t(p[0] & 0x1F) << 6) | (p[1] & 0x3F);
      p += 2;
    } else {
      return false;
    }
    const int b = kTables.to_byte[cp < kTables.to_byte.size() ? cp : 0];
    if (b < 0 || cp >= kTables.to_byte.size()) return false;
    *out++ = static_cast<char>(b);
  }
  bytes->resize(out - bytes->data());
  return true;
}

void BytesToAlphabet(std::string_view bytes, std::string* out) {
  for (unsigned char b : bytes) AppendUtf8(kTables.to_unicode[b], out);
}

}  // namespace emoe::tokenizer::internal
