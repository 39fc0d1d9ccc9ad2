// serve_bench's HTTP client (bench/serve_client.h) against scripted servers on loopback: each
// test's server answers with exact bytes (chunk boundaries inside SSE events, pauses, a cut
// connection, a hang), so that every verdict the client gives is seen on a real socket.
#include <gtest/gtest.h>

#include <atomic>
#include <boost/asio.hpp>
#include <chrono>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "bench/serve_client.h"

namespace emoe::bench {
namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

// One step of a scripted answer: bytes to send after a pause.
struct Step {
  std::string bytes;
  int pause_ms = 0;
};
enum class End { kClose, kHang };

// Accepts connections on 127.0.0.1 one at a time on its own thread; for each it reads the
// request head (and a Content-Length body), keeps the request, plays the script, then closes or
// holds the connection until the server is destroyed.
class ScriptedServer {
 public:
  ScriptedServer(std::vector<Step> script, End end)
      : acceptor_(io_, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)),
        script_(std::move(script)),
        end_(end) {
    port_ = acceptor_.local_endpoint().port();
    thread_ = std::thread([this] { Serve(); });
  }
  ~ScriptedServer() {
    // A blocking accept is not woken by close(2): a connection of our own wakes it.
    stop_ = true;
    boost::system::error_code ec;
    tcp::socket wake(io_);
    wake.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port_), ec);
    thread_.join();
    for (auto& s : held_) s.close(ec);
  }
  int port() const { return port_; }
  std::string last_request() const {
    std::lock_guard<std::mutex> l(mu_);
    return last_request_;
  }

 private:
  void Serve() {
    while (!stop_) {
      boost::system::error_code ec;
      tcp::socket s(io_);
      acceptor_.accept(s, ec);
      if (ec || stop_) return;
      std::string req;
      char buf[4096];
      while (req.find("\r\n\r\n") == std::string::npos) {
        const size_t n = s.read_some(asio::buffer(buf), ec);
        if (ec) break;
        req.append(buf, n);
      }
      const size_t cl = req.find("Content-Length: ");
      if (cl != std::string::npos) {
        const size_t want = req.find("\r\n\r\n") + 4 + std::stoul(req.substr(cl + 16));
        while (req.size() < want && !ec) req.append(buf, s.read_some(asio::buffer(buf), ec));
      }
      {
        std::lock_guard<std::mutex> l(mu_);
        last_request_ = req;
      }
      for (const Step& st : script_) {
        std::this_thread::sleep_for(std::chrono::milliseconds(st.pause_ms));
        asio::write(s, asio::buffer(st.bytes), ec);
      }
      if (end_ == End::kHang) {
        held_.push_back(std::move(s));
      } else {
        s.shutdown(tcp::socket::shutdown_send, ec);
        s.close(ec);
      }
    }
  }

  asio::io_context io_;
  tcp::acceptor acceptor_;
  std::vector<Step> script_;
  End end_;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::vector<tcp::socket> held_;
  mutable std::mutex mu_;
  std::string last_request_;
  std::thread thread_;
};

std::string Hex(size_t n) {
  char b[32];
  std::snprintf(b, sizeof(b), "%zx", n);
  return b;
}
std::string ChunkOf(const std::string& s) { return Hex(s.size()) + "\r\n" + s + "\r\n"; }

const char kStreamHead[] =
    "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n"
    "X-Emoe-Devices: 0,1\r\n\r\n";
const std::string kToken =
    "data: {\"choices\":[{\"index\":0,\"text\":\"ab\",\"finish_reason\":null}],\"usage\":null}\n\n";
const std::string kFinish =
    "data: {\"choices\":[{\"index\":0,\"text\":\"\",\"finish_reason\":\"length\"}],\"usage\":null}"
    "\n\n";
const std::string kUsage =
    "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":2}}\n\n";
const std::string kDone = "data: [DONE]\n\n";

class ClientTest : public ::testing::Test {
 protected:
  StreamResult StreamTo(int port, int64_t expected, double timeout_s, bool* head = nullptr) {
    ServerUrl url{"127.0.0.1", std::to_string(port), "127.0.0.1:" + std::to_string(port)};
    auto eps = Resolve(&io_, url);
    EXPECT_TRUE(eps.ok());
    const auto t0 = std::chrono::steady_clock::now();
    Client c(&io_, *eps, url, [t0] {
      return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    });
    StreamResult out;
    int calls = 0;
    c.Stream(
        "/v1/completions", "{\"x\":1}", expected, timeout_s,
        [head] {
          if (head) *head = true;
        },
        [&](StreamResult r) {
          ++calls;
          out = std::move(r);
        });
    io_.restart();
    io_.run();
    EXPECT_EQ(calls, 1);
    return out;
  }
  asio::io_context io_;
};

