// server/src/http_parse.h: bytes of a connection -> one HttpRequest, or the HTTP error the server
// answers on its own (400, 413, 431), with the limits of HttpOptions. Beast's request parser
// does the grammar; this layer adds what the server needs on top and what the fuzzer
// (fuzz/http_request_fuzzer.cc) checks: incremental input (a head parsed once whole, a body as
// it comes), the head's end reported once (Expect: 100-continue, the body's clock), the HTTP/2
// preface and unsupported Transfer-Encodings refused, leading empty lines skipped, the request
// target split into path and query, header names lower-cased with repeats joined, and every
// error as a status plus a message naming the problem and the limit (never Beast's code alone).
//
// Thread safety: RequestParser is a value used by one thread at a time; the functions are pure.
#ifndef SERVER_SRC_HTTP_PARSE_H_
#define SERVER_SRC_HTTP_PARSE_H_

#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "http_wire.h"
#include "server/http.h"

namespace emoe::server::http_internal {

// ASCII case-insensitive equality (header names and tokens).
bool IEquals(std::string_view a, std::string_view b);

struct HttpLimits {
  size_t max_header_bytes = 16 << 10;  // request line + headers, CRLFs included
  size_t max_body_bytes = 4 << 20;     // the decoded body (chunked: the chunks' data)
};

// One request off a connection's input. Use:
//   RequestParser p(limits);
//   while (...) { size_t n = p.Feed(unconsumed input); drop n bytes; act on p.state(); }
// then TakeRequest() at kDone, or error() at kError; a new parser for the next request.
class RequestParser {
 public:
  enum class State {
    kHead,   // the head is not complete yet
    kBody,   // the head is complete, the body is not (reported once after the head)
    kDone,   // the request is complete; the input after it is the next request's
    kError,  // malformed or over a limit: answer error() and close the connection
  };
  explicit RequestParser(const HttpLimits& limits);
  RequestParser(const RequestParser&) = delete;
  RequestParser& operator=(const RequestParser&) = delete;

  // Parses a prefix of `data`, all of the connection's input not consumed yet (the head is
  // parsed only once all of it is there, so unconsumed bytes must be passed again, with more)
  // and returns how many bytes it consumed. Returns when it needs more input, at the end of the
  // head (state() kBody: once, even if the body is already in `data`: call again), at the end
  // of the request (kDone) and at an error (kError). REQUIRES: state() is kHead or kBody.
  size_t Feed(std::string_view data);
  State state() const { return state_; }
  // Any byte of this request seen (leading empty lines included): starts the head's clock.
  bool got_bytes() const { return got_bytes_; }
  // REQUIRES: state() is kBody or kDone.
  int version() const { return version_; }  // 10 or 11
  // Whether the connection may serve another request after this one (HTTP/1.1 unless
  // "Connection: close"; HTTP/1.0 only with "Connection: keep-alive").
  bool keep_alive() const { return keep_alive_; }
  // "Expect: 100-continue" on an HTTP/1.1 request with a body: answer "100 Continue" first.
  bool expect_continue() const { return expect_continue_; }
  // REQUIRES: state() == kError.
  const HttpError& error() const { return error_; }
  // The request (peer empty: the server's to fill). REQUIRES: state() == kDone; once.
  HttpRequest TakeRequest();

 private:
  size_t FeedHead(std::string_view data);
  size_t FeedBody(std::string_view data);
  void FinishHead();
  void Fail(int status, std::string message);
  void FailBeast(const boost::system::error_code& ec, std::string_view data);

  HttpLimits limits_;
  size_t head_bytes_ = 0;  // of the head consumed so far (Beast counts the request line apart)
  boost::beast::http::request_parser<boost::beast::http::string_body> parser_;
  State state_ = State::kHead;
  bool got_bytes_ = false;
  size_t skipped_bytes_ = 0;  // empty lines before the request line
  int version_ = 11;
  bool keep_alive_ = false;
  bool expect_continue_ = false;
  HttpError error_;
  HttpRequest request_;
};

}  // namespace emoe::server::http_internal

#endif  // SERVER_SRC_HTTP_PARSE_H_
