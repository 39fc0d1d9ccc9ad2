// serve_bench's HTTP client (serve_client.h): one Exchange per call, a small state machine of
// Asio completions (connect -> write -> head -> body...) that owns itself through the
// shared_ptr each pending completion holds.
#include "bench/serve_client.h"

#include <boost/asio/connect.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <cerrno>
#include <chrono>
#include <limits>
#include <memory>
#include <nlohmann/json.hpp>

namespace emoe::bench {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

// The error message of an OpenAI error body, or the body's start.
std::string ErrorMessage(const std::string& body) {
  const nlohmann::json j = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (j.is_object()) {
    const auto e = j.find("error");
    if (e != j.end() && e->is_object()) {
      const auto m = e->find("message");
      if (m != e->end() && m->is_string()) return m->get<std::string>();
    }
  }
  return body.substr(0, 200);
}

}  // namespace

vmm::StatusOr<ServerUrl> ParseServerUrl(const std::string& url) {
  auto bad = [&](const std::string& why) {
    return vmm::Status::InvalidArgument("--url '" + url + "': " + why + " (want http://HOST:PORT)");
  };
  const std::string scheme = "http://";
  if (url.compare(0, scheme.size(), scheme) != 0) return bad("not http://");
  std::string rest = url.substr(scheme.size());
  if (!rest.empty() && rest.back() == '/') rest.pop_back();
  if (rest.find('/') != std::string::npos) return bad("a path is not allowed");
  ServerUrl u;
  size_t port_colon;
  if (!rest.empty() && rest[0] == '[') {
    const size_t close = rest.find(']');
    if (close == std::string::npos) return bad("unclosed '['");
    u.host = rest.substr(1, close - 1);
    port_colon = close + 1;
    if (port_colon >= rest.size() || rest[port_colon] != ':') return bad("no :PORT");
  } else {
    port_colon = rest.rfind(':');
    if (port_colon == std::string::npos) return bad("no :PORT");
    u.host = rest.substr(0, port_colon);
  }
  u.port = rest.substr(port_colon + 1);
  if (u.host.empty()) return bad("no host");
  if (u.port.empty() || u.port.size() > 5 ||
      u.port.find_first_not_of("0123456789") != std::string::npos || std::stoi(u.port) < 1 ||
      std::stoi(u.port) > 65535) {
    return bad("the port must be a number in 1..65535");
  }
  u.host_header = rest;
  return u;
}

class Exchange : public std::enable_shared_from_this<Exchange> {
 public:
  Exchange(Client* client, bool stream, http::request<http::string_body> req, double timeout_s)
      : client_(client),
        sock_(*client->io_),
        timer_(*client->io_),
        req_(std::move(req)),
        stream_(stream),
        timeout_s_(timeout_s) {
    // A stream's length is not bounded. (Not boost::none: Boost 1.74 compares a length with the
    // empty optional as greater, failing every body.)
    parser_.body_limit(std::numeric_limits<uint64_t>::max());
    // Streamed (chunked) bodies go to the SSE accounting as they arrive; with a non-200 status
    // they are kept as the error body.
    // (Beast keeps a reference to the callback: it is a member.)
    on_chunk_ = [this](uint64_t, beast::string_view data, beast::error_code&) {
      OnData(std::string_view(data.data(), data.size()));
      return data.size();
    };
    parser_.on_chunk_body(on_chunk_);
  }

  int64_t expected_tokens = 0;
  std::function<void()> on_head;
  std::function<void(StreamResult)> stream_done;
  std::function<void(CallResult)> call_done;

  void Start() {
    start_s_ = client_->clock_();
    timer_.expires_after(std::chrono::duration_cast<std::chrono::steady_clock::duration>(
        std::chrono::duration<double>(timeout_s_)));
    timer_.async_wait([self = shared_from_this()](const beast::error_code& ec) {
      if (ec || self->finished_) return;
      self->timed_out_ = true;
      beast::error_code ignored;
      self->sock_.close(ignored);  // the pending operation completes with an error
    });
    asio::async_connect(sock_, client_->endpoints_,
                        [self = shared_from_this()](const beast::error_code& ec,
                                                    const tcp::endpoint&) { self->OnConnect(ec); });
  }

 private:
  void OnConnect(const beast::error_code& ec) {
    if (ec) {
      if (ec.value() == EMFILE || ec.value() == ENFILE || ec.value() == EADDRNOTAVAIL) {
        ++client_->local_resource_errors_;
      }
      return Fail("connect: " + ec.message());
    }
    http::async_write(sock_, req_,
                      beast::bind_front_handler(&Exchange::OnWrite, shared_from_this()));
  }
  void OnWrite(const beast::error_code& ec, size_t) {
    if (ec) return Fail("send: " + ec.message());
    http::async_read_header(sock_, buf_, parser_,
                            beast::bind_front_handler(&Exchange::OnHead, shared_from_this()));
  }
  void OnHead(const beast::error_code& ec, size_t) {
    if (ec) return Fail("reading the response head: " + ec.message());
    status_ = parser_.get().result_int();
    if (stream_ && status_ == 200) {
      head_s_ = client_->clock_();
      if (on_head) on_head();
    }
    ReadMore();
  }
  void ReadMore() {
    if (parser_.is_done()) return Finish("");
    http::async_read_some(sock_, buf_, parser_,
                          beast::bind_front_handler(&Exchange::OnBody, shared_from_this()));
  }
  void OnBody(const beast::error_code& ec, size_t) {
    if (ec == http::error::partial_message || ec == http::error::end_of_stream ||
        ec == asio::error::eof) {
      return Fail("the connection closed before the response ended");
    }
    if (ec) return Fail("reading the response: " + ec.message());
    ReadMore();
  }
  void OnData(std::string_view data) {
    if (!stream_ || status_ != 200) {
      raw_body_.append(data);
      return;
    }
    const double now = client_->clock_();
    sse_.Feed(data, [&](const std::string& event) { stats_.OnEvent(event, now); });
  }
  void Fail(std::string why) {
    if (timed_out_) {
      why = "timed out after " + std::to_string(timeout_s_) + " s (" + why + ")";
    }
    Finish(std::move(why));
  }
  void Finish(std::string fault);

