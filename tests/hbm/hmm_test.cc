#include "hbm/hmm.h"

#include <gtest/gtest.h>

#include <cstring>
#include <thread>

#include "stream_copy.h"  // hbm/src
#include "test_files.h"
#include "vmm/stats.h"

namespace emoe::hbm {
namespace {

using testing::ScratchDir;

std::vector<DeviceSpec> Devices(int n, uint64_t capacity) {
  std::vector<DeviceSpec> out;
  for (int i = 0; i < n; ++i) {
    DeviceSpec s;
    s.id = i;
    s.node = 0;
    s.cpus = {0};
    s.capacity_bytes = capacity;
    out.push_back(s);
  }
  return out;
}

HmmOptions Options(uint64_t weights_bytes, uint64_t experts_bytes = 0) {
  HmmOptions o;
  o.memory.usage_bytes = {weights_bytes, experts_bytes, 0};
  o.memory.page_size = vmm::PageSizePolicy::kSmall;
  o.copy_threads_per_device = 2;
  return o;
}

// A checkpoint with tensors at unaligned offsets (align 2), of several dtypes and sizes.
std::string MakeCheckpoint(const ScratchDir& dir, std::vector<TensorToWrite>* out) {
  std::vector<TensorToWrite> t = {
      {"embed", DType::kBF16, {64, 100}, testing::RandomBytes(64 * 100 * 2, 1)},
      {"layers.0.attn.q", DType::kF32, {100, 100}, testing::RandomBytes(40000, 2)},
      {"layers.0.mlp.experts.0.w1", DType::kBF16, {256, 1000}, testing::RandomBytes(512000, 3)},
      {"layers.0.mlp.experts.1.w1", DType::kBF16, {256, 1000}, testing::RandomBytes(512000, 4)},
      {"norm", DType::kF16, {3}, testing::RandomBytes(6, 5)},
  };
  const std::string path = dir.File("model.safetensors");
  EXPECT_TRUE(WriteSafetensors(path, t, {}, 2).ok());
  *out = t;
  return path;
}

TEST(HmmTest, LoadsOnceAndReplicatesByteExact) {
  ScratchDir dir;
  std::vector<TensorToWrite> written;
  auto ckpt = OpenCheckpoint(MakeCheckpoint(dir, &written));
  ASSERT_TRUE(ckpt.ok()) << ckpt.status().ToString();
  auto hmm = Hmm::CreateWithDevices(Devices(3, 64 << 20), Options(16 << 20, 8 << 20));
  ASSERT_TRUE(hmm.ok()) << hmm.status().ToString();
  // Experts are split over devices 1 and 2; everything else is on all three.
  auto placement = [](const TensorInfo& t) {
    if (t.name.find(".experts.0.") != std::string::npos) {
      return PlacementDecision{Usage::kExperts, {1}, "e0"};
    }
    if (t.name.find(".experts.1.") != std::string::npos) {
      return PlacementDecision{Usage::kExperts, {2, 0}, "e1"};
    }
    return PlacementDecision{Usage::kWeights, {0, 1, 2}, ""};
  };
  const uint64_t copied_before = vmm::GlobalCounters().bytes_copied.load();
  auto report = (*hmm)->LoadCheckpoint(*ckpt, placement);
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_EQ(report->bytes_from_disk, ckpt->total_bytes) << "each tensor read from disk once";
  EXPECT_EQ(report->tensors, 3u * 3 + 1 + 2);
  EXPECT_EQ(report->bytes_p2p, 2 * (12800 + 40000 + 6) + 512000u);
  EXPECT_GE(vmm::GlobalCounters().bytes_copied.load() - copied_before, report->bytes_p2p);
  for (const TensorToWrite& w : written) {
    for (const TensorRecord& r : (*hmm)->List()) {
      if (r.name != w.name) continue;
      ASSERT_EQ(r.size_bytes, w.bytes.size());
      EXPECT_EQ(std::memcmp(r.data(), w.bytes.data(), r.size_bytes), 0)
          << r.name << " on device " << r.device;
      EXPECT_EQ(r.shape, w.shape);
    }
  }
  EXPECT_EQ((*hmm)->List(1).size(), 4u);
  EXPECT_FALSE((*hmm)->Find("layers.0.mlp.experts.0.w1", 0).ok());
  // Accounting: experts on device 2 use exactly their pages.
  const DeviceStats s2 = (*hmm)->Stats()[2];
  EXPECT_EQ(s2.usage[static_cast<int>(Usage::kExperts)].used_bytes, 512000u / 4096 * 4096 + 4096);
  EXPECT_NE((*hmm)->Report().find("total: 12 tensor records"), std::string::npos)
      << (*hmm)->Report();

  // Loading again is refused without changing anything.
  auto again = (*hmm)->LoadCheckpoint(*ckpt, placement);
  EXPECT_EQ(again.status().code(), vmm::StatusCode::kAlreadyExists);
  EXPECT_EQ((*hmm)->List().size(), 12u);

  // Release returns pages; Replicate copies peer to peer.
  ASSERT_TRUE((*hmm)->Release("layers.0.mlp.experts.0.w1", 1).ok());
  EXPECT_EQ((*hmm)->Stats()[1].usage[static_cast<int>(Usage::kExperts)].used_bytes, 0u);
  ASSERT_TRUE((*hmm)->Replicate("layers.0.mlp.experts.1.w1", 2, 1).ok());
  auto rep = (*hmm)->Find("layers.0.mlp.experts.1.w1", 1);
  ASSERT_TRUE(rep.ok());
  EXPECT_EQ(std::memcmp(rep->data(), written[3].bytes.data(), rep->size_bytes), 0);
  EXPECT_EQ((*hmm)->Replicate("layers.0.mlp.experts.1.w1", 2, 1).code(),
            vmm::StatusCode::kAlreadyExists);
  EXPECT_EQ((*hmm)->Release("nope", 0).code(), vmm::StatusCode::kNotFound);
}

TEST(HmmTest, FullArenaFailsTheWholeLoadCleanly) {
  ScratchDir dir;
  std::vector<TensorToWrite> written;
  auto ckpt = OpenCheckpoint(MakeCheckpoint(dir, &written));
  ASSERT_TRUE(ckpt.ok());
  // 1 MiB of weights per device cannot hold both experts (500 KB each) plus the rest.
  auto hmm = Hmm::CreateWithDevices(Devices(2, 8 << 20), Options(1 << 20));
  ASSERT_TRUE(hmm.ok());
  auto r = (*hmm)->LoadCheckpoint(*ckpt, ReplicateEverywhere({0, 1}));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), vmm::StatusCode::kResourceExhausted) << r.status().ToString();
  // Refused before anything is allocated: the layout's total against the arena's free bytes.
  EXPECT_NE(r.status().message().find("of weights on device 0, its arena has 1.0 MiB free of 1.0 "
                                      "MiB"),
            std::string::npos)
      << r.status().message();
  EXPECT_EQ((*hmm)->Stats()[0].usage[0].allocations, 0u) << "nothing was allocated";
  EXPECT_TRUE((*hmm)->List().empty());
  for (const DeviceStats& s : (*hmm)->Stats()) EXPECT_EQ(s.used_bytes, 0u) << s.ToString();
  // Arenas large enough, the device's capacity not.
  auto small = Hmm::CreateWithDevices(Devices(2, 1 << 20), Options(16 << 20));
  ASSERT_TRUE(small.ok()) << small.status().ToString();
  r = (*small)->LoadCheckpoint(*ckpt, ReplicateEverywhere({0, 1}));
  EXPECT_EQ(r.status().code(), vmm::StatusCode::kResourceExhausted);
  EXPECT_NE(r.status().message().find("on device 0, which has 1.0 MiB free"), std::string::npos)
      << r.status().message();
}

