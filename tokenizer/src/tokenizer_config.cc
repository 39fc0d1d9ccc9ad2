// tokenizer/src/tokenizer_config.cc: tokenizer_config.json (special tokens, the chat template's
// family, decoding options) and the per-id flags that depend on it.
//
// Read: bos_token / eos_token / pad_token / unk_token (a string, or an object whose "content"
// is the string, or null), each required to name a token; additional_special_tokens (the
// reference counts them as special when decoding with skip_special_tokens);
// clean_up_tokenization_spaces (default true, as in the reference); chat_template (a string, or
// a list of {"name", "template"} whose "default" entry is used). Options that would change
// encoding and are not implemented (remove_space, do_lowercase_and_remove_accent: true) are
// refused.
#include <simdjson.h>

#include "byte_level.h"
#include "json_fields.h"
#include "tokenizer_impl.h"

namespace emoe::tokenizer::internal {
namespace {

// The family of a chat template's Jinja text (chat_template.h's ChatFamilyOfTemplate rule).
// TODO(h4-merge): switch to ChatFamilyOfTemplate once chat_template.cc is in.
ChatFamily FamilyOfTemplate(const std::string& jinja, std::string* error) {
  const bool chatml = jinja.find("<|im_start|>") != std::string::npos &&
                      jinja.find("<|im_end|>") != std::string::npos;
  const bool mistral =
      jinja.find("[INST]") != std::string::npos && jinja.find("[/INST]") != std::string::npos;
  if (chatml) return ChatFamily::kChatML;
  if (mistral) return ChatFamily::kMistral;
  *error = "chat_template " + Quote(jinja.substr(0, 60)) +
           " is neither ChatML (<|im_start|>) nor Mistral ([INST])";
  return ChatFamily::kNone;
}

// A token field: a string, {"content": string}, or null/absent (*present = false).
vmm::Status TokenString(const object& config, std::string_view key, std::string_view* out,
                        bool* present) {
  element value;
  *present = OptionalMember(config, key, &value);
  if (!*present) return vmm::Status::Ok();
  const std::string where(key);
  object obj;
  if (value.get_object().get(obj) == simdjson::SUCCESS) {
    return RequiredString(obj, "content", where, out);
  }
  if (value.get_string().get(*out) != simdjson::SUCCESS) {
    return TypeError(where, "a string or an object with \"content\"", value);
  }
  return AsString(value, where, out);
}

vmm::Status ReadSpecialTokens(const object& config, Tokenizer::Impl* impl) {
  struct Field {
    const char* key;
    int32_t* id;
    std::string* text;
  };
  SpecialTokens& s = impl->special;
  for (const Field& f :
       {Field{"bos_token", &s.bos_id, &s.bos}, Field{"eos_token", &s.eos_id, &s.eos},
        Field{"pad_token", &s.pad_id, &s.pad}, Field{"unk_token", &s.unk_id, &s.unk}}) {
    std::string_view token;
    bool present;
    VMM_RETURN_IF_ERROR(TokenString(config, f.key, &token, &present));
    if (!present) continue;
    *f.id = FindToken(*impl, token);
    if (*f.id < 0) {
      return FieldError(f.key, Quote(token) + " is not a token of tokenizer.json");
    }
    *f.text = std::string(token);
  }
  return vmm::Status::Ok();
}

vmm::Status ReadChatTemplate(const object& config, Tokenizer::Impl* impl) {
  element value;
  if (!OptionalMember(config, "chat_template", &value)) return vmm::Status::Ok();
  std::string_view jinja;
  array list;
  if (value.get_array().get(list) == simdjson::SUCCESS) {
    bool found = false;
    size_t i = 0;
    for (element item : list) {
      const std::string where = ElementPath("chat_template", i++);
      object obj;
      std::string_view name;
      VMM_RETURN_IF_ERROR(AsObject(item, where, &obj));
      VMM_RETURN_IF_ERROR(RequiredString(obj, "name", where, &name));
      if (name != "default") continue;
      VMM_RETURN_IF_ERROR(RequiredString(obj, "template", where, &jinja));
      found = true;
    }
    if (!found) {
      impl->chat_template_error = "chat_template: no template named \"default\"";
      return vmm::Status::Ok();
    }
  } else {
    VMM_RETURN_IF_ERROR(AsString(value, "chat_template", &jinja));
  }
  impl->chat_family = FamilyOfTemplate(std::string(jinja), &impl->chat_template_error);
  return vmm::Status::Ok();
}

vmm::Status ReadAdditionalSpecial(const object& config, std::unordered_set<std::string>* out) {
  element value;
  if (!OptionalMember(config, "additional_special_tokens", &value)) return vmm::Status::Ok();
  array list;
  VMM_RETURN_IF_ERROR(AsArray(value, "additional_special_tokens", &list));
  size_t i = 0;
  for (element item : list) {
    const std::string where = ElementPath("additional_special_tokens", i++);
    std::string_view token;
    object obj;
    if (item.get_object().get(obj) == simdjson::SUCCESS) {
      VMM_RETURN_IF_ERROR(RequiredString(obj, "content", where, &token));
    } else {
      VMM_RETURN_IF_ERROR(AsString(item, where, &token));
    }
    out->insert(std::string(token));
  }
  return vmm::Status::Ok();
}

}  // namespace

int32_t FindToken(const Tokenizer::Impl& impl, std::string_view token) {
  if (auto it = impl.added_by_content.find(std::string(token)); it != impl.added_by_content.end()) {
    return it->second;
  }
  if (!impl.tokens.byte_level) return impl.model->Find(token);
  std::string bytes;
  return AlphabetToBytes(token, &bytes) ? impl.model->Find(bytes) : -1;
}

void FlagTokens(Tokenizer::Impl* impl) {
  const std::unordered_set<std::string>& special_strings = impl->special_strings;
  TokenTable& t = impl->tokens;
  // Only ids whose first byte starts some added or special string can match one.
  std::array<bool, 256> first{};
  const std::unordered_set<std::string>* sets[] = {&special_strings, &impl->added_contents};
  for (const std::unordered_set<std::string>* set : sets) {
    for (const std::string& s : *set) {
      if (!s.empty()) first[static_cast<unsigned char>(s[0])] = true;
    }
  }
  std::string key;
  for (int32_t id = 0; id < t.size(); ++id) {
    const std::string_view json = t.json(id);
    if (!(t.flags[id] & TokenTable::kPresent) || json.empty() ||
        !first[static_cast<unsigned char>(json[0])]) {
      continue;
    }
    key.assign(json);
    if (special_strings.count(key)) t.flags[id] |= TokenTable::kSpecial;
    if (impl->added_contents.count(key)) t.flags[id] |= TokenTable::kVerbatim;
  }
}

vmm::Status LoadTokenizerConfig(std::string_view config_json, Tokenizer::Impl* impl) {
  if (config_json.empty()) return vmm::Status::Ok();
  simdjson::dom::parser parser;
  std::string storage;
  element root;
  VMM_RETURN_IF_ERROR(ParseJson(config_json, &parser, &storage, &root));
  object config;
  VMM_RETURN_IF_ERROR(AsObject(root, "", &config));
  VMM_RETURN_IF_ERROR(ReadSpecialTokens(config, impl));
  VMM_RETURN_IF_ERROR(ReadChatTemplate(config, impl));
  VMM_RETURN_IF_ERROR(ReadAdditionalSpecial(config, &impl->special_strings));
  VMM_RETURN_IF_ERROR(OptionalBool(config, "clean_up_tokenization_spaces", "",
                                   &impl->clean_up_tokenization_spaces));
  for (const char* key : {"remove_space", "do_lowercase_and_remove_accent"}) {
    bool on = false;
    VMM_RETURN_IF_ERROR(OptionalBool(config, key, "", &on));
    if (on) return FieldError(key, "true is not supported");
  }
  return vmm::Status::Ok();
}

}  // namespace emoe::tokenizer::internal
