// tokenizer/src/tokenizer_load.cc: tokenizer.json -> Tokenizer::Impl.
//
// The order matters: the normalizer first (normalized added tokens are matched in their
// normalized form), then the pre-tokenizer (a ByteLevel one makes the vocabulary byte-level),
// the added tokens and the model (added tokens override the vocabulary's string -> id map
// before the merges are resolved, as the reference's tokens_to_ids.set does), the decoder and
// the post-processor. Top-level fields the module does not implement (truncation, padding) must
// be null.
#include <simdjson.h>

#include <utility>

#include "json_fields.h"
#include "tokenizer_impl.h"

namespace emoe::tokenizer::internal {
namespace {

constexpr int64_t kMaxId = (int64_t{1} << 24) - 1;

vmm::Status ReadAddedTokens(const object& doc, std::vector<AddedTokenSpec>* out) {
  element list_value;
  if (!OptionalMember(doc, "added_tokens", &list_value)) return vmm::Status::Ok();
  array list;
  VMM_RETURN_IF_ERROR(AsArray(list_value, "added_tokens", &list));
  std::unordered_map<int32_t, size_t> by_id;
  std::unordered_map<std::string_view, size_t> by_content;
  for (element item : list) {
    const std::string where = ElementPath("added_tokens", out->size());
    object obj;
    VMM_RETURN_IF_ERROR(AsObject(item, where, &obj));
    AddedTokenSpec spec;
    element id_value;
    int64_t id;
    VMM_RETURN_IF_ERROR(RequiredMember(obj, "id", where, &id_value));
    VMM_RETURN_IF_ERROR(AsInt(id_value, MemberPath(where, "id"), 0, kMaxId, &id));
    spec.id = static_cast<int32_t>(id);
    VMM_RETURN_IF_ERROR(RequiredString(obj, "content", where, &spec.content));
    if (spec.content.empty()) return FieldError(MemberPath(where, "content"), "empty");
    VMM_RETURN_IF_ERROR(OptionalBool(obj, "single_word", where, &spec.single_word));
    VMM_RETURN_IF_ERROR(OptionalBool(obj, "lstrip", where, &spec.lstrip));
    VMM_RETURN_IF_ERROR(OptionalBool(obj, "rstrip", where, &spec.rstrip));
    VMM_RETURN_IF_ERROR(OptionalBool(obj, "special", where, &spec.special));
    spec.normalized = !spec.special;  // the reference's default
    VMM_RETURN_IF_ERROR(OptionalBool(obj, "normalized", where, &spec.normalized));
    if (auto it = by_id.find(spec.id); it != by_id.end()) {
      return FieldError(where, "id " + std::to_string(spec.id) + " is also added_tokens[" +
                                   std::to_string(it->second) + "]'s");
    }
    if (auto it = by_content.find(spec.content); it != by_content.end()) {
      return FieldError(where, "content " + Quote(spec.content) + " is also added_tokens[" +
                                   std::to_string(it->second) + "]'s");
    }
    by_id.emplace(spec.id, out->size());
    by_content.emplace(spec.content, out->size());
    out->push_back(spec);
  }
  return vmm::Status::Ok();
}

// The post-processor as a "single" template (tokenizer_impl.h).
vmm::Status ReadPostProcessor(const element& spec, const std::string& where,
                              const Tokenizer::Impl& impl, std::vector<int32_t>* tmpl, int depth) {
  if (spec.is_null()) return vmm::Status::Ok();
  object obj;
  VMM_RETURN_IF_ERROR(AsObject(spec, where, &obj));
  std::string_view type;
  VMM_RETURN_IF_ERROR(ComponentType(obj, where, &type));
  if (type == "ByteLevel") return vmm::Status::Ok();  // offsets only: nothing for ids
  if (type == "Sequence") {
    if (depth >= 16) return FieldError(where, "Sequence nested deeper than 16");
    element list_value;
    VMM_RETURN_IF_ERROR(RequiredMember(obj, "processors", where, &list_value));
    array list;
    const std::string list_where = MemberPath(where, "processors");
    VMM_RETURN_IF_ERROR(AsArray(list_value, list_where, &list));
    size_t i = 0;
    for (element item : list) {
      VMM_RETURN_IF_ERROR(
          ReadPostProcessor(item, ElementPath(list_where, i++), impl, tmpl, depth + 1));
    }
    return vmm::Status::Ok();
  }
  if (type != "TemplateProcessing") {
    return UnsupportedType(where, type, "TemplateProcessing, ByteLevel, Sequence");
  }
  element single_value;
  VMM_RETURN_IF_ERROR(RequiredMember(obj, "single", where, &single_value));
  const std::string single_where = MemberPath(where, "single");
  array single;
  VMM_RETURN_IF_ERROR(AsArray(single_value, single_where, &single));
  std::vector<int32_t> outer;
  size_t i = 0;
  for (element item : single) {
    const std::string item_where = ElementPath(single_where, i++);
    object item_obj, piece;
    element inner;
    VMM_RETURN_IF_ERROR(AsObject(item, item_where, &item_obj));
    std::string_view id;
    if (OptionalMember(item_obj, "SpecialToken", &inner)) {
      const std::string w = MemberPath(item_where, "SpecialToken");
      VMM_RETURN_IF_ERROR(AsObject(inner, w, &piece));
      VMM_RETURN_IF_ERROR(RequiredString(piece, "id", w, &id));
      const int32_t token = FindToken(impl, id);
      if (token < 0) return FieldError(MemberPath(w, "id"), Quote(id) + " is not a token");
      outer.push_back(token);
    } else if (OptionalMember(item_obj, "Sequence", &inner)) {
      const std::string w = MemberPath(item_where, "Sequence");
      VMM_RETURN_IF_ERROR(AsObject(inner, w, &piece));
      VMM_RETURN_IF_ERROR(RequiredString(piece, "id", w, &id));
      if (id != "A") return FieldError(MemberPath(w, "id"), "expected \"A\" in a single template");
      outer.insert(outer.end(), tmpl->begin(), tmpl->end());  // the template applies on top
    } else {
      return FieldError(item_where, "expected \"SpecialToken\" or \"Sequence\"");
    }
  }
  tmpl->swap(outer);
  return vmm::Status::Ok();
}

// Fills the added-token matchers and lookups (after the model: ids are known).
void BuildAddedTokens(const std::vector<AddedTokenSpec>& added, Tokenizer::Impl* impl) {
  for (const AddedTokenSpec& a : added) {
    std::string content(a.content);
    impl->added_contents.insert(content);
    impl->added_by_content.emplace(content, a.id);
    impl->section_keys[content] = a.id;
    if (a.special) impl->special_strings.insert(content);
    AddedTokenMatcher::Token token{content, a.id, a.single_word, a.lstrip, a.rstrip};
    if (a.normalized && impl->normalizer) {
      if (a.normalized_content.empty()) continue;
      impl->section_keys[a.normalized_content] = a.id;
      token.content = a.normalized_content;
      impl->normalized_matcher.Add(std::move(token));
    } else {
      impl->raw_matcher.Add(std::move(token));
    }
  }
}

vmm::Status NullOnly(const object& doc, std::string_view key) {
  element value;
  if (!OptionalMember(doc, key, &value)) return vmm::Status::Ok();
  return FieldError(std::string(key),
                    "must be null (" + std::string(key) + " is not supported by this tokenizer)");
}

element MemberOrNull(const object& doc, std::string_view key, const element& null_value) {
  element value;
  return OptionalMember(doc, key, &value) ? value : null_value;
}

}  // namespace

vmm::Status LoadTokenizerJson(std::string_view tokenizer_json, Tokenizer::Impl* impl) {
  simdjson::dom::parser parser;
  std::string storage;
  element root;
  VMM_RETURN_IF_ERROR(ParseJson(tokenizer_json, &parser, &storage, &root));
  object doc;
  VMM_RETURN_IF_ERROR(AsObject(root, "", &doc));
  VMM_RETURN_IF_ERROR(NullOnly(doc, "truncation"));
  VMM_RETURN_IF_ERROR(NullOnly(doc, "padding"));
  // Absent components are read as JSON null (the factories' "none"): one from a document of
  // its own, since a parser's elements die with its next parse.
  simdjson::dom::parser null_parser;
  element null_value;
  if (auto err = null_parser.parse("null", 4).get(null_value); err) {
    return vmm::Status::Internal(std::string("simdjson: ") + simdjson::error_message(err));
  }

  VMM_ASSIGN_OR_RETURN(impl->normalizer,
                       MakeNormalizer(MemberOrNull(doc, "normalizer", null_value), "normalizer"));
  VMM_ASSIGN_OR_RETURN(
      impl->pre_tokenizer,
      MakePreTokenizer(MemberOrNull(doc, "pre_tokenizer", null_value), "pre_tokenizer"));
  const bool byte_level = impl->pre_tokenizer && impl->pre_tokenizer->byte_level();
  std::vector<AddedTokenSpec> added;
  VMM_RETURN_IF_ERROR(ReadAddedTokens(doc, &added));
  for (AddedTokenSpec& a : added) {
    if (!a.normalized || !impl->normalizer) continue;
    a.normalized_content = std::string(a.content);
    impl->normalizer->Normalize(&a.normalized_content);
  }
  element model;
  VMM_RETURN_IF_ERROR(RequiredMember(doc, "model", "", &model));
  VMM_ASSIGN_OR_RETURN(impl->model,
                       BpeModel::Build(model, "model", added, byte_level, &impl->tokens));
  BuildAddedTokens(added, impl);
  VMM_ASSIGN_OR_RETURN(impl->decoder, MakeDecoder(MemberOrNull(doc, "decoder", null_value),
                                                  "decoder", impl->added_contents));
  impl->decoder_is_byte_level = impl->decoder && impl->decoder->describe() == "ByteLevel";
  VMM_RETURN_IF_ERROR(ReadPostProcessor(MemberOrNull(doc, "post_processor", null_value),
                                        "post_processor", *impl, &impl->single_template, 0));

  const auto& m = *impl->model;
  impl->description = std::string(byte_level ? "byte-level BPE" : "BPE") + " (" +
                      std::to_string(m.vocab_entries()) + " tokens, " + std::to_string(m.merges()) +
                      " merges, " + std::to_string(added.size()) + " added tokens" +
                      (m.byte_fallback() ? ", byte fallback" : "") + ", " +
                      (impl->normalizer ? impl->normalizer->describe() : "no normalizer") + ", " +
                      (impl->pre_tokenizer ? impl->pre_tokenizer->describe() : "no pre-tokenizer") +
                      ")";
  return vmm::Status::Ok();
}

}  // namespace emoe::tokenizer::internal
