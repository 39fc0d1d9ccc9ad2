// The tokenizer's stages through their internal seams (tokenizer/src): pre-tokenizers (Split's
// five behaviors and invert, ByteLevel, Metaspace, Whitespace, WhitespaceSplit, Sequence),
// normalizers (the four Unicode forms, their quick check held to utf8proc over every code point,
// Lowercase's full mappings, Strip, Replace, Prepend, StripAccents, Sequence), decoders, the
// UTF-8 helpers, the hash tables and the lock-free word cache under concurrent use.
#include <gtest/gtest.h>
#include <simdjson.h>

#include <list>
#include <set>
#include <string>
#include <thread>
#include <unordered_set>
#include <vector>

#include "bpe_cache.h"
#include "decoders.h"
#include "hash_tables.h"
#include "text_pipeline.h"
#include "unicode.h"
#include "utf8.h"

namespace emoe::tokenizer::internal {
namespace {

using Strings = std::vector<std::string>;

// JSON documents for the factories; elements live as long as the fixture.
class StagesTest : public ::testing::Test {
 protected:
  simdjson::dom::element Parse(const std::string& json) {
    parsers_.emplace_back();
    simdjson::dom::element e;
    EXPECT_EQ(parsers_.back().parse(json).get(e), simdjson::SUCCESS) << json;
    return e;
  }
  std::unique_ptr<PreTokenizer> Pre(const std::string& json) {
    auto p = MakePreTokenizer(Parse(json), "pre_tokenizer");
    EXPECT_TRUE(p.ok()) << p.status().ToString();
    return p.ok() ? std::move(*p) : nullptr;
  }
  std::unique_ptr<Normalizer> Norm(const std::string& json) {
    auto n = MakeNormalizer(Parse(json), "normalizer");
    EXPECT_TRUE(n.ok()) << n.status().ToString();
    return n.ok() ? std::move(*n) : nullptr;
  }
  std::unique_ptr<Decoder> Dec(const std::string& json) {
    auto d = MakeDecoder(Parse(json), "decoder", added_);
    EXPECT_TRUE(d.ok()) << d.status().ToString();
    return d.ok() ? std::move(*d) : nullptr;
  }
  std::unordered_set<std::string> added_{"<|x|>"};

 private:
  std::list<simdjson::dom::parser> parsers_;
};

Strings PreTokenize(const PreTokenizer& p, const std::string& text, uint32_t section = 0) {
  Pieces pieces;
  pieces.text = text;
  pieces.spans = {{0, static_cast<uint32_t>(text.size())}};
  pieces.section_index = section;
  p.PreTokenize(&pieces);
  Strings out;
  for (size_t i = 0; i < pieces.spans.size(); ++i) out.emplace_back(pieces.piece(i));
  return out;
}

std::string Normalize(const Normalizer& n, std::string text) {
  n.Normalize(&text);
  return text;
}

Strings DecodeChain(const Decoder& d, Strings tokens) {
  DecodeTokens in;
  in.tokens = std::move(tokens);
  d.DecodeChain(&in);
  return in.tokens;
}

std::string Split(const char* pattern, const char* behavior, bool invert) {
  return std::string(R"({"type": "Split", "pattern": )") + pattern + R"(, "behavior": ")" +
         behavior + R"(", "invert": )" + (invert ? "true" : "false") + "}";
}

// The Rust crate's own example (tokenizers/src/tokenizer/normalizer.rs, test "split").
TEST_F(StagesTest, SplitBehaviors) {
  const std::string text = "The-final--countdown";
  const char* dash = R"({"String": "-"})";
  EXPECT_EQ(PreTokenize(*Pre(Split(dash, "Removed", false)), text),
            (Strings{"The", "final", "countdown"}));
  EXPECT_EQ(PreTokenize(*Pre(Split(dash, "Isolated", false)), text),
            (Strings{"The", "-", "final", "-", "-", "countdown"}));
  EXPECT_EQ(PreTokenize(*Pre(Split(dash, "MergedWithPrevious", false)), text),
            (Strings{"The-", "final-", "-", "countdown"}));
  EXPECT_EQ(PreTokenize(*Pre(Split(dash, "MergedWithNext", false)), text),
            (Strings{"The", "-final", "-", "-countdown"}));
  EXPECT_EQ(PreTokenize(*Pre(Split(dash, "Contiguous", false)), text),
            (Strings{"The", "-", "final", "--", "countdown"}));
}

