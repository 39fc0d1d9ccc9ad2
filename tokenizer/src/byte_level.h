// tokenizer/src/byte_level.h: GPT-2's byte-to-Unicode alphabet (internal).
//
// Byte-level BPE vocabularies spell every byte as one printable character: the bytes '!'..'~',
// 0xA1..0xAC and 0xAE..0xFF as the code point of the same value, the other 68 bytes as
// U+0100 + n in byte order (so ' ' is U+0120 'Ġ' and '\n' is U+010A 'Ċ').
//
// Thread safety: constant tables.
#ifndef TOKENIZER_SRC_BYTE_LEVEL_H_
#define TOKENIZER_SRC_BYTE_LEVEL_H_

#include <cstdint>
#include <string>
#include <string_view>

namespace emoe::tokenizer::internal {

// The alphabet's character for byte `b`.
char32_t ByteToUnicode(uint8_t b);
// The byte that `cp` spells, or -1 when `cp` is not in the alphabet.
int UnicodeToByte(char32_t cp);

// `alphabet` (valid UTF-8) mapped back to bytes; false (and *bytes unspecified) when some
// character is not in the alphabet.
bool AlphabetToBytes(std::string_view alphabet, std::string* bytes);
// `bytes` spelled in the alphabet (appended to *out).
void BytesToAlphabet(std::string_view bytes, std::string* out);

}  // namespace emoe::tokenizer::internal

#endif  // TOKENIZER_SRC_BYTE_LEVEL_H_
