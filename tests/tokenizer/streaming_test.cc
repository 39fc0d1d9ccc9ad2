// tests/tokenizer/streaming_test.cc: IncrementalDecoder (vLLM's two-offset detokenizer) and
// StopStrings.
//
// StopStrings is checked on hand-made streams (a stop string split over 2 and 3 pieces, the
// held-back tail released at Finish, UTF-8 never split) and against a reference on random
// streams (fixed seed). IncrementalDecoder is checked on a small SentencePiece-style vocabulary
// written here (byte fallback, the decoder's leading-space strip), and on the real ones when
// scripts/fetch_tokenizers.sh has fetched them (data/tokenizers/{qwen3,mistral}): characters
// built from several byte-fallback tokens (Mistral), byte-level tokens that hold half a
// character (Qwen3), and streaming.h's invariant on every prefix of real strings.
#include "tokenizer/streaming.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "tokenizer/tokenizer.h"

namespace emoe::tokenizer {
namespace {

const std::string kData = EMOE_TOKENIZER_DATA;
const std::string kReplacement = "\xEF\xBF\xBD";

// Is `s` valid UTF-8 (no overlongs, surrogates or code points above U+10FFFF)?
bool ValidUtf8(const std::string& s) {
  size_t i = 0;
  while (i < s.size()) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    size_t n = c < 0x80                   ? 1
               : (c >= 0xC2 && c <= 0xDF) ? 2
               : (c >= 0xE0 && c <= 0xEF) ? 3
               : (c >= 0xF0 && c <= 0xF4) ? 4
                                          : 0;
    if (n == 0 || i + n > s.size()) return false;
    for (size_t k = 1; k < n; ++k) {
      if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) return false;
    }
    const unsigned char c1 = static_cast<unsigned char>(s[i + 1 < s.size() ? i + 1 : i]);
    if ((c == 0xE0 && c1 < 0xA0) || (c == 0xED && c1 > 0x9F) || (c == 0xF0 && c1 < 0x90) ||
        (c == 0xF4 && c1 > 0x8F)) {
      return false;
    }
    i += n;
  }
  return true;
}

// ---------------------------------------------------------------------------------------------
// StopStrings

TEST(StopStringsTest, StopInOnePiece) {
  StopStrings s({"END"});
  EXPECT_EQ(s.Feed("hello END world"), "hello ");
  EXPECT_TRUE(s.stopped());
  EXPECT_EQ(s.matched(), "END");
  EXPECT_EQ(s.Feed("more"), "");
  EXPECT_EQ(s.Finish(), "");
}

TEST(StopStringsTest, StopSplitOverTwoPieces) {
  StopStrings s({"</answer>"});
  EXPECT_EQ(s.Feed("42 </ans"), "42 ");  // "</ans" could begin the stop string: held
  EXPECT_FALSE(s.stopped());
  EXPECT_EQ(s.Feed("wer> trailing"), "");
  EXPECT_TRUE(s.stopped());
  EXPECT_EQ(s.matched(), "</answer>");
}

TEST(StopStringsTest, StopSplitOverThreePieces) {
  StopStrings s({"STOP"});
  std::string out = s.Feed("abc S");
  out += s.Feed("T");
  out += s.Feed("OPxyz");
  EXPECT_EQ(out, "abc ");
  EXPECT_TRUE(s.stopped());
}

TEST(StopStringsTest, FalseStartIsReleased) {
  StopStrings s({"world!"});
  EXPECT_EQ(s.Feed("hello wor"), "hello ");
  EXPECT_EQ(s.Feed("ld?"), "world?");
  EXPECT_FALSE(s.stopped());
  EXPECT_EQ(s.Finish(), "");
}

TEST(StopStringsTest, HeldTailIsReleasedAtFinish) {
  StopStrings s({"\n\nUser:"});
  EXPECT_EQ(s.Feed("the answer\n\nUs"), "the answer");
  EXPECT_EQ(s.Finish(), "\n\nUs");
  EXPECT_FALSE(s.stopped());
  EXPECT_EQ(s.matched(), "");
}

