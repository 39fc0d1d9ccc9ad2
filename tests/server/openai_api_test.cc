// Tests of the request parser (server/openai_api.h ParseCompletionRequest): every field's rule,
// accepted and refused, with the message checked word for word where it is the contract
// (field, expectation, value shown), and the JSON faults with their field and byte offset.
// Scale requests and the round trip (ToJson then parse) are in openai_request_test.cc.
#include <gtest/gtest.h>

#include <limits>
#include <string>
#include <variant>

#include "server/openai_api.h"

namespace emoe::server {
namespace {

CompletionRequest Ok(const std::string& body, bool chat = false) {
  auto r = ParseCompletionRequest(body, chat);
  if (const ApiError* e = std::get_if<ApiError>(&r)) {
    ADD_FAILURE() << "refused: " << body << "\n  " << e->message;
    return CompletionRequest{};
  }
  return std::get<CompletionRequest>(r);
}

ApiError Err(const std::string& body, bool chat = false) {
  auto r = ParseCompletionRequest(body, chat);
  if (!std::holds_alternative<ApiError>(r)) {
    ADD_FAILURE() << "accepted: " << body;
    return ApiError{};
  }
  const ApiError e = std::get<ApiError>(r);
  EXPECT_EQ(e.status, 400) << body;
  EXPECT_EQ(e.type, "invalid_request_error") << body;
  EXPECT_FALSE(e.message.empty()) << body;
  return e;
}

// A completion body with the given extra members ("" for none).
std::string Cmpl(const std::string& extra) {
  return R"({"model":"m","prompt":"hi")" + (extra.empty() ? "" : "," + extra) + "}";
}
std::string Chat(const std::string& extra) {
  return R"({"model":"m","messages":[{"role":"user","content":"hi"}])" +
         (extra.empty() ? "" : "," + extra) + "}";
}

TEST(CompletionRequestTest, Defaults) {
  const CompletionRequest r = Ok(Cmpl(""));
  EXPECT_FALSE(r.chat);
  EXPECT_EQ(r.model, "m");
  EXPECT_EQ(r.prompt_text, "hi");
  EXPECT_FALSE(r.prompt_ids);
  EXPECT_EQ(r.max_tokens, 16);  // vLLM's and OpenAI's default for completions
  EXPECT_EQ(r.min_tokens, 0);
  EXPECT_EQ(r.temperature, 1.0);
  EXPECT_EQ(r.top_p, 1.0);
  EXPECT_FALSE(r.seed);
  EXPECT_TRUE(r.stop.empty());
  EXPECT_TRUE(r.stop_token_ids.empty());
  EXPECT_FALSE(r.ignore_eos);
  EXPECT_TRUE(r.skip_special_tokens);
  EXPECT_FALSE(r.include_stop_str_in_output);
  EXPECT_FALSE(r.stream);
  EXPECT_FALSE(r.include_usage);
  const CompletionRequest c = Ok(Chat(""), true);
  EXPECT_TRUE(c.chat);
  EXPECT_FALSE(c.max_tokens);  // chat: as many as the context leaves
  EXPECT_TRUE(c.add_generation_prompt);
  EXPECT_TRUE(c.enable_thinking);
  ASSERT_EQ(c.messages.size(), 1u);
  EXPECT_EQ(c.messages[0].role, "user");
  EXPECT_EQ(c.messages[0].content, "hi");
}

TEST(CompletionRequestTest, Model) {
  EXPECT_EQ(Err(R"({"prompt":"x"})").message,
            "'model' is required (the served model's name, as GET /v1/models lists)");
  EXPECT_EQ(Err(R"({"model":null,"prompt":"x"})").param, "model");
  EXPECT_EQ(Err(R"({"model":5,"prompt":"x"})").message,
            "'model' must be a non-empty string, got 5");
  EXPECT_EQ(Err(R"({"model":"","prompt":"x"})").message,
            "'model' must be a non-empty string, got \"\"");
}

TEST(CompletionRequestTest, PromptForms) {
  EXPECT_EQ(Ok(R"({"model":"m","prompt":["one"]})").prompt_text, "one");
  const CompletionRequest ids = Ok(R"({"model":"m","prompt":[1,2,2147483647]})");
  ASSERT_TRUE(ids.prompt_ids);
  EXPECT_EQ(*ids.prompt_ids, (std::vector<int32_t>{1, 2, 2147483647}));
  EXPECT_FALSE(ids.prompt_text);
  EXPECT_EQ(*Ok(R"({"model":"m","prompt":[[7,8]]})").prompt_ids, (std::vector<int32_t>{7, 8}));
  EXPECT_EQ(*Ok(R"({"model":"m","prompt":[3.0]})").prompt_ids, (std::vector<int32_t>{3}));
}

TEST(CompletionRequestTest, PromptRefused) {
  EXPECT_EQ(Err(R"({"model":"m"})").message,
            "'prompt' is required (a string or a list of token ids)");
  EXPECT_EQ(Err(R"({"model":"m","prompt":""})").message, "'prompt' must be non-empty, got \"\"");
  EXPECT_EQ(Err(R"({"model":"m","prompt":[]})").message, "'prompt' must be non-empty, got []");
  EXPECT_EQ(Err(R"({"model":"m","prompt":[[]]})").message, "'prompt[0]' must be non-empty, got []");
  EXPECT_EQ(Err(R"({"model":"m","prompt":[""]})").param, "prompt[0]");
  EXPECT_EQ(Err(R"({"model":"m","prompt":{"a":1}})").message,
            "'prompt' must be a string or a list of token ids, got {\"a\":1}");
  EXPECT_EQ(Err(R"({"model":"m","prompt":["a","b"]})").message,
            "'prompt' holds 2 prompts; this server takes one prompt per request");
  EXPECT_EQ(Err(R"({"model":"m","prompt":[[1],[2]]})").param, "prompt");
  const ApiError neg = Err(R"({"model":"m","prompt":[1,-1]})");
  EXPECT_EQ(neg.message,
            "'prompt[1]' must be a token id (an integer between 0 and 2147483647), got -1");
  EXPECT_EQ(neg.param, "prompt[1]");
  EXPECT_EQ(Err(R"({"model":"m","prompt":[1,2147483648]})").param, "prompt[1]");
  EXPECT_EQ(Err(R"({"model":"m","prompt":[1,"a"]})").param, "prompt[1]");
  EXPECT_EQ(Err(R"({"model":"m","prompt":[1.5]})").param, "prompt[0]");
  EXPECT_EQ(Err(R"({"model":"m","prompt":[[1,true]]})").param, "prompt[0][1]");
}

TEST(CompletionRequestTest, Messages) {
  const CompletionRequest r = Ok(
      R"({"model":"m","messages":[{"role":"system","content":"s"},
          {"role":"user","content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]},
          {"role":"assistant","content":null},{"role":"assistant"},
          {"role":"tool","content":"t","tool_call_id":"x"},
          {"role":"assistant","content":"c","tool_calls":[],"name":"bob"}]})",
      true);
  ASSERT_EQ(r.messages.size(), 6u);
  EXPECT_EQ(r.messages[0].role, "system");
  EXPECT_EQ(r.messages[1].content, "a\nb");  // parts joined as vLLM joins them
  EXPECT_EQ(r.messages[2].content, "");
  EXPECT_EQ(r.messages[3].content, "");
  EXPECT_EQ(r.messages[4].role, "tool");
  EXPECT_EQ(r.messages[5].content, "c");
  std::string many = R"({"model":"m","messages":[)";
  for (size_t i = 0; i < kMaxMessages; ++i) many += R"({"role":"user","content":"x"},)";
  EXPECT_EQ(Ok(many.substr(0, many.size() - 1) + "]}", true).messages.size(), kMaxMessages);
  EXPECT_EQ(Err(many + R"({"role":"user","content":"x"}]})", true).message,
            "'messages' has 4097 messages; at most 4096 are accepted");
}

