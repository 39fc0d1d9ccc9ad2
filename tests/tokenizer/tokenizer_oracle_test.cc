// tests/tokenizer/tokenizer_oracle_test.cc: our tokenizers against the reference implementation
// (@huggingface/tokenizers, pinned in tests/tokenizer/node/package-lock.json) on the oracle
// corpus (tests/tokenizer/node/corpus.mjs: 11,463 strings in 16 categories), for both real
// vocabularies (Qwen3's byte-level BPE, the Mistral-family SentencePiece-style BPE).
//
// The goldens come from the CTest fixture tokenizer_golden (tests/tokenizer/golden.sh) in the
// build tree: EMOE_TOKENIZER_GOLDEN (the environment variable, else the compile definition)
// names their folder. The tests skip, saying why, when the goldens or the vocabularies are
// absent (no node, or scripts/fetch_tokenizers.sh not run); malformed goldens or a vocabulary
// that does not load fail.
//
// Checks, per vocabulary:
//   Encode:          Encode(text) == the reference's ids, with and without special tokens;
//   Decode:          Decode(reference ids) == the reference's text, special tokens kept and
//                    skipped (so decoding is tested independently of encoding);
//   RoundTrip:       Decode(Encode(text)) == text wherever the reference round-trips;
//   StreamingEveryPrefix: an IncrementalDecoder fed the reference ids one at a time (no
//                    prompt): after every id (of all but the longest strings: see
//                    kAllPrefixes), what it emitted + Finish() of a copy == Decode(the ids so
//                    far); every piece is valid UTF-8; the same with skip_special_tokens for
//                    the whole stream;
//   StreamingAfterPrompt: the ids split into a prompt and a continuation at a few points: the
//                    continuation's stream == the full text after the prompt's text.
// A failure prints, per check, how many strings differ per category and the first few: the
// string (escaped), ours and the reference's, and the first differing position.
#include <gtest/gtest.h>

#include <cstdlib>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <type_traits>
#include <vector>

#include "oracle_golden.h"
#include "tokenizer/streaming.h"
#include "tokenizer/tokenizer.h"

namespace emoe::tokenizer::testing {
namespace {

// Copying a decoder mid-stream and finishing the copy is how every prefix is checked.
static_assert(std::is_copy_constructible_v<IncrementalDecoder>,
              "the oracle test finishes a copy of the decoder after every id");

// Every prefix of a string of up to kAllPrefixes ids is checked; of a longer one (the ~60
// longest, in long_runs), the first kSomePrefixes, kSomePrefixes more evenly spaced and the
// whole: every prefix of an 8,000-id string would be 8,000 decodes of up to 8,000 ids each.
constexpr size_t kAllPrefixes = 1024;
constexpr size_t kSomePrefixes = 256;

std::string GoldenDir() {
  const char* env = std::getenv("EMOE_TOKENIZER_GOLDEN");
  return env != nullptr && *env != '\0' ? env : EMOE_TOKENIZER_GOLDEN;
}

// One vocabulary with its goldens, loaded once per process.
struct Vocab {
  std::unique_ptr<Tokenizer> tokenizer;
  std::vector<GoldenCase> cases;
  std::string skip;   // why the tests skip ("" when they run)
  std::string error;  // why they fail ("" when loaded)
};

const Vocab& GetVocab(const std::string& name) {
  static auto* const cache = new std::map<std::string, Vocab>();
  auto it = cache->find(name);
  if (it != cache->end()) return it->second;
  Vocab& v = (*cache)[name];
  const std::string golden = GoldenDir() + "/golden_" + name + ".jsonl";
  const std::string data = std::string(EMOE_TOKENIZER_DATA) + "/" + name;
  if (!Tokenizer::DirectoryHasTokenizer(data)) {
    v.skip = data + " has no tokenizer.json: run scripts/fetch_tokenizers.sh";
    return v;
  }
  if (std::ifstream(golden).fail()) {
    v.skip = golden + " is absent: the fixture test tokenizer_golden writes it (it needs node " +
             "and scripts/fetch_tokenizers.sh); run ctest -R tokenizer_oracle";
    return v;
  }
  if (!ReadGoldens(golden, &v.cases, &v.error)) return v;
  auto tok = Tokenizer::Load(data);
  if (!tok.ok()) {
    v.error = "load " + data + ": " + tok.status().ToString();
    return v;
  }
  v.tokenizer = std::move(tok).value();
  return v;
}

class OracleTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    const Vocab& v = GetVocab(GetParam());
    if (!v.skip.empty()) GTEST_SKIP() << v.skip;
    ASSERT_EQ(v.error, "");
    tok_ = v.tokenizer.get();
    cases_ = &v.cases;
  }
  // A mismatch of ids: the string, both id lists around the first difference.
  std::string IdsDetail(const GoldenCase& c, std::span<const int32_t> ours,
                        std::span<const int32_t> reference) const {
    const size_t at = FirstDifference(ours, reference);
    return Escape(c.text) + "\n      first difference at id " + std::to_string(at) +
           "\n      ours:      " + IdsAround(*tok_, ours, at) +
           "\n      reference: " + IdsAround(*tok_, reference, at);
  }
  static void Expect(const MismatchLog& log) {
    EXPECT_GT(log.checked(), 0u);
    EXPECT_EQ(log.mismatches(), 0u) << log.Report();
  }