TEST(HmmTest, TruncatedCheckpointFailsCleanly) {
  ScratchDir dir;
  std::vector<TensorToWrite> written;
  const std::string path = MakeCheckpoint(dir, &written);
  auto ckpt = OpenCheckpoint(path);
  ASSERT_TRUE(ckpt.ok());
  ASSERT_EQ(truncate(path.c_str(), 300000), 0);  // cut after the header was read
  auto hmm = Hmm::CreateWithDevices(Devices(1, 8 << 20), Options(4 << 20));
  auto r = (*hmm)->LoadCheckpoint(*ckpt, ReplicateEverywhere({0}));
  EXPECT_EQ(r.status().code(), vmm::StatusCode::kDataLoss) << r.status().ToString();
  EXPECT_TRUE((*hmm)->List().empty());
  EXPECT_EQ((*hmm)->Stats()[0].used_bytes, 0u);
  EXPECT_EQ(OpenCheckpoint(path).status().code(), vmm::StatusCode::kDataLoss);
}

TEST(HmmTest, BadPlacementIsRefused) {
  ScratchDir dir;
  std::vector<TensorToWrite> written;
  auto ckpt = OpenCheckpoint(MakeCheckpoint(dir, &written));
  auto hmm = Hmm::CreateWithDevices(Devices(2, 8 << 20), Options(4 << 20));
  auto r = (*hmm)->LoadCheckpoint(*ckpt, ReplicateEverywhere({0, 5}));
  EXPECT_EQ(r.status().code(), vmm::StatusCode::kInvalidArgument);
  r = (*hmm)->LoadCheckpoint(*ckpt, ReplicateEverywhere({1, 1}));
  EXPECT_EQ(r.status().code(), vmm::StatusCode::kInvalidArgument);
}