TEST(CompletionRequestTest, MessagesRefused) {
  EXPECT_EQ(Err(R"({"model":"m"})", true).message,
            "'messages' is required (a list of {\"role\", \"content\"})");
  EXPECT_EQ(Err(R"({"model":"m","messages":"hi"})", true).message,
            "'messages' must be a list of {\"role\", \"content\"}, got \"hi\"");
  EXPECT_EQ(Err(R"({"model":"m","messages":[]})", true).message,
            "'messages' must be non-empty, got []");
  EXPECT_EQ(Err(R"({"model":"m","messages":["hi"]})", true).message,
            "'messages[0]' must be a message {\"role\", \"content\"}, got \"hi\"");
  EXPECT_EQ(
      Err(R"({"model":"m","messages":[{"content":"x"}]})", true).message,
      "'messages[0].role' is required (one of \"system\", \"user\", \"assistant\", \"tool\")");
  const ApiError dev =
      Err(R"({"model":"m","messages":[{"role":"developer","content":"x"}]})", true);
  EXPECT_EQ(dev.message,
            "'messages[0].role' must be one of \"system\", \"user\", \"assistant\", \"tool\", got "
            "\"developer\"");
  EXPECT_EQ(dev.param, "messages[0].role");
  EXPECT_EQ(Err(R"({"model":"m","messages":[{"role":"user"}]})", true).message,
            "'messages[0].content' is required (a user message has content)");
  EXPECT_EQ(Err(R"({"model":"m","messages":[{"role":"user","content":5}]})", true).message,
            "'messages[0].content' must be a string or a list of text parts, got 5");
  EXPECT_EQ(
      Err(R"({"model":"m","messages":[{"role":"user","content":[{"type":"image_url","image_url":{}}]}]})",
          true)
          .message,
      "'messages[0].content[0].type' must be \"text\" (this server reads text only), got "
      "\"image_url\"");
  EXPECT_EQ(Err(R"({"model":"m","messages":[{"role":"user","content":[{"type":"text"}]}]})", true)
                .message,
            "'messages[0].content[0].text' is required (a string)");
  EXPECT_EQ(Err(R"({"model":"m","messages":[{"role":"user","content":["x"]}]})", true).param,
            "messages[0].content[0]");
  EXPECT_EQ(
      Err(R"({"model":"m","messages":[{"role":"assistant","content":"x",
                    "tool_calls":[{"id":"1"}]}]})",
          true)
          .message,
      "'messages[0].tool_calls' is not supported (tool calling is not), got [{\"id\":\"1\"}]");
}

