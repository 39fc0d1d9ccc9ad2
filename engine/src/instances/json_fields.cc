#include "instances/json_fields.h"

#include <algorithm>
#include <cmath>

#include "hbm/json_reader.h"

namespace emoe::engine {

using nlohmann::json;
using vmm::StatusOr;

namespace {

// Reads `field` with `read` (an hbm::JsonReader accessor) into *out; a missing optional field
// leaves *out as it is.
template <typename T, typename Read>
Status ReadField(const JsonFields& f, const json& obj, const char* field, Need need, T* out,
                 Read read) {
  if (need == Need::kOptional && !f.Has(field)) return Status::Ok();
  const hbm::JsonReader r(obj, f.context());
  auto v = read(r, field);
  if (!v.ok()) return v.status();
  *out = std::move(*v);
  return Status::Ok();
}

}  // namespace

// The instance protocol reads its messages with the hmmd protocol's reader (hbm/json_reader.h):
// one set of type checks and error texts for both.
Status JsonFields::Int(const char* field, int64_t* out, Need need) const {
  return ReadField(*this, obj_, field, need, out,
                   [](const hbm::JsonReader& r, const char* k) { return r.Int64(k); });
}

Status JsonFields::Int(const char* field, int* out, Need need) const {
  return ReadField(*this, obj_, field, need, out,
                   [](const hbm::JsonReader& r, const char* k) { return r.Int(k); });
}

Status JsonFields::Uint(const char* field, uint64_t* out, Need need) const {
  return ReadField(*this, obj_, field, need, out,
                   [](const hbm::JsonReader& r, const char* k) { return r.U64(k); });
}

Status JsonFields::Double(const char* field, double* out, Need need) const {
  return ReadField(*this, obj_, field, need, out,
                   [](const hbm::JsonReader& r, const char* k) { return r.Double(k); });
}

Status JsonFields::String(const char* field, std::string* out, Need need) const {
  return ReadField(*this, obj_, field, need, out,
                   [](const hbm::JsonReader& r, const char* k) { return r.Str(k); });
}

Status JsonFields::IntArray(const char* field, std::vector<int>* out, Need need) const {
  return ReadField(*this, obj_, field, need, out,
                   [](const hbm::JsonReader& r, const char* k) { return r.IntList(k); });
}

Status JsonFields::IntArrays(const char* field, std::vector<std::vector<int>>* out,
                             Need need) const {
  auto read = [](const hbm::JsonReader& r,
                 const char* k) -> StatusOr<std::vector<std::vector<int>>> {
    const char* type = "an array of arrays of integers";
    auto a = r.Array(k);
    if (!a.ok()) return a.status().code() == r.code() && r.Has(k) ? r.Bad(k, type) : a.status();
    std::vector<std::vector<int>> rows;
    rows.reserve((*a)->size());
    for (const json& row : **a) {
      if (!row.is_array()) return r.Bad(k, type);
      std::vector<int> ints;
      ints.reserve(row.size());
      for (const json& e : row) {
        auto i = r.ToInt(e, k);
        if (!i.ok()) return r.Bad(k, type);
        ints.push_back(*i);
      }
      rows.push_back(std::move(ints));
    }
    return rows;
  };
  return ReadField(*this, obj_, field, need, out, read);
}

Status JsonFields::Object(const char* field, const json** out) const {
  const hbm::JsonReader r(obj_, context_);
  auto o = r.Object(field);
  if (!o.ok()) return o.status();
  *out = &o->value();
  return Status::Ok();
}

Status JsonFields::ObjectArray(const char* field, std::vector<JsonFields>* out) const {
  const hbm::JsonReader r(obj_, context_);
  auto list = r.ObjectList(field);
  if (!list.ok()) return list.status();
  out->clear();
  for (size_t i = 0; i < list->size(); ++i) {
    out->emplace_back((*list)[i].value(), context_ + ": " + field + "[" + std::to_string(i) + "]");
  }
  return Status::Ok();
}

void AddTimingParts(const nlohmann::json& reply, double round_trip_s,
                    std::map<std::string, double>* out, int* skipped) {
  double inside = 0;
  if (reply.is_object() && reply.contains("phases")) {
    const nlohmann::json& parts = reply["phases"];
    if (!parts.is_object()) {
      ++*skipped;
    } else {
      for (const auto& [name, value] : parts.items()) {
        const double s = value.is_number() ? value.get<double>() : -1;
        if (!std::isfinite(s) || s < 0) {
          ++*skipped;
          continue;
        }
        (*out)[name] += s;
        inside += s;
      }
    }
  }
  (*out)["rpc"] += std::max(0.0, round_trip_s - inside);
}

}  // namespace emoe::engine
