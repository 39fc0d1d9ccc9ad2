// The HTTP server's requests and whole responses over real sockets: round trips, keep-alive
// and HTTP/1.0, pipelining, chunked request bodies, Expect: 100-continue, HEAD, the handler's
// mistakes, options and bind errors, and curl as a real client.
#include <thread>

#include "http_test_util.h"

namespace emoe::server {
namespace {

using testing::Client;
using testing::Curl;
using testing::EchoHandler;
using testing::ExchangeQueue;
using testing::Get;
using testing::HaveCurl;
using testing::Post;
using testing::StartServer;
using testing::TestOptions;

TEST(HttpServerTest, GetAndPostRoundTrip) {
  auto server = StartServer(TestOptions(), EchoHandler());
  ASSERT_NE(server, nullptr);
  ASSERT_GT(server->port(), 0);
  auto c = Client::Connect(server->port());
  ASSERT_NE(c, nullptr);
  ASSERT_TRUE(c->Send(Get("/v1/models?x=1&y=2")));
  auto r = c->ReadResponse();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "GET /v1/models?x=1&y=2 ");
  EXPECT_EQ(r->Header("server"), "emoe");
  EXPECT_EQ(r->Header("content-type"), "text/plain");
  EXPECT_FALSE(r->Header("date").empty());
  EXPECT_EQ(r->Header("x-peer").rfind("127.0.0.1:", 0), 0u) << r->Header("x-peer");
  ASSERT_TRUE(c->Send(Post("/v1/completions", R"({"prompt":"hi"})")));
  r = c->ReadResponse();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->body, R"(POST /v1/completions {"prompt":"hi"})");
  const HttpServerStats s = server->stats();
  EXPECT_EQ(s.requests_total, 2);
  EXPECT_EQ(s.connections_total, 1);
  EXPECT_EQ(s.connections_open, 1);
  EXPECT_EQ(s.rejected_total, 0);
}

TEST(HttpServerTest, RequestFieldsAsTheHandlerSeesThem) {
  ExchangeQueue q;
  auto server = StartServer(TestOptions(), q.Handler());
  ASSERT_NE(server, nullptr);
  auto c = Client::Connect(server->port());
  ASSERT_NE(c, nullptr);
  ASSERT_TRUE(
      c->Send("\r\nPUT /a/b?q=%20 HTTP/1.1\r\nHost: x\r\nX-Multi: 1\r\nx-multi: 2\r\n"
              "Content-Length: 3\r\n\r\nabc"));
  auto e = q.Pop();
  ASSERT_NE(e, nullptr);
  const HttpRequest& r = e->request();
  EXPECT_EQ(r.method, "PUT");
  EXPECT_EQ(r.target, "/a/b?q=%20");
  EXPECT_EQ(r.path, "/a/b");
  EXPECT_EQ(r.query, "q=%20");
  EXPECT_EQ(r.Header("x-multi"), "1, 2");
  EXPECT_EQ(r.Header("host"), "x");
  EXPECT_EQ(r.Header("absent"), "");
  EXPECT_EQ(r.body, "abc");
  e->Respond({204, "", "", {}});
  auto resp = c->ReadResponse();
  ASSERT_TRUE(resp);
  EXPECT_EQ(resp->status, 204);
  EXPECT_FALSE(resp->HasHeader("content-length"));
}

TEST(HttpServerTest, KeepAliveReusesTheConnection) {
  auto server = StartServer(TestOptions(), EchoHandler());
  ASSERT_NE(server, nullptr);
  auto c = Client::Connect(server->port());
  ASSERT_NE(c, nullptr);
  for (int i = 0; i < 20; ++i) {
    ASSERT_TRUE(c->Send(Get("/n" + std::to_string(i))));
    auto r = c->ReadResponse();
    ASSERT_TRUE(r) << i;
    EXPECT_EQ(r->body, "GET /n" + std::to_string(i) + " ");
    EXPECT_FALSE(r->HasHeader("connection"));
  }
  EXPECT_EQ(server->stats().connections_total, 1);
  // "Connection: close" is answered, then the connection closes.
  ASSERT_TRUE(c->Send(Get("/last", "Connection: close\r\n")));
  auto r = c->ReadResponse();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->Header("connection"), "close");
  EXPECT_TRUE(c->WaitClosed(5));
}

TEST(HttpServerTest, Http10ClosesUnlessKeepAlive) {
  auto server = StartServer(TestOptions(), EchoHandler());
  ASSERT_NE(server, nullptr);
  auto c = Client::Connect(server->port());
  ASSERT_NE(c, nullptr);
  ASSERT_TRUE(c->Send("GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"));
  auto r = c->ReadResponse();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->Header("connection"), "keep-alive");
  ASSERT_TRUE(c->Send("GET /b HTTP/1.0\r\n\r\n"));
  r = c->ReadResponse();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->body, "GET /b ");
  EXPECT_EQ(r->Header("connection"), "close");
  EXPECT_TRUE(c->WaitClosed(5));
}

