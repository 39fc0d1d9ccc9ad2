// The fast Split matchers (tokenizer/src/fast_split.h) against Oniguruma: the same matches for
// each of the three patterns on every Unicode code point in several contexts, on hand-picked
// edge cases, and on a large set of generated strings (fixed seeds) mixing letters of many
// scripts, digits, marks, every kind of whitespace, apostrophes, punctuation and emoji.
#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "fast_split.h"
#include "regex.h"

namespace emoe::tokenizer::internal {
namespace {

using Spans = std::vector<std::pair<uint32_t, uint32_t>>;

std::string Utf8(uint32_t cp) {
  std::string out;
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
  return out;
}

// The fast matcher and Oniguruma for one pattern.
struct Pair {
  std::unique_ptr<Regex> fast, onig;
};

Pair Compile(std::string_view pattern) {
  Pair pair;
  auto fast = Regex::Compile(pattern);
  auto onig = Regex::Compile(pattern, /*use_fast_path=*/false);
  EXPECT_TRUE(fast.ok() && onig.ok());
  if (!fast.ok() || !onig.ok()) return pair;
  EXPECT_TRUE((*fast)->fast()) << pattern;
  EXPECT_FALSE((*onig)->fast());
  pair.fast = std::move(*fast);
  pair.onig = std::move(*onig);
  return pair;
}

std::string Show(const std::string& text, const Spans& spans) {
  std::string out;
  for (const auto& span : spans) {
    out += "[";
    for (char c : text.substr(span.first, span.second)) {
      const auto u = static_cast<unsigned char>(c);
      if (u >= 0x20 && u < 0x7F) {
        out += c;
      } else {
        char hex[8];
        std::snprintf(hex, sizeof(hex), "\\x%02X", u);
        out += hex;
      }
    }
    out += "]";
  }
  return out;
}

// True when both give the same matches on `text`; a failure names the pattern and both splits.
::testing::AssertionResult Same(const Pair& pair, const std::string& text) {
  Spans fast, onig;
  pair.fast->FindAll(text, &fast);
  pair.onig->FindAll(text, &onig);
  if (fast == onig) return ::testing::AssertionSuccess();
  if (text.size() > 2000) {
    // Narrow a long failure down to the first differing match, with some context.
    size_t k = 0;
    while (k < fast.size() && k < onig.size() && fast[k] == onig[k]) ++k;
    const size_t from = k < onig.size() ? onig[k].first : fast[k].first;
    const size_t begin = from > 40 ? from - 40 : 0;
    return ::testing::AssertionFailure()
           << "pattern " << pair.onig->pattern() << "\nfirst difference at byte " << from
           << " near: "
           << Show(text.substr(begin, 120), {{0, std::min<size_t>(120, text.size() - begin)}});
  }
  return ::testing::AssertionFailure()
         << "pattern " << pair.onig->pattern() << "\ntext " << Show(text, {{0, text.size()}})
         << "\nfast " << Show(text, fast) << "\nonig " << Show(text, onig);
}

const std::string_view kPatterns[] = {kQwen2Pattern, kCl100kPattern, kGpt2Pattern};

TEST(FastSplitTest, CompilePicksTheFastMatcherOnlyForItsPatterns) {
  for (std::string_view pattern : kPatterns) {
    auto regex = Regex::Compile(pattern);
    ASSERT_TRUE(regex.ok());
    EXPECT_TRUE((*regex)->fast());
    EXPECT_EQ((*regex)->pattern(), pattern);
    // One character more is another pattern: Oniguruma's.
    auto other = Regex::Compile(std::string(pattern) + "|x");
    ASSERT_TRUE(other.ok());
    EXPECT_FALSE((*other)->fast());
  }
}

TEST(FastSplitTest, HandPickedEdgeCases) {
  const std::vector<std::string> cases = {
      "",
      " ",
      "  ",
      "\n",
      "\r\n",
      " \n ",
      "a  \n\n b",
      "Hello world",
      "  leading",
      "trailing  ",
      "don't I'M we'RE they've he'll she'd 'S 'sx '",
      "'\xC5\xBF",
      "'\xC5\xBF"
      "a",
      "1234567 89",
      "x1y22z333",
      " !!\n\n?",
      "a\t\tb\t",
      "\xE3\x80\x80\xE3\x80\x80x",
      "\xC2\xA0\xC2\xA0word",
      "e\xCC\x81t\xC3\xA9",
      "\xF0\x9F\x91\x8D\xF0\x9F\x8F\xBD ok",
      "\xD9\x85\xD8\xB1\xD8\xAD\xD8\xA8\xD8\xA7 \xD9\xA1\xD9\xA2\xD9\xA3",
      "\xE4\xBD\xA0\xE5\xA5\xBD\xEF\xBC\x8C\xE4\xB8\x96\xE7\x95\x8C",
      "  \t\n  \r\n\t x",
      "\xE2\x85\xAB\xC2\xB2\xC2\xBD",
      "\x0B\x0C\xC2\x85z",
      "'\n's'",
      "   ",
      " \r",
      ".\r\r\n\n.",
  };
  for (std::string_view pattern : kPatterns) {
    const Pair pair = Compile(pattern);
    ASSERT_NE(pair.fast, nullptr);
    for (const std::string& text : cases) EXPECT_TRUE(Same(pair, text));
  }
}

// Every code point of planes 0-3 and 14 (surrogates excluded; of the unassigned and private
// planes every 97th) in contexts that make each class decide a split: repeated, after and
// before a letter, a space, an apostrophe, a digit, punctuation and a tab, and before a newline.
bool Sampled(uint32_t cp) {
  if (cp >= 0xD800 && cp <= 0xDFFF) return false;
  const uint32_t plane = cp >> 16;
  return plane <= 3 || plane == 14 || cp % 97 == 0;
}

TEST(FastSplitTest, EveryCodePointInContext) {
  for (std::string_view pattern : kPatterns) {
    const Pair pair = Compile(pattern);
    ASSERT_NE(pair.fast, nullptr);
    std::string text;
    for (uint32_t cp = 0; cp < 0x110000; ++cp) {
      if (!Sampled(cp)) continue;
      const std::string c = Utf8(cp);
      text += "a" + c + c + " " + c + "'" + c + "1" + c + "!" + c + "\t" + c + "\n";
      if (text.size() > (1u << 20)) {
        ASSERT_TRUE(Same(pair, text)) << "code points up to U+" << std::hex << cp;
        text.clear();
      }
    }
    ASSERT_TRUE(Same(pair, text));
  }
}

// The alphabet of the generated strings: characters grouped by kind, each kind drawn with its
// weight.
struct Kind {
  std::vector<uint32_t> code_points;
  int weight;
};

std::vector<Kind> Alphabet() {
  return {
      {{'a', 'b', 'e', 'z', 'Q', 'S', 'T', 's', 't', 'r', 'e',
        'v', 'm', 'l', 'd', 'R', 'E', 'V', 'M', 'L', 'D'},
       30},
      {{'\'', '\'', 0x2019, 0x017F, 0x212A}, 8},  // apostrophes, long s, Kelvin sign
      {{'0', '1', '7', '9', 0x0661, 0x0967, 0xFF11, 0x2162, 0x00B2, 0x00BD, 0x1D7D8}, 10},
      {{' ',    ' ',    ' ',    '\t',   '\n',   '\r',   0x0B,   0x0C,   0x85,   0xA0,   0x1680,
        0x2000, 0x2009, 0x200A, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000, 0x180E, 0x200B, 0xFEFF},
       25},
      {{'.', ',', '!',  '?', '-', '_',    '(',    ')',    '{',    '}',   '"',
        '#', '$', '\\', '/', '@', 0x00BF, 0x3002, 0xFF0C, 0x2014, 0x00A7},
       12},
      {{0x4F60, 0x597D, 0x4E16, 0x754C, 0x3042, 0x30AB, 0xAC00,  0xD55C,  0x0645,
        0x0631, 0x062D, 0x05E9, 0x0915, 0x093F, 0x0E01, 0x0E31,  0x0410,  0x044F,
        0x03A9, 0x00E9, 0x00DF, 0x0130, 0x0131, 0x02B0, 0x1D400, 0x20000, 0x10400},
       15},
      {{0x0301, 0x0308, 0x064B, 0x093E, 0x0E48, 0x20DD, 0xFE0F, 0x200D}, 6},  // marks, ZWJ, VS16
      {{0x1F44D, 0x1F3FD, 0x1F600, 0x1F1FA, 0x1F1F8, 0x2764, 0x1F468, 0x1F469, 0x1F467, 0x2603,
        0xE000, 0xFFFD, 0x10FFFD, 0x7F, 0x01},
       8},
  };
}

std::string Generate(const std::vector<Kind>& alphabet, std::mt19937* rng, size_t max_chars) {
  std::vector<int> weights;
  for (const Kind& kind : alphabet) weights.push_back(kind.weight);
  std::discrete_distribution<size_t> pick_kind(weights.begin(), weights.end());
  const size_t length = std::uniform_int_distribution<size_t>(0, max_chars)(*rng);
  std::string text;
  while (text.size() < length) {
    const Kind& kind = alphabet[pick_kind(*rng)];
    // Runs of one kind, so words, numbers and whitespace runs of several characters appear.
    const int run = std::uniform_int_distribution<int>(1, 6)(*rng);
    for (int r = 0; r < run; ++r) {
      text += Utf8(kind.code_points[std::uniform_int_distribution<size_t>(
          0, kind.code_points.size() - 1)(*rng)]);
    }
  }
  return text;
}

TEST(FastSplitTest, GeneratedStrings) {
  const std::vector<Kind> alphabet = Alphabet();
  for (std::string_view pattern : kPatterns) {
    const Pair pair = Compile(pattern);
    ASSERT_NE(pair.fast, nullptr);
    std::mt19937 rng(20240917);
    for (int i = 0; i < 40000; ++i) {
      const std::string text = Generate(alphabet, &rng, i % 10 == 0 ? 400 : 40);
      ASSERT_TRUE(Same(pair, text)) << "string " << i;
    }
  }
}

// Random code points from the whole range: classes the alphabet above does not name.
TEST(FastSplitTest, RandomCodePoints) {
  for (std::string_view pattern : kPatterns) {
    const Pair pair = Compile(pattern);
    ASSERT_NE(pair.fast, nullptr);
    std::mt19937 rng(7);
    std::uniform_int_distribution<uint32_t> any(1, 0x10FFFF), ascii(1, 0x7F), pick(0, 3);
    for (int i = 0; i < 20000; ++i) {
      std::string text;
      const int length = std::uniform_int_distribution<int>(0, 24)(rng);
      for (int k = 0; k < length; ++k) {
        uint32_t cp = pick(rng) == 0 ? any(rng) : ascii(rng);
        if (cp >= 0xD800 && cp <= 0xDFFF) cp = ' ';
        text += Utf8(cp);
      }
      ASSERT_TRUE(Same(pair, text)) << "string " << i;
    }
  }
}

TEST(FastSplitTest, LongRuns) {
  for (std::string_view pattern : kPatterns) {
    const Pair pair = Compile(pattern);
    ASSERT_NE(pair.fast, nullptr);
    EXPECT_TRUE(Same(pair, std::string(100000, ' ') + "x"));
    EXPECT_TRUE(Same(pair, std::string(50000, '\n') + std::string(50000, ' ') + "x"));
    EXPECT_TRUE(Same(pair, "x" + std::string(100000, 'y') + "!" + std::string(100000, '7')));
  }
}

}  // namespace
}  // namespace emoe::tokenizer::internal
