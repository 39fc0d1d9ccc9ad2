// tests/server/http_test_util.h: what the HTTP server's tests share: a plain POSIX client
// socket that reads responses (Content-Length, chunked chunk by chunk, or to EOF) with
// timeouts, a queue of the exchanges a handler received, curl through popen, and a server
// started on a free port. Waits are generous (seconds): the CI machine is slow and loaded.
//
// Thread safety: Client is for one thread; ExchangeQueue for any.
#ifndef TESTS_SERVER_HTTP_TEST_UTIL_H_
#define TESTS_SERVER_HTTP_TEST_UTIL_H_

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "gtest/gtest.h"
#include "server/http.h"
#include "vmm/mutex.h"

namespace emoe::server::testing {

using Clock = std::chrono::steady_clock;

inline double SecondsSince(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

struct Response {
  int status = 0;
  std::vector<std::pair<std::string, std::string>> headers;  // names lower-cased
  std::string body;                                          // de-chunked
  std::vector<std::string> chunks;                           // when chunked
  std::string Header(const std::string& name) const {
    for (const auto& h : headers) {
      if (h.first == name) return h.second;
    }
    return "";
  }
  bool HasHeader(const std::string& name) const {
    return std::any_of(headers.begin(), headers.end(),
                       [&](const auto& h) { return h.first == name; });
  }
};

class Client {
 public:
  // A blocking connection to 127.0.0.1:port; nullptr (with a test failure) when it fails.
  static std::unique_ptr<Client> Connect(int port) {
    const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      ADD_FAILURE() << "socket: " << std::strerror(errno);
      return nullptr;
    }
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
      ADD_FAILURE() << "connect to port " << port << ": " << std::strerror(errno);
      close(fd);
      return nullptr;
    }
    return std::unique_ptr<Client>(new Client(fd));
  }
  ~Client() {
    if (fd_ >= 0) close(fd_);
  }
  int fd() const { return fd_; }

  bool Send(std::string_view bytes) {
    while (!bytes.empty()) {
      const ssize_t n = send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return false;
      bytes.remove_prefix(static_cast<size_t>(n));
    }
    return true;
  }
  // Closes at once with a reset (SO_LINGER 0): an abrupt client.
  void Reset() {
    linger l{1, 0};
    setsockopt(fd_, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
    close(fd_);
    fd_ = -1;
  }
  void Close() {
    close(fd_);
    fd_ = -1;
  }

  // Reads more into buffer(); false on EOF, error or `timeout_s` without a byte.
  bool ReadSome(double timeout_s) {
    pollfd p{fd_, POLLIN, 0};
    const int r = poll(&p, 1, static_cast<int>(timeout_s * 1000));
    if (r <= 0) return false;
    char buf[65536];
    const ssize_t n = recv(fd_, buf, sizeof(buf), 0);
    if (n <= 0) {
      eof_ = true;
      return false;
    }
    buffer_.append(buf, static_cast<size_t>(n));
    return true;
  }
  // Reads until `done(buffer())` or the deadline; false on timeout or EOF before.
  bool ReadUntil(const std::function<bool(const std::string&)>& done, double timeout_s) {
    const auto deadline = Clock::now() + std::chrono::duration<double>(timeout_s);
    while (!done(buffer_)) {
      const double left = std::chrono::duration<double>(deadline - Clock::now()).count();
      if (left <= 0 || !ReadSome(left)) return done(buffer_);
    }
    return true;
  }
  // Whether the server closes the connection (EOF or reset) within `timeout_s`; bytes that come
  // first are kept in buffer().
  bool WaitClosed(double timeout_s) {
    const auto deadline = Clock::now() + std::chrono::duration<double>(timeout_s);
    while (!eof_) {
      const double left = std::chrono::duration<double>(deadline - Clock::now()).count();
      if (left <= 0) return false;
      ReadSome(left);
    }
    return true;
  }

  // The head of the next response (a 100 Continue included); its body is left in buffer().
  std::optional<Response> ReadHead(double timeout_s = 10) {
    if (!ReadUntil([](const std::string& b) { return b.find("\r\n\r\n") != std::string::npos; },
                   timeout_s)) {
      return std::nullopt;
    }
    const size_t end = buffer_.find("\r\n\r\n");
    const std::string head = buffer_.substr(0, end);
    buffer_.erase(0, end + 4);
    Response r;
    size_t line_end = head.find("\r\n");
    const std::string status_line = head.substr(0, line_end);
    if (status_line.rfind("HTTP/1.", 0) != 0 || status_line.size() < 12) return std::nullopt;
    r.status = std::atoi(status_line.c_str() + 9);
    while (line_end != std::string::npos) {
      const size_t start = line_end + 2;
      line_end = head.find("\r\n", start);
      const std::string line = head.substr(start, line_end - start);
      const size_t colon = line.find(':');
      if (colon == std::string::npos) continue;
      std::string name = line.substr(0, colon);
      for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      size_t v = colon + 1;
      while (v < line.size() && line[v] == ' ') ++v;
      r.headers.emplace_back(name, line.substr(v));
    }
    return r;
  }
  // The next chunk of a chunked body; "" at the last chunk; nullopt on timeout.
  std::optional<std::string> ReadChunk(double timeout_s = 10) {
    if (!ReadUntil([](const std::string& b) { return b.find("\r\n") != std::string::npos; },
                   timeout_s)) {
      return std::nullopt;
    }
    const size_t eol = buffer_.find("\r\n");
    const size_t size = std::strtoul(buffer_.substr(0, eol).c_str(), nullptr, 16);
    const size_t need = eol + 2 + size + 2;  // the last chunk's CRLF closes it (no trailers)
    if (!ReadUntil([need](const std::string& b) { return b.size() >= need; }, timeout_s)) {
      return std::nullopt;
    }
    std::string data = buffer_.substr(eol + 2, size);
    buffer_.erase(0, need);
    return data;
  }
  // A whole response (skipping 100 Continue); nullopt on timeout or a bad response.
  std::optional<Response> ReadResponse(double timeout_s = 10, bool head_request = false) {
    std::optional<Response> r = ReadHead(timeout_s);
    while (r && r->status == 100) r = ReadHead(timeout_s);
    if (!r || head_request || r->status == 204 || r->status == 304) return r;
    if (r->Header("transfer-encoding") == "chunked") {
      for (;;) {
        std::optional<std::string> chunk = ReadChunk(timeout_s);
        if (!chunk) return std::nullopt;
        if (chunk->empty()) break;
        r->body += *chunk;
        r->chunks.push_back(std::move(*chunk));
      }
    } else if (r->HasHeader("content-length")) {
      const size_t n = std::strtoul(r->Header("content-length").c_str(), nullptr, 10);
      if (!ReadUntil([n](const std::string& b) { return b.size() >= n; }, timeout_s)) {
        return std::nullopt;
      }
      r->body = buffer_.substr(0, n);
      buffer_.erase(0, n);
    } else {
      WaitClosed(timeout_s);
      r->body = std::move(buffer_);
      buffer_.clear();
    }
    return r;
  }
  std::string& buffer() { return buffer_; }
  bool eof() const { return eof_; }

 private:
  explicit Client(int fd) : fd_(fd) {}
  int fd_;
  std::string buffer_;
  bool eof_ = false;
};

// "GET <path> HTTP/1.1" with a Host and `extra` header lines (each ending in CRLF).
inline std::string Get(const std::string& path, const std::string& extra = "") {
  return "GET " + path + " HTTP/1.1\r\nHost: test\r\n" + extra + "\r\n";
}
inline std::string Post(const std::string& path, const std::string& body,
                        const std::string& extra = "") {
  return "POST " + path +
         " HTTP/1.1\r\nHost: test\r\nContent-Length: " + std::to_string(body.size()) + "\r\n" +
         extra + "\r\n" + body;
}

// The exchanges a handler was given, in order, for a test thread to answer.
class ExchangeQueue {
 public:
  HttpHandler Handler() {
    return [this](std::shared_ptr<HttpExchange> e) { Push(std::move(e)); };
  }
  void Push(std::shared_ptr<HttpExchange> e) {
    vmm::MutexLock l(&mu_);
    queue_.push_back(std::move(e));
    cv_.SignalAll();
  }
  // The next exchange, or nullptr after `timeout_s`.
  std::shared_ptr<HttpExchange> Pop(double timeout_s = 10) {
    vmm::MutexLock l(&mu_);
    const auto deadline = Clock::now() + std::chrono::duration<double>(timeout_s);
    while (queue_.empty()) {
      const auto now = Clock::now();
      if (now >= deadline) return nullptr;
      cv_.WaitFor(&mu_, deadline - now);
    }
    auto e = std::move(queue_.front());
    queue_.pop_front();
    return e;
  }
  size_t size() {
    vmm::MutexLock l(&mu_);
    return queue_.size();
  }