  const Tokenizer* tok_ = nullptr;
  const std::vector<GoldenCase>* cases_ = nullptr;
};

// The corpus is the one the issue asks for: >= 10,000 strings of every category.
TEST_P(OracleTest, CorpusCoversEveryCategory) {
  EXPECT_GE(cases_->size(), 10000u);
  std::map<std::string, size_t> counts;
  size_t roundtrips = 0;
  for (const GoldenCase& c : *cases_) {
    ++counts[c.category];
    roundtrips += c.roundtrip;
  }
  for (const char* category : {"english", "code", "cjk", "arabic", "hindi", "emoji", "combining",
                               "invalid_looking", "special_tokens", "long_runs", "contractions",
                               "mixed", "whitespace", "random_unicode", "single", "empty"}) {
    EXPECT_GT(counts[category], 0u) << category;
  }
  // Most strings round-trip through the reference (the rest: NFC, Mistral's added spaces).
  EXPECT_GT(roundtrips, cases_->size() * 8 / 10);
}

TEST_P(OracleTest, EncodeMatchesReference) {
  MismatchLog plain("Encode(text, add_special_tokens=false) vs reference ids");
  MismatchLog special("Encode(text, add_special_tokens=true) vs reference ids_special");
  for (const GoldenCase& c : *cases_) {
    const std::vector<int32_t> ours = tok_->Encode(c.text, false);
    plain.Checked(c.category);
    if (ours != c.ids) plain.Mismatch(c.category, IdsDetail(c, ours, c.ids));
    const std::vector<int32_t> ours_special = tok_->Encode(c.text, true);
    special.Checked(c.category);
    if (ours_special != c.ids_special) {
      special.Mismatch(c.category, IdsDetail(c, ours_special, c.ids_special));
    }
  }
  Expect(plain);
  Expect(special);
}

TEST_P(OracleTest, DecodeMatchesReference) {
  MismatchLog kept("Decode(reference ids) vs reference decoded");
  MismatchLog skipped("Decode(reference ids, skip_special_tokens) vs reference decoded_skip");
  for (const GoldenCase& c : *cases_) {
    const std::string ours = tok_->Decode(c.ids, false);
    kept.Checked(c.category);
    if (ours != c.decoded) {
      kept.Mismatch(c.category, Escape(c.text) + "\n      " + TextDiff(ours, c.decoded));
    }
    const std::string ours_skip = tok_->Decode(c.ids, true);
    skipped.Checked(c.category);
    if (ours_skip != c.decoded_skip) {
      skipped.Mismatch(c.category,
                       Escape(c.text) + "\n      " + TextDiff(ours_skip, c.decoded_skip));
    }
  }
  Expect(kept);
  Expect(skipped);
}

TEST_P(OracleTest, RoundTripWhereReferenceDoes) {
  MismatchLog log("Decode(Encode(text)) vs text, where the reference round-trips");
  for (const GoldenCase& c : *cases_) {
    if (!c.roundtrip) continue;
    log.Checked(c.category);
    const std::string back = tok_->Decode(tok_->Encode(c.text, false), false);
    if (back != c.text)
      log.Mismatch(c.category, Escape(c.text) + "\n      " + TextDiff(back, c.text));
  }
  Expect(log);
}

// Whether prefix length k (1..n) of an n-id string is checked (see kAllPrefixes).
bool CheckPrefix(size_t k, size_t n) {
  return n <= kAllPrefixes || k <= kSomePrefixes || k == n || k % (n / kSomePrefixes) == 0;
}

