// server/src/http_wire.h: the bytes the server writes: response heads, chunk framing, and its
// own error answers (400, 408, 413, 431, 503) with bodies in OpenAI's error shape. Pure, so that
// the tests check them without sockets.
//
// Thread safety: pure functions and values.
#ifndef SERVER_SRC_HTTP_WIRE_H_
#define SERVER_SRC_HTTP_WIRE_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace emoe::server::http_internal {

// An answer the server gives by itself, before or instead of the handler.
struct HttpError {
  int status = 400;
  std::string message;  // names the problem: "request head larger than 16384 bytes (...)"
  std::string type = "invalid_request_error";  // OpenAI's error type
};

// {"error": {"message": ..., "type": ..., "param": null, "code": null}}: OpenAI's shape.
std::string ErrorJson(const HttpError& error);
// `s` with '"', '\\' and control characters escaped for a JSON string (no quotes added).
// Bytes >= 0x80 pass unchanged: callers pass UTF-8 or Printable() text.
std::string JsonEscape(std::string_view s);
// At most `max_chars` of `s` for a message: printable ASCII kept, other bytes as '?', "..."
// appended when cut. Request bytes are never echoed raw.
std::string Printable(std::string_view s, size_t max_chars = 64);

// The bytes of a response head: status line, Server, Date, Content-Type (when not empty),
// Content-Length `body_bytes` (>= 0) or, with body_bytes < 0, Transfer-Encoding: chunked
// (HTTP/1.1; an HTTP/1.0 stream has neither and ends with the connection), Cache-Control:
// no-cache for text/event-stream unless `headers` set one, Connection: close / keep-alive as
// `keep_alive` and the request's `version` need, then `headers`. Headers the server owns
// (Content-Length, Transfer-Encoding, Connection, Server, Date) and ones with bytes not allowed
// in a header (CR, LF, NUL, a bad name) are left out of `headers`. No body for 1xx, 204, 304.
struct ResponseHead {
  int status = 200;
  std::string content_type;
  std::vector<std::pair<std::string, std::string>> headers;
  int64_t body_bytes = 0;  // < 0: a stream
  int version = 11;
  bool keep_alive = true;
};
std::string FormatResponseHead(const ResponseHead& head);
// Whether a response with this status carries a body (not 1xx, 204, 304).
bool StatusHasBody(int status);
// Whether `headers` ask for the connection to be closed ("Connection: close").
bool HeadersSayClose(const std::vector<std::pair<std::string, std::string>>& headers);
// A chunk's size line "<hex>\r\n" (the data and "\r\n" follow it); the last chunk is "0\r\n\r\n".
std::string ChunkSizeLine(size_t bytes);
inline constexpr std::string_view kLastChunk = "0\r\n\r\n";
inline constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";

}  // namespace emoe::server::http_internal

#endif  // SERVER_SRC_HTTP_WIRE_H_