 private:
  vmm::Mutex mu_;
  vmm::CondVar cv_;
  std::deque<std::shared_ptr<HttpExchange>> queue_ GUARDED_BY(mu_);
};

// A handler answering at once: 200 text/plain "<method> <path>?<query> <body>".
inline HttpHandler EchoHandler() {
  return [](std::shared_ptr<HttpExchange> e) {
    const HttpRequest& r = e->request();
    HttpResponse out;
    out.content_type = "text/plain";
    out.body = r.method + " " + r.path + (r.query.empty() ? "" : "?" + r.query) + " " + r.body;
    out.headers = {{"X-Peer", r.peer}};
    e->Respond(std::move(out));
  };
}

inline HttpOptions TestOptions() {
  HttpOptions o;
  o.port = 0;
  return o;
}

// A server on a free port; fails the test (nullptr) when it cannot start.
inline std::unique_ptr<HttpServer> StartServer(const HttpOptions& options, HttpHandler handler) {
  auto s = HttpServer::Start(options, std::move(handler));
  if (!s.ok()) {
    ADD_FAILURE() << s.status().ToString();
    return nullptr;
  }
  return std::move(s).value();
}

inline bool HaveCurl() { return std::system("curl --version >/dev/null 2>&1") == 0; }

// curl's stdout for `args` (a shell fragment), and its exit status.
inline std::pair<int, std::string> Curl(const std::string& args) {
  const std::string cmd = "curl -sS --max-time 20 " + args + " 2>&1";
  FILE* f = popen(cmd.c_str(), "r");
  if (f == nullptr) return {-1, "popen failed"};
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), f)) > 0) out.append(buf, n);
  const int rc = pclose(f);
  return {WIFEXITED(rc) ? WEXITSTATUS(rc) : -1, out};
}

// Waits until `cond()` or `timeout_s`; returns cond().
inline bool WaitFor(const std::function<bool()>& cond, double timeout_s = 10) {
  const auto deadline = Clock::now() + std::chrono::duration<double>(timeout_s);
  while (!cond()) {
    if (Clock::now() >= deadline) return cond();
    usleep(2000);
  }
  return true;
}

}  // namespace emoe::server::testing

#endif  // TESTS_SERVER_HTTP_TEST_UTIL_H_
