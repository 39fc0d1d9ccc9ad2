// server/src/http_exchange.cc: the response side (http_connection.h): ExchangeImpl, which posts
// each call onto the connection's strand, and the connection's Do* operations and writes. Every
// queued byte is sent as soon as the socket takes it (a stream's chunks are never held back
// until End), batched only when several are waiting.
#include <boost/asio/write.hpp>

#include "http_connection.h"

namespace emoe::server::http_internal {

using boost::system::error_code;

namespace {

constexpr size_t kBatchItems = 64;       // buffers per write
constexpr size_t kBatchBytes = 1 << 20;  // bytes per write

Clock::duration Seconds(double s) {
  return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(s));
}

bool ValidStatus(int status) { return status >= 200 && status <= 599; }

HttpError BadStatus(int status) {
  return {500,
          "the server's handler answered with HTTP status " + std::to_string(status) +
              " (200..599 only)",
          "server_error"};
}

}  // namespace

// --- ExchangeImpl: any thread ---

ExchangeImpl::~ExchangeImpl() {
  if (ended_.load()) return;
  conn_->core().Post(conn_->strand(), [c = conn_, s = seq_] { c->DoDropped(s); });
}

void ExchangeImpl::Respond(HttpResponse response) {
  if (ended_.exchange(true)) return;
  conn_->core().Post(conn_->strand(), [c = conn_, s = seq_, r = std::move(response)]() mutable {
    c->DoRespond(s, std::move(r));
  });
}

void ExchangeImpl::StartStream(int status, const std::string& content_type,
                               std::vector<std::pair<std::string, std::string>> headers) {
  if (ended_.load()) return;
  conn_->core().Post(conn_->strand(), [c = conn_, s = seq_, status, ct = content_type,
                                       h = std::move(headers)]() mutable {
    c->DoStartStream(s, status, std::move(ct), std::move(h));
  });
}

bool ExchangeImpl::Write(std::string data) {
  if (ended_.load() || disconnected()) return false;
  if (data.empty()) return true;
  const size_t n = data.size();
  const size_t before = conn_->pending_write_bytes.fetch_add(n);
  // One write larger than the limit still goes (a big body is not a slow client); more on top
  // of unsent bytes does not.
  if (before > 0 && before + n > conn_->core().options.max_pending_write_bytes) {
    conn_->pending_write_bytes -= n;
    gone = true;
    conn_->core().Post(conn_->strand(), [c = conn_, s = seq_] { c->DoOverflow(s); });
    return false;
  }
  const bool posted = conn_->core().Post(
      conn_->strand(),
      [c = conn_, s = seq_, d = std::move(data), n]() mutable { c->DoWrite(s, std::move(d), n); });
  if (!posted) conn_->pending_write_bytes -= n;
  return posted;
}

void ExchangeImpl::End() {
  if (ended_.exchange(true)) return;
  conn_->core().Post(conn_->strand(), [c = conn_, s = seq_] { c->DoEnd(s); });
}

void ExchangeImpl::OnDisconnect(std::function<void()> fn) {
  if (!fn) return;
  // Posted as a shared callable: if the post is refused (the server has stopped), it still
  // runs here, once, for an exchange the stop cut off.
  auto shared = std::make_shared<std::function<void()>>(std::move(fn));
  const bool posted = conn_->core().Post(
      conn_->strand(), [c = conn_, s = seq_, shared] { c->DoOnDisconnect(s, std::move(*shared)); });
  if (!posted && (gone.load() || !ended_.load())) (*shared)();
}

bool ExchangeImpl::disconnected() const { return gone.load() || conn_->core().stopped(); }

// --- Connection: the response side, on the strand ---

void Connection::DoRespond(uint64_t seq, HttpResponse response) {
  if (seq != seq_ || phase_ != Phase::kExchange) return;
  if (response_ == Response::kStreaming) {  // Respond after StartStream: the stream ends
    DoEnd(seq);
    return;
  }
  if (response_ != Response::kNone) return;
  if (!ValidStatus(response.status)) {
    const HttpError e = BadStatus(response.status);
    response = HttpResponse{e.status, "application/json", ErrorJson(e), {}};
  }
  keep_alive_ = keep_alive_ && !HeadersSayClose(response.headers);
  const bool body = StatusHasBody(response.status);
  ResponseHead head;
  head.status = response.status;
  head.content_type = std::move(response.content_type);
  head.headers = std::move(response.headers);
  head.body_bytes = body ? static_cast<int64_t>(response.body.size()) : 0;
  head.version = version_;
  head.keep_alive = keep_alive_;
  Queue(FormatResponseHead(head));
  if (body && !head_request_) Queue(std::move(response.body));
  response_ = Response::kEnded;
  StartWriting();
}

