// tokenizer/streaming.h: text out of a token stream, as a server streams it.
//
// IncrementalDecoder turns generated ids into text pieces the way vLLM's detokenizer does (two
// offsets into the ids): each Add decodes a short window of ids twice, from `prefix` to `read`
// and from `prefix` to the end, and emits the difference when it is longer and does not end in
// an incomplete UTF-8 sequence (U+FFFD); otherwise it waits for more ids. So no piece ever
// holds half a character, and decoders whose output depends on context (SentencePiece's
// leading-space strip, byte fallback across tokens) give the same text as decoding everything
// at once:
//   invariant: concat(Add(id) for id in ids) + Finish() == Decode(prompt +
//   ids)[len(Decode(prompt)):] (with no prompt: == Decode(ids)), tested on every prefix of the
//   oracle corpus. (A prompt whose Decode ends in half a character, U+FFFD, that the generated
//   ids complete: the completed character is emitted, so the pieces are the text after the
//   common prefix of Decode(prompt) and Decode(prompt + ids).)
//
// StopStrings catches stop strings across token boundaries: it holds back the longest tail
// that could still begin a stop string (at most max_stop_len - 1 bytes, never splitting a
// UTF-8 character), as vLLM does when streaming; when a stop string appears, the text before it
// is released and the stream is over (the stop string itself is not included). The stop
// string that starts first in the text wins (at the same start, the shortest), however the text
// is cut into pieces: a stop string found while a longer one that starts before it may still
// complete waits for the next piece (or Finish) to decide. Empty
// stop strings are ignored (one would match before any text), and so are repeats. A piece that
// ends in half a UTF-8 character (IncrementalDecoder never gives one) has that tail held back
// too, so released text never ends inside a character.
//
// Thread safety: one object per request; not for concurrent use.
#ifndef TOKENIZER_STREAMING_H_
#define TOKENIZER_STREAMING_H_

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/tokenizer.h"

namespace emoe::tokenizer {

class IncrementalDecoder {
 public:
  // `prompt` gives the context the first generated ids are decoded in (its text is not
  // emitted). `tokenizer` must outlive the decoder.
  IncrementalDecoder(const Tokenizer& tokenizer, std::span<const int32_t> prompt,
                     bool skip_special_tokens = true);
  // Appends one generated id; returns the text that became complete (often empty).
  std::string Add(int32_t id);
  // The rest at the end of the stream (an incomplete UTF-8 tail as U+FFFD, as Decode gives it).
  std::string Finish();
  // The ids added so far (prompt excluded).
  size_t generated() const;

 private:
  const Tokenizer& tokenizer_;
  bool skip_special_;
  std::vector<int32_t> ids_;  // prompt + generated
  size_t prompt_len_;
  size_t prefix_offset_;
  size_t read_offset_;
};

class StopStrings {
 public:
  explicit StopStrings(std::vector<std::string> stops);
  // Feeds the next complete text piece; returns what may be sent now. After a stop string
  // appears, stopped() is true, the result ends just before it and later calls return "".
  std::string Feed(std::string_view piece);
  // The held-back tail at the end of the stream (empty once stopped).
  std::string Finish();
  bool stopped() const { return stopped_; }
  // The stop string that matched ("" when none did).
  const std::string& matched() const { return matched_; }

 private:
  std::vector<std::string> stops_;
  size_t max_len_ = 0;
  std::string held_;  // text not yet released: may be the start of a stop string
  bool stopped_ = false;
  std::string matched_;
};

}  // namespace emoe::tokenizer

#endif  // TOKENIZER_STREAMING_H_
