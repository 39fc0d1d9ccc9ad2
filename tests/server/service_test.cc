// Tests of the service (server/service.h) in this process: a generated model with Mistral's
// real vocabulary, an HMM and a coordinator here, the HTTP server on a free port, requests over
// real sockets. The text of every answer, whole or streamed, completion or chat, equals the
// engine's greedy output for the same prompt decoded by the tokenizer; stop strings, the
// errors, and the metrics (through promtool when it is installed). Admission, disconnects,
// scale events and the stop are in service_lifecycle_test.cc.
#include <sys/wait.h>

#include <cstdio>
#include <fstream>

#include "server/metrics.h"
#include "service_testing.h"

namespace emoe::server::testing {
namespace {

const std::vector<std::string> kPrompts = {"Hello, my name is", "The capital of France is",
                                           "Once upon a time", "1, 2, 3, 4,"};
const std::string kChatUser = "Tell me a story about a cat.";
constexpr int kMaxTokens = 24;

class ServiceTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!MissingTokenizer("mixtral-text").empty()) return;
    world_ = MakeWorld("mixtral-text").release();
    std::vector<std::vector<int32_t>> prompts;
    for (const std::string& p : kPrompts) prompts.push_back(world_->text->Encode(p));
    chat_prompt_ = *world_->text->EncodeChat({{"user", kChatUser}}, tokenizer::ChatOptions{});
    prompts.push_back(chat_prompt_);
    outputs_ = Greedy(*world_, prompts, kMaxTokens);
    for (size_t i = 0; i < prompts.size(); ++i) {
      expected_.push_back(world_->text->DecodeOutput(prompts[i], outputs_[i]));
    }
  }
  static void TearDownTestSuite() {
    delete world_;
    world_ = nullptr;
  }
  void SetUp() override {
    const std::string missing = MissingTokenizer("mixtral-text");
    if (!missing.empty()) GTEST_SKIP() << missing;
    served_ = Serve(*world_, ServiceOptionsFor(*world_), CoordinatorOptionsFor(*world_));
    port_ = served_->port;
  }
  std::string Finish(size_t i) const {
    const bool eos = !outputs_[i].empty() && outputs_[i].back() == world_->text->StopTokenIds()[0];
    return eos ? "stop" : "length";
  }
  std::string Metrics() { return served_->service->RenderMetrics(); }

  static World* world_;
  static std::vector<int32_t> chat_prompt_;
  static std::vector<std::vector<int32_t>> outputs_;
  static std::vector<std::string> expected_;  // kPrompts', then the chat's
  std::unique_ptr<Served> served_;
  int port_ = 0;
};
World* ServiceTest::world_ = nullptr;
std::vector<int32_t> ServiceTest::chat_prompt_;
std::vector<std::vector<int32_t>> ServiceTest::outputs_;
std::vector<std::string> ServiceTest::expected_;

void ExpectConfigHeader(const HttpReply& r, const std::string& devices) {
  EXPECT_EQ(r.header("x-emoe-config").rfind("generation=", 0), 0u) << r.header("x-emoe-config");
  EXPECT_NE(r.header("x-emoe-config").find("; devices=" + devices), std::string::npos)
      << r.header("x-emoe-config");
}

void ExpectError(const HttpReply& r, int status, const std::string& says,
                 const std::string& param = "") {
  EXPECT_EQ(r.status, status) << r.body;
  const json j = Parse(r.body);
  ASSERT_TRUE(j.contains("error")) << r.body;
  EXPECT_NE(j["error"]["message"].get<std::string>().find(says), std::string::npos) << r.body;
  EXPECT_TRUE(j["error"].contains("type") && j["error"].contains("param") &&
              j["error"].contains("code"))
      << r.body;
  if (!param.empty()) {
    EXPECT_EQ(j["error"]["param"], param) << r.body;
  }
}

