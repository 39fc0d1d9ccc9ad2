// bench/serve_client.h: serve_bench's HTTP/1.1 client (Boost.Beast over Asio): whole calls
// (GET /v1/models, GET /metrics, POST /scale_elastic_ep) and streamed completions, each one
// TCP connection, all of them asynchronous on the caller's io_context, so that one thread holds
// thousands of open streams (no thread per request). A streamed body is handed to the SSE
// accounting (serve_sse.h) chunk by chunk as it arrives, stamped with the client's clock.
//
// Every call has a deadline: past it the connection is closed and the call fails saying so.
// Completion callbacks run on the io_context's thread, exactly once per call.
//
// Thread safety: a Client and its calls belong to the thread that runs the io_context.
#ifndef BENCH_SERVE_CLIENT_H_
#define BENCH_SERVE_CLIENT_H_

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "bench/serve_sse.h"
#include "vmm/status.h"

namespace emoe::bench {

// "http://HOST:PORT" (an optional trailing '/'; HOST a name, an IPv4 address or [IPv6]).
struct ServerUrl {
  std::string host;  // without brackets
  std::string port;
  std::string host_header;  // "HOST:PORT" as sent in Host:
};
// kInvalidArgument naming the URL when it is not of that form (https, a path, no port).
vmm::StatusOr<ServerUrl> ParseServerUrl(const std::string& url);

// A whole response.
struct CallResult {
  int status = 0;     // the HTTP status; 0 when no response came
  std::string body;   // the body (whole)
  std::string error;  // "" when a response came; else the transport fault
  double start_s = 0, end_s = 0;
};

// A streamed completion.
struct StreamResult {
  int status = 0;       // the HTTP status; 0 when no response came
  std::string failure;  // "" when the request succeeded; else why it failed
  std::string body;     // a non-200 answer's body (its error JSON)
  std::vector<std::pair<std::string, std::string>> headers;  // the response's (names lower-case)
  StreamStats stats;
  double start_s = 0;  // the call began (connect)
  double head_s = -1;  // the response head arrived
  double end_s = 0;
};

class Client {
 public:
  // Calls go to `endpoints` (resolved once by the caller) with Host: url.host_header; times are
  // `clock()` seconds.
  Client(boost::asio::io_context* io, boost::asio::ip::tcp::resolver::results_type endpoints,
         ServerUrl url, std::function<double()> clock);

  // `method` "GET" or "POST" (with a JSON body). done(result) runs once.
  void Call(const std::string& method, const std::string& target, std::string body,
            double timeout_s, std::function<void(CallResult)> done);

  // POSTs `body` to `target` and reads the SSE stream; the verdict (StreamResult::failure) is
  // StreamStats::Failure(expected_tokens) when the stream ended whole, else the HTTP status with
  // the error message of its body, the transport fault, or the deadline. on_head() runs when a
  // 200 head arrives (the stream is open); done(result) runs once.
  void Stream(const std::string& target, std::string body, int64_t expected_tokens,
              double timeout_s, std::function<void()> on_head,
              std::function<void(StreamResult)> done);

  // The connection attempts that failed for want of a local resource (EMFILE, EADDRNOTAVAIL):
  // the client's limit, not the server's.
  int64_t local_resource_errors() const { return local_resource_errors_; }

 private:
  friend class Exchange;
  boost::asio::io_context* io_;
  boost::asio::ip::tcp::resolver::results_type endpoints_;
  ServerUrl url_;
  std::function<double()> clock_;
  int64_t local_resource_errors_ = 0;
};

// Synchronous helpers for before and after the load: run `io` until the call is done.
CallResult CallNow(boost::asio::io_context* io, Client* client, const std::string& method,
                   const std::string& target, std::string body, double timeout_s);

// Resolves url (numeric or by name) into the endpoints a Client takes; kUnavailable naming it.
vmm::StatusOr<boost::asio::ip::tcp::resolver::results_type> Resolve(boost::asio::io_context* io,
                                                                    const ServerUrl& url);

}  // namespace emoe::bench

#endif  // BENCH_SERVE_CLIENT_H_