// Streams `c.ids` through one decoder; the first problem found, or "".
std::string StreamEveryPrefix(const Tokenizer& tok, const GoldenCase& c) {
  const std::span<const int32_t> ids(c.ids);
  IncrementalDecoder dec(tok, {}, /*skip_special_tokens=*/false);
  std::string emitted;
  for (size_t k = 1; k <= ids.size(); ++k) {
    const std::string piece = dec.Add(ids[k - 1]);
    if (!IsValidUtf8(piece)) {
      return "Add(id " + std::to_string(k - 1) + ") returned invalid UTF-8 " + Escape(piece);
    }
    emitted += piece;
    if (!CheckPrefix(k, ids.size())) continue;
    IncrementalDecoder copy = dec;
    const std::string streamed = emitted + copy.Finish();
    const std::string full = tok.Decode(ids.first(k), false);
    if (streamed != full) {
      return "after " + std::to_string(k) + " of " + std::to_string(ids.size()) +
             " ids: " + TextDiff(streamed, full, "streamed", "Decode(those ids)");
    }
  }
  if (dec.generated() != ids.size()) return "generated() is " + std::to_string(dec.generated());
  return "";
}

TEST_P(OracleTest, StreamingEveryPrefixEqualsDecode) {
  MismatchLog log("IncrementalDecoder (no prompt) after every id vs Decode of the ids so far");
  MismatchLog skip("IncrementalDecoder (skip_special_tokens) vs Decode(ids, skip_special_tokens)");
  for (const GoldenCase& c : *cases_) {
    log.Checked(c.category);
    const std::string problem = StreamEveryPrefix(*tok_, c);
    if (!problem.empty()) log.Mismatch(c.category, Escape(c.text) + "\n      " + problem);

    IncrementalDecoder dec(*tok_, {}, /*skip_special_tokens=*/true);
    std::string streamed;
    for (int32_t id : c.ids) streamed += dec.Add(id);
    streamed += dec.Finish();
    const std::string full = tok_->Decode(c.ids, true);
    skip.Checked(c.category);
    if (streamed != full)
      skip.Mismatch(c.category,
                    Escape(c.text) + "\n      " + TextDiff(streamed, full, "streamed", "Decode"));
  }
  Expect(log);
  Expect(skip);
}

TEST_P(OracleTest, StreamingAfterPromptEqualsDecodeTail) {
  MismatchLog log(
      "IncrementalDecoder(prompt = ids[0, p)) fed ids[p, n) vs Decode(ids) after "
      "Decode(prompt)");
  size_t splits = 0;
  for (const GoldenCase& c : *cases_) {
    const size_t n = c.ids.size();
    if (n < 2) continue;
    const std::string full = tok_->Decode(c.ids, false);
    std::set<size_t> points = {1, n / 4, n / 2, 3 * n / 4, n - 1};
    bool checked = false;
    for (size_t p : points) {
      if (p == 0 || p >= n) continue;
      const std::span<const int32_t> ids(c.ids);
      const std::string prompt_text = tok_->Decode(ids.first(p), false);
      // The tail is defined only where the prompt's text is a prefix of the whole text (not
      // where the split cuts a character's bytes, or a context-dependent decoder differs).
      if (full.compare(0, prompt_text.size(), prompt_text) != 0) continue;
      checked = true;
      ++splits;
      IncrementalDecoder dec(*tok_, ids.first(p), /*skip_special_tokens=*/false);
      std::string streamed;
      for (int32_t id : ids.subspan(p)) streamed += dec.Add(id);
      streamed += dec.Finish();
      const std::string want = full.substr(prompt_text.size());
      if (streamed != want) {
        log.Mismatch(c.category, Escape(c.text) + "\n      prompt " + std::to_string(p) + " of " +
                                     std::to_string(n) + " ids: " +
                                     TextDiff(streamed, want, "streamed", "Decode after prompt"));
        break;
      }
    }
    if (checked) log.Checked(c.category);
  }
  EXPECT_GT(splits, cases_->size());  // most strings have several usable split points
  Expect(log);
}

INSTANTIATE_TEST_SUITE_P(Vocabularies, OracleTest, ::testing::Values("qwen3", "mistral"),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           return info.param;
                         });

}  // namespace
}  // namespace emoe::tokenizer::testing