TEST(CompletionRequestTest, Lengths) {
  EXPECT_FALSE(Ok(Cmpl(R"("max_tokens":null)")).max_tokens);  // null: unset, not 16
  EXPECT_EQ(Ok(Cmpl(R"("max_tokens":1)")).max_tokens, 1);
  EXPECT_EQ(Ok(Cmpl(R"("max_tokens":16.0)")).max_tokens, 16);  // pydantic takes 16.0 too
  EXPECT_EQ(Ok(Cmpl(R"("max_tokens":2147483647)")).max_tokens, 2147483647);
  EXPECT_EQ(Err(Cmpl(R"("max_tokens":0)")).message,
            "'max_tokens' must be an integer between 1 and 2147483647, got 0");
  EXPECT_EQ(Err(Cmpl(R"("max_tokens":2147483648)")).param, "max_tokens");
  EXPECT_EQ(Err(Cmpl(R"("max_tokens":1.5)")).message,
            "'max_tokens' must be an integer between 1 and 2147483647, got 1.5");
  EXPECT_EQ(Err(Cmpl(R"("max_tokens":"16")")).message,
            "'max_tokens' must be an integer between 1 and 2147483647, got \"16\"");
  EXPECT_EQ(Ok(Chat(R"("max_tokens":5)"), true).max_tokens, 5);
  EXPECT_EQ(Ok(Chat(R"("max_tokens":5,"max_completion_tokens":7)"), true).max_tokens, 7);
  EXPECT_EQ(Err(Chat(R"("max_completion_tokens":-1)"), true).param, "max_completion_tokens");
  // max_completion_tokens is a chat field; completions ignore it as an unknown one.
  EXPECT_EQ(Ok(Cmpl(R"("max_completion_tokens":-1)")).max_tokens, 16);
  EXPECT_EQ(Ok(Cmpl(R"("min_tokens":16)")).min_tokens, 16);
  EXPECT_EQ(Err(Cmpl(R"("min_tokens":17)")).message,
            "'min_tokens' (17) must not be greater than the maximum (16)");
  EXPECT_EQ(Ok(Chat(R"("min_tokens":1000)"), true).min_tokens, 1000);
  EXPECT_EQ(Err(Cmpl(R"("min_tokens":-1)")).param, "min_tokens");
}

