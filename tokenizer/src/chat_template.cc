// tokenizer/src/chat_template.cc: the two families' chat templates, as code.
//
// Each renderer follows its Jinja template statement by statement (the template's text is
// quoted in tests/tokenizer/data/chat_golden.json, which holds the strings that template
// renders; chat_template_test.cc holds these functions to them):
//   RenderChatML: Qwen3's tokenizer_config.json "chat_template" without tools (ChatMessage has
//     no tool calls or reasoning_content fields): the leading system message, the index of the
//     last user query (a user turn that is not a wrapped <tool_response>), assistant turns split
//     at </think> into reasoning and content, tool turns grouped into one user turn.
//   RenderMistral: Mixtral-8x7B-Instruct-v0.1's template, with its two raise_exception messages.
// Python string methods the templates call are spelled out below (split('x')[0] / [-1],
// lstrip / rstrip / strip of '\n').
#include "tokenizer/chat_template.h"

#include <string_view>

namespace emoe::tokenizer {
namespace {

bool StartsWith(std::string_view s, std::string_view p) { return s.substr(0, p.size()) == p; }
bool EndsWith(std::string_view s, std::string_view p) {
  return s.size() >= p.size() && s.substr(s.size() - p.size()) == p;
}
// Python's s.lstrip('\n'), s.rstrip('\n'), s.strip('\n').
std::string_view LStripNewlines(std::string_view s) {
  const size_t i = s.find_first_not_of('\n');
  return i == std::string_view::npos ? std::string_view() : s.substr(i);
}
std::string_view RStripNewlines(std::string_view s) {
  const size_t i = s.find_last_not_of('\n');
  return i == std::string_view::npos ? std::string_view() : s.substr(0, i + 1);
}
std::string_view StripNewlines(std::string_view s) { return RStripNewlines(LStripNewlines(s)); }
// Python's s.split(sep)[0] and s.split(sep)[-1].
std::string_view BeforeFirst(std::string_view s, std::string_view sep) {
  const size_t i = s.find(sep);
  return i == std::string_view::npos ? s : s.substr(0, i);
}
std::string_view AfterLast(std::string_view s, std::string_view sep) {
  const size_t i = s.rfind(sep);
  return i == std::string_view::npos ? s : s.substr(i + sep.size());
}

// Qwen3's "last_query_index": the last user message that is not a tool response wrapped in
// <tool_response>...</tool_response>; the last message's index when there is none.
size_t LastQueryIndex(const std::vector<ChatMessage>& messages) {
  for (size_t i = messages.size(); i-- > 0;) {
    const std::string& c = messages[i].content;
    if (messages[i].role == "user" &&
        !(StartsWith(c, "<tool_response>") && EndsWith(c, "</tool_response>"))) {
      return i;
    }
  }
  return messages.size() - 1;
}

// One assistant turn of Qwen3's template (after "<|im_start|>" is written by the caller).
void AppendChatMLAssistant(const ChatMessage& m, bool after_last_query, bool last,
                           std::string* out) {
  std::string_view content = m.content;
  std::string_view reasoning;
  if (content.find("</think>") != std::string_view::npos) {
    reasoning =
        LStripNewlines(AfterLast(RStripNewlines(BeforeFirst(content, "</think>")), "<think>"));
    content = LStripNewlines(AfterLast(content, "</think>"));
  }
  out->append("assistant\n");
  if (after_last_query && (last || !reasoning.empty())) {
    out->append("<think>\n").append(StripNewlines(reasoning)).append("\n</think>\n\n");
    out->append(LStripNewlines(content));
  } else {
    out->append(content);
  }
  out->append("<|im_end|>\n");
}

vmm::StatusOr<std::string> RenderChatML(const std::vector<ChatMessage>& messages,
                                        const ChatOptions& options) {
  std::string out;
  if (messages[0].role == "system") {
    out.append("<|im_start|>system\n").append(messages[0].content).append("<|im_end|>\n");
  }
  const size_t last_query = LastQueryIndex(messages);
  for (size_t i = 0; i < messages.size(); ++i) {
    const ChatMessage& m = messages[i];
    const bool first = i == 0, last = i + 1 == messages.size();
    if (m.role == "user" || (m.role == "system" && !first)) {
      out.append("<|im_start|>").append(m.role).append("\n").append(m.content);
      out.append("<|im_end|>\n");
    } else if (m.role == "assistant") {
      out.append("<|im_start|>");
      AppendChatMLAssistant(m, i > last_query, last, &out);
    } else if (m.role == "tool") {
      if (first || messages[i - 1].role != "tool") out.append("<|im_start|>user");
      out.append("\n<tool_response>\n").append(m.content).append("\n</tool_response>");
      if (last || messages[i + 1].role != "tool") out.append("<|im_end|>\n");
    } else if (m.role != "system") {
      // Qwen3's template silently renders nothing for such a message; dropping a turn of the
      // conversation without a word would be worse than refusing it.
      return vmm::Status::InvalidArgument(
          std::string("chat template chatml (Qwen3): message ") + std::to_string(i) +
          " has role '" + m.role +
          "': the template renders only system, user, assistant and tool messages");
    }
  }
  if (options.add_generation_prompt) {
    out.append("<|im_start|>assistant\n");
    if (!options.enable_thinking) out.append("<think>\n\n</think>\n\n");
  }
  return out;
}

vmm::StatusOr<std::string> RenderMistral(const std::vector<ChatMessage>& messages,
                                         const ChatOptions& options) {
  std::string out = options.bos_token;
  for (size_t i = 0; i < messages.size(); ++i) {
    const ChatMessage& m = messages[i];
    const std::string where = std::string("chat template mistral (Mixtral-8x7B-Instruct-v0.1): ") +
                              "message " + std::to_string(i) + " (role '" + m.role + "'): ";
    if ((m.role == "user") != (i % 2 == 0)) {
      return vmm::Status::InvalidArgument(
          where + "Conversation roles must alternate user/assistant/user/assistant/...");
    }
    if (m.role == "user") {
      out.append("[INST] ").append(m.content).append(" [/INST]");
    } else if (m.role == "assistant") {
      out.append(m.content).append(options.eos_token);
    } else {
      return vmm::Status::InvalidArgument(where + "Only user and assistant roles are supported!");
    }
  }
  return out;
}

bool Contains(const std::string& s, const char* what) { return s.find(what) != std::string::npos; }

}  // namespace

vmm::StatusOr<std::string> ApplyChatTemplate(ChatFamily family,
                                             const std::vector<ChatMessage>& messages,
                                             const ChatOptions& options) {
  if (family == ChatFamily::kNone) {
    return vmm::Status::InvalidArgument(
        "chat template: the tokenizer has no chat template of a supported family (chatml, "
        "mistral) in its tokenizer_config.json");
  }
  if (messages.empty()) {
    return vmm::Status::InvalidArgument(std::string("chat template ") + ChatFamilyName(family) +
                                        ": the message list is empty");
  }
  return family == ChatFamily::kChatML ? RenderChatML(messages, options)
                                       : RenderMistral(messages, options);
}

vmm::StatusOr<ChatFamily> ChatFamilyOfTemplate(const std::string& jinja) {
  std::string start = jinja.substr(0, 80);
  for (char& c : start) {
    if (c == '\n' || c == '\t') c = ' ';
  }
  const std::string quoted = "'" + start + (jinja.size() > 80 ? "...'" : "'");
  const bool chatml = Contains(jinja, "<|im_start|>") && Contains(jinja, "<|im_end|>");
  const bool mistral = Contains(jinja, "[INST]") && Contains(jinja, "[/INST]");
  if (chatml && mistral) {
    return vmm::Status::InvalidArgument("chat template " + quoted +
                                        ": uses both ChatML and [INST] markers: not a template "
                                        "of a supported family");
  }
  if (chatml) return ChatFamily::kChatML;
  if (mistral) {
    // Templates that share the markers but render differently from Mixtral-8x7B-Instruct-v0.1.
    for (const char* marker : {"<<SYS>>", "[SYSTEM_PROMPT]", "[AVAILABLE_TOOLS]"}) {
      if (Contains(jinja, marker)) {
        return vmm::Status::InvalidArgument(
            "chat template " + quoted + ": uses [INST] with " + marker +
            " (a Llama-2 or later Mistral template), not the Mixtral-8x7B-Instruct-v0.1 "
            "template the mistral family implements");
      }
    }
    return ChatFamily::kMistral;
  }
  return vmm::Status::InvalidArgument(
      "chat template " + quoted +
      ": not a supported family (chatml: <|im_start|> and <|im_end|>, as Qwen3's; mistral: "
      "[INST] and [/INST], as Mixtral-8x7B-Instruct-v0.1's)");
}

}  // namespace emoe::tokenizer
