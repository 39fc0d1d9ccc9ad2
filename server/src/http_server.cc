// server/src/http_server.cc: HttpServer (server/http.h): options, listening, the accept loop,
// the I/O threads and Stop. Connections are http_connection.{h,cc}, responses
// http_exchange.cc, request parsing http_parse.{h,cc}.
//
// Stop, in order: no new connections (the acceptor closes; one accepted meanwhile is refused
// by HttpCore::Add), idle and half-read connections close, open responses get up to the grace
// to end, then posts from exchanges are refused (HttpCore::MarkStopped), every connection is
// closed (an open exchange sees a disconnect), and the I/O threads, with nothing left to do,
// return and are joined.
#include <boost/asio/executor_work_guard.hpp>
#include <cstdio>
#include <cstdlib>
#include <thread>

#include "http_connection.h"

namespace emoe::server {

using boost::system::error_code;
using http_internal::Clock;
using http_internal::Connection;
using http_internal::HttpCore;
using http_internal::Strand;
using http_internal::tcp;
namespace asio = boost::asio;

Status HttpOptions::Validate() const {
  auto bad = [](const std::string& what) { return Status::InvalidArgument("HttpOptions." + what); };
  if (host.empty()) return bad("host is empty (an IPv4/IPv6 address or 'localhost')");
  if (port < 0 || port > 65535) return bad("port " + std::to_string(port) + " is not in 0..65535");
  if (io_threads < 1 || io_threads > 256) {
    return bad("io_threads " + std::to_string(io_threads) + " is not in 1..256");
  }
  if (backlog < 1) return bad("backlog " + std::to_string(backlog) + " must be at least 1");
  if (max_header_bytes < 256 || max_header_bytes > (1u << 30)) {
    return bad("max_header_bytes " + std::to_string(max_header_bytes) +
               " is not in 256..2^30 (a request line and a few headers need 256)");
  }
  if (max_body_bytes > (size_t{1} << 40)) {
    return bad("max_body_bytes " + std::to_string(max_body_bytes) + " is above 2^40");
  }
  // `!(x > 0)` also refuses NaN.
  if (!(header_timeout_s > 0)) return bad("header_timeout_s must be > 0 seconds");
  if (!(body_timeout_s > 0)) return bad("body_timeout_s must be > 0 seconds");
  if (!(idle_timeout_s > 0)) return bad("idle_timeout_s must be > 0 seconds");
  for (double t : {header_timeout_s, body_timeout_s, idle_timeout_s}) {
    if (t > 1e6) return bad("timeouts are limited to 1e6 s; got " + std::to_string(t));
  }
  if (max_connections < 1) {
    return bad("max_connections " + std::to_string(max_connections) + " must be at least 1");
  }
  if (max_pending_write_bytes < 1) return bad("max_pending_write_bytes must be at least 1");
  return Status::Ok();
}

namespace {

// The I/O thread's server, to refuse a Stop from a handler (it would join its own thread).
thread_local const void* t_io_server = nullptr;

// Connections being answered 503 at once; more are closed without an answer.
constexpr int64_t kMaxRejecting = 256;

Status FromAsio(const error_code& ec, const std::string& context, const char* call) {
  if (ec.category() == boost::system::system_category()) {
    return Status::FromErrno(ec.value(), context, call);
  }
  return Status::Internal(context + ": " + call + ": " + ec.message());
}

class HttpServerImpl : public HttpServer {
 public:
  HttpServerImpl(const HttpOptions& options, HttpHandler handler)
      : core_(std::make_shared<HttpCore>(options, std::move(handler))),
        accept_strand_(asio::make_strand(core_->io)),
        acceptor_(accept_strand_),
        accept_retry_(accept_strand_),
        work_(asio::make_work_guard(core_->io)) {}
  ~HttpServerImpl() override { Stop(0); }

  Status Listen();
  void StartThreads();
  int port() const override { return port_; }
  void Stop(double grace_s) override;
  HttpServerStats stats() const override;

 private:
  void Accept();
  void OnAccept(const error_code& ec, tcp::socket socket, Strand strand);