TEST(HttpServerTest, PipelinedRequestsAreAnsweredInOrder) {
  ExchangeQueue q;
  auto server = StartServer(TestOptions(), q.Handler());
  ASSERT_NE(server, nullptr);
  auto c = Client::Connect(server->port());
  ASSERT_NE(c, nullptr);
  // Three requests in one write; the second has a body that looks like a request.
  ASSERT_TRUE(c->Send(Get("/1") + Post("/2", "GET /x HTTP/1.1\r\n\r\n") + Get("/3")));
  for (const char* path : {"/1", "/2", "/3"}) {
    auto e = q.Pop();
    ASSERT_NE(e, nullptr) << path;
    EXPECT_EQ(e->request().path, path);
    EXPECT_EQ(q.size(), 0u) << "the next request waits for this response";
    e->Respond({200, "text/plain", std::string("r") + path, {}});
    auto r = c->ReadResponse();
    ASSERT_TRUE(r) << path;
    EXPECT_EQ(r->body, std::string("r") + path);
  }
  EXPECT_EQ(q.Pop(0.2), nullptr);
}

TEST(HttpServerTest, ChunkedRequestBody) {
  auto server = StartServer(TestOptions(), EchoHandler());
  ASSERT_NE(server, nullptr);
  auto c = Client::Connect(server->port());
  ASSERT_NE(c, nullptr);
  ASSERT_TRUE(
      c->Send("POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
              "5\r\nhello\r\n"));
  ASSERT_TRUE(c->Send("1;ext=1\r\n \r\n6\r\nworld!\r\n0\r\nX-Trailer: t\r\n\r\n"));
  auto r = c->ReadResponse();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->body, "POST /c hello world!");
  // The connection serves the next request.
  ASSERT_TRUE(c->Send(Get("/after")));
  r = c->ReadResponse();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->body, "GET /after ");
}

TEST(HttpServerTest, ExpectContinueIsAnsweredBeforeTheBody) {
  auto server = StartServer(TestOptions(), EchoHandler());
  ASSERT_NE(server, nullptr);
  auto c = Client::Connect(server->port());
  ASSERT_NE(c, nullptr);
  ASSERT_TRUE(
      c->Send("POST /e HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
              "Content-Length: 4\r\n\r\n"));
  auto r = c->ReadHead();
  ASSERT_TRUE(r) << "no 100 Continue before the body";
  EXPECT_EQ(r->status, 100);
  ASSERT_TRUE(c->Send("body"));
  r = c->ReadResponse();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "POST /e body");
}

TEST(HttpServerTest, HeadHasNoBody) {
  auto server = StartServer(TestOptions(), EchoHandler());
  ASSERT_NE(server, nullptr);
  auto c = Client::Connect(server->port());
  ASSERT_NE(c, nullptr);
  ASSERT_TRUE(c->Send("HEAD /h HTTP/1.1\r\nHost: x\r\n\r\n" + Get("/g")));
  auto r = c->ReadResponse(10, /*head_request=*/true);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->Header("content-length"), "8");  // "HEAD /h "
  r = c->ReadResponse();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->body, "GET /g ") << "the HEAD response carried a body";
}

TEST(HttpServerTest, HandlerMistakesAreAnswered) {
  ExchangeQueue q;
  auto server = StartServer(TestOptions(), q.Handler());
  ASSERT_NE(server, nullptr);
  auto c = Client::Connect(server->port());
  ASSERT_NE(c, nullptr);
  // Dropped without an answer: 500, and the connection goes on.
  ASSERT_TRUE(c->Send(Get("/drop")));
  q.Pop().reset();
  auto r = c->ReadResponse();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 500);
  EXPECT_NE(r->body.find("without answering"), std::string::npos) << r->body;
  // A status outside 200..599: 500 naming it.
  ASSERT_TRUE(c->Send(Get("/bad")));
  q.Pop()->Respond({42, "text/plain", "x", {}});
  r = c->ReadResponse();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 500);
  EXPECT_NE(r->body.find("status 42"), std::string::npos) << r->body;
  // Headers that would split the response or that the server owns are left out.
  ASSERT_TRUE(c->Send(Get("/h")));
  q.Pop()->Respond({200,
                    "text/plain",
                    "ok",
                    {{"X-Ok", "1"},
                     {"X-Bad", "a\r\nInjected: 1"},
                     {"Content-Length", "99"},
                     {"Bad Name", "v"}}});
  r = c->ReadResponse();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->body, "ok");
  EXPECT_EQ(r->Header("x-ok"), "1");
  EXPECT_FALSE(r->HasHeader("x-bad"));
  EXPECT_FALSE(r->HasHeader("injected"));
  // A second Respond is ignored; the first one stands.
  ASSERT_TRUE(c->Send(Get("/twice")));
  auto e = q.Pop();
  e->Respond({200, "text/plain", "first", {}});
  e->Respond({200, "text/plain", "second", {}});
  r = c->ReadResponse();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->body, "first");
  ASSERT_TRUE(c->Send(Get("/next")));
  q.Pop()->Respond({200, "text/plain", "next", {}});
  r = c->ReadResponse();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->body, "next");
}