TEST(HmmTest, CopyEngineCopiesLargeBuffersAcrossWorkers) {
  CopyEngine engine(Devices(2, 1 << 20), 3);
  EXPECT_EQ(engine.threads(1), 3);
  std::string src = testing::RandomBytes((16 << 20) + 5, 11), dst(src.size(), '\0');
  ASSERT_TRUE(engine.Copy(1, dst.data(), src.data(), src.size()).ok());
  EXPECT_EQ(src, dst);
  EXPECT_EQ(engine.Copy(7, dst.data(), src.data(), 1).code(), vmm::StatusCode::kInvalidArgument);
  EXPECT_TRUE(engine.Copy(0, dst.data(), src.data(), 0).ok());
}

// With populate, Create faults in what each device can hold (its capacity, given to the KV,
// weights and experts arenas in that order), reporting each chunk; what lies past it is
// populated when allocated.
TEST(HmmTest, PopulatesWhatTheDevicesCanHoldWithProgress) {
  HmmOptions o = Options(16 << 20, 48 << 20);  // 64 MiB of arenas per device
  o.memory.populate = true;
  std::vector<PopulateProgress> seen;
  o.populate_progress = [&](const PopulateProgress& p) { seen.push_back(p); };
  auto hmm = Hmm::CreateWithDevices(Devices(2, 40 << 20), o);
  ASSERT_TRUE(hmm.ok()) << hmm.status().ToString();
  ASSERT_GE(seen.size(), 3u);  // once before, then per chunk (32 MiB)
  EXPECT_EQ(seen.front().done_bytes, 0u);
  EXPECT_EQ(seen.back().done_bytes, seen.back().total_bytes);
  EXPECT_EQ(seen.back().total_bytes, 80u << 20);  // 2 x 40 MiB, not 2 x 64 MiB
  for (size_t i = 1; i < seen.size(); ++i) EXPECT_GT(seen[i].done_bytes, seen[i - 1].done_bytes);
  Device& d = (*hmm)->device(0);
  EXPECT_EQ(d.arena(Usage::kWeights)->resident_prefix_bytes(), 16u << 20);  // whole
  EXPECT_EQ(d.arena(Usage::kExperts)->resident_prefix_bytes(), 24u << 20);  // the other 40 - 16
  // Past the prefix, an allocation is populated when it is made.
  auto e = d.Allocate(Usage::kExperts, 28 << 20);
  ASSERT_TRUE(e.ok()) << e.status().ToString();
  EXPECT_EQ(d.arena(Usage::kExperts)->resident_prefix_bytes(), 28u << 20);
  // Arenas that fit in the capacity are populated whole.
  o.populate_progress = nullptr;
  auto whole = Hmm::CreateWithDevices(Devices(1, 64 << 20), o);
  ASSERT_TRUE(whole.ok()) << whole.status().ToString();
  EXPECT_EQ((*whole)->device(0).arena(Usage::kExperts)->resident_prefix_bytes(), 48u << 20);
}

