// Fuzzes the OpenAI API's request parsers (server/openai_api.h): the bytes as the body of
// /v1/completions, of /v1/chat/completions and of /scale_elastic_ep. None may throw or crash.
// A refusal is a 400 of type invalid_request_error with a message, and its error body is valid
// JSON; an accepted request keeps the parser's contract (bounds, one prompt form) and, written
// back (ToJson), parses again to an equal request.
#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string_view>
#include <variant>

#include "fuzz_check.h"
#include "server/openai_api.h"

namespace {

using emoe::server::ApiError;
using emoe::server::CompletionRequest;
using emoe::server::ScaleRequest;

void CheckError(const ApiError& e) {
  FUZZ_CHECK(e.status == 400);
  FUZZ_CHECK(!e.message.empty());
  FUZZ_CHECK(e.type == "invalid_request_error");
  const nlohmann::json body = nlohmann::json::parse(e.ToJson(), nullptr, false);
  FUZZ_CHECK(!body.is_discarded());
  FUZZ_CHECK(body.contains("error"));
}

void CheckContract(const CompletionRequest& r, bool chat) {
  FUZZ_CHECK(r.chat == chat);
  FUZZ_CHECK(!r.model.empty());
  if (chat) {
    FUZZ_CHECK(!r.messages.empty() && r.messages.size() <= emoe::server::kMaxMessages);
    FUZZ_CHECK(!r.prompt_text && !r.prompt_ids);
  } else {
    FUZZ_CHECK(r.messages.empty());
    FUZZ_CHECK(r.prompt_text.has_value() != r.prompt_ids.has_value());
    FUZZ_CHECK(r.prompt_text ? !r.prompt_text->empty() : !r.prompt_ids->empty());
    if (r.prompt_ids) {
      for (int32_t id : *r.prompt_ids) FUZZ_CHECK(id >= 0);
    }
  }
  FUZZ_CHECK(r.temperature >= 0 && r.temperature <= 2);
  FUZZ_CHECK(r.top_p > 0 && r.top_p <= 1);
  FUZZ_CHECK(!r.max_tokens || (*r.max_tokens >= 1 && *r.max_tokens >= r.min_tokens));
  FUZZ_CHECK(r.min_tokens >= 0);
  FUZZ_CHECK(r.stop.size() <= emoe::server::kMaxStops);
  for (const std::string& s : r.stop) {
    FUZZ_CHECK(!s.empty() && s.size() <= emoe::server::kMaxStopBytes);
  }
  FUZZ_CHECK(r.stop_token_ids.size() <= emoe::server::kMaxStopTokenIds);
  FUZZ_CHECK(r.stream || !r.include_usage);
}

void FuzzCompletion(std::string_view body, bool chat) {
  auto r = emoe::server::ParseCompletionRequest(body, chat);
  if (const ApiError* e = std::get_if<ApiError>(&r)) return CheckError(*e);
  const CompletionRequest& req = std::get<CompletionRequest>(r);
  CheckContract(req, chat);
  auto again = emoe::server::ParseCompletionRequest(req.ToJson(), chat);
  FUZZ_CHECK(std::holds_alternative<CompletionRequest>(again));
  FUZZ_CHECK(std::get<CompletionRequest>(again) == req);
}

void FuzzScale(std::string_view body) {
  auto r = emoe::server::ParseScaleRequest(body);
  if (const ApiError* e = std::get_if<ApiError>(&r)) return CheckError(*e);
  const ScaleRequest& req = std::get<ScaleRequest>(r);
  FUZZ_CHECK(req.target >= 1 && req.target <= emoe::server::kMaxScaleTarget);
  FUZZ_CHECK(!req.method.empty());
  auto again = emoe::server::ParseScaleRequest(req.ToJson());
  FUZZ_CHECK(std::holds_alternative<ScaleRequest>(again));
  FUZZ_CHECK(std::get<ScaleRequest>(again) == req);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view body(reinterpret_cast<const char*>(data), size);
  FuzzCompletion(body, false);
  FuzzCompletion(body, true);
  FuzzScale(body);
  return 0;
}
