// instances/json_fields.h: checked access to the fields of a JSON message of the
// instance-process protocol (engine/remote_instance.h). A missing (when required) or mistyped
// field is kInvalidArgument naming the message and the field ("attach: field 'devices' must be
// an array of integers"); nothing throws. A thin view over the hmmd protocol's reader
// (hbm/json_reader.h), so both protocols check types and word errors the same way.
//
// Thread safety: a JsonFields only reads the JSON it refers to, which must outlive it.
#ifndef ENGINE_INSTANCES_JSON_FIELDS_H_
#define ENGINE_INSTANCES_JSON_FIELDS_H_

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "vmm/status.h"

namespace emoe::engine {

using vmm::Status;

// Whether a missing field is an error (kRequired) or leaves the output as the caller set it,
// its default (kOptional). A present field of the wrong type is an error either way.
enum class Need { kRequired, kOptional };

class JsonFields {
 public:
  // `obj` (any JSON value: a non-object has no fields) must outlive this; `context` names the
  // message in errors ("attach", "attach: stores[2]").
  JsonFields(const nlohmann::json& obj, std::string context)
      : obj_(obj), context_(std::move(context)) {}

  bool Has(const char* field) const { return obj_.is_object() && obj_.contains(field); }
  const std::string& context() const { return context_; }

  Status Int(const char* field, int64_t* out, Need need = Need::kRequired) const;
  Status Int(const char* field, int* out, Need need = Need::kRequired) const;
  Status Uint(const char* field, uint64_t* out, Need need = Need::kRequired) const;
  Status Double(const char* field, double* out, Need need = Need::kRequired) const;
  Status String(const char* field, std::string* out, Need need = Need::kRequired) const;
  Status IntArray(const char* field, std::vector<int>* out, Need need = Need::kRequired) const;
  // An array of arrays of integers ("cpus", "owner").
  Status IntArrays(const char* field, std::vector<std::vector<int>>* out,
                   Need need = Need::kRequired) const;
  // *out points at the object inside the message.
  Status Object(const char* field, const nlohmann::json** out) const;
  // One JsonFields per element, each an object, named "<context>: <field>[i]".
  Status ObjectArray(const char* field, std::vector<JsonFields>* out) const;

 private:
  const nlohmann::json& obj_;
  std::string context_;
};

// Adds an instance process's timing parts of a reply ({"phases": {"name": seconds, ...}}, which
// is optional) to `out`, and "rpc": `round_trip_s` minus their sum (at least 0). Diagnostics
// never fail the request they came with: a part that is not a finite number >= 0, or "phases"
// that is not an object, is skipped and counted in `*skipped`.
void AddTimingParts(const nlohmann::json& reply, double round_trip_s,
                    std::map<std::string, double>* out, int* skipped);

}  // namespace emoe::engine

#endif  // ENGINE_INSTANCES_JSON_FIELDS_H_