TEST_F(StagesTest, SplitInvertMakesTheGapsTheDelimiters) {
  const std::string text = "ab12cd3";
  const char* letters = R"({"Regex": "[a-z]+"})";
  EXPECT_EQ(PreTokenize(*Pre(Split(letters, "Removed", true)), text), (Strings{"ab", "cd"}));
  EXPECT_EQ(PreTokenize(*Pre(Split(letters, "Isolated", true)), text),
            (Strings{"ab", "12", "cd", "3"}));
  EXPECT_EQ(PreTokenize(*Pre(Split(letters, "MergedWithPrevious", true)), text),
            (Strings{"ab12", "cd3"}));
  EXPECT_EQ(PreTokenize(*Pre(Split(letters, "MergedWithNext", true)), text),
            (Strings{"ab", "12cd", "3"}));
  EXPECT_EQ(PreTokenize(*Pre(Split(letters, "Removed", false)), text), (Strings{"12", "3"}));
}

TEST_F(StagesTest, QwenSplitThenByteLevel) {
  auto p = Pre(
      R"({"type": "Sequence", "pretokenizers": [)" +
      Split(
          R"({"Regex": "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"})",
          "Isolated", false) +
      R"(, {"type": "ByteLevel", "add_prefix_space": false, "use_regex": false}]})");
  ASSERT_NE(p, nullptr);
  EXPECT_TRUE(p->byte_level());
  EXPECT_EQ(PreTokenize(*p, "Hello world 123 it's\n\n  x"),
            (Strings{"Hello", " world", " ", "1", "2", "3", " it", "'s", "\n\n", " ", " x"}));
  EXPECT_EQ(p->describe(), "Sequence[Split Regex, ByteLevel]");
}

TEST_F(StagesTest, ByteLevelGpt2PatternAndPrefixSpace) {
  auto p = Pre(R"({"type": "ByteLevel", "add_prefix_space": true, "use_regex": true})");
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(PreTokenize(*p, "Hello world!!  x's"),
            (Strings{" Hello", " world", "!!", " ", " x", "'s"}));
  EXPECT_EQ(PreTokenize(*p, " hi"), (Strings{" hi"}));
}

TEST_F(StagesTest, Metaspace) {
  const std::string m = "\u2581";
  auto split = Pre(R"({"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "always"})");
  ASSERT_NE(split, nullptr);  // split defaults to true, as in the Rust crate
  EXPECT_EQ(PreTokenize(*split, "hello world"), (Strings{m + "hello", m + "world"}));
  EXPECT_EQ(PreTokenize(*split, "a  b"), (Strings{m + "a", m, m + "b"}));
  auto whole = Pre(
      R"({"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "first", "split": false})");
  ASSERT_NE(whole, nullptr);
  EXPECT_EQ(PreTokenize(*whole, "a  b"), (Strings{m + "a" + m + m + "b"}));
  EXPECT_EQ(PreTokenize(*whole, "a b", /*section=*/1), (Strings{"a" + m + "b"}));
  EXPECT_EQ(PreTokenize(*whole, " a", 0), (Strings{m + "a"}));  // already there
  auto never = Pre(R"({"type": "Metaspace", "add_prefix_space": false, "split": false})");
  ASSERT_NE(never, nullptr);
  EXPECT_EQ(PreTokenize(*never, "a b"), (Strings{"a" + m + "b"}));
}

TEST_F(StagesTest, WhitespaceAndWhitespaceSplitAreTheReferencesRegexes) {
  // /\w+|[^\w\s]+/g: JS's \w is ASCII, so U+00E9 is "other".
  EXPECT_EQ(PreTokenize(*Pre(R"({"type": "Whitespace"})"), "Hello, world!\u3000\u00e9t\u00e9"),
            (Strings{"Hello", ",", "world", "!", "\u00e9", "t", "\u00e9"}));
  EXPECT_EQ(PreTokenize(*Pre(R"({"type": "WhitespaceSplit"})"), " Hello,\tworld!\u00a0x "),
            (Strings{"Hello,", "world!", "x"}));
}

