// Tokenizer on the real vocabularies (data/tokenizers/{qwen3,mistral}, fetched by
// scripts/fetch_tokenizers.sh): a handful of strings whose ids were taken from the reference,
// @huggingface/tokenizers 0.2.0 under node (Tokenizer(tokenizer.json, tokenizer_config.json)
// .encode(text, {add_special_tokens}).ids), the round trip, the files' special tokens and chat
// families, and concurrent Encode. Skips, naming the script, when the data is absent. The full
// oracle (10,000 strings) is tokenizer_oracle_test.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <string>
#include <thread>
#include <vector>

#include "tokenizer/tokenizer.h"

namespace emoe::tokenizer {
namespace {

std::string DataDir(const char* family) { return std::string(EMOE_TOKENIZER_DATA) + "/" + family; }

bool HaveData(const char* family) {
  struct stat st;
  return ::stat((DataDir(family) + "/tokenizer.json").c_str(), &st) == 0;
}

#define REQUIRE_DATA(family)                                                      \
  if (!HaveData(family)) {                                                        \
    GTEST_SKIP() << DataDir(family) << "/tokenizer.json is absent: run "          \
                 << "scripts/fetch_tokenizers.sh to fetch the real vocabularies"; \
  }

struct Case {
  const char* text;
  std::vector<int32_t> ids;          // add_special_tokens = false
  std::vector<int32_t> special_ids;  // add_special_tokens = true
  const char* decoded = nullptr;     // the reference's Decode(ids) when it is not `text`
};

void CheckCases(const Tokenizer& tok, const std::vector<Case>& cases) {
  for (const Case& c : cases) {
    EXPECT_EQ(tok.Encode(c.text, false), c.ids) << c.text;
    EXPECT_EQ(tok.Encode(c.text, true), c.special_ids) << c.text;
    EXPECT_EQ(tok.Decode(c.ids), c.decoded ? c.decoded : c.text) << c.text;
  }
}

TEST(RealVocabularyTest, Qwen3MatchesTheReference) {
  REQUIRE_DATA("qwen3");
  auto tok = Tokenizer::Load(DataDir("qwen3"));
  ASSERT_TRUE(tok.ok()) << tok.status().ToString();
  const std::vector<int32_t> none;
  CheckCases(**tok, {
                        {"Hello world", {9707, 1879}, {9707, 1879}},
                        {"def f(x):\n\treturn  x\n",
                         {750, 282, 2075, 982, 853, 220, 856, 198},
                         {750, 282, 2075, 982, 853, 220, 856, 198}},
                        {"\u65e5\u672c\u8a9e\u306e\u30c6\u30ad\u30b9\u30c8",
                         {101059, 102819, 15767, 56833, 61803, 70534},
                         {101059, 102819, 15767, 56833, 61803, 70534}},
                        {"\U0001F468\u200d\U0001F469\u200d\U0001F467 ok",
                         {145367, 378, 235, 145233, 378, 235, 145665, 5394},
                         {145367, 378, 235, 145233, 378, 235, 145665, 5394}},
                        {"<|im_start|>user\nhi<|im_end|>\n",
                         {151644, 872, 198, 6023, 151645, 198},
                         {151644, 872, 198, 6023, 151645, 198}},
                        {"<s>[INST] hi [/INST]",
                         {44047, 30768, 64462, 60, 15588, 64928, 64462, 60},
                         {44047, 30768, 64462, 60, 15588, 64928, 64462, 60}},
                        {"don't I'M", {15007, 944, 358, 27603}, {15007, 944, 358, 27603}},
                        {"", none, none},
                    });
  // NFC: "e" + U+0301 encodes as U+00E9 (so it decodes as the composed form).
  EXPECT_EQ((*tok)->Encode("e\u0301 caf\u00e9"), (std::vector<int32_t>{963, 51950}));
  EXPECT_EQ((*tok)->vocab_size(), 151669);
  EXPECT_EQ((*tok)->special_tokens().eos, "<|im_end|>");
  EXPECT_EQ((*tok)->special_tokens().eos_id, 151645);
  EXPECT_EQ((*tok)->special_tokens().pad_id, 151643);
  EXPECT_EQ((*tok)->special_tokens().bos_id, -1);
  EXPECT_EQ((*tok)->chat_family(), ChatFamily::kChatML);
  EXPECT_TRUE((*tok)->IsSpecial(151644));
  EXPECT_FALSE((*tok)->IsSpecial(151667));  // <think> is an added token, not special
  EXPECT_EQ((*tok)->Decode(std::vector<int32_t>{151644, 872, 151645}, true), "user");
  EXPECT_EQ((*tok)->description(),
            "byte-level BPE (151643 tokens, 151387 merges, 26 added tokens, NFC, "
            "Sequence[Split Regex, ByteLevel])");
}

TEST(RealVocabularyTest, MistralMatchesTheReference) {
  REQUIRE_DATA("mistral");
  // Load also takes the path of the tokenizer.json itself.
  auto tok = Tokenizer::Load(DataDir("mistral") + "/tokenizer.json");
  ASSERT_TRUE(tok.ok()) << tok.status().ToString();
  CheckCases(
      **tok,
      {
          {"Hello world", {22557, 1526}, {1, 22557, 1526}},
          {"def f(x):\n\treturn  x\n",
           {801, 285, 28732, 28744, 1329, 13, 12, 807, 28705, 1318, 13},
           {1, 801, 285, 28732, 28744, 1329, 13, 12, 807, 28705, 1318, 13}},
          {"\u65e5\u672c\u8a9e\u306e\u30c6\u30ad\u30b9\u30c8",
           {28705, 29142, 29119, 30321, 28993, 29610, 29753, 29109, 29123},
           {1, 28705, 29142, 29119, 30321, 28993, 29610, 29753, 29109, 29123}},
          {"\U0001F468\u200d\U0001F469\u200d\U0001F467 ok",  // byte fallback
           {28705, 243, 162, 148, 171, 29274, 243, 162, 148, 172, 29274, 243, 162, 148, 170, 3614},
           {1, 28705, 243, 162, 148, 171, 29274, 243, 162, 148, 172, 29274, 243, 162, 148, 170,
            3614}},
          {"<s>[INST] hi [/INST]",
           {1, 733, 16289, 28793, 12014, 733, 28748, 16289, 28793},
           {1, 1, 733, 16289, 28793, 12014, 733, 28748, 16289, 28793},
           "<s> [INST] hi [/INST]"},  // "[" after <s> is "\u2581[": a space
          {"don't I'M",
           {949, 28742, 28707, 315, 28742, 28755},
           {1, 949, 28742, 28707, 315, 28742, 28755}},
          {"", {}, {1}},
      });
  EXPECT_EQ((*tok)->vocab_size(), 32000);
  EXPECT_EQ((*tok)->special_tokens().bos_id, 1);
  EXPECT_EQ((*tok)->special_tokens().eos_id, 2);
  EXPECT_EQ((*tok)->special_tokens().unk_id, 0);
  EXPECT_EQ((*tok)->chat_family(), ChatFamily::kNone);  // this config has no chat_template
  // The reference's ByteFallback decodes each run of byte tokens with a TextDecoder that drops
  // a leading byte-order mark: <0xEF><0xBB><0xBF> then "0".
  EXPECT_EQ((*tok)->Decode(std::vector<int32_t>{0xEF + 3, 0xBB + 3, 0xBF + 3, 0x30 + 3}), "0");
  EXPECT_EQ((*tok)->Decode(std::vector<int32_t>{264, 0xEF + 3, 0xBB + 3, 264}), "a\xEF\xBF\xBD a");
}

TEST(RealVocabularyTest, ConcurrentEncodeOnQwen3) {
  REQUIRE_DATA("qwen3");
  auto tok = Tokenizer::Load(DataDir("qwen3"));
  ASSERT_TRUE(tok.ok()) << tok.status().ToString();
  std::vector<std::string> texts;
  for (int i = 0; i < 200; ++i) {
    texts.push_back("line " + std::to_string(i * 7919) + ": the quick brown fox " +
                    std::string(i % 17, ' ') + "jumps\tover\u65e5\u672c " + std::to_string(i) +
                    "x" + std::string(i % 5, 'z'));
  }
  std::vector<std::vector<int32_t>> expected;
  for (const auto& text : texts) expected.push_back((*tok)->Encode(text));
  std::vector<std::thread> threads;
  std::vector<int> bad(4, 0);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (size_t i = 0; i < texts.size() * 5; ++i) {
        const size_t k = (i * 13 + t) % texts.size();
        if ((*tok)->Encode(texts[k]) != expected[k]) ++bad[t];
      }
    });
  }
  for (auto& thread : threads) thread.join();
  for (int t = 0; t < 4; ++t) EXPECT_EQ(bad[t], 0);
}

}  // namespace
}  // namespace emoe::tokenizer
