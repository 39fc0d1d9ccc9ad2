// server/src/http_parse.cc: RequestParser (see http_parse.h). Beast's parser is driven in two
// phases: not eager until the head is complete (so that the end of the head is seen once, before
// any of the body), then eager. The head limit is ours, not Beast's: Beast counts the request line
// and the header fields against its limit apart, so the head is passed to it cut at what is left
// of max_header_bytes, and a head not complete within that is 431.
#include "http_parse.h"

#include <algorithm>
#include <boost/beast/http/error.hpp>
#include <cctype>
#include <limits>

namespace emoe::server::http_internal {

namespace http = boost::beast::http;
using boost::system::error_code;

bool IEquals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) !=
        std::tolower(static_cast<unsigned char>(b[i]))) {
      return false;
    }
  }
  return true;
}

namespace {

// Beast 1.74 speaks boost::string_view.
std::string_view Sv(boost::beast::string_view s) { return {s.data(), s.size()}; }

bool StartsWith(std::string_view s, std::string_view prefix) {
  return s.size() >= prefix.size() && s.substr(0, prefix.size()) == prefix;
}

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// Splits the request target into path and query. Origin form ("/a?b"), absolute form
// ("http://host/a?b", which proxies send and servers must take) and "*" (OPTIONS only).
// Returns false for anything else.
bool SplitTarget(std::string_view method, std::string_view target, std::string* path,
                 std::string* query) {
  if (target == "*") {
    *path = "*";
    return method == "OPTIONS";
  }
  std::string_view rest = target;
  if (rest.empty() || rest.front() != '/') {
    const std::string lower = Lower(rest.substr(0, 8));
    size_t skip = 0;
    if (StartsWith(lower, "http://")) skip = 7;
    if (StartsWith(lower, "https://")) skip = 8;
    if (skip == 0) return false;
    rest.remove_prefix(skip);
    const size_t slash = rest.find_first_of("/?");
    if (slash == 0) return false;  // no authority
    rest = slash == std::string_view::npos ? std::string_view("/") : rest.substr(slash);
    if (rest.front() == '?') {
      *path = "/";
      *query = std::string(rest.substr(1));
      return true;
    }
  }
  const size_t q = rest.find('?');
  *path = std::string(rest.substr(0, q));
  if (q != std::string_view::npos) *query = std::string(rest.substr(q + 1));
  return true;
}

}  // namespace

RequestParser::RequestParser(const HttpLimits& limits) : limits_(limits) {
  // Our own head limit applies first (FeedHead); Beast's must never be the one that trips.
  const size_t beast_limit =
      std::min<size_t>(limits_.max_header_bytes + 1, std::numeric_limits<std::uint32_t>::max());
  parser_.header_limit(static_cast<std::uint32_t>(beast_limit));
  parser_.body_limit(static_cast<std::uint64_t>(limits_.max_body_bytes));
  parser_.eager(false);
}

size_t RequestParser::Feed(std::string_view data) {
  if (state_ == State::kHead) return FeedHead(data);
  if (state_ == State::kBody) return FeedBody(data);
  return 0;
}

size_t RequestParser::FeedHead(std::string_view data) {
  size_t skipped = 0;
  if (!parser_.got_some()) {
    // RFC 9112 2.2: empty lines before the request line are ignored (clients send a CRLF after
    // a POST body); many of them are not a request.
    while (skipped < data.size() && (data[skipped] == '\r' || data[skipped] == '\n')) ++skipped;
    if (skipped > 0) got_bytes_ = true;
    skipped_bytes_ += skipped;
    if (skipped_bytes_ > limits_.max_header_bytes) {
      Fail(400, "more than " + std::to_string(limits_.max_header_bytes) +
                    " bytes of empty lines before the request line");
      return skipped;
    }
    data.remove_prefix(skipped);
    if (data.empty()) return skipped;
  }
  got_bytes_ = true;
  const size_t allowance =
      limits_.max_header_bytes - std::min(head_bytes_, limits_.max_header_bytes);
  const std::string_view view = data.substr(0, allowance);
  error_code ec;
  const size_t n =
      view.empty() ? 0 : parser_.put(boost::asio::buffer(view.data(), view.size()), ec);
  head_bytes_ += n;
  if (view.empty() || ec == http::error::need_more) {
    if (view.size() == allowance) {
      Fail(431, "request head (request line and headers) larger than " +
                    std::to_string(limits_.max_header_bytes) + " bytes (max_header_bytes)");
    }
    return skipped + n;
  }
  if (ec) {
    FailBeast(ec, data);
    return skipped + n;
  }
  FinishHead();
  return skipped + n;
}

size_t RequestParser::FeedBody(std::string_view data) {
  parser_.eager(true);
  error_code ec;
  const size_t n =
      data.empty() ? 0 : parser_.put(boost::asio::buffer(data.data(), data.size()), ec);
  if (ec == http::error::need_more) return n;
  if (ec) {
    FailBeast(ec, data.substr(n));
    return n;
  }
  if (parser_.is_done()) {
    request_.body = std::move(parser_.get().body());
    state_ = State::kDone;
  }
  return n;
}