TEST_F(ServiceTest, SmallEndpoints) {
  HttpReply models = Fetch(port_, "GET", "/v1/models");
  ASSERT_EQ(models.status, 200) << models.body;
  const json m = Parse(models.body);
  EXPECT_EQ(m["data"][0]["id"], "test-model");
  EXPECT_EQ(m["data"][0]["max_model_len"], 1024);
  ExpectConfigHeader(models, "[0,1]");

  HttpReply health = Fetch(port_, "GET", "/health");
  EXPECT_EQ(health.status, 200);
  EXPECT_EQ(health.body, "");
  ExpectConfigHeader(health, "[0,1]");

  const json version = Parse(Fetch(port_, "GET", "/version").body);
  EXPECT_FALSE(version["version"].get<std::string>().empty());

  HttpReply metrics = Fetch(port_, "GET", "/metrics");
  EXPECT_EQ(metrics.status, 200);
  EXPECT_EQ(metrics.header("content-type"), kPrometheusContentType);
  EXPECT_EQ(Sample(metrics.body, "emoe:num_requests_running{model_name=\"test-model\"}"), 0);
  EXPECT_EQ(Sample(metrics.body, "emoe:devices_serving"), 2);

  for (const char* method : {"GET", "POST"}) {
    HttpReply s = Fetch(port_, method, "/is_scaling_elastic_ep");
    EXPECT_EQ(s.status, 200);
    const json j = Parse(s.body);
    EXPECT_EQ(j["is_scaling_elastic_ep"], false) << s.body;
    EXPECT_TRUE(j["phase"].is_null()) << s.body;
  }
}

TEST_F(ServiceTest, UnknownPathsAndWrongMethods) {
  ExpectError(Fetch(port_, "GET", "/v1/nope"), 404, "no route GET /v1/nope");
  HttpReply r = Fetch(port_, "POST", "/v1/models", "{}");
  ExpectError(r, 405, "not allowed");
  EXPECT_EQ(r.header("allow"), "GET");
  r = Fetch(port_, "GET", "/v1/chat/completions");
  ExpectError(r, 405, "not allowed");
  EXPECT_EQ(r.header("allow"), "POST");
  ExpectError(Fetch(port_, "DELETE", "/scale_elastic_ep"), 405, "allowed: POST");
  // Every answer counts in http_requests_total, by code.
  EXPECT_EQ(Sample(Metrics(), "emoe:http_requests_total{code=\"405\"}"), 3);
}

TEST_F(ServiceTest, WholeCompletionsAreTheGreedyText) {
  for (size_t i = 0; i < kPrompts.size(); ++i) {
    HttpReply r =
        Fetch(port_, "POST", "/v1/completions", CompletionBody(kPrompts[i], kMaxTokens, false));
    ASSERT_EQ(r.status, 200) << r.body;
    ExpectConfigHeader(r, "[0,1]");
    const json j = Parse(r.body);
    EXPECT_EQ(j["object"], "text_completion");
    EXPECT_EQ(j["id"].get<std::string>().rfind("cmpl-", 0), 0u);
    EXPECT_EQ(j["model"], "test-model");
    EXPECT_EQ(j["choices"][0]["text"], expected_[i]) << kPrompts[i];
    EXPECT_EQ(j["choices"][0]["finish_reason"], Finish(i));
    EXPECT_EQ(j["usage"]["prompt_tokens"], world_->text->Encode(kPrompts[i]).size());
    EXPECT_EQ(j["usage"]["completion_tokens"], outputs_[i].size());
  }
}

