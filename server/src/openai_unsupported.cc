// server/src/openai_unsupported.cc: the table of fields vLLM reads and this server refuses
// unless they ask for nothing (openai_unsupported.h). The neutral values are JSON texts, parsed
// once; a request's value is compared with nlohmann's ==, which compares numbers by value (so
// 1 and 1.0 are both "n": 1).
#include "openai_unsupported.h"

#include <string>
#include <vector>

namespace emoe::server::internal {
namespace {

enum class Scope { kBoth, kCompletions, kChat };

struct Unsupported {
  const char* field;
  Scope scope;
  std::vector<const char*> neutral;  // JSON texts; null is always accepted
  const char* why;
};

const std::vector<Unsupported>& Table() {
  static const std::vector<Unsupported> table = {
      {"n", Scope::kBoth, {"1"}, "one choice per request"},
      {"best_of", Scope::kBoth, {"1"}, "one choice per request"},
      {"use_beam_search", Scope::kBoth, {"false"}, "no beam search"},
      {"echo", Scope::kBoth, {"false"}, "the prompt is not echoed"},
      {"suffix", Scope::kCompletions, {}, "no text is inserted"},
      {"prompt_embeds", Scope::kCompletions, {}, "prompts are text or token ids"},
      {"logprobs", Scope::kCompletions, {}, "log probabilities are not returned"},
      {"logprobs", Scope::kChat, {"false"}, "log probabilities are not returned"},
      {"top_logprobs", Scope::kChat, {"0"}, "log probabilities are not returned"},
      {"prompt_logprobs", Scope::kBoth, {}, "log probabilities are not returned"},
      {"return_tokens_as_token_ids", Scope::kBoth, {"false"}, "log probabilities are not returned"},
      {"frequency_penalty", Scope::kBoth, {"0"}, "no penalties are applied"},
      {"presence_penalty", Scope::kBoth, {"0"}, "no penalties are applied"},
      {"repetition_penalty", Scope::kBoth, {"1"}, "no penalties are applied"},
      {"length_penalty", Scope::kBoth, {"1"}, "no penalties are applied"},
      {"logit_bias", Scope::kBoth, {"{}"}, "the logits are not changed"},
      {"allowed_token_ids", Scope::kBoth, {}, "the logits are not changed"},
      {"bad_words", Scope::kBoth, {"[]"}, "the logits are not changed"},
      {"logits_processors", Scope::kBoth, {}, "the logits are not changed"},
      {"top_k", Scope::kBoth, {"0", "-1"}, "sampling is shaped by temperature and top_p only"},
      {"min_p", Scope::kBoth, {"0"}, "sampling is shaped by temperature and top_p only"},
      {"truncate_prompt_tokens", Scope::kBoth, {}, "prompts are not truncated"},
      {"add_special_tokens",
       Scope::kCompletions,
       {"true"},
       "the tokenizer adds its special tokens"},
      {"add_special_tokens", Scope::kChat, {"false"}, "the chat template holds the special tokens"},
      {"spaces_between_special_tokens", Scope::kBoth, {"true"}, "the tokenizer's decoding"},
      {"response_format", Scope::kBoth, {R"({"type":"text"})"}, "output is not constrained"},
      {"guided_json", Scope::kBoth, {}, "output is not constrained"},
      {"guided_regex", Scope::kBoth, {}, "output is not constrained"},
      {"guided_choice", Scope::kBoth, {}, "output is not constrained"},
      {"guided_grammar", Scope::kBoth, {}, "output is not constrained"},
      {"structural_tag", Scope::kBoth, {}, "output is not constrained"},
      {"guided_decoding_backend", Scope::kBoth, {}, "output is not constrained"},
      {"guided_whitespace_pattern", Scope::kBoth, {}, "output is not constrained"},
      {"tools", Scope::kChat, {"[]"}, "no tool calling"},
      {"tool_choice", Scope::kChat, {R"("none")", R"("auto")"}, "no tool calling"},
      {"functions", Scope::kChat, {"[]"}, "no tool calling"},
      {"function_call", Scope::kChat, {R"("none")", R"("auto")"}, "no tool calling"},
      {"continue_final_message", Scope::kChat, {"false"}, "the model's chat template is used"},
      {"chat_template", Scope::kChat, {}, "the model's chat template is used"},
      {"documents", Scope::kChat, {}, "the model's chat template is used"},
      {"reasoning_effort", Scope::kChat, {}, "no reasoning parser"},
      {"include_reasoning", Scope::kChat, {"true"}, "no reasoning parser"},
      {"mm_processor_kwargs", Scope::kBoth, {}, "text only"},
      {"modalities", Scope::kChat, {R"(["text"])"}, "text only"},
      {"audio", Scope::kChat, {}, "text only"},
      {"prediction", Scope::kChat, {}, "no predicted outputs"},
      {"priority", Scope::kBoth, {"0"}, "no priority scheduling"},
      {"vllm_xargs", Scope::kBoth, {"{}"}, "no extensions"},
      {"kv_transfer_params", Scope::kBoth, {}, "no disaggregated serving"},
  };
  return table;
}

// The neutral values of Table()[i], parsed.
const std::vector<std::vector<Json>>& Neutrals() {
  static const std::vector<std::vector<Json>> neutrals = [] {
    std::vector<std::vector<Json>> all;
    for (const Unsupported& u : Table()) {
      std::vector<Json> values;
      for (const char* text : u.neutral) values.push_back(Json::parse(text, nullptr, false));
      all.push_back(std::move(values));
    }
    return all;
  }();
  return neutrals;
}

}  // namespace

MaybeError CheckUnsupported(const Fields& f, bool chat) {
  const std::vector<Unsupported>& table = Table();
  for (size_t i = 0; i < table.size(); ++i) {
    const Unsupported& u = table[i];
    if (u.scope == (chat ? Scope::kCompletions : Scope::kChat)) continue;
    const Json* v = f.Get(u.field);
    if (v == nullptr) continue;
    bool neutral = false;
    std::string accepted;
    for (const Json& n : Neutrals()[i]) {
      neutral = neutral || *v == n;
      accepted += (accepted.empty() ? "" : " or ") + n.dump();
    }
    if (neutral) continue;
    return BadRequest("'" + f.Name(u.field) + "' is not supported (" + u.why + "): only " +
                          (accepted.empty() ? std::string("null") : accepted) +
                          " is accepted, got " + Shown(*v),
                      f.Name(u.field));
  }
  return std::nullopt;
}

}  // namespace emoe::server::internal
