// Tests of the service (server/service.h) over time: the admission bound (429 with
// Retry-After), clients that disconnect mid-stream (their requests cancelled, their KV blocks
// freed at once), scale events through /scale_elastic_ep while streams run (none interrupted,
// every text the greedy one), their errors (400, 409), and the orderly stop (in-flight requests
// finish within the grace period, or end with an error chunk and [DONE], or a 503).
// Decoding is slowed (compute_share) where a test needs requests to stay in flight.
#include "service_testing.h"

namespace emoe::server::testing {
namespace {

const std::string kModel = "{model_name=\"test-model\"}";

class LifecycleTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!MissingTokenizer("mixtral-text").empty()) return;
    world_ = MakeWorld("mixtral-text").release();
    std::vector<std::vector<int32_t>> prompts;
    for (int i = 0; i < 4; ++i) prompts.push_back(world_->text->Encode(Prompt(i)));
    const auto outputs = Greedy(*world_, prompts, 32);
    for (int i = 0; i < 4; ++i)
      expected_.push_back(world_->text->DecodeOutput(prompts[i], outputs[i]));
  }
  static void TearDownTestSuite() {
    delete world_;
    world_ = nullptr;
  }
  static std::string Prompt(int i) { return "Request number " + std::to_string(i) + " says"; }
  // The service with decoding slowed to `compute_share` (1: full speed).
  void Start(double compute_share, ServiceOptions so) {
    const std::string missing = MissingTokenizer("mixtral-text");
    if (!missing.empty()) GTEST_SKIP() << missing;
    engine::CoordinatorOptions co = CoordinatorOptionsFor(*world_);
    co.instance.compute_share = compute_share;
    served_ = Serve(*world_, so, co);
    port_ = served_->port;
  }
  void Start(double compute_share) { Start(compute_share, ServiceOptionsFor(*world_)); }
  std::string Metrics() { return served_->service->RenderMetrics(); }
  double KvUsed() { return served_->coordinator->Snapshot().kv_blocks_used; }

  // A stream that runs for a long time (ignore_eos, many tokens), its first chunks read.
  std::unique_ptr<Connection> LongStream(HttpReply* head) {
    auto c = std::make_unique<Connection>(port_);
    c->Send("POST", "/v1/completions",
            CompletionBody("A long story:", 900, true, {{"ignore_eos", true}}));
    EXPECT_TRUE(c->ReadHead(head));
    for (int i = 0; i < 3; ++i) EXPECT_TRUE(c->ReadEvent().has_value());
    return c;
  }

  static World* world_;
  static std::vector<std::string> expected_;
  std::unique_ptr<Served> served_;
  int port_ = 0;
};
World* LifecycleTest::world_ = nullptr;
std::vector<std::string> LifecycleTest::expected_;

TEST_F(LifecycleTest, AdmissionBoundAnswers429WithRetryAfter) {
  ServiceOptions so = ServiceOptionsFor(*world_);
  so.max_num_seqs = 1;
  so.max_queue = 1;
  Start(0.2, so);
  HttpReply h1, h2;
  auto a = LongStream(&h1);
  auto b = LongStream(&h2);
  EXPECT_EQ(h1.status, 200);
  EXPECT_EQ(h2.status, 200);
  HttpReply r = Fetch(port_, "POST", "/v1/completions", CompletionBody("x", 4, false));
  EXPECT_EQ(r.status, 429) << r.body;
  EXPECT_EQ(r.header("retry-after"), "1");
  const json j = Parse(r.body);
  EXPECT_EQ(j["error"]["code"], "rate_limit_exceeded") << r.body;
  EXPECT_NE(j["error"]["message"].get<std::string>().find("2 requests in flight"),
            std::string::npos);
  EXPECT_EQ(Sample(Metrics(), "emoe:requests_rejected_total{reason=\"queue_full\"}"), 1);
  // Room again once they go.
  a->Reset();
  b->Reset();
  EXPECT_TRUE(Eventually([&] { return served_->service->in_flight() == 0; }));
  EXPECT_EQ(Fetch(port_, "POST", "/v1/completions", CompletionBody("x", 4, false)).status, 200);
}

