// tools/model_text.h: text in and out of a model, for emoe and its workloads. A model directory
// with a tokenizer.json (tokenizer::Tokenizer::DirectoryHasTokenizer) is read and written with
// that tokenizer: prompts encoded with add_special_tokens as vLLM's completions do, outputs
// decoded without the special tokens (an EOS id stays in the output ids, not in the text),
// streams decoded by tokenizer::IncrementalDecoder (never half a character), the EOS the stop
// token. Without one, the byte tokenizer: bytes as ids 0..255, printable ASCII shown as is and
// every other id as \xNN, no stop token.
//
// Thread safety: a ModelText is immutable after ForModel; share it. A TextStream is one
// request's, for one thread at a time.
#ifndef TOOLS_MODEL_TEXT_H_
#define TOOLS_MODEL_TEXT_H_

#include <cstdint>
#include <memory>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "tokenizer/chat_template.h"
#include "tokenizer/streaming.h"
#include "tokenizer/tokenizer.h"
#include "vmm/status.h"

namespace emoe::tools {

// The byte tokenizer: bytes as ids (0..255); printable ASCII as is, every other id as \xNN.
std::vector<int32_t> ByteEncode(const std::string& text);
std::string ByteDecode(std::span<const int32_t> ids);

// One request's text as its tokens come (ModelText::NewStream).
class TextStream {
 public:
  // The text that became complete with `id` (often "" with a real tokenizer).
  std::string Add(int32_t id);
  // What is left at the end of the stream.
  std::string Finish();

 private:
  friend class ModelText;
  std::unique_ptr<tokenizer::IncrementalDecoder> decoder_;  // null: the byte tokenizer
};

class ModelText {
 public:
  // The text of model directory `dir`, whose config.json has `model_vocab_size` embedding rows:
  // its tokenizer when it has a tokenizer.json, the byte tokenizer otherwise. Errors: the
  // tokenizer's (naming the file), or kInvalidArgument when the tokenizer has more ids than the
  // model's vocabulary, naming both.
  static vmm::StatusOr<std::unique_ptr<ModelText>> ForModel(const std::string& dir,
                                                            int64_t model_vocab_size);

  // The start-up line: "tokenizer: <dir>/tokenizer.json: byte-level BPE (...)" or
  // "tokenizer: bytes (no tokenizer.json in <dir>)".
  const std::string& start_line() const { return start_line_; }
  // The model's tokenizer; null with the byte tokenizer.
  const tokenizer::Tokenizer* tokenizer() const { return tokenizer_.get(); }

  // A prompt's ids (with the tokenizer's special tokens, e.g. Mistral's <s>).
  std::vector<int32_t> Encode(const std::string& text) const;
  // A prompt as one user message in the tokenizer's chat template, with the generation prompt,
  // encoded (the template holds the special tokens). kInvalidArgument with the byte tokenizer
  // or a tokenizer without a chat template.
  vmm::StatusOr<std::vector<int32_t>> EncodeChat(const std::string& user_message) const;
  // A whole conversation in the chat template (tokenizer::ApplyChatTemplate with `options`; its
  // bos/eos tokens are the tokenizer's, whatever `options` says), encoded. kInvalidArgument
  // with the byte tokenizer ("the model has no tokenizer.json: the byte tokenizer has no chat
  // template"), a tokenizer without a chat template, or messages the template refuses (its
  // message).
  vmm::StatusOr<std::vector<int32_t>> EncodeChat(
      const std::vector<tokenizer::ChatMessage>& messages, tokenizer::ChatOptions options) const;
  // A prompt's text as the model sees it (special tokens shown).
  std::string DecodePrompt(std::span<const int32_t> ids) const;
  // The text generated after `prompt`: decoded in the prompt's context (a SentencePiece
  // vocabulary's leading space is kept, as vLLM's detokenizer keeps it), the special tokens
  // (the EOS among them) left out. It is what NewStream(prompt) gives for `output`, all of it.
  std::string DecodeOutput(std::span<const int32_t> prompt, std::span<const int32_t> output) const;
  // A stream of the text generated after `prompt`: its pieces and Finish() concatenated are
  // Decode(prompt + ids) without Decode(prompt), specials skipped (tokenizer/streaming.h).
  // With `skip_special_tokens` false, special tokens (the EOS among them) are text too.
  std::unique_ptr<TextStream> NewStream(std::span<const int32_t> prompt,
                                        bool skip_special_tokens = true) const;

  // The ids that end a request (engine::Request::stop_token_ids): the tokenizer's EOS
  // (tokenizer_config.json's eos_token); none with the byte tokenizer or without an EOS.
  std::vector<int32_t> StopTokenIds() const;
  // A random prompt token: with the byte tokenizer (*rng)() % 256, as before there were
  // tokenizers; otherwise uniform over the tokenizer's ids that are not special tokens.
  int32_t RandomToken(std::mt19937_64* rng) const;

 private:
  ModelText() = default;
  std::unique_ptr<tokenizer::Tokenizer> tokenizer_;
  std::string start_line_;
  std::vector<int32_t> ordinary_ids_;  // RandomToken's choices with a tokenizer
};

}  // namespace emoe::tools

#endif  // TOOLS_MODEL_TEXT_H_