TEST(StopStringsTest, EarliestStopInTheTextWins) {
  StopStrings s({"cd", "abc"});  // "abc" starts first although listed second
  EXPECT_EQ(s.Feed("xabcd"), "x");
  EXPECT_EQ(s.matched(), "abc");
  StopStrings t({"abc", "ab"});  // same start: the shortest (a stream sees it complete first)
  EXPECT_EQ(t.Feed("zabcd"), "z");
  EXPECT_EQ(t.matched(), "ab");
  // "b" is complete, but "abc" starts before it and may still complete: wait for the next piece.
  StopStrings u({"b", "abc"});
  EXPECT_EQ(u.Feed("xab"), "x");
  EXPECT_FALSE(u.stopped());
  EXPECT_EQ(u.Feed("c!"), "");
  EXPECT_EQ(u.matched(), "abc");
  StopStrings v({"b", "abc"});
  EXPECT_EQ(v.Feed("xab"), "x");
  EXPECT_EQ(v.Feed("d"), "a");  // "abc" did not complete: "b" stops the stream
  EXPECT_EQ(v.matched(), "b");
  StopStrings w({"b", "abc"});
  EXPECT_EQ(w.Feed("xab"), "x");
  EXPECT_EQ(w.Finish(), "a");  // the stream ended: "b" it is
  EXPECT_TRUE(w.stopped());
  EXPECT_EQ(w.matched(), "b");
}

TEST(StopStringsTest, EmptyStopStringsAreIgnored) {
  StopStrings s({"", "x"});
  EXPECT_EQ(s.Feed("abc"), "abc");  // "" would have matched before any text
  EXPECT_EQ(s.Feed("dxe"), "d");
  EXPECT_EQ(s.matched(), "x");
  StopStrings none({""});
  EXPECT_EQ(none.Feed("anything"), "anything");
  EXPECT_EQ(none.Finish(), "");
}

TEST(StopStringsTest, NeverSplitsACharacter) {
  // The stop string begins with the same lead byte as "中" (E4 B8 AD) but not the same character.
  StopStrings s({"\xE4\xB8\x80!"});  // "一!"
  EXPECT_EQ(s.Feed("ab中"), "ab中");
  EXPECT_EQ(s.Feed("一"), "");  // a prefix of the stop string: held whole
  EXPECT_EQ(s.Feed("?"), "一?");
  // A piece that ends inside a character (raw bytes): the unfinished tail waits.
  StopStrings r({"zz"});
  EXPECT_EQ(r.Feed("ab\xE4\xB8"), "ab");
  EXPECT_EQ(r.Feed("\xAD"
                   "c"),
            "中c");
  EXPECT_EQ(r.Feed("\xF0\x9F"), "");
  EXPECT_EQ(r.Finish(), "\xF0\x9F");
}

