// server/http.h: an HTTP/1.1 server (Boost.Beast over Asio) for the OpenAI-compatible service:
// keep-alive, whole and streamed (chunked, Server-Sent Events) responses, and the limits a
// server facing untrusted clients needs. It knows nothing of models or of the API on top.
//
// Model: a few I/O threads run every connection asynchronously (no thread per connection, so
// thousands of idle or streaming clients cost memory, not threads). When a request has been read
// whole, the handler is called on an I/O thread with an HttpExchange; it must not block (long
// work goes to another thread, which answers through the exchange later, from any thread).
//
// Limits, each answered in HTTP and never crashing or stalling the server:
//   - request head (line + headers) larger than max_header_bytes: 431, connection closed
//   - body larger than max_body_bytes (Content-Length or chunked): 413, connection closed
//   - head not complete within header_timeout_s of its first byte, or of the connection's
//     start (slowloris): 408, connection closed; body not complete within body_timeout_s: 408
//   - a keep-alive connection idle for idle_timeout_s: closed
//   - malformed request (bad request line, bad header, bad chunk encoding, HTTP/2 preface): 400,
//     connection closed
//   - more than max_connections open: the new one gets 503 and is closed
//   - a client that stops reading a response: writes queue up to max_pending_write_bytes (one
//     write larger than that alone still goes), or a write makes no progress for
//     idle_timeout_s; then the connection is closed and the exchange is told it is gone
// Every such answer is JSON in OpenAI's error shape, {"error": {"message": "...", "type":
// "invalid_request_error" (503: "server_error"), "param": null, "code": null}}, the message
// naming the problem and the option that limits it. Error answers close gracefully (the client's
// further bytes are read and dropped for up to 1 s), so that the client reads the answer.
// A client that closes its connection (or resets it) while its response is still open is seen
// at once (a read stays posted while the response is written; input a pipelining client sends
// meanwhile is kept, up to 64 KiB or max_header_bytes, for its next request): the exchange's
// OnDisconnect callback runs and later writes are dropped.
//
// Protocol: HTTP/1.1 and 1.0 (keep-alive by default in 1.1, on "Connection: keep-alive" in 1.0;
// pipelined requests answered in order, one at a time), "Expect: 100-continue" answered before
// the body, request bodies by Content-Length or chunked (only "chunked" as Transfer-Encoding),
// HEAD answered without a body. Responses carry Server: emoe and Date; a stream is chunked
// (HTTP/1.0: raw, ending with the connection); TCP_NODELAY is set, so each Write leaves at once.
// A handler that drops an exchange without answering gets a 500 sent for it (a stream it did
// not End is cut: the connection closes).
//
// Thread safety: HttpServer's methods from any thread; an HttpExchange's from any thread, any
// number of them (they are serialized on the connection's strand).
#ifndef SERVER_HTTP_H_
#define SERVER_HTTP_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "vmm/status.h"

namespace emoe::server {

using vmm::Status;
using vmm::StatusOr;

struct HttpOptions {
  std::string host = "127.0.0.1";  // an IPv4/IPv6 address or "localhost"
  int port = 8000;                 // 0: a free port (HttpServer::port() says which)
  int io_threads = 2;              // threads running all connections (1..256)
  int backlog = 4096;              // listen(2) backlog (the kernel caps it at net.core.somaxconn)
  size_t max_header_bytes = 16 << 10;  // request line + headers (>= 256): above, 431
  size_t max_body_bytes = 4 << 20;     // decoded request body: above, 413
  double header_timeout_s = 10;  // whole head, from its first byte or the connection's start: 408
  double body_timeout_s = 30;    // whole body, from the end of the head: 408
  double idle_timeout_s = 60;    // keep-alive wait for the next request; a stalled write
  int max_connections = 8192;    // open at once; above, 503 and close
  size_t max_pending_write_bytes = 8 << 20;  // per connection, written but not sent: above, close
  // OK, or InvalidArgument naming the field ("HttpOptions.port 70000 is not in 0..65535").
  Status Validate() const;
};

struct HttpRequest {
  std::string method;  // "GET", "POST", ... as sent
  std::string target;  // as sent: "/v1/models?x=1"
  std::string path;    // the target without its query: "/v1/models"
  std::string query;   // after '?', undecoded; empty when none
  // Header names lower-cased; a repeated header's values joined with ", ".
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  std::string peer;  // "127.0.0.1:54321"
  // The value of header `name` (lower-case), or "" when absent.
  std::string Header(const std::string& name) const;
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;  // extra headers
};

// One request and its response. The server keeps it until the response has ended (or the
// client is gone) and the last shared_ptr to it is dropped.
class HttpExchange {
 public:
  virtual ~HttpExchange() = default;
  virtual const HttpRequest& request() const = 0;
  // A whole response (Content-Length). Once per exchange, instead of a stream.
  virtual void Respond(HttpResponse response) = 0;
  // A streamed response: the status and headers now (Transfer-Encoding: chunked; for SSE pass
  // "text/event-stream", and the server adds Cache-Control: no-cache), then Write() any number
  // of times, then End(). Writes are queued and sent in order.
  virtual void StartStream(int status, const std::string& content_type,
                           std::vector<std::pair<std::string, std::string>> headers) = 0;
  // Queues `data` as one chunk (empty data is ignored). false when the client is gone, after
  // End, or after Stop (the data is dropped).
  virtual bool Write(std::string data) = 0;
  // Ends the stream (the last chunk); the connection then serves its next request.
  virtual void End() = 0;
  // `fn` runs once, on an I/O thread, when the client disconnects before the response ended
  // (Respond or End called) (at once when it already has). Set it before StartStream to miss
  // nothing. After Stop, no I/O thread is left: fn runs at once on the calling thread if the
  // response had not ended. Capturing the exchange in fn keeps it alive until the response
  // ends or the client goes.
  virtual void OnDisconnect(std::function<void()> fn) = 0;
  // The client went away before the response ended (or was cut off: backpressure, Stop).
  virtual bool disconnected() const = 0;
};

using HttpHandler = std::function<void(std::shared_ptr<HttpExchange>)>;

struct HttpServerStats {
  int64_t connections_open = 0;  // accepted and not closed yet (503-answered ones included)
  int64_t connections_total = 0;
  int64_t requests_total = 0;  // handed to the handler
  int64_t rejected_total = 0;  // answered 400/408/413/431/503 by the server itself
};

class HttpServer {
 public:
  // Binds and listens (errors name the address: in use, bad host, no permission), then serves
  // on `options.io_threads` threads until Stop.
  static StatusOr<std::unique_ptr<HttpServer>> Start(const HttpOptions& options,
                                                     HttpHandler handler);
  virtual ~HttpServer() = default;  // Stop(0) unless stopped already
  virtual int port() const = 0;     // the port bound
  // Stops accepting, closes idle connections, waits up to `grace_s` for open responses to end
  // (streams are the owners' to end), then closes everything (open exchanges get their
  // OnDisconnect) and joins the I/O threads. Exchanges still held afterwards see disconnected()
  // and drop writes. Idempotent; a concurrent call waits for the first. REQUIRES: not called
  // on an I/O thread (from a handler or an OnDisconnect callback): it aborts, saying so.
  virtual void Stop(double grace_s = 5) = 0;
  virtual HttpServerStats stats() const = 0;
};

}  // namespace emoe::server

#endif  // SERVER_HTTP_H_
