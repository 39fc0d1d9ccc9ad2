// server/src/openai_request_json.cc: a parsed request written back as a body (openai_api.h
// CompletionRequest::ToJson, ScaleRequest::ToJson) and request equality. Every field of the
// struct is written, in the form the parser reads back to the same value: an unset max_tokens
// of /v1/completions as null (absent would be 16), the seed as the int64_t it came as,
// stream_options only with stream, a chat message's content as one string.
#include <nlohmann/json.hpp>

#include "server/openai_api.h"

namespace emoe::server {
namespace {

using OJson = nlohmann::ordered_json;

std::string Dump(const OJson& j) { return j.dump(-1, ' ', false, OJson::error_handler_t::replace); }

}  // namespace

std::string CompletionRequest::ToJson() const {
  OJson j;
  j["model"] = model;
  if (chat) {
    j["messages"] = OJson::array();
    for (const tokenizer::ChatMessage& m : messages) {
      j["messages"].push_back({{"role", m.role}, {"content", m.content}});
    }
    j["add_generation_prompt"] = add_generation_prompt;
    j["chat_template_kwargs"] = {{"enable_thinking", enable_thinking}};
  } else if (prompt_ids) {
    j["prompt"] = *prompt_ids;
  } else {
    j["prompt"] = prompt_text.value_or("");
  }
  j["max_tokens"] = max_tokens ? OJson(*max_tokens) : OJson(nullptr);
  j["min_tokens"] = min_tokens;
  j["temperature"] = temperature;
  j["top_p"] = top_p;
  if (seed) j["seed"] = static_cast<int64_t>(*seed);
  j["stop"] = stop;
  j["stop_token_ids"] = stop_token_ids;
  j["ignore_eos"] = ignore_eos;
  j["skip_special_tokens"] = skip_special_tokens;
  j["include_stop_str_in_output"] = include_stop_str_in_output;
  j["stream"] = stream;
  if (stream) j["stream_options"] = {{"include_usage", include_usage}};
  if (!user.empty()) j["user"] = user;
  return Dump(j);
}

bool CompletionRequest::operator==(const CompletionRequest& o) const {
  if (messages.size() != o.messages.size()) return false;
  for (size_t i = 0; i < messages.size(); ++i) {
    if (messages[i].role != o.messages[i].role || messages[i].content != o.messages[i].content) {
      return false;
    }
  }
  return chat == o.chat && model == o.model && prompt_text == o.prompt_text &&
         prompt_ids == o.prompt_ids && add_generation_prompt == o.add_generation_prompt &&
         enable_thinking == o.enable_thinking && max_tokens == o.max_tokens &&
         min_tokens == o.min_tokens && temperature == o.temperature && top_p == o.top_p &&
         seed == o.seed && stop == o.stop && stop_token_ids == o.stop_token_ids &&
         ignore_eos == o.ignore_eos && skip_special_tokens == o.skip_special_tokens &&
         include_stop_str_in_output == o.include_stop_str_in_output && stream == o.stream &&
         include_usage == o.include_usage && user == o.user;
}

std::string ScaleRequest::ToJson() const {
  OJson j;
  j["new_data_parallel_size"] = target;
  j["method"] = method;
  return Dump(j);
}

}  // namespace emoe::server
