// server/openai_api.h: the OpenAI-compatible API's messages, as vLLM's server reads and writes
// them: the request bodies of /v1/completions and /v1/chat/completions parsed and checked field
// by field, the responses and stream chunks written, and OpenAI's error shape. Pure functions
// of their inputs (no engine, no tokenizer, no I/O), so that the parser can be fuzzed alone.
//
// Where OpenAI and vLLM differ, vLLM is followed (README "HTTP API"): extra fields vLLM accepts
// (ignore_eos, min_tokens, ...) are accepted or refused by name; unknown fields are ignored as
// both do. What this server cannot do (n > 1, best_of, logprobs, echo, tools, response_format,
// suffix, several prompts) is refused with 400 naming the field, never silently ignored.
//
// Thread safety: plain functions and values.
#ifndef SERVER_OPENAI_API_H_
#define SERVER_OPENAI_API_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "tokenizer/chat_template.h"

namespace emoe::server {

// OpenAI's error body {"error": {"message", "type", "param", "code"}} and its HTTP status.
struct ApiError {
  int status = 400;
  std::string message;
  std::string type = "invalid_request_error";  // "not_found_error", "server_error", ...
  std::string param;                           // the field at fault; "" -> null
  std::string code;                            // "" -> null; else e.g. "model_not_found"
  std::string ToJson() const;                  // the whole body
};
ApiError BadRequest(std::string message, std::string param = "");

struct CompletionRequest {
  bool chat = false;  // /v1/chat/completions
  std::string model;  // required
  // /v1/completions: "prompt" as a string, or a list of token ids (vLLM); a list of one string
  // is that string. Exactly one of prompt_text / prompt_ids is set.
  std::optional<std::string> prompt_text;
  std::optional<std::vector<int32_t>> prompt_ids;
  // /v1/chat/completions: "messages", each {"role", "content"}; content a string or a list of
  // {"type": "text", "text"} parts (joined), null only for an assistant message.
  std::vector<tokenizer::ChatMessage> messages;
  bool add_generation_prompt = true;  // vLLM's chat extras
  bool enable_thinking = true;        // chat_template_kwargs.enable_thinking (Qwen3)
  // Unset: as many as the context leaves (vLLM); chat also takes "max_completion_tokens".
  std::optional<int64_t> max_tokens;
  int64_t min_tokens = 0;     // vLLM: no stop (EOS or string) before this many
  double temperature = 1.0;   // 0..2; 0 = greedy
  double top_p = 1.0;         // (0, 1]
  std::optional<uint64_t> seed;
  std::vector<std::string> stop;  // "stop": a string or a list of up to 16 non-empty strings
  std::vector<int32_t> stop_token_ids;  // vLLM
  bool ignore_eos = false;              // vLLM
  bool skip_special_tokens = true;      // vLLM
  bool include_stop_str_in_output = false;  // vLLM
  bool stream = false;
  bool include_usage = false;  // stream_options.include_usage (only with stream)
  std::string user;            // accepted, unused
};

// Parses and checks a request body. The error names the field ("'temperature' must be a number
// between 0 and 2, got \"hot\"") or the JSON fault with its byte offset; never throws, for any
// bytes (non-UTF-8 text is refused naming the field).
std::variant<CompletionRequest, ApiError> ParseCompletionRequest(std::string_view body,
                                                                 bool chat);

// {"model": ...} of /scale_elastic_ep: vLLM's new_data_parallel_size or SGLang's new_ep_size
// (one of them, an integer >= 1), plus our "method" (a ScaleOptions name; default "elastic")
// and vLLM's "drain_timeout" (accepted, seconds >= 0, unused: nothing is dropped).
struct ScaleRequest {
  int64_t target = 0;
  std::string method = "elastic";
};
std::variant<ScaleRequest, ApiError> ParseScaleRequest(std::string_view body);

struct Usage {
  int64_t prompt_tokens = 0, completion_tokens = 0;
};

// The identity of one response: "cmpl-<hex>" / "chatcmpl-<hex>", its creation time (Unix s) and
// the served model name, the same in every chunk of a stream.
struct ResponseId {
  std::string id;
  int64_t created = 0;
  std::string model;
};

// A whole (non-streamed) answer: "text_completion" or "chat.completion" with one choice and
// usage. finish_reason "stop" or "length" (null never appears in a whole answer).
std::string CompletionJson(const ResponseId& r, bool chat, const std::string& text,
                           const std::string& finish_reason, const Usage& usage);

// Stream chunks, each the JSON of one "data: " event (SseEvent frames it):
//  - chat: the first chunk has delta {"role": "assistant", "content": ""}; then deltas with
//    "content"; the last has an empty delta and finish_reason. Completions: "text" chunks, the
//    last with finish_reason. finish_reason is null in the others.
//  - with include_usage: every chunk has "usage": null, and a final chunk with "choices": []
//    and the usage follows the finish chunk.
std::string ChatRoleChunkJson(const ResponseId& r, bool include_usage);
std::string DeltaChunkJson(const ResponseId& r, bool chat, const std::string& text,
                           const std::string& finish_reason /* "" -> null */, bool include_usage);
std::string UsageChunkJson(const ResponseId& r, bool chat, const Usage& usage);
// "data: <json>\n\n"; SseDone() is "data: [DONE]\n\n".
std::string SseEvent(const std::string& json);
std::string SseDone();

// GET /v1/models: one model, vLLM's fields (id, object "model", created, owned_by "emoe",
// root, parent null, max_model_len).
std::string ModelsJson(const std::string& served_name, const std::string& root, int64_t created,
                       int64_t max_model_len);

}  // namespace emoe::server

#endif  // SERVER_OPENAI_API_H_
