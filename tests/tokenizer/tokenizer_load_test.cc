// Refused tokenizer.json / tokenizer_config.json documents (tokenizer/tokenizer.h): each is a
// clear error naming the file, the JSON path and the problem, never a crash. A valid document
// is broken one field at a time (wrong types at each field, unknown component names, options
// not implemented, merges naming unknown tokens, ids out of range or repeated), truncated at
// every byte, and loaded from files that are not there.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "tokenizer/tokenizer.h"
#include "tokenizer_test_util.h"

namespace emoe::tokenizer::testing {
namespace {

using vmm::StatusCode;

// Every field kind the loader reads, valid.
json BaseDocument() {
  Doc doc("abc <>s/");
  doc.Merge("a", "b").Merge("ab", "c");
  doc.Added("<s>").Added("</s>");
  doc["normalizer"] = json::parse(R"({"type": "Sequence", "normalizers": [{"type": "NFC"},
      {"type": "Replace", "pattern": {"String": " "}, "content": "_"}]})");
  doc["pre_tokenizer"] = json::parse(R"({"type": "Sequence", "pretokenizers": [
      {"type": "Split", "pattern": {"Regex": "\\s+"}, "behavior": "Isolated", "invert": false}]})");
  doc["decoder"] = json::parse(R"({"type": "Sequence", "decoders": [
      {"type": "Replace", "pattern": {"String": "_"}, "content": " "}, {"type": "ByteFallback"},
      {"type": "Fuse"}, {"type": "Strip", "content": " ", "start": 1, "stop": 0}]})");
  doc["post_processor"] = json::parse(R"({"type": "TemplateProcessing",
      "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
      "pair": [], "special_tokens": {}})");
  return json::parse(doc.Text());
}

json BaseConfig() {
  return json{{"bos_token", "<s>"},
              {"eos_token", {{"content", "</s>"}}},
              {"clean_up_tokenization_spaces", false},
              {"chat_template", "[INST] x [/INST]"}};
}

struct Broken {
  const char* pointer;  // the field changed (JSON pointer); "" for the whole document
  json value;           // its new value; a discarded json removes the field
  const char* message;  // a part of the expected message
};

vmm::Status LoadStatus(const json& doc, const json& config) {
  auto tok = Tokenizer::FromJson(doc.dump(), config.dump(), "test/tokenizer.json");
  return tok.ok() ? vmm::Status::Ok() : tok.status();
}

void ExpectRefused(const json& base, const json& config, bool in_config,
                   const std::vector<Broken>& cases) {
  for (const Broken& c : cases) {
    json doc = base, cfg = config;
    json& target = in_config ? cfg : doc;
    if (c.value.is_discarded()) {
      json::json_pointer ptr(c.pointer);
      target[ptr.parent_pointer()].erase(ptr.back());
    } else {
      target[json::json_pointer(c.pointer)] = c.value;
    }
    const vmm::Status status = LoadStatus(doc, cfg);
    EXPECT_FALSE(status.ok()) << c.pointer << " = " << c.value.dump();
    EXPECT_EQ(status.code(), StatusCode::kInvalidArgument) << status.ToString();
    EXPECT_NE(status.message().find(c.message), std::string::npos)
        << c.pointer << ": got \"" << status.message() << "\", want \"" << c.message << "\"";
    const char* file =
        in_config ? "tokenizer_config.json of test/tokenizer.json: " : "test/tokenizer.json: ";
    EXPECT_EQ(status.message().rfind(file, 0), 0u) << status.message();
  }
}

const json kRemove = json(json::value_t::discarded);

TEST(TokenizerLoadTest, TheBaseDocumentLoads) {
  const vmm::Status status = LoadStatus(BaseDocument(), BaseConfig());
  EXPECT_TRUE(status.ok()) << status.ToString();
}

