// emoe serves text through a generated model's real tokenizer, end to end: gen_model
// --preset=qwen3-text (and mixtral-text) writes the family's tokenizer.json and
// tokenizer_config.json beside the weights; emoe says at start-up that it uses them, encodes the
// prompts with them, prints the generated text decoded by them (valid UTF-8, the EOS left out)
// and stops at the EOS unless --ignore_eos. The expected texts are computed here with the
// tokenizer library from the ids emoe prints, by streaming.h's rule (the output is
// Decode(prompt + output) after Decode(prompt)), not by emoe's own code path.
//
// The real vocabularies come from scripts/fetch_tokenizers.sh (data/tokenizers/); without them
// every test here skips, naming the script.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"

namespace {

namespace fs = std::filesystem;
using emoe::tokenizer::Tokenizer;

constexpr char kFetch[] = "scripts/fetch_tokenizers.sh";
constexpr int kNewTokens = 12;

struct Output {
  int rc = -1;
  std::string out, err;
};

std::string Quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// Runs `args` (no shell expansion: every argument quoted), stdout captured, stderr into a file.
Output RunCommand(const std::vector<std::string>& args, const std::string& scratch) {
  std::string cmd;
  for (const std::string& a : args) cmd += Quote(a) + " ";
  const std::string err_path = scratch + "/stderr.txt";
  cmd += "2>" + Quote(err_path);
  Output o;
  FILE* p = popen(cmd.c_str(), "r");
  if (p == nullptr) return o;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), p)) > 0) o.out.append(buf, n);
  const int status = pclose(p);
  o.rc = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  o.err = ReadAll(err_path);
  return o;
}

