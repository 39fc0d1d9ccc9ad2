// The HTTP server's streamed responses over real sockets: each chunk reaches the client before
// the next is written, SSE headers, HTTP/1.0 streams, a client that disconnects mid-stream
// (OnDisconnect at once, Write false after), input pipelined during a stream kept, a client
// that never reads (closed by backpressure), and exchanges used from other threads.
#include <thread>

#include "http_test_util.h"

namespace emoe::server {
namespace {

using testing::Client;
using testing::Clock;
using testing::Curl;
using testing::ExchangeQueue;
using testing::Get;
using testing::HaveCurl;
using testing::SecondsSince;
using testing::StartServer;
using testing::TestOptions;
using testing::WaitFor;

TEST(HttpStreamTest, EachChunkArrivesBeforeTheNextIsWritten) {
  ExchangeQueue q;
  auto server = StartServer(TestOptions(), q.Handler());
  ASSERT_NE(server, nullptr);
  auto c = Client::Connect(server->port());
  ASSERT_NE(c, nullptr);
  ASSERT_TRUE(c->Send(Get("/stream")));
  auto e = q.Pop();
  ASSERT_NE(e, nullptr);
  e->StartStream(200, "text/plain", {{"X-Config", "ep2"}});
  auto head = c->ReadHead();
  ASSERT_TRUE(head);
  EXPECT_EQ(head->status, 200);
  EXPECT_EQ(head->Header("transfer-encoding"), "chunked");
  EXPECT_EQ(head->Header("x-config"), "ep2");
  for (int i = 0; i < 20; ++i) {
    const std::string token = "token" + std::to_string(i);
    ASSERT_TRUE(e->Write(token));
    auto chunk = c->ReadChunk(10);  // read before the next Write: nothing waits for End
    ASSERT_TRUE(chunk) << "chunk " << i << " did not arrive on its own";
    EXPECT_EQ(*chunk, token);
  }
  EXPECT_TRUE(e->Write(""));  // ignored, not the last chunk
  e->End();
  auto last = c->ReadChunk();
  ASSERT_TRUE(last);
  EXPECT_EQ(*last, "") << "the last chunk";
  EXPECT_FALSE(e->Write("late")) << "a Write after End";
  EXPECT_FALSE(e->disconnected());
  // Keep-alive after a stream.
  ASSERT_TRUE(c->Send(Get("/again")));
  q.Pop()->Respond({200, "text/plain", "again", {}});
  auto r = c->ReadResponse();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->body, "again");
}

TEST(HttpStreamTest, ServerSentEventsHeaders) {
  ExchangeQueue q;
  auto server = StartServer(TestOptions(), q.Handler());
  ASSERT_NE(server, nullptr);
  auto c = Client::Connect(server->port());
  ASSERT_TRUE(c->Send(Get("/sse")));
  auto e = q.Pop();
  ASSERT_NE(e, nullptr);
  e->StartStream(200, "text/event-stream", {});
  e->Write("data: {\"x\":1}\n\n");
  e->Write("data: [DONE]\n\n");
  e->End();
  auto r = c->ReadResponse();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->Header("content-type"), "text/event-stream");
  EXPECT_EQ(r->Header("cache-control"), "no-cache");
  EXPECT_EQ(r->body, "data: {\"x\":1}\n\ndata: [DONE]\n\n");
  EXPECT_EQ(r->chunks.size(), 2u);
}

TEST(HttpStreamTest, CurlReadsAStreamAsItComes) {
  if (!HaveCurl()) GTEST_SKIP() << "curl is not installed";
  ExchangeQueue q;
  auto server = StartServer(TestOptions(), q.Handler());
  ASSERT_NE(server, nullptr);
  std::thread writer([&] {
    auto e = q.Pop();
    if (e == nullptr) return;
    e->StartStream(200, "text/event-stream", {});
    for (int i = 0; i < 5; ++i) e->Write("data: " + std::to_string(i) + "\n\n");
    e->Write("data: [DONE]\n\n");
    e->End();
  });
  auto [rc, out] = Curl("-N -i http://127.0.0.1:" + std::to_string(server->port()) + "/s");
  writer.join();
  EXPECT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("Cache-Control: no-cache"), std::string::npos) << out;
  EXPECT_NE(out.find("data: 0\n\ndata: 1\n\ndata: 2\n\ndata: 3\n\ndata: 4\n\ndata: [DONE]\n\n"),
            std::string::npos)
      << out;
}

