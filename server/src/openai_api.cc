// server/src/openai_api.cc: what the API writes (openai_api.h): OpenAI's error body, the whole
// answers and stream chunks in the shapes vLLM's server writes (vllm/entrypoints/openai:
// CompletionResponse, ChatCompletionResponse, *StreamResponse; the role chunk and the usage
// chunk as serving_chat.py / serving_completion.py send them), the model list, the SSE frames
// and fresh response ids. Keys are written in the order those classes declare them
// (ordered_json); strings are written with invalid UTF-8 replaced (U+FFFD), never thrown on.
#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <random>

#include "server/openai_api.h"

namespace emoe::server {
namespace {

using OJson = nlohmann::ordered_json;

std::string Dump(const OJson& j) { return j.dump(-1, ' ', false, OJson::error_handler_t::replace); }

OJson NullIfEmpty(const std::string& s) { return s.empty() ? OJson(nullptr) : OJson(s); }

// The fields every answer and chunk opens with.
OJson Head(const ResponseId& r, const char* object) {
  OJson j;
  j["id"] = r.id;
  j["object"] = object;
  j["created"] = r.created;
  j["model"] = r.model;
  return j;
}

OJson UsageJson(const Usage& u) {
  OJson j;
  j["prompt_tokens"] = u.prompt_tokens;
  j["total_tokens"] = u.prompt_tokens + u.completion_tokens;
  j["completion_tokens"] = u.completion_tokens;
  return j;
}

// A chunk: the head, one choice, and "usage": null when the stream ends with a usage chunk.
std::string Chunk(const ResponseId& r, bool chat, OJson choice, bool include_usage) {
  OJson j = Head(r, chat ? "chat.completion.chunk" : "text_completion");
  j["choices"] = OJson::array({std::move(choice)});
  if (include_usage) j["usage"] = nullptr;
  return Dump(j);
}

}  // namespace

std::string ApiError::ToJson() const {
  OJson e;
  e["message"] = message;
  e["type"] = type;
  e["param"] = NullIfEmpty(param);
  e["code"] = NullIfEmpty(code);
  OJson j;
  j["error"] = std::move(e);
  return Dump(j);
}

ResponseId NewResponseId(bool chat, const std::string& model) {
  thread_local std::mt19937_64 rng = [] {
    std::random_device rd;
    std::seed_seq seq{rd(), rd(), rd(), rd()};
    return std::mt19937_64(seq);
  }();
  char hex[33];
  std::snprintf(hex, sizeof(hex), "%016llx%016llx", static_cast<unsigned long long>(rng()),
                static_cast<unsigned long long>(rng()));
  ResponseId r;
  r.id = std::string(chat ? "chatcmpl-" : "cmpl-") + hex;
  r.created = std::chrono::duration_cast<std::chrono::seconds>(
                  std::chrono::system_clock::now().time_since_epoch())
                  .count();
  r.model = model;
  return r;
}

std::string CompletionJson(const ResponseId& r, bool chat, const std::string& text,
                           const std::string& finish_reason, const Usage& usage) {
  OJson choice;
  choice["index"] = 0;
  if (chat) {
    OJson message;
    message["role"] = "assistant";
    message["content"] = text;
    message["refusal"] = nullptr;
    message["annotations"] = nullptr;
    message["audio"] = nullptr;
    message["function_call"] = nullptr;
    message["tool_calls"] = OJson::array();
    message["reasoning_content"] = nullptr;
    choice["message"] = std::move(message);
  } else {
    choice["text"] = text;
  }
  choice["logprobs"] = nullptr;
  choice["finish_reason"] = finish_reason;
  OJson j = Head(r, chat ? "chat.completion" : "text_completion");
  j["choices"] = OJson::array({std::move(choice)});
  j["service_tier"] = nullptr;
  j["system_fingerprint"] = nullptr;
  j["usage"] = UsageJson(usage);
  return Dump(j);
}

std::string ChatRoleChunkJson(const ResponseId& r, bool include_usage) {
  OJson choice;
  choice["index"] = 0;
  choice["delta"] = {{"role", "assistant"}, {"content", ""}};
  choice["logprobs"] = nullptr;
  choice["finish_reason"] = nullptr;
  return Chunk(r, true, std::move(choice), include_usage);
}

std::string DeltaChunkJson(const ResponseId& r, bool chat, const std::string& text,
                           const std::string& finish_reason, bool include_usage) {
  OJson choice;
  choice["index"] = 0;
  if (chat) {
    // The finish chunk's delta is empty unless it carries the last text (OpenAI's shape).
    choice["delta"] =
        text.empty() && !finish_reason.empty() ? OJson::object() : OJson{{"content", text}};
  } else {
    choice["text"] = text;
  }
  choice["logprobs"] = nullptr;
  choice["finish_reason"] = NullIfEmpty(finish_reason);
  return Chunk(r, chat, std::move(choice), include_usage);
}

std::string UsageChunkJson(const ResponseId& r, bool chat, const Usage& usage) {
  OJson j = Head(r, chat ? "chat.completion.chunk" : "text_completion");
  j["choices"] = OJson::array();
  j["usage"] = UsageJson(usage);
  return Dump(j);
}

std::string SseEvent(const std::string& json) { return "data: " + json + "\n\n"; }

std::string SseDone() { return "data: [DONE]\n\n"; }

std::string ModelsJson(const std::string& served_name, const std::string& root, int64_t created,
                       int64_t max_model_len) {
  OJson card;
  card["id"] = served_name;
  card["object"] = "model";
  card["created"] = created;
  card["owned_by"] = "emoe";
  card["root"] = root;
  card["parent"] = nullptr;
  card["max_model_len"] = max_model_len;
  OJson j;
  j["object"] = "list";
  j["data"] = OJson::array({std::move(card)});
  return Dump(j);
}

}  // namespace emoe::server
