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

#include <cstddef>
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

// Bounds of a request's lists (the body's size is the HTTP layer's: 413).
inline constexpr size_t kMaxStops = 16;                 // "stop" strings
inline constexpr size_t kMaxStopBytes = 256;            // bytes of one stop string
inline constexpr size_t kMaxStopTokenIds = 64;          // "stop_token_ids"
inline constexpr size_t kMaxMessages = 4096;            // "messages"
inline constexpr size_t kMaxContentParts = 1024;        // parts of one message's "content"
inline constexpr int64_t kMaxTokensLimit = 2147483647;  // max_tokens, min_tokens (int32)
inline constexpr int64_t kMaxScaleTarget = 4096;        // new_data_parallel_size / new_ep_size

struct CompletionRequest {
  bool chat = false;  // /v1/chat/completions
  std::string model;  // required
  // /v1/completions: "prompt" as a string, or a list of token ids (vLLM); a list of one string
  // (or of one list of ids) is that one prompt. Exactly one of prompt_text / prompt_ids is set;
  // neither is empty; ids are in [0, 2^31).
  std::optional<std::string> prompt_text;
  std::optional<std::vector<int32_t>> prompt_ids;
  // /v1/chat/completions: "messages" (1..kMaxMessages), each {"role", "content"}; role one of
  // system, user, assistant, tool; content a string or a list of {"type": "text", "text"} parts
  // (joined with "\n", as vLLM joins them), null or absent only for an assistant message ("").
  std::vector<tokenizer::ChatMessage> messages;
  bool add_generation_prompt = true;  // vLLM's chat extras
  bool enable_thinking = true;        // chat_template_kwargs.enable_thinking (Qwen3)
  // Unset: as many as the context leaves. /v1/completions: absent is 16 (vLLM's and OpenAI's
  // default), null is unset. Chat: absent or null is unset; "max_completion_tokens" wins over
  // "max_tokens" (vLLM). 1..kMaxTokensLimit.
  std::optional<int64_t> max_tokens;
  int64_t min_tokens = 0;    // vLLM: no stop (EOS or string) before this many; <= max_tokens
  double temperature = 1.0;  // 0..2; 0 = greedy
  double top_p = 1.0;        // (0, 1]
  // An integer in int64_t's range (vLLM's), kept as its two's-complement bits.
  std::optional<uint64_t> seed;
  std::vector<std::string> stop;  // "stop": a string or a list of <= kMaxStops non-empty strings
  std::vector<int32_t> stop_token_ids;      // vLLM; <= kMaxStopTokenIds ids in [0, 2^31)
  bool ignore_eos = false;                  // vLLM
  bool skip_special_tokens = true;          // vLLM
  bool include_stop_str_in_output = false;  // vLLM
  bool stream = false;
  // stream_options.include_usage (only with stream). As vLLM: an object "stream_options"
  // without the key means true; an explicit null, false.
  bool include_usage = false;
  std::string user;  // accepted, unused

  // A body that ParseCompletionRequest(body, chat) reads back as an equal request (the fuzz
  // target's round trip; logs).
  std::string ToJson() const;
  bool operator==(const CompletionRequest& o) const;
};

// Parses and checks a request body. The error names the field ("'temperature' must be a number
// between 0 and 2, got \"hot\"", param "temperature") or the JSON fault with the field being
// read and its byte offset ("'prompt': invalid UTF-8 in a string (JSON text must be UTF-8) at
// byte 11"); always status 400. Never throws, for any bytes.
std::variant<CompletionRequest, ApiError> ParseCompletionRequest(std::string_view body, bool chat);

// The body of /scale_elastic_ep: vLLM's new_data_parallel_size or SGLang's new_ep_size (one of
// them, an integer in 1..kMaxScaleTarget), plus our "method" (a ScaleOptions name, checked by
// the service; here a non-empty string of at most 64 bytes; default "elastic") and vLLM's
// "drain_timeout" (accepted, seconds >= 0, unused: nothing is dropped).
struct ScaleRequest {
  int64_t target = 0;
  std::string method = "elastic";
  std::string ToJson() const;  // {"new_data_parallel_size": target, "method": method}
  bool operator==(const ScaleRequest& o) const = default;
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
// A fresh identity: "chatcmpl-" (chat) or "cmpl-" and 32 random hex digits, created now.
ResponseId NewResponseId(bool chat, const std::string& model);

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
