// server/src/http_connection.cc: the connection's read side and phases (http_connection.h):
// deadlines, reading and parsing requests, handing them out, the server's own error answers,
// keep-alive, lingering close, and the shared core. The response side is http_exchange.cc.
#include "http_connection.h"

#include <algorithm>

namespace emoe::server::http_internal {

using boost::system::error_code;

namespace {

constexpr size_t kReadBytes = 16 << 10;                // one read
constexpr size_t kLingerMaxBytes = 1 << 20;            // discarded while lingering, then closed
constexpr auto kLinger = std::chrono::seconds(1);      // a closing socket waits for the peer's EOF
constexpr auto kFinalWrite = std::chrono::seconds(5);  // an error answer may take to leave

Clock::duration Seconds(double s) {
  return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(s));
}

std::string PeerOf(const tcp::socket& socket) {
  error_code ec;
  const tcp::endpoint ep = socket.remote_endpoint(ec);
  if (ec) return "?";
  const std::string addr = ep.address().to_string();
  const std::string port = std::to_string(ep.port());
  return ep.address().is_v6() ? "[" + addr + "]:" + port : addr + ":" + port;
}

}  // namespace

// --- HttpCore ---

bool HttpCore::Add(uint64_t id, const std::shared_ptr<Connection>& c) {
  vmm::MutexLock l(&mu_);
  if (stopping.load()) return false;
  connections_[id] = c;
  return true;
}

void HttpCore::Remove(uint64_t id) {
  vmm::MutexLock l(&mu_);
  connections_.erase(id);
}

std::vector<std::shared_ptr<Connection>> HttpCore::Connections() {
  vmm::MutexLock l(&mu_);
  std::vector<std::shared_ptr<Connection>> out;
  out.reserve(connections_.size());
  for (const auto& entry : connections_) {
    if (auto c = entry.second.lock()) out.push_back(std::move(c));
  }
  return out;
}

void HttpCore::ExchangeOpened() {
  vmm::MutexLock l(&exchanges_mu_);
  ++exchanges_open_;
}

void HttpCore::ExchangeClosed() {
  vmm::MutexLock l(&exchanges_mu_);
  if (--exchanges_open_ == 0) exchanges_cv_.SignalAll();
}

bool HttpCore::WaitNoExchanges(Clock::time_point deadline) {
  vmm::MutexLock l(&exchanges_mu_);
  while (exchanges_open_ > 0) {
    const auto now = Clock::now();
    if (now >= deadline) return false;
    exchanges_cv_.WaitFor(&exchanges_mu_, deadline - now);
  }
  return true;
}

// --- Connection: phases and deadlines ---

Connection::Connection(std::shared_ptr<HttpCore> core, Strand strand, tcp::socket socket,
                       uint64_t id, bool reject)
    : core_(std::move(core)),
      strand_(std::move(strand)),
      socket_(std::move(socket)),
      timer_(strand_),
      id_(id),
      reject_(reject),
      peer_(PeerOf(socket_)),
      limits_{core_->options.max_header_bytes, core_->options.max_body_bytes},
      read_buffer_(new char[kReadBytes]) {}

Connection::~Connection() {
  for (const OutItem& item : queue_) pending_write_bytes -= item.accounted;
}

void Connection::Start() {
  if (phase_ == Phase::kClosed) return;  // Stop closed it before it started
  if (reject_) {
    SendError({503,
               "too many connections: " + std::to_string(core_->options.max_connections) +
                   " are open (max_connections); try again later",
               "server_error"});
    return;
  }
  parser_.emplace(limits_);
  phase_ = Phase::kHead;  // a fresh connection's head deadline runs from its start
  Arm(Clock::now() + Seconds(core_->options.header_timeout_s));
  EnsureReading();
}

// The timer waits for the earliest deadline set since it last fired; a later deadline waits
// for that wake-up (OnTimer re-arms), so moving a deadline out costs no timer operation.
void Connection::Arm(Clock::time_point deadline) {
  deadline_ = deadline;
  if (timer_waiting_ && timer_expiry_ <= deadline) return;
  timer_waiting_ = true;
  timer_expiry_ = deadline;
  const uint64_t generation = ++timer_generation_;
  timer_.expires_at(deadline);  // cancels an earlier wait: its handler sees a stale generation
  timer_.async_wait(
      [self = shared_from_this(), generation](const error_code&) { self->OnTimer(generation); });
}

