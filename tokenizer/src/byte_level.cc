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
  bytes->clear();
  for (size_t i = 0; i < alphabet.size();) {
    uint32_t length;
    const int b = UnicodeToByte(DecodeUtf8(alphabet, i, &length));
    if (b < 0) return false;
    bytes->push_back(static_cast<char>(b));
    i += length;
  }
  return true;
}

void BytesToAlphabet(std::string_view bytes, std::string* out) {
  for (unsigned char b : bytes) AppendUtf8(kTables.to_unicode[b], out);
}

}  // namespace emoe::tokenizer::internal
