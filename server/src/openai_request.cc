// server/src/openai_request.cc: the request bodies of /v1/completions, /v1/chat/completions and
// /scale_elastic_ep read field by field (openai_api.h). Each field has one reader; the readers
// run in the order of vLLM's protocol classes, and the first fault is the answer. Fields vLLM
// knows but this server cannot honour are refused in openai_unsupported.cc.
#include <cstdint>
#include <limits>
#include <string>
#include <utility>

#include "openai_json.h"
#include "openai_unsupported.h"
#include "server/openai_api.h"

namespace emoe::server {
namespace {

using internal::Fields;
using internal::Json;
using internal::MaybeError;
using internal::Shown;

constexpr int64_t kMaxTokenId = std::numeric_limits<int32_t>::max();

ApiError Required(const std::string& name, const std::string& what) {
  return BadRequest("'" + name + "' is required (" + what + ")", name);
}

// The ids of `arr` (a JSON array) into *out; `name` names the array ("prompt", "prompt[0]").
MaybeError ReadIds(const Json& arr, const std::string& name, std::vector<int32_t>* out) {
  out->clear();
  out->reserve(arr.size());
  for (size_t i = 0; i < arr.size(); ++i) {
    const std::optional<int64_t> id = internal::IntegerOf(arr[i]);
    if (!id || *id < 0 || *id > kMaxTokenId) {
      const std::string n = name + "[" + std::to_string(i) + "]";
      return BadRequest("'" + n + "' must be a token id (an integer between 0 and " +
                            std::to_string(kMaxTokenId) + "), got " + Shown(arr[i]),
                        n);
    }
    out->push_back(static_cast<int32_t>(*id));
  }
  return std::nullopt;
}

MaybeError ReadModel(const Fields& f, CompletionRequest* r) {
  const Json* m = f.Get("model");
  if (m == nullptr) return Required("model", "the served model's name, as GET /v1/models lists");
  if (!m->is_string() || m->get_ref<const std::string&>().empty()) {
    return f.Wrong("model", "a non-empty string", *m);
  }
  r->model = m->get<std::string>();
  return std::nullopt;
}

// "prompt": a string, a list of token ids, or a list of one of either (vLLM's batch forms).
MaybeError ReadPrompt(const Fields& f, CompletionRequest* r) {
  const Json* p = f.Get("prompt");
  const std::string kForms = "a string or a list of token ids";
  if (p == nullptr) return Required("prompt", kForms);
  if (p->is_string()) {
    if (p->get_ref<const std::string&>().empty()) return f.Wrong("prompt", "non-empty", *p);
    r->prompt_text = p->get<std::string>();
    return std::nullopt;
  }
  if (!p->is_array()) return f.Wrong("prompt", kForms, *p);
  if (p->empty()) return f.Wrong("prompt", "non-empty", *p);
  const Json& first = (*p)[0];
  if (!first.is_string() && !first.is_array()) {
    r->prompt_ids.emplace();
    return ReadIds(*p, "prompt", &*r->prompt_ids);
  }
  if (p->size() > 1) {
    return BadRequest("'prompt' holds " + std::to_string(p->size()) +
                          " prompts; this server takes one prompt per request",
                      "prompt");
  }
  if (first.is_string()) {
    if (first.get_ref<const std::string&>().empty()) {
      return BadRequest("'prompt[0]' must be non-empty, got \"\"", "prompt[0]");
    }
    r->prompt_text = first.get<std::string>();
    return std::nullopt;
  }
  if (first.empty()) return BadRequest("'prompt[0]' must be non-empty, got []", "prompt[0]");
  r->prompt_ids.emplace();
  return ReadIds(first, "prompt[0]", &*r->prompt_ids);
}

bool IsRole(const std::string& role) {
  return role == "system" || role == "user" || role == "assistant" || role == "tool";
}

// One message's "content": a string, or text parts joined with "\n" (vLLM joins them so).
MaybeError ReadContent(const Fields& mf, const std::string& role, std::string* out) {
  const Json* c = mf.Get("content");
  if (c == nullptr) {
    if (role == "assistant") return std::nullopt;  // OpenAI: content is optional there
    return Required(mf.Name("content"), "a " + role + " message has content");
  }
  if (c->is_string()) {
    *out = c->get<std::string>();
    return std::nullopt;
  }
  if (!c->is_array()) return mf.Wrong("content", "a string or a list of text parts", *c);
  if (c->size() > kMaxContentParts) {
    return BadRequest("'" + mf.Name("content") + "' has " + std::to_string(c->size()) +
                          " parts; at most " + std::to_string(kMaxContentParts) + " are accepted",
                      mf.Name("content"));
  }
  for (size_t i = 0; i < c->size(); ++i) {
    const std::string name = mf.Name("content") + "[" + std::to_string(i) + "]";
    const Json& part = (*c)[i];
    if (!part.is_object()) {
      return BadRequest(
          "'" + name + "' must be a part {\"type\": \"text\", \"text\": ...}, got " + Shown(part),
          name);
    }
    const Fields pf(part, name + ".");
    const Json* type = pf.Get("type");
    if (type == nullptr) return Required(pf.Name("type"), "\"text\"");
    if (*type != "text") return pf.Wrong("type", "\"text\" (this server reads text only)", *type);
    const Json* text = pf.Get("text");
    if (text == nullptr) return Required(pf.Name("text"), "a string");
    if (!text->is_string()) return pf.Wrong("text", "a string", *text);
    if (i > 0) *out += "\n";
    *out += text->get_ref<const std::string&>();
  }
  return std::nullopt;
}

MaybeError ReadMessage(const Json& v, const std::string& name, tokenizer::ChatMessage* out) {
  if (!v.is_object()) {
    return BadRequest("'" + name + "' must be a message {\"role\", \"content\"}, got " + Shown(v),
                      name);
  }
  const Fields mf(v, name + ".");
  const Json* role = mf.Get("role");
  const std::string kRoles = "one of \"system\", \"user\", \"assistant\", \"tool\"";
  if (role == nullptr) return Required(mf.Name("role"), kRoles);
  if (!role->is_string() || !IsRole(role->get_ref<const std::string&>())) {
    return mf.Wrong("role", kRoles, *role);
  }
  out->role = role->get<std::string>();
  SERVER_RETURN_IF_ERROR(ReadContent(mf, out->role, &out->content));
  for (const char* key : {"tool_calls", "function_call"}) {
    const Json* t = mf.Get(key);
    if (t != nullptr && !(t->is_array() && t->empty())) {
      return BadRequest(
          "'" + mf.Name(key) + "' is not supported (tool calling is not), got " + Shown(*t),
          mf.Name(key));
    }
  }
  return std::nullopt;
}

MaybeError ReadMessages(const Fields& f, CompletionRequest* r) {
  const Json* m = f.Get("messages");
  if (m == nullptr) return Required("messages", "a list of {\"role\", \"content\"}");
  if (!m->is_array()) return f.Wrong("messages", "a list of {\"role\", \"content\"}", *m);
  if (m->empty()) return f.Wrong("messages", "non-empty", *m);
  if (m->size() > kMaxMessages) {
    return BadRequest("'messages' has " + std::to_string(m->size()) + " messages; at most " +
                          std::to_string(kMaxMessages) + " are accepted",
                      "messages");
  }
  r->messages.resize(m->size());
  for (size_t i = 0; i < m->size(); ++i) {
    SERVER_RETURN_IF_ERROR(
        ReadMessage((*m)[i], "messages[" + std::to_string(i) + "]", &r->messages[i]));
  }
  return std::nullopt;
}

// max_tokens (and chat's max_completion_tokens), min_tokens.
MaybeError ReadLengths(const Fields& f, CompletionRequest* r) {
  if (!r->chat && !f.Present("max_tokens")) r->max_tokens = 16;  // vLLM's default
  int64_t n = 0;
  for (const char* key : {"max_tokens", "max_completion_tokens"}) {
    if (!r->chat && std::string_view(key) != "max_tokens") continue;
    if (f.Get(key) == nullptr) continue;
    SERVER_RETURN_IF_ERROR(f.Int(key, 1, kMaxTokensLimit, &n));
    r->max_tokens = n;  // max_completion_tokens, read last, wins
  }
  SERVER_RETURN_IF_ERROR(f.Int("min_tokens", 0, kMaxTokensLimit, &r->min_tokens));
  if (r->max_tokens && r->min_tokens > *r->max_tokens) {
    return BadRequest("'min_tokens' (" + std::to_string(r->min_tokens) +
                          ") must not be greater than the maximum (" +
                          std::to_string(*r->max_tokens) + ")",
                      "min_tokens");
  }
  return std::nullopt;
}

MaybeError ReadSampling(const Fields& f, CompletionRequest* r) {
  SERVER_RETURN_IF_ERROR(f.Number("temperature", 0, 2, false, &r->temperature));
  SERVER_RETURN_IF_ERROR(f.Number("top_p", 0, 1, true, &r->top_p));
  if (f.Get("seed") != nullptr) {
    int64_t seed = 0;
    SERVER_RETURN_IF_ERROR(f.Int("seed", std::numeric_limits<int64_t>::min(),
                                 std::numeric_limits<int64_t>::max(), &seed));
    r->seed = static_cast<uint64_t>(seed);
  }
  return std::nullopt;
}

MaybeError ReadStop(const Fields& f, CompletionRequest* r) {
  const Json* s = f.Get("stop");
  if (s == nullptr) return std::nullopt;
  const std::string kForms = "a string or a list of at most " + std::to_string(kMaxStops) +
                             " strings of 1 to " + std::to_string(kMaxStopBytes) + " bytes";
  if (!s->is_string() && !s->is_array()) return f.Wrong("stop", kForms, *s);
  if (s->is_array() && s->size() > kMaxStops) return f.Wrong("stop", kForms, *s);
  const Json list = s->is_string() ? Json::array({*s}) : *s;
  for (size_t i = 0; i < list.size(); ++i) {
    const std::string name = s->is_string() ? "stop" : "stop[" + std::to_string(i) + "]";
    const Json& v = list[i];
    if (!v.is_string() || v.get_ref<const std::string&>().empty() ||
        v.get_ref<const std::string&>().size() > kMaxStopBytes) {
      return BadRequest("'" + name + "' must be a string of 1 to " + std::to_string(kMaxStopBytes) +
                            " bytes, got " + Shown(v),
                        name);
    }
    r->stop.push_back(v.get<std::string>());
  }
  return std::nullopt;
}

MaybeError ReadStops(const Fields& f, CompletionRequest* r) {
  SERVER_RETURN_IF_ERROR(ReadStop(f, r));
  if (const Json* ids = f.Get("stop_token_ids")) {
    if (!ids->is_array() || ids->size() > kMaxStopTokenIds) {
      return f.Wrong("stop_token_ids",
                     "a list of at most " + std::to_string(kMaxStopTokenIds) + " token ids", *ids);
    }
    SERVER_RETURN_IF_ERROR(ReadIds(*ids, "stop_token_ids", &r->stop_token_ids));
  }
  SERVER_RETURN_IF_ERROR(f.Bool("ignore_eos", &r->ignore_eos));
  SERVER_RETURN_IF_ERROR(f.Bool("skip_special_tokens", &r->skip_special_tokens));
  return f.Bool("include_stop_str_in_output", &r->include_stop_str_in_output);
}

// stream, stream_options (vLLM: only with stream; include_usage true unless said otherwise).
MaybeError ReadStream(const Fields& f, CompletionRequest* r) {
  SERVER_RETURN_IF_ERROR(f.Bool("stream", &r->stream));
  const Json* so = f.Get("stream_options");
  if (so == nullptr) return std::nullopt;
  if (!so->is_object()) return f.Wrong("stream_options", "an object {\"include_usage\"}", *so);
  if (!r->stream && !so->empty()) {
    return BadRequest("'stream_options' can only be given with \"stream\": true", "stream_options");
  }
  const Fields sf(*so, "stream_options.");
  bool include = true;
  if (sf.Present("include_usage")) {
    include = false;  // null
    SERVER_RETURN_IF_ERROR(sf.Bool("include_usage", &include));
  }
  r->include_usage = r->stream && include;
  bool continuous = false;
  SERVER_RETURN_IF_ERROR(sf.Bool("continuous_usage_stats", &continuous));
  if (continuous) {
    return BadRequest(
        "'stream_options.continuous_usage_stats' is not supported (usage comes once, after the "
        "last choice chunk), got true",
        "stream_options.continuous_usage_stats");
  }
  return std::nullopt;
}

MaybeError ReadChatExtras(const Fields& f, CompletionRequest* r) {
  SERVER_RETURN_IF_ERROR(f.Bool("add_generation_prompt", &r->add_generation_prompt));
  const Json* kw = f.Get("chat_template_kwargs");
  if (kw == nullptr) return std::nullopt;
  if (!kw->is_object()) return f.Wrong("chat_template_kwargs", "an object", *kw);
  // Other keys are variables the templates do not read, as a Jinja template ignores them.
  return Fields(*kw, "chat_template_kwargs.").Bool("enable_thinking", &r->enable_thinking);
}

}  // namespace

ApiError BadRequest(std::string message, std::string param) {
  ApiError e;
  e.status = 400;
  e.message = std::move(message);
  e.param = std::move(param);
  return e;
}

std::variant<CompletionRequest, ApiError> ParseCompletionRequest(std::string_view body, bool chat) {
  std::variant<Json, ApiError> parsed = internal::ParseBody(body);
  if (ApiError* e = std::get_if<ApiError>(&parsed)) return std::move(*e);
  const Fields f(std::get<Json>(parsed), "");
  CompletionRequest r;
  r.chat = chat;
  SERVER_RETURN_IF_ERROR(ReadModel(f, &r));
  SERVER_RETURN_IF_ERROR(chat ? ReadMessages(f, &r) : ReadPrompt(f, &r));
  SERVER_RETURN_IF_ERROR(ReadLengths(f, &r));
  SERVER_RETURN_IF_ERROR(ReadSampling(f, &r));
  SERVER_RETURN_IF_ERROR(ReadStops(f, &r));
  SERVER_RETURN_IF_ERROR(ReadStream(f, &r));
  if (chat) SERVER_RETURN_IF_ERROR(ReadChatExtras(f, &r));
  SERVER_RETURN_IF_ERROR(f.String("user", &r.user));
  SERVER_RETURN_IF_ERROR(internal::CheckUnsupported(f, chat));
  return r;
}

std::variant<ScaleRequest, ApiError> ParseScaleRequest(std::string_view body) {
  std::variant<Json, ApiError> parsed = internal::ParseBody(body);
  if (ApiError* e = std::get_if<ApiError>(&parsed)) return std::move(*e);
  const Fields f(std::get<Json>(parsed), "");
  const bool vllm = f.Get("new_data_parallel_size") != nullptr;
  const bool sglang = f.Get("new_ep_size") != nullptr;
  if (vllm && sglang) {
    return BadRequest(
        "give one of 'new_data_parallel_size' (vLLM) and 'new_ep_size' (SGLang), "
        "not both",
        "new_ep_size");
  }
  if (!vllm && !sglang) {
    return BadRequest(
        "'new_data_parallel_size' (vLLM) or 'new_ep_size' (SGLang) is required: "
        "the number of devices to serve on",
        "new_data_parallel_size");
  }
  ScaleRequest r;
  SERVER_RETURN_IF_ERROR(
      f.Int(vllm ? "new_data_parallel_size" : "new_ep_size", 1, kMaxScaleTarget, &r.target));
  SERVER_RETURN_IF_ERROR(f.String("method", &r.method));
  if (r.method.empty() || r.method.size() > 64) {
    return f.Wrong("method", "a scale method's name (1 to 64 bytes)", Json(r.method));
  }
  if (const Json* d = f.Get("drain_timeout"); d != nullptr && !(d->is_number() && *d >= 0)) {
    return f.Wrong("drain_timeout", "a number of seconds >= 0", *d);
  }
  return r;
}

}  // namespace emoe::server