TEST(TokenizerLoadTest, ModelFields) {
  ExpectRefused(
      BaseDocument(), BaseConfig(), false,
      {
          {"/model", kRemove, "model: missing"},
          {"/model", "BPE", "model: expected an object, found a string"},
          {"/model/type", kRemove, "model.type: missing"},
          {"/model/type", "WordPiece", "model: type 'WordPiece' is not supported (supported: BPE)"},
          {"/model/vocab", json::array(), "model.vocab: expected an object, found an array"},
          {"/model/vocab/a", "0", "model.vocab['a']: expected an integer, found a string"},
          {"/model/vocab/a", 1.5, "model.vocab['a']: expected an integer, found a number"},
          {"/model/vocab/a", -1, "model.vocab['a']: -1 is out of range [0, 16777215]"},
          {"/model/vocab/a", 16777216, "model.vocab['a']: 16777216 is out of range"},
          {"/model/vocab/a", json(UINT64_MAX), "model.vocab['a']: integer out of range"},
          {"/model/vocab/zz", 1, "model.vocab['zz']: id 1 is also 'b''s"},
          {"/model/vocab/zz", 900000, "model.vocab: ids reach 900000 for only"},
          {"/model/merges", json::object(), "model.merges: expected an array, found an object"},
          {"/model/merges/0", 5,
           "model.merges[0]: expected a string or an array of two strings, found a number"},
          {"/model/merges/0", json::array({"a"}),
           "model.merges[0]: expected an array of two strings"},
          {"/model/merges/1", json::array({"ab", 3}), "model.merges[1]: expected an array of two"},
          {"/model/merges/0", "a b c",
           "model.merges[0]: 'a b c' is not two tokens separated by one"},
          {"/model/merges/0", "a", "model.merges[0]: 'a' is not two tokens"},
          {"/model/merges/1", "ab x",
           "model.merges[1]: merge names 'x', which is not in the vocab"},
          {"/model/merges/0", "b a",
           "model.merges[0]: the merge of 'b' and 'a' is not in the vocab"},
          {"/model/dropout", 0.1, "model.dropout: BPE dropout is not supported"},
          {"/model/dropout", "x", "model.dropout: expected a number or null, found a string"},
          {"/model/unk_token", "<nope>", "model.unk_token: '<nope>' is not in the vocabulary"},
          {"/model/unk_token", 5, "model.unk_token: expected a string, found a number"},
          {"/model/byte_fallback", "yes",
           "model.byte_fallback: expected a boolean, found a string"},
          {"/model/fuse_unk", 1, "model.fuse_unk: expected a boolean, found a number"},
          {"/model/ignore_merges", json::array(), "model.ignore_merges: expected a boolean"},
          {"/model/continuing_subword_prefix", "##",
           "model.continuing_subword_prefix: '##': a non-empty continuing_subword_prefix is not"},
          {"/model/end_of_word_suffix", "</w>", "model.end_of_word_suffix: '</w>': a non-empty"},
          {"/model/end_of_word_suffix", 3, "model.end_of_word_suffix: expected a string"},
      });
}

TEST(TokenizerLoadTest, AddedTokensAndTopLevelFields) {
  ExpectRefused(
      BaseDocument(), BaseConfig(), false,
      {
          {"", json::array(), "(top level): expected an object, found an array"},
          {"/added_tokens", json::object(), "added_tokens: expected an array, found an object"},
          {"/added_tokens/0", "x", "added_tokens[0]: expected an object, found a string"},
          {"/added_tokens/0/id", "1", "added_tokens[0].id: expected an integer, found a string"},
          {"/added_tokens/0/id", kRemove, "added_tokens[0].id: missing"},
          {"/added_tokens/0/id", -5, "added_tokens[0].id: -5 is out of range"},
          {"/added_tokens/0/content", 5, "added_tokens[0].content: expected a string, found a"},
          {"/added_tokens/0/content", "", "added_tokens[0].content: empty"},
          {"/added_tokens/0/lstrip", 1, "added_tokens[0].lstrip: expected a boolean, found a"},
          {"/added_tokens/1/single_word", "no", "added_tokens[1].single_word: expected a boolean"},
          {"/added_tokens/1/special", json::object(), "added_tokens[1].special: expected a bool"},
          {"/added_tokens/1/normalized", 0, "added_tokens[1].normalized: expected a boolean"},
          {"/added_tokens/1/id", 1000, "added_tokens[1]: id 1000 is also added_tokens[0]'s"},
          {"/added_tokens/1/content", "<s>", "added_tokens[1]: content '<s>' is also added_tok"},
          {"/truncation", json{{"max_length", 5}}, "truncation: must be null"},
          {"/padding", json::object(), "padding: must be null"},
          {"/post_processor", json{{"type", "BertProcessing"}},
           "post_processor: type 'BertProcessing' is not supported (supported: TemplateProcess"},
          {"/post_processor/single", json::object(), "post_processor.single: expected an array"},
          {"/post_processor/single/0/SpecialToken/id", "<nope>",
           "post_processor.single[0].SpecialToken.id: '<nope>' is not a token"},
          {"/post_processor/single/1/Sequence/id", "B",
           "post_processor.single[1].Sequence.id: expected \"A\" in a single template"},
          {"/post_processor/single/0", json::object(),
           "post_processor.single[0]: expected \"SpecialToken\" or \"Sequence\""},
      });
}

