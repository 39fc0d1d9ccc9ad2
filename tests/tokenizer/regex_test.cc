// Regex over Oniguruma (tokenizer/src/regex.h): the matches of the patterns tokenizers ship,
// Unicode classes as Oniguruma defines them, empty matches skipped, syntax errors naming the
// pattern, and concurrent FindAll on one compiled Regex.
#include "regex.h"

#include <gtest/gtest.h>

#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace emoe::tokenizer::internal {
namespace {

using Spans = std::vector<std::pair<uint32_t, uint32_t>>;

// Qwen2/Qwen3's Split pattern, as tokenizer.json holds it.
constexpr char kQwenPattern[] =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

std::vector<std::string> Pieces(const Regex& regex, const std::string& text) {
  Spans spans;
  regex.FindAll(text, &spans);
  std::vector<std::string> out;
  for (const auto& span : spans) out.push_back(text.substr(span.first, span.second));
  return out;
}

std::unique_ptr<Regex> MustCompile(const std::string& pattern) {
  auto regex = Regex::Compile(pattern, /*use_fast_path=*/false);
  EXPECT_TRUE(regex.ok()) << regex.status().ToString();
  if (!regex.ok()) return nullptr;
  EXPECT_FALSE((*regex)->fast());
  EXPECT_EQ((*regex)->pattern(), pattern);
  return std::move(*regex);
}

TEST(RegexTest, QwenPatternSplitsLikeTheReference) {
  auto regex = MustCompile(kQwenPattern);
  ASSERT_NE(regex, nullptr);
  // Contractions (case-insensitive), a letter run taking one leading non-letter, single
  // digits, punctuation with its trailing newlines, whitespace before a word left as one space.
  EXPECT_EQ(
      Pieces(*regex, "He'S here  2024!\n\nok"),
      (std::vector<std::string>{"He", "'S", " here", " ", " ", "2", "0", "2", "4", "!\n\n", "ok"}));
  EXPECT_EQ(Pieces(*regex, "a\t\tb   \n"), (std::vector<std::string>{"a", "\t", "\tb", "   \n"}));
  // U+3000 (ideographic space) is \s; Arabic-Indic digits are \p{N}; CJK is \p{L}.
  EXPECT_EQ(Pieces(*regex, "\xE4\xBD\xA0\xE5\xA5\xBD\xE3\x80\x80\xD9\xA1\xD9\xA2"),
            (std::vector<std::string>{"\xE4\xBD\xA0\xE5\xA5\xBD", "\xE3\x80\x80", "\xD9\xA1",
                                      "\xD9\xA2"}));
}

TEST(RegexTest, SpansCoverTheMatchedBytes) {
  auto regex = MustCompile(R"(\p{L}+)");
  ASSERT_NE(regex, nullptr);
  Spans spans;
  regex->FindAll("12 ab\xC3\xA9 3 x", &spans);
  EXPECT_EQ(spans, (Spans{{3, 4}, {10, 1}}));
  // FindAll appends.
  regex->FindAll("y", &spans);
  EXPECT_EQ(spans, (Spans{{3, 4}, {10, 1}, {0, 1}}));
}

TEST(RegexTest, EmptyMatchesAreSkippedOneCharacterAtATime) {
  auto regex = MustCompile("a*");
  ASSERT_NE(regex, nullptr);
  EXPECT_EQ(Pieces(*regex, "baab"), (std::vector<std::string>{"aa"}));
  // Skipping an empty match steps over a whole multi-byte character, never into it.
  EXPECT_EQ(Pieces(*regex,
                   "\xE2\x82\xAC"
                   "a\xF0\x9F\x98\x80"
                   "aa"),
            (std::vector<std::string>{"a", "aa"}));
  EXPECT_TRUE(Pieces(*regex, "").empty());
  EXPECT_TRUE(Pieces(*regex, "\xE2\x82\xAC").empty());
}

TEST(RegexTest, SyntaxErrorNamesThePatternAndOnigurumasMessage) {
  auto regex = Regex::Compile("(ab", /*use_fast_path=*/false);
  ASSERT_FALSE(regex.ok());
  EXPECT_EQ(regex.status().code(), vmm::StatusCode::kInvalidArgument);
  EXPECT_NE(regex.status().message().find("'(ab'"), std::string::npos) << regex.status().ToString();
  EXPECT_NE(regex.status().message().find("unmatched"), std::string::npos)
      << regex.status().ToString();
  auto property = Regex::Compile(R"(\p{NoSuchProperty})", /*use_fast_path=*/false);
  ASSERT_FALSE(property.ok());
  EXPECT_NE(property.status().message().find("NoSuchProperty"), std::string::npos)
      << property.status().ToString();
}

// One compiled Regex, Oniguruma's and the fast matcher, on four threads at once.
TEST(RegexTest, ConcurrentFindAllOnOneRegex) {
  std::string text;
  for (int i = 0; i < 200; ++i) {
    text += "The year " + std::to_string(1800 + i) + " wasn't\t\t  it.\n";
  }
  for (const bool fast : {false, true}) {
    auto compiled = Regex::Compile(kQwenPattern, fast);
    ASSERT_TRUE(compiled.ok());
    const Regex& regex = **compiled;
    EXPECT_EQ(regex.fast(), fast);
    Spans expected;
    regex.FindAll(text, &expected);
    ASSERT_FALSE(expected.empty());
    std::vector<Spans> results(4);
    std::vector<std::thread> threads;
    for (auto& result : results) {
      threads.emplace_back([&regex, &text, &result] {
        for (int round = 0; round < 20; ++round) {
          result.clear();
          regex.FindAll(text, &result);
        }
      });
    }
    for (auto& thread : threads) thread.join();
    for (const auto& result : results) EXPECT_EQ(result, expected);
  }
}

}  // namespace
}  // namespace emoe::tokenizer::internal
