// tokenizer/src/pre_tokenizers.cc: the pre-tokenizers of tokenizer.json (text_pipeline.h).
//
//   Split           the pattern's matches and the text between them, kept per `behavior`
//                   (split_behavior.h); `invert` swaps the roles of matches and gaps. The Rust
//                   crate's meaning: the JS reference treats every behavior but Removed as
//                   Isolated and `invert` as "keep only the matches" (the same results for the
//                   Isolated, non-inverted Split that tokenizers ship).
//   ByteLevel       add_prefix_space (a space before each piece that lacks one) and, with
//                   use_regex (default true), GPT-2's pattern. The pieces stay raw bytes: the
//                   core maps the vocabulary out of GPT-2's alphabet instead (text_pipeline.h),
//                   so no stage may follow ByteLevel in a Sequence.
//   Metaspace       ' ' -> replacement; the replacement prepended per prepend_scheme ("always";
//                   "first": only in the first section of the added-token split, as the
//                   reference's section_index == 0; "never"), unless already there; split
//                   (default true, the Rust crate's) splits before each replacement.
//   Whitespace      the reference's /\w+|[^\w\s]+/g: ASCII word runs and runs of other
//                   non-whitespace (JS \w is ASCII without the u flag); whitespace dropped.
//   WhitespaceSplit the reference's /\S+/g.
//   Sequence        each in turn on the pieces of the previous one.
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "fast_split.h"  // kGpt2Pattern: ByteLevel's use_regex (GPT-2's pattern)
#include "json_fields.h"
#include "pattern.h"
#include "sequence_spec.h"
#include "split_behavior.h"
#include "text_pipeline.h"
#include "utf8.h"

namespace emoe::tokenizer::internal {
namespace {

using Spans = std::vector<std::pair<uint32_t, uint32_t>>;

constexpr char kSupported[] = "Split, ByteLevel, Metaspace, Whitespace, WhitespaceSplit, Sequence";

class Split final : public PreTokenizer {
 public:
  Split(Pattern pattern, SplitBehavior behavior, bool invert)
      : pattern_(std::move(pattern)), behavior_(behavior), invert_(invert) {}
  void PreTokenize(Pieces* pieces) const override {
    Spans out, matches;
    out.reserve(pieces->spans.size() * 2);
    for (const auto& span : pieces->spans) {
      matches.clear();
      pattern_.FindAll(std::string_view(pieces->text).substr(span.first, span.second), &matches);
      SplitAtMatches(span.first, span.second, matches, behavior_, invert_, &out);
    }
    pieces->spans.swap(out);
  }
  std::string describe() const override { return std::string("Split ") + pattern_.kind(); }

 private:
  Pattern pattern_;
  SplitBehavior behavior_;
  bool invert_;
};

class ByteLevel final : public PreTokenizer {
 public:
  ByteLevel(bool add_prefix_space, std::unique_ptr<Regex> regex)
      : add_prefix_space_(add_prefix_space), regex_(std::move(regex)) {}
  void PreTokenize(Pieces* pieces) const override {
    if (add_prefix_space_) AddPrefixSpaces(pieces);
    if (!regex_) return;
    Spans out, matches;
    for (const auto& span : pieces->spans) {
      matches.clear();
      regex_->FindAll(std::string_view(pieces->text).substr(span.first, span.second), &matches);
      SplitAtMatches(span.first, span.second, matches, SplitBehavior::kIsolated, false, &out);
    }
    pieces->spans.swap(out);
  }
  bool byte_level() const override { return true; }
  std::string describe() const override { return "ByteLevel"; }

 private:
  static void AddPrefixSpaces(Pieces* pieces) {
    bool all_have = true;
    for (const auto& span : pieces->spans) all_have &= pieces->text[span.first] == ' ';
    if (all_have) return;
    std::string text;
    text.reserve(pieces->text.size() + pieces->spans.size());
    for (auto& span : pieces->spans) {
      const uint32_t start = static_cast<uint32_t>(text.size());
      if (pieces->text[span.first] != ' ') text.push_back(' ');
      text.append(pieces->text, span.first, span.second);
      span = {start, static_cast<uint32_t>(text.size()) - start};
    }
    pieces->text.swap(text);
  }

