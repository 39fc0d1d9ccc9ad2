// hbm/json_reader.h: reading JSON messages without exceptions.
//
// Every message of the hmmd protocol (hbm/server.h), and the instance-process protocol
// (engine/remote_instance.h), is a JSON object. ParseJsonObject() parses one without throwing
// (nlohmann's json::parse(text, nullptr, false)); a JsonReader then reads its fields by type: a
// missing or wrongly typed field is a Status naming the message and the field's path,
//   "load: field 'placement.layer0.devices' must be an array of integers"
//   "hmmd: malformed stats reply: field 'devices[1].usage[2].kind' is required".
// The Status code is the reader's: kInvalidArgument for requests (the sender's mistake),
// kDataLoss for replies (a broken peer). Numbers are checked against the type asked for (an
// int field holding 4294967296 or -1 for a uint64_t is refused, never wrapped), and a scalar of
// the wrong type says what it got ("field 'decoder_sparse_step' must be an integer, got a
// string"; "... must be an integer, got 1.5"). Only type-checked nlohmann accessors are called:
// no exception escapes, whatever the value.
//
// Thread safety: a JsonReader is a view of a json value it does not own; the value must outlive
// it and not change meanwhile. Distinct readers may be used from distinct threads.
#ifndef HBM_JSON_READER_H_
#define HBM_JSON_READER_H_

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "vmm/status.h"

namespace emoe::hbm {

using vmm::Status;
using vmm::StatusCode;
using vmm::StatusOr;

// `text` parsed as a JSON object. Not JSON, truncated, or not an object: a Status of `code`
// "<what>: not a JSON object" (with the first bytes of the text).
StatusOr<nlohmann::json> ParseJsonObject(const std::string& text, const std::string& what,
                                         StatusCode code = StatusCode::kInvalidArgument);

class JsonReader {
 public:
  // Reads `value` (an object, or the reader's accessors all fail), naming errors "<what>: field
  // '<path><key>'". `path` is the prefix of nested readers ("placement.layer0.").
  JsonReader(const nlohmann::json& value, std::string what,
             StatusCode code = StatusCode::kInvalidArgument, std::string path = "");

  const nlohmann::json& value() const { return *value_; }
  const std::string& what() const { return what_; }
  StatusCode code() const { return code_; }
  // Whether the object has `key` (any type).
  bool Has(const std::string& key) const;

  // Required fields: missing -> "... is required"; wrong type -> "... must be <type>".
  StatusOr<bool> Bool(const std::string& key) const;
  StatusOr<int> Int(const std::string& key) const;
  StatusOr<int64_t> Int64(const std::string& key) const;
  StatusOr<uint64_t> U64(const std::string& key) const;
  StatusOr<double> Double(const std::string& key) const;  // any JSON number
  StatusOr<std::string> Str(const std::string& key) const;
  StatusOr<std::vector<int>> IntList(const std::string& key) const;
  StatusOr<std::vector<int64_t>> Int64List(const std::string& key) const;
  StatusOr<std::vector<std::string>> StrList(const std::string& key) const;
  // A nested object, as a reader whose paths continue "<key>.".
  StatusOr<JsonReader> Object(const std::string& key) const;
  // An array field's elements, each as a reader of its own ("<key>[i]." paths); elements that
  // are not objects fail when read. ObjectList refuses them at once.
  StatusOr<std::vector<JsonReader>> ObjectList(const std::string& key) const;
  // An array field as it is (for elements that are not objects).
  StatusOr<const nlohmann::json*> Array(const std::string& key) const;

  // Optional fields: `def` when the key is absent; a present, wrongly typed one still fails.
  StatusOr<bool> Bool(const std::string& key, bool def) const;
  StatusOr<int> Int(const std::string& key, int def) const;
  StatusOr<int64_t> Int64(const std::string& key, int64_t def) const;
  StatusOr<double> Double(const std::string& key, double def) const;
  StatusOr<uint64_t> U64(const std::string& key, uint64_t def) const;
  StatusOr<std::string> Str(const std::string& key, const std::string& def) const;

  // Element readers for arrays of scalars: `v` is named `field` in errors.
  StatusOr<int> ToInt(const nlohmann::json& v, const std::string& field) const;
  StatusOr<int64_t> ToInt64(const nlohmann::json& v, const std::string& field) const;
  StatusOr<std::string> ToStr(const nlohmann::json& v, const std::string& field) const;

  // "<what>: field '<path><field>' must be <type>" / "... is required", of the reader's code.
  Status Bad(const std::string& field, const std::string& type) const;
  Status Missing(const std::string& field) const;
  // "<what>: field '<path><field>' <message>" (a value of the right type that is not allowed).
  Status Invalid(const std::string& field, const std::string& message) const;
  // Bad(field, "<type>, got <what v is>"): a number as written, else its JSON type.
  Status Mismatch(const std::string& field, const std::string& type, const nlohmann::json& v) const;
  // A reader of another value at "<path><field>." (e.g. an element of an array of arrays).
  JsonReader Nested(const nlohmann::json& v, const std::string& field) const;

 private:
  // The field, or null when absent (or when the value is not an object).
  const nlohmann::json* Find(const std::string& key) const;
  // The value, or the Missing status.
  StatusOr<const nlohmann::json*> Get(const std::string& key) const;

  const nlohmann::json* value_;
  std::string what_;
  StatusCode code_;
  std::string path_;
};

}  // namespace emoe::hbm

#endif  // HBM_JSON_READER_H_
