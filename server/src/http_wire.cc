// server/src/http_wire.cc: response heads, chunk framing and error bodies (see http_wire.h).
#include "http_wire.h"

#include "http_parse.h"

// <ostream> first: Boost 1.74's string_view (under status.hpp) uses it without including it.
#include <ostream>

#include <boost/beast/http/status.hpp>
#include <cctype>
#include <cstdio>
#include <ctime>

namespace emoe::server::http_internal {

namespace {

bool IStartsWith(std::string_view s, std::string_view prefix) {
  return s.size() >= prefix.size() && IEquals(s.substr(0, prefix.size()), prefix);
}

// RFC 9110 5.6.2 token characters.
bool IsToken(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (std::isalnum(u)) continue;
    if (std::string_view("!#$%&'*+-.^_`|~").find(c) == std::string_view::npos) return false;
  }
  return true;
}

bool IsFieldValue(std::string_view s) {
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (u == '\t') continue;
    if (u < 0x20 || u == 0x7f) return false;
  }
  return true;
}

bool OwnedByServer(std::string_view name) {
  for (std::string_view owned :
       {"content-length", "transfer-encoding", "connection", "server", "date"}) {
    if (IEquals(name, owned)) return true;
  }
  return false;
}

// RFC 9110 5.6.7 IMF-fixdate, locale-independent: "Sun, 06 Nov 1994 08:49:37 GMT".
std::string HttpDate() {
  static constexpr const char* kDays[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
  static constexpr const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                            "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  char buf[40];
  std::snprintf(buf, sizeof(buf), "%s, %02d %s %04d %02d:%02d:%02d GMT", kDays[tm.tm_wday % 7],
                tm.tm_mday, kMonths[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour, tm.tm_min,
                tm.tm_sec);
  return buf;
}

}  // namespace

std::string JsonEscape(std::string_view s) {
  std::string out;
  out.reserve(s.size() + 8);
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c == '\r') {
      out += "\\r";
    } else if (u < 0x20 || u == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\u%04x", u);
      out += buf;
    } else {
      out += c;
    }
  }
  return out;
}

std::string ErrorJson(const HttpError& error) {
  return std::string(R"({"error": {"message": ")") + JsonEscape(error.message) + R"(", "type": ")" +
         JsonEscape(error.type) + R"(", "param": null, "code": null}})";
}

std::string Printable(std::string_view s, size_t max_chars) {
  std::string out;
  for (size_t i = 0; i < s.size() && i < max_chars; ++i) {
    const auto u = static_cast<unsigned char>(s[i]);
    out += (u >= 0x20 && u < 0x7f) ? s[i] : '?';
  }
  if (s.size() > max_chars) out += "...";
  return out;
}

bool StatusHasBody(int status) { return status >= 200 && status != 204 && status != 304; }

bool HeadersSayClose(const std::vector<std::pair<std::string, std::string>>& headers) {
  for (const auto& h : headers) {
    if (IEquals(h.first, "connection") && IEquals(h.second, "close")) return true;
  }
  return false;
}

std::string FormatResponseHead(const ResponseHead& head) {
  const auto reason =
      boost::beast::http::obsolete_reason(static_cast<boost::beast::http::status>(head.status));
  std::string out = "HTTP/1.1 " + std::to_string(head.status) + " ";
  out.append(reason.data(), reason.size());
  out += "\r\nServer: emoe\r\nDate: " + HttpDate() + "\r\n";
  bool has_cache_control = false;
  bool has_content_type = false;
  for (const auto& h : head.headers) {
    has_cache_control |= IEquals(h.first, "cache-control");
    has_content_type |= IEquals(h.first, "content-type");
  }
  if (!head.content_type.empty()) {
    has_content_type = false;  // ours wins; the handler's copy is dropped below
    out += "Content-Type: " + head.content_type + "\r\n";
  }
  if (StatusHasBody(head.status)) {
    if (head.body_bytes >= 0) {
      out += "Content-Length: " + std::to_string(head.body_bytes) + "\r\n";
    } else if (head.version >= 11) {
      out += "Transfer-Encoding: chunked\r\n";
    }
  }
  if (!has_cache_control && IStartsWith(head.content_type, "text/event-stream")) {
    out += "Cache-Control: no-cache\r\n";
  }
  if (!head.keep_alive) {
    out += "Connection: close\r\n";
  } else if (head.version < 11) {
    out += "Connection: keep-alive\r\n";
  }
  for (const auto& h : head.headers) {
    if (!IsToken(h.first) || !IsFieldValue(h.second) || OwnedByServer(h.first)) continue;
    if (IEquals(h.first, "content-type") && !has_content_type) continue;
    out += h.first + ": " + h.second + "\r\n";
  }
  out += "\r\n";
  return out;
}

std::string ChunkSizeLine(size_t bytes) {
  char buf[24];
  std::snprintf(buf, sizeof(buf), "%zx\r\n", bytes);
  return buf;
}

}  // namespace emoe::server::http_internal