TEST(TokenizerLoadTest, NormalizersPreTokenizersDecoders) {
  json deep = {{"type", "NFC"}};
  for (int i = 0; i < 20; ++i) deep = {{"type", "Sequence"}, {"pretokenizers", {deep}}};
  ExpectRefused(
      BaseDocument(), BaseConfig(), false,
      {
          {"/normalizer", 5, "normalizer: expected an object, found a number"},
          {"/normalizer/type", "BertNormalizer",
           "normalizer: type 'BertNormalizer' is not supported (supported: NFC, NFD, NFKC"},
          {"/normalizer/normalizers", json::object(), "normalizer.normalizers: expected an array"},
          {"/normalizer/normalizers/0/type", "Precompiled",
           "normalizer.normalizers[0]: type 'Precompiled' is not supported"},
          {"/normalizer/normalizers/1/pattern", json{{"String", "a"}, {"Regex", "b"}},
           "normalizer.normalizers[1].pattern: expected exactly one of \"String\" and \"Regex\""},
          {"/normalizer/normalizers/1/pattern", json{{"Regex", "(a"}},
           "normalizer.normalizers[1].pattern.Regex: "},
          {"/normalizer/normalizers/1/pattern", json{{"String", ""}},
           "normalizer.normalizers[1].pattern.String: empty pattern"},
          {"/normalizer/normalizers/1/content", "<$&>",
           "normalizer.normalizers[1].content: '<$&>': a \"$&\" substitution (JS replaceAll) is"},
          {"/decoder/decoders/0/content", "$1",
           "decoder.decoders[0].content: '$1': a \"$1\" subst"},
          {"/normalizer/normalizers/1/content", 7,
           "normalizer.normalizers[1].content: expected a string, found a number"},
          {"/pre_tokenizer/pretokenizers/0/type", "Digits",
           "pre_tokenizer.pretokenizers[0]: type 'Digits' is not supported (supported: Split, "
           "ByteLevel, Metaspace, Whitespace, WhitespaceSplit, Sequence)"},
          {"/pre_tokenizer/pretokenizers/0/behavior", "Sideways",
           "pre_tokenizer.pretokenizers[0].behavior: 'Sideways' is not one of Removed"},
          {"/pre_tokenizer/pretokenizers/0/invert", "no",
           "pre_tokenizer.pretokenizers[0].invert: expected a boolean, found a string"},
          {"/pre_tokenizer/pretokenizers",
           json::array({json{{"type", "ByteLevel"}}, json{{"type", "Whitespace"}}}),
           "pre_tokenizer.pretokenizers[1]: a pre-tokenizer after ByteLevel is not supported"},
          {"/pre_tokenizer", json{{"type", "Metaspace"}, {"prepend_scheme", "sometimes"}},
           "pre_tokenizer.prepend_scheme: 'sometimes' is not one of always, first, never"},
          {"/pre_tokenizer", json{{"type", "Metaspace"}, {"replacement", "ab"}},
           "pre_tokenizer.replacement: expected exactly one character"},
          {"/pre_tokenizer", deep, "Sequence nested deeper than 16"},
          {"/decoder/type", "WordPiece",
           "decoder: type 'WordPiece' is not supported (supported: ByteLevel, Replace, "},
          {"/decoder/decoders/3/start", -1, "decoder.decoders[3].start: -1 is out of range"},
          {"/decoder/decoders/3/content", "ab",
           "decoder.decoders[3].content: expected exactly one"},
          {"/decoder/decoders/0", json::array(), "decoder.decoders[0]: expected an object, found"},
          {"/decoder/decoders/1/type", kRemove, "decoder.decoders[1].type: missing"},
      });
}

TEST(TokenizerLoadTest, ConfigFields) {
  ExpectRefused(
      BaseDocument(), BaseConfig(), true,
      {
          {"", json::array(), "(top level): expected an object, found an array"},
          {"/bos_token", "<nope>", "bos_token: '<nope>' is not a token of tokenizer.json"},
          {"/bos_token", 5, "bos_token: expected a string or an object with \"content\", found"},
          {"/eos_token/content", 5, "eos_token.content: expected a string, found a number"},
          {"/chat_template", 5, "chat_template: expected a string, found a number"},
          {"/chat_template", json::array({json{{"name", 3}}}), "chat_template[0].name: expected"},
          {"/additional_special_tokens", "x", "additional_special_tokens: expected an array"},
          {"/clean_up_tokenization_spaces", "no", "clean_up_tokenization_spaces: expected a bool"},
          {"/remove_space", true, "remove_space: true is not supported"},
      });
  auto bad_json = Tokenizer::FromJson(BaseDocument().dump(), "{\"bos_token\": ", "test");
  ASSERT_FALSE(bad_json.ok());
  EXPECT_EQ(bad_json.status().code(), StatusCode::kDataLoss);
  EXPECT_NE(bad_json.status().message().find("tokenizer_config.json of test: not valid JSON"),
            std::string::npos)
      << bad_json.status().message();
}