TEST_F(LifecycleTest, DisconnectCancelsTheRequestAndFreesItsKv) {
  Start(0.2);
  HttpReply head;
  auto c = LongStream(&head);
  ASSERT_EQ(head.status, 200);
  EXPECT_TRUE(Eventually([&] { return KvUsed() > 0; }));
  EXPECT_TRUE(
      Eventually([&] { return Sample(Metrics(), "emoe:kv_cache_usage_perc" + kModel) > 0; }));
  c->Reset();  // the client vanishes mid-stream
  EXPECT_TRUE(Eventually([&] { return KvUsed() == 0; }, 5));
  EXPECT_TRUE(Eventually([&] { return served_->service->in_flight() == 0; }, 5));
  const std::string m = Metrics();
  EXPECT_EQ(Sample(m, "emoe:kv_cache_usage_perc" + kModel), 0);
  EXPECT_EQ(
      Sample(m, "emoe:request_success_total{model_name=\"test-model\",finished_reason=\"abort\"}"),
      1);
  EXPECT_LT(Sample(m, "emoe:generation_tokens_total" + kModel), 900);
}

TEST_F(LifecycleTest, ScaleRequestsAreCheckedAndAnswered) {
  Start(1);
  auto post = [&](const json& body) {
    return Fetch(port_, "POST", "/scale_elastic_ep", body.dump());
  };
  HttpReply r = post({{"new_data_parallel_size", 5}});
  EXPECT_EQ(r.status, 400) << r.body;
  EXPECT_NE(r.body.find("1..4"), std::string::npos) << r.body;
  EXPECT_EQ(post({{"new_data_parallel_size", 0}}).status, 400);
  EXPECT_EQ(post({{"new_data_parallel_size", 3}, {"method", "nope"}}).status, 400);
  EXPECT_EQ(Fetch(port_, "POST", "/scale_elastic_ep", "not json").status, 400);
  // Horizontal scaling adds whole replicas: 3 devices are not a multiple of 2 (refused: 400).
  r = post({{"new_data_parallel_size", 3}, {"method", "horizontal"}});
  EXPECT_EQ(r.status, 400) << r.body;

  r = post({{"new_ep_size", 3}});  // SGLang's name
  ASSERT_EQ(r.status, 200) << r.body;
  json rep = Parse(r.body);
  EXPECT_EQ(rep["from"], json({0, 1})) << r.body;
  EXPECT_EQ(rep["to"], json({0, 1, 2})) << r.body;
  EXPECT_TRUE(rep.contains("latency_s") && rep.contains("downtime_s") && rep.contains("phases"));
  EXPECT_TRUE(rep.contains("standby_prepare_s"));
  HttpReply h = Fetch(port_, "GET", "/health");
  EXPECT_NE(h.header("x-emoe-config").find("devices=[0,1,2]"), std::string::npos)
      << h.header("x-emoe-config");
  r = post({{"new_data_parallel_size", 2}});  // vLLM's name
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(Parse(r.body)["to"], json({0, 1}));
  const std::string m = Metrics();
  EXPECT_EQ(Sample(m, "emoe:scale_events_total{method=\"elastic\",result=\"ok\"}"), 2);
  EXPECT_EQ(Sample(m, "emoe:scale_events_total{method=\"horizontal\",result=\"refused\"}"), 1);
  EXPECT_EQ(Sample(m, "emoe:scale_latency_seconds_count{method=\"elastic\"}"), 2);
  EXPECT_EQ(Sample(m, "emoe:devices_serving"), 2);
  EXPECT_GT(Sample(m, "emoe:scale_bytes_total{kind=\"p2p\"}"), 0);
}

