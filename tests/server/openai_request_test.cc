// Tests of /scale_elastic_ep's body (server/openai_api.h ParseScaleRequest) and of the requests'
// round trip: an accepted request written back (ToJson) parses to an equal request, for bodies
// that use every field and form.
#include <gtest/gtest.h>

#include <string>
#include <variant>

#include "server/openai_api.h"

namespace emoe::server {
namespace {

ScaleRequest OkScale(const std::string& body) {
  auto r = ParseScaleRequest(body);
  if (const ApiError* e = std::get_if<ApiError>(&r)) {
    ADD_FAILURE() << "refused: " << body << "\n  " << e->message;
    return ScaleRequest{};
  }
  return std::get<ScaleRequest>(r);
}

ApiError ErrScale(const std::string& body) {
  auto r = ParseScaleRequest(body);
  if (!std::holds_alternative<ApiError>(r)) {
    ADD_FAILURE() << "accepted: " << body;
    return ApiError{};
  }
  EXPECT_EQ(std::get<ApiError>(r).status, 400);
  return std::get<ApiError>(r);
}

TEST(ScaleRequestTest, BothPeersForms) {
  const ScaleRequest v = OkScale(R"({"new_data_parallel_size":4})");
  EXPECT_EQ(v.target, 4);
  EXPECT_EQ(v.method, "elastic");
  const ScaleRequest s = OkScale(R"({"new_ep_size":2,"method":"cold-restart"})");
  EXPECT_EQ(s.target, 2);
  EXPECT_EQ(s.method, "cold-restart");
  EXPECT_EQ(OkScale(R"({"new_data_parallel_size":1,"drain_timeout":120})").target, 1);
  EXPECT_EQ(OkScale(R"({"new_data_parallel_size":3,"drain_timeout":0.5,"x":[]})").target, 3);
  EXPECT_EQ(OkScale(R"({"new_ep_size":2,"new_data_parallel_size":null})").target, 2);
}

TEST(ScaleRequestTest, Refused) {
  EXPECT_EQ(ErrScale("{}").message,
            "'new_data_parallel_size' (vLLM) or 'new_ep_size' (SGLang) is required: the number of "
            "devices to serve on");
  EXPECT_EQ(ErrScale(R"({"new_data_parallel_size":2,"new_ep_size":2})").message,
            "give one of 'new_data_parallel_size' (vLLM) and 'new_ep_size' (SGLang), not both");
  EXPECT_EQ(ErrScale(R"({"new_data_parallel_size":0})").message,
            "'new_data_parallel_size' must be an integer between 1 and 4096, got 0");
  EXPECT_EQ(ErrScale(R"({"new_ep_size":"4"})").message,
            "'new_ep_size' must be an integer between 1 and 4096, got \"4\"");
  EXPECT_EQ(ErrScale(R"({"new_ep_size":4097})").param, "new_ep_size");
  EXPECT_EQ(ErrScale(R"({"new_ep_size":2.5})").param, "new_ep_size");
  EXPECT_EQ(ErrScale(R"({"new_ep_size":2,"method":5})").message,
            "'method' must be a string, got 5");
  EXPECT_EQ(ErrScale(R"({"new_ep_size":2,"method":""})").message,
            "'method' must be a scale method's name (1 to 64 bytes), got \"\"");
  EXPECT_EQ(ErrScale(R"({"new_ep_size":2,"drain_timeout":-1})").message,
            "'drain_timeout' must be a number of seconds >= 0, got -1");
  EXPECT_EQ(ErrScale(R"({"new_ep_size":2,"drain_timeout":"1"})").param, "drain_timeout");
  EXPECT_EQ(ErrScale("[2]").message, "the request body must be a JSON object, got an array [2]");
  EXPECT_NE(ErrScale("{\"method\":\"\xff\"}").message.find("invalid UTF-8"), std::string::npos);
}

TEST(ScaleRequestTest, RoundTrip) {
  for (const char* body : {R"({"new_data_parallel_size":4})",
                           R"({"new_ep_size":2,"method":"cold-restart","drain_timeout":3})"}) {
    const ScaleRequest r = OkScale(body);
    EXPECT_EQ(OkScale(r.ToJson()), r) << body << " -> " << r.ToJson();
  }
}

void ExpectRoundTrip(const std::string& body, bool chat) {
  auto first = ParseCompletionRequest(body, chat);
  ASSERT_TRUE(std::holds_alternative<CompletionRequest>(first))
      << body << "\n  " << std::get<ApiError>(first).message;
  const CompletionRequest& r = std::get<CompletionRequest>(first);
  const std::string again_body = r.ToJson();
  auto again = ParseCompletionRequest(again_body, chat);
  ASSERT_TRUE(std::holds_alternative<CompletionRequest>(again))
      << again_body << "\n  " << std::get<ApiError>(again).message;
  EXPECT_TRUE(std::get<CompletionRequest>(again) == r) << body << "\n  -> " << again_body;
}

TEST(CompletionRequestRoundTripTest, EveryFieldAndForm) {
  ExpectRoundTrip(R"({"model":"m","prompt":"hello"})", false);
  ExpectRoundTrip(R"({"model":"m","prompt":[[1,2,3]],"max_tokens":null})", false);
  ExpectRoundTrip(
      R"({"model":"m","prompt":["x"],"max_tokens":7,"min_tokens":2,"temperature":0.7,
          "top_p":0.9,"seed":-5,"stop":["a","\u00e9"],"stop_token_ids":[2],"ignore_eos":true,
          "skip_special_tokens":false,"include_stop_str_in_output":true,"stream":true,
          "stream_options":{},"user":"u"})",
      false);
  ExpectRoundTrip(
      R"({"model":"m","messages":[{"role":"system","content":"s"},
          {"role":"user","content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]},
          {"role":"assistant","content":null}],"max_completion_tokens":3,
          "add_generation_prompt":false,"chat_template_kwargs":{"enable_thinking":false},
          "stream":true,"stream_options":{"include_usage":false},"temperature":0})",
      true);
  ExpectRoundTrip(R"({"model":"m","messages":[{"role":"user","content":"x"}],"seed":0})", true);
}

TEST(CompletionRequestRoundTripTest, EqualityComparesEveryField) {
  auto parsed = ParseCompletionRequest(R"({"model":"m","prompt":"x"})", false);
  const CompletionRequest base = std::get<CompletionRequest>(parsed);
  CompletionRequest other = base;
  EXPECT_TRUE(other == base);
  other.top_p = 0.5;
  EXPECT_FALSE(other == base);
  other = base;
  other.messages.push_back({"user", "x"});
  EXPECT_FALSE(other == base);
  other = base;
  other.include_usage = true;
  EXPECT_FALSE(other == base);
}

}  // namespace
}  // namespace emoe::server
