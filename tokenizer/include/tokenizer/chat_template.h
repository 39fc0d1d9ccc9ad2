// tokenizer/chat_template.h: the chat templates of the two families, as code.
//
// Each function produces exactly the string the family's own Jinja template (its
// tokenizer_config.json "chat_template") renders for the same messages; the tests hold them to
// strings recorded from that template (tests/tokenizer/chat_template_test.cc says where each
// came from). The family comes from Tokenizer::chat_family(); a template of another family is
// refused when the tokenizer is asked to template (kInvalidArgument naming what it saw).
//
//   kChatML (Qwen3): optional leading system message, user/assistant/system turns as
//     "<|im_start|>{role}\n{content}<|im_end|>\n"; assistant turns after the last user query
//     carry Qwen3's <think> block handling; add_generation_prompt appends
//     "<|im_start|>assistant\n" (plus "<think>\n\n</think>\n\n" when enable_thinking is false).
//     A message of another role is refused (the Jinja template would silently drop it).
//   kMistral (Mixtral-8x7B-Instruct-v0.1): "<s>[INST] {user} [/INST]{assistant}</s>..."; roles
//     must alternate user/assistant starting with user; other roles are refused with the
//     template's own message.
//
// Thread safety: pure functions.
#ifndef TOKENIZER_CHAT_TEMPLATE_H_
#define TOKENIZER_CHAT_TEMPLATE_H_

#include <string>
#include <vector>

#include "tokenizer/tokenizer.h"
#include "vmm/status.h"

namespace emoe::tokenizer {

struct ChatMessage {
  std::string role;  // "system", "user", "assistant" (and "tool" for ChatML)
  std::string content;
};

struct ChatOptions {
  bool add_generation_prompt = true;
  bool enable_thinking = true;     // ChatML (Qwen3) only
  std::string bos_token = "<s>";   // kMistral
  std::string eos_token = "</s>";  // kMistral
};

// The templated text (to be encoded with add_special_tokens = false: the template holds BOS).
// kInvalidArgument for kNone ("the tokenizer has no chat template"), an empty message list
// (Mixtral's template would render just BOS), a role the template refuses (Mistral: the
// template's raise_exception message, naming the message's index and role).
vmm::StatusOr<std::string> ApplyChatTemplate(ChatFamily family,
                                             const std::vector<ChatMessage>& messages,
                                             const ChatOptions& options);

// The family of a Jinja chat template's text: kChatML when it uses <|im_start|> and <|im_end|>,
// kMistral when it uses [INST] and [/INST] without <<SYS>>, [SYSTEM_PROMPT] or
// [AVAILABLE_TOOLS] (Llama-2's and later Mistral templates, which render differently);
// kInvalidArgument otherwise (and for both families' markers at once), quoting its start.
vmm::StatusOr<ChatFamily> ChatFamilyOfTemplate(const std::string& jinja);

}  // namespace emoe::tokenizer

#endif  // TOKENIZER_CHAT_TEMPLATE_H_