TEST(HmmTest, CreateStopsBetweenPopulatedChunksWhenCancelled) {
  HmmOptions o = Options(16 << 20, 48 << 20);
  o.memory.populate = true;
  CancelToken cancel;
  o.cancel = &cancel;
  int chunks = 0;
  o.populate_progress = [&](const PopulateProgress& p) {
    if (p.done_bytes > 0 && ++chunks == 1) cancel.Cancel();
  };
  auto hmm = Hmm::CreateWithDevices(Devices(2, 64 << 20), o);
  ASSERT_FALSE(hmm.ok());
  EXPECT_EQ(hmm.status().code(), vmm::StatusCode::kUnavailable);
  EXPECT_NE(hmm.status().message().find("cancelled"), std::string::npos) << hmm.status().ToString();
  EXPECT_EQ(chunks, 1) << "no chunk after the stop";
}

TEST(HmmTest, CopyEngineBatchCutsSpansIntoChunks) {
  CopyEngine engine(Devices(2, 1 << 20), 2);
  const std::string a = testing::RandomBytes((1 << 20) + 5, 21),
                    b = testing::RandomBytes(300000, 22);
  for (int max_parallel : {0, 1, 3}) {
    SCOPED_TRACE("max_parallel " + std::to_string(max_parallel));
    std::string da(a.size(), '\0'), db(b.size(), '\0');
    const std::vector<CopySpan> spans = {{1, da.data(), a.data(), a.size()},
                                         {0, db.data(), b.data(), 0},
                                         {0, db.data(), b.data(), b.size()}};
    auto t = engine.CopyBatch(spans, 64 << 10, max_parallel);
    ASSERT_TRUE(t.ok()) << t.status().ToString();
    EXPECT_EQ(da, a);
    EXPECT_EQ(db, b);
    EXPECT_EQ(t->chunks, 17u + 5u);  // 16 chunks of 64 KiB and 5 bytes; 300000 in 5
    ASSERT_EQ(t->spans.size(), 3u);
    EXPECT_EQ(t->spans[1].start_s, 0);
    EXPECT_EQ(t->spans[1].end_s, 0);
    for (const SpanTimes& s : t->spans) {
      EXPECT_LE(s.start_s, s.end_s);
      EXPECT_LE(s.end_s, t->wall_s);
    }
    EXPECT_EQ(std::min(t->spans[0].start_s, t->spans[2].start_s), 0) << "times from the first";
    if (max_parallel == 1) {
      EXPECT_LE(t->spans[0].end_s, t->spans[2].start_s) << "one at a time";
    }
  }
  std::string d(16, '\0');
  const std::vector<CopySpan> bad = {
      {0, d.data(), a.data(), 16}, {0, d.data(), a.data(), 16}, {2, d.data(), a.data(), 16}};
  auto s = engine.CopyBatch(bad, 4096, 0);
  EXPECT_EQ(s.status().code(), vmm::StatusCode::kInvalidArgument);
  EXPECT_NE(s.status().message().find("span 2 copies to unknown device 2"), std::string::npos)
      << s.status().ToString();
  EXPECT_EQ(d, std::string(16, '\0')) << "nothing copied";
  EXPECT_EQ(engine.CopyBatch({}, 0, 0).status().code(), vmm::StatusCode::kInvalidArgument);
  EXPECT_EQ(engine.CopyBatch({}, 4095, 0).status().code(), vmm::StatusCode::kInvalidArgument);
  EXPECT_EQ(engine.CopyBatch({}, 4096, -1).status().code(), vmm::StatusCode::kInvalidArgument);
  auto none = engine.CopyBatch({}, 4096, 0);
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(none->chunks, 0u);
  EXPECT_EQ(none->wall_s, 0);
}

