// tokenizer/src/decoders.cc: the decoders of decoders.h.
#include "decoders.h"

#include <utility>

#include "byte_level.h"
#include "pattern.h"
#include "sequence_spec.h"
#include "text_pipeline.h"
#include "utf8.h"

namespace emoe::tokenizer::internal {
namespace {

constexpr char kSupported[] = "ByteLevel, Replace, ByteFallback, Fuse, Strip, Metaspace, Sequence";
constexpr std::string_view kBom = "\xEF\xBB\xBF";

class ByteLevel final : public Decoder {
 public:
  explicit ByteLevel(const std::unordered_set<std::string>* added) : added_(added) {}
  void DecodeChain(DecodeTokens* in) const override {
    std::vector<std::string> out;
    std::string bytes;
    bool pending = false;
    for (size_t i = 0; i < in->tokens.size(); ++i) {
      const std::string& token = in->tokens[i];
      const bool verbatim = in->verbatim.empty() ? added_->count(token) > 0 : in->verbatim[i];
      if (verbatim) {
        if (pending) Flush(&bytes, &out);
        pending = false;
        out.push_back(token);
        continue;
      }
      pending = true;
      if (in->raw) {
        bytes += token;
      } else {
        AppendAlphabetBytes(token, &bytes);
      }
    }
    if (pending) Flush(&bytes, &out);
    in->tokens.swap(out);
    in->verbatim.clear();
    in->raw = false;
  }
  bool byte_level_first() const override { return true; }
  std::string describe() const override { return "ByteLevel"; }

  // The bytes a token's characters spell (a character outside the alphabet: its own UTF-8).
  static void AppendAlphabetBytes(std::string_view token, std::string* bytes) {
    for (size_t j = 0; j < token.size();) {
      uint32_t length;
      const int b = UnicodeToByte(DecodeUtf8(token, j, &length));
      if (b >= 0) {
        bytes->push_back(static_cast<char>(b));
      } else {
        bytes->append(token, j, length);
      }
      j += length;
    }
  }

 private:
  static void Flush(std::string* bytes, std::vector<std::string>* out) {
    std::string text;
    AppendLossy(*bytes, /*strip_bom=*/false, &text);
    out->push_back(std::move(text));
    bytes->clear();
  }
  const std::unordered_set<std::string>* added_;
};

class Replace final : public Decoder {
 public:
  Replace(Pattern pattern, std::string content)
      : pattern_(std::move(pattern)), content_(std::move(content)) {}
  void DecodeChain(DecodeTokens* in) const override {
    for (std::string& token : in->tokens) pattern_.ReplaceAllInPlace(&token, content_);
    in->verbatim.clear();
  }
  std::string describe() const override { return "Replace"; }

 private:
  Pattern pattern_;
  std::string content_;
};

// The byte of a byte-fallback token, as the reference reads it: a token of 6 UTF-16 units,
// "<0x" X ">", is a byte when parseInt(X, 16) is a number (leading whitespace, a sign and a
// "0x" are allowed, and parsing stops at the first non-digit: "<0x4G>" is 0x04), taken modulo
// 256 (Uint8Array.from). -1 when it is not one.
int ByteToken(std::string_view token) {
  if (token.size() < 6 || token.substr(0, 3) != "<0x" || token.back() != '>') return -1;
  const std::string_view x = token.substr(3, token.size() - 4);
  char32_t cps[2];
  size_t n = 0, units = 0;
  for (size_t i = 0; i < x.size() && units <= 2;) {
    uint32_t length;
    const char32_t cp = DecodeUtf8(x, i, &length);
    units += cp >= 0x10000 ? 2 : 1;
    if (n < 2) cps[n++] = cp;
    i += length;
  }
  if (units != 2) return -1;
  size_t i = 0;
  while (i < n && IsJsWhitespace(cps[i])) ++i;
  int sign = 1;
  if (i < n && (cps[i] == '+' || cps[i] == '-')) sign = cps[i++] == '-' ? -1 : 1;
  if (i + 1 < n && cps[i] == '0' && (cps[i + 1] == 'x' || cps[i + 1] == 'X')) i += 2;
  int value = 0, digits = 0;
  for (; i < n; ++i, ++digits) {
    const char32_t c = cps[i];
    const int h = c >= '0' && c <= '9'   ? int(c - '0')
                  : c >= 'a' && c <= 'f' ? int(c - 'a' + 10)
                  : c >= 'A' && c <= 'F' ? int(c - 'A' + 10)
                                         : -1;
    if (h < 0) break;
    value = value * 16 + h;
  }
  if (digits == 0) return -1;
  return ((sign * value) % 256 + 256) % 256;
}

class ByteFallback final : public Decoder {
 public:
  void DecodeChain(DecodeTokens* in) const override {
    std::vector<std::string> out;
    out.reserve(in->tokens.size());
    std::string bytes;
    for (std::string& token : in->tokens) {
      const int b = ByteToken(token);
      if (b >= 0) {
        bytes.push_back(static_cast<char>(b));
        continue;
      }
      if (!bytes.empty()) Flush(&bytes, &out);
      out.push_back(std::move(token));
    }
    if (!bytes.empty()) Flush(&bytes, &out);
    in->tokens.swap(out);
    in->verbatim.clear();
  }
  std::string describe() const override { return "ByteFallback"; }