TEST(HttpStreamTest, Http10StreamEndsWithTheConnection) {
  ExchangeQueue q;
  auto server = StartServer(TestOptions(), q.Handler());
  ASSERT_NE(server, nullptr);
  auto c = Client::Connect(server->port());
  ASSERT_TRUE(c->Send("GET /old HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"));
  auto e = q.Pop();
  ASSERT_NE(e, nullptr);
  e->StartStream(200, "text/plain", {});
  e->Write("ab");
  e->Write("cd");
  e->End();
  auto r = c->ReadResponse();
  ASSERT_TRUE(r);
  EXPECT_FALSE(r->HasHeader("transfer-encoding"));
  EXPECT_EQ(r->Header("connection"), "close");
  EXPECT_EQ(r->body, "abcd");
}

TEST(HttpStreamTest, ClientDisconnectMidStreamIsSeenAtOnce) {
  for (bool reset : {false, true}) {
    SCOPED_TRACE(reset ? "reset" : "close");
    ExchangeQueue q;
    auto server = StartServer(TestOptions(), q.Handler());
    ASSERT_NE(server, nullptr);
    auto c = Client::Connect(server->port());
    ASSERT_TRUE(c->Send(Get("/s")));
    auto e = q.Pop();
    ASSERT_NE(e, nullptr);
    std::atomic<int> calls{0};
    e->OnDisconnect([&] { calls++; });
    e->StartStream(200, "text/event-stream", {});
    ASSERT_TRUE(e->Write("data: 1\n\n"));
    ASSERT_TRUE(c->ReadHead());
    ASSERT_TRUE(c->ReadChunk());
    const auto start = Clock::now();
    reset ? c->Reset() : c->Close();
    // Seen by the posted read, with no write needed to find out.
    ASSERT_TRUE(WaitFor([&] { return calls.load() == 1; }, 10));
    EXPECT_LT(SecondsSince(start), 1.0);
    EXPECT_TRUE(e->disconnected());
    EXPECT_FALSE(e->Write("data: 2\n\n"));
    e->End();
    // Set after the fact: runs at once; the first one ran once only.
    std::atomic<int> late{0};
    e->OnDisconnect([&] { late++; });
    EXPECT_TRUE(WaitFor([&] { return late.load() == 1; }));
    EXPECT_EQ(calls.load(), 1);
    EXPECT_TRUE(WaitFor([&] { return server->stats().connections_open == 0; }));
  }
}

TEST(HttpStreamTest, OnDisconnectDoesNotRunWhenTheResponseEnded) {
  ExchangeQueue q;
  auto server = StartServer(TestOptions(), q.Handler());
  ASSERT_NE(server, nullptr);
  auto c = Client::Connect(server->port());
  ASSERT_TRUE(c->Send(Get("/a")));
  auto e = q.Pop();
  std::atomic<int> calls{0};
  e->OnDisconnect([&] { calls++; });
  e->Respond({200, "text/plain", "x", {}});
  ASSERT_TRUE(c->ReadResponse());
  c->Close();
  ASSERT_TRUE(WaitFor([&] { return server->stats().connections_open == 0; }));
  EXPECT_EQ(calls.load(), 0);
  EXPECT_FALSE(e->disconnected());
}