TEST(CompletionRequestTest, Sampling) {
  EXPECT_EQ(Ok(Cmpl(R"("temperature":0)")).temperature, 0.0);
  EXPECT_EQ(Ok(Cmpl(R"("temperature":2)")).temperature, 2.0);
  EXPECT_EQ(Ok(Cmpl(R"("temperature":null)")).temperature, 1.0);
  EXPECT_EQ(Err(Cmpl(R"("temperature":"hot")")).message,
            "'temperature' must be a number between 0 and 2, got \"hot\"");
  EXPECT_EQ(Err(Cmpl(R"("temperature":-0.5)")).message,
            "'temperature' must be a number between 0 and 2, got -0.5");
  EXPECT_EQ(Err(Cmpl(R"("temperature":2.5)")).param, "temperature");
  EXPECT_EQ(Ok(Cmpl(R"("top_p":0.5)")).top_p, 0.5);
  EXPECT_EQ(Ok(Cmpl(R"("top_p":1)")).top_p, 1.0);
  EXPECT_EQ(Err(Cmpl(R"("top_p":0)")).message, "'top_p' must be a number in (0, 1], got 0");
  EXPECT_EQ(Err(Cmpl(R"("top_p":1.01)")).param, "top_p");
  EXPECT_EQ(Ok(Cmpl(R"("seed":42)")).seed, 42u);
  EXPECT_EQ(Ok(Cmpl(R"("seed":-1)")).seed, std::numeric_limits<uint64_t>::max());
  EXPECT_EQ(Ok(Cmpl(R"("seed":9223372036854775807)")).seed, 9223372036854775807u);
  EXPECT_EQ(Err(Cmpl(R"("seed":9223372036854775808)")).message,
            "'seed' must be an integer between -9223372036854775808 and 9223372036854775807, got "
            "9223372036854775808");
  EXPECT_EQ(Err(Cmpl(R"("seed":0.5)")).param, "seed");
}

