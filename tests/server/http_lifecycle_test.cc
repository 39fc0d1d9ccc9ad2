// The HTTP server's stop and scale over real sockets: Stop with open streams returns within its
// grace (streams that end in time finish whole, the rest are cut and told), exchanges outliving
// the server, Stop twice and from several threads, and 512 streaming exchanges at once (the
// service's 256 concurrent streams, at the HTTP layer, twice over).
#include <poll.h>
#include <sys/resource.h>

#include <thread>

#include "http_test_util.h"

namespace emoe::server {
namespace {

using testing::Client;
using testing::Clock;
using testing::ExchangeQueue;
using testing::Get;
using testing::SecondsSince;
using testing::StartServer;
using testing::TestOptions;
using testing::WaitFor;

TEST(HttpLifecycleTest, StopWithOpenStreamsReturnsWithinGrace) {
  ExchangeQueue q;
  auto server = StartServer(TestOptions(), q.Handler());
  ASSERT_NE(server, nullptr);
  auto streaming = Client::Connect(server->port());
  auto idle = Client::Connect(server->port());
  auto half = Client::Connect(server->port());
  ASSERT_TRUE(streaming->Send(Get("/s")));
  ASSERT_TRUE(half->Send("GET /half HTTP/1.1\r\n"));
  auto e = q.Pop();
  ASSERT_NE(e, nullptr);
  std::atomic<int> calls{0};
  e->OnDisconnect([&] { calls++; });
  e->StartStream(200, "text/event-stream", {});
  ASSERT_TRUE(e->Write("data: 1\n\n"));
  ASSERT_TRUE(WaitFor([&] { return server->stats().connections_open == 3; }));
  const auto start = Clock::now();
  server->Stop(1.0);  // the stream never ends: cut after the grace
  const double took = SecondsSince(start);
  EXPECT_GE(took, 0.9);
  EXPECT_LT(took, 5.0);
  EXPECT_EQ(calls.load(), 1) << "the cut stream's owner was not told";
  EXPECT_TRUE(e->disconnected());
  EXPECT_FALSE(e->Write("data: 2\n\n"));
  e->End();
  EXPECT_TRUE(idle->WaitClosed(5));
  EXPECT_TRUE(half->WaitClosed(5));
  EXPECT_TRUE(streaming->WaitClosed(5));
  EXPECT_EQ(server->stats().connections_open, 0);
  // No new connections.
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(server->port()));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_NE(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  close(fd);
  server->Stop(5);  // idempotent, at once
  EXPECT_LT(SecondsSince(start), 6.0);
}

TEST(HttpLifecycleTest, StreamEndingWithinGraceFinishesWhole) {
  ExchangeQueue q;
  auto server = StartServer(TestOptions(), q.Handler());
  ASSERT_NE(server, nullptr);
  auto c = Client::Connect(server->port());
  ASSERT_TRUE(c->Send(Get("/s")));
  auto e = q.Pop();
  ASSERT_NE(e, nullptr);
  e->StartStream(200, "text/plain", {});
  std::thread owner([e] {
    usleep(200000);  // during Stop's grace
    e->Write("tail");
    e->End();
  });
  const auto start = Clock::now();
  server->Stop(10);
  owner.join();
  EXPECT_LT(SecondsSince(start), 5.0) << "Stop waited out the grace after the stream ended";
  auto r = c->ReadResponse();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->body, "tail");
  EXPECT_EQ(r->Header("connection"), "");  // sent before Stop: keep-alive, then closed
  EXPECT_TRUE(c->WaitClosed(5));
}

TEST(HttpLifecycleTest, ExchangesOutliveTheServer) {
  ExchangeQueue q;
  auto server = StartServer(TestOptions(), q.Handler());
  ASSERT_NE(server, nullptr);
  auto c1 = Client::Connect(server->port());
  auto c2 = Client::Connect(server->port());
  ASSERT_TRUE(c1->Send(Get("/a")));
  auto answered = q.Pop();
  ASSERT_TRUE(c2->Send(Get("/b")));
  auto open = q.Pop();
  ASSERT_NE(answered, nullptr);
  ASSERT_NE(open, nullptr);
  answered->Respond({200, "text/plain", "a", {}});
  ASSERT_TRUE(c1->ReadResponse());
  server.reset();  // the destructor stops it, at once
  EXPECT_TRUE(open->disconnected());
  EXPECT_TRUE(answered->disconnected());
  open->StartStream(200, "text/plain", {});
  EXPECT_FALSE(open->Write("x"));
  open->End();
  std::atomic<int> calls{0};
  open->OnDisconnect([&] { calls++; });  // after the stop: runs at once, here
  EXPECT_EQ(calls.load(), 1);
  answered->OnDisconnect([&] { calls++; });  // ended normally: never
  EXPECT_EQ(calls.load(), 1);
  std::thread other([open] { EXPECT_FALSE(open->Write("y")); });
  other.join();
  open.reset();
  answered.reset();  // the last references: the core (and its io_context) go now
}

TEST(HttpLifecycleTest, StopFromSeveralThreads) {
  auto server = StartServer(TestOptions(), testing::EchoHandler());
  ASSERT_NE(server, nullptr);
  std::vector<std::thread> stoppers;
  for (int i = 0; i < 4; ++i) stoppers.emplace_back([&] { server->Stop(1); });
  for (auto& t : stoppers) t.join();
  EXPECT_EQ(server->stats().connections_open, 0);
}

// Raises the soft fd limit to the hard one; false when even that is below `need`.
bool EnsureFds(rlim_t need) {
  rlimit r{};
  if (getrlimit(RLIMIT_NOFILE, &r) != 0) return false;
  if (r.rlim_cur >= need) return true;
  r.rlim_cur = std::min(r.rlim_max, need);
  return setrlimit(RLIMIT_NOFILE, &r) == 0 && r.rlim_cur >= need;
}

TEST(HttpLifecycleTest, FiveHundredTwelveConcurrentStreams) {
  constexpr int kStreams = 512, kChunks = 8;
  if (!EnsureFds(2 * kStreams + 256)) GTEST_SKIP() << "RLIMIT_NOFILE too low for 1024 sockets";
  ExchangeQueue q;
  auto server = StartServer(TestOptions(), q.Handler());
  ASSERT_NE(server, nullptr);
  std::vector<std::unique_ptr<Client>> clients;
  for (int i = 0; i < kStreams; ++i) {
    clients.push_back(Client::Connect(server->port()));
    ASSERT_NE(clients.back(), nullptr) << i;
    ASSERT_TRUE(clients.back()->Send(Get("/s/" + std::to_string(i))));
  }
  std::vector<std::shared_ptr<HttpExchange>> exchanges(kStreams);
  for (int i = 0; i < kStreams; ++i) {
    auto e = q.Pop(30);
    ASSERT_NE(e, nullptr) << "got " << i << " of " << kStreams << " requests";
    const int id = std::stoi(e->request().path.substr(3));
    exchanges[id] = std::move(e);
  }
  EXPECT_EQ(server->stats().connections_open, kStreams);
  // All streams open at once; a writer thread interleaves their chunks while the clients read.
  std::thread writer([&] {
    for (auto& e : exchanges) e->StartStream(200, "text/event-stream", {});
    for (int k = 0; k < kChunks; ++k) {
      for (int i = 0; i < kStreams; ++i) {
        exchanges[i]->Write("data: " + std::to_string(i) + "." + std::to_string(k) + "\n\n");
      }
    }
    for (auto& e : exchanges) e->End();
  });
  std::vector<std::string> bodies(kStreams);
  std::vector<bool> done(kStreams, false);
  int finished = 0;
  const auto start = Clock::now();
  std::vector<pollfd> fds(kStreams);
  while (finished < kStreams && SecondsSince(start) < 60) {
    for (int i = 0; i < kStreams; ++i) {
      fds[i] = {clients[i]->fd(), static_cast<short>(done[i] ? 0 : POLLIN), 0};
    }
    if (poll(fds.data(), fds.size(), 1000) <= 0) continue;
    for (int i = 0; i < kStreams; ++i) {
      if (done[i] || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      if (!clients[i]->ReadSome(0)) continue;
      if (clients[i]->buffer().find("\r\n0\r\n\r\n") != std::string::npos) {
        done[i] = true;
        finished++;
      }
    }
  }
  writer.join();
  ASSERT_EQ(finished, kStreams);
  for (int i = 0; i < kStreams; ++i) {
    auto r = clients[i]->ReadResponse(1);
    ASSERT_TRUE(r) << i;
    std::string want;
    for (int k = 0; k < kChunks; ++k) {
      want += "data: " + std::to_string(i) + "." + std::to_string(k) + "\n\n";
    }
    EXPECT_EQ(r->body, want) << i;
    EXPECT_EQ(r->chunks.size(), static_cast<size_t>(kChunks)) << i;
  }
  EXPECT_EQ(server->stats().requests_total, kStreams);
}

}  // namespace
}  // namespace emoe::server
