// tokenizer/src/normalizers.cc: the normalizers of tokenizer.json (text_pipeline.h).
//
// Each does what the reference (@huggingface/tokenizers) does to a JS string:
//   NFC/NFD/NFKC/NFKD  String.prototype.normalize, here utf8proc. A quick check skips text that
//                      is already normalized: ASCII, or only characters that are starters
//                      (combining class 0), have no decomposition of the form's kind and cannot
//                      be the second half of a composition (unicode.h).
//   Prepend            prepend + text (the core never normalizes an empty segment).
//   Replace            every match of a String or Regex pattern replaced by `content`
//                      (CheckReplaceContent refuses the "$&"-style substitutions JS would make).
//   Lowercase          String.prototype.toLowerCase: utf8proc's simple mappings plus the full
//                      mappings JS applies without a locale (U+0130 -> "i\u0307", final sigma).
//   Strip              JS trimStart / trimEnd (JS whitespace, utf8.h) per strip_left/strip_right.
//   StripAccents       removes marks (\p{M}).
//   Sequence           each in turn.
#include <utf8proc.h>

#include <cstdlib>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "json_fields.h"
#include "pattern.h"
#include "sequence_spec.h"
#include "text_pipeline.h"
#include "unicode.h"
#include "utf8.h"

namespace emoe::tokenizer::internal {
namespace {

constexpr char kSupported[] =
    "NFC, NFD, NFKC, NFKD, Prepend, Replace, Lowercase, Strip, StripAccents, Sequence";

class UnicodeForm final : public Normalizer {
 public:
  explicit UnicodeForm(NormalForm form) : form_(form) { PrepareNormalForm(form); }
  void Normalize(std::string* text) const override { internal::Normalize(text, form_); }
  std::string describe() const override { return NormalFormName(form_); }

 private:
  NormalForm form_;
};

class Prepend final : public Normalizer {
 public:
  explicit Prepend(std::string prepend) : prepend_(std::move(prepend)) {}
  void Normalize(std::string* text) const override { text->insert(0, prepend_); }
  std::string describe() const override { return "Prepend"; }

 private:
  std::string prepend_;
};

class Replace final : public Normalizer {
 public:
  Replace(Pattern pattern, std::string content)
      : pattern_(std::move(pattern)), content_(std::move(content)) {}
  void Normalize(std::string* text) const override { *text = pattern_.ReplaceAll(*text, content_); }
  std::string describe() const override { return std::string("Replace ") + pattern_.kind(); }

 private:
  Pattern pattern_;
  std::string content_;
};

class Lowercase final : public Normalizer {
 public:
  void Normalize(std::string* text) const override { *text = JsLowercase(*text); }
  std::string describe() const override { return "Lowercase"; }
};

class Strip final : public Normalizer {
 public:
  Strip(bool left, bool right) : left_(left), right_(right) {}
  void Normalize(std::string* text) const override {
    std::string_view view = *text;
    if (left_) view = TrimJsWhitespaceStart(view);
    if (right_) view = TrimJsWhitespaceEnd(view);
    if (view.size() != text->size()) *text = std::string(view);
  }
  std::string describe() const override { return "Strip"; }

 private:
  bool left_, right_;
};

class StripAccents final : public Normalizer {
 public:
  void Normalize(std::string* text) const override {
    if (IsAscii(*text)) return;
    std::string out;
    out.reserve(text->size());
    for (size_t i = 0; i < text->size();) {
      uint32_t length;
      const char32_t cp = DecodeUtf8(*text, i, &length);
      if (!IsMark(cp)) out.append(*text, i, length);
      i += length;
    }
    *text = std::move(out);
  }
  std::string describe() const override { return "StripAccents"; }
};

class Sequence final : public Normalizer {
 public:
  explicit Sequence(std::vector<std::unique_ptr<Normalizer>> stages) : stages_(std::move(stages)) {}
  void Normalize(std::string* text) const override {
    for (const auto& stage : stages_) stage->Normalize(text);
  }
  std::string describe() const override { return DescribeSequence(stages_); }

 private:
  std::vector<std::unique_ptr<Normalizer>> stages_;
};

vmm::StatusOr<std::unique_ptr<Normalizer>> MakeAt(const element& spec, const std::string& where,
                                                  int depth);

vmm::StatusOr<std::unique_ptr<Normalizer>> MakeSequence(const object& obj, const std::string& where,
                                                        int depth) {
  std::vector<std::unique_ptr<Normalizer>> stages;
  VMM_RETURN_IF_ERROR(
      ForEachSequenceItem(obj, "normalizers", where, depth,
                          [&](const element& item, const std::string& item_where) -> vmm::Status {
                            if (item.is_null())
                              return vmm::Status::Ok();  // the reference skips null stages
                            VMM_ASSIGN_OR_RETURN(auto stage, MakeAt(item, item_where, depth + 1));
                            stages.push_back(std::move(stage));
                            return vmm::Status::Ok();
                          }));
  return std::unique_ptr<Normalizer>(new Sequence(std::move(stages)));
}

vmm::StatusOr<std::unique_ptr<Normalizer>> MakeReplace(const object& obj,
                                                       const std::string& where) {
  element pattern_spec;
  VMM_RETURN_IF_ERROR(RequiredMember(obj, "pattern", where, &pattern_spec));
  VMM_ASSIGN_OR_RETURN(Pattern pattern, Pattern::Make(pattern_spec, MemberPath(where, "pattern")));
  std::string_view content;
  VMM_RETURN_IF_ERROR(OptionalString(obj, "content", where, &content));
  VMM_RETURN_IF_ERROR(CheckReplaceContent(content, MemberPath(where, "content")));
  return std::unique_ptr<Normalizer>(new Replace(std::move(pattern), std::string(content)));
}

vmm::StatusOr<std::unique_ptr<Normalizer>> MakeAt(const element& spec, const std::string& where,
                                                  int depth) {
  object obj;
  VMM_RETURN_IF_ERROR(AsObject(spec, where, &obj));
  std::string_view type;
  VMM_RETURN_IF_ERROR(ComponentType(obj, where, &type));
  NormalForm form;
  if (ParseNormalForm(type, &form)) return std::unique_ptr<Normalizer>(new UnicodeForm(form));
  if (type == "Sequence") return MakeSequence(obj, where, depth);
  if (type == "Replace") return MakeReplace(obj, where);
  if (type == "Prepend") {
    std::string_view prepend;
    VMM_RETURN_IF_ERROR(RequiredString(obj, "prepend", where, &prepend));
    return std::unique_ptr<Normalizer>(new Prepend(std::string(prepend)));
  }
  if (type == "Lowercase") return std::unique_ptr<Normalizer>(new Lowercase());
  if (type == "StripAccents") return std::unique_ptr<Normalizer>(new StripAccents());
  if (type == "Strip") {
    bool left = false, right = false;
    VMM_RETURN_IF_ERROR(OptionalBool(obj, "strip_left", where, &left));
    VMM_RETURN_IF_ERROR(OptionalBool(obj, "strip_right", where, &right));
    return std::unique_ptr<Normalizer>(new Strip(left, right));
  }
  return UnsupportedType(where, type, kSupported);
}

}  // namespace

vmm::StatusOr<std::unique_ptr<Normalizer>> MakeNormalizer(simdjson::dom::element spec,
                                                          const std::string& where) {
  if (spec.is_null()) return std::unique_ptr<Normalizer>();
  return MakeAt(spec, where, 0);
}

}  // namespace emoe::tokenizer::internal
