// tokenize: a model's tokenizer on the command line, for users and for checking.
//
//   tokenize --tokenizer=MODEL_DIR < texts        one text per line -> its ids, space-separated
//   tokenize --tokenizer=... --jsonl < texts      each line a JSON string (texts with newlines)
//   tokenize --tokenizer=... --decode < ids       ids per line -> the text (--jsonl: as JSON)
//   tokenize --tokenizer=... --chat < messages    a JSON message list -> the templated text
//
// --tokenizer is a model directory holding tokenizer.json (and tokenizer_config.json), or the
// path of a tokenizer.json. One line out per line in. Encoding adds no special tokens unless
// --add_special_tokens; a line is the bytes between newlines, exactly (a '\r' stays in the
// text). --chat reads the whole of stdin as one JSON array of {"role", "content"} objects and
// prints the template's text as is (no newline added; with --jsonl, as one JSON string line,
// which `tokenize --jsonl` encodes). The template's family is the tokenizer_config.json's
// unless --chat_template names one.
//
// Exit codes (tools/flag_checks.h): 0 done; 1 a tokenizer that does not load, or bad input
// (a line that is not a JSON string, an id that is not an integer of the vocabulary, a message
// list the template refuses: the message names the line or message); 2 a bad flag.
#include <gflags/gflags.h>

#include <sys/stat.h>
#include <charconv>
#include <cstdio>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"
#include "tools/flag_checks.h"

DEFINE_string(tokenizer, "", "model directory holding tokenizer.json, or a tokenizer.json");
DEFINE_bool(add_special_tokens, false, "encode: add the post-processor's tokens (<s>)");
DEFINE_bool(jsonl, false, "encode: each input line is a JSON string; --decode/--chat: print JSON");
DEFINE_bool(decode, false, "read ids (space-separated, one sequence per line), print the text");
DEFINE_bool(skip_special_tokens, false, "--decode: leave out the special tokens' text");
DEFINE_bool(chat, false, "read a JSON message list from stdin, print the templated text");
DEFINE_bool(add_generation_prompt, true, "--chat: end with the assistant turn's opening");
DEFINE_bool(enable_thinking, true, "--chat (chatml): false adds Qwen3's empty <think> block");
DEFINE_string(chat_template, "auto",
              "--chat: auto (the family of tokenizer_config.json's template), chatml, mistral");

