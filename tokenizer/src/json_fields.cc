// tokenizer/src/json_fields.cc: the type-checked JSON accessors of json_fields.h.
#include "json_fields.h"

#include <cstdio>

#include "text_pipeline.h"

namespace emoe::tokenizer::internal {

using simdjson::dom::element_type;

namespace {

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

// `json` with ".0" appended to integer literals of 19 or more digits (outside strings).
std::string WithBigIntegersAsDoubles(std::string_view json) {
  std::string out;
  out.reserve(json.size() + 64);
  bool in_string = false;
  for (size_t i = 0; i < json.size();) {
    const char c = json[i];
    if (in_string) {
      out.push_back(c);
      if (c == '\\' && i + 1 < json.size())
        out.push_back(json[++i]);
      else if (c == '"')
        in_string = false;
      ++i;
      continue;
    }
    if (c == '"') in_string = true;
    if (c != '-' && !IsDigit(c)) {
      out.push_back(c);
      ++i;
      continue;
    }
    size_t j = i + (c == '-' ? 1 : 0);
    const size_t digits_start = j;
    while (j < json.size() && IsDigit(json[j])) ++j;
    const bool integer = j >= json.size() || (json[j] != '.' && json[j] != 'e' && json[j] != 'E');
    out.append(json.data() + i, j - i);
    if (integer && j - digits_start >= 19) out += ".0";
    i = j;
  }
  return out;
}

}  // namespace

vmm::Status ParseJson(std::string_view json, simdjson::dom::parser* parser, std::string* storage,
                      element* root) {
  auto err = parser->parse(json.data(), json.size()).get(*root);
  if (err == simdjson::NUMBER_ERROR) {
    *storage = WithBigIntegersAsDoubles(json);
    err = parser->parse(storage->data(), storage->size()).get(*root);
  }
  if (err != simdjson::SUCCESS) {
    return vmm::Status::DataLoss(std::string("not valid JSON: ") + simdjson::error_message(err));
  }
  return vmm::Status::Ok();
}

const char* JsonTypeName(const element& e) {
  switch (e.type()) {
    case element_type::ARRAY:
      return "an array";
    case element_type::OBJECT:
      return "an object";
    case element_type::INT64:
    case element_type::UINT64:
    case element_type::DOUBLE:
      return "a number";
    case element_type::STRING:
      return "a string";
    case element_type::BOOL:
      return "a boolean";
    case element_type::NULL_VALUE:
      return "null";
  }
  return "an unknown value";
}

std::string MemberPath(const std::string& where, std::string_view key) {
  if (where.empty()) return std::string(key);
  return where + "." + std::string(key);
}

std::string ElementPath(const std::string& where, size_t i) {
  return where + "[" + std::to_string(i) + "]";
}

vmm::Status FieldError(const std::string& where, const std::string& problem) {
  return vmm::Status::InvalidArgument((where.empty() ? std::string("(top level)") : where) + ": " +
                                      problem);
}

vmm::Status TypeError(const std::string& where, const char* expected, const element& e) {
  return FieldError(where, std::string("expected ") + expected + ", found " + JsonTypeName(e));
}

vmm::Status AsObject(const element& e, const std::string& where, object* out) {
  if (e.get_object().get(*out) != simdjson::SUCCESS) return TypeError(where, "an object", e);
  return vmm::Status::Ok();
}

vmm::Status AsArray(const element& e, const std::string& where, array* out) {
  if (e.get_array().get(*out) != simdjson::SUCCESS) return TypeError(where, "an array", e);
  return vmm::Status::Ok();
}

vmm::Status AsString(const element& e, const std::string& where, std::string_view* out) {
  if (e.get_string().get(*out) != simdjson::SUCCESS) return TypeError(where, "a string", e);
  // simdjson validates the document's UTF-8 but may let a lone surrogate escape ("\udc00")
  // through as CESU-8; every stage relies on valid UTF-8.
  if (!IsValidUtf8(*out)) return FieldError(where, "not valid UTF-8 (a lone surrogate?)");
  return vmm::Status::Ok();
}

bool OptionalMember(const object& obj, std::string_view key, element* out) {
  element value;
  if (obj.at_key(key).get(value) != simdjson::SUCCESS) return false;
  if (value.is_null()) return false;
  *out = value;
  return true;
}

vmm::Status RequiredMember(const object& obj, std::string_view key, const std::string& where,
                           element* out) {
  if (!OptionalMember(obj, key, out)) return FieldError(MemberPath(where, key), "missing");
  return vmm::Status::Ok();
}

vmm::Status RequiredString(const object& obj, std::string_view key, const std::string& where,
                           std::string_view* out) {
  element value;
  VMM_RETURN_IF_ERROR(RequiredMember(obj, key, where, &value));
  return AsString(value, MemberPath(where, key), out);
}

vmm::Status OptionalString(const object& obj, std::string_view key, const std::string& where,
                           std::string_view* out, bool* present) {
  element value;
  const bool found = OptionalMember(obj, key, &value);
  if (present != nullptr) *present = found;
  if (!found) return vmm::Status::Ok();
  return AsString(value, MemberPath(where, key), out);
}

vmm::Status OptionalBool(const object& obj, std::string_view key, const std::string& where,
                         bool* out) {
  element value;
  if (!OptionalMember(obj, key, &value)) return vmm::Status::Ok();
  if (value.get_bool().get(*out) != simdjson::SUCCESS) {
    return TypeError(MemberPath(where, key), "a boolean", value);
  }
  return vmm::Status::Ok();
}

vmm::Status AsInt(const element& e, const std::string& where, int64_t min, int64_t max,
                  int64_t* out) {
  int64_t v;
  if (e.type() == element_type::UINT64) {
    return FieldError(
        where, "integer out of range [" + std::to_string(min) + ", " + std::to_string(max) + "]");
  }
  if (e.get_int64().get(v) != simdjson::SUCCESS) return TypeError(where, "an integer", e);
  if (v < min || v > max) {
    return FieldError(where, std::to_string(v) + " is out of range [" + std::to_string(min) + ", " +
                                 std::to_string(max) + "]");
  }
  *out = v;
  return vmm::Status::Ok();
}

vmm::Status OptionalInt(const object& obj, std::string_view key, const std::string& where,
                        int64_t min, int64_t max, int64_t* out) {
  element value;
  if (!OptionalMember(obj, key, &value)) return vmm::Status::Ok();
  return AsInt(value, MemberPath(where, key), min, max, out);
}

vmm::Status ComponentType(const object& obj, const std::string& where, std::string_view* out) {
  return RequiredString(obj, "type", where, out);
}

vmm::Status UnsupportedType(const std::string& where, std::string_view type,
                            const char* supported) {
  return FieldError(where, "type " + Quote(type) +
                               " is not supported (supported: " + std::string(supported) + ")");
}

std::string Quote(std::string_view s) {
  constexpr size_t kMaxShown = 60;
  std::string out = "'";
  size_t shown = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (shown >= kMaxShown && (c & 0xC0) != 0x80) {
      out += "...";
      break;
    }
    if (c < 0x20 || c == 0x7F) {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\x%02X", c);
      out += buf;
    } else {
      out.push_back(static_cast<char>(c));
    }
    if ((c & 0xC0) != 0x80) ++shown;
  }
  out += "'";
  return out;
}

}  // namespace emoe::tokenizer::internal