TEST(HttpServerTest, OptionsAreValidated) {
  EXPECT_TRUE(HttpOptions().Validate().ok());
  auto check = [](void (*mutate)(HttpOptions&), const char* field) {
    HttpOptions o;
    mutate(o);
    const Status s = o.Validate();
    EXPECT_FALSE(s.ok()) << field;
    EXPECT_NE(s.message().find(field), std::string::npos) << s.message();
  };
  check([](HttpOptions& o) { o.port = 70000; }, "port");
  check([](HttpOptions& o) { o.io_threads = 0; }, "io_threads");
  check([](HttpOptions& o) { o.backlog = 0; }, "backlog");
  check([](HttpOptions& o) { o.max_header_bytes = 10; }, "max_header_bytes");
  check([](HttpOptions& o) { o.header_timeout_s = 0; }, "header_timeout_s");
  check([](HttpOptions& o) { o.body_timeout_s = -1; }, "body_timeout_s");
  check([](HttpOptions& o) { o.idle_timeout_s = 0; }, "idle_timeout_s");
  check([](HttpOptions& o) { o.max_connections = 0; }, "max_connections");
  check([](HttpOptions& o) { o.max_pending_write_bytes = 0; }, "max_pending_write_bytes");
  check([](HttpOptions& o) { o.host = ""; }, "host");
}

TEST(HttpServerTest, BindErrorsNameTheAddress) {
  auto first = StartServer(TestOptions(), EchoHandler());
  ASSERT_NE(first, nullptr);
  HttpOptions o = TestOptions();
  o.port = first->port();
  auto second = HttpServer::Start(o, EchoHandler());
  ASSERT_FALSE(second.ok());
  const std::string port = std::to_string(first->port());
  EXPECT_NE(second.status().message().find("127.0.0.1:" + port), std::string::npos)
      << second.status().ToString();
  EXPECT_NE(second.status().message().find("EADDRINUSE"), std::string::npos)
      << second.status().ToString();
  o.host = "not-a-host";
  auto bad = HttpServer::Start(o, EchoHandler());
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("'not-a-host'"), std::string::npos)
      << bad.status().ToString();
  o.host = "localhost";
  o.port = 0;
  auto local = HttpServer::Start(o, EchoHandler());
  ASSERT_TRUE(local.ok()) << local.status().ToString();
  EXPECT_FALSE(HttpServer::Start(TestOptions(), nullptr).ok());
}

TEST(HttpServerTest, CurlRoundTrips) {
  if (!HaveCurl()) GTEST_SKIP() << "curl is not installed";
  auto server = StartServer(TestOptions(), EchoHandler());
  ASSERT_NE(server, nullptr);
  const std::string url = "http://127.0.0.1:" + std::to_string(server->port());
  auto [rc, out] = Curl(url + "/v1/models");
  EXPECT_EQ(rc, 0) << out;
  EXPECT_EQ(out, "GET /v1/models ");
  std::tie(rc, out) = Curl("-d 'x=1' " + url + "/p");
  EXPECT_EQ(rc, 0) << out;
  EXPECT_EQ(out, "POST /p x=1");
  // Two URLs, one connection; a 2 MiB body makes curl send Expect: 100-continue.
  std::tie(rc, out) = Curl(url + "/a " + url + "/b");
  EXPECT_EQ(out, "GET /a GET /b ");
  EXPECT_EQ(server->stats().connections_total, 3);
  const std::string big(2 << 20, 'z');
  const std::string file = ::testing::TempDir() + "/http_big_body";
  FILE* f = std::fopen(file.c_str(), "w");
  ASSERT_NE(f, nullptr);
  std::fwrite(big.data(), 1, big.size(), f);
  std::fclose(f);
  std::tie(rc, out) = Curl("-H 'Expect: 100-continue' --data-binary @" + file + " " + url + "/big");
  EXPECT_EQ(rc, 0) << out.substr(0, 200);
  EXPECT_EQ(out, "POST /big " + big) << out.substr(0, 200);
}

TEST(HttpServerTest, ManyIoThreadsServeManyClients) {
  HttpOptions o = TestOptions();
  o.io_threads = 4;
  auto server = StartServer(o, EchoHandler());
  ASSERT_NE(server, nullptr);
  std::vector<std::thread> clients;
  std::atomic<int> ok{0};
  for (int t = 0; t < 8; ++t) {
    clients.emplace_back([&, t] {
      auto c = Client::Connect(server->port());
      if (c == nullptr) return;
      for (int i = 0; i < 50; ++i) {
        const std::string body = std::to_string(t) + "/" + std::to_string(i);
        if (!c->Send(Post("/m", body))) return;
        auto r = c->ReadResponse();
        if (r && r->body == "POST /m " + body) {
          ok++;
        } else {
          ADD_FAILURE() << "thread " << t << " request " << i << ": "
                        << (r ? std::to_string(r->status) + " " + r->body : "no response");
        }
      }
    });
  }
  for (auto& t : clients) t.join();
  EXPECT_EQ(ok.load(), 8 * 50);
  EXPECT_EQ(server->stats().requests_total, 8 * 50);
}

}  // namespace
}  // namespace emoe::server