// Large copies use streaming stores on an aligned body (four pages at a time, then line by
// line), memcpy for the head and tail: with every kind the CPU has, every size and misalignment
// copies exactly its bytes, nothing before or after.
TEST(HmmTest, StreamCopyCopiesExactlyWithEveryKind) {
  const std::string src = testing::RandomBytes((2 << 20) + 4096, 31);
  const uint64_t k = kStreamMinBytes;
  int kinds = 0;
  for (StreamKind kind :
       {StreamKind::kMemcpy, StreamKind::kSse2, StreamKind::kAvx2, StreamKind::kAvx512}) {
    if (!StreamKindSupported(kind)) continue;
    ++kinds;
    for (uint64_t n : {uint64_t{0}, uint64_t{100}, k - 1, k, k + 1, k + 63, k + 255,
                       k + 3 * 16384 + 5 * 256 + 13, uint64_t{1 << 20} + 17, uint64_t{2 << 20}}) {
      for (uint64_t dst_off : {0, 1, 33, 64, 127}) {
        for (uint64_t src_off : {0, 5}) {
          std::string dst(n + 256, '\x5a');
          const uint64_t copied = vmm::GlobalCounters().bytes_copied.load();
          StreamCopyAs(kind, dst.data() + dst_off, src.data() + src_off, n);
          EXPECT_GE(vmm::GlobalCounters().bytes_copied.load() - copied, n);
          const std::string where = std::string(StreamKindName(kind)) + ": " + std::to_string(n) +
                                    " bytes at +" + std::to_string(dst_off) + " from +" +
                                    std::to_string(src_off);
          ASSERT_EQ(dst.compare(dst_off, n, src, src_off, n), 0) << where;
          EXPECT_EQ(dst.substr(0, dst_off), std::string(dst_off, '\x5a')) << where;
          EXPECT_EQ(dst.substr(dst_off + n), std::string(256 - dst_off, '\x5a')) << where;
        }
      }
    }
  }
  EXPECT_GE(kinds, 1);
  EXPECT_TRUE(StreamKindSupported(BestStreamKind()));
  EXPECT_EQ(std::string(CopyEngine::StoreKind()), StreamKindName(BestStreamKind()));
}

// Experts 0 and 1 on devices 0 and 1, the rest on device 0: the fixture of the batch tests.
PlacementFn SplitExperts() {
  return [](const TensorInfo& t) {
    if (t.name.find(".experts.0.") != std::string::npos) {
      return PlacementDecision{Usage::kExperts, {0}, "e0"};
    }
    if (t.name.find(".experts.1.") != std::string::npos) {
      return PlacementDecision{Usage::kExperts, {1}, "e1"};
    }
    return PlacementDecision{Usage::kWeights, {0}, ""};
  };
}