void Connection::DoStartStream(uint64_t seq, int status, std::string content_type,
                               std::vector<std::pair<std::string, std::string>> headers) {
  if (seq != seq_ || phase_ != Phase::kExchange || response_ != Response::kNone) return;
  if (!ValidStatus(status)) {  // the owner's writes go into a 500 stream
    status = 500;
    content_type = "application/json";
    headers.clear();
  }
  // HTTP/1.0 has no chunks: the stream's end is the connection's.
  if (version_ < 11) keep_alive_ = false;
  keep_alive_ = keep_alive_ && !HeadersSayClose(headers);
  const bool body = StatusHasBody(status);
  chunked_ = version_ >= 11 && body;
  body_allowed_ = body && !head_request_;
  Queue(FormatResponseHead(
      {status, std::move(content_type), std::move(headers), -1, version_, keep_alive_}));
  response_ = Response::kStreaming;
  StartWriting();
}

void Connection::DoWrite(uint64_t seq, std::string data, size_t accounted) {
  if (seq != seq_ || phase_ != Phase::kExchange || response_ != Response::kStreaming ||
      !body_allowed_) {
    pending_write_bytes -= accounted;
    return;
  }
  if (chunked_) {
    Queue(ChunkSizeLine(data.size()));
    Queue(std::move(data), accounted);
    Queue("\r\n");
  } else {
    Queue(std::move(data), accounted);
  }
  StartWriting();
}

void Connection::DoEnd(uint64_t seq) {
  if (seq != seq_ || phase_ != Phase::kExchange) return;
  if (response_ == Response::kNone) {  // End without StartStream: the handler's bug, answered
    const HttpError e{500, "the server's handler ended a response it never started",
                      "server_error"};
    DoRespond(seq, HttpResponse{e.status, "application/json", ErrorJson(e), {}});
    return;
  }
  if (response_ != Response::kStreaming) return;
  if (chunked_ && body_allowed_) Queue(std::string(kLastChunk));
  response_ = Response::kEnded;
  StartWriting();
}

void Connection::DoOnDisconnect(uint64_t seq, std::function<void()> fn) {
  if (seq != 0 && seq == gone_seq_) {  // already gone: at once
    fn();
    return;
  }
  if (seq == seq_ && phase_ == Phase::kExchange) on_disconnect_ = std::move(fn);
  // Otherwise the response ended with the client there: it never runs.
}

void Connection::DoDropped(uint64_t seq) {
  if (seq != seq_ || phase_ != Phase::kExchange) return;
  if (response_ == Response::kNone) {
    const HttpError e{500, "the server dropped the request without answering it", "server_error"};
    DoRespond(seq, HttpResponse{e.status, "application/json", ErrorJson(e), {}});
    return;
  }
  if (response_ == Response::kStreaming) {
    // Cut short: closing (not a last chunk) tells the client the stream is incomplete. No one
    // holds the exchange any more, so no one is told.
    on_disconnect_ = nullptr;
    CloseNow();
  }
}

void Connection::DoOverflow(uint64_t seq) {
  if (seq == seq_ && phase_ == Phase::kExchange) ClientGone();
}

// --- writes ---

void Connection::Queue(std::string bytes, size_t accounted) {
  if (bytes.empty() && accounted == 0) return;
  queue_.push_back({std::move(bytes), accounted});
}

void Connection::StartWriting() {
  if (write_in_flight_ || phase_ == Phase::kClosed) return;
  if (queue_.empty()) {
    if (phase_ == Phase::kExchange) {
      if (response_ == Response::kEnded) {
        FinishExchange();
        return;
      }
      Disarm();  // all sent: the stream waits for its owner, with no deadline
    } else if (phase_ == Phase::kFinalWrite) {
      StartLinger();
    }
    return;
  }
  size_t bytes = 0;
  writing_accounted_ = 0;
  while (!queue_.empty() && writing_.size() < kBatchItems && bytes < kBatchBytes) {
    bytes += queue_.front().bytes.size();
    writing_accounted_ += queue_.front().accounted;
    writing_.push_back(std::move(queue_.front().bytes));
    queue_.pop_front();
  }
  std::vector<asio::const_buffer> buffers;  // after writing_ is complete: no more moves
  buffers.reserve(writing_.size());
  for (const std::string& s : writing_) buffers.push_back(asio::buffer(s));
  // A client that stops reading makes no progress: idle_timeout_s per write, then it is gone.
  if (phase_ == Phase::kExchange) Arm(Clock::now() + Seconds(core_->options.idle_timeout_s));
  write_in_flight_ = true;
  asio::async_write(socket_, buffers, [self = shared_from_this()](const error_code& ec, size_t) {
    self->OnWrite(ec);
  });
}

void Connection::OnWrite(const error_code& ec) {
  write_in_flight_ = false;
  pending_write_bytes -= writing_accounted_;
  writing_accounted_ = 0;
  writing_.clear();
  if (phase_ == Phase::kClosed) return;
  if (ec) {
    ClientGone();
    return;
  }
  StartWriting();
}

}  // namespace emoe::server::http_internal
