#include "ipc/codec.h"

#include <set>

namespace emoe::hbm {

StatusOr<Usage> ParseUsage(const std::string& name) {
  for (int u = 0; u < kNumUsages; ++u) {
    if (name == UsageName(static_cast<Usage>(u))) return static_cast<Usage>(u);
  }
  return Status::InvalidArgument("usage '" + name + "' is not one of weights, experts, kv");
}

namespace ipc {

namespace {

const char* PageSizeName(vmm::PageSizePolicy p) {
  switch (p) {
    case vmm::PageSizePolicy::kAuto:
      return "auto";
    case vmm::PageSizePolicy::kHugetlb:
      return "hugetlb";
    case vmm::PageSizePolicy::kShmemThp:
      return "thp";
    case vmm::PageSizePolicy::kSmall:
      return "4k";
  }
  return "?";
}

StatusOr<vmm::PageKind> PageKindFromJson(const JsonReader& r, const std::string& key) {
  VMM_ASSIGN_OR_RETURN(std::string kind, r.Str(key));
  for (vmm::PageKind k :
       {vmm::PageKind::kHugetlb2M, vmm::PageKind::kShmemThp2M, vmm::PageKind::kSmall4K}) {
    if (kind == vmm::PageKindName(k)) return k;
  }
  return r.Invalid(key, "is '" + kind + "', not a page kind (hugetlb-2M, shmem-thp-2M, 4K)");
}

StatusOr<DType> DTypeFromJson(const JsonReader& r, const std::string& key) {
  VMM_ASSIGN_OR_RETURN(std::string d, r.Str(key));
  auto dtype = ParseDType(d);
  if (!dtype.ok()) return r.Invalid(key, "is '" + d + "', not a dtype (F32, BF16, F16)");
  return dtype;
}

}  // namespace

StatusOr<Usage> UsageFromJson(const JsonReader& r, const std::string& key) {
  VMM_ASSIGN_OR_RETURN(std::string u, r.Str(key));
  auto usage = ParseUsage(u);
  if (!usage.ok()) return r.Invalid(key, "is '" + u + "', not one of weights, experts, kv");
  return usage;
}

// ---- values

json ToJson(const TensorMeta& m) {
  return json{{"name", m.name},
              {"device", m.device},
              {"usage", UsageName(m.usage)},
              {"dtype", DTypeName(m.dtype)},
              {"shape", m.shape},
              {"size", m.size_bytes},
              {"extent_size", m.extent_bytes}};
}

Status FromJson(const JsonReader& r, TensorMeta* out) {
  VMM_ASSIGN_OR_RETURN(out->name, r.Str("name"));
  VMM_ASSIGN_OR_RETURN(out->device, r.Int("device"));
  VMM_ASSIGN_OR_RETURN(out->usage, UsageFromJson(r, "usage"));
  VMM_ASSIGN_OR_RETURN(out->dtype, DTypeFromJson(r, "dtype"));
  VMM_ASSIGN_OR_RETURN(out->shape, r.Int64List("shape"));
  VMM_ASSIGN_OR_RETURN(out->size_bytes, r.U64("size"));
  VMM_ASSIGN_OR_RETURN(out->extent_bytes, r.U64("extent_size"));
  return Status::Ok();
}

WireTensor WireTensorOf(const TensorRecord& r, int arena_index) {
  WireTensor t;
  t.meta = MetaOf(r);
  t.arena = arena_index;
  t.offset = r.extent.offset_bytes() + r.offset_in_extent;
  t.extent_offset = r.extent.offset_bytes();
  return t;
}

json ToJson(const WireTensor& t) {
  json j = ToJson(t.meta);
  j["arena"] = t.arena;
  j["offset"] = t.offset;
  j["extent_offset"] = t.extent_offset;
  return j;
}

Status FromJson(const JsonReader& r, WireTensor* out) {
  VMM_RETURN_IF_ERROR(FromJson(r, &out->meta));
  VMM_ASSIGN_OR_RETURN(out->arena, r.Int("arena"));
  VMM_ASSIGN_OR_RETURN(out->offset, r.U64("offset"));
  VMM_ASSIGN_OR_RETURN(out->extent_offset, r.U64("extent_offset"));
  return Status::Ok();
}

json ToJson(const DeviceSpec& s) {
  return json{
      {"id", s.id}, {"node", s.node}, {"cpus", s.cpus}, {"capacity_bytes", s.capacity_bytes}};
}

Status FromJson(const JsonReader& r, DeviceSpec* out) {
  VMM_ASSIGN_OR_RETURN(out->id, r.Int("id"));
  VMM_ASSIGN_OR_RETURN(out->node, r.Int("node"));
  VMM_ASSIGN_OR_RETURN(out->cpus, r.IntList("cpus"));
  VMM_ASSIGN_OR_RETURN(out->capacity_bytes, r.U64("capacity_bytes"));
  return Status::Ok();
}

json ToJson(const vmm::ArenaStats& a) {
  return json{{"name", a.name},
              {"kind", vmm::PageKindName(a.kind)},
              {"page_size", a.page_size},
              {"capacity_bytes", a.capacity_bytes},
              {"used_bytes", a.used_bytes},
              {"free_bytes", a.free_bytes},
              {"peak_used_bytes", a.peak_used_bytes},
              {"largest_free_bytes", a.largest_free_bytes},
              {"live_extents", a.live_extents},
              {"allocations", a.allocations},
              {"frees", a.frees},
              {"failed_allocations", a.failed_allocations},
              {"grows", a.grows},
              {"shrinks", a.shrinks},
              {"failed_grows", a.failed_grows},
              {"discarded_bytes", a.discarded_bytes},
              {"fragmentation", a.fragmentation}};
}

Status FromJson(const JsonReader& r, vmm::ArenaStats* out) {
  VMM_ASSIGN_OR_RETURN(out->name, r.Str("name"));
  VMM_ASSIGN_OR_RETURN(out->kind, PageKindFromJson(r, "kind"));
  struct Field {
    const char* key;
    uint64_t vmm::ArenaStats::*member;
  };
  static constexpr Field kCounts[] = {
      {"page_size", &vmm::ArenaStats::page_size},
      {"capacity_bytes", &vmm::ArenaStats::capacity_bytes},
      {"used_bytes", &vmm::ArenaStats::used_bytes},
      {"free_bytes", &vmm::ArenaStats::free_bytes},
      {"peak_used_bytes", &vmm::ArenaStats::peak_used_bytes},
      {"largest_free_bytes", &vmm::ArenaStats::largest_free_bytes},
      {"live_extents", &vmm::ArenaStats::live_extents},
      {"allocations", &vmm::ArenaStats::allocations},
      {"frees", &vmm::ArenaStats::frees},
      {"failed_allocations", &vmm::ArenaStats::failed_allocations},
      {"grows", &vmm::ArenaStats::grows},
      {"shrinks", &vmm::ArenaStats::shrinks},
      {"failed_grows", &vmm::ArenaStats::failed_grows},
      {"discarded_bytes", &vmm::ArenaStats::discarded_bytes},
  };
  for (const Field& f : kCounts) {
    VMM_ASSIGN_OR_RETURN(out->*f.member, r.U64(f.key));
  }
  VMM_ASSIGN_OR_RETURN(out->fragmentation, r.Double("fragmentation"));
  return Status::Ok();
}

json ToJson(const DeviceStats& s) {
  json usage = json::array();
  for (const vmm::ArenaStats& a : s.usage) usage.push_back(ToJson(a));
  return json{{"device", s.device},
              {"capacity_bytes", s.capacity_bytes},
              {"used_bytes", s.used_bytes},
              {"peak_used_bytes", s.peak_used_bytes},
              {"usage", usage}};
}

Status FromJson(const JsonReader& r, DeviceStats* out) {
  VMM_ASSIGN_OR_RETURN(out->device, r.Int("device"));
  VMM_ASSIGN_OR_RETURN(out->capacity_bytes, r.U64("capacity_bytes"));
  VMM_ASSIGN_OR_RETURN(out->used_bytes, r.U64("used_bytes"));
  VMM_ASSIGN_OR_RETURN(out->peak_used_bytes, r.U64("peak_used_bytes"));
  VMM_ASSIGN_OR_RETURN(std::vector<JsonReader> usage, r.ObjectList("usage"));
  if (usage.size() != out->usage.size()) {
    return r.Bad("usage", "an array of " + std::to_string(out->usage.size()) + " arena stats");
  }
  for (size_t u = 0; u < usage.size(); ++u) VMM_RETURN_IF_ERROR(FromJson(usage[u], &out->usage[u]));
  return Status::Ok();
}

json ToJson(const LoadStats& s) {
  return json{{"bytes", s.bytes},
              {"seconds", s.seconds},
              {"reads", s.reads},
              {"short_reads", s.short_reads},
              {"direct_io", s.direct_io},
              {"fixed_buffers", s.fixed_buffers},
              {"fallback_reason", s.fallback_reason}};
}

Status FromJson(const JsonReader& r, LoadStats* out) {
  VMM_ASSIGN_OR_RETURN(out->bytes, r.U64("bytes"));
  VMM_ASSIGN_OR_RETURN(out->seconds, r.Double("seconds"));
  VMM_ASSIGN_OR_RETURN(out->reads, r.U64("reads"));
  VMM_ASSIGN_OR_RETURN(out->short_reads, r.U64("short_reads"));
  VMM_ASSIGN_OR_RETURN(out->direct_io, r.Bool("direct_io"));
  VMM_ASSIGN_OR_RETURN(out->fixed_buffers, r.Bool("fixed_buffers"));
  VMM_ASSIGN_OR_RETURN(out->fallback_reason, r.Str("fallback_reason"));
  return Status::Ok();
}

json ToJson(const LoadReport& r) {
  return json{{"tensors", r.tensors},
              {"bytes_from_disk", r.bytes_from_disk},
              {"bytes_p2p", r.bytes_p2p},
              {"disk_seconds", r.disk_seconds},
              {"p2p_seconds", r.p2p_seconds},
              {"disk", ToJson(r.disk)},
              {"bytes_checked", r.bytes_checked},
              {"check_seconds", r.check_seconds}};
}

Status FromJson(const JsonReader& r, LoadReport* out) {
  VMM_ASSIGN_OR_RETURN(out->tensors, r.U64("tensors"));
  VMM_ASSIGN_OR_RETURN(out->bytes_from_disk, r.U64("bytes_from_disk"));
  VMM_ASSIGN_OR_RETURN(out->bytes_p2p, r.U64("bytes_p2p"));
  VMM_ASSIGN_OR_RETURN(out->disk_seconds, r.Double("disk_seconds"));
  VMM_ASSIGN_OR_RETURN(out->p2p_seconds, r.Double("p2p_seconds"));
  VMM_ASSIGN_OR_RETURN(out->bytes_checked, r.U64("bytes_checked", 0));
  VMM_ASSIGN_OR_RETURN(out->check_seconds, r.Double("check_seconds", 0.0));
  VMM_ASSIGN_OR_RETURN(JsonReader disk, r.Object("disk"));
  return FromJson(disk, &out->disk);
}

json ToJson(const PlacementTable& t) {
  json entries = json::array();
  for (const auto& [name, d] : t) {
    entries.push_back({{"name", name},
                       {"usage", UsageName(d.usage)},
                       {"devices", d.devices},
                       {"group", d.group}});
  }
  return entries;
}

Status PlacementFromJson(const JsonReader& r, const std::string& key, PlacementTable* out) {
  out->clear();
  VMM_ASSIGN_OR_RETURN(std::vector<JsonReader> entries, r.ObjectList(key));
  for (size_t i = 0; i < entries.size(); ++i) {
    VMM_ASSIGN_OR_RETURN(std::string name, entries[i].Str("name"));
    // Later fields are named by the entry's name: "placement.layer0.devices".
    const JsonReader e = r.Nested(entries[i].value(), key + "." + name);
    PlacementDecision d;
    VMM_ASSIGN_OR_RETURN(d.usage, UsageFromJson(e, "usage"));
    VMM_ASSIGN_OR_RETURN(d.devices, e.IntList("devices"));
    VMM_ASSIGN_OR_RETURN(d.group, e.Str("group", ""));
    if (!out->emplace(name, std::move(d)).second) {
      return r.Invalid(key, "lists '" + name + "' twice");
    }
  }
  return Status::Ok();
}

json ToJson(const HmmOptions& o) {
  const DeviceOptions& d = o.devices;
  const DeviceMemoryOptions& m = o.memory;
  const LoaderOptions& l = o.loader;
  return json{{"devices",
               {{"devices_per_node", d.devices_per_node},
                {"capacity_bytes", d.capacity_bytes},
                {"pin_cpus", d.pin_cpus},
                {"nodes", d.nodes}}},
              {"memory",
               {{"usage_bytes", m.usage_bytes},
                {"page_size", PageSizeName(m.page_size)},
                {"discard_on_free", m.discard_on_free},
                {"populate", m.populate}}},
              {"loader",
               {{"queue_depth", l.queue_depth},
                {"chunk_bytes", l.chunk_bytes},
                {"direct_io", l.direct_io},
                {"register_buffers", l.register_buffers},
                {"progress_interval_s", l.progress_interval_s}}},
              {"copy_threads_per_device", o.copy_threads_per_device},
              {"check_weights", o.check_weights}};
}

Status FromJson(const JsonReader& r, HmmOptions* out) {
  VMM_ASSIGN_OR_RETURN(JsonReader d, r.Object("devices"));
  VMM_ASSIGN_OR_RETURN(out->devices.devices_per_node, d.Int("devices_per_node"));
  VMM_ASSIGN_OR_RETURN(out->devices.capacity_bytes, d.U64("capacity_bytes"));
  VMM_ASSIGN_OR_RETURN(out->devices.pin_cpus, d.Bool("pin_cpus"));
  VMM_ASSIGN_OR_RETURN(out->devices.nodes, d.IntList("nodes"));
  VMM_ASSIGN_OR_RETURN(JsonReader m, r.Object("memory"));
  VMM_ASSIGN_OR_RETURN(const json* usage, m.Array("usage_bytes"));
  if (usage->size() != kNumUsages) return m.Bad("usage_bytes", "an array of 3 byte counts");
  for (int u = 0; u < kNumUsages; ++u) {
    if (!(*usage)[u].is_number_unsigned()) return m.Bad("usage_bytes", "an array of 3 byte counts");
    out->memory.usage_bytes[u] = (*usage)[u].get<uint64_t>();
  }
  VMM_ASSIGN_OR_RETURN(std::string page, m.Str("page_size"));
  auto policy = vmm::ParsePageSizePolicy(page);
  if (!policy.ok()) return m.Invalid("page_size", "is '" + page + "', not auto, hugetlb, thp, 4k");
  out->memory.page_size = *policy;
  VMM_ASSIGN_OR_RETURN(out->memory.discard_on_free, m.Bool("discard_on_free"));
  VMM_ASSIGN_OR_RETURN(out->memory.populate, m.Bool("populate"));
  VMM_ASSIGN_OR_RETURN(JsonReader l, r.Object("loader"));
  VMM_ASSIGN_OR_RETURN(uint64_t depth, l.U64("queue_depth"));
  if (depth > 4096) return l.Invalid("queue_depth", "exceeds 4096");
  out->loader.queue_depth = static_cast<unsigned>(depth);
  VMM_ASSIGN_OR_RETURN(out->loader.chunk_bytes, l.U64("chunk_bytes"));
  VMM_ASSIGN_OR_RETURN(out->loader.direct_io, l.Bool("direct_io"));
  VMM_ASSIGN_OR_RETURN(out->loader.register_buffers, l.Bool("register_buffers"));
  VMM_ASSIGN_OR_RETURN(out->loader.progress_interval_s, l.Double("progress_interval_s"));
  VMM_ASSIGN_OR_RETURN(out->copy_threads_per_device, r.Int("copy_threads_per_device"));
  VMM_ASSIGN_OR_RETURN(out->check_weights, r.Bool("check_weights", true));
  return Status::Ok();
}

}  // namespace ipc
}  // namespace emoe::hbm
