// Tokenizer (tokenizer/tokenizer.h) end to end on small hand-written tokenizer.json documents:
// the BPE model (merge ranks, leftmost ties, both merge formats, long words against a naive
// BPE, byte fallback, unk and fuse_unk, ignore_merges), byte-level vocabularies, added tokens
// (leftmost-longest, lstrip/rstrip, single_word, normalized), special tokens, the template
// post-processor, Metaspace's section index, invalid UTF-8 input and concurrent Encode. The
// expected tokens follow from each document's construction; the documents' behaviour was also
// checked against the reference (@huggingface/tokenizers 0.2.0) while writing them.
// tokenizer_real_test.cc holds the cases on the real vocabularies.
#include "tokenizer/tokenizer.h"

#include <gtest/gtest.h>

#include <map>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "tokenizer_test_util.h"

namespace emoe::tokenizer::testing {
namespace {

TEST(BpeTest, MergesByRankNotByLength) {
  Doc doc("abc");
  doc.Merge("b", "c").Merge("a", "b").Merge("ab", "c");
  auto tok = Load(doc);
  ASSERT_NE(tok, nullptr);
  // (b, c) has the lowest rank, so "abc" never forms although it is a token.
  EXPECT_EQ(Tokens(*tok, "abc"), (Strings{"a", "bc"}));
  EXPECT_EQ(Tokens(*tok, "abab"), (Strings{"ab", "ab"}));
  EXPECT_EQ(Tokens(*tok, "ababc"), (Strings{"ab", "a", "bc"}));
  EXPECT_EQ(Tokens(*tok, "cab"), (Strings{"c", "ab"}));
}

TEST(BpeTest, EqualRanksMergeLeftmostFirst) {
  Doc doc("a");
  doc.Merge("a", "a");
  auto tok = Load(doc);
  ASSERT_NE(tok, nullptr);
  EXPECT_EQ(Tokens(*tok, "aaa"), (Strings{"aa", "a"}));
  EXPECT_EQ(Tokens(*tok, "aaaaa"), (Strings{"aa", "aa", "a"}));
  doc.Merge("aa", "a");
  auto tok2 = Load(doc);
  ASSERT_NE(tok2, nullptr);
  EXPECT_EQ(Tokens(*tok2, "aaa"), (Strings{"aaa"}));
  // aa aa a -> (aa, a) at 2 is the only pair with a merge.
  EXPECT_EQ(Tokens(*tok2, "aaaaa"), (Strings{"aa", "aaa"}));
}

TEST(BpeTest, BothMergeFormatsAgree) {
  Doc pairs("abcd");
  pairs.Merge("c", "d").Merge("a", "b").Merge("ab", "cd");
  Doc strings = pairs;
  strings.model()["merges"] = json::array({"c d", "a b", "ab cd"});
  auto a = Load(pairs), b = Load(strings);
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  for (const char* text : {"abcd", "dcba", "abcdabcd", "aabbccdd"}) {
    EXPECT_EQ(a->Encode(text), b->Encode(text)) << text;
  }
  EXPECT_EQ(Tokens(*a, "abcd"), (Strings{"abcd"}));
}

// The textbook algorithm: merge the lowest-ranked adjacent pair, leftmost first, until none.
Strings NaiveBpe(const std::map<std::pair<std::string, std::string>, int>& ranks,
                 const std::string& word) {
  Strings symbols = Chars(word);
  for (;;) {
    int best = -1, best_rank = 0;
    for (size_t i = 0; i + 1 < symbols.size(); ++i) {
      auto it = ranks.find({symbols[i], symbols[i + 1]});
      if (it != ranks.end() && (best < 0 || it->second < best_rank)) {
        best = static_cast<int>(i);
        best_rank = it->second;
      }
    }
    if (best < 0) return symbols;
    symbols[best] += symbols[best + 1];
    symbols.erase(symbols.begin() + best + 1);
  }
}

TEST(BpeTest, ShortAndLongWordsMatchNaiveBpe) {
  std::mt19937 rng(20240611);
  Doc doc("abcd");
  std::vector<std::string> tokens = {"a", "b", "c", "d"};
  std::map<std::pair<std::string, std::string>, int> ranks;
  while (ranks.size() < 80) {
    const std::string& x = tokens[rng() % tokens.size()];
    const std::string& y = tokens[rng() % tokens.size()];
    if (x.size() + y.size() > 6 || ranks.count({x, y})) continue;
    const int rank = static_cast<int>(ranks.size());
    ranks[{x, y}] = rank;
    doc.Merge(x, y);
    tokens.push_back(x + y);
  }
  auto tok = Load(doc);
  ASSERT_NE(tok, nullptr);
  // Lengths on both sides of the model's switch from its rank scan to its heap (48 symbols).
  for (int trial = 0; trial < 400; ++trial) {
    const size_t length = 1 + rng() % (trial < 300 ? 60 : 1500);
    std::string word;
    for (size_t i = 0; i < length; ++i) word.push_back("abcd"[rng() % 4]);
    ASSERT_EQ(Tokens(*tok, word), NaiveBpe(ranks, word)) << word;
  }
}

// Long pieces are cut where no merge's halves meet (bpe.h): "x" and "y" start no merge's
// right half and end no left half here, but "yx" and "xa" are merges, so some cuts happen and
// some boundaries with x and y stay joinable. Against the naive BPE of the whole piece.
TEST(BpeTest, CutsAtUnmergeableBoundariesChangeNothing) {
  std::mt19937 rng(99);
  Doc doc("abcxy");
  std::vector<std::string> tokens = {"a", "b", "c"};
  std::map<std::pair<std::string, std::string>, int> ranks;
  auto merge = [&](const std::string& x, const std::string& y) {
    const int rank = static_cast<int>(ranks.size());
    ranks[{x, y}] = rank;
    doc.Merge(x, y);
    tokens.push_back(x + y);
  };
  merge("y", "x");
  merge("x", "a");
  while (ranks.size() < 60) {
    const std::string& x = tokens[rng() % tokens.size()];
    const std::string& y = tokens[rng() % tokens.size()];
    if (x.size() + y.size() <= 6 && !ranks.count({x, y})) merge(x, y);
  }
  auto tok = Load(doc);
  ASSERT_NE(tok, nullptr);
  for (int trial = 0; trial < 300; ++trial) {
    const size_t length = 1 + rng() % 400;
    std::string word;
    for (size_t i = 0; i < length; ++i) word.push_back("abcxyaabbcc"[rng() % 11]);
    ASSERT_EQ(Tokens(*tok, word), NaiveBpe(ranks, word)) << word;
  }
}

TEST(BpeTest, ByteFallbackThenUnkThenNothing) {
  Doc doc("ab");
  doc.Token("<0xC3>");
  doc.Token("<0xA9>");
  doc.model()["byte_fallback"] = true;
  doc["decoder"] =
      json{{"type", "Sequence"},
           {"decoders", json::array({json{{"type", "ByteFallback"}}, json{{"type", "Fuse"}}})}};
  auto tok = Load(doc);
  ASSERT_NE(tok, nullptr);
  EXPECT_EQ(Tokens(*tok, "a\u00e9b"), (Strings{"a", "<0xC3>", "<0xA9>", "b"}));
  EXPECT_EQ(tok->Decode(tok->Encode("a\u00e9b")), "a\u00e9b");
  // U+65E5's bytes (E6 97 A5) have no <0xNN> tokens and there is no unk: the reference drops it.
  EXPECT_EQ(Tokens(*tok, "a\u65e5b"), (Strings{"a", "b"}));
  doc.Token("<unk>");
  doc.model()["unk_token"] = "<unk>";
  auto with_unk = Load(doc);
  ASSERT_NE(with_unk, nullptr);
  EXPECT_EQ(Tokens(*with_unk, "a\u65e5b"), (Strings{"a", "<unk>", "b"}));
}

TEST(BpeTest, FuseUnkJoinsRunsAcrossPiecesNotAcrossAddedTokens) {
  Doc doc("ab");
  doc.Token("<unk>");
  doc.Added("<t>");
  doc.model()["unk_token"] = "<unk>";
  doc["pre_tokenizer"] = json{{"type", "WhitespaceSplit"}};
  auto plain = Load(doc);
  ASSERT_NE(plain, nullptr);
  EXPECT_EQ(Tokens(*plain, "axyb"), (Strings{"a", "<unk>", "<unk>", "b"}));
  doc.model()["fuse_unk"] = true;
  auto fused = Load(doc);
  ASSERT_NE(fused, nullptr);
  EXPECT_EQ(Tokens(*fused, "axyb"), (Strings{"a", "<unk>", "b"}));
  // The reference fuses over the model's whole input: the pieces "ax" and "yb" of one segment.
  EXPECT_EQ(Tokens(*fused, "ax yb"), (Strings{"a", "<unk>", "b"}));
  EXPECT_EQ(Tokens(*fused, "x<t>y"), (Strings{"<unk>", "<t>", "<unk>"}));
}

TEST(BpeTest, IgnoreMergesTakesWholeTokens) {
  Doc doc("helo");
  doc.Merge("l", "o").Merge("h", "e").Merge("he", "l");
  doc.Token("hello");
  auto merging = Load(doc);
  ASSERT_NE(merging, nullptr);
  EXPECT_EQ(Tokens(*merging, "hello"), (Strings{"hel", "lo"}));
  doc.model()["ignore_merges"] = true;
  auto ignoring = Load(doc);
  ASSERT_NE(ignoring, nullptr);
  EXPECT_EQ(Tokens(*ignoring, "hello"), (Strings{"hello"}));
  EXPECT_EQ(Tokens(*ignoring, "helo"), (Strings{"he", "lo"}));
}

// GPT-2's byte alphabet, written out independently of the module.
std::string AlphabetChar(int b) {
  int cp = b;
  if (!((b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF))) {
    int n = 0;
    for (int c = 0; c < b; ++c) {
      if (!((c >= '!' && c <= '~') || (c >= 0xA1 && c <= 0xAC) || (c >= 0xAE && c <= 0xFF))) ++n;
    }
    cp = 256 + n;
  }
  std::string out;
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
  return out;
}

Doc ByteLevelDoc() {
  Doc doc("");
  for (int b = 0; b < 256; ++b) doc.Token(AlphabetChar(b));
  doc.Merge("\u0120", "h").Merge("\u0120h", "i");
  doc["pre_tokenizer"] = json{{"type", "ByteLevel"},
                              {"add_prefix_space", false},
                              {"use_regex", true},
                              {"trim_offsets", false}};
  doc["decoder"] = json{{"type", "ByteLevel"}};
  return doc;
}

TEST(ByteLevelTest, BytesAreTokensOfTheAlphabet) {
  Doc doc = ByteLevelDoc();
  doc.Added("<|x|>");
  auto tok = Load(doc);
  ASSERT_NE(tok, nullptr);
  EXPECT_EQ(Tokens(*tok, " hi"), (Strings{"\u0120hi"}));
  EXPECT_EQ(Tokens(*tok, "hi\n"), (Strings{"h", "i", "\u010a"}));
  EXPECT_EQ(Tokens(*tok, "\u00e9"), (Strings{"\u00c3", "\u00a9"}));  // C3 A9
  for (const char* text : {"hi there", "\u00e9t\u00e9 \U0001F600", "a<|x|>b", "  \t\n "}) {
    EXPECT_EQ(tok->Decode(tok->Encode(text)), text);
  }
  // Half a character decodes to U+FFFD, also right before an added token (text passed as is).
  const int32_t c3 = *tok->TokenToId("\u00c3");
  const int32_t x = *tok->TokenToId("<|x|>");
  EXPECT_EQ(tok->Decode(std::vector<int32_t>{c3}), "\xEF\xBF\xBD");
  EXPECT_EQ(tok->Decode(std::vector<int32_t>{c3, x, c3}), "\xEF\xBF\xBD<|x|>\xEF\xBF\xBD");
  EXPECT_EQ(tok->IdToToken(*tok->TokenToId("\u0120hi")), "\u0120hi");
}

TEST(ByteLevelTest, AddPrefixSpace) {
  Doc doc = ByteLevelDoc();
  doc["pre_tokenizer"]["add_prefix_space"] = true;
  auto tok = Load(doc);
  ASSERT_NE(tok, nullptr);
  EXPECT_EQ(Tokens(*tok, "hi"), (Strings{"\u0120hi"}));
  EXPECT_EQ(Tokens(*tok, " hi"), (Strings{"\u0120hi"}));
}

TEST(AddedTokensTest, LeftmostLongestBeforeEverythingElse) {
  Doc doc("abc<>");
  doc.Added("<a>").Added("<ab>");
  doc.Merge("<", "a");
  auto tok = Load(doc);
  ASSERT_NE(tok, nullptr);
  EXPECT_EQ(Tokens(*tok, "a<a>b<ab>c<abc"),
            (Strings{"a", "<a>", "b", "<ab>", "c", "<a", "b", "c"}));
  EXPECT_EQ(Tokens(*tok, "<ab><a>"), (Strings{"<ab>", "<a>"}));
}

TEST(AddedTokensTest, LstripAndRstripTrimJsWhitespace) {
  Doc doc("xyz ");
  doc.Added("[L]", true, {{"lstrip", true}}).Added("[R]", true, {{"rstrip", true}});
  auto tok = Load(doc);
  ASSERT_NE(tok, nullptr);
  EXPECT_EQ(Tokens(*tok, "x [L] y [R] z"), (Strings{"x", "[L]", " ", "y", " ", "[R]", "z"}));
  // U+3000 and U+00A0 are JavaScript whitespace.
  EXPECT_EQ(Tokens(*tok, "x\u3000\t [L]"), (Strings{"x", "[L]"}));
  EXPECT_EQ(Tokens(*tok, "[R]\u00a0 z"), (Strings{"[R]", "z"}));
}

TEST(AddedTokensTest, SingleWordNeedsWordBoundaries) {
  Doc doc("abc ");
  doc.Added("ab", false, {{"single_word", true}});
  auto tok = Load(doc);
  ASSERT_NE(tok, nullptr);
  const std::string ab = std::string(tok->IdToToken(1000));
  EXPECT_EQ(Tokens(*tok, "ab"), (Strings{ab}));
  EXPECT_EQ(Tokens(*tok, "c ab c"), (Strings{"c", " ", ab, " ", "c"}));
  EXPECT_EQ(Tokens(*tok, "abc"), (Strings{"a", "b", "c"}));
  EXPECT_EQ(Tokens(*tok, "cab"), (Strings{"c", "a", "b"}));
}

TEST(AddedTokensTest, NormalizedTokensMatchTheNormalizedText) {
  Doc doc("helotr ");
  doc["normalizer"] = json{{"type", "Lowercase"}};
  doc.Added("Hello", false, {{"normalized", true}});
  auto tok = Load(doc);
  ASSERT_NE(tok, nullptr);
  EXPECT_EQ(Tokens(*tok, "HELLO there Hello"),
            (Strings{"Hello", " ", "t", "h", "e", "r", "e", " ", "Hello"}));
}

// The reference checks whether a whole segment is an added token's content or normalized
// content before normalizing it: with Prepend("_") normalizing "foo" to "_foo", the segment
// "_foo" is the token, not "_" + "_foo".
TEST(AddedTokensTest, AWholeSegmentSpellingANormalizedContentIsTheToken) {
  Doc doc("_fo<>");
  doc["normalizer"] = json{{"type", "Prepend"}, {"prepend", "_"}};
  doc.Added("foo", false, {{"normalized", true}});
  doc.Added("<s>");
  auto tok = Load(doc);
  ASSERT_NE(tok, nullptr);
  EXPECT_EQ(Tokens(*tok, "<s>_foo"), (Strings{"<s>", "foo"}));
  EXPECT_EQ(Tokens(*tok, "<s>foo"), (Strings{"<s>", "foo"}));
  EXPECT_EQ(Tokens(*tok, "<s>ofoo"), (Strings{"<s>", "_", "o", "f", "o", "o"}));
}

TEST(SpecialTokensTest, SkipSpecialAndAdditionalSpecialTokens) {
  Doc doc("ab.");
  doc.Added("<s>").Added("<t>", /*special=*/false);
  auto tok = Load(doc, json{{"clean_up_tokenization_spaces", false}});
  ASSERT_NE(tok, nullptr);
  const std::vector<int32_t> ids = tok->Encode("<s>a<t>.");
  EXPECT_EQ(tok->Decode(ids), "<s> a <t> .");  // no decoder: tokens joined with ' '
  EXPECT_EQ(tok->Decode(ids, /*skip_special_tokens=*/true), "a <t> .");
  EXPECT_TRUE(tok->IsSpecial(1000));
  EXPECT_FALSE(tok->IsSpecial(1001));
  auto more = Load(doc, json{{"additional_special_tokens", {"<t>"}}});
  ASSERT_NE(more, nullptr);
  EXPECT_TRUE(more->IsSpecial(1001));
  // clean_up_tokenization_spaces defaults to true, as in the reference: " ." -> ".".
  EXPECT_EQ(more->Decode(ids), "<s> a <t>.");
  EXPECT_EQ(more->Decode(ids, true), "a.");
  // Ids outside the vocabulary are skipped.
  EXPECT_EQ(more->Decode(std::vector<int32_t>{-1, 0, 5000, 1}), "a b");
}

TEST(PostProcessorTest, TemplateAddsSpecialTokens) {
  Doc doc("ab");
  doc.Added("<s>").Added("</s>");
  doc["post_processor"] =
      json{{"type", "TemplateProcessing"},
           {"single", json::array({json{{"SpecialToken", {{"id", "<s>"}, {"type_id", 0}}}},
                                   json{{"Sequence", {{"id", "A"}, {"type_id", 0}}}},
                                   json{{"SpecialToken", {{"id", "</s>"}, {"type_id", 0}}}}})},
           {"pair", json::array()},
           {"special_tokens", json::object()}};
  auto tok = Load(doc);
  ASSERT_NE(tok, nullptr);
  EXPECT_EQ(Tokens(*tok, "ab", true), (Strings{"<s>", "a", "b", "</s>"}));
  EXPECT_EQ(Tokens(*tok, "ab", false), (Strings{"a", "b"}));
  EXPECT_EQ(Tokens(*tok, "", true), (Strings{"<s>", "</s>"}));
}

TEST(MetaspaceTest, PrependSchemeFirstCountsAddedTokenSections) {
  Doc doc("\u2581helowrdx<>");
  doc.Added("<x>");
  doc["pre_tokenizer"] = json{{"type", "Metaspace"},
                              {"replacement", "\u2581"},
                              {"prepend_scheme", "first"},
                              {"split", false}};
  doc["decoder"] = json{{"type", "Metaspace"}, {"replacement", "\u2581"}};
  auto first = Load(doc);
  ASSERT_NE(first, nullptr);
  const std::string m = "\u2581";
  EXPECT_EQ(Tokens(*first, "he<x>we <x> x"),
            (Strings{m, "h", "e", "<x>", "w", "e", m, "<x>", m, "x"}));
  EXPECT_EQ(Tokens(*first, "<x>he"), (Strings{"<x>", "h", "e"}));  // "he" is section 1
  doc["pre_tokenizer"]["prepend_scheme"] = "always";
  auto always = Load(doc);
  ASSERT_NE(always, nullptr);
  EXPECT_EQ(Tokens(*always, "<x>he"), (Strings{"<x>", m, "h", "e"}));
  EXPECT_EQ(always->Decode(always->Encode("he we")), "he we");
}

TEST(EncodeTest, InvalidUtf8IsEncodedAsItsLossyConversion) {
  Doc doc("ab\ufffd");
  auto tok = Load(doc);
  ASSERT_NE(tok, nullptr);
  EXPECT_EQ(Tokens(*tok,
                   "a\xFF"
                   "b"),
            (Strings{"a", "\ufffd", "b"}));
  // E0 80: 0x80 cannot follow E0, so E0 alone is one maximal subpart and 80 another.
  EXPECT_EQ(Tokens(*tok, "\xE0\x80"), (Strings{"\ufffd", "\ufffd"}));
  EXPECT_EQ(Tokens(*tok, "\xE1\x80"), (Strings{"\ufffd"}));  // a truncated sequence: one
  EXPECT_TRUE(tok->Encode("").empty());
}

TEST(ConfigTest, SpecialTokensAndChatFamily) {
  Doc doc("ab");
  doc.Added("<s>").Added("</s>");
  auto tok = Load(doc, json{{"bos_token", "<s>"},
                            {"eos_token", {{"content", "</s>"}, {"lstrip", false}}},
                            {"pad_token", nullptr},
                            {"model_max_length", 1e30},
                            {"chat_template", "{% for m in messages %}<|im_start|>...<|im_end|>"}});
  ASSERT_NE(tok, nullptr);
  EXPECT_EQ(tok->special_tokens().bos_id, 1000);
  EXPECT_EQ(tok->special_tokens().bos, "<s>");
  EXPECT_EQ(tok->special_tokens().eos_id, 1001);
  EXPECT_EQ(tok->special_tokens().pad_id, -1);
  EXPECT_EQ(tok->special_tokens().unk_id, -1);
  EXPECT_EQ(tok->chat_family(), ChatFamily::kChatML);
  EXPECT_EQ(tok->chat_template_error(), "");
  auto mistral = Load(doc, json{{"chat_template", "{{ bos_token }}[INST] x [/INST]"}});
  ASSERT_NE(mistral, nullptr);
  EXPECT_EQ(mistral->chat_family(), ChatFamily::kMistral);
  auto other = Load(doc, json{{"chat_template", "{{ messages }}"}});
  ASSERT_NE(other, nullptr);
  EXPECT_EQ(other->chat_family(), ChatFamily::kNone);
  EXPECT_NE(other->chat_template_error(), "");
  auto none = Load(doc);
  ASSERT_NE(none, nullptr);
  EXPECT_EQ(none->chat_family(), ChatFamily::kNone);
  EXPECT_EQ(none->chat_template_error(), "");
  // An integer too large for 64 bits (Mistral's model_max_length) reads as JSON.parse reads it.
  auto big = Tokenizer::FromJson(
      doc.Text(), R"({"model_max_length": 1000000000000000019884624838656})", "test");
  EXPECT_TRUE(big.ok()) << big.status().ToString();
}

TEST(EncodeTest, ConcurrentEncodeGivesTheSameIds) {
  std::mt19937 rng(7);
  Doc doc("abcdefgh ");
  std::vector<std::string> tokens = {"a", "b", "c", "d", "e", "f", "g", "h"};
  for (int i = 0; i < 200; ++i) {
    const std::string x = tokens[rng() % tokens.size()], y = tokens[rng() % tokens.size()];
    if (x.size() + y.size() > 8) continue;
    doc.Merge(x, y);
    tokens.push_back(x + y);
  }
  doc["pre_tokenizer"] = json{{"type", "WhitespaceSplit"}};
  std::vector<std::string> texts;
  for (int i = 0; i < 300; ++i) {
    std::string text;
    for (int w = 0; w < 50; ++w) {
      const size_t length = 1 + rng() % 30;
      for (size_t k = 0; k < length; ++k) text.push_back("abcdefgh"[rng() % 8]);
      text.push_back(' ');
    }
    texts.push_back(text);
  }
  auto reference = Load(doc), shared = Load(doc);
  ASSERT_NE(shared, nullptr);
  std::vector<std::vector<int32_t>> expected;
  for (const std::string& text : texts) expected.push_back(reference->Encode(text));
  std::vector<std::thread> threads;
  std::vector<int> mismatches(8, 0);
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int round = 0; round < 3; ++round) {
        for (size_t i = 0; i < texts.size(); ++i) {
          const size_t k = (i * 7 + t * 31 + round) % texts.size();
          if (shared->Encode(texts[k]) != expected[k]) ++mismatches[t];
        }
      }
    });
  }
  for (auto& thread : threads) thread.join();
  for (int t = 0; t < 8; ++t) EXPECT_EQ(mismatches[t], 0) << "thread " << t;
}

}  // namespace
}  // namespace emoe::tokenizer::testing
