// The completions (service.h): a request from its body to its admission, the observer's side
// of serving, a client that goes away, and the end of what is left at a stop.
//
// Admission, in order: the server is not stopping (else 503), the body parses
// (openai_api.h; 400 naming the field), the model is the one served (404 as vLLM), the prompt
// encodes and fits (400 in vLLM's words), the bound max_num_seqs + max_queue is not reached
// (429 with Retry-After), the engine takes it (Coordinator::Submit; 400, or 503 when it no
// longer serves). From then on the response is the serving thread's to write.
#include <algorithm>
#include <cinttypes>
#include <climits>
#include <cmath>
#include <cstdio>

#include "server/service.h"
#include "service_internal.h"
#include "slo_tracker.h"

namespace emoe::server {
namespace {

ApiError Unavailable(const std::string& message) {
  ApiError e;
  e.status = 503;
  e.type = "server_error";
  e.message = message;
  return e;
}

// SplitMix64: a request's default seed and response id from the run's nonce and its id.
uint64_t Mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

std::string ResponseIdText(bool chat, uint64_t nonce, int64_t id) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%s%016" PRIx64 "%08" PRIx64, chat ? "chatcmpl-" : "cmpl-",
                Mix(nonce ^ static_cast<uint64_t>(id)), static_cast<uint64_t>(id));
  return buf;
}

}  // namespace

std::variant<engine::Request, OpenAiService::Refusal> OpenAiService::MakeRequest(
    const CompletionRequest& r, double arrival_s, int64_t id) const {
  engine::Request q;
  q.id = id;
  q.arrival_s = arrival_s;
  const char* field = r.chat ? "messages" : "prompt";
  if (r.chat) {
    tokenizer::ChatOptions co;
    co.add_generation_prompt = r.add_generation_prompt;
    co.enable_thinking = r.enable_thinking;
    auto ids = text_->EncodeChat(r.messages, co);
    if (!ids.ok()) return Refusal{BadRequest(ids.status().message(), field), "invalid"};
    q.prompt = std::move(*ids);
  } else if (r.prompt_ids.has_value()) {
    q.prompt = *r.prompt_ids;
  } else {
    q.prompt = text_->Encode(r.prompt_text.value_or(""));
  }
  const int64_t n = static_cast<int64_t>(q.prompt.size());
  const std::string len = std::to_string(o_.max_model_len);
  if (n == 0) return Refusal{BadRequest("the prompt is empty: it has no tokens", field), "invalid"};
  // vLLM's words for a prompt or a completion too long for the context.
  if (n >= o_.max_model_len) {
    return Refusal{BadRequest("This model's maximum context length is " + len +
                                  " tokens. However, your request has " + std::to_string(n) +
                                  " input tokens. Please reduce the length of the input messages.",
                              field),
                   "too_long"};
  }
  if (r.max_tokens.has_value() && n + *r.max_tokens > o_.max_model_len) {
    const std::string m = std::to_string(*r.max_tokens);
    return Refusal{
        BadRequest("'max_tokens' or 'max_completion_tokens' is too large: " + m +
                       ". This model's maximum context length is " + len +
                       " tokens and your request has " + std::to_string(n) + " input tokens (" + m +
                       " > " + len + " - " + std::to_string(n) + ").",
                   "max_tokens"),
        "too_long"};
  }
  if (n > o_.max_prompt_tokens) {
    return Refusal{
        BadRequest("the prompt has " + std::to_string(n) + " tokens; this server " +
                       "serves prompts of at most " + std::to_string(o_.max_prompt_tokens) +
                       " (--max_tokens_per_step minus one: it prefills a prompt in "
                       "one step without --enable_chunked_prefill)",
                   field),
        "too_long"};
  }
  q.max_new_tokens =
      static_cast<int>(std::min<int64_t>(r.max_tokens.value_or(o_.max_model_len - n), INT_MAX));
  if (q.max_new_tokens < 1) {
    return Refusal{BadRequest("'max_tokens' must be at least 1", "max_tokens"), "invalid"};
  }
  q.temperature = static_cast<float>(r.temperature);
  q.top_p = static_cast<float>(r.top_p);
  q.seed = r.seed.value_or(Mix(nonce_ + static_cast<uint64_t>(id)));
  if (!r.ignore_eos) q.stop_token_ids = text_->StopTokenIds();
  for (int32_t t : r.stop_token_ids) {
    if (std::find(q.stop_token_ids.begin(), q.stop_token_ids.end(), t) == q.stop_token_ids.end()) {
      q.stop_token_ids.push_back(t);
    }
  }
  return q;
}

void OpenAiService::HandleCompletion(const ExchangePtr& ex, bool chat) {
  const double arrival_s = coordinator_->Now();
  if (draining_) return ReplyError(ex, Unavailable("the server is shutting down"), "shutting_down");
  auto parsed = ParseCompletionRequest(ex->request().body, chat);
  if (const ApiError* e = std::get_if<ApiError>(&parsed)) return ReplyError(ex, *e, "invalid");
  const CompletionRequest& r = std::get<CompletionRequest>(parsed);
  if (r.model != o_.served_model_name) {
    ApiError e;
    e.status = 404;
    e.type = "NotFoundError";
    e.message = "The model `" + r.model + "` does not exist.";
    e.param = "model";
    e.code = "404";
    return ReplyError(ex, e, "model_not_found");
  }
  auto q = MakeRequest(r, arrival_s, next_id_++);
  if (const Refusal* no = std::get_if<Refusal>(&q)) return ReplyError(ex, no->error, no->reason);
  Admit(ex, r, std::move(std::get<engine::Request>(q)));
}