TEST(HttpStreamTest, InputPipelinedDuringAStreamIsKept) {
  ExchangeQueue q;
  auto server = StartServer(TestOptions(), q.Handler());
  ASSERT_NE(server, nullptr);
  auto c = Client::Connect(server->port());
  ASSERT_TRUE(c->Send(Get("/first")));
  auto e = q.Pop();
  ASSERT_NE(e, nullptr);
  e->StartStream(200, "text/plain", {});
  ASSERT_TRUE(c->ReadHead());
  // The next request, in pieces, while the stream is open (the server's read is posted).
  const std::string next = Get("/second", "X-Long: " + std::string(3000, 'l') + "\r\n");
  ASSERT_TRUE(c->Send(next.substr(0, 10)));
  usleep(50000);
  ASSERT_TRUE(c->Send(next.substr(10)));
  e->Write("one");
  ASSERT_EQ(c->ReadChunk(), "one");
  EXPECT_FALSE(e->disconnected());
  EXPECT_EQ(q.Pop(0.1), nullptr) << "the second request must wait for the first response";
  e->End();
  auto e2 = q.Pop();
  ASSERT_NE(e2, nullptr);
  EXPECT_EQ(e2->request().path, "/second");
  EXPECT_EQ(e2->request().Header("x-long").size(), 3000u);
  e2->Respond({200, "text/plain", "2", {}});
  ASSERT_EQ(c->ReadChunk(), "");
  auto r = c->ReadResponse();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->body, "2");
}

TEST(HttpStreamTest, ClientThatNeverReadsIsClosed) {
  HttpOptions o = TestOptions();
  o.max_pending_write_bytes = 256 << 10;
  ExchangeQueue q;
  auto server = StartServer(o, q.Handler());
  ASSERT_NE(server, nullptr);
  auto c = Client::Connect(server->port());
  int small = 4096;  // a small receive window, so that the kernel's buffers fill quickly
  setsockopt(c->fd(), SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
  ASSERT_TRUE(c->Send(Get("/flood")));
  auto e = q.Pop();
  ASSERT_NE(e, nullptr);
  std::atomic<int> calls{0};
  e->OnDisconnect([&] { calls++; });
  e->StartStream(200, "text/plain", {});
  const std::string chunk(16 << 10, 'f');
  size_t written = 0;
  const auto start = Clock::now();
  while (e->Write(chunk) && SecondsSince(start) < 20) {
    written += chunk.size();
    if (written > (size_t{512} << 20)) break;
  }
  EXPECT_TRUE(e->disconnected()) << "wrote " << written << " bytes to a client that reads none";
  EXPECT_LT(written, size_t{64} << 20);
  ASSERT_TRUE(WaitFor([&] { return calls.load() == 1; }));
  EXPECT_TRUE(WaitFor([&] { return server->stats().connections_open == 0; }));
}

TEST(HttpStreamTest, ExchangeUsedFromOtherThreads) {
  ExchangeQueue q;
  HttpOptions o = TestOptions();
  o.io_threads = 3;
  auto server = StartServer(o, q.Handler());
  ASSERT_NE(server, nullptr);
  auto c = Client::Connect(server->port());
  ASSERT_TRUE(c->Send(Get("/mt")));
  auto e = q.Pop();
  ASSERT_NE(e, nullptr);
  e->StartStream(200, "text/plain", {});
  constexpr int kThreads = 4, kWrites = 200;
  std::vector<std::thread> writers;
  for (int t = 0; t < kThreads; ++t) {
    writers.emplace_back([e, t] {
      for (int i = 0; i < kWrites; ++i) {
        e->Write(std::to_string(t) + ":" + std::to_string(i) + ";");
        (void)e->disconnected();
      }
    });
  }
  for (auto& t : writers) t.join();
  std::thread ender([e] { e->End(); });
  ender.join();
  e.reset();  // the last reference goes on this thread, after End
  auto r = c->ReadResponse();
  ASSERT_TRUE(r);
  // Each thread's writes arrive whole and in its order.
  std::vector<int> next(kThreads, 0);
  size_t pos = 0;
  int chunks = 0;
  while (pos < r->body.size()) {
    const size_t colon = r->body.find(':', pos), semi = r->body.find(';', pos);
    ASSERT_NE(semi, std::string::npos);
    const int t = std::stoi(r->body.substr(pos, colon - pos));
    const int i = std::stoi(r->body.substr(colon + 1, semi - colon - 1));
    ASSERT_EQ(i, next[t]) << "thread " << t;
    next[t]++;
    pos = semi + 1;
    chunks++;
  }
  EXPECT_EQ(chunks, kThreads * kWrites);
}

}  // namespace
}  // namespace emoe::server
