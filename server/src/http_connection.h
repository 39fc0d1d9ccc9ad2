// server/src/http_connection.h: one TCP connection of the HTTP server and the exchanges it
// hands out, over the state they share with the server (HttpCore).
//
// A connection reads requests (RequestParser), hands each to the handler as an HttpExchange,
// writes its response, and serves the next request (keep-alive, pipelining) or closes. All its
// state lives on its strand; exchanges reach it by posting there. Phases:
//
//   kHead --head done--> kBody --request done--> kExchange --response written--> kIdle | kLinger
//     ^ (fresh: deadline from the start)                                    (keep-alive | close)
//   kIdle --first byte--> kHead (deadline from the first byte)
//   kHead/kBody --error, 408, 413, 431--> kFinalWrite --written--> kLinger --EOF/1 s--> kClosed
//   kExchange --client gone (EOF, error, backpressure, write stalled)--> kClosed + OnDisconnect
//
// One timer holds the deadline of the current phase (whole-head deadline, body deadline, idle,
// write stall, linger); it is a deadline, not a per-read idle timer, so a slow client cannot
// extend it. A read stays posted in every phase that has a socket to watch (input is kept, up
// to a cap, for the next request while a response is open), so a client that goes away is seen
// at once.
//
// Lifetime: connections and exchanges hold shared_ptrs (exchange -> connection -> core), and the
// io_context lives in the core, so an exchange may outlive the server: after Stop its posts are
// refused (HttpCore::Post) and nothing touches a stopped io_context.
//
// Thread safety: HttpCore is for any thread (a mutex and atomics). Connection: its Do*/On*
// methods run on its strand only; pending_write_bytes_ is atomic. ExchangeImpl: any thread.
#ifndef SERVER_SRC_HTTP_CONNECTION_H_
#define SERVER_SRC_HTTP_CONNECTION_H_

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "http_parse.h"
#include "server/http.h"
#include "vmm/mutex.h"

namespace emoe::server::http_internal {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;
using Strand = asio::strand<asio::io_context::executor_type>;

class Connection;

// What the server, its connections and the exchanges that outlive it share.
class HttpCore {
 public:
  HttpCore(const HttpOptions& options, HttpHandler handler)
      : options(options), handler(std::move(handler)) {}

  asio::io_context io;
  const HttpOptions options;
  const HttpHandler handler;

  // Posts `fn` onto `strand` unless the server has stopped (then drops it: false). Exchanges
  // post only through here, so nothing is posted to an io_context no thread runs.
  template <typename Fn>
  bool Post(const Strand& strand, Fn&& fn) {
    vmm::MutexLock l(&mu_);
    if (stopped_.load(std::memory_order_relaxed)) return false;
    asio::post(strand, std::forward<Fn>(fn));
    return true;
  }
  // After this, Post refuses and stopped() is true. Stop's last phase.
  void MarkStopped() {
    vmm::MutexLock l(&mu_);
    stopped_.store(true);
  }
  bool stopped() const { return stopped_.load(); }
  // Stop has begun: no new connections, none kept alive.
  std::atomic<bool> stopping{false};
  void BeginStopping() {
    vmm::MutexLock l(&mu_);
    stopping.store(true);
  }

  // The open connections, for Stop. Add refuses (false) once Stop has begun, so that every
  // connection is either refused or seen by Stop.
  [[nodiscard]] bool Add(uint64_t id, const std::shared_ptr<Connection>& c);
  void Remove(uint64_t id);
  std::vector<std::shared_ptr<Connection>> Connections();

  // Requests handed to the handler whose responses have not ended (Stop waits for them).
  void ExchangeOpened();
  void ExchangeClosed();
  // Waits until no exchange is open or `deadline`; true when none is.
  bool WaitNoExchanges(Clock::time_point deadline);

  std::atomic<int64_t> connections_open{0};       // served ones (max_connections counts these)
  std::atomic<int64_t> connections_rejecting{0};  // being answered 503
  std::atomic<int64_t> connections_total{0};
  std::atomic<int64_t> requests_total{0};
  std::atomic<int64_t> rejected_total{0};

 private:
  vmm::Mutex mu_;
  std::atomic<bool> stopped_{false};  // written under mu_ (Post reads it there)
  std::map<uint64_t, std::weak_ptr<Connection>> connections_ GUARDED_BY(mu_);
  vmm::Mutex exchanges_mu_;
  vmm::CondVar exchanges_cv_;
  int64_t exchanges_open_ GUARDED_BY(exchanges_mu_) = 0;
};

class ExchangeImpl;

class Connection : public std::enable_shared_from_this<Connection> {
 public:
  // `socket` runs on `strand`. `reject`: answer 503 (max_connections) and close.
  Connection(std::shared_ptr<HttpCore> core, Strand strand, tcp::socket socket, uint64_t id,
             bool reject);
  ~Connection();

