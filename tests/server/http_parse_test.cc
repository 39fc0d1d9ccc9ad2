// The HTTP layer's pure parts without sockets: RequestParser (server/src/http_parse.h) fed whole
// and byte by byte, its limits at their exact edges and its errors; the response bytes and the
// error bodies (http_wire.h).
#include "http_parse.h"

#include <random>

#include "gtest/gtest.h"
#include "http_wire.h"

namespace emoe::server::http_internal {
namespace {

using State = RequestParser::State;

struct Outcome {
  State state = State::kHead;
  HttpRequest request;
  HttpError error;
  size_t consumed = 0;
  bool saw_body_state = false;
};

// Feeds `input` in pieces of `piece` bytes (0: whole), as the server does: unconsumed bytes are
// passed again with the next piece.
Outcome Parse(const std::string& input, HttpLimits limits, size_t piece = 0) {
  RequestParser p(limits);
  Outcome out;
  std::string pending;
  size_t offset = 0;
  while (true) {
    const size_t take = piece == 0 ? input.size() - offset : std::min(piece, input.size() - offset);
    pending += input.substr(offset, take);
    offset += take;
    for (;;) {
      const size_t n = p.Feed(pending);
      pending.erase(0, n);
      out.consumed += n;
      if (p.state() == State::kBody && !out.saw_body_state) {
        out.saw_body_state = true;
        continue;  // the end of the head is reported once; go on
      }
      break;
    }
    if (p.state() == State::kDone || p.state() == State::kError || offset == input.size()) break;
  }
  out.state = p.state();
  if (out.state == State::kDone) out.request = p.TakeRequest();
  if (out.state == State::kError) out.error = p.error();
  return out;
}

HttpLimits Limits(size_t head = 1024, size_t body = 1024) { return {head, body}; }

TEST(HttpParseTest, SimpleGet) {
  const Outcome o = Parse("GET /v1/models?a=b HTTP/1.1\r\nHost: h\r\nX-A: 1\r\n\r\nNEXT", Limits());
  ASSERT_EQ(o.state, State::kDone);
  EXPECT_FALSE(o.saw_body_state);
  EXPECT_EQ(o.request.method, "GET");
  EXPECT_EQ(o.request.target, "/v1/models?a=b");
  EXPECT_EQ(o.request.path, "/v1/models");
  EXPECT_EQ(o.request.query, "a=b");
  EXPECT_EQ(o.request.Header("x-a"), "1");
  EXPECT_EQ(o.consumed,
            std::string("GET /v1/models?a=b HTTP/1.1\r\nHost: h\r\nX-A: 1\r\n\r\n").size())
      << "the next request's bytes must stay unconsumed";
}

TEST(HttpParseTest, WholeAndByteByByteAgree) {
  const std::string inputs[] = {
      "POST /p HTTP/1.1\r\nContent-Length: 5\r\nA: x\r\na: y\r\n\r\nhello",
      "POST /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;e=1\r\nde\r\n0\r\n"
      "T: 1\r\n\r\n",
      "\r\n\r\nGET http://example.com:80/abs?q HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
      "GET / HTTP/1.1\r\nBad Header\r\n\r\n",
      "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
  };
  std::mt19937 rng(18);
  for (const std::string& in : inputs) {
    SCOPED_TRACE(in);
    const Outcome whole = Parse(in, Limits());
    for (size_t piece : {size_t{1}, size_t{2}, size_t{7}, size_t{0}}) {
      const Outcome split = Parse(in, Limits(), piece);
      EXPECT_EQ(split.state, whole.state) << piece;
      EXPECT_EQ(split.consumed, whole.consumed) << piece;
      EXPECT_EQ(split.request.body, whole.request.body) << piece;
      EXPECT_EQ(split.request.headers, whole.request.headers) << piece;
      EXPECT_EQ(split.error.status, whole.error.status) << piece;
    }
  }
  const Outcome chunked = Parse(inputs[1], Limits());
  ASSERT_EQ(chunked.state, State::kDone);
  EXPECT_EQ(chunked.request.body, "abcde");
  EXPECT_TRUE(chunked.saw_body_state);
  const Outcome repeated = Parse(inputs[0], Limits());
  EXPECT_EQ(repeated.request.Header("a"), "x, y");
  const Outcome abs = Parse(inputs[2], Limits());
  ASSERT_EQ(abs.state, State::kDone);
  EXPECT_EQ(abs.request.path, "/abs");
  EXPECT_EQ(abs.request.query, "q");
}

TEST(HttpParseTest, HeadLimitIsExactAndCountsTheWholeHead) {
  const std::string start = "GET / HTTP/1.1\r\nX: ";
  for (size_t piece : {size_t{0}, size_t{1}, size_t{100}}) {
    SCOPED_TRACE(piece);
    // Exactly the limit: taken. One more: 431.
    std::string head = start + std::string(256 - start.size() - 4, 'v') + "\r\n\r\n";
    ASSERT_EQ(head.size(), 256u);
    EXPECT_EQ(Parse(head, Limits(256), piece).state, State::kDone);
    head = start + std::string(256 - start.size() - 3, 'v') + "\r\n\r\n";
    const Outcome o = Parse(head, Limits(256), piece);
    ASSERT_EQ(o.state, State::kError);
    EXPECT_EQ(o.error.status, 431);
    EXPECT_NE(o.error.message.find("256 bytes (max_header_bytes)"), std::string::npos);
  }
  // A long request line counts too (Beast alone would count it apart from the headers).
  const std::string line = "GET /" + std::string(200, 'p') + " HTTP/1.1\r\n";
  const Outcome o = Parse(line + "A: " + std::string(100, 'a') + "\r\n\r\n", Limits(256), 1);
  ASSERT_EQ(o.state, State::kError);
  EXPECT_EQ(o.error.status, 431);
}

TEST(HttpParseTest, BodyLimit) {
  const Outcome at =
      Parse("POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\n0123456789", Limits(1024, 10));
  EXPECT_EQ(at.state, State::kDone);
  const Outcome over = Parse("POST / HTTP/1.1\r\nContent-Length: 11\r\n\r\n", Limits(1024, 10));
  ASSERT_EQ(over.state, State::kError);
  EXPECT_EQ(over.error.status, 413);
  EXPECT_NE(over.error.message.find("Content-Length 11"), std::string::npos) << over.error.message;
  const Outcome chunked = Parse(
      "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n6\r\n012345\r\n5\r\n01234\r\n0\r\n\r\n",
      Limits(1024, 10), 3);
  ASSERT_EQ(chunked.state, State::kError);
  EXPECT_EQ(chunked.error.status, 413);
  EXPECT_NE(chunked.error.message.find("request body larger than 10"), std::string::npos);
}

TEST(HttpParseTest, KeepAliveAndExpect) {
  RequestParser p(Limits());
  p.Feed("POST / HTTP/1.1\r\nExpect: 100-Continue\r\nContent-Length: 2\r\n\r\n");
  ASSERT_EQ(p.state(), State::kBody);
  EXPECT_TRUE(p.expect_continue());
  EXPECT_TRUE(p.keep_alive());
  EXPECT_EQ(p.version(), 11);
  p.Feed("ok");
  ASSERT_EQ(p.state(), State::kDone);
  EXPECT_EQ(p.TakeRequest().body, "ok");
  RequestParser q(Limits());
  q.Feed("GET / HTTP/1.0\r\nExpect: 100-continue\r\n\r\n");
  ASSERT_EQ(q.state(), State::kDone);
  EXPECT_FALSE(q.expect_continue()) << "HTTP/1.0, and no body";
  EXPECT_FALSE(q.keep_alive());
  RequestParser r(Limits());
  r.Feed("GET / HTTP/1.1\r\nConnection: close\r\n\r\n");
  EXPECT_FALSE(r.keep_alive());
}

TEST(HttpParseTest, ErrorsNameTheProblem) {
  const std::pair<std::string, std::string> cases[] = {
      {"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "HTTP/2 connection preface"},
      {std::string("\x16\x03\x01\x00\x10", 5), "TLS handshake"},
      {"GET / HTTP/2.0\r\n\r\n", "HTTP version"},
      {"GET / HTTP/1.1\r\nA: b\r\n\rX", "line ending"},
      {"GET x HTTP/1.1\r\n\r\n", "is not a path"},
      {"OPTIONS * HTTP/1.1\r\n\r\n", ""},  // fine
      {"GET * HTTP/1.1\r\n\r\n", "'*' for OPTIONS"},
      {"POST / HTTP/1.1\r\nContent-Length: x\r\n\r\n", "Content-Length"},
      {"POST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
       "Transfer-Encoding"},
      {"POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", "only 'chunked'"},
      {"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nq\r\n", "chunk"},
      {std::string(2000, '\n'), "empty lines"},
  };
  for (const auto& [input, what] : cases) {
    SCOPED_TRACE(input.substr(0, 40));
    const Outcome o = Parse(input, Limits(1024));
    if (what.empty()) {
      EXPECT_EQ(o.state, State::kDone);
      continue;
    }
    ASSERT_EQ(o.state, State::kError);
    EXPECT_EQ(o.error.status, 400);
    EXPECT_NE(o.error.message.find(what), std::string::npos) << o.error.message;
    EXPECT_EQ(o.error.type, "invalid_request_error");
  }
}

TEST(HttpWireTest, ErrorJsonIsOpenAiShaped) {
  EXPECT_EQ(ErrorJson({413, "too \"big\"\n\x01", "invalid_request_error"}),
            R"({"error": {"message": "too \"big\"\n\u0001", "type": "invalid_request_error", )"
            R"("param": null, "code": null}})");
  EXPECT_EQ(Printable("ab\xff\x01"
                      "c",
                      4),
            "ab??...");
}

TEST(HttpWireTest, ResponseHeads) {
  ResponseHead h;
  h.status = 200;
  h.content_type = "application/json";
  h.body_bytes = 12;
  std::string s = FormatResponseHead(h);
  EXPECT_EQ(s.rfind("HTTP/1.1 200 OK\r\nServer: emoe\r\nDate: ", 0), 0u) << s;
  EXPECT_NE(s.find("\r\nContent-Type: application/json\r\nContent-Length: 12\r\n"),
            std::string::npos);
  EXPECT_EQ(s.find("Connection"), std::string::npos);
  EXPECT_EQ(s.substr(s.size() - 4), "\r\n\r\n");
  h = {200, "text/event-stream", {{"X-A", "b"}}, -1, 11, true};
  s = FormatResponseHead(h);
  EXPECT_NE(s.find("Transfer-Encoding: chunked\r\n"), std::string::npos);
  EXPECT_NE(s.find("Cache-Control: no-cache\r\n"), std::string::npos);
  EXPECT_NE(s.find("X-A: b\r\n"), std::string::npos);
  h = {200, "text/event-stream", {{"Cache-Control", "no-store"}}, -1, 10, false};
  s = FormatResponseHead(h);
  EXPECT_EQ(s.find("Transfer-Encoding"), std::string::npos) << "HTTP/1.0 has no chunks";
  EXPECT_EQ(s.find("no-cache"), std::string::npos);
  EXPECT_NE(s.find("Cache-Control: no-store\r\n"), std::string::npos);
  EXPECT_NE(s.find("Connection: close\r\n"), std::string::npos);
  h = {204, "", {}, 0, 10, true};
  s = FormatResponseHead(h);
  EXPECT_EQ(s.rfind("HTTP/1.1 204 No Content\r\n", 0), 0u);
  EXPECT_EQ(s.find("Content-Length"), std::string::npos);
  EXPECT_NE(s.find("Connection: keep-alive\r\n"), std::string::npos);
  EXPECT_EQ(ChunkSizeLine(255), "ff\r\n");
  EXPECT_TRUE(HeadersSayClose({{"connection", "Close"}}));
  EXPECT_FALSE(HeadersSayClose({{"x", "close"}}));
}

}  // namespace
}  // namespace emoe::server::http_internal
