// SSE framing and stream accounting (serve_sse.h).
#include "bench/serve_sse.h"

#include <algorithm>
#include <nlohmann/json.hpp>

namespace emoe::bench {

void SseParser::EndLine(const std::function<void(const std::string&)>& on_event) {
  if (line_.empty()) {  // a blank line: the event ends
    if (has_data_) on_event(data_);
    data_.clear();
    has_data_ = false;
    return;
  }
  std::string_view l(line_);
  const size_t colon = l.find(':');
  std::string_view field = l.substr(0, colon);
  std::string_view value = colon == std::string_view::npos ? "" : l.substr(colon + 1);
  if (!value.empty() && value[0] == ' ') value.remove_prefix(1);
  if (field == "data") {
    if (has_data_) data_ += '\n';
    data_.append(value);
    has_data_ = true;
  }
  line_.clear();
}

void SseParser::Feed(std::string_view bytes,
                     const std::function<void(const std::string&)>& on_event) {
  size_t i = 0;
  while (i < bytes.size()) {
    if (last_cr_) {  // a \n right after a \r belongs to it
      last_cr_ = false;
      if (bytes[i] == '\n') {
        ++i;
        continue;
      }
    }
    const size_t end = bytes.find_first_of("\r\n", i);
    if (end == std::string_view::npos) {
      line_.append(bytes.substr(i));
      return;
    }
    line_.append(bytes.substr(i, end - i));
    last_cr_ = bytes[end] == '\r';
    EndLine(on_event);
    i = end + 1;
  }
}

void StreamStats::OnEvent(const std::string& data, double now_s) {
  ++events;
  if (first_content_s >= 0) max_gap_s = std::max(max_gap_s, now_s - last_event_s);
  last_event_s = now_s;
  if (!error.empty()) return;
  if (done) {
    error = "data after [DONE]";
    return;
  }
  if (data == "[DONE]") {
    done = true;
    return;
  }
  const nlohmann::json j = nlohmann::json::parse(data, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    error = "an event is not a JSON object: " + data.substr(0, 120);
    return;
  }
  if (auto e = j.find("error"); e != j.end() && !e->is_null()) {
    const auto m = e->is_object() ? e->find("message") : e->end();
    error = "error chunk: " +
            (m != e->end() && m->is_string() ? m->get<std::string>() : e->dump().substr(0, 200));
    return;
  }
  if (auto u = j.find("usage"); u != j.end() && u->is_object()) {
    const auto c = u->find("completion_tokens"), p = u->find("prompt_tokens");
    if (c != u->end() && c->is_number_integer()) completion_tokens = c->get<int64_t>();
    if (p != u->end() && p->is_number_integer()) prompt_tokens = p->get<int64_t>();
  }
  const auto choices = j.find("choices");
  if (choices == j.end() || !choices->is_array()) {
    error = "a chunk without a \"choices\" list: " + data.substr(0, 120);
    return;
  }
  if (choices->empty()) return;  // the usage chunk
  const nlohmann::json& choice = (*choices)[0];
  if (!choice.is_object()) {
    error = "a choice is not an object";
    return;
  }
  const auto t = choice.find("text");
  const auto f = choice.find("finish_reason");
  const std::string piece = t != choice.end() && t->is_string() ? t->get<std::string>() : "";
  const bool finishes = f != choice.end() && f->is_string();
  text += piece;
  if (finishes) finish_reason = f->get<std::string>();
  if (!piece.empty() || !finishes) {
    ++content_chunks;
    if (first_content_s < 0) first_content_s = now_s;
  }
}

std::string StreamStats::Failure(int64_t expected_tokens) const {
  if (!error.empty()) return error;
  if (!done) return "the stream ended without data: [DONE]";
  if (completion_tokens < 0) return "no usage chunk (stream_options.include_usage)";
  if (completion_tokens != expected_tokens) {
    return "usage.completion_tokens " + std::to_string(completion_tokens) + " != max_tokens " +
           std::to_string(expected_tokens);
  }
  if (finish_reason != "length") {
    return "finish_reason '" + finish_reason + "', not 'length' (ignore_eos was asked)";
  }
  if (first_content_s < 0) return "no content chunk";
  return "";
}

}  // namespace emoe::bench
