// One request's output (service.h): its tokens decoded into text pieces (tools::TextStream),
// stop strings caught across pieces (tokenizer::StopStrings), the pieces sent as SSE chunks or
// gathered into a whole answer, and the response's end: the finish chunk, usage and [DONE], or
// an error chunk and [DONE] (a stream), or the answer (whole).
//
// Finish reasons: the engine's "stop" (a stop token) and "length" as they are, "context" (the
// model's or the KV store's end) as "length", as vLLM reports both; a stop string ends the
// response "stop" at once (the request is then cancelled in the engine, whose "abort" is not
// shown). "abort" otherwise means the client went away: nothing can be answered; it counts in
// request_success_total{finished_reason="abort"} as in vLLM.
//
// REQUIRES (every function here): the Pending's mutex is held (asserted for the analysis).
#include <algorithm>

#include "server/service.h"
#include "service_internal.h"
#include "slo_tracker.h"

namespace emoe::server {
namespace {

bool StartsWith(const std::string& s, const char* prefix) { return s.rfind(prefix, 0) == 0; }

}  // namespace

void OpenAiService::AddToken(Pending& p, const engine::TokenEvent& e, double step_start_s) {
  p.mu.AssertHeld();
  const bool first = p.generated == 0;
  ++p.generated;
  if (first) {
    // Queue time: arrival -> the start of the step that prefilled it.
    const double scheduled = std::min(e.t, std::max(p.arrival_s, step_start_s));
    metrics_->FirstToken(e.t - p.arrival_s, scheduled - p.arrival_s, p.prompt_tokens);
    p.first_token_s = e.t;
    slo_->FirstToken(p.id, e.t);
  } else {
    metrics_->Token(e.t - p.last_token_s);
  }
  p.last_token_s = e.t;
  const bool own_stop =
      !p.own_stop_ids.empty() && p.generated >= p.min_tokens &&
      std::find(p.own_stop_ids.begin(), p.own_stop_ids.end(), e.token) != p.own_stop_ids.end();
  Emit(p, p.text->Add(e.token));  // a special stop token (the EOS) has no text
  if (!own_stop || p.ended) return;
  // A stop token after min_tokens: the end the engine would have made (finish "stop").
  Emit(p, p.text->Finish());
  if (p.ended) return;
  Send(p, p.stops.Finish());
  EndResponse(p, "stop", p.generated);
  coordinator_->Cancel(p.id);
}

void OpenAiService::Emit(Pending& p, const std::string& piece) {
  p.mu.AssertHeld();
  if (piece.empty() || p.ended) return;
  // vLLM checks stop strings once min_tokens are out.
  if (p.generated < p.min_tokens) return Send(p, piece);
  std::string out = p.stops.Feed(piece);
  if (!p.stops.stopped()) return Send(p, out);
  if (p.include_stop_str) out += p.stops.matched();
  Send(p, out);
  EndResponse(p, "stop", p.generated);
  coordinator_->Cancel(p.id);  // nobody wants its further tokens: its KV is freed now
}

void OpenAiService::Send(Pending& p, const std::string& text) {
  p.mu.AssertHeld();
  if (text.empty()) return;
  if (!p.stream) {
    p.whole += text;
    return;
  }
  p.ex->Write(SseEvent(DeltaChunkJson(p.rid, p.chat, text, "", p.include_usage)));
}

void OpenAiService::EndResponse(Pending& p, const std::string& finish_reason,
                                int64_t completion_tokens) {
  p.mu.AssertHeld();
  // Counted before the answer leaves: a client that reads /metrics next sees it.
  const double now = coordinator_->Now();
  metrics_->Finished(finish_reason, now - p.arrival_s, p.prompt_tokens, completion_tokens);
  slo_->Finished(p.id, now, /*ok=*/completion_tokens > 0, p.arrival_s, p.first_token_s,
                 p.last_token_s, completion_tokens);
  const Usage usage{p.prompt_tokens, completion_tokens};
  if (p.stream) {
    p.ex->Write(SseEvent(DeltaChunkJson(p.rid, p.chat, "", finish_reason, p.include_usage)));
    if (p.include_usage) p.ex->Write(SseEvent(UsageChunkJson(p.rid, p.chat, usage)));
    p.ex->Write(SseDone());
    p.ex->End();
  } else {
    Reply(p.ex, 200, CompletionJson(p.rid, p.chat, p.whole, finish_reason, usage));
  }
  p.ended = true;
}

void OpenAiService::EndWithError(Pending& p, const ApiError& e, const std::string& reason) {
  p.mu.AssertHeld();
  slo_->Finished(p.id, coordinator_->Now(), /*ok=*/false, p.arrival_s, 0, 0, 0);
  if (p.stream) {
    // The stream has said 200 already: the error is its last data chunk, then [DONE].
    metrics_->Rejected(reason);
    p.ex->Write(SseEvent(e.ToJson()));
    p.ex->Write(SseDone());
    p.ex->End();
  } else {
    ReplyError(p.ex, e, reason);
  }
  p.ended = true;
}

void OpenAiService::Finish(Pending& p, const engine::RequestResult& r) {
  p.mu.AssertHeld();
  if (r.finish_reason == "abort") {
    metrics_->Finished("abort", coordinator_->Now() - p.arrival_s, p.prompt_tokens,
                       static_cast<int64_t>(r.output.size()));
    if (p.client_gone || p.ex->disconnected()) {
      slo_->Forget(p.id);
      p.ended = true;  // cancelled because the client went away: no one to tell
      return;
    }
    ApiError e;  // cancelled by someone else: say so
    e.status = 500;
    e.type = "server_error";
    e.message = "the request was cancelled in the engine";
    return EndWithError(p, e, "engine_failed");
  }
  if (!r.served()) {
    ApiError e;
    if (StartsWith(r.finish_reason, "rejected")) {
      e = BadRequest(r.finish_reason);
    } else {
      const bool down = r.finish_reason.find("not serving") != std::string::npos;
      e.status = down ? 503 : 500;
      e.type = "server_error";
      e.message = r.finish_reason;
    }
    return EndWithError(p, e, e.status == 400 ? "engine_rejected" : "engine_failed");
  }
  Emit(p, p.text->Finish());  // the decoder's tail, through the stop strings
  if (p.ended) return;
  Send(p, p.stops.Finish());
  EndResponse(p, r.finish_reason == "stop" ? "stop" : "length",
              static_cast<int64_t>(r.output.size()));
}

}  // namespace emoe::server
