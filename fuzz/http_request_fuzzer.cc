// Fuzzes the HTTP server's request parsing (server/src/http_parse.h RequestParser, the code the
// server runs on every connection's bytes) and its response heads (http_wire.h). The first two
// bytes pick the limits and how the rest is cut into reads; the rest is a connection's input: any
// number of requests. Properties:
//   - parsing never crashes or hangs, whatever the bytes and the limits;
//   - the input cut into reads of random sizes is accepted exactly as it is whole (the server
//     sees whatever pieces TCP delivers): the same requests, and an error where whole input
//     has one. (Its status may differ, and it may come later: once Beast has asked for more of
//     a head it looks again only when the head's end or the limit arrives, so a malformed
//     head cut short can still be waiting when the input ends.);
//   - an accepted request keeps the contract: a body within max_body_bytes, a head that fit in
//     max_header_bytes (after at most as many bytes of empty lines), a path ("/..." or "*"),
//     lower-case unique header names that Header() finds;
//   - an error is 400, 413 or 431 with a message, and its JSON body is one line of JSON text;
//   - a response head built from the request's (hostile) headers has one end of head only: no
//     header value can split the response.
#include <cstddef>
#include <cstdint>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_check.h"
#include "http_parse.h"
#include "http_wire.h"

namespace {

using emoe::server::HttpRequest;
using emoe::server::http_internal::ErrorJson;
using emoe::server::http_internal::FormatResponseHead;
using emoe::server::http_internal::HttpLimits;
using emoe::server::http_internal::RequestParser;
using emoe::server::http_internal::ResponseHead;
using State = RequestParser::State;

struct Outcome {
  State state;
  int status = 0;  // of an error
  HttpRequest request;
  size_t consumed = 0;  // of the input, through the end of this request
  size_t head_bytes = 0;
};

bool operator==(const Outcome& a, const Outcome& b) {
  return a.state == b.state && a.status == b.status && a.consumed == b.consumed &&
         a.request.method == b.request.method && a.request.target == b.request.target &&
         a.request.path == b.request.path && a.request.query == b.request.query &&
         a.request.headers == b.request.headers && a.request.body == b.request.body;
}

struct Parsed {
  std::vector<Outcome> outcomes;
  bool mid_head = false;  // the input ended inside a head
};

// Parses the requests in `input` as a connection does, fed in pieces whose sizes come from
// `rng` (none: whole). Stops at the first error or when the input runs out.
Parsed ParseAll(std::string_view input, const HttpLimits& limits, std::mt19937* rng) {
  Parsed parsed;
  std::vector<Outcome>& out = parsed.outcomes;
  std::string pending;
  size_t fed = 0, consumed = 0;
  auto parser = std::make_unique<RequestParser>(limits);
  size_t head_end = 0;  // consumed when the head ended
  while (true) {
    const size_t left = input.size() - fed;
    const size_t take = rng == nullptr ? left : std::min<size_t>(left, 1 + (*rng)() % 97);
    pending.append(input.substr(fed, take));
    fed += take;
    bool progress = true;
    while (progress && !pending.empty()) {
      const State before = parser->state();
      const size_t n = parser->Feed(pending);
      FUZZ_CHECK(n <= pending.size());
      pending.erase(0, n);
      consumed += n;
      progress = n > 0 || parser->state() != before;
      if (before == State::kHead && parser->state() != State::kHead) head_end = consumed;
      if (parser->state() == State::kDone) {
        Outcome o{State::kDone, 0, parser->TakeRequest(), consumed, head_end};
        out.push_back(std::move(o));
        parser = std::make_unique<RequestParser>(limits);
        progress = true;
      } else if (parser->state() == State::kError) {
        FUZZ_CHECK(!parser->error().message.empty());
        out.push_back({State::kError, parser->error().status, {}, consumed, 0});
        // What the server sends: its JSON must stay one JSON string per field.
        const std::string json = ErrorJson(parser->error());
        for (char c : json) FUZZ_CHECK(static_cast<unsigned char>(c) >= 0x20);
        return parsed;
      }
    }
    if (fed == input.size()) break;
  }
  parsed.mid_head = parser->state() == State::kHead && parser->got_bytes();
  return parsed;
}

void CheckRequest(const Outcome& o, const HttpLimits& limits, size_t prev_consumed) {
  const HttpRequest& r = o.request;
  FUZZ_CHECK(!r.method.empty());
  FUZZ_CHECK(r.body.size() <= limits.max_body_bytes);
  FUZZ_CHECK(!r.path.empty() && (r.path[0] == '/' || r.path == "*"));
  FUZZ_CHECK(o.consumed > prev_consumed);
  for (size_t i = 0; i < r.headers.size(); ++i) {
    const std::string& name = r.headers[i].first;
    FUZZ_CHECK(!name.empty());
    for (char c : name) FUZZ_CHECK(!(c >= 'A' && c <= 'Z'));
    for (size_t j = 0; j < i; ++j) FUZZ_CHECK(r.headers[j].first != name);
    FUZZ_CHECK(r.Header(name) == r.headers[i].second);
  }
  // The request's headers handed back as response headers cannot add a header or end the head.
  ResponseHead head;
  head.status = 200;
  head.content_type = "text/plain";
  head.headers = r.headers;
  head.body_bytes = static_cast<int64_t>(r.body.size());
  const std::string bytes = FormatResponseHead(head);
  FUZZ_CHECK(bytes.find("\r\n\r\n") == bytes.size() - 4);
  for (size_t i = 0; i < bytes.size(); ++i) {
    if (bytes[i] == '\n') FUZZ_CHECK(i > 0 && bytes[i - 1] == '\r');
    if (bytes[i] == '\r') FUZZ_CHECK(i + 1 < bytes.size() && bytes[i + 1] == '\n');
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  static constexpr size_t kHeadLimits[] = {256, 1024, 16 << 10, 300};
  static constexpr size_t kBodyLimits[] = {0, 64, 4096, 1 << 20};
  const HttpLimits limits{kHeadLimits[data[1] & 3], kBodyLimits[(data[1] >> 2) & 3]};
  const std::string_view input(reinterpret_cast<const char*>(data) + 2, size - 2);
  const Parsed whole = ParseAll(input, limits, nullptr);
  std::mt19937 rng(data[0]);
  const Parsed split = ParseAll(input, limits, &rng);
  FUZZ_CHECK(split.outcomes.size() <= whole.outcomes.size());
  size_t prev = 0;
  for (size_t i = 0; i < whole.outcomes.size(); ++i) {
    const Outcome& w = whole.outcomes[i];
    if (w.state == State::kError) {
      const int s = w.status;
      FUZZ_CHECK(s == 400 || s == 413 || s == 431);
      FUZZ_CHECK(i + 1 == whole.outcomes.size());
      // Cut into reads: refused too, or still waiting for the rest of that head.
      FUZZ_CHECK(i < split.outcomes.size() ? split.outcomes[i].state == State::kError
                                           : split.mid_head && i == split.outcomes.size());
      break;
    }
    FUZZ_CHECK(i < split.outcomes.size() && split.outcomes[i] == w);
    CheckRequest(w, limits, prev);
    // The head fit, after at most as many bytes of leading empty lines.
    FUZZ_CHECK(w.head_bytes - prev <= 2 * limits.max_header_bytes);
    prev = w.consumed;
  }
  return 0;
}
