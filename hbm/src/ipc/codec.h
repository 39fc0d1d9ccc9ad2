// hbm/src/ipc/codec.h: every message of the hmmd protocol (hbm/server.h), defined once and used by
// both processes: a ToJson / FromJson pair per type.
//
// ToJson never fails. FromJson reads through a JsonReader (hbm/json_reader.h): nothing throws, a
// missing or wrongly typed field is the reader's Status naming its path, and *out is only
// meaningful on OK. Requests carry their "op"; FromJson of a request does not look at it (the
// dispatcher did).
//
// Thread safety: functions of values.
#ifndef HBM_SRC_IPC_CODEC_H_
#define HBM_SRC_IPC_CODEC_H_

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "hbm/control.h"
#include "hbm/hmm.h"
#include "hbm/json_reader.h"
#include "hbm/remote_control.h"

namespace emoe::hbm::ipc {

using nlohmann::json;

// ---- values

json ToJson(const TensorMeta& m);  // name device usage dtype shape size extent_size
Status FromJson(const JsonReader& r, TensorMeta* out);

// A tensor of an attach / list / find reply: its meta and where it lies (arena -1 when the
// reply carries no arenas).
struct WireTensor {
  TensorMeta meta;
  int arena = -1;              // index into the reply's arenas
  uint64_t offset = 0;         // of the data in that arena
  uint64_t extent_offset = 0;  // of the pages it lives in; meta.extent_bytes is their size
};
WireTensor WireTensorOf(const TensorRecord& r, int arena_index);
json ToJson(const WireTensor& t);
Status FromJson(const JsonReader& r, WireTensor* out);

json ToJson(const DeviceSpec& s);
Status FromJson(const JsonReader& r, DeviceSpec* out);
json ToJson(const vmm::ArenaStats& a);
Status FromJson(const JsonReader& r, vmm::ArenaStats* out);
json ToJson(const DeviceStats& s);
Status FromJson(const JsonReader& r, DeviceStats* out);
json ToJson(const LoadStats& s);
Status FromJson(const JsonReader& r, LoadStats* out);
json ToJson(const LoadReport& r);
Status FromJson(const JsonReader& r, LoadReport* out);
// An array of {"name","usage","devices","group"}; a name listed twice is refused.
json ToJson(const PlacementTable& t);
Status PlacementFromJson(const JsonReader& r, const std::string& key, PlacementTable* out);
// HmmOptions as hmmd's launcher sends it ("devices", "memory", "loader",
// "copy_threads_per_device", "check_weights": optional, default true). LoaderOptions::progress
// (a callback) does not travel. LoadReport's "bytes_checked"/"check_seconds" are optional (0).
json ToJson(const HmmOptions& o);
Status FromJson(const JsonReader& r, HmmOptions* out);

// ---- requests and replies of the ops

// The launcher's first message to hmmd (its HmmOptions), {"op":"start","options":{...}},
// answered like "devices".
json StartMessage(const HmmOptions& options);
Status StartMessageFromJson(const JsonReader& r, HmmOptions* out);

// While it starts, hmmd sends its launcher zero or more progress messages on the control
// connection before the start reply, each a sign of life (the launcher waits as long as they
// come): {"ok":true,"progress":{"phase":"populate","done_bytes":N,"total_bytes":M,
// "seconds":S}}. No other reply has a "progress" field.
json ToJson(const StartProgress& p);
// Whether reply `j` is a progress message (then `*out` is filled), or another reply (false).
// kDataLoss naming the field when its "progress" is malformed.
StatusOr<bool> ProgressFromReply(const json& j, const std::string& who, StartProgress* out);

struct AttachRequest {
  int device = -1;  // -1: all
  bool writable = false;
  bool kv = false;
  bool tensors = true;
};
json ToJson(const AttachRequest& q);
Status FromJson(const JsonReader& r, AttachRequest* out);

struct DevicesReply {
  std::vector<DeviceSpec> devices;
  std::string page_note;
};
json ToJson(const DevicesReply& d);
Status FromJson(const JsonReader& r, DevicesReply* out);

struct StatsReply {
  std::vector<DeviceStats> devices;
  std::string report;
};
json ToJson(const StatsReply& s);
Status FromJson(const JsonReader& r, StatsReply* out);

struct LoadRequest {
  std::string checkpoint;
  std::string prefix;
  PlacementTable placement;
};
json ToJson(const LoadRequest& q);
Status FromJson(const JsonReader& r, LoadRequest* out);

struct CopyGroupRequest {
  std::vector<std::string> names;
  int from = 0;
  int to = 0;
  Usage usage = Usage::kWeights;
  std::string prefix;
};
json ToJson(const CopyGroupRequest& q);
Status FromJson(const JsonReader& r, CopyGroupRequest* out);

// "find" and "release" (one record).
struct RecordRequest {
  std::string name;
  int device = 0;
};
json ToJson(const std::string& op, const RecordRequest& q);
Status FromJson(const JsonReader& r, RecordRequest* out);

struct ReleaseManyRequest {
  std::vector<std::pair<std::string, int>> records;  // [name, device] each
};
json ToJson(const ReleaseManyRequest& q);
Status FromJson(const JsonReader& r, ReleaseManyRequest* out);

struct ReleaseMatchingRequest {
  std::string prefix;  // required: a forgotten one must not release everything
  std::vector<int> devices;
};
json ToJson(const ReleaseMatchingRequest& q);
Status FromJson(const JsonReader& r, ReleaseMatchingRequest* out);

// "apply_copies": Hmm::ApplyCopies's batch, each copy as copy_group's fields, and its options
// ("options" and each of its fields optional: CopyBatchOptions' defaults). Answered
// {"ok":true,"report":CopyBatchReport}. Its size is bounded by the request's
// (kMaxAssembledRequestBytes, 64 MiB): a redistribution of 2000 copies of 3 tensors with
// checkpoint-length names is about 0.5 MiB. Hmm::ApplyCopies refuses more than kMaxBatchCopies.
struct ApplyCopiesRequest {
  std::vector<GroupCopy> copies;
  CopyBatchOptions options;
};
json ToJson(const ApplyCopiesRequest& q);
Status FromJson(const JsonReader& r, ApplyCopiesRequest* out);
// {"copies":[{"bytes","start_s","end_s"}],"bytes","prepare_s","copy_s","register_s"}
json ToJson(const CopyBatchReport& r);
Status FromJson(const JsonReader& r, CopyBatchReport* out);

// "describe": records as release_many's ([name, device] each). Answered {"ok":true, and the
// HmmSnapshot's fields}.
struct DescribeRequest {
  std::vector<std::pair<std::string, int>> records;
};
json ToJson(const DescribeRequest& q);
Status FromJson(const JsonReader& r, DescribeRequest* out);
// {"records":[TensorMeta...],"devices":[DeviceStats...]}
json ToJson(const HmmSnapshot& s);
Status FromJson(const JsonReader& r, HmmSnapshot* out);

struct KvAllocRequest {
  int device = 0;
  uint64_t bytes = 0;
};
json ToJson(const KvAllocRequest& q);
Status FromJson(const JsonReader& r, KvAllocRequest* out);

struct KvAllocReply {
  uint64_t id = 0;
  uint64_t offset = 0;  // in the device's KV arena
  uint64_t bytes = 0;
};
json ToJson(const KvAllocReply& a);
Status FromJson(const JsonReader& r, KvAllocReply* out);

// "kv_free" (bytes unused) and "kv_resize".
struct KvRequest {
  uint64_t id = 0;
  uint64_t bytes = 0;
};
json ToJson(const std::string& op, const KvRequest& q);
Status FromJson(const JsonReader& r, bool with_bytes, KvRequest* out);

// "usage": weights|experts|kv, read as a Usage.
StatusOr<Usage> UsageFromJson(const JsonReader& r, const std::string& key);

// The reader of a reply to `op` from `who`: kDataLoss "<who>: malformed <op> reply: ...".
inline JsonReader ReplyReader(const json& j, const std::string& who, const std::string& op) {
  return JsonReader(j, who + ": malformed " + op + " reply", StatusCode::kDataLoss);
}

}  // namespace emoe::hbm::ipc

#endif  // HBM_SRC_IPC_CODEC_H_
