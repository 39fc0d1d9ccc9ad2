// Text in and out of a model (model_text.h).
#include "tools/model_text.h"

#include <cstdio>
#include <filesystem>

#include "tokenizer/chat_template.h"

namespace emoe::tools {

using vmm::Status;
using vmm::StatusOr;

std::vector<int32_t> ByteEncode(const std::string& text) {
  std::vector<int32_t> ids;
  ids.reserve(text.size());
  for (char c : text) ids.push_back(static_cast<unsigned char>(c));
  return ids;
}

std::string ByteDecode(std::span<const int32_t> ids) {
  std::string out;
  for (int32_t id : ids) {
    if (id >= 32 && id < 127) {
      out.push_back(static_cast<char>(id));
    } else {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\x%02x", id & 0xff);
      out += buf;
    }
  }
  return out;
}

std::string TextStream::Add(int32_t id) {
  if (decoder_ == nullptr) return ByteDecode({&id, 1});
  return decoder_->Add(id);
}

std::string TextStream::Finish() { return decoder_ == nullptr ? "" : decoder_->Finish(); }

StatusOr<std::unique_ptr<ModelText>> ModelText::ForModel(const std::string& dir,
                                                         int64_t model_vocab_size) {
  std::unique_ptr<ModelText> t(new ModelText());
  if (!tokenizer::Tokenizer::DirectoryHasTokenizer(dir)) {
    t->start_line_ = "tokenizer: bytes (no tokenizer.json in " + dir + ")";
    return t;
  }
  const std::string path = (std::filesystem::path(dir) / "tokenizer.json").string();
  VMM_ASSIGN_OR_RETURN(t->tokenizer_, tokenizer::Tokenizer::Load(dir));
  const tokenizer::Tokenizer& tok = *t->tokenizer_;
  if (tok.vocab_size() > model_vocab_size) {
    return Status::InvalidArgument(path + " has " + std::to_string(tok.vocab_size()) +
                                   " token ids, more than the model's vocab_size " +
                                   std::to_string(model_vocab_size) + " (" + dir +
                                   "/config.json): it is not this model's tokenizer");
  }
  t->start_line_ = "tokenizer: " + path + ": " + tok.description();
  for (int32_t id = 0; id < tok.vocab_size(); ++id) {
    if (!tok.IsSpecial(id) && !tok.IdToToken(id).empty()) t->ordinary_ids_.push_back(id);
  }
  if (t->ordinary_ids_.empty()) {
    return Status::InvalidArgument(path + ": every token is a special token");
  }
  return t;
}

std::vector<int32_t> ModelText::Encode(const std::string& text) const {
  if (tokenizer_ == nullptr) return ByteEncode(text);
  return tokenizer_->Encode(text, /*add_special_tokens=*/true);
}

StatusOr<std::vector<int32_t>> ModelText::EncodeChat(const std::string& user_message) const {
  if (tokenizer_ == nullptr) {
    return Status::InvalidArgument(
        "--chat: the model has no tokenizer.json (the byte tokenizer has no chat template)");
  }
  const tokenizer::SpecialTokens& special = tokenizer_->special_tokens();
  tokenizer::ChatOptions o;
  o.bos_token = special.bos;
  o.eos_token = special.eos;
  VMM_ASSIGN_OR_RETURN(
      const std::string text,
      tokenizer::ApplyChatTemplate(tokenizer_->chat_family(), {{"user", user_message}}, o));
  return tokenizer_->Encode(text, /*add_special_tokens=*/false);
}

StatusOr<std::vector<int32_t>> ModelText::EncodeChat(
    const std::vector<tokenizer::ChatMessage>& messages, tokenizer::ChatOptions options) const {
  if (tokenizer_ == nullptr) {
    return Status::InvalidArgument(
        "the model has no tokenizer.json: the byte tokenizer has no chat template");
  }
  const tokenizer::SpecialTokens& special = tokenizer_->special_tokens();
  options.bos_token = special.bos;
  options.eos_token = special.eos;
  VMM_ASSIGN_OR_RETURN(const std::string text,
                       tokenizer::ApplyChatTemplate(tokenizer_->chat_family(), messages, options));
  return tokenizer_->Encode(text, /*add_special_tokens=*/false);
}

std::string ModelText::DecodePrompt(std::span<const int32_t> ids) const {
  if (tokenizer_ == nullptr) return ByteDecode(ids);
  return tokenizer_->Decode(ids, /*skip_special_tokens=*/false);
}

std::string ModelText::DecodeOutput(std::span<const int32_t> prompt,
                                    std::span<const int32_t> output) const {
  if (tokenizer_ == nullptr) return ByteDecode(output);
  std::unique_ptr<TextStream> stream = NewStream(prompt);
  std::string text;
  for (int32_t id : output) text += stream->Add(id);
  return text + stream->Finish();
}

std::unique_ptr<TextStream> ModelText::NewStream(std::span<const int32_t> prompt,
                                                 bool skip_special_tokens) const {
  auto s = std::make_unique<TextStream>();
  if (tokenizer_ != nullptr) {
    s->decoder_ =
        std::make_unique<tokenizer::IncrementalDecoder>(*tokenizer_, prompt, skip_special_tokens);
  }
  return s;
}

std::vector<int32_t> ModelText::StopTokenIds() const {
  if (tokenizer_ == nullptr || tokenizer_->special_tokens().eos_id < 0) return {};
  return {tokenizer_->special_tokens().eos_id};
}

int32_t ModelText::RandomToken(std::mt19937_64* rng) const {
  if (tokenizer_ == nullptr) return static_cast<int32_t>((*rng)() % 256);
  return ordinary_ids_[(*rng)() % ordinary_ids_.size()];
}

}  // namespace emoe::tools