TEST(HmmTest, ApplyCopiesRunsTheWholeBatchAtOnceOrOneChunkAtATime) {
  ScratchDir dir;
  std::vector<TensorToWrite> written;
  auto ckpt = OpenCheckpoint(MakeCheckpoint(dir, &written));
  ASSERT_TRUE(ckpt.ok()) << ckpt.status().ToString();
  auto hmm = Hmm::CreateWithDevices(Devices(3, 64 << 20), Options(16 << 20, 8 << 20));
  ASSERT_TRUE(hmm.ok()) << hmm.status().ToString();
  ASSERT_TRUE((*hmm)->LoadCheckpoint(*ckpt, SplitExperts()).ok());
  const std::vector<GroupCopy> batch = {
      {{"layers.0.mlp.experts.0.w1"}, 0, 1, Usage::kExperts, ""},
      {{"layers.0.mlp.experts.0.w1"}, 0, 2, Usage::kExperts, ""},
      {{"layers.0.mlp.experts.1.w1"}, 1, 2, Usage::kExperts, ""},
      {{"embed", "layers.0.attn.q", "norm"}, 0, 2, Usage::kWeights, ""},
  };
  const uint64_t dense = 12800 + 40000 + 6;
  for (int max_parallel : {1, 0}) {
    SCOPED_TRACE("max_parallel " + std::to_string(max_parallel));
    const uint64_t copied = vmm::GlobalCounters().bytes_copied.load();
    auto r = (*hmm)->ApplyCopies(batch, {max_parallel, 64 << 10});
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(r->bytes, 3 * 512000u + dense);
    EXPECT_GE(vmm::GlobalCounters().bytes_copied.load() - copied, r->bytes);
    ASSERT_EQ(r->copies.size(), 4u);
    EXPECT_EQ(r->copies[3].bytes, dense);
    for (size_t i = 0; i < 4; ++i) {
      EXPECT_LE(r->copies[i].start_s, r->copies[i].end_s);
      EXPECT_LE(r->copies[i].end_s, r->copy_s);
      // One chunk at a time, in order: each copy ends before the next begins.
      if (max_parallel == 1 && i > 0) {
        EXPECT_LE(r->copies[i - 1].end_s, r->copies[i].start_s);
      }
    }
    for (const TensorToWrite& w : written) {
      for (int dev : {1, 2}) {
        auto rec = (*hmm)->Find(w.name, dev);
        if (!rec.ok()) continue;
        ASSERT_EQ(rec->size_bytes, w.bytes.size());
        EXPECT_EQ(std::memcmp(rec->data(), w.bytes.data(), w.bytes.size()), 0)
            << w.name << " on " << dev;
      }
    }
    {  // (the records found here hold their extents until the end of the block)
      auto q = (*hmm)->Find("layers.0.attn.q", 2), norm = (*hmm)->Find("norm", 2);
      ASSERT_TRUE(q.ok() && norm.ok());
      EXPECT_EQ(q->extent.data(), norm->extent.data()) << "one extent per copy";
      EXPECT_EQ(q->offset_in_extent % 4096,
                (*hmm)->Find("layers.0.attn.q", 0)->offset_in_extent % 4096)
          << "the source's alignment";
    }
    EXPECT_EQ((*hmm)->List(2).size(), 5u);
    EXPECT_EQ((*hmm)->ReleaseIf([](const TensorRecord& t) { return t.device == 2; }), 5u);
    ASSERT_TRUE((*hmm)->Release("layers.0.mlp.experts.0.w1", 1).ok());
    EXPECT_EQ((*hmm)->Stats()[2].used_bytes, 0u);
  }
}

