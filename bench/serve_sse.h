// bench/serve_sse.h: one streamed completion as serve_bench sees it: the Server-Sent Events
// framing (bytes in any pieces -> events) and the accounting of an OpenAI text_completion stream
// (first token, chunk gaps, finish reason, usage, [DONE], error chunks) into the request's
// verdict. No I/O: the client feeds it bytes with their arrival times, so that it can be tested
// on recorded streams.
//
// Thread safety: none (one stream, one thread).
#ifndef BENCH_SERVE_SSE_H_
#define BENCH_SERVE_SSE_H_

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

namespace emoe::bench {

// SSE framing (the WHATWG event-stream rules a client needs): lines end with \n, \r\n or \r;
// a blank line ends an event; "data:" lines (one optional space after the colon) are joined
// with \n; comments (":...") and other fields are ignored.
class SseParser {
 public:
  // Calls on_event(data) for each complete event with data, in order.
  void Feed(std::string_view bytes, const std::function<void(const std::string&)>& on_event);
  // Bytes of an event not yet complete (a stream that ends with some was cut mid-event).
  bool pending() const { return !line_.empty() || has_data_; }

 private:
  void EndLine(const std::function<void(const std::string&)>& on_event);
  std::string line_;
  std::string data_;
  bool has_data_ = false;
  bool last_cr_ = false;  // the previous byte was \r (a following \n belongs to it)
};

// The accounting of one stream. Times are seconds on the caller's clock.
struct StreamStats {
  int64_t events = 0;           // data events, [DONE] included
  int64_t content_chunks = 0;   // chunks with a choice carrying text or no finish_reason
  double first_content_s = -1;  // arrival of the first content chunk (-1: none)
  double last_event_s = -1;
  double max_gap_s = 0;       // the largest gap between two events after the first content chunk
  std::string text;           // the text received, concatenated
  std::string finish_reason;  // "" until a choice carries one
  int64_t completion_tokens = -1;  // usage.completion_tokens (-1: no usage seen)
  int64_t prompt_tokens = -1;
  bool done = false;  // data: [DONE] arrived
  std::string error;  // the first fault seen ("" when none)

  // Accounts one event's data arriving at now_s.
  void OnEvent(const std::string& data, double now_s);
  // The verdict once the stream has ended whole: "" when the request succeeded, else why it
  // failed: the first fault seen (an event not a JSON object, an error chunk, a chunk without
  // "choices", data after [DONE]), then no [DONE], no usage, usage.completion_tokens !=
  // expected_tokens, a finish_reason other than "length" (ignore_eos was asked), no content.
  // A cut connection is the client's to report (it knows the transport error).
  std::string Failure(int64_t expected_tokens) const;
};

}  // namespace emoe::bench

#endif  // BENCH_SERVE_SSE_H_