TEST_F(StagesTest, Normalizers) {
  EXPECT_EQ(Normalize(*Norm(R"({"type": "NFC"})"), "e\u0301 \u1100\u1161"), "\u00e9 \uac00");
  EXPECT_EQ(Normalize(*Norm(R"({"type": "NFD"})"), "\u00e9"), "e\u0301");
  EXPECT_EQ(Normalize(*Norm(R"({"type": "NFKC"})"), "\ufb01 \u216b \uff48"), "fi XII h");
  EXPECT_EQ(Normalize(*Norm(R"({"type": "NFKD"})"), "\u00e9\ufb01"), "e\u0301fi");
  // JS toLowerCase: U+0130 -> "i" U+0307, final sigma before a non-letter.
  EXPECT_EQ(Normalize(*Norm(R"({"type": "Lowercase"})"), "\u0130\u03a3\u0391\u03a3 \u03a3 AB"),
            "i\u0307\u03c3\u03b1\u03c2 \u03c3 ab");
  EXPECT_EQ(Normalize(*Norm(R"({"type": "Strip", "strip_left": true, "strip_right": true})"),
                      "\ufeff x \u3000"),
            "x");
  EXPECT_EQ(Normalize(*Norm(R"({"type": "Strip", "strip_left": false, "strip_right": true})"),
                      " x\u0085"),
            " x\u0085");  // U+0085 is not JS whitespace
  EXPECT_EQ(
      Normalize(*Norm(R"({"type": "Replace", "pattern": {"Regex": "[0-9]+"}, "content": "#"})"),
                "a1b22c"),
      "a#b#c");
  EXPECT_EQ(Normalize(*Norm(R"({"type": "StripAccents"})"), "\u00e9a\u0301"), "\u00e9a");
  auto llama = Norm(
      R"({"type": "Sequence", "normalizers": [{"type": "Prepend", "prepend": "\u2581"},
          {"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"}]})");
  ASSERT_NE(llama, nullptr);
  EXPECT_EQ(Normalize(*llama, "hello  world"), "\u2581hello\u2581\u2581world");
  EXPECT_EQ(llama->describe(), "Sequence[Prepend, Replace String]");
}

std::string Utf8(char32_t cp) {
  std::string s;
  AppendUtf8(cp, &s);
  return s;
}

// The quick check may only pass text the form leaves alone: every code point it calls stable
// is unchanged on its own, and none of them is the last character of a canonical decomposition
// of a primary composite (the second half of a composition), so no stable character can
// compose with what precedes it.
TEST(UnicodeTest, QuickCheckAgreesWithUtf8proc) {
  std::set<char32_t> seconds;
  for (char32_t cp = 0x80; cp < 0x110000; ++cp) {
    if (cp >= 0xD800 && cp < 0xE000) continue;
    const std::string nfd = ApplyNormalForm(Utf8(cp), NormalForm::kNFD);
    size_t code_points = 0;
    for (unsigned char b : nfd) code_points += (b & 0xC0) != 0x80;
    // A primary composite (NFC gives it back; not a singleton like U+037E -> ';', not an
    // exclusion like U+0FB9): its last character is the second half of a composition.
    if (code_points >= 2 && ApplyNormalForm(Utf8(cp), NormalForm::kNFC) == Utf8(cp)) {
      size_t lead = nfd.size() - 1;
      while ((static_cast<unsigned char>(nfd[lead]) & 0xC0) == 0x80) --lead;
      uint32_t length;
      seconds.insert(DecodeUtf8(nfd, lead, &length));
    }
  }
  for (NormalForm form :
       {NormalForm::kNFC, NormalForm::kNFD, NormalForm::kNFKC, NormalForm::kNFKD}) {
    size_t stable = 0;
    for (char32_t cp = 0; cp < 0x110000; ++cp) {
      if ((cp >= 0xD800 && cp < 0xE000) || !IsStableCodePoint(cp, form)) continue;
      ++stable;
      ASSERT_EQ(ApplyNormalForm(Utf8(cp), form), Utf8(cp))
          << NormalFormName(form) << " U+" << std::hex << static_cast<uint32_t>(cp);
      const bool composing = form == NormalForm::kNFC || form == NormalForm::kNFKC;
      ASSERT_FALSE(composing && seconds.count(cp))
          << NormalFormName(form) << " U+" << std::hex << static_cast<uint32_t>(cp);
    }
    EXPECT_GT(stable, 200000u) << NormalFormName(form);  // the check does skip most text
  }
  EXPECT_TRUE(IsNormalized("plain ASCII", NormalForm::kNFKC));
  EXPECT_TRUE(IsNormalized("\u65e5\u672c \u00e9", NormalForm::kNFC));
  EXPECT_FALSE(IsNormalized("e\u0301", NormalForm::kNFC));
}