TEST(HmmTest, ApplyCopiesFreesWhatItAllocatedWhenAnAllocationFails) {
  ScratchDir dir;
  std::vector<TensorToWrite> written;
  auto ckpt = OpenCheckpoint(MakeCheckpoint(dir, &written));
  ASSERT_TRUE(ckpt.ok());
  auto hmm = Hmm::CreateWithDevices(Devices(2, 64 << 20), Options(16 << 20, 2 << 20));
  ASSERT_TRUE(hmm.ok()) << hmm.status().ToString();
  ASSERT_TRUE((*hmm)->LoadCheckpoint(*ckpt, ReplicateEverywhere({0})).ok());
  // Device 1's experts arena in holes of 256 KiB: 768 KiB free, nothing larger than a hole.
  Device& d1 = (*hmm)->device(1);
  std::vector<vmm::Extent> fill;
  for (int i = 0; i < 8; ++i) fill.push_back(d1.Allocate(Usage::kExperts, 256 << 10).value());
  for (int i : {0, 2, 4}) fill[i].Reset();
  const vmm::ArenaStats before = d1.arena(Usage::kExperts)->Stats();
  ASSERT_EQ(before.free_bytes, 768u << 10);
  // The first copy fits in a hole; the second (500 KiB) passes the check of free bytes but
  // finds no run long enough.
  auto r = (*hmm)->ApplyCopies({{{"layers.0.attn.q"}, 0, 1, Usage::kExperts, ""},
                                {{"layers.0.mlp.experts.0.w1"}, 0, 1, Usage::kExperts, ""}});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), vmm::StatusCode::kResourceExhausted) << r.status().ToString();
  EXPECT_NE(r.status().message().find("copy 1 of 2 ('layers.0.mlp.experts.0.w1', device 0 -> 1)"),
            std::string::npos)
      << r.status().ToString();
  const vmm::ArenaStats after = d1.arena(Usage::kExperts)->Stats();
  EXPECT_EQ(after.used_bytes, before.used_bytes);
  EXPECT_EQ(after.live_extents, before.live_extents);
  EXPECT_EQ(after.allocations, before.allocations + 1) << "the first copy's extent was made";
  EXPECT_EQ(after.frees, before.frees + 1) << "and freed";
  EXPECT_FALSE((*hmm)->Find("layers.0.attn.q", 1).ok());
}

// Two batches with the same destinations at once: one registers everything, the other nothing
// (refused when it checks, or when it registers and finds the first one's records), and only
// the winner's extents stay.
TEST(HmmTest, ConcurrentBatchesToTheSameDestinations) {
  ScratchDir dir;
  std::vector<TensorToWrite> written;
  auto ckpt = OpenCheckpoint(MakeCheckpoint(dir, &written));
  ASSERT_TRUE(ckpt.ok());
  auto hmm = Hmm::CreateWithDevices(Devices(2, 64 << 20), Options(16 << 20, 8 << 20));
  ASSERT_TRUE(hmm.ok()) << hmm.status().ToString();
  ASSERT_TRUE((*hmm)->LoadCheckpoint(*ckpt, SplitExperts()).ok());
  const std::vector<GroupCopy> batch = {
      {{"layers.0.mlp.experts.0.w1"}, 0, 1, Usage::kExperts, ""},
      {{"embed", "norm"}, 0, 1, Usage::kWeights, ""},
  };
  const uint64_t base = (*hmm)->Stats()[1].used_bytes;
  uint64_t one = 0;
  for (int round = 0; round < 20; ++round) {
    StatusOr<CopyBatchReport> a = Status::Internal("not run"), b = a;
    std::thread ta([&] { a = (*hmm)->ApplyCopies(batch); });
    std::thread tb([&] { b = (*hmm)->ApplyCopies(batch); });
    ta.join();
    tb.join();
    ASSERT_NE(a.ok(), b.ok()) << a.status().ToString() << " / " << b.status().ToString();
    const Status& lost = a.ok() ? b.status() : a.status();
    EXPECT_EQ(lost.code(), vmm::StatusCode::kAlreadyExists) << lost.ToString();
    const uint64_t used = (*hmm)->Stats()[1].used_bytes - base;
    if (round == 0) one = used;
    EXPECT_EQ(used, one) << "only the winner's extents";
    auto w1 = (*hmm)->Find("layers.0.mlp.experts.0.w1", 1);
    ASSERT_TRUE(w1.ok());
    EXPECT_EQ(std::memcmp(w1->data(), written[2].bytes.data(), w1->size_bytes), 0);
    // The copies (expert 1 was loaded there).
    EXPECT_EQ((*hmm)->ReleaseIf([](const TensorRecord& t) {
      return t.device == 1 && t.name.find(".experts.1.") == std::string::npos;
    }),
              3u);
  }
  EXPECT_GT(one, 0u);
}

}  // namespace
}  // namespace emoe::hbm