  const std::shared_ptr<HttpCore> core_;  // first: destroyed last
  Strand accept_strand_;
  tcp::acceptor acceptor_;           // accept strand only (after Listen)
  asio::steady_timer accept_retry_;  // accept strand only
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work_;
  std::vector<std::thread> threads_;
  int port_ = 0;
  uint64_t next_id_ = 0;  // accept strand only
  vmm::Mutex stop_mu_;    // held through Stop: a second caller waits for the first
  bool stopped_ GUARDED_BY(stop_mu_) = false;
  vmm::Mutex threads_mu_;
  vmm::CondVar threads_cv_;
  int threads_running_ GUARDED_BY(threads_mu_) = 0;
};

Status HttpServerImpl::Listen() {
  const HttpOptions& o = core_->options;
  const std::string where = "listen on " + o.host + ":" + std::to_string(o.port);
  error_code ec;
  asio::ip::address address = o.host == "localhost" ? asio::ip::make_address("127.0.0.1")
                                                    : asio::ip::make_address(o.host, ec);
  if (ec) {
    return Status::InvalidArgument(where + ": host '" + o.host +
                                   "' is not an IPv4/IPv6 address or 'localhost'");
  }
  const tcp::endpoint endpoint(address, static_cast<uint16_t>(o.port));
  if (acceptor_.open(endpoint.protocol(), ec); ec) return FromAsio(ec, where, "socket");
  if (acceptor_.set_option(tcp::acceptor::reuse_address(true), ec); ec) {
    return FromAsio(ec, where, "setsockopt(SO_REUSEADDR)");
  }
  if (acceptor_.bind(endpoint, ec); ec) {
    Status s = FromAsio(ec, where, "bind");
    if (ec == asio::error::address_in_use) s.Annotate("another process holds the port");
    return s;
  }
  if (acceptor_.listen(o.backlog, ec); ec) return FromAsio(ec, where, "listen");
  port_ = acceptor_.local_endpoint(ec).port();
  if (ec) return FromAsio(ec, where, "getsockname");
  return Status::Ok();
}

void HttpServerImpl::StartThreads() {
  {
    vmm::MutexLock l(&threads_mu_);
    threads_running_ = core_->options.io_threads;
  }
  for (int i = 0; i < core_->options.io_threads; ++i) {
    threads_.emplace_back([this] {
      t_io_server = this;
      core_->io.run();
      vmm::MutexLock l(&threads_mu_);
      if (--threads_running_ == 0) threads_cv_.SignalAll();
    });
  }
  asio::post(accept_strand_, [this] { Accept(); });
}

void HttpServerImpl::Accept() {
  Strand strand = asio::make_strand(core_->io);
  acceptor_.async_accept(strand, [this, strand](const error_code& ec, tcp::socket socket) {
    OnAccept(ec, std::move(socket), strand);
  });
}

void HttpServerImpl::OnAccept(const error_code& ec, tcp::socket socket, Strand strand) {
  if (ec == asio::error::operation_aborted || !acceptor_.is_open()) return;
  if (ec) {
    // Out of fds or memory, or a connection reset in the queue: try again shortly rather
    // than spin (the queued connections wait in the backlog).
    accept_retry_.expires_after(std::chrono::milliseconds(50));
    accept_retry_.async_wait([this](const error_code& e) {
      if (!e && acceptor_.is_open()) Accept();
    });
    return;
  }
  error_code ignored;
  socket.set_option(tcp::no_delay(true), ignored);  // SSE: each chunk leaves at once
  core_->connections_total++;
  const bool reject = core_->connections_open.load() >= core_->options.max_connections;
  if (reject && core_->connections_rejecting.load() >= kMaxRejecting) {
    core_->rejected_total++;
    socket.close(ignored);
  } else {
    (reject ? core_->connections_rejecting : core_->connections_open)++;
    const uint64_t id = ++next_id_;
    auto c = std::make_shared<Connection>(core_, strand, std::move(socket), id, reject);
    if (core_->Add(id, c)) {
      asio::post(strand, [c] { c->Start(); });
    } else {
      asio::post(strand, [c] { c->ForceClose(); });  // Stop began: counted, then closed
    }
  }
  Accept();
}

void HttpServerImpl::Stop(double grace_s) {
  if (t_io_server == this) {
    std::fprintf(stderr,
                 "HttpServer::Stop called from one of its I/O threads (a handler); "
                 "it would join itself. Call it from another thread.\n");
    std::abort();
  }
  vmm::MutexLock stop_lock(&stop_mu_);
  if (stopped_) return;
  stopped_ = true;
  core_->BeginStopping();
  asio::post(accept_strand_, [this] {
    error_code ignored;
    acceptor_.close(ignored);
    accept_retry_.cancel();
  });
  for (const auto& c : core_->Connections()) asio::post(c->strand(), [c] { c->CloseIdle(); });
  if (!(grace_s > 0)) grace_s = 0;
  core_->WaitNoExchanges(Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                            std::chrono::duration<double>(grace_s)));
  core_->MarkStopped();
  for (const auto& c : core_->Connections()) asio::post(c->strand(), [c] { c->ForceClose(); });
  work_.reset();
  // Everything is closed, so the threads run out of work at once. Should a handler hold one
  // (it must not block), stop the loop rather than wait without end.
  {
    vmm::MutexLock l(&threads_mu_);
    const auto deadline = Clock::now() + std::chrono::seconds(10);
    while (threads_running_ > 0 && Clock::now() < deadline) {
      threads_cv_.WaitFor(&threads_mu_, deadline - Clock::now());
    }
    if (threads_running_ > 0) core_->io.stop();
  }
  for (std::thread& t : threads_) t.join();
  threads_.clear();
  core_->io.restart();
  core_->io.poll();  // what a stopped loop left: completions of closed sockets
}

HttpServerStats HttpServerImpl::stats() const {
  HttpServerStats s;
  s.connections_open = core_->connections_open.load() + core_->connections_rejecting.load();
  s.connections_total = core_->connections_total.load();
  s.requests_total = core_->requests_total.load();
  s.rejected_total = core_->rejected_total.load();
  return s;
}

}  // namespace

StatusOr<std::unique_ptr<HttpServer>> HttpServer::Start(const HttpOptions& options,
                                                        HttpHandler handler) {
  VMM_RETURN_IF_ERROR(options.Validate());
  if (!handler) return Status::InvalidArgument("HttpServer::Start: the handler is empty");
  auto server = std::make_unique<HttpServerImpl>(options, std::move(handler));
  VMM_RETURN_IF_ERROR(server->Listen());
  server->StartThreads();
  return std::unique_ptr<HttpServer>(std::move(server));
}

}  // namespace emoe::server