  // On the strand: starts serving (or rejecting).
  void Start();
  // On the strand, from Stop: closes unless a response is open (then closes after it).
  void CloseIdle();
  // On the strand, from Stop after its grace: closes; an open exchange sees a disconnect.
  void ForceClose();

  // The exchange's operations, on the strand; `seq` names the exchange (stale ones are
  // dropped). `accounted` bytes were added to pending_write_bytes_ by the caller.
  void DoRespond(uint64_t seq, HttpResponse response);
  void DoStartStream(uint64_t seq, int status, std::string content_type,
                     std::vector<std::pair<std::string, std::string>> headers);
  void DoWrite(uint64_t seq, std::string data, size_t accounted);
  void DoEnd(uint64_t seq);
  void DoOnDisconnect(uint64_t seq, std::function<void()> fn);
  void DoDropped(uint64_t seq);   // the exchange was destroyed
  void DoOverflow(uint64_t seq);  // a Write found too many bytes pending

  const Strand& strand() const { return strand_; }
  HttpCore& core() { return *core_; }
  // Bytes Write() queued that are not written yet (any thread).
  std::atomic<size_t> pending_write_bytes{0};

 private:
  enum class Phase { kIdle, kHead, kBody, kExchange, kFinalWrite, kLinger, kClosed };
  enum class Response { kNone, kStreaming, kEnded };
  struct OutItem {
    std::string bytes;
    size_t accounted = 0;  // of pending_write_bytes
  };

  void Arm(Clock::time_point deadline);
  void Disarm();
  void OnTimer(uint64_t generation);
  void EnsureReading();
  void OnRead(const boost::system::error_code& ec, size_t n);
  void ProcessInput();
  void Dispatch();
  void SendError(HttpError error);  // by value: it may come from parser_, which this resets
  void Queue(std::string bytes, size_t accounted = 0);
  void StartWriting();
  void OnWrite(const boost::system::error_code& ec);
  void FinishExchange();
  void StartLinger();
  void ClientGone();
  void CloseNow();
  void CloseExchangeAccounting();

  const std::shared_ptr<HttpCore> core_;  // first: destroyed last (the io_context is in it)
  Strand strand_;
  tcp::socket socket_;
  asio::steady_timer timer_;
  const uint64_t id_;
  const bool reject_;
  std::string peer_;
  const HttpLimits limits_;

  // Strand only, all of them.
  Phase phase_ = Phase::kHead;
  Clock::time_point deadline_ = Clock::time_point::max();  // of the phase; max: none
  bool timer_waiting_ = false;
  Clock::time_point timer_expiry_;  // when the wait posted last fires
  uint64_t timer_generation_ = 0;   // of the wait posted last
  // Input not parsed yet, and the buffer the posted read fills (apart: input is consumed while
  // a read is outstanding, so the read cannot target in_ itself).
  std::string in_;
  std::unique_ptr<char[]> read_buffer_;
  bool reading_ = false;
  size_t lingered_bytes_ = 0;
  std::optional<RequestParser> parser_;
  // The current exchange (kExchange).
  uint64_t seq_ = 0;
  uint64_t gone_seq_ = 0;  // the exchange open when the client went away (0: none)
  bool exchange_open_ = false;
  std::weak_ptr<ExchangeImpl> exchange_;
  std::function<void()> on_disconnect_;
  Response response_ = Response::kNone;
  int version_ = 11;
  bool keep_alive_ = true;
  bool head_request_ = false;
  bool chunked_ = false;
  bool body_allowed_ = true;
  // Writes: queued, and the batch in flight (its buffers point into writing_).
  std::deque<OutItem> queue_;
  std::vector<std::string> writing_;
  size_t writing_accounted_ = 0;
  bool write_in_flight_ = false;
};

// The HttpExchange handed to the handler: each call posts onto the connection's strand.
class ExchangeImpl : public HttpExchange {
 public:
  ExchangeImpl(std::shared_ptr<Connection> conn, uint64_t seq, HttpRequest request)
      : conn_(std::move(conn)), seq_(seq), request_(std::move(request)) {}
  ~ExchangeImpl() override;

  const HttpRequest& request() const override { return request_; }
  void Respond(HttpResponse response) override;
  void StartStream(int status, const std::string& content_type,
                   std::vector<std::pair<std::string, std::string>> headers) override;
  bool Write(std::string data) override;
  void End() override;
  void OnDisconnect(std::function<void()> fn) override;
  bool disconnected() const override;

  // Set on the strand when the client went away before the response ended.
  std::atomic<bool> gone{false};

 private:
  const std::shared_ptr<Connection> conn_;
  const uint64_t seq_;
  const HttpRequest request_;
  std::atomic<bool> ended_{false};  // Respond or End called
};

}  // namespace emoe::server::http_internal

#endif  // SERVER_SRC_HTTP_CONNECTION_H_
