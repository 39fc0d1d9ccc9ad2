#include "hbm/json_reader.h"

#include <limits>

namespace emoe::hbm {

using nlohmann::json;

StatusOr<json> ParseJsonObject(const std::string& text, const std::string& what, StatusCode code) {
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return Status(
        code, 0,
        what + ": not a JSON object: '" + text.substr(0, 80) + (text.size() > 80 ? "...'" : "'"));
  }
  return j;
}

JsonReader::JsonReader(const json& value, std::string what, StatusCode code, std::string path)
    : value_(&value), what_(std::move(what)), code_(code), path_(std::move(path)) {}

const json* JsonReader::Find(const std::string& key) const {
  if (!value_->is_object()) return nullptr;
  auto it = value_->find(key);
  return it == value_->end() ? nullptr : &*it;
}

bool JsonReader::Has(const std::string& key) const { return Find(key) != nullptr; }

StatusOr<const json*> JsonReader::Get(const std::string& key) const {
  if (!value_->is_object()) {
    // The path names this object; without one the message itself is not an object.
    const std::string self = path_.empty() ? "" : path_.substr(0, path_.size() - 1);
    return Status(code_, 0,
                  what_ + ": " + (self.empty() ? "the message" : "field '" + self + "'") +
                      " must be an object");
  }
  const json* v = Find(key);
  if (v == nullptr) return Missing(key);
  return v;
}

Status JsonReader::Bad(const std::string& field, const std::string& type) const {
  return Status(code_, 0, what_ + ": field '" + path_ + field + "' must be " + type);
}

Status JsonReader::Missing(const std::string& field) const {
  return Status(code_, 0, what_ + ": field '" + path_ + field + "' is required");
}

Status JsonReader::Invalid(const std::string& field, const std::string& message) const {
  return Status(code_, 0, what_ + ": field '" + path_ + field + "' " + message);
}

Status JsonReader::Mismatch(const std::string& field, const std::string& type,
                            const json& v) const {
  std::string got;
  if (v.is_number()) {
    got = v.dump();  // the number as written: "1.5", "-1", "1e+30"
  } else if (v.is_boolean()) {
    got = v.get<bool>() ? "true" : "false";
  } else if (v.is_string()) {
    got = "a string";
  } else if (v.is_array()) {
    got = "an array";
  } else if (v.is_object()) {
    got = "an object";
  } else {
    got = "null";
  }
  return Bad(field, type + ", got " + got);
}

JsonReader JsonReader::Nested(const json& v, const std::string& field) const {
  return JsonReader(v, what_, code_, path_ + field + ".");
}

StatusOr<int64_t> JsonReader::ToInt64(const json& v, const std::string& field) const {
  if (v.is_number_unsigned()) {
    if (v.get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return Mismatch(field, "a 64-bit integer", v);
    }
    return static_cast<int64_t>(v.get<uint64_t>());
  }
  if (!v.is_number_integer()) return Mismatch(field, "an integer", v);
  return v.get<int64_t>();
}

StatusOr<int> JsonReader::ToInt(const json& v, const std::string& field) const {
  VMM_ASSIGN_OR_RETURN(int64_t i, ToInt64(v, field));
  if (i < std::numeric_limits<int>::min() || i > std::numeric_limits<int>::max()) {
    return Mismatch(field, "an int", v);
  }
  return static_cast<int>(i);
}

StatusOr<std::string> JsonReader::ToStr(const json& v, const std::string& field) const {
  if (!v.is_string()) return Mismatch(field, "a string", v);
  return v.get<std::string>();
}

StatusOr<bool> JsonReader::Bool(const std::string& key) const {
  VMM_ASSIGN_OR_RETURN(const json* v, Get(key));
  if (!v->is_boolean()) return Mismatch(key, "a boolean", *v);
  return v->get<bool>();
}

StatusOr<int> JsonReader::Int(const std::string& key) const {
  VMM_ASSIGN_OR_RETURN(const json* v, Get(key));
  return ToInt(*v, key);
}

