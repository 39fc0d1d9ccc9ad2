// The hmmd protocol's codec: every message type survives ToJson -> text -> FromJson with every
// field intact, and malformed messages are refused with a Status naming the field.
#include "ipc/codec.h"

#include <gtest/gtest.h>

#include <string>

namespace emoe::hbm::ipc {
namespace {

// T -> JSON text -> parsed -> T, through the reader as the other process reads it.
template <typename T>
T RoundTrip(const T& in) {
  const std::string text = ToJson(in).dump();
  auto j = ParseJsonObject(text, "test");
  EXPECT_TRUE(j.ok()) << j.status().ToString();
  T out;
  Status s = FromJson(JsonReader(j.value(), "test"), &out);
  EXPECT_TRUE(s.ok()) << s.ToString() << " in " << text;
  return out;
}

// Parses `text` and reads it as a T: the Status.
template <typename T>
Status Read(const std::string& text, const std::string& what = "test") {
  auto j = ParseJsonObject(text, what);
  if (!j.ok()) return j.status();
  T out;
  return FromJson(JsonReader(j.value(), what), &out);
}

void ExpectNames(const Status& s, const std::string& part) {
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find(part), std::string::npos) << s.ToString();
}

TensorMeta Meta() {
  TensorMeta m;
  m.name = "layers.0.experts.3.w1";
  m.device = 2;
  m.usage = Usage::kExperts;
  m.dtype = DType::kBF16;
  m.shape = {7, 1 << 20, 3};
  m.size_bytes = 123456789012ull;
  m.extent_bytes = 123456790528ull;
  return m;
}

void ExpectEq(const TensorMeta& a, const TensorMeta& b) {
  EXPECT_EQ(a.name, b.name);
  EXPECT_EQ(a.device, b.device);
  EXPECT_EQ(a.usage, b.usage);
  EXPECT_EQ(a.dtype, b.dtype);
  EXPECT_EQ(a.shape, b.shape);
  EXPECT_EQ(a.size_bytes, b.size_bytes);
  EXPECT_EQ(a.extent_bytes, b.extent_bytes);
}

vmm::ArenaStats Arena(uint64_t seed) {
  vmm::ArenaStats a;
  a.name = "dev1.kv" + std::to_string(seed);
  a.kind = vmm::PageKind::kShmemThp2M;
  a.page_size = 2 << 20;
  uint64_t v = seed * 1000;
  for (uint64_t* f :
       {&a.capacity_bytes, &a.used_bytes, &a.free_bytes, &a.peak_used_bytes, &a.largest_free_bytes,
        &a.live_extents, &a.allocations, &a.frees, &a.failed_allocations, &a.grows, &a.shrinks,
        &a.failed_grows, &a.discarded_bytes}) {
    *f = ++v;
  }
  a.fragmentation = 0.125 * static_cast<double>(seed);
  return a;
}

void ExpectEq(const vmm::ArenaStats& a, const vmm::ArenaStats& b) {
  EXPECT_EQ(a.name, b.name);
  EXPECT_EQ(a.kind, b.kind);
  EXPECT_EQ(a.page_size, b.page_size);
  EXPECT_EQ(a.capacity_bytes, b.capacity_bytes);
  EXPECT_EQ(a.used_bytes, b.used_bytes);
  EXPECT_EQ(a.free_bytes, b.free_bytes);
  EXPECT_EQ(a.peak_used_bytes, b.peak_used_bytes);
  EXPECT_EQ(a.largest_free_bytes, b.largest_free_bytes);
  EXPECT_EQ(a.live_extents, b.live_extents);
  EXPECT_EQ(a.allocations, b.allocations);
  EXPECT_EQ(a.frees, b.frees);
  EXPECT_EQ(a.failed_allocations, b.failed_allocations);
  EXPECT_EQ(a.grows, b.grows);
  EXPECT_EQ(a.shrinks, b.shrinks);
  EXPECT_EQ(a.failed_grows, b.failed_grows);
  EXPECT_EQ(a.discarded_bytes, b.discarded_bytes);
  EXPECT_EQ(a.fragmentation, b.fragmentation);
}

TEST(CodecTest, TensorsRoundTrip) {
  ExpectEq(RoundTrip(Meta()), Meta());
  WireTensor w;
  w.meta = Meta();
  w.arena = 5;
  w.offset = 8192 + 17;
  w.extent_offset = 8192;
  const WireTensor back = RoundTrip(w);
  ExpectEq(back.meta, w.meta);
  EXPECT_EQ(back.arena, 5);
  EXPECT_EQ(back.offset, w.offset);
  EXPECT_EQ(back.extent_offset, w.extent_offset);
}

TEST(CodecTest, DevicesAndStatsRoundTrip) {
  DeviceSpec s;
  s.id = 3;
  s.node = 1;
  s.cpus = {4, 5, 7};
  s.capacity_bytes = 96ull << 30;
  const DeviceSpec b = RoundTrip(s);
  EXPECT_EQ(b.id, 3);
  EXPECT_EQ(b.node, 1);
  EXPECT_EQ(b.cpus, s.cpus);
  EXPECT_EQ(b.capacity_bytes, s.capacity_bytes);

  ExpectEq(RoundTrip(Arena(3)), Arena(3));
  DeviceStats d;
  d.device = 1;
  d.usage = {Arena(1), Arena(2), Arena(3)};
  d.capacity_bytes = 1 << 30;
  d.used_bytes = 12345;
  d.peak_used_bytes = 67890;
  StatsReply reply{{d, d}, "report\nlines"};
  const StatsReply r = RoundTrip(reply);
  EXPECT_EQ(r.report, reply.report);
  ASSERT_EQ(r.devices.size(), 2u);
  EXPECT_EQ(r.devices[1].device, 1);
  EXPECT_EQ(r.devices[1].capacity_bytes, d.capacity_bytes);
  EXPECT_EQ(r.devices[1].used_bytes, d.used_bytes);
  EXPECT_EQ(r.devices[1].peak_used_bytes, d.peak_used_bytes);
  for (int u = 0; u < kNumUsages; ++u) ExpectEq(r.devices[1].usage[u], d.usage[u]);

  DeviceSpec s1 = s;
  s.id = 0;
  s1.id = 1;
  const DevicesReply dev = RoundTrip(DevicesReply{{s, s1}, "why not hugetlb"});
  EXPECT_EQ(dev.page_note, "why not hugetlb");
  ASSERT_EQ(dev.devices.size(), 2u);
  EXPECT_EQ(dev.devices[1].id, 1);
  EXPECT_EQ(dev.devices[1].cpus, s.cpus);
}

TEST(CodecTest, LoadRoundTrips) {
  LoadReport rep;
  rep.tensors = 69;
  rep.bytes_from_disk = 1ull << 33;
  rep.bytes_p2p = 3ull << 32;
  rep.disk_seconds = 1.5;
  rep.p2p_seconds = 0.25;
  rep.disk.bytes = 1ull << 33;
  rep.disk.seconds = 1.25;
  rep.disk.reads = 8192;
  rep.disk.short_reads = 3;
  rep.disk.direct_io = false;
  rep.disk.fixed_buffers = true;
  rep.disk.fallback_reason = "not aligned";
  rep.bytes_checked = 5ull << 30;
  rep.check_seconds = 0.125;
  const LoadReport b = RoundTrip(rep);
  EXPECT_EQ(b.tensors, rep.tensors);
  EXPECT_EQ(b.bytes_from_disk, rep.bytes_from_disk);
  EXPECT_EQ(b.bytes_p2p, rep.bytes_p2p);
  EXPECT_EQ(b.disk_seconds, rep.disk_seconds);
  EXPECT_EQ(b.p2p_seconds, rep.p2p_seconds);
  EXPECT_EQ(b.disk.bytes, rep.disk.bytes);
  EXPECT_EQ(b.disk.seconds, rep.disk.seconds);
  EXPECT_EQ(b.disk.reads, rep.disk.reads);
  EXPECT_EQ(b.disk.short_reads, rep.disk.short_reads);
  EXPECT_EQ(b.disk.direct_io, rep.disk.direct_io);
  EXPECT_EQ(b.disk.fixed_buffers, rep.disk.fixed_buffers);
  EXPECT_EQ(b.disk.fallback_reason, rep.disk.fallback_reason);
  EXPECT_EQ(b.bytes_checked, rep.bytes_checked);
  EXPECT_EQ(b.check_seconds, rep.check_seconds);

  LoadRequest q;
  q.checkpoint = "/data/ckpt";
  q.prefix = "b.";
  q.placement["embed"] = PlacementDecision{Usage::kWeights, {0, 1}, ""};
  q.placement["layers.0.experts.1.w1"] = PlacementDecision{Usage::kExperts, {1}, "expert1"};
  const LoadRequest l = RoundTrip(q);
  EXPECT_EQ(l.checkpoint, q.checkpoint);
  EXPECT_EQ(l.prefix, q.prefix);
  ASSERT_EQ(l.placement.size(), 2u);
  for (const auto& [name, d] : q.placement) {
    ASSERT_TRUE(l.placement.count(name)) << name;
    EXPECT_EQ(l.placement.at(name).usage, d.usage);
    EXPECT_EQ(l.placement.at(name).devices, d.devices);
    EXPECT_EQ(l.placement.at(name).group, d.group);
  }
}

TEST(CodecTest, HmmOptionsRoundTrip) {
  HmmOptions o;
  o.devices.devices_per_node = 3;
  o.devices.capacity_bytes = 5ull << 30;
  o.devices.pin_cpus = true;
  o.devices.nodes = {0, 2};
  o.memory.usage_bytes = {1ull << 20, 2ull << 20, 3ull << 20};
  o.memory.page_size = vmm::PageSizePolicy::kShmemThp;
  o.memory.discard_on_free = true;
  o.memory.populate = true;
  o.loader.queue_depth = 64;
  o.loader.chunk_bytes = 512 << 10;
  o.loader.direct_io = false;
  o.loader.register_buffers = false;
  o.loader.progress_interval_s = 0.1;
  o.copy_threads_per_device = 4;
  o.check_weights = false;
  const HmmOptions b = RoundTrip(o);
  EXPECT_EQ(b.devices.devices_per_node, 3);
  EXPECT_EQ(b.devices.capacity_bytes, o.devices.capacity_bytes);
  EXPECT_TRUE(b.devices.pin_cpus);
  EXPECT_EQ(b.devices.nodes, o.devices.nodes);
  EXPECT_EQ(b.memory.usage_bytes, o.memory.usage_bytes);
  EXPECT_EQ(b.memory.page_size, o.memory.page_size);
  EXPECT_TRUE(b.memory.discard_on_free);
  EXPECT_TRUE(b.memory.populate);
  EXPECT_EQ(b.loader.queue_depth, 64u);
  EXPECT_EQ(b.loader.chunk_bytes, o.loader.chunk_bytes);
  EXPECT_FALSE(b.loader.direct_io);
  EXPECT_FALSE(b.loader.register_buffers);
  EXPECT_EQ(b.loader.progress_interval_s, 0.1);
  EXPECT_EQ(b.copy_threads_per_device, 4);
  EXPECT_FALSE(b.check_weights);
  // The launcher's start message carries them.
  HmmOptions started;
  const json start = StartMessage(o);
  ASSERT_TRUE(StartMessageFromJson(JsonReader(start, "start"), &started).ok());
  EXPECT_EQ(started.memory.usage_bytes, o.memory.usage_bytes);
  EXPECT_EQ(started.devices.nodes, o.devices.nodes);
  EXPECT_FALSE(started.check_weights);
}

TEST(CodecTest, OpRequestsRoundTrip) {
  AttachRequest a;
  a.device = 1;
  a.writable = true;
  a.kv = true;
  a.tensors = false;
  const AttachRequest ab = RoundTrip(a);
  EXPECT_EQ(ab.device, 1);
  EXPECT_TRUE(ab.writable);
  EXPECT_TRUE(ab.kv);
  EXPECT_FALSE(ab.tensors);

  const CopyGroupRequest c = RoundTrip(CopyGroupRequest{{"a", "b"}, 0, 3, Usage::kExperts, "p."});
  EXPECT_EQ(c.names, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(c.from, 0);
  EXPECT_EQ(c.to, 3);
  EXPECT_EQ(c.usage, Usage::kExperts);
  EXPECT_EQ(c.prefix, "p.");

  const ReleaseManyRequest m = RoundTrip(ReleaseManyRequest{{{"x", 0}, {"y", 2}}});
  EXPECT_EQ(m.records, (std::vector<std::pair<std::string, int>>{{"x", 0}, {"y", 2}}));
  const ReleaseMatchingRequest rm = RoundTrip(ReleaseMatchingRequest{"b.", {1, 2}});
  EXPECT_EQ(rm.prefix, "b.");
  EXPECT_EQ(rm.devices, (std::vector<int>{1, 2}));
  const KvAllocRequest k = RoundTrip(KvAllocRequest{2, 1ull << 40});
  EXPECT_EQ(k.device, 2);
  EXPECT_EQ(k.bytes, 1ull << 40);
  const KvAllocReply kr = RoundTrip(KvAllocReply{7, 4096, 8192});
  EXPECT_EQ(kr.id, 7u);
  EXPECT_EQ(kr.offset, 4096u);
  EXPECT_EQ(kr.bytes, 8192u);

  RecordRequest rec;
  const json find = ToJson("find", RecordRequest{"embed", 1});
  ASSERT_TRUE(FromJson(JsonReader(find, "find"), &rec).ok());
  EXPECT_EQ(rec.name, "embed");
  EXPECT_EQ(rec.device, 1);
  KvRequest kv;
  const json resize = ToJson("kv_resize", KvRequest{9, 12288});
  ASSERT_TRUE(FromJson(JsonReader(resize, "kv_resize"), true, &kv).ok());
  EXPECT_EQ(kv.id, 9u);
  EXPECT_EQ(kv.bytes, 12288u);
}

TEST(CodecTest, MalformedMessagesNameTheField) {
  // Not JSON, truncated, not an object.
  for (const char* text : {"not json", R"({"tensors": 1, "bytes_from)", "[1, 2]", ""}) {
    Status s = Read<LoadReport>(text, "load");
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << text;
    ExpectNames(s, "load: not a JSON object");
  }
  // A missing field, a wrongly typed one, nested ones, with the reader's code.
  ExpectNames(Read<TensorMeta>(R"({"name":"x"})"), "field 'device' is required");
  ExpectNames(Read<DeviceSpec>(R"({"id":0,"node":0,"cpus":[1,"2"],"capacity_bytes":1})"),
              "field 'cpus' must be an array of integers");
  ExpectNames(Read<DeviceSpec>(R"({"id":4294967296,"node":0,"cpus":[],"capacity_bytes":1})"),
              "field 'id' must be an int");
  ExpectNames(Read<KvAllocRequest>(R"({"device":0,"bytes":-1})"),
              "field 'bytes' must be a non-negative integer");
  const std::string report =
      R"({"tensors":1,"bytes_from_disk":1,"bytes_p2p":0,"disk_seconds":0,"p2p_seconds":0,)"
      R"("disk":{"bytes":1,"seconds":0,"reads":"many","short_reads":0,"direct_io":true,)"
      R"("fixed_buffers":true,"fallback_reason":""}})";
  ExpectNames(Read<LoadReport>(report), "field 'disk.reads' must be a non-negative integer");
  const Status placement = Read<LoadRequest>(
      R"({"checkpoint":"c","placement":[{"name":"layer0","usage":"weights","devices":[0,"1"]}]})",
      "load");
  EXPECT_EQ(placement.message(),
            "load: field 'placement.layer0.devices' must be an array of integers");
  ExpectNames(Read<LoadRequest>(R"({"checkpoint":"c","placement":[{"name":"e","usage":"gpu",)"
                                R"("devices":[0]}]})"),
              "field 'placement.e.usage' is 'gpu', not one of weights, experts, kv");
  ExpectNames(Read<LoadRequest>(R"({"checkpoint":"c","placement":[{"usage":"weights"}]})"),
              "field 'placement[0].name' is required");
  ExpectNames(Read<LoadRequest>(R"({"checkpoint":"c","placement":[{"name":"e","usage":"kv",)"
                                R"("devices":[0]},{"name":"e","usage":"kv","devices":[1]}]})"),
              "field 'placement' lists 'e' twice");
  ExpectNames(Read<DeviceStats>(R"({"device":0,"capacity_bytes":0,"used_bytes":0,)"
                                R"("peak_used_bytes":0,"usage":[]})"),
              "field 'usage' must be an array of 3 arena stats");
  ExpectNames(Read<HmmOptions>(R"({"devices":{"devices_per_node":1,"capacity_bytes":0,)"
                               R"("pin_cpus":false,"nodes":[]},"memory":{"usage_bytes":[1,2,3],)"
                               R"("page_size":"huge","discard_on_free":false,"populate":false}})"),
              "field 'memory.page_size' is 'huge'");
  ExpectNames(Read<ReleaseManyRequest>(R"({"records":[[1,"x"]]})"),
              "field 'records' must be an array of [name, device]");
  // A reply reader says which reply broke, as kDataLoss.
  const json bad = json::parse(R"({"devices":[{"id":0,"node":0,"cpus":[]}],"page_note":""})");
  DevicesReply d;
  Status s = FromJson(ReplyReader(bad, "hmmd", "devices"), &d);
  EXPECT_EQ(s.code(), StatusCode::kDataLoss);
  EXPECT_EQ(s.message(),
            "hmmd: malformed devices reply: field 'devices[0].capacity_bytes' is required");
  HmmOptions o;
  ExpectNames(StartMessageFromJson(JsonReader(json::parse(R"({"op":"load"})"), "start"), &o),
              "field 'op' is 'load', not 'start'");
}

TEST(CodecTest, BatchRequestsAndRepliesRoundTrip) {
  ApplyCopiesRequest q;
  q.copies = {{{"a", "b"}, 0, 3, Usage::kExperts, "p."}, {{}, 2, 1, Usage::kKv, ""}};
  q.options.max_parallel = 3;
  q.options.chunk_bytes = 1ull << 33;
  const ApplyCopiesRequest b = RoundTrip(q);
  ASSERT_EQ(b.copies.size(), 2u);
  EXPECT_EQ(b.copies[0].names, q.copies[0].names);
  EXPECT_EQ(b.copies[0].from, 0);
  EXPECT_EQ(b.copies[0].to, 3);
  EXPECT_EQ(b.copies[0].usage, Usage::kExperts);
  EXPECT_EQ(b.copies[0].dst_prefix, "p.");
  EXPECT_TRUE(b.copies[1].names.empty());
  EXPECT_EQ(b.copies[1].usage, Usage::kKv);
  EXPECT_EQ(b.options.max_parallel, 3);
  EXPECT_EQ(b.options.chunk_bytes, 1ull << 33);
  EXPECT_EQ(ToJson(q)["op"], "apply_copies");
  // The options and a copy's prefix are optional: the defaults.
  ApplyCopiesRequest d;
  d.options.max_parallel = 9;
  ASSERT_TRUE(FromJson(JsonReader(json::parse(R"({"copies":[{"names":["x"],"from":1,"to":0,)"
                                              R"("usage":"weights"}]})"),
                                  "apply_copies"),
                       &d)
                  .ok());
  EXPECT_EQ(d.options.max_parallel, CopyBatchOptions{}.max_parallel);
  EXPECT_EQ(d.options.chunk_bytes, CopyBatchOptions{}.chunk_bytes);
  EXPECT_EQ(d.copies.at(0).dst_prefix, "");

  CopyBatchReport rep;
  rep.copies = {{6ull << 20, 0.0, 0.5}, {1ull << 40, 0.25, 1.75}};
  rep.bytes = (6ull << 20) + (1ull << 40);
  rep.prepare_s = 0.001;
  rep.copy_s = 1.75;
  rep.register_s = 1e-5;
  const CopyBatchReport r = RoundTrip(rep);
  ASSERT_EQ(r.copies.size(), 2u);
  EXPECT_EQ(r.copies[1].bytes, 1ull << 40);
  EXPECT_EQ(r.copies[1].start_s, 0.25);
  EXPECT_EQ(r.copies[1].end_s, 1.75);
  EXPECT_EQ(r.bytes, rep.bytes);
  EXPECT_EQ(r.prepare_s, rep.prepare_s);
  EXPECT_EQ(r.copy_s, rep.copy_s);
  EXPECT_EQ(r.register_s, rep.register_s);

  const DescribeRequest dq = RoundTrip(DescribeRequest{{{"x", 0}, {"y", 2}}});
  EXPECT_EQ(dq.records, (std::vector<std::pair<std::string, int>>{{"x", 0}, {"y", 2}}));
  EXPECT_EQ(ToJson(dq)["op"], "describe");
  HmmSnapshot snap;
  snap.records = {Meta(), Meta()};
  snap.records[1].name = "other";
  DeviceStats st;
  st.device = 1;
  st.usage = {Arena(4), Arena(5), Arena(6)};
  st.used_bytes = 77;
  snap.stats = {st};
  const HmmSnapshot sb = RoundTrip(snap);
  ASSERT_EQ(sb.records.size(), 2u);
  ExpectEq(sb.records[0], snap.records[0]);
  ExpectEq(sb.records[1], snap.records[1]);
  ASSERT_EQ(sb.stats.size(), 1u);
  EXPECT_EQ(sb.stats[0].device, 1);
  EXPECT_EQ(sb.stats[0].used_bytes, 77u);
  for (int u = 0; u < kNumUsages; ++u) ExpectEq(sb.stats[0].usage[u], st.usage[u]);
}

TEST(CodecTest, MalformedBatchMessagesNameTheField) {
  ExpectNames(Read<ApplyCopiesRequest>(R"({"copies":{}})", "apply_copies"),
              "apply_copies: field 'copies' must be an array of objects");
  ExpectNames(Read<ApplyCopiesRequest>(R"({"copies":[{"names":["a"],"from":0,"to":"1",)"
                                       R"("usage":"experts"}]})"),
              "field 'copies[0].to' must be an int");
  ExpectNames(Read<ApplyCopiesRequest>(R"({"copies":[],"options":{"max_parallel":1.5}})"),
              "field 'options.max_parallel' must be an int");
  ExpectNames(Read<ApplyCopiesRequest>(R"({"copies":[],"options":[]})"), "field 'options' must be");
  ExpectNames(Read<DescribeRequest>(R"({"records":[["x",0],["y"]]})"),
              "field 'records' must be an array of [name, device]");
  ExpectNames(Read<CopyBatchReport>(R"({"copies":[{"bytes":1,"start_s":0}],"bytes":1,)"
                                    R"("prepare_s":0,"copy_s":0,"register_s":0})"),
              "field 'copies[0].end_s' is required");
  ExpectNames(Read<HmmSnapshot>(R"({"records":[{"name":"x"}],"devices":[]})"),
              "field 'records[0].device' is required");
}

}  // namespace
}  // namespace emoe::hbm::ipc