TEST(CompletionRequestTest, Stops) {
  EXPECT_EQ(Ok(Cmpl(R"("stop":"\n\n")")).stop, (std::vector<std::string>{"\n\n"}));
  EXPECT_EQ(Ok(Cmpl(R"("stop":["a","b"])")).stop, (std::vector<std::string>{"a", "b"}));
  EXPECT_TRUE(Ok(Cmpl(R"("stop":[])")).stop.empty());
  std::string sixteen = R"("stop":[)";
  for (int i = 0; i < 16; ++i) sixteen += "\"s" + std::to_string(i) + "\",";
  EXPECT_EQ(Ok(Cmpl(sixteen.substr(0, sixteen.size() - 1) + "]")).stop.size(), 16u);
  EXPECT_EQ(Err(Cmpl(sixteen + "\"x\"]")).message,
            "'stop' must be a string or a list of at most 16 strings of 1 to 256 bytes, got "
            "[\"s0\",\"s1\",\"s2\",\"s3\",\"s4\",\"s5\",\"s6\",\"s7\"...");
  EXPECT_EQ(Err(Cmpl(R"("stop":"")")).message,
            "'stop' must be a string of 1 to 256 bytes, got \"\"");
  EXPECT_EQ(Err(Cmpl(R"("stop":["a",1])")).message,
            "'stop[1]' must be a string of 1 to 256 bytes, got 1");
  EXPECT_EQ(Ok(Cmpl("\"stop\":\"" + std::string(256, 'x') + "\"")).stop[0].size(), 256u);
  EXPECT_EQ(Err(Cmpl("\"stop\":[\"" + std::string(257, 'x') + "\"]")).param, "stop[0]");
  EXPECT_EQ(Err(Cmpl(R"("stop":5)")).param, "stop");
  EXPECT_EQ(Ok(Cmpl(R"("stop_token_ids":[0,151645])")).stop_token_ids,
            (std::vector<int32_t>{0, 151645}));
  EXPECT_EQ(Err(Cmpl(R"("stop_token_ids":[-1])")).param, "stop_token_ids[0]");
  std::string ids = R"("stop_token_ids":[)";
  for (int i = 0; i <= 64; ++i) ids += std::to_string(i) + (i < 64 ? "," : "]");
  EXPECT_EQ(Err(Cmpl(ids)).param, "stop_token_ids");
  const CompletionRequest b = Ok(
      Cmpl(R"("ignore_eos":true,"skip_special_tokens":false,"include_stop_str_in_output":true)"));
  EXPECT_TRUE(b.ignore_eos);
  EXPECT_FALSE(b.skip_special_tokens);
  EXPECT_TRUE(b.include_stop_str_in_output);
  EXPECT_EQ(Err(Cmpl(R"("ignore_eos":"yes")")).message,
            "'ignore_eos' must be true or false, got \"yes\"");
  EXPECT_EQ(Err(Cmpl(R"("skip_special_tokens":1)")).param, "skip_special_tokens");
}

TEST(CompletionRequestTest, Stream) {
  EXPECT_TRUE(Ok(Cmpl(R"("stream":true)")).stream);
  EXPECT_FALSE(Ok(Cmpl(R"("stream":true)")).include_usage);
  // vLLM: stream_options without include_usage means true; an explicit null, false.
  EXPECT_TRUE(Ok(Cmpl(R"("stream":true,"stream_options":{})")).include_usage);
  EXPECT_TRUE(Ok(Cmpl(R"("stream":true,"stream_options":{"include_usage":true})")).include_usage);
  EXPECT_FALSE(Ok(Cmpl(R"("stream":true,"stream_options":{"include_usage":false})")).include_usage);
  EXPECT_FALSE(Ok(Cmpl(R"("stream":true,"stream_options":{"include_usage":null})")).include_usage);
  EXPECT_FALSE(Ok(Cmpl(R"("stream_options":{})")).include_usage);  // empty: allowed, no stream
  EXPECT_FALSE(Ok(Cmpl(R"("stream":false,"stream_options":null)")).include_usage);
  EXPECT_EQ(Err(Cmpl(R"("stream_options":{"include_usage":true})")).message,
            "'stream_options' can only be given with \"stream\": true");
  EXPECT_EQ(Err(Cmpl(R"("stream":"true")")).param, "stream");
  EXPECT_EQ(Err(Cmpl(R"("stream":true,"stream_options":"x")")).param, "stream_options");
  EXPECT_EQ(Err(Cmpl(R"("stream":true,"stream_options":{"include_usage":1})")).message,
            "'stream_options.include_usage' must be true or false, got 1");
  EXPECT_EQ(Err(Cmpl(R"("stream":true,"stream_options":{"continuous_usage_stats":true})")).param,
            "stream_options.continuous_usage_stats");
  EXPECT_TRUE(
      Ok(Cmpl(R"("stream":true,"stream_options":{"continuous_usage_stats":false})")).include_usage);
}

TEST(CompletionRequestTest, ChatExtras) {
  const CompletionRequest r =
      Ok(Chat(R"("add_generation_prompt":false,"chat_template_kwargs":{"enable_thinking":false,
              "other":[1]})"),
         true);
  EXPECT_FALSE(r.add_generation_prompt);
  EXPECT_FALSE(r.enable_thinking);
  EXPECT_EQ(Err(Chat(R"("chat_template_kwargs":{"enable_thinking":"no"})"), true).message,
            "'chat_template_kwargs.enable_thinking' must be true or false, got \"no\"");
  EXPECT_EQ(Err(Chat(R"("chat_template_kwargs":[])"), true).param, "chat_template_kwargs");
  EXPECT_EQ(Err(Chat(R"("add_generation_prompt":0)"), true).param, "add_generation_prompt");
  EXPECT_EQ(Ok(Cmpl(R"("user":"u1")")).user, "u1");
  EXPECT_EQ(Err(Cmpl(R"("user":5)")).param, "user");
}