void OpenAiService::Admit(const ExchangePtr& ex, const CompletionRequest& r, engine::Request req) {
  const int64_t id = req.id;
  auto p = std::make_shared<Pending>(id, ex, r.stop);
  p->rid.id = ResponseIdText(r.chat, nonce_, id);
  p->rid.created = std::chrono::duration_cast<std::chrono::seconds>(
                       std::chrono::system_clock::now().time_since_epoch())
                       .count();
  p->rid.model = o_.served_model_name;
  p->chat = r.chat;
  p->stream = r.stream;
  p->include_usage = r.stream && r.include_usage;
  p->include_stop_str = r.include_stop_str_in_output;
  p->prompt_tokens = static_cast<int64_t>(req.prompt.size());
  p->min_tokens = r.min_tokens;
  p->arrival_s = req.arrival_s;
  if (r.min_tokens > 0) {  // the stop tokens are checked here, once min_tokens are out
    p->own_stop_ids = std::move(req.stop_token_ids);
    req.stop_token_ids.clear();
  }
  {
    // Held until the stream has started: the serving thread's first chunk waits for it (the
    // request's first step is milliseconds away; this takes microseconds).
    vmm::MutexLock pl(&p->mu);
    p->text = text_->NewStream(req.prompt, r.skip_special_tokens);
    const size_t limit = static_cast<size_t>(o_.max_num_seqs) + static_cast<size_t>(o_.max_queue);
    size_t in_flight = 0;
    bool closed = false;
    {
      vmm::MutexLock l(&mu_);
      in_flight = pending_.size();
      closed = admission_closed_;  // Stop has ended what was in flight: nothing more comes in
      if (!closed && in_flight < limit) pending_[id] = p;
    }
    if (closed) {
      p->ended = true;
      return ReplyError(ex, Unavailable("the server is shutting down"), "shutting_down");
    }
    if (in_flight >= limit) {
      p->ended = true;
      ApiError e;
      e.status = 429;
      e.type = "requests";
      e.code = "rate_limit_exceeded";
      const int retry_s = static_cast<int>(std::ceil(o_.retry_after_s));
      e.message = "The server is at capacity: " + std::to_string(in_flight) +
                  " requests in flight (max_num_seqs " + std::to_string(o_.max_num_seqs) +
                  " + max_queue " + std::to_string(o_.max_queue) + "). Retry after " +
                  std::to_string(retry_s) + " s.";
      return ReplyError(ex, e, "queue_full", {{"Retry-After", std::to_string(retry_s)}});
    }
    if (Status s = coordinator_->Submit(std::move(req)); !s.ok()) {
      Take(id);
      p->ended = true;
      const bool down = s.code() == vmm::StatusCode::kFailedPrecondition;
      return ReplyError(ex, down ? Unavailable(s.message()) : BadRequest(s.message()),
                        down ? "not_serving" : "engine_rejected");
    }
    slo_->Admitted(id, p->arrival_s, p->prompt_tokens);
    if (p->stream) {
      StartSse(ex);
      if (p->chat) ex->Write(SseEvent(ChatRoleChunkJson(p->rid, p->include_usage)));
    }
  }
  // After Submit: a client already gone is told at once, and its request is cancelled.
  ex->OnDisconnect([this, id] { OnClientGone(id); });
}

void OpenAiService::OnClientGone(int64_t id) {
  vmm::MutexLock l(&mu_);
  auto it = pending_.find(id);
  if (it == pending_.end()) return;  // answered meanwhile
  it->second->client_gone = true;
  if (!stopped_) coordinator_->Cancel(id);  // its KV is freed before the next step
}

std::shared_ptr<Pending> OpenAiService::Take(int64_t id) {
  vmm::MutexLock l(&mu_);
  auto it = pending_.find(id);
  if (it == pending_.end()) return nullptr;
  std::shared_ptr<Pending> p = std::move(it->second);
  pending_.erase(it);
  if (pending_.empty()) idle_cv_.SignalAll();
  return p;
}

void OpenAiService::EndInFlight(const std::string& why) {
  std::vector<std::shared_ptr<Pending>> rest;
  {
    vmm::MutexLock l(&mu_);
    admission_closed_ = true;
    for (auto& entry : pending_) rest.push_back(std::move(entry.second));
    pending_.clear();
    idle_cv_.SignalAll();
  }
  for (const auto& p : rest) {
    {
      vmm::MutexLock pl(&p->mu);
      if (!p->ended) EndWithError(*p, Unavailable(why), "shutting_down");
    }
    coordinator_->Cancel(p->id);
  }
}

void OpenAiService::OnTokens(const std::vector<engine::TokenEvent>& tokens) {
  if (stopped_ || tokens.empty()) return;
  std::vector<std::pair<std::shared_ptr<Pending>, const engine::TokenEvent*>> work;
  {
    vmm::MutexLock l(&mu_);
    for (const engine::TokenEvent& e : tokens) {
      auto it = pending_.find(e.id);
      if (it != pending_.end()) work.emplace_back(it->second, &e);
    }
  }
  const double step_start_s = last_step_t_.load();
  double t = step_start_s;
  for (const auto& [p, e] : work) {
    vmm::MutexLock pl(&p->mu);
    if (!p->ended) AddToken(*p, *e, step_start_s);
  }
  for (const engine::TokenEvent& e : tokens) t = std::max(t, e.t);
  last_step_t_ = t;
  slo_->Generated(t, static_cast<int64_t>(tokens.size()));
}

void OpenAiService::OnFinished(const std::vector<engine::RequestResult>& results) {
  if (stopped_) return;
  for (const engine::RequestResult& r : results) {
    std::shared_ptr<Pending> p = Take(r.id);
    if (p == nullptr) continue;  // answered already (a stop string, the stop)
    vmm::MutexLock pl(&p->mu);
    if (!p->ended) Finish(*p, r);
  }
}

}  // namespace emoe::server