// Random streams over a small alphabet (so stop strings occur and nearly occur), cut into random
// pieces at character boundaries, against the definition: the output is the text before the
// earliest stop string, and while no stop string has appeared at most max_len - 1 bytes are held.
TEST(StopStringsTest, RandomStreamsMatchTheDefinition) {
  std::mt19937 rng(17);
  const std::vector<std::string> alphabet = {"a", "b", "é", "中", " "};
  for (int iter = 0; iter < 3000; ++iter) {
    std::vector<std::string> chars;
    const int n = static_cast<int>(rng() % 40);
    for (int i = 0; i < n; ++i) chars.push_back(alphabet[rng() % alphabet.size()]);
    std::vector<std::string> stops;
    size_t max_len = 0;
    const int nstops = 1 + static_cast<int>(rng() % 3);
    for (int k = 0; k < nstops; ++k) {
      std::string stop;
      const int len = 1 + static_cast<int>(rng() % 4);
      for (int i = 0; i < len; ++i) stop += alphabet[rng() % alphabet.size()];
      max_len = std::max(max_len, stop.size());
      stops.push_back(stop);
    }
    std::string text;
    for (const std::string& c : chars) text += c;
    size_t want_end = std::string::npos;  // the earliest start; ties: the shortest
    std::string want_match;
    for (const std::string& stop : stops) {
      const size_t p = text.find(stop);
      if (p < want_end ||
          (p == want_end && p != std::string::npos && stop.size() < want_match.size())) {
        want_end = p;
        want_match = stop;
      }
    }
    const std::string want = text.substr(0, want_end);
    StopStrings s(stops);
    std::string out, fed;
    for (size_t i = 0; i < chars.size();) {
      const size_t take = 1 + rng() % 4;
      std::string piece;
      for (size_t k = 0; k < take && i < chars.size(); ++k, ++i) piece += chars[i];
      fed += piece;
      const std::string got = s.Feed(piece);
      ASSERT_TRUE(ValidUtf8(got)) << "piece split a character";
      out += got;
      ASSERT_EQ(want.substr(0, out.size()), out) << "released text that is not the answer";
      if (!s.stopped()) {
        ASSERT_LE(fed.size() - out.size(), max_len - 1) << "held back too much";
      }
    }
    out += s.Finish();
    ASSERT_EQ(out, want) << "text '" << text << "'";
    ASSERT_EQ(s.stopped(), want_end != std::string::npos);
    if (s.stopped()) {
      ASSERT_EQ(s.matched(), want_match);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// IncrementalDecoder

// The pieces of streaming `ids` after `prompt`, and their concatenation with Finish.
struct Streamed {
  std::vector<std::string> pieces;
  std::string text;
};
Streamed Stream(const Tokenizer& tok, const std::vector<int32_t>& prompt,
                const std::vector<int32_t>& ids, bool skip_special = true) {
  IncrementalDecoder d(tok, prompt, skip_special);
  Streamed s;
  for (int32_t id : ids) {
    s.pieces.push_back(d.Add(id));
    s.text += s.pieces.back();
  }
  s.pieces.push_back(d.Finish());
  s.text += s.pieces.back();
  EXPECT_EQ(d.generated(), ids.size());
  return s;
}

// A SentencePiece-style vocabulary as Mistral's tokenizer.json spells it (Prepend + Replace
// normalizer, byte fallback, the Replace/ByteFallback/Fuse/Strip decoder), with three words.
std::string TinySentencePieceJson() {
  std::string vocab = R"("<unk>": 0, "<s>": 1, "</s>": 2)";
  for (int b = 0; b < 256; ++b) {
    char name[16];
    snprintf(name, sizeof(name), "<0x%02X>", b);
    vocab += std::string(", \"") + name + "\": " + std::to_string(3 + b);
  }
  vocab += R"(, "▁": 259, "a": 260, "b": 261, "▁a": 262, "ab": 263, "▁ab": 264)";
  return std::string(R"({"version": "1.0", "truncation": null, "padding": null,
  "added_tokens": [
    {"id": 0, "content": "<unk>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true},
    {"id": 1, "content": "<s>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true},
    {"id": 2, "content": "</s>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true}],
  "normalizer": {"type": "Sequence", "normalizers": [{"type": "Prepend", "prepend": "▁"},
    {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}]},
  "pre_tokenizer": null, "post_processor": null,
  "decoder": {"type": "Sequence", "decoders": [{"type": "Replace", "pattern": {"String": "▁"}, "content": " "},
    {"type": "ByteFallback"}, {"type": "Fuse"}, {"type": "Strip", "content": " ", "start": 1, "stop": 0}]},
  "model": {"type": "BPE", "dropout": null, "unk_token": "<unk>", "continuing_subword_prefix": null,
    "end_of_word_suffix": null, "fuse_unk": true, "byte_fallback": true, "vocab": {)") +
         vocab + R"(}, "merges": ["▁ a", "a b", "▁a b"]}})";
}

TEST(IncrementalDecoderTest, TinyVocabularyByteFallbackAndLeadingSpace) {
  vmm::StatusOr<std::unique_ptr<Tokenizer>> tok =
      Tokenizer::FromJson(TinySentencePieceJson(), "", "tiny");
  ASSERT_TRUE(tok.ok()) << tok.status().ToString();
  const Tokenizer& t = *tok.value();
  const std::vector<int32_t> ids = t.Encode("ab ab é");
  // ▁ab ▁ab ▁ <0xC3> <0xA9>
  ASSERT_EQ(ids, (std::vector<int32_t>{264, 264, 259, 3 + 0xC3, 3 + 0xA9}));
  const Streamed s = Stream(t, {}, ids);
  EXPECT_EQ(s.pieces, (std::vector<std::string>{"ab", " ab", " ", "", "é", ""}));
  EXPECT_EQ(s.text, t.Decode(ids));
  // With the first two ids as the prompt: the leading space of "▁ab" is kept (context).
  const Streamed p = Stream(t, {264, 264}, {259, 3 + 0xC3, 3 + 0xA9});
  EXPECT_EQ(p.text, " é");
  // Special tokens: skipped by default, kept when asked.
  EXPECT_EQ(Stream(t, {1}, {264, 2, 264}).text, "ab ab");
  EXPECT_EQ(Stream(t, {}, {264, 2, 264}, /*skip_special=*/false).text, "ab</s> ab");
  // An incomplete character at the end of the stream: Finish gives it as Decode does.
  const std::vector<int32_t> half = {264, 3 + 0xE4, 3 + 0xB8};
  const Streamed cut = Stream(t, {}, half);
  ASSERT_EQ(cut.pieces.size(), 4u);
  EXPECT_EQ(cut.pieces[0], "ab");
  EXPECT_EQ(cut.pieces[1], "");
  EXPECT_EQ(cut.pieces[2], "");
  EXPECT_EQ(cut.pieces[3].substr(0, 3), kReplacement);
  EXPECT_EQ(cut.text, t.Decode(half));
}

// A prompt that ends in half a character that the first generated id completes: the completed
// character is emitted (streaming.cc: vLLM's byte-length slice would cut into it).
TEST(IncrementalDecoderTest, PromptEndingInHalfACharacter) {
  vmm::StatusOr<std::unique_ptr<Tokenizer>> tok =
      Tokenizer::FromJson(TinySentencePieceJson(), "", "tiny");
  ASSERT_TRUE(tok.ok()) << tok.status().ToString();
  const Streamed s = Stream(*tok.value(), {264, 3 + 0xC3}, {3 + 0xA9, 260, 261});
  EXPECT_EQ(s.text, "éab");
}

std::unique_ptr<Tokenizer> LoadReal(const std::string& name) {
  const std::string dir = kData + "/" + name;
  if (!Tokenizer::DirectoryHasTokenizer(dir)) return nullptr;
  vmm::StatusOr<std::unique_ptr<Tokenizer>> t = Tokenizer::Load(dir);
  EXPECT_TRUE(t.ok()) << t.status().ToString();
  return t.ok() ? std::move(t).value() : nullptr;
}

#define REAL_TOKENIZER(var, name)                                                          \
  std::unique_ptr<Tokenizer> var = LoadReal(name);                                         \
  if (var == nullptr) {                                                                    \
    GTEST_SKIP() << kData << "/" << name << " is absent: run scripts/fetch_tokenizers.sh"; \
  }

// Real strings: English, code, CJK, Arabic, emoji with ZWJ and skin tones, combining marks,
// a character outside the Mistral vocabulary (byte fallback), special tokens in the text.
const std::vector<std::string>& RealStrings() {
  static const std::vector<std::string> strings = {
      "Hello, world! How are you today?",
      "def f(x):\n\treturn x  *  2   # tabs\tand  runs of spaces\n",
      "日本語のテキストと中文文本，还有한국어도。",
      "مرحبا بالعالم، كيف حالك؟",
      "emoji: 👋🏽 👨‍👩‍👧‍👦 🏳️‍🌈 🎉🎉",
      "combining: e\u0301 a\u0308 n\u0303 \u1e9b\u0323",
      "rare: 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𐍈 ꙮ",
      "  leading spaces and trailing  ",
      "<|im_start|>user\nhi<|im_end|>\n",
      "a",
      "",
  };
  return strings;
}

void CheckInvariantOnEveryPrefix(const Tokenizer& t) {
  for (const std::string& s : RealStrings()) {
    SCOPED_TRACE(s);
    const std::vector<int32_t> ids = t.Encode(s);
    for (size_t k = 0; k <= 2 * ids.size() + 1; ++k) {
      const bool skip = k % 2 == 0;  // every prefix with and without the special tokens' text
      const std::vector<int32_t> prefix(ids.begin(),
                                        ids.begin() + static_cast<std::ptrdiff_t>(k / 2));
      const Streamed st = Stream(t, {}, prefix, skip);
      ASSERT_EQ(st.text, t.Decode(prefix, skip)) << "prefix of " << k / 2 << ", skip " << skip;
      for (size_t i = 0; i + 1 < st.pieces.size(); ++i) {
        ASSERT_TRUE(ValidUtf8(st.pieces[i]));
        ASSERT_EQ(st.pieces[i].find(kReplacement), std::string::npos) << "piece " << i;
      }
    }
    // With the text split into a prompt and a generation at every id boundary.
    const std::string full = t.Decode(ids, /*skip_special_tokens=*/true);
    for (size_t p = 0; p <= ids.size(); ++p) {
      const std::vector<int32_t> prompt(ids.begin(), ids.begin() + static_cast<std::ptrdiff_t>(p));
      const std::vector<int32_t> gen(ids.begin() + static_cast<std::ptrdiff_t>(p), ids.end());
      const std::string head = t.Decode(prompt, /*skip_special_tokens=*/true);
      if (full.compare(0, head.size(), head) != 0) continue;  // the prompt ends mid-character
      ASSERT_EQ(Stream(t, prompt, gen).text, full.substr(head.size())) << "prompt of " << p;
    }
  }
}

TEST(IncrementalDecoderTest, InvariantOnRealStringsQwen3) {
  REAL_TOKENIZER(t, "qwen3");
  CheckInvariantOnEveryPrefix(*t);
}

TEST(IncrementalDecoderTest, InvariantOnRealStringsMistral) {
  REAL_TOKENIZER(t, "mistral");
  CheckInvariantOnEveryPrefix(*t);
}

// Characters Mistral's vocabulary lacks are byte-fallback tokens, one per byte: nothing is
// emitted until the character's last byte, then the whole character.
TEST(IncrementalDecoderTest, MistralByteFallbackCharacters) {
  REAL_TOKENIZER(t, "mistral");
  const std::string text = "𝔘𐍈";  // 4 + 4 bytes, neither in the vocabulary
  const std::vector<int32_t> ids = t->Encode(text);
  size_t byte_tokens = 0;
  for (int32_t id : ids) byte_tokens += t->IdToToken(id).substr(0, 3) == "<0x";
  ASSERT_GE(byte_tokens, 8u) << "expected byte-fallback tokens for " << text;
  const Streamed s = Stream(*t, {}, ids);
  EXPECT_EQ(s.text, t->Decode(ids));
  std::vector<std::string> nonempty;
  for (const std::string& p : s.pieces) {
    if (!p.empty()) nonempty.push_back(p);
  }
  // Whole characters only, each with the token of its last byte ("▁" alone is the stripped
  // leading space: nothing).
  EXPECT_EQ(nonempty, (std::vector<std::string>{"𝔘", "𐍈"}));
  ASSERT_EQ(s.pieces.size(), ids.size() + 1);
  EXPECT_EQ(s.pieces[ids.size() - 5], "𝔘");
  EXPECT_EQ(s.pieces[ids.size() - 1], "𐍈");
}

// Qwen3's byte-level tokens can hold part of a character: a token whose own decode ends in
// U+FFFD emits nothing, and the character comes out whole with the token that completes it.
TEST(IncrementalDecoderTest, Qwen3TokensHoldingHalfACharacter) {
  REAL_TOKENIZER(t, "qwen3");
  size_t partial = 0;
  for (const std::string& s : RealStrings()) {
    const std::vector<int32_t> ids = t->Encode(s);
    IncrementalDecoder d(*t, {});
    std::string text;
    for (int32_t id : ids) {
      const std::string own = t->Decode(std::vector<int32_t>{id});
      const std::string piece = d.Add(id);
      if (own.find(kReplacement) != std::string::npos) ++partial;
      ASSERT_TRUE(ValidUtf8(piece)) << s;
      ASSERT_EQ(piece.find(kReplacement), std::string::npos) << s;
      text += piece;
    }
    text += d.Finish();
    EXPECT_EQ(text, t->Decode(ids, true)) << s;
  }
  EXPECT_GT(partial, 0u) << "no token of the strings holds half a character: the test is moot";
}

// Stop strings on the output of the decoder: the pieces of a real stream, cut at a stop string
// that spans several tokens.
TEST(IncrementalDecoderTest, StopStringAcrossTokens) {
  REAL_TOKENIZER(t, "qwen3");
  const std::string text = "The answer is 42.\n\nUser: what else?";
  const std::vector<int32_t> ids = t->Encode(text);
  IncrementalDecoder d(*t, {});
  StopStrings stops({"\n\nUser:"});
  std::string out;
  for (int32_t id : ids) {
    out += stops.Feed(d.Add(id));
    if (stops.stopped()) break;
  }
  EXPECT_TRUE(stops.stopped());
  EXPECT_EQ(out, "The answer is 42.");
}

}  // namespace
}  // namespace emoe::tokenizer