 private:
  static void Flush(std::string* bytes, std::vector<std::string>* out) {
    std::string text;
    AppendLossy(*bytes, /*strip_bom=*/true, &text);
    out->push_back(std::move(text));
    bytes->clear();
  }
};

class Fuse final : public Decoder {
 public:
  void DecodeChain(DecodeTokens* in) const override {
    std::string joined;
    for (const std::string& token : in->tokens) joined += token;
    in->tokens.assign(1, std::move(joined));
    in->verbatim.clear();
  }
  std::string describe() const override { return "Fuse"; }
};

class Strip final : public Decoder {
 public:
  Strip(char32_t content, int64_t start, int64_t stop)
      : content_(content), start_(start), stop_(stop) {}
  void DecodeChain(DecodeTokens* in) const override {
    for (std::string& token : in->tokens) {
      size_t begin = 0;
      for (int64_t k = 0; k < start_ && begin < token.size(); ++k) {
        uint32_t length;
        if (DecodeUtf8(token, begin, &length) != content_) break;
        begin += length;
      }
      size_t end = token.size();
      for (int64_t k = 0; k < stop_ && end > begin; ++k) {
        size_t lead = end - 1;
        while (lead > begin && (static_cast<unsigned char>(token[lead]) & 0xC0) == 0x80) --lead;
        uint32_t length;
        if (DecodeUtf8(token, lead, &length) != content_) break;
        end = lead;
      }
      if (begin != 0 || end != token.size()) token = token.substr(begin, end - begin);
    }
    in->verbatim.clear();
  }
  std::string describe() const override { return "Strip"; }

 private:
  char32_t content_;
  int64_t start_, stop_;
};

class Metaspace final : public Decoder {
 public:
  explicit Metaspace(std::string replacement) : replacement_(std::move(replacement)) {}
  void DecodeChain(DecodeTokens* in) const override {
    for (size_t i = 0; i < in->tokens.size(); ++i) {
      std::string& token = in->tokens[i];
      std::string out;
      out.reserve(token.size());
      for (size_t pos = 0;;) {
        const size_t hit = token.find(replacement_, pos);
        out.append(token, pos, hit == std::string::npos ? std::string::npos : hit - pos);
        if (hit == std::string::npos) break;
        out.push_back(' ');
        pos = hit + replacement_.size();
      }
      if (i == 0 && !out.empty() && out[0] == ' ') out.erase(0, 1);
      token.swap(out);
    }
    in->verbatim.clear();
  }
  std::string describe() const override { return "Metaspace"; }

 private:
  std::string replacement_;
};

class Sequence final : public Decoder {
 public:
  explicit Sequence(std::vector<std::unique_ptr<Decoder>> stages) : stages_(std::move(stages)) {}
  void DecodeChain(DecodeTokens* in) const override {
    for (const auto& stage : stages_) stage->DecodeChain(in);
  }
  bool byte_level_first() const override {
    return !stages_.empty() && stages_[0]->byte_level_first();
  }
  std::string describe() const override { return DescribeSequence(stages_); }