StatusOr<int64_t> JsonReader::Int64(const std::string& key) const {
  VMM_ASSIGN_OR_RETURN(const json* v, Get(key));
  return ToInt64(*v, key);
}

StatusOr<uint64_t> JsonReader::U64(const std::string& key) const {
  VMM_ASSIGN_OR_RETURN(const json* v, Get(key));
  if (!v->is_number_unsigned()) return Mismatch(key, "a non-negative integer", *v);
  return v->get<uint64_t>();
}

StatusOr<double> JsonReader::Double(const std::string& key) const {
  VMM_ASSIGN_OR_RETURN(const json* v, Get(key));
  if (!v->is_number()) return Mismatch(key, "a number", *v);
  return v->get<double>();
}

StatusOr<std::string> JsonReader::Str(const std::string& key) const {
  VMM_ASSIGN_OR_RETURN(const json* v, Get(key));
  return ToStr(*v, key);
}

StatusOr<const json*> JsonReader::Array(const std::string& key) const {
  VMM_ASSIGN_OR_RETURN(const json* v, Get(key));
  if (!v->is_array()) return Bad(key, "an array");
  return v;
}

StatusOr<std::vector<int>> JsonReader::IntList(const std::string& key) const {
  VMM_ASSIGN_OR_RETURN(const json* v, Get(key));
  if (!v->is_array()) return Bad(key, "an array of integers");
  std::vector<int> out;
  for (const json& e : *v) {
    auto i = ToInt(e, key);
    if (!i.ok()) return Bad(key, "an array of integers");
    out.push_back(*i);
  }
  return out;
}

StatusOr<std::vector<int64_t>> JsonReader::Int64List(const std::string& key) const {
  VMM_ASSIGN_OR_RETURN(const json* v, Get(key));
  if (!v->is_array()) return Bad(key, "an array of integers");
  std::vector<int64_t> out;
  for (const json& e : *v) {
    auto i = ToInt64(e, key);
    if (!i.ok()) return Bad(key, "an array of integers");
    out.push_back(*i);
  }
  return out;
}

StatusOr<std::vector<std::string>> JsonReader::StrList(const std::string& key) const {
  VMM_ASSIGN_OR_RETURN(const json* v, Get(key));
  if (!v->is_array()) return Bad(key, "an array of strings");
  std::vector<std::string> out;
  for (const json& e : *v) {
    if (!e.is_string()) return Bad(key, "an array of strings");
    out.push_back(e.get<std::string>());
  }
  return out;
}

StatusOr<JsonReader> JsonReader::Object(const std::string& key) const {
  VMM_ASSIGN_OR_RETURN(const json* v, Get(key));
  if (!v->is_object()) return Bad(key, "an object");
  return Nested(*v, key);
}

StatusOr<std::vector<JsonReader>> JsonReader::ObjectList(const std::string& key) const {
  VMM_ASSIGN_OR_RETURN(const json* v, Get(key));
  if (!v->is_array()) return Bad(key, "an array of objects");
  std::vector<JsonReader> out;
  for (size_t i = 0; i < v->size(); ++i) {
    if (!(*v)[i].is_object()) return Bad(key, "an array of objects");
    out.push_back(Nested((*v)[i], key + "[" + std::to_string(i) + "]"));
  }
  return out;
}

StatusOr<bool> JsonReader::Bool(const std::string& key, bool def) const {
  return Has(key) ? Bool(key) : def;
}
StatusOr<int> JsonReader::Int(const std::string& key, int def) const {
  return Has(key) ? Int(key) : def;
}
StatusOr<int64_t> JsonReader::Int64(const std::string& key, int64_t def) const {
  return Has(key) ? Int64(key) : def;
}
StatusOr<double> JsonReader::Double(const std::string& key, double def) const {
  return Has(key) ? Double(key) : def;
}
StatusOr<uint64_t> JsonReader::U64(const std::string& key, uint64_t def) const {
  return Has(key) ? U64(key) : def;
}
StatusOr<std::string> JsonReader::Str(const std::string& key, const std::string& def) const {
  return Has(key) ? Str(key) : def;
}

}  // namespace emoe::hbm