TEST_F(ClientTest, StreamSplitInsideEventsWithPauses) {
  // The SSE events cut across chunk boundaries and TCP writes.
  const std::string sse = kToken + kToken + kFinish + kUsage + kDone;
  std::vector<Step> script = {{kStreamHead, 0}};
  script.push_back({ChunkOf(sse.substr(0, 30)), 10});
  script.push_back({ChunkOf(sse.substr(30, kToken.size())), 0});
  script.push_back({ChunkOf(sse.substr(30 + kToken.size())), 150});
  script.push_back({"0\r\n\r\n", 0});
  ScriptedServer server(script, End::kClose);
  bool head = false;
  const StreamResult r = StreamTo(server.port(), 2, 10, &head);
  EXPECT_EQ(r.failure, "");
  EXPECT_TRUE(head);
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.stats.text, "abab");
  EXPECT_EQ(r.stats.completion_tokens, 2);
  EXPECT_GE(r.stats.max_gap_s, 0.12);  // the 150 ms pause between the two tokens
  EXPECT_GE(r.stats.first_content_s, r.start_s);
  bool found = false;
  for (const auto& h : r.headers) found |= h.first == "x-emoe-devices" && h.second == "0,1";
  EXPECT_TRUE(found);
  const std::string req = server.last_request();
  EXPECT_EQ(req.rfind("POST /v1/completions HTTP/1.1\r\n", 0), 0u) << req;
  EXPECT_NE(req.find("Content-Type: application/json"), std::string::npos);
  EXPECT_NE(req.find("\r\n\r\n{\"x\":1}"), std::string::npos);
}

TEST_F(ClientTest, ErrorStatusCarriesTheMessage) {
  const std::string body = "{\"error\":{\"message\":\"the queue is full\",\"type\":\"x\"}}";
  ScriptedServer server({{"HTTP/1.1 429 Too Many Requests\r\nContent-Type: application/json\r\n"
                          "Content-Length: " +
                              std::to_string(body.size()) + "\r\n\r\n" + body,
                          0}},
                        End::kClose);
  bool head = false;
  const StreamResult r = StreamTo(server.port(), 2, 10, &head);
  EXPECT_EQ(r.status, 429);
  EXPECT_EQ(r.failure, "HTTP 429: the queue is full");
  EXPECT_FALSE(head);
}

TEST_F(ClientTest, CutStreamFails) {
  ScriptedServer server({{kStreamHead, 0}, {ChunkOf(kToken), 0}}, End::kClose);
  const StreamResult r = StreamTo(server.port(), 2, 10);
  EXPECT_NE(r.failure.find("closed before the response ended after 1 events"), std::string::npos)
      << r.failure;
}

TEST_F(ClientTest, ErrorChunkFails) {
  const std::string err = "data: {\"error\":{\"message\":\"engine stopped\"}}\n\n";
  ScriptedServer server({{kStreamHead, 0}, {ChunkOf(kToken + err + kDone), 0}, {"0\r\n\r\n", 0}},
                        End::kClose);
  const StreamResult r = StreamTo(server.port(), 2, 10);
  EXPECT_EQ(r.failure, "error chunk: engine stopped");
}

TEST_F(ClientTest, WholeStreamWithoutDoneFails) {
  ScriptedServer server(
      {{kStreamHead, 0}, {ChunkOf(kToken + kFinish + kUsage), 0}, {"0\r\n\r\n", 0}}, End::kClose);
  const StreamResult r = StreamTo(server.port(), 2, 10);
  EXPECT_EQ(r.failure, "the stream ended without data: [DONE]");
}

TEST_F(ClientTest, HungStreamTimesOut) {
  ScriptedServer server({{kStreamHead, 0}, {ChunkOf(kToken), 0}}, End::kHang);
  const auto t0 = std::chrono::steady_clock::now();
  const StreamResult r = StreamTo(server.port(), 2, 0.5);
  EXPECT_NE(r.failure.find("timed out after 0.5"), std::string::npos) << r.failure;
  EXPECT_GE(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(450));
}

TEST_F(ClientTest, RefusedConnection) {
  int port;
  {
    asio::io_context io;
    tcp::acceptor a(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    port = a.local_endpoint().port();
  }  // closed: nothing listens there now
  const StreamResult r = StreamTo(port, 2, 10);
  EXPECT_EQ(r.status, 0);
  EXPECT_EQ(r.failure.rfind("connect: ", 0), 0u) << r.failure;
}

TEST_F(ClientTest, WholeCall) {
  ScriptedServer server({{"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", 0}}, End::kClose);
  ServerUrl url{"127.0.0.1", std::to_string(server.port()), "h"};
  auto eps = Resolve(&io_, url);
  ASSERT_TRUE(eps.ok());
  Client c(&io_, *eps, url, [] { return 0.0; });
  const CallResult r = CallNow(&io_, &c, "GET", "/metrics", "", 10);
  EXPECT_EQ(r.error, "");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "hello");
  EXPECT_EQ(server.last_request().rfind("GET /metrics HTTP/1.1\r\n", 0), 0u);
  EXPECT_NE(server.last_request().find("Host: h\r\n"), std::string::npos);
}

}  // namespace
}  // namespace emoe::bench