TEST_F(StagesTest, Decoders) {
  // The reference reads <0xNN> with parseInt(NN, 16): "4G" is 4, "-1" is 255 (mod 256), " 9"
  // is 9; "0x" and "GG" are not numbers. (Values from its ByteFallbackDecoder.decode_chain.)
  EXPECT_EQ(DecodeChain(*Dec(R"({"type": "ByteFallback"})"),
                        {"<0xE6>", "<0x97>", "<0xA5>", "x", "<0xFF>", "<0x4G>"}),
            (Strings{"\u65e5", "x", "\ufffd\x04"}));
  EXPECT_EQ(
      DecodeChain(*Dec(R"({"type": "ByteFallback"})"),
                  {"<0x-1>", "<0x 9>", "<0x0x>", "<0xGG>", "<0x+A>", "<0x\u00a0B>",
                   "<0x\U0001F600>", "<0x\u00e9\u00e9>"}),
      (Strings{"\ufffd\t", "<0x0x>", "<0xGG>", "\n\v", "<0x\U0001F600>", "<0x\u00e9\u00e9>"}));
  // Each run's TextDecoder drops a leading byte-order mark.
  EXPECT_EQ(
      DecodeChain(*Dec(R"({"type": "ByteFallback"})"), {"<0xEF>", "<0xBB>", "<0xBF>", "<0x41>"}),
      (Strings{"A"}));
  EXPECT_EQ(DecodeChain(*Dec(R"({"type": "Strip", "content": " ", "start": 2, "stop": 1})"),
                        {"   a  ", "b"}),
            (Strings{" a ", "b"}));
  EXPECT_EQ(DecodeChain(*Dec(R"({"type": "Fuse"})"), {"a", "b", "c"}), (Strings{"abc"}));
  EXPECT_EQ(DecodeChain(*Dec(R"({"type": "Metaspace", "replacement": "\u2581"})"),
                        {"\u2581hello", "\u2581world\u2581"}),
            (Strings{"hello", " world "}));
  EXPECT_EQ(
      DecodeChain(*Dec(R"({"type": "Replace", "pattern": {"String": "\u2581"}, "content": " "})"),
                  {"\u2581a\u2581"}),
      (Strings{" a "}));
  // ByteLevel: alphabet characters to bytes, added tokens as they are, lossy UTF-8 per run.
  EXPECT_EQ(
      DecodeChain(*Dec(R"({"type": "ByteLevel"})"), {"\u0120hi", "<|x|>", "\u00c3", "\u00a9"}),
      (Strings{" hi", "<|x|>", "\u00e9"}));
  EXPECT_EQ(DecodeChain(*Dec(R"({"type": "ByteLevel"})"), {"\u00c3", "<|x|>"}),
            (Strings{"\ufffd", "<|x|>"}));
  EXPECT_EQ(CleanUpTokenization("Hello , world . I 'm here ' s n't"),
            "Hello, world. I'm here'sn't");
}