  bool add_prefix_space_;
  std::unique_ptr<Regex> regex_;  // GPT-2's pattern; null without use_regex
};

enum class PrependScheme { kAlways, kFirst, kNever };

class Metaspace final : public PreTokenizer {
 public:
  Metaspace(std::string replacement, PrependScheme scheme, bool split)
      : replacement_(std::move(replacement)), scheme_(scheme), split_(split) {}
  void PreTokenize(Pieces* pieces) const override {
    const bool prepend = scheme_ == PrependScheme::kAlways ||
                         (scheme_ == PrependScheme::kFirst && pieces->section_index == 0);
    std::string text;
    text.reserve(pieces->text.size() + pieces->text.size() / 2 + replacement_.size());
    for (auto& span : pieces->spans) {
      const uint32_t start = static_cast<uint32_t>(text.size());
      const std::string_view piece = std::string_view(pieces->text).substr(span.first, span.second);
      const bool starts_with_replacement =
          piece[0] == ' ' || piece.substr(0, replacement_.size()) == replacement_;
      if (prepend && !starts_with_replacement) text += replacement_;
      for (char c : piece) {
        if (c == ' ')
          text += replacement_;
        else
          text.push_back(c);
      }
      span = {start, static_cast<uint32_t>(text.size()) - start};
    }
    pieces->text.swap(text);
    if (!split_) return;
    Spans out, matches;
    for (const auto& span : pieces->spans) {
      matches.clear();
      const std::string_view piece = std::string_view(pieces->text).substr(span.first, span.second);
      for (size_t pos = 0; (pos = piece.find(replacement_, pos)) != std::string_view::npos;
           pos += replacement_.size()) {
        matches.emplace_back(static_cast<uint32_t>(pos),
                             static_cast<uint32_t>(replacement_.size()));
      }
      SplitAtMatches(span.first, span.second, matches, SplitBehavior::kMergedWithNext, false, &out);
    }
    pieces->spans.swap(out);
  }
  std::string describe() const override { return "Metaspace"; }

 private:
  std::string replacement_;  // one character
  PrependScheme scheme_;
  bool split_;
};

// Whitespace (word runs and other runs) and WhitespaceSplit (non-whitespace runs).
class WhitespaceRuns final : public PreTokenizer {
 public:
  explicit WhitespaceRuns(bool split_words) : split_words_(split_words) {}
  void PreTokenize(Pieces* pieces) const override {
    Spans out;
    const std::string_view text = pieces->text;
    for (const auto& span : pieces->spans) {
      int run_class = 0;  // 0: none (whitespace), 1: word, 2: other
      uint32_t run_start = 0;
      const uint32_t end = span.first + span.second;
      for (uint32_t i = span.first; i < end;) {
        uint32_t length;
        const char32_t cp = DecodeUtf8(text, i, &length);
        const int cls = IsJsWhitespace(cp) ? 0 : (!split_words_ || !IsAsciiWord(cp)) ? 2 : 1;
        if (cls != run_class) {
          if (run_class != 0) out.emplace_back(run_start, i - run_start);
          run_class = cls;
          run_start = i;
        }
        i += length;
      }
      if (run_class != 0) out.emplace_back(run_start, end - run_start);
    }
    pieces->spans.swap(out);
  }
  std::string describe() const override { return split_words_ ? "Whitespace" : "WhitespaceSplit"; }

 private:
  static bool IsAsciiWord(char32_t cp) {
    return (cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z') || (cp >= '0' && cp <= '9') ||
           cp == '_';
  }
  bool split_words_;
};

class Sequence final : public PreTokenizer {
 public:
  explicit Sequence(std::vector<std::unique_ptr<PreTokenizer>> stages)
      : stages_(std::move(stages)) {}
  void PreTokenize(Pieces* pieces) const override {
    for (const auto& stage : stages_) {
      if (pieces->spans.empty()) return;
      stage->PreTokenize(pieces);
    }
  }
  bool byte_level() const override {
    for (const auto& stage : stages_) {
      if (stage->byte_level()) return true;
    }
    return false;
  }
  std::string describe() const override { return DescribeSequence(stages_); }

