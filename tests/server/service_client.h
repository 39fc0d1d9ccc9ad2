// tests/server/service_client.h: a small HTTP/1.1 client over a real TCP socket for the
// service's tests: whole requests (Connection: close, read to EOF, chunked bodies decoded) and
// Server-Sent Event streams read event by event, closable mid-stream (a client going away).
// Blocking, with a receive timeout so that a stuck server fails a test instead of hanging it.
#ifndef TESTS_SERVER_SERVICE_CLIENT_H_
#define TESTS_SERVER_SERVICE_CLIENT_H_

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace emoe::server::testing {

struct HttpReply {
  int status = 0;                              // 0: no answer (connection failed or closed first)
  std::map<std::string, std::string> headers;  // names lower-cased
  std::string body;                            // de-chunked
  std::string header(const std::string& name) const {
    auto it = headers.find(name);
    return it == headers.end() ? "" : it->second;
  }
};

// One connection. Every read waits at most `timeout_s`.
class Connection {
 public:
  explicit Connection(int port, double timeout_s = 60) {
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    timeval tv{static_cast<time_t>(timeout_s),
               static_cast<suseconds_t>((timeout_s - static_cast<time_t>(timeout_s)) * 1e6)};
    setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    int one = 1;
    setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) Close();
  }
  ~Connection() { Close(); }
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  bool ok() const { return fd_ >= 0; }
  void Close() {
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
  }
  // Abortive close (RST): the client vanishes.
  void Reset() {
    if (fd_ < 0) return;
    linger l{1, 0};
    setsockopt(fd_, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
    Close();
  }

  bool Send(const std::string& method, const std::string& path, const std::string& body,
            const std::vector<std::string>& extra_headers = {}) {
    std::string req = method + " " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\n";
    if (!body.empty() || method == "POST") {
      req += "Content-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
             "\r\n";
    }
    for (const std::string& h : extra_headers) req += h + "\r\n";
    req += "\r\n" + body;
    return SendRaw(req);
  }
  bool SendRaw(const std::string& bytes) {
    size_t off = 0;
    while (ok() && off < bytes.size()) {
      const ssize_t n = send(fd_, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return false;
      off += static_cast<size_t>(n);
    }
    return ok();
  }

  // Reads the status line and headers. False on EOF or timeout first.
  bool ReadHead(HttpReply* r) {
    size_t end;
    while ((end = buf_.find("\r\n\r\n")) == std::string::npos) {
      if (!Fill()) return false;
    }
    const std::string head = buf_.substr(0, end);
    buf_.erase(0, end + 4);
    size_t pos = head.find("\r\n");
    const std::string line = head.substr(0, pos);
    if (line.size() < 12 || line.compare(0, 5, "HTTP/") != 0) return false;
    r->status = std::atoi(line.c_str() + 9);
    while (pos != std::string::npos && pos < head.size()) {
      const size_t next = head.find("\r\n", pos + 2);
      const std::string h = head.substr(pos + 2, next == std::string::npos ? next : next - pos - 2);
      const size_t colon = h.find(':');
      if (colon != std::string::npos) {
        std::string name = h.substr(0, colon);
        std::transform(name.begin(), name.end(), name.begin(),
                       [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
        size_t v = colon + 1;
        while (v < h.size() && h[v] == ' ') ++v;
        r->headers[name] = h.substr(v);
      }
      pos = next;
    }
    chunked_ = r->header("transfer-encoding").find("chunked") != std::string::npos;
    const std::string cl = r->header("content-length");
    remaining_ = cl.empty() ? -1 : std::atoll(cl.c_str());
    return true;
  }

  // The next piece of the body (de-chunked); nullopt at its end (or EOF, or a timeout).
  std::optional<std::string> ReadBody() {
    if (done_) return std::nullopt;
    if (!chunked_) {
      if (remaining_ == 0) return Finish();
      if (buf_.empty() && !Fill()) return Finish();
      std::string out = buf_;
      if (remaining_ > 0 && static_cast<int64_t>(out.size()) > remaining_) out.resize(remaining_);
      buf_.erase(0, out.size());
      if (remaining_ > 0) remaining_ -= static_cast<int64_t>(out.size());
      return out;
    }
    for (;;) {
      const size_t eol = buf_.find("\r\n");
      if (eol != std::string::npos) {
        const int64_t size = std::strtoll(buf_.c_str(), nullptr, 16);
        if (size == 0) return Finish();
        if (buf_.size() >= eol + 2 + size + 2) {
          std::string out = buf_.substr(eol + 2, size);
          buf_.erase(0, eol + 2 + size + 2);
          return out;
        }
      }
      if (!Fill()) return Finish();
    }
  }

  // The next Server-Sent Event's data ("[DONE]" included); nullopt when the stream ended.
  std::optional<std::string> ReadEvent() {
    for (;;) {
      const size_t end = events_.find("\n\n");
      if (end != std::string::npos) {
        std::string ev = events_.substr(0, end);
        events_.erase(0, end + 2);
        if (ev.rfind("data: ", 0) == 0) return ev.substr(6);
        continue;
      }
      auto piece = ReadBody();
      if (!piece) return std::nullopt;
      events_ += *piece;
    }
  }

 private:
  bool Fill() {
    char tmp[16384];
    ssize_t n;
    do {  // a signal to this process may interrupt a receive with a timeout (no SA_RESTART)
      n = ok() ? recv(fd_, tmp, sizeof(tmp), 0) : -1;
    } while (n < 0 && errno == EINTR);
    if (n <= 0) return false;
    buf_.append(tmp, static_cast<size_t>(n));
    return true;
  }
  std::optional<std::string> Finish() {
    done_ = true;
    return std::nullopt;
  }

  int fd_ = -1;
  std::string buf_, events_;
  bool chunked_ = false, done_ = false;
  int64_t remaining_ = -1;
};

// A whole request on a connection of its own.
inline HttpReply Fetch(int port, const std::string& method, const std::string& path,
                       const std::string& body = "",
                       const std::vector<std::string>& extra_headers = {}) {
  HttpReply r;
  Connection c(port);
  std::vector<std::string> headers = extra_headers;
  headers.push_back("Connection: close");
  if (!c.Send(method, path, body, headers) || !c.ReadHead(&r)) return HttpReply{};
  while (auto piece = c.ReadBody()) r.body += *piece;
  return r;
}

}  // namespace emoe::server::testing

#endif  // TESTS_SERVER_SERVICE_CLIENT_H_
