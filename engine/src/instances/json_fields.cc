#include "instances/json_fields.h"

#include <limits>

namespace emoe::engine {

using nlohmann::json;

namespace {

// Whether `v` is an integer that fits an int.
bool AsInt(const json& v, int* out) {
  if (v.is_number_unsigned()) {
    if (v.get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int>::max())) return false;
    *out = static_cast<int>(v.get<uint64_t>());
    return true;
  }
  if (!v.is_number_integer()) return false;
  const int64_t i = v.get<int64_t>();
  if (i < std::numeric_limits<int>::min() || i > std::numeric_limits<int>::max()) return false;
  *out = static_cast<int>(i);
  return true;
}

bool AsIntArray(const json& v, std::vector<int>* out) {
  if (!v.is_array()) return false;
  std::vector<int> r;
  r.reserve(v.size());
  for (const json& e : v) {
    int i = 0;
    if (!AsInt(e, &i)) return false;
    r.push_back(i);
  }
  *out = std::move(r);
  return true;
}

}  // namespace

Status JsonFields::Find(const char* field, Need need, const json** v) const {
  *v = nullptr;
  if (Has(field)) {
    *v = &*obj_.find(field);
    return Status::Ok();
  }
  if (need == Need::kOptional) return Status::Ok();
  return Status::InvalidArgument(context_ + ": field '" + field + "' is required");
}

Status JsonFields::Bad(const char* field, const char* type) const {
  return Status::InvalidArgument(context_ + ": field '" + field + "' must be " + type);
}

Status JsonFields::Int(const char* field, int64_t* out, Need need) const {
  const json* v;
  VMM_RETURN_IF_ERROR(Find(field, need, &v));
  if (v == nullptr) return Status::Ok();
  if (v->is_number_unsigned()) {
    if (v->get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return Bad(field, "a 64-bit integer");
    }
  } else if (!v->is_number_integer()) {
    return Bad(field, "an integer");
  }
  *out = v->get<int64_t>();
  return Status::Ok();
}

Status JsonFields::Int(const char* field, int* out, Need need) const {
  const json* v;
  VMM_RETURN_IF_ERROR(Find(field, need, &v));
  if (v != nullptr && !AsInt(*v, out)) return Bad(field, "an int");
  return Status::Ok();
}

Status JsonFields::Uint(const char* field, uint64_t* out, Need need) const {
  const json* v;
  VMM_RETURN_IF_ERROR(Find(field, need, &v));
  if (v == nullptr) return Status::Ok();
  // nlohmann parses non-negative integers as unsigned.
  if (!v->is_number_unsigned()) return Bad(field, "a non-negative integer");
  *out = v->get<uint64_t>();
  return Status::Ok();
}

Status JsonFields::Double(const char* field, double* out, Need need) const {
  const json* v;
  VMM_RETURN_IF_ERROR(Find(field, need, &v));
  if (v == nullptr) return Status::Ok();
  if (!v->is_number()) return Bad(field, "a number");
  *out = v->get<double>();
  return Status::Ok();
}

Status JsonFields::String(const char* field, std::string* out, Need need) const {
  const json* v;
  VMM_RETURN_IF_ERROR(Find(field, need, &v));
  if (v == nullptr) return Status::Ok();
  if (!v->is_string()) return Bad(field, "a string");
  *out = v->get<std::string>();
  return Status::Ok();
}

Status JsonFields::IntArray(const char* field, std::vector<int>* out, Need need) const {
  const json* v;
  VMM_RETURN_IF_ERROR(Find(field, need, &v));
  if (v != nullptr && !AsIntArray(*v, out)) return Bad(field, "an array of integers");
  return Status::Ok();
}

Status JsonFields::IntArrays(const char* field, std::vector<std::vector<int>>* out,
                             Need need) const {
  const json* v;
  VMM_RETURN_IF_ERROR(Find(field, need, &v));
  if (v == nullptr) return Status::Ok();
  if (!v->is_array()) return Bad(field, "an array of arrays of integers");
  std::vector<std::vector<int>> r(v->size());
  for (size_t i = 0; i < v->size(); ++i) {
    if (!AsIntArray((*v)[i], &r[i])) return Bad(field, "an array of arrays of integers");
  }
  *out = std::move(r);
  return Status::Ok();
}

Status JsonFields::Object(const char* field, const json** out) const {
  VMM_RETURN_IF_ERROR(Find(field, Need::kRequired, out));
  if (!(*out)->is_object()) return Bad(field, "an object");
  return Status::Ok();
}

Status JsonFields::ObjectArray(const char* field, std::vector<JsonFields>* out) const {
  const json* v;
  VMM_RETURN_IF_ERROR(Find(field, Need::kRequired, &v));
  if (!v->is_array()) return Bad(field, "an array of objects");
  out->clear();
  for (size_t i = 0; i < v->size(); ++i) {
    if (!(*v)[i].is_object()) return Bad(field, "an array of objects");
    out->emplace_back((*v)[i], context_ + ": " + field + "[" + std::to_string(i) + "]");
  }
  return Status::Ok();
}

}  // namespace emoe::engine
