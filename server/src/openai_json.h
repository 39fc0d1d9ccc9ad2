// server/src/openai_json.h (private to server_api): the JSON of request bodies, read without
// exceptions. ParseBody parses any bytes with nlohmann's SAX parser while keeping the path of the
// value being read, so that a fault names its field and its byte offset:
//   "'messages[0].content': invalid UTF-8 in a string (JSON text must be UTF-8) at byte 57"
// A Fields reader then reads an object's members by type and range; every error names the
// field, what was expected and what came (the value's JSON, cut to about 40 bytes). Only
// type-checked accessors are called (is_number_integer() before get<int64_t>(), ...), so no
// nlohmann exception can be thrown whatever the input.
//
// Thread safety: plain functions; a Fields is a view of a json it does not own.
#ifndef SERVER_SRC_OPENAI_JSON_H_
#define SERVER_SRC_OPENAI_JSON_H_

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include "server/openai_api.h"

namespace emoe::server::internal {

using Json = nlohmann::json;
// An error or nothing: what the readers return.
using MaybeError = std::optional<ApiError>;

// Returns from the enclosing function when `expr` (a MaybeError) holds an error.
#define SERVER_RETURN_IF_ERROR(expr)        \
  do {                                      \
    if (MaybeError e_ = (expr)) return *e_; \
  } while (0)

// Containers nested deeper than this are refused (no request needs more than 4 levels).
inline constexpr int kMaxJsonDepth = 64;

// `body` parsed as a JSON object. Errors (400): empty body, a JSON fault (its reason, the field
// being read and the byte offset where the parser stopped; invalid UTF-8 is said so), nesting
// deeper than kMaxJsonDepth, a root that is not an object.
std::variant<Json, ApiError> ParseBody(std::string_view body);

// How an error shows a value: its JSON text (UTF-8 kept), cut at a character boundary to at most
// 40 bytes followed by "...".
std::string Shown(const Json& v);
// "a string", "an integer", "a number", "a boolean", "null", "an object", "an array".
const char* KindOf(const Json& v);
// The integer value of `v` when it is a JSON integer, or a float with no fraction, within
// int64_t; nullopt otherwise.
std::optional<int64_t> IntegerOf(const Json& v);

// Reads the members of one JSON object. `prefix` names the object in errors ("" at the top,
// "messages[2]." inside). An absent member and a JSON null are the same (the default stays),
// except where a reader says otherwise.
class Fields {
 public:
  // REQUIRES: obj is an object and outlives the reader.
  Fields(const Json& obj, std::string prefix) : obj_(&obj), prefix_(std::move(prefix)) {}

  // The member, or null when absent or JSON null.
  const Json* Get(std::string_view key) const;
  // Whether the member is there at all (a JSON null counts).
  bool Present(std::string_view key) const;
  // "prefix + key", the name errors use.
  std::string Name(std::string_view key) const;

  // Each leaves *out as it is when the member is absent or null; a wrong type or a value out of
  // range is a 400 naming the field: "'top_p' must be a number in (0, 1], got 0".
  MaybeError Bool(std::string_view key, bool* out) const;
  MaybeError String(std::string_view key, std::string* out) const;
  MaybeError Int(std::string_view key, int64_t lo, int64_t hi, int64_t* out) const;
  // A number in [lo, hi], or (lo, hi] when lo_open.
  MaybeError Number(std::string_view key, double lo, double hi, bool lo_open, double* out) const;

  // A 400 for this field: "'<name>' must be <expected>, got <shown value>".
  ApiError Wrong(std::string_view key, const std::string& expected, const Json& got) const;

 private:
  const Json* obj_;
  std::string prefix_;
};

}  // namespace emoe::server::internal

#endif  // SERVER_SRC_OPENAI_JSON_H_