TEST_F(ServiceTest, StreamedCompletionsAreTheGreedyText) {
  for (size_t i = 0; i < kPrompts.size(); ++i) {
    StreamResult s = Stream(port_, "/v1/completions",
                            CompletionBody(kPrompts[i], kMaxTokens, true,
                                           {{"stream_options", {{"include_usage", true}}}}));
    ASSERT_EQ(s.head.status, 200);
    EXPECT_EQ(s.head.header("content-type").rfind("text/event-stream", 0), 0u);
    ExpectConfigHeader(s.head, "[0,1]");
    EXPECT_TRUE(s.done) << "no [DONE]";
    EXPECT_EQ(s.text, expected_[i]) << kPrompts[i];
    EXPECT_EQ(s.finish_reason, Finish(i));
    ASSERT_FALSE(s.chunks.empty());
    const json& last = s.chunks.back();  // the usage chunk: no choices
    EXPECT_TRUE(last["choices"].empty()) << last.dump();
    EXPECT_EQ(last["usage"]["completion_tokens"], outputs_[i].size());
    for (const json& c : s.chunks) EXPECT_EQ(c["object"], "text_completion");
  }
}

TEST_F(ServiceTest, ChatWholeAndStreamedAreTheGreedyText) {
  const size_t chat = kPrompts.size();
  HttpReply r =
      Fetch(port_, "POST", "/v1/chat/completions", ChatBody(kChatUser, kMaxTokens, false));
  ASSERT_EQ(r.status, 200) << r.body;
  const json j = Parse(r.body);
  EXPECT_EQ(j["object"], "chat.completion");
  EXPECT_EQ(j["choices"][0]["message"]["role"], "assistant");
  EXPECT_EQ(j["choices"][0]["message"]["content"], expected_[chat]);
  EXPECT_EQ(j["choices"][0]["finish_reason"], Finish(chat));
  EXPECT_EQ(j["usage"]["prompt_tokens"], chat_prompt_.size());

  StreamResult s = Stream(port_, "/v1/chat/completions", ChatBody(kChatUser, kMaxTokens, true));
  ASSERT_EQ(s.head.status, 200);
  ASSERT_FALSE(s.chunks.empty());
  EXPECT_EQ(s.chunks[0]["choices"][0]["delta"]["role"], "assistant");  // the role comes first
  EXPECT_EQ(s.chunks[0]["object"], "chat.completion.chunk");
  EXPECT_EQ(s.text, expected_[chat]);
  EXPECT_EQ(s.finish_reason, Finish(chat));
  EXPECT_TRUE(s.done);
}

// A stop string of 3..6 bytes from the middle of `text`, on UTF-8 character boundaries.
std::string MiddleStop(const std::string& text) {
  auto lead = [&](size_t i) { return i >= text.size() || (text[i] & 0xC0) != 0x80; };
  size_t a = text.size() / 2;
  while (!lead(a)) ++a;
  size_t b = a + 3;
  while (!lead(b)) ++b;
  return text.substr(a, b - a);
}

TEST_F(ServiceTest, StopStringsEndTheResponseAndTheRequest) {
  ASSERT_GE(expected_[0].size(), 8u) << "the reference text is too short";
  const std::string stop = MiddleStop(expected_[0]);
  const std::string before = expected_[0].substr(0, expected_[0].find(stop));
  HttpReply r = Fetch(port_, "POST", "/v1/completions",
                      CompletionBody(kPrompts[0], kMaxTokens, false, {{"stop", stop}}));
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(Parse(r.body)["choices"][0]["text"], before) << "stop " << json(stop).dump();
  EXPECT_EQ(Parse(r.body)["choices"][0]["finish_reason"], "stop");

  StreamResult s =
      Stream(port_, "/v1/completions",
             CompletionBody(kPrompts[0], kMaxTokens, true,
                            {{"stop", {"\x01never", stop}}, {"include_stop_str_in_output", true}}));
  EXPECT_EQ(s.text, before + stop);
  EXPECT_EQ(s.finish_reason, "stop");
  EXPECT_TRUE(s.done);
  // The requests were cancelled in the engine: nothing stays in flight, no KV stays held.
  EXPECT_TRUE(Eventually([&] { return served_->service->in_flight() == 0; }));
  EXPECT_TRUE(Eventually([&] { return served_->coordinator->Snapshot().kv_blocks_used == 0; }));
  EXPECT_EQ(
      Sample(Metrics(),
             "emoe:request_success_total{model_name=\"test-model\",finished_reason=\"stop\"}"),
      2);
}