  Client* client_;
  tcp::socket sock_;
  asio::steady_timer timer_;
  beast::flat_buffer buf_;
  http::request<http::string_body> req_;
  std::function<size_t(uint64_t, beast::string_view, beast::error_code&)> on_chunk_;
  http::response_parser<http::string_body> parser_;
  bool stream_;
  double timeout_s_;
  bool finished_ = false, timed_out_ = false;
  int status_ = 0;
  double start_s_ = 0, head_s_ = -1;
  std::string raw_body_;  // a chunked body that is not a 200 stream
  SseParser sse_;
  StreamStats stats_;
};

void Exchange::Finish(std::string fault) {
  if (finished_) return;
  finished_ = true;
  timer_.cancel();
  beast::error_code ignored;
  sock_.shutdown(tcp::socket::shutdown_both, ignored);
  sock_.close(ignored);
  const double end_s = client_->clock_();
  std::string body = raw_body_ + (status_ != 0 ? parser_.get().body() : std::string());
  if (!stream_) {
    CallResult r;
    r.status = fault.empty() ? status_ : 0;
    r.body = std::move(body);
    r.error = std::move(fault);
    r.start_s = start_s_;
    r.end_s = end_s;
    if (call_done) call_done(std::move(r));
    return;
  }
  StreamResult r;
  r.status = status_;
  r.start_s = start_s_;
  r.head_s = head_s_;
  r.end_s = end_s;
  if (status_ != 0) {
    for (const auto& f : parser_.get()) {
      std::string name(f.name_string());
      for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      r.headers.emplace_back(std::move(name), std::string(f.value()));
    }
  }
  if (status_ == 200 && !body.empty()) {  // SSE sent whole (Content-Length) is SSE too
    sse_.Feed(body, [&](const std::string& event) { stats_.OnEvent(event, end_s); });
    body.clear();
  }
  if (!fault.empty()) {
    r.failure =
        status_ == 200 ? fault + " after " + std::to_string(stats_.events) + " events" : fault;
  } else if (status_ != 200) {
    r.failure = "HTTP " + std::to_string(status_) + ": " + ErrorMessage(body);
  } else {
    r.failure = stats_.Failure(expected_tokens);
  }
  r.body = std::move(body);
  r.stats = std::move(stats_);
  if (stream_done) stream_done(std::move(r));
}

Client::Client(asio::io_context* io, tcp::resolver::results_type endpoints, ServerUrl url,
               std::function<double()> clock)
    : io_(io), endpoints_(std::move(endpoints)), url_(std::move(url)), clock_(std::move(clock)) {}

namespace {

http::request<http::string_body> MakeRequest(http::verb verb, const std::string& target,
                                             const std::string& host, std::string body,
                                             bool stream) {
  http::request<http::string_body> req{verb, target, 11};
  req.set(http::field::host, host);
  req.set(http::field::user_agent, "serve_bench");
  req.set(http::field::accept, stream ? "text/event-stream" : "application/json");
  if (verb == http::verb::post) {
    req.set(http::field::content_type, "application/json");
    req.body() = std::move(body);
  }
  req.prepare_payload();
  return req;
}

}  // namespace

void Client::Call(const std::string& method, const std::string& target, std::string body,
                  double timeout_s, std::function<void(CallResult)> done) {
  const http::verb verb = method == "POST" ? http::verb::post : http::verb::get;
  auto x = std::make_shared<Exchange>(
      this, false, MakeRequest(verb, target, url_.host_header, std::move(body), false), timeout_s);
  x->call_done = std::move(done);
  x->Start();
}

void Client::Stream(const std::string& target, std::string body, int64_t expected_tokens,
                    double timeout_s, std::function<void()> on_head,
                    std::function<void(StreamResult)> done) {
  auto x = std::make_shared<Exchange>(
      this, true, MakeRequest(http::verb::post, target, url_.host_header, std::move(body), true),
      timeout_s);
  x->expected_tokens = expected_tokens;
  x->on_head = std::move(on_head);
  x->stream_done = std::move(done);
  x->Start();
}

CallResult CallNow(asio::io_context* io, Client* client, const std::string& method,
                   const std::string& target, std::string body, double timeout_s) {
  CallResult out;
  client->Call(method, target, std::move(body), timeout_s,
               [&out](CallResult r) { out = std::move(r); });
  io->restart();
  io->run();
  return out;
}

vmm::StatusOr<tcp::resolver::results_type> Resolve(asio::io_context* io, const ServerUrl& url) {
  tcp::resolver resolver(*io);
  beast::error_code ec;
  auto results = resolver.resolve(url.host, url.port, ec);
  if (ec) {
    return vmm::Status::Unavailable("--url: cannot resolve " + url.host + ": " + ec.message());
  }
  return results;
}

}  // namespace emoe::bench