// The head is complete: our checks on top of Beast's grammar, and the request's head fields.
void RequestParser::FinishHead() {
  const auto& m = parser_.get();
  version_ = static_cast<int>(m.version());
  request_.method = std::string(Sv(m.method_string()));
  request_.target = std::string(Sv(m.target()));
  if (!SplitTarget(request_.method, request_.target, &request_.path, &request_.query)) {
    Fail(400, "request target '" + Printable(request_.target) +
                  "' is not a path (origin form '/...', absolute form 'http://host/...', or '*' "
                  "for OPTIONS)");
    return;
  }
  for (const auto& field : m) {
    std::string name = Lower(Sv(field.name_string()));
    const std::string_view value = Sv(field.value());
    auto it = std::find_if(request_.headers.begin(), request_.headers.end(),
                           [&](const auto& h) { return h.first == name; });
    if (it == request_.headers.end()) {
      request_.headers.emplace_back(std::move(name), std::string(value));
    } else {
      it->second += ", ";
      it->second += value;
    }
  }
  const std::string transfer_encoding = request_.Header("transfer-encoding");
  // Beast takes "gzip, chunked" as chunked and "gzip" alone as no body at all (the bytes then
  // read as the next request: request smuggling). Only plain "chunked" is taken.
  if (!transfer_encoding.empty() && !IEquals(Trim(transfer_encoding), "chunked")) {
    Fail(400, "Transfer-Encoding '" + Printable(transfer_encoding) +
                  "' is not supported: only 'chunked'");
    return;
  }
  keep_alive_ = parser_.keep_alive();
  const bool has_body = parser_.chunked() || parser_.content_length().value_or(0) > 0;
  expect_continue_ =
      version_ >= 11 && has_body && IEquals(Trim(request_.Header("expect")), "100-continue");
  if (parser_.is_done()) {
    request_.body = std::move(parser_.get().body());
    state_ = State::kDone;
  } else {
    state_ = State::kBody;
  }
}

void RequestParser::Fail(int status, std::string message) {
  state_ = State::kError;
  error_.status = status;
  error_.message = std::move(message);
  error_.type = "invalid_request_error";
}

// Beast's error as a status and a message naming the problem.
void RequestParser::FailBeast(const error_code& ec, std::string_view data) {
  const bool in_head = state_ == State::kHead;
  const std::string where = in_head ? "request head: " : "request body: ";
  if (ec == http::error::body_limit) {
    const auto& m = parser_.get();
    const auto cl = m.find(http::field::content_length);
    std::string what = "request body larger than ";
    if (in_head && cl != m.end()) {
      what = "Content-Length " + Printable(Sv(cl->value())) + " is larger than ";
    }
    Fail(413, what + std::to_string(limits_.max_body_bytes) + " bytes (max_body_bytes)");
    return;
  }
  if (ec == http::error::header_limit) {
    Fail(431, "request head larger than " + std::to_string(limits_.max_header_bytes) +
                  " bytes (max_header_bytes)");
    return;
  }
  if (ec == http::error::bad_version && StartsWith(data, "PRI * HTTP/2")) {
    Fail(400, "an HTTP/2 connection preface: this server speaks HTTP/1.1 (and 1.0) only");
    return;
  }
  if (ec == http::error::bad_method && data.size() >= 2 && data[0] == '\x16' && data[1] == '\x03') {
    Fail(400, "a TLS handshake: this server speaks plain HTTP (use http://, not https://)");
    return;
  }
  std::string what;
  if (ec == http::error::bad_version) {
    what = "bad or unsupported HTTP version in the request line (HTTP/1.0 and HTTP/1.1 only)";
  } else if (ec == http::error::bad_method) {
    what = "bad method in the request line";
  } else if (ec == http::error::bad_target) {
    what = "bad request target in the request line";
  } else if (ec == http::error::bad_line_ending) {
    what = "bad line ending (lines end with CRLF)";
  } else if (ec == http::error::bad_field) {
    what = "bad header field name";
  } else if (ec == http::error::bad_value) {
    what = "bad header value";
  } else if (ec == http::error::bad_content_length) {
    what =
        "bad Content-Length (not a number, repeated with another value, or beside "
        "Transfer-Encoding)";
  } else if (ec == http::error::bad_transfer_encoding) {
    what = "bad Transfer-Encoding (repeated, or beside Content-Length)";
  } else if (ec == http::error::bad_chunk) {
    what = "bad chunk in the chunked body (size line or CRLF)";
  } else if (ec == http::error::bad_chunk_extension) {
    what = "bad chunk extension in the chunked body";
  } else if (ec == http::error::bad_obs_fold) {
    what = "bad obsolete line folding in a header";
  } else {
    what = "malformed: " + ec.message();
  }
  Fail(400, where + what);
}

HttpRequest RequestParser::TakeRequest() { return std::move(request_); }

}  // namespace emoe::server::http_internal

namespace emoe::server {

std::string HttpRequest::Header(const std::string& name) const {
  for (const auto& h : headers) {
    if (h.first == name) return h.second;
  }
  return "";
}

}  // namespace emoe::server