void Connection::Disarm() { deadline_ = Clock::time_point::max(); }

void Connection::OnTimer(uint64_t generation) {
  if (generation != timer_generation_) return;
  timer_waiting_ = false;
  if (phase_ == Phase::kClosed || deadline_ == Clock::time_point::max()) return;
  if (Clock::now() < deadline_) {
    Arm(deadline_);
    return;
  }
  deadline_ = Clock::time_point::max();
  switch (phase_) {
    case Phase::kHead:
      SendError({408, "request head not received within header_timeout_s=" +
                          std::to_string(core_->options.header_timeout_s) + " s"});
      return;
    case Phase::kBody:
      SendError({408, "request body not received within body_timeout_s=" +
                          std::to_string(core_->options.body_timeout_s) + " s"});
      return;
    case Phase::kExchange:  // a write made no progress for idle_timeout_s: the client stalls
      ClientGone();
      return;
    default:  // idle keep-alive, an error answer stuck, lingering done
      CloseNow();
      return;
  }
}

// --- reading ---

void Connection::EnsureReading() {
  if (reading_ || phase_ == Phase::kClosed) return;
  const bool discarding = phase_ == Phase::kFinalWrite || phase_ == Phase::kLinger;
  // While a response is open, input (the next pipelined requests) is kept up to a cap; above
  // it the client waits on TCP, and a disconnect is seen at the next write instead.
  const size_t cap = std::max<size_t>(64 << 10, limits_.max_header_bytes + kReadBytes);
  if (!discarding && in_.size() >= cap) return;
  reading_ = true;
  socket_.async_read_some(
      asio::buffer(read_buffer_.get(), kReadBytes),
      [self = shared_from_this()](const error_code& ec, size_t n) { self->OnRead(ec, n); });
}

void Connection::OnRead(const error_code& ec, size_t n) {
  reading_ = false;
  if (phase_ == Phase::kClosed) return;
  if (ec) {  // EOF or reset: the client is gone (a partial request needs no answer)
    ClientGone();
    return;
  }
  in_.append(read_buffer_.get(), n);
  switch (phase_) {
    case Phase::kIdle:
      phase_ = Phase::kHead;  // the head's deadline runs from its first byte
      Arm(Clock::now() + Seconds(core_->options.header_timeout_s));
      ProcessInput();
      break;
    case Phase::kHead:
    case Phase::kBody:
      ProcessInput();
      break;
    case Phase::kFinalWrite:
    case Phase::kLinger:
      lingered_bytes_ += in_.size();
      in_.clear();
      if (lingered_bytes_ > kLingerMaxBytes) {
        CloseNow();
        return;
      }
      break;
    default:  // kExchange: kept for the next request
      break;
  }
  EnsureReading();
}

void Connection::ProcessInput() {
  while ((phase_ == Phase::kHead || phase_ == Phase::kBody) && in_.size() > 0) {
    const size_t n = parser_->Feed(in_);
    in_.erase(0, n);
    switch (parser_->state()) {
      case RequestParser::State::kHead:
        return;  // needs more
      case RequestParser::State::kBody:
        if (phase_ == Phase::kBody) return;  // needs more
        phase_ = Phase::kBody;
        Arm(Clock::now() + Seconds(core_->options.body_timeout_s));
        // The client waits for this before sending the body, unless it already has.
        if (parser_->expect_continue() && in_.size() == 0) {
          Queue(std::string(kContinue));
          StartWriting();
        }
        break;
      case RequestParser::State::kDone:
        Dispatch();
        return;
      case RequestParser::State::kError:
        SendError(parser_->error());
        return;
    }
  }
}