TEST(CompletionRequestTest, UnsupportedRefusedUnlessNeutral) {
  EXPECT_EQ(Err(Cmpl(R"("n":2)")).message,
            "'n' is not supported (one choice per request): only 1 is accepted, got 2");
  EXPECT_EQ(Err(Cmpl(R"("n":2)")).param, "n");
  // The neutral values (what the official clients send as defaults) are accepted.
  Ok(Cmpl(R"("n":1,"best_of":1,"echo":false,"frequency_penalty":0,"presence_penalty":0.0,
           "logit_bias":{},"top_k":-1,"min_p":0,"repetition_penalty":1,"logprobs":null,
           "suffix":null,"add_special_tokens":true,"response_format":{"type":"text"},
           "use_beam_search":false,"priority":0,"bad_words":[])"));
  Ok(Chat(R"("n":1.0,"logprobs":false,"top_logprobs":0,"tools":[],"tool_choice":"none",
           "parallel_tool_calls":true,"add_special_tokens":false,"continue_final_message":false,
           "include_reasoning":true,"modalities":["text"])"),
     true);
  EXPECT_EQ(Err(Cmpl(R"("logprobs":0)")).message,
            "'logprobs' is not supported (log probabilities are not returned): only null is "
            "accepted, got 0");
  EXPECT_EQ(Err(Chat(R"("logprobs":true)"), true).message,
            "'logprobs' is not supported (log probabilities are not returned): only false is "
            "accepted, got true");
  EXPECT_EQ(Err(Cmpl(R"("top_k":5)")).message,
            "'top_k' is not supported (sampling is shaped by temperature and top_p only): only 0 "
            "or -1 is accepted, got 5");
  EXPECT_EQ(Err(Chat(R"("tools":[{"type":"function"}])"), true).param, "tools");
  EXPECT_EQ(Err(Chat(R"("tool_choice":"required")"), true).param, "tool_choice");
  EXPECT_EQ(Err(Cmpl(R"("response_format":{"type":"json_object"})")).message,
            "'response_format' is not supported (output is not constrained): only "
            "{\"type\":\"text\"} is accepted, got {\"type\":\"json_object\"}");
  EXPECT_EQ(Err(Cmpl(R"("echo":true)")).param, "echo");
  EXPECT_EQ(Err(Cmpl(R"("best_of":3)")).param, "best_of");
  EXPECT_EQ(Err(Cmpl(R"("suffix":"x")")).param, "suffix");
  EXPECT_EQ(Err(Cmpl(R"("frequency_penalty":0.5)")).param, "frequency_penalty");
  EXPECT_EQ(Err(Cmpl(R"("guided_json":{})")).param, "guided_json");
  EXPECT_EQ(Err(Cmpl(R"("prompt_embeds":"AAAA")")).param, "prompt_embeds");
  EXPECT_EQ(Err(Chat(R"("chat_template":"{{x}}")"), true).param, "chat_template");
  EXPECT_EQ(Err(Chat(R"("add_special_tokens":true)"), true).param, "add_special_tokens");
  // A field of the other endpoint is unknown here, so ignored (as vLLM ignores extra fields).
  EXPECT_EQ(Ok(Chat(R"("suffix":"x")"), true).model, "m");
  EXPECT_EQ(Ok(Cmpl(R"("tools":[{"type":"function"}])")).model, "m");
}

TEST(CompletionRequestTest, UnknownFieldsIgnored) {
  const CompletionRequest r =
      Ok(Cmpl(R"("metadata":{"a":[1,{"b":null}]},"store":false,"request_id":"abc","x":1)"));
  EXPECT_EQ(r.prompt_text, "hi");
}

TEST(CompletionRequestTest, JsonFaults) {
  EXPECT_EQ(Err("").message, "the request body is empty (expected a JSON object)");
  EXPECT_EQ(Err("[1,2]").message, "the request body must be a JSON object, got an array [1,2]");
  EXPECT_EQ(Err("\"x\"").message, "the request body must be a JSON object, got a string \"x\"");
  const ApiError trunc = Err(R"({"model":"m","prompt":)");
  EXPECT_NE(trunc.message.find("the request body is not valid JSON: 'prompt': "), std::string::npos)
      << trunc.message;
  EXPECT_NE(trunc.message.find("unexpected end of input"), std::string::npos) << trunc.message;
  const ApiError trailing = Err(R"({"model":"m","prompt":"x"} x)");
  EXPECT_NE(trailing.message.find("expected end of input"), std::string::npos) << trailing.message;
  EXPECT_EQ(trailing.param, "");
  EXPECT_NE(Err(R"({"model":"m","prompt":tru})").message.find("invalid literal at byte 25"),
            std::string::npos);
  EXPECT_NE(Err(R"({"model" "m"})").message.find("expected ':' at byte 11"), std::string::npos);
}

TEST(CompletionRequestTest, NonUtf8NamesFieldAndOffset) {
  // The bad byte is at offset 25: {"model":"m","prompt":"ab\xff
  const ApiError e = Err("{\"model\":\"m\",\"prompt\":\"ab\xff\"}");
  EXPECT_EQ(e.message,
            "the request body is not valid JSON: 'prompt': invalid UTF-8 in a string (JSON text "
            "must be UTF-8) at byte 25");
  EXPECT_EQ(e.param, "prompt");
  const ApiError in_list = Err("{\"model\":\"m\",\"prompt\":[\"ok\",\"\xc3\x28\"]}");
  EXPECT_EQ(in_list.param, "prompt[1]");
  EXPECT_NE(in_list.message.find("invalid UTF-8"), std::string::npos);
  const ApiError msg =
      Err("{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"a\"},"
          "{\"role\":\"user\",\"content\":\"\xed\xa0\x80\"}]}",
          true);
  EXPECT_EQ(msg.param, "messages[1].content");
  EXPECT_NE(msg.message.find("invalid UTF-8"), std::string::npos) << msg.message;
  // In a key: the path stops at the object holding it.
  const ApiError key = Err("{\"model\":\"m\",\"pr\xffompt\":\"x\"}");
  EXPECT_EQ(key.param, "");
  EXPECT_NE(key.message.find("at byte 16"), std::string::npos) << key.message;
  // Escaped surrogates that do not pair are refused too (they are not text).
  EXPECT_EQ(Err(R"({"model":"m","prompt":"\ud800"})").param, "prompt");
}

TEST(CompletionRequestTest, DepthBounded) {
  std::string deep = R"({"model":"m","prompt":"x","meta":)";
  for (int i = 0; i < 70; ++i) deep += "[";
  const ApiError e = Err(deep);
  EXPECT_NE(e.message.find("containers nested deeper than 64 levels"), std::string::npos)
      << e.message;
  std::string ok = R"({"model":"m","prompt":"x","meta":)";
  ok += std::string(60, '[') + std::string(60, ']') + "}";
  Ok(ok);
}

TEST(CompletionRequestTest, ShownValuesAreCutAtCharacters) {
  const std::string long_ascii(100, 'a');
  EXPECT_EQ(
      Err(Cmpl("\"temperature\":\"" + long_ascii + "\"")).message,
      "'temperature' must be a number between 0 and 2, got \"" + std::string(39, 'a') + "...");
  // 2-byte characters: the cut never splits one.
  std::string greek;
  for (int i = 0; i < 40; ++i) greek += "\xce\xbb";
  const std::string m = Err(Cmpl("\"temperature\":\"" + greek + "\"")).message;
  const std::string shown = m.substr(m.find("got ") + 4);
  EXPECT_EQ(shown, "\"" + greek.substr(0, 38) + "...");
}

}  // namespace
}  // namespace emoe::server