TEST_F(LifecycleTest, ASecondScaleWhileOneRunsIs409) {
  Start(1);
  int conflicts = 0;
  for (int attempt = 0; attempt < 5 && conflicts == 0; ++attempt) {
    const int target = attempt % 2 == 0 ? 4 : 2;
    HttpReply first;
    std::thread t([&] {
      first = Fetch(port_, "POST", "/scale_elastic_ep",
                    json{{"new_data_parallel_size", target}}.dump());
    });
    const bool seen = Eventually(
        [&] {
          return Parse(
                     Fetch(port_, "GET", "/is_scaling_elastic_ep").body)["is_scaling_elastic_ep"] ==
                 true;
        },
        10);
    HttpReply second =
        Fetch(port_, "POST", "/scale_elastic_ep", json{{"new_data_parallel_size", 3}}.dump());
    t.join();
    EXPECT_EQ(first.status, 200) << first.body;
    if (seen && second.status == 409) {
      ++conflicts;
      EXPECT_NE(Parse(second.body)["error"]["message"].get<std::string>().find("in progress"),
                std::string::npos);
    } else if (second.status == 200) {
      // The first had ended already: back to 2 for the next attempt.
      ASSERT_EQ(Fetch(port_, "POST", "/scale_elastic_ep", "{\"new_data_parallel_size\": 2}").status,
                200);
    }
  }
  EXPECT_GE(conflicts, 1) << "never caught a scale event running";
}

TEST_F(LifecycleTest, StreamsRunThroughScaleEventsUninterrupted) {
  Start(0.3);
  std::vector<StreamResult> results(8);
  std::vector<std::thread> clients;
  for (int c = 0; c < 8; ++c) {
    clients.emplace_back([&, c] {
      results[c] = Stream(port_, "/v1/completions", CompletionBody(Prompt(c % 4), 32, true));
    });
  }
  std::vector<HttpReply> scales;
  for (int target : {4, 1, 2}) {
    scales.push_back(
        Fetch(port_, "POST", "/scale_elastic_ep", json{{"new_data_parallel_size", target}}.dump()));
  }
  for (auto& t : clients) t.join();
  for (const HttpReply& s : scales) EXPECT_EQ(s.status, 200) << s.body;
  for (int c = 0; c < 8; ++c) {
    EXPECT_EQ(results[c].head.status, 200);
    EXPECT_EQ(results[c].text, expected_[c % 4]) << "client " << c;
    EXPECT_TRUE(results[c].done) << "client " << c;
  }
  EXPECT_EQ(Sample(Metrics(), "emoe:scale_events_total{method=\"elastic\",result=\"ok\"}"), 3);
}

TEST_F(LifecycleTest, StopLetsRequestsFinishWithinTheGracePeriod) {
  Start(0.5);
  StreamResult s;
  std::thread client(
      [&] { s = Stream(port_, "/v1/completions", CompletionBody(Prompt(0), 32, true)); });
  ASSERT_TRUE(Eventually([&] { return served_->service->in_flight() == 1; }));
  const auto t0 = std::chrono::steady_clock::now();
  served_->service->Stop(60);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(30));
  client.join();
  EXPECT_EQ(s.text, expected_[0]);
  EXPECT_TRUE(s.done);
  // Stopped: nothing listens any more.
  EXPECT_EQ(Fetch(port_, "GET", "/health").status, 0);
}

TEST_F(LifecycleTest, StopEndsWhatIsLeftWithAnErrorThenDone) {
  Start(0.2);
  HttpReply head;
  auto stream = LongStream(&head);
  HttpReply whole;
  std::thread client([&] {
    whole = Fetch(port_, "POST", "/v1/completions",
                  CompletionBody("Another long one:", 900, false, {{"ignore_eos", true}}));
  });
  ASSERT_TRUE(Eventually([&] { return served_->service->in_flight() == 2; }));
  // While it stops, a new request is refused at once (503); the stop then ends the two.
  std::thread stopper([&] { served_->service->Stop(0.5); });
  EXPECT_TRUE(Eventually([&] {
    HttpReply r = Fetch(port_, "POST", "/v1/completions", CompletionBody("x", 4, false));
    return r.status == 503 || r.status == 0;
  }));
  std::string last;
  bool done = false;
  while (auto ev = stream->ReadEvent()) {
    if (*ev == "[DONE]")
      done = true;
    else
      last = *ev;
  }
  stopper.join();
  client.join();
  EXPECT_TRUE(Parse(last).contains("error")) << last;
  EXPECT_NE(last.find("shutting down"), std::string::npos) << last;
  EXPECT_TRUE(done);
  EXPECT_EQ(whole.status, 503) << whole.body;
  EXPECT_EQ(served_->service->in_flight(), 0u);
  EXPECT_TRUE(Eventually([&] { return KvUsed() == 0; }, 5));
}

}  // namespace
}  // namespace emoe::server::testing