TEST_F(ServiceTest, MinTokensDelaysStops) {
  // A stop string found at the very start is not looked for before min_tokens.
  const std::string stop = expected_[1].substr(0, 1);
  HttpReply r = Fetch(port_, "POST", "/v1/completions",
                      CompletionBody(kPrompts[1], kMaxTokens, false,
                                     {{"stop", stop}, {"min_tokens", 8}, {"ignore_eos", true}}));
  ASSERT_EQ(r.status, 200) << r.body;
  const json j = Parse(r.body);
  EXPECT_GE(j["usage"]["completion_tokens"].get<int>(), 8) << r.body;
  EXPECT_GT(j["choices"][0]["text"].get<std::string>().size(), 0u);
}

TEST_F(ServiceTest, BadRequestsNameTheirFault) {
  ExpectError(Fetch(port_, "POST", "/v1/completions", "{\"model\": "), 400, "");
  ExpectError(
      Fetch(port_, "POST", "/v1/completions", json{{"model", "nope"}, {"prompt", "x"}}.dump()), 404,
      "The model `nope` does not exist.", "model");
  ExpectError(Fetch(port_, "POST", "/v1/completions", CompletionBody("x", 4, false, {{"n", 2}})),
              400, "", "n");
  std::vector<int> ids(1100, 100);  // more than max_model_len 1024
  ExpectError(Fetch(port_, "POST", "/v1/completions",
                    json{{"model", "test-model"}, {"prompt", ids}}.dump()),
              400,
              "maximum context length is 1024 tokens. However, your request has 1100 input tokens");
  ExpectError(Fetch(port_, "POST", "/v1/completions", CompletionBody("Hi", 2000, false)), 400,
              "'max_tokens' or 'max_completion_tokens' is too large: 2000", "max_tokens");
  ids.resize(600);  // fits the context, not one step's prefill (511)
  ExpectError(Fetch(port_, "POST", "/v1/completions",
                    json{{"model", "test-model"}, {"prompt", ids}, {"max_tokens", 4}}.dump()),
              400, "--max_tokens_per_step");
  // Token ids outside the vocabulary: refused by the engine at submission.
  ExpectError(Fetch(port_, "POST", "/v1/completions",
                    json{{"model", "test-model"}, {"prompt", {5, 99999999}}}.dump()),
              400, "outside the vocabulary");
  // A stop token outside the vocabulary: refused when the request is routed; a stream has said
  // 200 already and ends with the error chunk, then [DONE].
  ExpectError(Fetch(port_, "POST", "/v1/completions",
                    CompletionBody("Hi", 4, false, {{"stop_token_ids", {99999999}}})),
              400, "rejected");
  StreamResult s = Stream(port_, "/v1/completions",
                          CompletionBody("Hi", 4, true, {{"stop_token_ids", {99999999}}}));
  EXPECT_EQ(s.head.status, 200);
  ASSERT_FALSE(s.chunks.empty());
  EXPECT_TRUE(s.chunks.back().contains("error")) << s.chunks.back().dump();
  EXPECT_TRUE(s.done);
  const std::string m = Metrics();
  EXPECT_EQ(Sample(m, "emoe:requests_rejected_total{reason=\"model_not_found\"}"), 1);
  EXPECT_EQ(Sample(m, "emoe:requests_rejected_total{reason=\"too_long\"}"), 3);
  EXPECT_EQ(Sample(m, "emoe:requests_rejected_total{reason=\"engine_rejected\"}"), 3);
}

