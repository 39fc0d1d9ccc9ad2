// The requests and replies of the hmmd ops (codec.h, second half).
#include "ipc/codec.h"

namespace emoe::hbm::ipc {

json StartMessage(const HmmOptions& options) {
  return json{{"op", "start"}, {"options", ToJson(options)}};
}

Status StartMessageFromJson(const JsonReader& r, HmmOptions* out) {
  VMM_ASSIGN_OR_RETURN(std::string op, r.Str("op"));
  if (op != "start") return r.Invalid("op", "is '" + op + "', not 'start'");
  VMM_ASSIGN_OR_RETURN(JsonReader options, r.Object("options"));
  return FromJson(options, out);
}

json ToJson(const StartProgress& p) {
  return json{{"ok", true},
              {"progress",
               {{"phase", p.phase},
                {"done_bytes", p.done_bytes},
                {"total_bytes", p.total_bytes},
                {"seconds", p.seconds}}}};
}

StatusOr<bool> ProgressFromReply(const json& j, const std::string& who, StartProgress* out) {
  const JsonReader r = ReplyReader(j, who, "progress");
  if (!r.Has("progress")) return false;
  VMM_ASSIGN_OR_RETURN(JsonReader p, r.Object("progress"));
  VMM_ASSIGN_OR_RETURN(out->phase, p.Str("phase"));
  VMM_ASSIGN_OR_RETURN(out->done_bytes, p.U64("done_bytes"));
  VMM_ASSIGN_OR_RETURN(out->total_bytes, p.U64("total_bytes"));
  VMM_ASSIGN_OR_RETURN(out->seconds, p.Double("seconds"));
  return true;
}

json ToJson(const AttachRequest& q) {
  return json{{"op", "attach"},
              {"device", q.device},
              {"writable", q.writable},
              {"kv", q.kv},
              {"tensors", q.tensors}};
}

Status FromJson(const JsonReader& r, AttachRequest* out) {
  VMM_ASSIGN_OR_RETURN(out->device, r.Int("device", -1));
  VMM_ASSIGN_OR_RETURN(out->writable, r.Bool("writable", false));
  VMM_ASSIGN_OR_RETURN(out->kv, r.Bool("kv", false));
  VMM_ASSIGN_OR_RETURN(out->tensors, r.Bool("tensors", true));
  return Status::Ok();
}

json ToJson(const DevicesReply& d) {
  json devices = json::array();
  for (const DeviceSpec& s : d.devices) devices.push_back(ToJson(s));
  return json{{"devices", devices}, {"page_note", d.page_note}};
}

Status FromJson(const JsonReader& r, DevicesReply* out) {
  VMM_ASSIGN_OR_RETURN(out->page_note, r.Str("page_note"));
  VMM_ASSIGN_OR_RETURN(std::vector<JsonReader> devices, r.ObjectList("devices"));
  out->devices.clear();
  for (const JsonReader& d : devices) {
    DeviceSpec s;
    VMM_RETURN_IF_ERROR(FromJson(d, &s));
    if (s.id != static_cast<int>(out->devices.size())) {
      return d.Invalid("id", "is " + std::to_string(s.id) + ", not " +
                                 std::to_string(out->devices.size()) +
                                 " (ids are 0..n-1 in order)");
    }
    out->devices.push_back(std::move(s));
  }
  return Status::Ok();
}

json ToJson(const StatsReply& s) {
  json devices = json::array();
  for (const DeviceStats& d : s.devices) devices.push_back(ToJson(d));
  return json{{"devices", devices}, {"report", s.report}};
}

Status FromJson(const JsonReader& r, StatsReply* out) {
  VMM_ASSIGN_OR_RETURN(out->report, r.Str("report"));
  VMM_ASSIGN_OR_RETURN(std::vector<JsonReader> devices, r.ObjectList("devices"));
  out->devices.clear();
  for (const JsonReader& d : devices) {
    DeviceStats s;
    VMM_RETURN_IF_ERROR(FromJson(d, &s));
    out->devices.push_back(std::move(s));
  }
  return Status::Ok();
}

json ToJson(const LoadRequest& q) {
  return json{{"op", "load"},
              {"checkpoint", q.checkpoint},
              {"prefix", q.prefix},
              {"placement", ToJson(q.placement)}};
}

Status FromJson(const JsonReader& r, LoadRequest* out) {
  VMM_ASSIGN_OR_RETURN(out->checkpoint, r.Str("checkpoint"));
  VMM_ASSIGN_OR_RETURN(out->prefix, r.Str("prefix", ""));
  return PlacementFromJson(r, "placement", &out->placement);
}

json ToJson(const CopyGroupRequest& q) {
  return json{{"op", "copy_group"},          {"names", q.names},  {"from", q.from}, {"to", q.to},
              {"usage", UsageName(q.usage)}, {"prefix", q.prefix}};
}

Status FromJson(const JsonReader& r, CopyGroupRequest* out) {
  VMM_ASSIGN_OR_RETURN(out->names, r.StrList("names"));
  VMM_ASSIGN_OR_RETURN(out->from, r.Int("from"));
  VMM_ASSIGN_OR_RETURN(out->to, r.Int("to"));
  VMM_ASSIGN_OR_RETURN(out->usage, UsageFromJson(r, "usage"));
  VMM_ASSIGN_OR_RETURN(out->prefix, r.Str("prefix", ""));
  return Status::Ok();
}

json ToJson(const std::string& op, const RecordRequest& q) {
  return json{{"op", op}, {"name", q.name}, {"device", q.device}};
}

Status FromJson(const JsonReader& r, RecordRequest* out) {
  VMM_ASSIGN_OR_RETURN(out->name, r.Str("name"));
  VMM_ASSIGN_OR_RETURN(out->device, r.Int("device"));
  return Status::Ok();
}

namespace {

// [[name, device], ...]: the records of release_many and describe.
json RecordsToJson(const std::vector<std::pair<std::string, int>>& records) {
  json list = json::array();
  for (const auto& [name, device] : records) list.push_back(json::array({name, device}));
  return list;
}

Status RecordsFromJson(const JsonReader& r, const std::string& key,
                       std::vector<std::pair<std::string, int>>* out) {
  VMM_ASSIGN_OR_RETURN(const json* list, r.Array(key));
  out->clear();
  for (const json& e : *list) {
    if (!e.is_array() || e.size() != 2 || !e[0].is_string()) {
      return r.Bad(key, "an array of [name, device]");
    }
    auto device = r.ToInt(e[1], key);
    if (!device.ok()) return r.Bad(key, "an array of [name, device]");
    out->emplace_back(e[0].get<std::string>(), *device);
  }
  return Status::Ok();
}

}  // namespace

json ToJson(const ReleaseManyRequest& q) {
  return json{{"op", "release_many"}, {"records", RecordsToJson(q.records)}};
}

Status FromJson(const JsonReader& r, ReleaseManyRequest* out) {
  return RecordsFromJson(r, "records", &out->records);
}

json ToJson(const ApplyCopiesRequest& q) {
  json copies = json::array();
  for (const GroupCopy& c : q.copies) {
    copies.push_back({{"names", c.names},
                      {"from", c.from},
                      {"to", c.to},
                      {"usage", UsageName(c.usage)},
                      {"prefix", c.dst_prefix}});
  }
  return json{{"op", "apply_copies"},
              {"copies", copies},
              {"options",
               {{"max_parallel", q.options.max_parallel}, {"chunk_bytes", q.options.chunk_bytes}}}};
}

Status FromJson(const JsonReader& r, ApplyCopiesRequest* out) {
  VMM_ASSIGN_OR_RETURN(std::vector<JsonReader> copies, r.ObjectList("copies"));
  out->copies.clear();
  out->copies.reserve(copies.size());
  for (const JsonReader& c : copies) {
    GroupCopy g;
    VMM_ASSIGN_OR_RETURN(g.names, c.StrList("names"));
    VMM_ASSIGN_OR_RETURN(g.from, c.Int("from"));
    VMM_ASSIGN_OR_RETURN(g.to, c.Int("to"));
    VMM_ASSIGN_OR_RETURN(g.usage, UsageFromJson(c, "usage"));
    VMM_ASSIGN_OR_RETURN(g.dst_prefix, c.Str("prefix", ""));
    out->copies.push_back(std::move(g));
  }
  out->options = CopyBatchOptions{};
  if (r.Has("options")) {
    VMM_ASSIGN_OR_RETURN(JsonReader o, r.Object("options"));
    VMM_ASSIGN_OR_RETURN(out->options.max_parallel,
                         o.Int("max_parallel", out->options.max_parallel));
    VMM_ASSIGN_OR_RETURN(out->options.chunk_bytes, o.U64("chunk_bytes", out->options.chunk_bytes));
  }
  return Status::Ok();
}

json ToJson(const CopyBatchReport& r) {
  json copies = json::array();
  for (const GroupCopyStats& c : r.copies) {
    copies.push_back({{"bytes", c.bytes}, {"start_s", c.start_s}, {"end_s", c.end_s}});
  }
  return json{{"copies", copies},
              {"bytes", r.bytes},
              {"prepare_s", r.prepare_s},
              {"copy_s", r.copy_s},
              {"register_s", r.register_s}};
}

Status FromJson(const JsonReader& r, CopyBatchReport* out) {
  VMM_ASSIGN_OR_RETURN(std::vector<JsonReader> copies, r.ObjectList("copies"));
  out->copies.clear();
  for (const JsonReader& c : copies) {
    GroupCopyStats s;
    VMM_ASSIGN_OR_RETURN(s.bytes, c.U64("bytes"));
    VMM_ASSIGN_OR_RETURN(s.start_s, c.Double("start_s"));
    VMM_ASSIGN_OR_RETURN(s.end_s, c.Double("end_s"));
    out->copies.push_back(s);
  }
  VMM_ASSIGN_OR_RETURN(out->bytes, r.U64("bytes"));
  VMM_ASSIGN_OR_RETURN(out->prepare_s, r.Double("prepare_s"));
  VMM_ASSIGN_OR_RETURN(out->copy_s, r.Double("copy_s"));
  VMM_ASSIGN_OR_RETURN(out->register_s, r.Double("register_s"));
  return Status::Ok();
}

json ToJson(const DescribeRequest& q) {
  return json{{"op", "describe"}, {"records", RecordsToJson(q.records)}};
}

Status FromJson(const JsonReader& r, DescribeRequest* out) {
  return RecordsFromJson(r, "records", &out->records);
}

json ToJson(const HmmSnapshot& s) {
  json records = json::array(), devices = json::array();
  for (const TensorMeta& m : s.records) records.push_back(ToJson(m));
  for (const DeviceStats& d : s.stats) devices.push_back(ToJson(d));
  return json{{"records", records}, {"devices", devices}};
}

Status FromJson(const JsonReader& r, HmmSnapshot* out) {
  VMM_ASSIGN_OR_RETURN(std::vector<JsonReader> records, r.ObjectList("records"));
  VMM_ASSIGN_OR_RETURN(std::vector<JsonReader> devices, r.ObjectList("devices"));
  out->records.assign(records.size(), TensorMeta{});
  out->stats.assign(devices.size(), DeviceStats{});
  for (size_t i = 0; i < records.size(); ++i) {
    VMM_RETURN_IF_ERROR(FromJson(records[i], &out->records[i]));
  }
  for (size_t i = 0; i < devices.size(); ++i) {
    VMM_RETURN_IF_ERROR(FromJson(devices[i], &out->stats[i]));
  }
  return Status::Ok();
}

json ToJson(const ReleaseMatchingRequest& q) {
  return json{{"op", "release_matching"}, {"prefix", q.prefix}, {"devices", q.devices}};
}

Status FromJson(const JsonReader& r, ReleaseMatchingRequest* out) {
  VMM_ASSIGN_OR_RETURN(out->prefix, r.Str("prefix"));
  out->devices.clear();
  if (r.Has("devices")) {
    VMM_ASSIGN_OR_RETURN(out->devices, r.IntList("devices"));
  }
  return Status::Ok();
}

json ToJson(const KvAllocRequest& q) {
  return json{{"op", "kv_alloc"}, {"device", q.device}, {"bytes", q.bytes}};
}

Status FromJson(const JsonReader& r, KvAllocRequest* out) {
  VMM_ASSIGN_OR_RETURN(out->device, r.Int("device"));
  VMM_ASSIGN_OR_RETURN(out->bytes, r.U64("bytes"));
  return Status::Ok();
}

json ToJson(const KvAllocReply& a) {
  return json{{"id", a.id}, {"offset", a.offset}, {"bytes", a.bytes}};
}

Status FromJson(const JsonReader& r, KvAllocReply* out) {
  VMM_ASSIGN_OR_RETURN(out->id, r.U64("id"));
  VMM_ASSIGN_OR_RETURN(out->offset, r.U64("offset"));
  VMM_ASSIGN_OR_RETURN(out->bytes, r.U64("bytes"));
  return Status::Ok();
}

json ToJson(const std::string& op, const KvRequest& q) {
  json j{{"op", op}, {"id", q.id}};
  if (op != "kv_free") j["bytes"] = q.bytes;
  return j;
}

Status FromJson(const JsonReader& r, bool with_bytes, KvRequest* out) {
  VMM_ASSIGN_OR_RETURN(out->id, r.U64("id"));
  out->bytes = 0;
  if (with_bytes) {
    VMM_ASSIGN_OR_RETURN(out->bytes, r.U64("bytes"));
  }
  return Status::Ok();
}

}  // namespace emoe::hbm::ipc
