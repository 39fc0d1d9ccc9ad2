// tokenizer/src/pattern.cc: String and Regex patterns.
#include "pattern.h"

namespace emoe::tokenizer::internal {

vmm::StatusOr<Pattern> Pattern::Make(const element& spec, const std::string& where) {
  object obj;
  VMM_RETURN_IF_ERROR(AsObject(spec, where, &obj));
  std::string_view literal, regex;
  bool has_literal = false, has_regex = false;
  VMM_RETURN_IF_ERROR(OptionalString(obj, "String", where, &literal, &has_literal));
  VMM_RETURN_IF_ERROR(OptionalString(obj, "Regex", where, &regex, &has_regex));
  if (has_literal == has_regex) {
    return FieldError(where, "expected exactly one of \"String\" and \"Regex\"");
  }
  Pattern pattern;
  if (has_literal) {
    if (literal.empty()) return FieldError(MemberPath(where, "String"), "empty pattern");
    pattern.literal_ = std::string(literal);
    return pattern;
  }
  auto compiled = Regex::Compile(regex);
  if (!compiled.ok()) {
    vmm::Status status = compiled.status();
    return status.Annotate(MemberPath(where, "Regex"));
  }
  pattern.regex_ = std::move(*compiled);
  return pattern;
}

void Pattern::FindAll(std::string_view text,
                      std::vector<std::pair<uint32_t, uint32_t>>* matches) const {
  if (regex_) {
    regex_->FindAll(text, matches);
    return;
  }
  size_t pos = 0;
  while ((pos = text.find(literal_, pos)) != std::string_view::npos) {
    matches->emplace_back(static_cast<uint32_t>(pos), static_cast<uint32_t>(literal_.size()));
    pos += literal_.size();
  }
}

std::string Pattern::ReplaceAll(std::string_view text, std::string_view content) const {
  if (!regex_) {  // a literal: no match list (the decoders' Replace runs once per token)
    size_t pos = text.find(literal_);
    if (pos == std::string_view::npos) return std::string(text);
    std::string out;
    out.reserve(text.size() + content.size());
    size_t prev = 0;
    for (; pos != std::string_view::npos; pos = text.find(literal_, prev)) {
      out.append(text.data() + prev, pos - prev);
      out.append(content);
      prev = pos + literal_.size();
    }
    out.append(text.data() + prev, text.size() - prev);
    return out;
  }
  std::vector<std::pair<uint32_t, uint32_t>> matches;
  FindAll(text, &matches);
  if (matches.empty()) return std::string(text);
  std::string out;
  out.reserve(text.size() + matches.size() * content.size());
  size_t prev = 0;
  for (const auto& m : matches) {
    out.append(text.data() + prev, m.first - prev);
    out.append(content);
    prev = m.first + m.second;
  }
  out.append(text.data() + prev, text.size() - prev);
  return out;
}

vmm::Status CheckReplaceContent(std::string_view content, const std::string& where) {
  for (size_t i = content.find('$'); i != std::string_view::npos && i + 1 < content.size();
       i = content.find('$', i + 1)) {
    const char c = content[i + 1];
    if (c == '$' || c == '&' || c == '`' || c == '\'' || c == '<' || (c >= '0' && c <= '9')) {
      return FieldError(where, Quote(content) + ": a \"$" + std::string(1, c) +
                                   "\" substitution (JS replaceAll) is not supported");
    }
  }
  return vmm::Status::Ok();
}

void Pattern::ReplaceAllInPlace(std::string* text, std::string_view content) const {
  if (!regex_ && text->find(literal_) == std::string::npos) return;
  *text = ReplaceAll(*text, content);
}

}  // namespace emoe::tokenizer::internal