// Strict UTF-8: no overlong forms, no surrogates, nothing above U+10FFFF.
bool ValidUtf8(const std::string& s) {
  size_t i = 0;
  while (i < s.size()) {
    const unsigned char c = s[i];
    int len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (len == 0 || i + len > s.size()) return false;
    uint32_t cp = len == 1 ? c : c & (0xff >> (len + 1));
    for (int k = 1; k < len; ++k) {
      const unsigned char d = s[i + k];
      if ((d >> 6) != 2) return false;
      cp = (cp << 6) | (d & 0x3f);
    }
    const uint32_t min[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
    i += len;
  }
  return true;
}

// One prompt's result as emoe prints it without streaming: "[i] <prompt> -> <text>",
// "[i] tokens: ...", "[i] ttft ... (<finish reason>)".
struct Printed {
  std::string text;
  std::vector<int32_t> ids;
  std::string finish;
};

// The result of prompt `i`, shown as `shown`, in `out`; fails the test when it is not there.
Printed Parse(const std::string& out, int i, const std::string& shown) {
  Printed p;
  const std::string tag = "[" + std::to_string(i) + "] ";
  const std::string head = tag + shown + " -> ";
  const size_t at = out.find(head);
  const size_t tokens = out.find("\n" + tag + "tokens:", at);
  EXPECT_NE(at, std::string::npos) << "no '" << head << "' in:\n" << out;
  EXPECT_NE(tokens, std::string::npos) << out;
  if (at == std::string::npos || tokens == std::string::npos) return p;
  p.text = out.substr(at + head.size(), tokens - at - head.size());
  const size_t ids_at = tokens + tag.size() + 8;  // after "\n[i] tokens:" less the newline
  const size_t ids_end = out.find('\n', ids_at);
  std::istringstream ids(out.substr(ids_at, ids_end - ids_at));
  for (int32_t id; ids >> id;) p.ids.push_back(id);
  const size_t open = out.find('(', ids_end), close = out.find(")\n", ids_end);
  if (open != std::string::npos && close != std::string::npos) {
    p.finish = out.substr(open + 1, close - open - 1);
  }
  return p;
}

// The text generated after `prompt`: Decode(prompt + output) after Decode(prompt), specials
// skipped (tokenizer/streaming.h's rule, which vLLM's detokenizer follows).
std::string ExpectedText(const Tokenizer& tok, std::vector<int32_t> prompt,
                         const std::vector<int32_t>& output) {
  const std::string before = tok.Decode(prompt, /*skip_special_tokens=*/true);
  prompt.insert(prompt.end(), output.begin(), output.end());
  const std::string all = tok.Decode(prompt, /*skip_special_tokens=*/true);
  EXPECT_EQ(all.compare(0, before.size(), before), 0) << "the prompt's text is a prefix";
  return all.substr(std::min(before.size(), all.size()));
}

class EmoeTextTest : public ::testing::Test {
 protected:
  // Generates `preset` into a scratch directory (once per test: each runs in its own process).
  void Generate(const std::string& preset, const std::string& vocabulary) {
    source_ = std::string(EMOE_TOKENIZER_DATA) + "/" + vocabulary;
    if (!fs::exists(source_ + "/tokenizer.json")) {
      GTEST_SKIP() << "no " << source_ << "/tokenizer.json: run " << kFetch;
    }
    char tmpl[] = "/var/tmp/emoe_text_e2e.XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    scratch_ = tmpl;
    model_ = scratch_ + "/" + preset;
    const Output g =
        RunCommand({GEN_MODEL_BINARY, "--preset=" + preset, "--out=" + model_}, scratch_);
    ASSERT_EQ(g.rc, 0) << g.out << g.err;
    auto tok = Tokenizer::Load(model_);
    ASSERT_TRUE(tok.ok()) << tok.status().ToString();
    tok_ = std::move(*tok);
  }
  void TearDown() override {
    if (!scratch_.empty()) fs::remove_all(scratch_);
  }
  Output Emoe(std::vector<std::string> args) {
    args.insert(args.begin(), {EMOE_BINARY, "--model=" + model_, "--page_size=4k"});
    return RunCommand(args, scratch_);
  }
  // The startup line emoe must print for the generated model.
  std::string StartLine() const {
    return "tokenizer: " + model_ + "/tokenizer.json: " + tok_->description();
  }
  // Runs `prompts` (greedy, kNewTokens each) and checks each result's text against the
  // tokenizer; returns them.
  std::vector<Printed> Generated(const std::vector<std::string>& prompts,
                                 const std::vector<std::string>& more = {}) {
    std::string joined;
    for (const std::string& p : prompts) joined += (joined.empty() ? "" : "|") + p;
    std::vector<std::string> args = {"--prompt=" + joined,
                                     "--max_new_tokens=" + std::to_string(kNewTokens)};
    args.insert(args.end(), more.begin(), more.end());
    const Output o = Emoe(args);
    EXPECT_EQ(o.rc, 0) << o.out << o.err;
    EXPECT_NE(o.err.find(StartLine() + "\n"), std::string::npos)
        << "the start-up line names the real tokenizer: " << o.err;
    std::vector<Printed> got;
    const int32_t eos = tok_->special_tokens().eos_id;
    const bool ignore_eos = std::find(more.begin(), more.end(), "--ignore_eos") != more.end();
    for (size_t i = 0; i < prompts.size(); ++i) {
      const std::vector<int32_t> ids = tok_->Encode(prompts[i], /*add_special_tokens=*/true);
      const Printed p = Parse(o.out, static_cast<int>(i), tok_->Decode(ids, false));
      EXPECT_TRUE(ValidUtf8(p.text)) << "prompt " << i << ": " << p.text;
      EXPECT_EQ(p.text, ExpectedText(*tok_, ids, p.ids)) << "prompt " << i;
      const bool stopped = !ignore_eos && !p.ids.empty() && p.ids.back() == eos;
      EXPECT_EQ(p.finish, stopped ? "stop" : "length") << "prompt " << i;
      if (!stopped) {
        EXPECT_EQ(p.ids.size(), static_cast<size_t>(kNewTokens)) << "prompt " << i;
      }
      if (!ignore_eos && !p.ids.empty()) {
        EXPECT_EQ(std::find(p.ids.begin(), p.ids.end() - 1, eos), p.ids.end() - 1)
            << "prompt " << i << ": generation went on after the EOS";
      }
      got.push_back(p);
    }
    return got;
  }

  std::string source_, scratch_, model_;
  std::unique_ptr<Tokenizer> tok_;
};

TEST_F(EmoeTextTest, GenModelWritesQwen3sTokenizer) {
  Generate("qwen3-text", "qwen3");
  if (IsSkipped()) return;
  EXPECT_EQ(ReadAll(model_ + "/tokenizer.json"), ReadAll(source_ + "/tokenizer.json"));
  EXPECT_EQ(ReadAll(model_ + "/tokenizer_config.json"), ReadAll(source_ + "/tokenizer_config.json"))
      << "Qwen3's config has its chat template: copied as it is";
  EXPECT_EQ(tok_->chat_family(), emoe::tokenizer::ChatFamily::kChatML);
  EXPECT_LE(tok_->vocab_size(), 151936);
  EXPECT_GT(tok_->vocab_size(), 151000);
  // A folder without the vocabulary is refused, naming the script that fetches it.
  const Output bad = RunCommand({GEN_MODEL_BINARY, "--preset=qwen3-text",
                                 "--out=" + scratch_ + "/x", "--tokenizer_dir=" + scratch_},
                                scratch_);
  EXPECT_EQ(bad.rc, 2) << bad.err;
  EXPECT_NE(bad.err.find(kFetch), std::string::npos) << bad.err;
}

// Text in and out: two prompts (English, and CJK whose characters span several byte-level
// tokens), their texts decoded by the tokenizer from the printed ids, valid UTF-8.
TEST_F(EmoeTextTest, Qwen3TextInAndOut) {
  Generate("qwen3-text", "qwen3");
  if (IsSkipped()) return;
  const std::vector<std::string> prompts = {"The capital of France is",
                                            "混合专家模型（MoE）是什么？"};
  for (const std::string& p : prompts) {
    EXPECT_EQ(tok_->Decode(tok_->Encode(p, true), false), p) << "Qwen3 adds no special token";
  }
  const std::vector<Printed> got = Generated(prompts);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_NE(got[0].ids, got[1].ids) << "different prompts, different continuations";
}

// Greedy fixed-length runs: --ignore_eos changes nothing where no EOS appears; where one does,
// the run without it ends there (the EOS the last id, not in the text).
TEST_F(EmoeTextTest, IgnoreEosChangesNothingWithoutAnEos) {
  Generate("qwen3-text", "qwen3");
  if (IsSkipped()) return;
  const std::vector<std::string> prompts = {"Hello, world", "def main():\n\treturn 0"};
  const std::vector<Printed> plain = Generated(prompts);
  const std::vector<Printed> ignoring = Generated(prompts, {"--ignore_eos"});
  ASSERT_EQ(plain.size(), ignoring.size());
  const int32_t eos = tok_->special_tokens().eos_id;
  for (size_t i = 0; i < plain.size(); ++i) {
    const std::vector<int32_t>& all = ignoring[i].ids;
    auto first_eos = std::find(all.begin(), all.end(), eos);
    const std::vector<int32_t> want(all.begin(),
                                    first_eos == all.end() ? all.end() : first_eos + 1);
    EXPECT_EQ(plain[i].ids, want) << "prompt " << i;
  }
}

// One prompt streams: the prompt, then the text as it comes, then a newline.
TEST_F(EmoeTextTest, Qwen3Streams) {
  Generate("qwen3-text", "qwen3");
  if (IsSkipped()) return;
  const std::string prompt = "Streaming: ";
  const Output o = Emoe({"--prompt=" + prompt, "--max_new_tokens=" + std::to_string(kNewTokens)});
  ASSERT_EQ(o.rc, 0) << o.err;
  const size_t tokens = o.out.find("\n[0] tokens:");
  ASSERT_NE(tokens, std::string::npos) << o.out;
  std::istringstream line(o.out.substr(tokens + 12, o.out.find('\n', tokens + 1) - tokens - 12));
  std::vector<int32_t> ids;
  for (int32_t id; line >> id;) ids.push_back(id);
  const std::string streamed = o.out.substr(0, tokens);
  EXPECT_EQ(streamed, prompt + ExpectedText(*tok_, tok_->Encode(prompt, true), ids));
  EXPECT_TRUE(ValidUtf8(streamed));
}

// --chat: the prompt is a user message in Qwen3's template (the string its Jinja template
// renders for one user message with add_generation_prompt).
TEST_F(EmoeTextTest, Qwen3Chat) {
  Generate("qwen3-text", "qwen3");
  if (IsSkipped()) return;
  const std::string user = "What is a mixture of experts?";
  const std::string templated = "<|im_start|>user\n" + user + "<|im_end|>\n<|im_start|>assistant\n";
  const Output o = Emoe({"--prompt=" + user + "|again", "--chat", "--max_new_tokens=4"});
  ASSERT_EQ(o.rc, 0) << o.err;
  EXPECT_NE(o.out.find("[0] " + templated + " -> "), std::string::npos) << o.out;
}

// Synthetic prompts draw their ids from the tokenizer's vocabulary (minus the special tokens):
// every request is served.
TEST_F(EmoeTextTest, Qwen3SyntheticWorkload) {
  Generate("qwen3-text", "qwen3");
  if (IsSkipped()) return;
  const std::string report = scratch_ + "/report.json";
  const Output o =
      Emoe({"--workload=synthetic", "--num_requests=6", "--rate=1000", "--max_prompt_tokens=16",
            "--max_output_tokens=4", "--ignore_eos", "--json=" + report});
  ASSERT_EQ(o.rc, 0) << o.err;
  const nlohmann::json rep = nlohmann::json::parse(ReadAll(report), nullptr, false);
  ASSERT_TRUE(rep.is_object()) << ReadAll(report);
  EXPECT_EQ(rep["served"], 6) << "no prompt token fell outside the model's vocabulary";
  EXPECT_EQ(rep["rejected"], 0);
}

// A tokenizer with more ids than the model's embedding rows is refused, naming both.
TEST_F(EmoeTextTest, ATokenizerLargerThanTheModelIsRefused) {
  Generate("qwen3-text", "qwen3");
  if (IsSkipped()) return;
  const std::string tiny = scratch_ + "/tiny";
  ASSERT_EQ(RunCommand({GEN_MODEL_BINARY, "--preset=tiny", "--out=" + tiny}, scratch_).rc, 0);
  fs::copy_file(model_ + "/tokenizer.json", tiny + "/tokenizer.json");
  model_ = tiny;
  const Output o = Emoe({"--prompt=x", "--max_new_tokens=2"});
  EXPECT_EQ(o.rc, 1) << o.out << o.err;
  EXPECT_NE(o.err.find(tiny + "/tokenizer.json has " + std::to_string(tok_->vocab_size())),
            std::string::npos)
      << o.err;
  EXPECT_NE(o.err.find("vocab_size 256"), std::string::npos) << o.err;
}

// mixtral-text: Mistral's vocabulary with Mixtral-Instruct's chat template added to its config
// (every other field kept), the <s> prompts, text out.
TEST_F(EmoeTextTest, MixtralTextWithItsChatTemplate) {
  Generate("mixtral-text", "mistral");
  if (IsSkipped()) return;
  const nlohmann::json src =
      nlohmann::json::parse(ReadAll(source_ + "/tokenizer_config.json"), nullptr, false);
  const nlohmann::json got =
      nlohmann::json::parse(ReadAll(model_ + "/tokenizer_config.json"), nullptr, false);
  ASSERT_TRUE(src.is_object() && got.is_object());
  ASSERT_FALSE(src.contains("chat_template")) << "the package's config has no template";
  for (const auto& item : src.items()) EXPECT_EQ(got[item.key()], item.value()) << item.key();
  ASSERT_TRUE(got.contains("chat_template"));
  EXPECT_EQ(got["chat_template"].get<std::string>().rfind(
                "{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') != "
                "(loop.index0 % 2 == 0) %}",
                0),
            0u);
  EXPECT_EQ(tok_->chat_family(), emoe::tokenizer::ChatFamily::kMistral);
  EXPECT_EQ(tok_->vocab_size(), 32000);
  Generated({"Mixture of experts", "Élan vital, naïve café"});
  const Output chat = Emoe({"--prompt=Hi there|Bye", "--chat", "--max_new_tokens=3"});
  ASSERT_EQ(chat.rc, 0) << chat.err;
  EXPECT_NE(chat.out.find("[INST] Hi there [/INST] -> "), std::string::npos) << chat.out;
}

}  // namespace