TEST_F(ServiceTest, MetricsCountWhatWasServedAndPassPromtool) {
  for (size_t i = 0; i < kPrompts.size(); ++i) {
    ASSERT_EQ(
        Fetch(port_, "POST", "/v1/completions", CompletionBody(kPrompts[i], kMaxTokens, false))
            .status,
        200);
  }
  int64_t prompt = 0, generated = 0;
  for (size_t i = 0; i < kPrompts.size(); ++i) {
    prompt += world_->text->Encode(kPrompts[i]).size();
    generated += outputs_[i].size();
  }
  const std::string m = Metrics();
  const std::string model = "{model_name=\"test-model\"}";
  EXPECT_EQ(Sample(m, "emoe:prompt_tokens_total" + model), prompt);
  EXPECT_EQ(Sample(m, "emoe:generation_tokens_total" + model), generated);
  EXPECT_EQ(Sample(m, "emoe:time_to_first_token_seconds_count" + model), 4);
  EXPECT_EQ(Sample(m, "emoe:e2e_request_latency_seconds_count" + model), 4);
  EXPECT_EQ(Sample(m, "emoe:request_queue_time_seconds_count" + model), 4);
  EXPECT_EQ(Sample(m, "emoe:inter_token_latency_seconds_count" + model), generated - 4);
  EXPECT_EQ(Sample(m, "emoe:request_generation_tokens_sum" + model), generated);
  EXPECT_GT(Sample(m, "emoe:device_seconds_total"), 0);
  EXPECT_EQ(Sample(m, "emoe:kv_cache_usage_perc" + model), 0);
  // The arena gauges come from the stats thread (every 50 ms here).
  EXPECT_TRUE(Eventually(
      [&] { return Sample(Metrics(), "emoe:arena_bytes{device=\"0\",usage=\"weights\"}") > 0; }));
  EXPECT_GT(Sample(Metrics(), "emoe:arena_capacity_bytes{device=\"3\"}"), 0);

  if (system("promtool --version >/dev/null 2>&1") != 0) {
    GTEST_SKIP() << "promtool is not installed (Debian package prometheus)";
  }
  const std::string path = world_->dir.File("metrics.txt");
  std::ofstream(path) << Metrics();
  const int rc = system(("promtool check metrics < " + path + " > " + path + ".out 2>&1").c_str());
  // promtool's only lint of vLLM-style names is the colon of the "emoe:" prefix (exit 3: the
  // issue's prefix, as vLLM's "vllm:"); any other line, or a parse error (exit 1), fails.
  EXPECT_TRUE(WIFEXITED(rc) && (WEXITSTATUS(rc) == 0 || WEXITSTATUS(rc) == 3)) << rc;
  std::ifstream out(path + ".out");
  for (std::string line; std::getline(out, line);) {
    if (line.empty()) continue;
    EXPECT_NE(line.find(" metric names should not contain ':'"), std::string::npos) << line;
  }
}

TEST_F(ServiceTest, ConcurrentStreamsEachGetTheirText) {
  constexpr int kClients = 24;
  std::vector<StreamResult> results(kClients);
  std::vector<std::thread> clients;
  for (int c = 0; c < kClients; ++c) {
    clients.emplace_back([&, c] {
      results[c] = Stream(port_, "/v1/completions",
                          CompletionBody(kPrompts[c % kPrompts.size()], kMaxTokens, true));
    });
  }
  for (auto& t : clients) t.join();
  for (int c = 0; c < kClients; ++c) {
    EXPECT_EQ(results[c].text, expected_[c % kPrompts.size()]) << "client " << c;
    EXPECT_TRUE(results[c].done) << "client " << c;
  }
  EXPECT_EQ(served_->service->in_flight(), 0u);
}

TEST(ByteTokenizerServiceTest, ChatNeedsATemplate) {
  auto w = MakeWorld("tiny");
  auto served = Serve(*w, ServiceOptionsFor(*w), CoordinatorOptionsFor(*w));
  ExpectError(Fetch(served->port, "POST", "/v1/chat/completions", ChatBody("hi", 4, false)), 400,
              "chat template", "messages");
  HttpReply r = Fetch(served->port, "POST", "/v1/completions", CompletionBody("hi", 4, false));
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(Parse(r.body)["usage"]["completion_tokens"], 4);
}

}  // namespace
}  // namespace emoe::server::testing