 private:
  std::vector<std::unique_ptr<PreTokenizer>> stages_;
};

vmm::StatusOr<std::unique_ptr<PreTokenizer>> MakeAt(const element& spec, const std::string& where,
                                                    int depth);

vmm::StatusOr<std::unique_ptr<PreTokenizer>> MakeSequence(const object& obj,
                                                          const std::string& where, int depth) {
  std::vector<std::unique_ptr<PreTokenizer>> stages;
  VMM_RETURN_IF_ERROR(ForEachSequenceItem(
      obj, "pretokenizers", where, depth,
      [&](const element& item, const std::string& item_where) -> vmm::Status {
        if (item.is_null()) return vmm::Status::Ok();
        if (!stages.empty() && stages.back()->byte_level()) {
          return FieldError(item_where, "a pre-tokenizer after ByteLevel is not supported");
        }
        VMM_ASSIGN_OR_RETURN(auto stage, MakeAt(item, item_where, depth + 1));
        stages.push_back(std::move(stage));
        return vmm::Status::Ok();
      }));
  return std::unique_ptr<PreTokenizer>(new Sequence(std::move(stages)));
}

vmm::StatusOr<std::unique_ptr<PreTokenizer>> MakeSplit(const object& obj,
                                                       const std::string& where) {
  element pattern_spec;
  VMM_RETURN_IF_ERROR(RequiredMember(obj, "pattern", where, &pattern_spec));
  VMM_ASSIGN_OR_RETURN(Pattern pattern, Pattern::Make(pattern_spec, MemberPath(where, "pattern")));
  std::string_view behavior_name;
  VMM_RETURN_IF_ERROR(RequiredString(obj, "behavior", where, &behavior_name));
  SplitBehavior behavior;
  if (!ParseSplitBehavior(behavior_name, &behavior)) {
    return FieldError(MemberPath(where, "behavior"),
                      Quote(behavior_name) +
                          " is not one of Removed, Isolated, "
                          "MergedWithPrevious, MergedWithNext, Contiguous");
  }
  bool invert = false;
  VMM_RETURN_IF_ERROR(OptionalBool(obj, "invert", where, &invert));
  return std::unique_ptr<PreTokenizer>(new Split(std::move(pattern), behavior, invert));
}

vmm::StatusOr<std::unique_ptr<PreTokenizer>> MakeByteLevel(const object& obj,
                                                           const std::string& where) {
  bool add_prefix_space = false, use_regex = true,
       trim_offsets = false;  // the reference's defaults
  VMM_RETURN_IF_ERROR(OptionalBool(obj, "add_prefix_space", where, &add_prefix_space));
  VMM_RETURN_IF_ERROR(OptionalBool(obj, "use_regex", where, &use_regex));
  VMM_RETURN_IF_ERROR(OptionalBool(obj, "trim_offsets", where, &trim_offsets));  // offsets only
  std::unique_ptr<Regex> regex;
  if (use_regex) {
    auto compiled = Regex::Compile(kGpt2Pattern);
    if (!compiled.ok()) {
      vmm::Status status = compiled.status();
      return status.Annotate(where + " (GPT-2 pattern)");
    }
    regex = std::move(*compiled);
  }
  return std::unique_ptr<PreTokenizer>(new ByteLevel(add_prefix_space, std::move(regex)));
}

vmm::StatusOr<std::unique_ptr<PreTokenizer>> MakeMetaspace(const object& obj,
                                                           const std::string& where) {
  std::string_view replacement = "\xE2\x96\x81";  // U+2581
  VMM_RETURN_IF_ERROR(OptionalString(obj, "replacement", where, &replacement));
  uint32_t length = 0;
  if (replacement.empty() || (DecodeUtf8(replacement, 0, &length), length) != replacement.size()) {
    return FieldError(MemberPath(where, "replacement"), "expected exactly one character");
  }
  bool add_prefix_space = true, split = true;
  VMM_RETURN_IF_ERROR(OptionalBool(obj, "add_prefix_space", where, &add_prefix_space));
  VMM_RETURN_IF_ERROR(OptionalBool(obj, "split", where, &split));
  PrependScheme scheme = add_prefix_space ? PrependScheme::kAlways : PrependScheme::kNever;
  std::string_view scheme_name;
  bool has_scheme = false;
  VMM_RETURN_IF_ERROR(OptionalString(obj, "prepend_scheme", where, &scheme_name, &has_scheme));
  if (has_scheme) {
    if (scheme_name == "always")
      scheme = PrependScheme::kAlways;
    else if (scheme_name == "first")
      scheme = PrependScheme::kFirst;
    else if (scheme_name == "never")
      scheme = PrependScheme::kNever;
    else {
      return FieldError(MemberPath(where, "prepend_scheme"),
                        Quote(scheme_name) + " is not one of always, first, never");
    }
  }
  return std::unique_ptr<PreTokenizer>(new Metaspace(std::string(replacement), scheme, split));
}

vmm::StatusOr<std::unique_ptr<PreTokenizer>> MakeAt(const element& spec, const std::string& where,
                                                    int depth) {
  object obj;
  VMM_RETURN_IF_ERROR(AsObject(spec, where, &obj));
  std::string_view type;
  VMM_RETURN_IF_ERROR(ComponentType(obj, where, &type));
  if (type == "Split") return MakeSplit(obj, where);
  if (type == "ByteLevel") return MakeByteLevel(obj, where);
  if (type == "Metaspace") return MakeMetaspace(obj, where);
  if (type == "Sequence") return MakeSequence(obj, where, depth);
  if (type == "Whitespace") return std::unique_ptr<PreTokenizer>(new WhitespaceRuns(true));
  if (type == "WhitespaceSplit") return std::unique_ptr<PreTokenizer>(new WhitespaceRuns(false));
  return UnsupportedType(where, type, kSupported);
}

}  // namespace

vmm::StatusOr<std::unique_ptr<PreTokenizer>> MakePreTokenizer(simdjson::dom::element spec,
                                                              const std::string& where) {
  if (spec.is_null()) return std::unique_ptr<PreTokenizer>();
  return MakeAt(spec, where, 0);
}

}  // namespace emoe::tokenizer::internal
