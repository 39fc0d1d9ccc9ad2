// Normalize (tokenizer/src/unicode.h), which maps only the stretches around unstable code
// points, against ApplyNormalForm over the whole text (utf8proc), for the four forms: on every
// code point in contexts where it may compose, reorder or decompose, and on generated strings
// dense in combining marks, Hangul jamo and syllables, and precomposed letters.
#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "unicode.h"
#include "utf8.h"

namespace emoe::tokenizer::internal {
namespace {

constexpr NormalForm kForms[] = {NormalForm::kNFC, NormalForm::kNFD, NormalForm::kNFKC,
                                 NormalForm::kNFKD};

std::string Utf8Of(char32_t cp) {
  std::string s;
  AppendUtf8(cp, &s);
  return s;
}

::testing::AssertionResult SameAsWhole(const std::string& text, NormalForm form) {
  std::string stretches = text;
  Normalize(&stretches, form);
  const std::string whole = ApplyNormalForm(text, form);
  if (stretches == whole) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << NormalFormName(form) << " of '" << text << "': '"
                                       << stretches << "', whole text: '" << whole << "'";
}

TEST(NormalizeTest, StableTextIsLeftAsItIs) {
  for (NormalForm form : kForms) {
    std::string text = "plain ASCII, \xE4\xBD\xA0\xE5\xA5\xBD";
    Normalize(&text, form);
    EXPECT_EQ(text, "plain ASCII, \xE4\xBD\xA0\xE5\xA5\xBD");
  }
  std::string composed = "e\xCC\x81t\xC3\xA9";  // e + U+0301, then precomposed U+00E9
  Normalize(&composed, NormalForm::kNFC);
  EXPECT_EQ(composed, "\xC3\xA9t\xC3\xA9");
  Normalize(&composed, NormalForm::kNFD);
  EXPECT_EQ(composed, "e\xCC\x81te\xCC\x81");
}

// Every BMP and SMP code point after a base letter and before combining marks of different
// classes (U+0323 below, class 220; U+0301 above, 230), and after a Hangul LV syllable.
TEST(NormalizeTest, EveryCodePointInContext) {
  for (NormalForm form : kForms) {
    std::string text;
    for (char32_t cp = 0x80; cp < 0x20000; ++cp) {
      if (cp >= 0xD800 && cp <= 0xDFFF) continue;
      const std::string c = Utf8Of(cp);
      text += "a" + c + "\xCC\x81\xCC\xA3" + "\xEA\xB0\x80" + c + "x" + c + c;
      if (text.size() > 4096) {
        ASSERT_TRUE(SameAsWhole(text, form)) << "up to U+" << std::hex << uint32_t{cp};
        text.clear();
      }
    }
    ASSERT_TRUE(SameAsWhole(text, form));
  }
}

TEST(NormalizeTest, GeneratedStrings) {
  const std::vector<char32_t> alphabet = {
      'a',    'e',    'o',     'A',    ' ',    '.',    0x00E9, 0x00C5, 0x212B, 0x0301, 0x0323,
      0x0308, 0x0327, 0x0345,  0x05B0, 0x0651, 0x064B, 0x093C, 0x0915, 0x0F71, 0x0F72, 0x1100,
      0x1161, 0x11A8, 0xAC00,  0xAC01, 0xD7A3, 0x3099, 0x304B, 0x304C, 0xFB01, 0x2126, 0x1E9B,
      0x0344, 0x0F73, 0x1D15E, 0x2ADC, 0xFF21, 0x00BD, 0x4F60, 0x0041, 0x030A, 0x0385, 0x1FEE};
  std::mt19937 rng(17);
  std::uniform_int_distribution<size_t> pick(0, alphabet.size() - 1), length(0, 24);
  for (NormalForm form : kForms) {
    for (int i = 0; i < 20000; ++i) {
      std::string text;
      for (size_t k = length(rng); k > 0; --k) AppendUtf8(alphabet[pick(rng)], &text);
      ASSERT_TRUE(SameAsWhole(text, form)) << "string " << i;
    }
  }
}

}  // namespace
}  // namespace emoe::tokenizer::internal