TEST(TokenizerLoadTest, TruncatedAtEveryByteIsDataLoss) {
  const std::string text = BaseDocument().dump(1);
  for (size_t length = 0; length < text.size(); ++length) {
    auto tok = Tokenizer::FromJson(text.substr(0, length), "", "test");
    ASSERT_FALSE(tok.ok()) << length;
    EXPECT_EQ(tok.status().code(), StatusCode::kDataLoss) << length;
    EXPECT_EQ(tok.status().message().rfind("test: not valid JSON: ", 0), 0u)
        << tok.status().message();
  }
  std::ifstream real(std::string(EMOE_TOKENIZER_DATA) + "/qwen3/tokenizer.json");
  if (!real) return;  // the real vocabulary (scripts/fetch_tokenizers.sh) adds its own cuts
  const std::string big((std::istreambuf_iterator<char>(real)), std::istreambuf_iterator<char>());
  for (size_t k = 1; k < 24; ++k) {
    auto tok = Tokenizer::FromJson(big.substr(0, big.size() * k / 24), "", "qwen3");
    ASSERT_FALSE(tok.ok());
    EXPECT_EQ(tok.status().code(), StatusCode::kDataLoss);
  }
}

TEST(TokenizerLoadTest, LoneSurrogatesAndHugeNumbers) {
  // JSON.parse would accept a lone surrogate escape; simdjson refuses it, and the stages rely
  // on that (all strings valid UTF-8).
  std::string text = BaseDocument().dump();
  const size_t at = text.find("\"abc\"");
  ASSERT_NE(at, std::string::npos);
  text.replace(at, 5, "\"\\udc00\"");
  auto tok = Tokenizer::FromJson(text, "", "test");
  ASSERT_FALSE(tok.ok());
  EXPECT_EQ(tok.status().code(), StatusCode::kDataLoss);
  json doc = BaseDocument();
  doc["model"]["vocab"]["a"] = 1e300;
  auto huge = Tokenizer::FromJson(doc.dump(), "", "test");
  ASSERT_FALSE(huge.ok());
  EXPECT_NE(huge.status().message().find("model.vocab['a']: expected an integer"),
            std::string::npos);
}

TEST(TokenizerLoadTest, FilesThatAreNotThere) {
  auto missing = Tokenizer::Load("/nonexistent/model");
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("/nonexistent/model"), std::string::npos);
  char dir_template[] = "/tmp/tokenizer_load_test.XXXXXX";
  const char* dir = mkdtemp(dir_template);
  ASSERT_NE(dir, nullptr);
  const std::string d(dir);
  EXPECT_FALSE(Tokenizer::DirectoryHasTokenizer(d));
  auto empty = Tokenizer::Load(d);
  ASSERT_FALSE(empty.ok());
  EXPECT_NE(empty.status().message().find(d + "/tokenizer.json"), std::string::npos)
      << empty.status().message();
  std::ofstream(d + "/tokenizer.json") << BaseDocument().dump();
  EXPECT_TRUE(Tokenizer::DirectoryHasTokenizer(d));
  auto no_config = Tokenizer::Load(d);  // tokenizer_config.json is optional
  ASSERT_TRUE(no_config.ok()) << no_config.status().ToString();
  std::ofstream(d + "/tokenizer_config.json") << "{\"eos_token\": \"<nope>\"}";
  auto bad_config = Tokenizer::Load(d);
  ASSERT_FALSE(bad_config.ok());
  EXPECT_NE(bad_config.status().message().find("eos_token: '<nope>'"), std::string::npos);
  std::remove((d + "/tokenizer_config.json").c_str());
  ::mkdir((d + "/tokenizer_config.json").c_str(), 0700);  // not a regular file
  auto dir_config = Tokenizer::Load(d + "/tokenizer.json");
  EXPECT_FALSE(dir_config.ok());
  ::rmdir((d + "/tokenizer_config.json").c_str());
  std::remove((d + "/tokenizer.json").c_str());
  ::rmdir(dir);
}

}  // namespace
}  // namespace emoe::tokenizer::testing
