// tokenizer/src/json_fields.h: type-checked access to tokenizer.json / tokenizer_config.json
// values (simdjson DOM, its error-code API: no exceptions), each error naming the JSON path.
//
// `where` is the path of the value being read ("pre_tokenizer.pretokenizers[0]"); the helpers
// append ".key" / "[i]" for members and elements. Every error is kInvalidArgument and reads
// "<path>: <problem>", e.g. "model.merges[7]: expected a string or an array of two strings,
// found a number". The caller prefixes the file's name.
//
// Thread safety: pure functions over an immutable DOM.
#ifndef TOKENIZER_SRC_JSON_FIELDS_H_
#define TOKENIZER_SRC_JSON_FIELDS_H_

#include <simdjson.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "vmm/status.h"

namespace emoe::tokenizer::internal {

using simdjson::dom::array;
using simdjson::dom::element;
using simdjson::dom::object;

// Parses `json` into *root (owned by *parser, which must outlive it). Integers too large for 64
// bits (tokenizer_config.json's "model_max_length": 1000000000000000019884624838656), which
// simdjson refuses but JSON.parse reads as doubles, are re-read as doubles: the text is copied
// into *storage with ".0" after each such literal. Invalid JSON is kDataLoss naming simdjson's
// error.
vmm::Status ParseJson(std::string_view json, simdjson::dom::parser* parser, std::string* storage,
                      element* root);

// "a string", "an object", "null", ... (for messages).
const char* JsonTypeName(const element& e);
// "<where>.<key>" and "<where>[<i>]".
std::string MemberPath(const std::string& where, std::string_view key);
std::string ElementPath(const std::string& where, size_t i);
// kInvalidArgument "<where>: <problem>".
vmm::Status FieldError(const std::string& where, const std::string& problem);
// kInvalidArgument "<where>: expected <expected>, found <type of e>".
vmm::Status TypeError(const std::string& where, const char* expected, const element& e);

// `e` as an object / array / string; a type error otherwise.
vmm::Status AsObject(const element& e, const std::string& where, object* out);
vmm::Status AsArray(const element& e, const std::string& where, array* out);
vmm::Status AsString(const element& e, const std::string& where, std::string_view* out);

// Member `key` of `obj`: *found = false when it is absent or null (the Rust crate's Option).
bool OptionalMember(const object& obj, std::string_view key, element* out);
// A required member (absent or null is "<where>.<key>: missing").
vmm::Status RequiredMember(const object& obj, std::string_view key, const std::string& where,
                           element* out);

// Typed members. The Optional forms leave *out unchanged (the default) when the member is absent
// or null; a present member of the wrong type is an error.
vmm::Status RequiredString(const object& obj, std::string_view key, const std::string& where,
                           std::string_view* out);
vmm::Status OptionalString(const object& obj, std::string_view key, const std::string& where,
                           std::string_view* out, bool* present = nullptr);
vmm::Status OptionalBool(const object& obj, std::string_view key, const std::string& where,
                         bool* out);
// An integer in [min, max] (a JSON number without fraction: 3, not 3.0 or "3").
vmm::Status AsInt(const element& e, const std::string& where, int64_t min, int64_t max,
                  int64_t* out);
vmm::Status OptionalInt(const object& obj, std::string_view key, const std::string& where,
                        int64_t min, int64_t max, int64_t* out);

// The "type" member of a component object, required to be a string.
vmm::Status ComponentType(const object& obj, const std::string& where, std::string_view* out);
// kInvalidArgument "<where>: type '<type>' is not supported (supported: <supported>)".
vmm::Status UnsupportedType(const std::string& where, std::string_view type, const char* supported);

// `s` quoted for a message, with control characters escaped and long strings shortened.
std::string Quote(std::string_view s);

}  // namespace emoe::tokenizer::internal

#endif  // TOKENIZER_SRC_JSON_FIELDS_H_