TEST(Utf8Test, LossyReplacesMaximalSubparts) {
  // Unicode 15, section 3.9, table 3-8.
  EXPECT_EQ(LossyUtf8("\x61\xF1\x80\x80\xE1\x80\xC2\x62\x80\x63\x80\xBF\x64"),
            "a\ufffd\ufffd\ufffdb\ufffdc\ufffd\ufffdd");
  EXPECT_EQ(LossyUtf8("\xC0\x80"), "\ufffd\ufffd");                      // overlong
  EXPECT_EQ(LossyUtf8("\xED\xA0\x80"), "\ufffd\ufffd\ufffd");            // a surrogate
  EXPECT_EQ(LossyUtf8("\xF4\x90\x80\x80"), "\ufffd\ufffd\ufffd\ufffd");  // > U+10FFFF
  EXPECT_EQ(LossyUtf8("\xF0\x9F\x98"), "\ufffd");                        // truncated: one
  EXPECT_TRUE(IsValidUtf8("\xF0\x9F\x98\x80 ok \u00e9\u65e5"));
  EXPECT_FALSE(IsValidUtf8("\xC0\x80"));
  EXPECT_FALSE(IsValidUtf8("\xED\xA0\x80"));
  EXPECT_FALSE(IsValidUtf8("abcdefgh\xF4\x90\x80\x80"));
  EXPECT_FALSE(IsValidUtf8("abcdefgh\xE2\x82"));
  EXPECT_EQ(TrimJsWhitespaceEnd("x\u2028\ufeff"), "x");
  EXPECT_EQ(TrimJsWhitespaceStart("\u00a0\u1680x "), "x ");
}

TEST(HashTablesTest, StringIdMapAndPairMap) {
  StringIdMap map;
  for (int i = 0; i < 20000; ++i) EXPECT_EQ(map.Set("key" + std::to_string(i), i), -1);
  EXPECT_EQ(map.Set("key7", 70), 7);  // overwritten, the old id returned
  EXPECT_EQ(map.Find("key7"), 70);
  EXPECT_EQ(map.Find("key19999"), 19999);
  EXPECT_EQ(map.Find("key20000"), -1);
  EXPECT_EQ(map.Find(""), -1);
  EXPECT_EQ(map.Set(std::string("a\0b", 3), 5), -1);
  EXPECT_EQ(map.Find(std::string("a\0b", 3)), 5);
  EXPECT_EQ(map.Find("a"), -1);
  PairMap pairs;
  for (int i = 0; i < 5000; ++i) pairs.Set(i, i + 1, {i, 2 * i});
  pairs.Set(3, 4, {99, 98});
  ASSERT_NE(pairs.Find(3, 4), nullptr);
  EXPECT_EQ(pairs.Find(3, 4)->rank, 99);
  EXPECT_EQ(pairs.Find(4999, 5000)->new_id, 9998);
  EXPECT_EQ(pairs.Find(4, 3), nullptr);
}

TEST(WordCacheTest, ConcurrentReadersNeverSeeTornEntries) {
  ShortWordCache cache;
  // Words whose hashes share slots (few slots' worth of distinct words) and whose ids are a
  // function of the word, so a reader can check every hit.
  std::vector<std::string> words;
  for (int i = 0; i < 4096; ++i) words.push_back("w" + std::to_string(i * 7));
  auto ids_of = [](const std::string& w) {
    std::vector<int32_t> ids;
    for (size_t k = 0; k < 1 + w.size() % 8; ++k)
      ids.push_back(static_cast<int32_t>(w[k % w.size()] * 31 + k));
    return ids;
  };
  std::vector<std::thread> threads;
  std::vector<int> bad(4, 0), hits(4, 0);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      std::vector<int32_t> out;
      for (int round = 0; round < 50; ++round) {
        for (size_t i = t; i < words.size(); i += 3) {
          const std::string& w = words[i];
          const uint64_t h = HashBytes(w) & 0xFFF;  // crowd 4096 slots
          out.clear();
          if (cache.Lookup(w, h, &out)) {
            ++hits[t];
            if (out != ids_of(w)) ++bad[t];
          } else {
            const auto ids = ids_of(w);
            cache.Insert(w, h, ids.data(), ids.size());
          }
        }
      }
    });
  }
  for (auto& thread : threads) thread.join();
  for (int t = 0; t < 4; ++t) {
    EXPECT_EQ(bad[t], 0);
    EXPECT_GT(hits[t], 0);
  }
}

}  // namespace
}  // namespace emoe::tokenizer::internal