 private:
  std::vector<std::unique_ptr<Decoder>> stages_;
};

struct Context {
  const std::unordered_set<std::string>* added;
};

vmm::StatusOr<std::unique_ptr<Decoder>> MakeAt(const element& spec, const std::string& where,
                                               const Context& context, int depth);

vmm::StatusOr<std::unique_ptr<Decoder>> MakeSequence(const object& obj, const std::string& where,
                                                     const Context& context, int depth) {
  std::vector<std::unique_ptr<Decoder>> stages;
  VMM_RETURN_IF_ERROR(ForEachSequenceItem(
      obj, "decoders", where, depth,
      [&](const element& item, const std::string& item_where) -> vmm::Status {
        VMM_ASSIGN_OR_RETURN(auto stage, MakeAt(item, item_where, context, depth + 1));
        stages.push_back(std::move(stage));
        return vmm::Status::Ok();
      }));
  return std::unique_ptr<Decoder>(new Sequence(std::move(stages)));
}

vmm::StatusOr<std::unique_ptr<Decoder>> MakeStrip(const object& obj, const std::string& where) {
  std::string_view content = " ";
  VMM_RETURN_IF_ERROR(OptionalString(obj, "content", where, &content));
  uint32_t length = 0;
  if (content.empty() || !IsValidUtf8(content) ||
      (DecodeUtf8(content, 0, &length), length) != content.size()) {
    return FieldError(MemberPath(where, "content"), "expected exactly one character");
  }
  int64_t start = 0, stop = 0;
  VMM_RETURN_IF_ERROR(OptionalInt(obj, "start", where, 0, INT32_MAX, &start));
  VMM_RETURN_IF_ERROR(OptionalInt(obj, "stop", where, 0, INT32_MAX, &stop));
  return std::unique_ptr<Decoder>(new Strip(DecodeUtf8(content, 0, &length), start, stop));
}

vmm::StatusOr<std::unique_ptr<Decoder>> MakeAt(const element& spec, const std::string& where,
                                               const Context& context, int depth) {
  object obj;
  VMM_RETURN_IF_ERROR(AsObject(spec, where, &obj));
  std::string_view type;
  VMM_RETURN_IF_ERROR(ComponentType(obj, where, &type));
  if (type == "ByteLevel") return std::unique_ptr<Decoder>(new ByteLevel(context.added));
  if (type == "ByteFallback") return std::unique_ptr<Decoder>(new ByteFallback());
  if (type == "Fuse") return std::unique_ptr<Decoder>(new Fuse());
  if (type == "Strip") return MakeStrip(obj, where);
  if (type == "Sequence") return MakeSequence(obj, where, context, depth);
  if (type == "Replace") {
    element pattern_spec;
    VMM_RETURN_IF_ERROR(RequiredMember(obj, "pattern", where, &pattern_spec));
    VMM_ASSIGN_OR_RETURN(Pattern pattern,
                         Pattern::Make(pattern_spec, MemberPath(where, "pattern")));
    std::string_view content;
    VMM_RETURN_IF_ERROR(OptionalString(obj, "content", where, &content));
    VMM_RETURN_IF_ERROR(CheckReplaceContent(content, MemberPath(where, "content")));
    return std::unique_ptr<Decoder>(new Replace(std::move(pattern), std::string(content)));
  }
  if (type == "Metaspace") {
    std::string_view replacement = "\xE2\x96\x81";
    VMM_RETURN_IF_ERROR(OptionalString(obj, "replacement", where, &replacement));
    if (replacement.empty()) return FieldError(MemberPath(where, "replacement"), "empty");
    return std::unique_ptr<Decoder>(new Metaspace(std::string(replacement)));
  }
  return UnsupportedType(where, type, kSupported);
}

}  // namespace

vmm::StatusOr<std::unique_ptr<Decoder>> MakeDecoder(
    const element& spec, const std::string& where,
    const std::unordered_set<std::string>& added_contents) {
  if (spec.is_null()) return std::unique_ptr<Decoder>();
  return MakeAt(spec, where, Context{&added_contents}, 0);
}

void AppendLossy(std::string_view bytes, bool strip_bom, std::string* out) {
  if (strip_bom && bytes.substr(0, 3) == kBom) bytes.remove_prefix(3);
  if (IsValidUtf8(bytes)) {
    out->append(bytes);
  } else {
    out->append(LossyUtf8(bytes));
  }
}

std::string CleanUpTokenization(std::string text) {
  static const std::pair<std::string_view, std::string_view> kRules[] = {
      {" .", "."},     {" ?", "?"},   {" !", "!"},   {" ,", ","},     {" ' ", "'"},
      {" n't", "n't"}, {" 'm", "'m"}, {" 's", "'s"}, {" 've", "'ve"}, {" 're", "'re"}};
  for (const auto& rule : kRules) {
    if (text.find(rule.first) == std::string::npos) continue;
    std::string out;
    out.reserve(text.size());
    size_t pos = 0;
    for (size_t hit; (hit = text.find(rule.first, pos)) != std::string::npos;) {
      out.append(text, pos, hit - pos);
      out.append(rule.second);
      pos = hit + rule.first.size();
    }
    out.append(text, pos, std::string::npos);
    text.swap(out);
  }
  return text;
}

}  // namespace emoe::tokenizer::internal