// A whole request: to the handler, with a fresh exchange.
void Connection::Dispatch() {
  HttpRequest request = parser_->TakeRequest();
  request.peer = peer_;
  version_ = parser_->version();
  keep_alive_ = parser_->keep_alive() && !core_->stopping.load();
  head_request_ = request.method == "HEAD";
  parser_.reset();
  phase_ = Phase::kExchange;
  Disarm();
  ++seq_;
  response_ = Response::kNone;
  exchange_open_ = true;
  core_->ExchangeOpened();
  core_->requests_total++;
  auto exchange = std::make_shared<ExchangeImpl>(shared_from_this(), seq_, std::move(request));
  exchange_ = exchange;
  EnsureReading();
  core_->handler(std::move(exchange));  // last: it may post to us (never runs us inline)
}

void Connection::SendError(HttpError error) {
  core_->rejected_total++;
  parser_.reset();
  in_.clear();
  phase_ = Phase::kFinalWrite;
  Arm(Clock::now() + kFinalWrite);
  std::string body = ErrorJson(error);
  ResponseHead head;
  head.status = error.status;
  head.content_type = "application/json";
  head.body_bytes = static_cast<int64_t>(body.size());
  head.keep_alive = false;
  Queue(FormatResponseHead(head));
  Queue(std::move(body));
  StartWriting();
  EnsureReading();
}

// The response has been written whole: the next request, or a close.
void Connection::FinishExchange() {
  CloseExchangeAccounting();
  exchange_.reset();
  on_disconnect_ = nullptr;
  response_ = Response::kNone;
  if (!keep_alive_ || core_->stopping.load()) {
    StartLinger();
    return;
  }
  parser_.emplace(limits_);
  if (in_.size() > 0) {  // pipelined: already here
    phase_ = Phase::kHead;
    Arm(Clock::now() + Seconds(core_->options.header_timeout_s));
    ProcessInput();
  } else {
    phase_ = Phase::kIdle;
    Arm(Clock::now() + Seconds(core_->options.idle_timeout_s));
  }
  EnsureReading();
}

// A close that lets the last response arrive: our side shut, the client's bytes read and
// dropped until its EOF (closing with unread input would reset the connection and could
// destroy the response in the client's buffers) or kLinger.
void Connection::StartLinger() {
  phase_ = Phase::kLinger;
  lingered_bytes_ = 0;
  in_.clear();
  error_code ec;
  socket_.shutdown(tcp::socket::shutdown_send, ec);
  if (ec) {
    CloseNow();
    return;
  }
  Arm(Clock::now() + kLinger);
  EnsureReading();
}

// The client went away (or is treated as gone) while a response may be open: the exchange
// learns it, then the connection closes. A response its owner has ended (its last bytes may
// still be on their way) is not open any more: its owner has nothing left to stop.
void Connection::ClientGone() {
  if (phase_ != Phase::kExchange || response_ == Response::kEnded) {
    CloseNow();
    return;
  }
  gone_seq_ = seq_;
  if (auto exchange = exchange_.lock()) exchange->gone = true;
  std::function<void()> fn = std::move(on_disconnect_);
  on_disconnect_ = nullptr;
  CloseNow();
  if (fn) fn();
}

void Connection::CloseExchangeAccounting() {
  if (!exchange_open_) return;
  exchange_open_ = false;
  core_->ExchangeClosed();
}

void Connection::CloseNow() {
  if (phase_ == Phase::kClosed) return;
  CloseExchangeAccounting();
  phase_ = Phase::kClosed;
  on_disconnect_ = nullptr;
  error_code ec;
  socket_.close(ec);  // outstanding reads and writes end with operation_aborted
  timer_.cancel();    // so that its handler lets go of us now
  for (const OutItem& item : queue_) pending_write_bytes -= item.accounted;
  queue_.clear();
  (reject_ ? core_->connections_rejecting : core_->connections_open)--;
  core_->Remove(id_);
}

void Connection::CloseIdle() {
  switch (phase_) {
    case Phase::kIdle:
    case Phase::kHead:
    case Phase::kBody:
      CloseNow();
      return;
    case Phase::kExchange:
      keep_alive_ = false;  // closes after this response
      return;
    default:
      return;
  }
}

void Connection::ForceClose() { ClientGone(); }

}  // namespace emoe::server::http_internal
