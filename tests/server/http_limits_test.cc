// The HTTP server's limits over real sockets: 413 (Content-Length and chunked), 431, 408 for a
// slowloris head (while others are served) and a slow body, idle keep-alive close, 400 for
// garbage, HTTP/2 and TLS, 503 above max_connections. Each error is OpenAI-shaped JSON naming
// the problem, and the connection closes after it.
#include <thread>

#include "http_test_util.h"

namespace emoe::server {
namespace {

using testing::Client;
using testing::EchoHandler;
using testing::Get;
using testing::Post;
using testing::Response;
using testing::SecondsSince;
using testing::StartServer;
using testing::TestOptions;

// The response is the server's error: `status`, JSON in OpenAI's shape naming `what`, and the
// connection closed after it.
void ExpectError(Client* c, int status, const std::string& what, double timeout_s = 10) {
  std::optional<Response> r = c->ReadResponse(timeout_s);
  ASSERT_TRUE(r) << "no response; wanted " << status;
  EXPECT_EQ(r->status, status) << r->body;
  EXPECT_EQ(r->Header("content-type"), "application/json");
  EXPECT_EQ(r->Header("connection"), "close");
  EXPECT_EQ(r->body.rfind(R"({"error": {"message": ")", 0), 0u) << r->body;
  EXPECT_NE(r->body.find(R"("param": null, "code": null}})"), std::string::npos) << r->body;
  EXPECT_NE(r->body.find(what), std::string::npos) << r->body;
  EXPECT_TRUE(c->WaitClosed(timeout_s)) << "the connection stayed open after " << status;
}

TEST(HttpLimitsTest, BodyTooLargeByContentLength) {
  HttpOptions o = TestOptions();
  o.max_body_bytes = 1000;
  auto server = StartServer(o, EchoHandler());
  ASSERT_NE(server, nullptr);
  {  // at the limit: served
    auto c = Client::Connect(server->port());
    ASSERT_TRUE(c->Send(Post("/p", std::string(1000, 'a'))));
    auto r = c->ReadResponse();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200);
  }
  {  // one over: 413 before the body is read (the client waits for 100 Continue)
    auto c = Client::Connect(server->port());
    ASSERT_TRUE(
        c->Send("POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 1001\r\n"
                "Expect: 100-continue\r\n\r\n"));
    ExpectError(c.get(), 413, "Content-Length 1001 is larger than 1000 bytes (max_body_bytes)");
  }
  {  // a client that sends the body anyway still gets the 413 (the server drains, not resets)
    auto c = Client::Connect(server->port());
    ASSERT_TRUE(c->Send(Post("/p", std::string(200000, 'b'))));
    ExpectError(c.get(), 413, "max_body_bytes");
  }
  EXPECT_EQ(server->stats().rejected_total, 2);
  EXPECT_EQ(server->stats().requests_total, 1);
}

TEST(HttpLimitsTest, BodyTooLargeWhenChunked) {
  HttpOptions o = TestOptions();
  o.max_body_bytes = 1000;
  auto server = StartServer(o, EchoHandler());
  ASSERT_NE(server, nullptr);
  auto c = Client::Connect(server->port());
  ASSERT_NE(c, nullptr);
  std::string req = "POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
  for (int i = 0; i < 5; ++i) req += "190\r\n" + std::string(400, 'x') + "\r\n";  // 2000 bytes
  req += "0\r\n\r\n";
  ASSERT_TRUE(c->Send(req));
  ExpectError(c.get(), 413, "request body larger than 1000 bytes (max_body_bytes)");
}

TEST(HttpLimitsTest, HeadTooLarge) {
  HttpOptions o = TestOptions();
  o.max_header_bytes = 1024;
  auto server = StartServer(o, EchoHandler());
  ASSERT_NE(server, nullptr);
  {  // a long request line
    auto c = Client::Connect(server->port());
    ASSERT_TRUE(c->Send("GET /" + std::string(2000, 'a') + " HTTP/1.1\r\n\r\n"));
    ExpectError(c.get(), 431, "larger than 1024 bytes (max_header_bytes)");
  }
  {  // many headers, sent slowly in parts: the whole head counts
    auto c = Client::Connect(server->port());
    ASSERT_TRUE(c->Send("GET / HTTP/1.1\r\n"));
    for (int i = 0; i < 40; ++i) {
      if (!c->Send("X-H" + std::to_string(i) + ": " + std::string(20, 'v') + "\r\n")) break;
    }
    ExpectError(c.get(), 431, "max_header_bytes");
  }
  {  // just under: served
    auto c = Client::Connect(server->port());
    const std::string start = "GET / HTTP/1.1\r\nX: ";
    ASSERT_TRUE(c->Send(start + std::string(1024 - start.size() - 4, 'v') + "\r\n\r\n"));
    auto r = c->ReadResponse();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200);
  }
}

// A client sending one head byte every 200 ms gets 408 after header_timeout_s (a deadline for
// the whole head, not an idle timer its bytes would reset), while another client is served.
TEST(HttpLimitsTest, SlowlorisHeadGets408WhileOthersAreServed) {
  HttpOptions o = TestOptions();
  o.header_timeout_s = 1;
  o.io_threads = 1;
  auto server = StartServer(o, EchoHandler());
  ASSERT_NE(server, nullptr);
  auto slow = Client::Connect(server->port());
  ASSERT_NE(slow, nullptr);
  const auto start = testing::Clock::now();
  std::atomic<bool> done{false};
  std::atomic<int> served{0};
  std::thread other([&] {
    while (!done.load()) {
      auto c = Client::Connect(server->port());
      if (c == nullptr || !c->Send(Get("/other"))) break;
      auto r = c->ReadResponse(5);
      if (!r || r->status != 200) break;
      served++;
      usleep(50000);
    }
  });
  const std::string head = Get("/slow", "X-Padding: " + std::string(100, 'p') + "\r\n");
  size_t sent = 0;
  bool closed = false;
  while (sent < head.size() && SecondsSince(start) < 10) {
    if (!slow->Send(head.substr(sent, 1))) break;
    ++sent;
    if (slow->ReadSome(0.2) || slow->eof()) {
      closed = slow->WaitClosed(5);
      break;
    }
  }
  const double elapsed = SecondsSince(start);
  done = true;
  other.join();
  EXPECT_LT(sent, head.size()) << "the whole slow head went through";
  EXPECT_TRUE(closed) << "the slow connection was not closed";
  EXPECT_GE(elapsed, 0.9);
  EXPECT_LT(elapsed, 4.0) << "408 came late: a per-read timer?";
  const std::string& got = slow->buffer();
  EXPECT_EQ(got.rfind("HTTP/1.1 408 ", 0), 0u) << got;
  EXPECT_NE(got.find("header_timeout_s"), std::string::npos) << got;
  EXPECT_GT(served.load(), 3) << "others were not served meanwhile";
}

TEST(HttpLimitsTest, SilentConnectionGets408) {
  HttpOptions o = TestOptions();
  o.header_timeout_s = 0.5;
  auto server = StartServer(o, EchoHandler());
  ASSERT_NE(server, nullptr);
  auto c = Client::Connect(server->port());
  ASSERT_NE(c, nullptr);
  ExpectError(c.get(), 408, "request head not received within header_timeout_s");
}

TEST(HttpLimitsTest, SlowBodyGets408) {
  HttpOptions o = TestOptions();
  o.body_timeout_s = 0.5;
  auto server = StartServer(o, EchoHandler());
  ASSERT_NE(server, nullptr);
  auto c = Client::Connect(server->port());
  ASSERT_NE(c, nullptr);
  ASSERT_TRUE(c->Send("POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nonly some"));
  ExpectError(c.get(), 408, "request body not received within body_timeout_s");
}

TEST(HttpLimitsTest, IdleKeepAliveIsClosed) {
  HttpOptions o = TestOptions();
  o.idle_timeout_s = 0.5;
  o.header_timeout_s = 30;
  auto server = StartServer(o, EchoHandler());
  ASSERT_NE(server, nullptr);
  auto c = Client::Connect(server->port());
  ASSERT_NE(c, nullptr);
  ASSERT_TRUE(c->Send(Get("/a")));
  ASSERT_TRUE(c->ReadResponse());
  const auto start = testing::Clock::now();
  EXPECT_TRUE(c->WaitClosed(10));
  EXPECT_TRUE(c->buffer().empty()) << "an idle close says nothing: " << c->buffer();
  EXPECT_GE(SecondsSince(start), 0.4);
  EXPECT_TRUE(testing::WaitFor([&] { return server->stats().connections_open == 0; }));
}

TEST(HttpLimitsTest, MalformedRequestsGet400) {
  auto server = StartServer(TestOptions(), EchoHandler());
  ASSERT_NE(server, nullptr);
  const std::pair<std::string, std::string> cases[] = {
      {"\x01\x02garbage\r\n\r\n", "bad method"},
      {"GET / HTTP/1.1\r\nBad Header\r\n\r\n", "header"},
      {"GET / HTTP/9.9\r\n\r\n", "HTTP version"},
      {"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "HTTP/2"},
      {std::string("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 11), "TLS"},
      {"GET nopath HTTP/1.1\r\n\r\n", "is not a path"},
      {"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", "Content-Length"},
      {"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\nxx", "Transfer-Encoding 'gzip'"},
      {"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "chunk"},
  };
  for (const auto& [bytes, what] : cases) {
    SCOPED_TRACE(what);
    auto c = Client::Connect(server->port());
    ASSERT_NE(c, nullptr);
    ASSERT_TRUE(c->Send(bytes));
    ExpectError(c.get(), 400, what);
  }
  EXPECT_EQ(server->stats().rejected_total, static_cast<int64_t>(std::size(cases)));
  // The server still serves.
  auto c = Client::Connect(server->port());
  ASSERT_TRUE(c->Send(Get("/ok")));
  auto r = c->ReadResponse();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
}

TEST(HttpLimitsTest, AboveMaxConnectionsGets503) {
  HttpOptions o = TestOptions();
  o.max_connections = 3;
  auto server = StartServer(o, EchoHandler());
  ASSERT_NE(server, nullptr);
  std::vector<std::unique_ptr<Client>> held;
  for (int i = 0; i < 3; ++i) {
    held.push_back(Client::Connect(server->port()));
    ASSERT_NE(held.back(), nullptr);
    ASSERT_TRUE(held.back()->Send(Get("/held")));
    ASSERT_TRUE(held.back()->ReadResponse());  // accepted and counted
  }
  auto extra = Client::Connect(server->port());
  ASSERT_NE(extra, nullptr);
  ASSERT_TRUE(extra->Send(Get("/extra")));
  ExpectError(extra.get(), 503, "too many connections: 3 are open (max_connections)");
  // One closes: a new one is served.
  held.pop_back();
  ASSERT_TRUE(testing::WaitFor([&] { return server->stats().connections_open <= 2; }));
  auto next = Client::Connect(server->port());
  ASSERT_TRUE(next->Send(Get("/next")));
  auto r = next->ReadResponse();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(server->stats().rejected_total, 1);
}

}  // namespace
}  // namespace emoe::server