namespace {

namespace t = emoe::tools;
namespace tok = emoe::tokenizer;

// --tokenizer: an existing directory holding tokenizer.json, or an existing regular file.
vmm::Status CheckTokenizerPath(const std::string& path) {
  struct stat st;
  if (path.empty() || stat(path.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    if (t::RegularFile("tokenizer", path).ok()) return vmm::Status::Ok();
    return vmm::Status::InvalidArgument(
        "--tokenizer must be a model directory holding tokenizer.json or a tokenizer.json "
        "file, got '" +
        path + "'");
  }
  if (!tok::Tokenizer::DirectoryHasTokenizer(path)) {
    return vmm::Status::InvalidArgument("--tokenizer: directory " + path +
                                        " holds no tokenizer.json");
  }
  return vmm::Status::Ok();
}

vmm::Status CheckFlags() {
  return t::FirstError({
      t::NonEmpty("tokenizer", FLAGS_tokenizer),
      CheckTokenizerPath(FLAGS_tokenizer),
      t::OneOf("chat_template", FLAGS_chat_template, {"auto", "chatml", "mistral"}),
      FLAGS_chat && FLAGS_decode
          ? vmm::Status::InvalidArgument("--chat: cannot be combined with --decode")
          : vmm::Status::Ok(),
  });
}

// nlohmann's DOM parser without exceptions, keeping its parse error's message (which names the
// line and column of the input).
class QuietDomParser : public nlohmann::detail::json_sax_dom_parser<nlohmann::json> {
 public:
  explicit QuietDomParser(nlohmann::json* root) : json_sax_dom_parser(*root, false) {}
  bool parse_error(std::size_t /*position*/, const std::string& /*last_token*/,
                   const nlohmann::detail::exception& ex) {
    error_ = ex.what();
    return false;
  }
  const std::string& error() const { return error_; }

 private:
  std::string error_;
};

vmm::Status ParseJson(const std::string& text, nlohmann::json* out) {
  QuietDomParser sax(out);
  if (!nlohmann::json::sax_parse(text, &sax) || !sax.error().empty()) {
    return vmm::Status::InvalidArgument(sax.error().empty() ? "not JSON" : sax.error());
  }
  return vmm::Status::Ok();
}

std::string JsonString(const std::string& s) {
  return nlohmann::json(s).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

void Write(const std::string& s) { std::fwrite(s.data(), 1, s.size(), stdout); }

int InputError(size_t line, const std::string& what) {
  std::fprintf(stderr, "tokenize: stdin line %zu: %s\n", line, what.c_str());
  return t::kExitError;
}

int Encode(const tok::Tokenizer& tokenizer) {
  std::string line, out;
  std::vector<int32_t> ids;
  for (size_t n = 1; std::getline(std::cin, line); ++n) {
    if (FLAGS_jsonl) {
      nlohmann::json j;
      if (vmm::Status s = ParseJson(line, &j); !s.ok()) return InputError(n, s.message());
      if (!j.is_string()) return InputError(n, "not a JSON string: " + line.substr(0, 80));
      line = j.get<std::string>();
    }
    ids.clear();
    tokenizer.EncodeInto(line, FLAGS_add_special_tokens, &ids);
    out.clear();
    for (size_t i = 0; i < ids.size(); ++i) {
      if (i > 0) out += ' ';
      out += std::to_string(ids[i]);
    }
    out += '\n';
    Write(out);
  }
  return t::kExitOk;
}

// The ids of one line: integers of [0, vocab) separated by spaces or tabs.
vmm::Status ParseIds(const std::string& line, int32_t vocab, std::vector<int32_t>* ids) {
  ids->clear();
  size_t i = 0;
  while (i < line.size()) {
    if (line[i] == ' ' || line[i] == '\t' || line[i] == '\r') {
      ++i;
      continue;
    }
    size_t end = line.find_first_of(" \t\r", i);
    if (end == std::string::npos) end = line.size();
    const std::string word = line.substr(i, end - i);
    int64_t id = -1;
    const auto [ptr, ec] = std::from_chars(word.data(), word.data() + word.size(), id);
    if (ec != std::errc() || ptr != word.data() + word.size()) {
      return vmm::Status::InvalidArgument("'" + word.substr(0, 40) + "' is not an integer id");
    }
    if (id < 0 || id >= vocab) {
      return vmm::Status::InvalidArgument("id " + word + " is outside the vocabulary (0.." +
                                          std::to_string(vocab - 1) + ")");
    }
    ids->push_back(static_cast<int32_t>(id));
    i = end;
  }
  return vmm::Status::Ok();
}

int Decode(const tok::Tokenizer& tokenizer) {
  std::string line;
  std::vector<int32_t> ids;
  for (size_t n = 1; std::getline(std::cin, line); ++n) {
    if (vmm::Status s = ParseIds(line, tokenizer.vocab_size(), &ids); !s.ok()) {
      return InputError(n, s.message());
    }
    const std::string text = tokenizer.Decode(ids, FLAGS_skip_special_tokens);
    Write((FLAGS_jsonl ? JsonString(text) : text) + "\n");
  }
  return t::kExitOk;
}

// The message list of --chat: a JSON array of objects with string "role" and "content".
vmm::Status Messages(const nlohmann::json& j, std::vector<tok::ChatMessage>* out) {
  if (!j.is_array()) return vmm::Status::InvalidArgument("not a JSON array of messages");
  for (size_t i = 0; i < j.size(); ++i) {
    const std::string where = "message " + std::to_string(i) + ": ";
    const nlohmann::json& m = j[i];
    if (!m.is_object()) return vmm::Status::InvalidArgument(where + "not a JSON object");
    for (const char* field : {"role", "content"}) {
      if (!m.contains(field) || !m[field].is_string()) {
        return vmm::Status::InvalidArgument(where + "\"" + field + "\" must be a string");
      }
    }
    out->push_back({m["role"].get<std::string>(), m["content"].get<std::string>()});
  }
  return vmm::Status::Ok();
}

int Chat(const tok::Tokenizer& tokenizer) {
  const std::string input((std::istreambuf_iterator<char>(std::cin)),
                          std::istreambuf_iterator<char>());
  nlohmann::json j;
  std::vector<tok::ChatMessage> messages;
  vmm::Status s = ParseJson(input, &j);
  if (s.ok()) s = Messages(j, &messages);
  tok::ChatFamily family = tokenizer.chat_family();
  if (FLAGS_chat_template == "chatml") family = tok::ChatFamily::kChatML;
  if (FLAGS_chat_template == "mistral") family = tok::ChatFamily::kMistral;
  tok::ChatOptions options;
  options.add_generation_prompt = FLAGS_add_generation_prompt;
  options.enable_thinking = FLAGS_enable_thinking;
  if (!tokenizer.special_tokens().bos.empty()) options.bos_token = tokenizer.special_tokens().bos;
  if (!tokenizer.special_tokens().eos.empty()) options.eos_token = tokenizer.special_tokens().eos;
  const vmm::StatusOr<std::string> text =
      s.ok() ? tok::ApplyChatTemplate(family, messages, options) : vmm::StatusOr<std::string>(s);
  if (!text.ok()) {
    std::string why = text.status().message();
    if (family == tok::ChatFamily::kNone) {
      if (!tokenizer.chat_template_error().empty())
        why += " (" + tokenizer.chat_template_error() + ")";
      why += "; --chat_template=chatml or --chat_template=mistral names one";
    }
    std::fprintf(stderr, "tokenize: stdin: %s\n", why.c_str());
    return t::kExitError;
  }
  Write(FLAGS_jsonl ? JsonString(text.value()) + "\n" : text.value());
  return t::kExitOk;
}

}  // namespace

int main(int argc, char** argv) {
  gflags::SetUsageMessage(
      "text to ids and back with a model's tokenizer (tokenizer.json):\n"
      "  tokenize --tokenizer=MODEL_DIR [--jsonl] [--add_special_tokens] < texts\n"
      "  tokenize --tokenizer=MODEL_DIR --decode [--jsonl] < ids\n"
      "  tokenize --tokenizer=MODEL_DIR --chat [--chat_template=auto|chatml|mistral] < messages"
      "\nbad input (a line that is not a JSON string, an id that is not one of the "
      "vocabulary's) exits 1 naming the line" +
      t::ExitCodesHelp(/*requests=*/false));
  if (auto rc = t::ParseFlags("tokenize", &argc, &argv)) return *rc;
  if (vmm::Status s = CheckFlags(); !s.ok()) {
    std::fprintf(stderr, "tokenize: %s\n", s.message().c_str());
    return t::kExitUsage;
  }
  vmm::StatusOr<std::unique_ptr<tok::Tokenizer>> tokenizer = tok::Tokenizer::Load(FLAGS_tokenizer);
  if (!tokenizer.ok()) {
    std::fprintf(stderr, "tokenize: %s\n", tokenizer.status().ToString().c_str());
    return t::kExitError;
  }
  std::ios::sync_with_stdio(false);
  const int rc = FLAGS_chat     ? Chat(*tokenizer.value())
                 : FLAGS_decode ? Decode(*tokenizer.value())
                                : Encode(*tokenizer.value());
  if (std::fflush(stdout) != 0 || std::ferror(stdout)) {
    std::fprintf(stderr, "tokenize: writing stdout failed\n");
    return t::kExitError;
  }
  return rc;
}
