// elasticmoe's pure parts: throughput in fixed windows and the mean decode step on synthetic
// timelines, the copy bound, mean +- std over runs and the summaries per (method, event
// position), and the device sizing with its refusal.
#include <gtest/gtest.h>

#include <cmath>

#include "tools/elasticmoe_measure.h"
#include "tools/elasticmoe_sizing.h"
#include "tools/elasticmoe_summary.h"

namespace emoe::tools {
namespace {

constexpr uint64_t kMiB = 1ull << 20;

// Steps every `dt` seconds in [t0, t1), `tokens` each.
std::vector<engine::StepRecord> Steps(double t0, double t1, double dt, int tokens) {
  std::vector<engine::StepRecord> tl;
  for (int i = 0; t0 + i * dt < t1 - 1e-9; ++i) tl.push_back({t0 + i * dt, tokens, 0, 0});
  return tl;
}

TEST(WindowTest, ThroughputInFixedWindowsAroundTheCommand) {
  // 8 tokens every 0.1 s, except a 1 s pause right after the command at t = 5 (the event), then
  // 4 tokens a step.
  auto tl = Steps(0.05, 5.0, 0.1, 8);
  for (auto& s : Steps(6.05, 12.0, 0.1, 4)) tl.push_back(s);
  const WindowThroughput w = EventWindows(tl, 5.0, 2.0);
  EXPECT_NEAR(w.before_tps, 80, 1e-9);            // 20 steps of 8 in (3, 5]
  EXPECT_NEAR(w.during_tps, 10 * 4 / 2.0, 1e-9);  // (5, 7]: only the 10 steps after the pause
  EXPECT_NEAR(w.after_tps, 40, 1e-9);             // (7, 9]: 20 steps of 4
  EXPECT_NEAR(w.step_s, 0.1, 1e-9);
  // The window is the same whatever the event's own latency: a wider one averages more.
  EXPECT_NEAR(EventWindows(tl, 5.0, 4.0).during_tps, 30 * 4 / 4.0, 1e-9);
  EXPECT_EQ(WindowTps(tl, 3, 3), 0);
  EXPECT_EQ(WindowTps({}, 0, 1), 0);
}

TEST(WindowTest, MeanStepNeedsTwoStepsAndIgnoresOrder) {
  std::vector<engine::StepRecord> tl = {{2.0, 1, 0, 0}, {1.0, 1, 0, 0}, {1.5, 1, 0, 0}};
  EXPECT_NEAR(MeanStepSeconds(tl, 0, 3), 0.5, 1e-12);
  EXPECT_EQ(MeanStepSeconds(tl, 1.9, 3), 0);  // one step: unknown
  EXPECT_EQ(MeanStepSeconds({}, 0, 3), 0);
}

TEST(CopyBoundTest, EveryMovedByteAtTheRunsBandwidth) {
  engine::ScaleReport r;
  r.bytes_p2p = 1'000'000'000;
  r.bytes_disk = 500'000'000;
  r.bytes_copied = 500'000'000;
  r.bytes_remapped = 7'000'000'000;  // remapping moves no byte
  EXPECT_NEAR(CopyBoundSeconds(r, 10), 0.2, 1e-12);
  EXPECT_EQ(CopyBoundSeconds(r, 0), 0);
}

TEST(AggregateTest, MeanAndSampleStd) {
  const MeanStd m = Aggregate({1, 2, 3, 4});
  EXPECT_EQ(m.n, 4);
  EXPECT_DOUBLE_EQ(m.mean, 2.5);
  EXPECT_NEAR(m.std, std::sqrt(5.0 / 3.0), 1e-12);
  EXPECT_EQ(Aggregate({7}).std, 0);
  EXPECT_EQ(Aggregate({7}).mean, 7);
  EXPECT_EQ(Aggregate({}).n, 0);
  EXPECT_EQ(FormatMeanStd(m, 2), "2.50+-1.29");
  EXPECT_EQ(FormatMeanStd(Aggregate({7}), 1), "7.0");
  EXPECT_EQ(FormatMeanStd(Aggregate({}), 1), "-");
}

// Rounds of runs: hmmd's methods, then the in-process ones, reversed every other round, so that the
// HMM changes once a round and each round starts on the HMM the last one ended on.
TEST(RunOrderTest, GroupsByHmmAndAlternates) {
  const std::vector<bool> in_process = {false, true, false, false, true, false};
  EXPECT_EQ(RunOrder(in_process, 0), (std::vector<size_t>{0, 2, 3, 5, 1, 4}));
  EXPECT_EQ(RunOrder(in_process, 1), (std::vector<size_t>{4, 1, 5, 3, 2, 0}));
  EXPECT_EQ(RunOrder(in_process, 2), RunOrder(in_process, 0));
  EXPECT_TRUE(RunOrder({}, 0).empty());
}

EventRow Row(const std::string& method, int run, int position, int from, int to, double latency) {
  EventRow r;
  r.method = method;
  r.run = run;
  r.position = position;
  for (int d = 0; d < from; ++d) r.rep.from_devices.push_back(d);
  for (int d = 0; d < to; ++d) r.rep.to_devices.push_back(d);
  r.rep.latency_s = latency;
  return r;
}

TEST(SummaryTest, MeanStdPerMethodAndPositionWithRefusalsCounted) {
  std::vector<EventRow> rows;
  for (int run = 0; run < 3; ++run) {
    EventRow a = Row("elastic", run, 1, 2, 4, 0.1 * (run + 1));  // 0.1, 0.2, 0.3
    a.rep.bytes_p2p = 2'000'000'000;
    a.rep.p2p_copy_s = run == 2 ? 0 : 0.2 * (run + 1);  // 10, 5 GB/s; run 2 does not say
    a.rep.phase_s = {{"plan", 0.001 * (run + 1)}};
    a.before_tps = 100;
    a.during_tps = 90 + run;
    a.copy_bound_s = 0.05;
    a.step_s = 0.05;
    a.failed = run;
    rows.push_back(a);
    rows.push_back(Row("elastic", run, 2, 4, 2, 0.5));
    EventRow h = Row("horizontal", run, 1, 2, 3, 0);
    if (run != 1) h.error = "3 is not a multiple of 2";
    rows.push_back(h);
  }
  const std::vector<EventSummary> sums = Summarize(rows);
  ASSERT_EQ(sums.size(), 3u);
  const EventSummary& e = sums[0];
  EXPECT_EQ(e.method, "elastic");
  EXPECT_EQ(e.position, 1);
  EXPECT_EQ(e.event, "2->4");
  EXPECT_EQ(e.runs, 3);
  EXPECT_EQ(e.done, 3);
  EXPECT_EQ(e.failed, 0 + 1 + 2);
  EXPECT_NEAR(e.latency_s.mean, 0.2, 1e-12);
  EXPECT_NEAR(e.latency_s.std, 0.1, 1e-12);
  EXPECT_NEAR(e.latency_ratio.mean, 2.0, 1e-12);  // 0.2 s / (0.05 + 0.05)
  EXPECT_NEAR(e.tput_kept.mean, 0.91, 1e-12);
  EXPECT_EQ(e.p2p_gbs.n, 2);  // the run without p2p_copy_s is not averaged in
  EXPECT_NEAR(e.p2p_gbs.mean, 7.5, 1e-9);
  EXPECT_NEAR(e.phase_s.at("plan").mean, 0.002, 1e-12);
  EXPECT_NEAR(e.p2p_mib.mean, 2e9 / kMiB, 1e-6);
  EXPECT_EQ(sums[1].event, "4->2");
  const EventSummary& h = sums[2];
  EXPECT_EQ(h.runs, 3);
  EXPECT_EQ(h.done, 1);
  EXPECT_EQ(h.error, "3 is not a multiple of 2");
  EXPECT_EQ(h.latency_s.n, 1);
  const std::string js = SummaryJson(e);
  EXPECT_NE(js.find("\"latency_s\":{\"mean\":0.2,\"std\":0.1,\"n\":3}"), std::string::npos) << js;
  EXPECT_NE(js.find("\"phases_s\":{\"plan\":{"), std::string::npos) << js;
  EXPECT_NE(SummaryJson(h).find("\"error\":\"3 is not"), std::string::npos);
}

SizingModel LargeLike() {
  SizingModel m;
  m.weights_bytes = 21 * kMiB;
  m.expert_extent_bytes = 6 * kMiB;     // three 2 MiB pages ...
  m.expert_footprint_bytes = 8 * kMiB;  // ... which the buddy allocator rounds up to four
  m.num_experts = 96;
  m.num_layers = 4;
  m.kv_bytes_per_token = 8192;
  return m;
}

SizingInput Input(const std::vector<int>& schedule, const std::vector<std::string>& methods) {
  SizingInput in;
  in.model = LargeLike();
  in.schedule = schedule;
  for (const std::string& m : methods) {
    auto o = engine::ParseScaleOptions(m);
    EXPECT_TRUE(o.ok()) << m;
    in.methods.push_back(*o);
    in.method_names.push_back(m);
  }
  return in;
}

TEST(SizingTest, DevicesForTheLargestConfigurationAndExtravagantsSecondCopy) {
  SizingInput in = Input({2, 4, 2}, {"elastic", "cold-restart", "extravagant", "horizontal"});
  Sizing s = SizeDevices(in);
  EXPECT_EQ(s.devices, 6);  // 2 -> 4 on fresh devices holds 2 + 4
  EXPECT_NE(s.devices_why.find("extravagant's 2->4"), std::string::npos) << s.devices_why;
  EXPECT_EQ(s.smallest_config, 2);
  EXPECT_EQ(s.steady_experts_bytes, (48 + 1) * 4 * 6 * kMiB);  // the 2-device share + spares
  EXPECT_EQ(s.steady_weights_bytes, 22 * kMiB);                // rounded to 2 MiB pages
  EXPECT_EQ(s.kv_bytes, 320 * kMiB);                           // the load needs far less
  EXPECT_EQ(s.capacity_bytes, (22 + 49 * 24 + 320) * kMiB);
  EXPECT_EQ(s.capacity_why, "the 2-device configuration's share");
  EXPECT_EQ(s.total_bytes(), 6 * s.capacity_bytes);
  // The experts arena at the extents' footprint (8 MiB), the capacity at their size (6 MiB).
  EXPECT_EQ(s.experts_arena_bytes, (48 + 1) * 4 * 8 * kMiB);
  EXPECT_EQ(s.weights_arena_bytes, 22 * kMiB);
  // Extents of a power-of-two of pages: the arenas add up to the capacity, all of it populated
  // at start.
  in.model.expert_extent_bytes = in.model.expert_footprint_bytes = 4 * kMiB;
  s = SizeDevices(in);
  EXPECT_EQ(s.experts_arena_bytes, s.steady_experts_bytes);
  EXPECT_EQ(s.weights_arena_bytes + s.experts_arena_bytes + s.kv_bytes, s.capacity_bytes);
  in.model = LargeLike();

  s = SizeDevices(Input({2, 4, 2}, {"elastic", "elastic-no-p2p", "elastic-no-preinit"}));
  EXPECT_EQ(s.devices, 4);
  EXPECT_EQ(s.devices_why, "the schedule's largest configuration");
  EXPECT_EQ(s.capacity_bytes, (22 + 49 * 24 + 320) * kMiB);
  // The default schedule: 7 devices (4 -> 3 and 3 -> 4 with extravagant), the 2-device share.
  EXPECT_EQ(SizeDevices(Input({2, 3, 4, 3, 2, 4, 2}, {"extravagant"})).devices, 7);
  // A load whose KV outgrows the default store: twice what it holds, in whole blocks.
  in.concurrency = 4096;
  in.tokens_per_request = 100;  // 7 blocks of 16
  EXPECT_EQ(SizeDevices(in).kv_bytes, 2ull * 4096 * 7 * 16 * 8192);
  // Odd counts round the share up: 96 experts on 5 devices is 20 a layer at most.
  EXPECT_EQ(SizeDevices(Input({5, 6}, {"elastic"})).steady_experts_bytes, (20 + 1) * 4 * 6 * kMiB);
}

// The methods that hold a second copy on a serving device size the devices for it: a kept
// device holds the arena's larger share, the old instance's private copy of its old share (alive
// until the switch) and the new instance's copy of its new share, with its KV store given back
// down to twice the load (8 requests of 5 blocks: 10 MiB). (Found by the large experiment: 4 -> 2
// of elastic-no-vm-remap was refused when the old instance's copies were not counted.)
TEST(SizingTest, CopyingMethodsHoldTheirSecondCopy) {
  Sizing s = SizeDevices(Input({2, 4, 2}, {"elastic", "elastic-no-zero-copy"}));
  EXPECT_EQ(s.capacity_bytes, (3 * 22 + (48 + 48 + 24) * 24 + 24 + 10) * kMiB);
  EXPECT_EQ(s.capacity_why, "elastic-no-zero-copy's 2->4 on a device it keeps");
  // Room against fragmentation for the contiguous runs of the copies.
  EXPECT_EQ(s.weights_arena_bytes, 4 * 3 * 22 * kMiB);
  EXPECT_EQ(s.experts_arena_bytes, 4 * ((48 + 48 + 24) * 4 + 4) * 8 * kMiB);
  s = SizeDevices(Input({2, 4, 2}, {"elastic-no-vm-remap"}));
  EXPECT_EQ(s.capacity_bytes, (22 + (48 + 48 + 24) * 24 + 24 + 10) * kMiB);
  // Colocated loads its own copy for 4 devices next to the 2-device one.
  s = SizeDevices(Input({2, 4}, {"colocated"}));
  EXPECT_EQ(s.capacity_bytes, (2 * 22 + 48 * 24 + 24 * 24 + 24 + 10) * kMiB);
  EXPECT_EQ(s.capacity_why, "colocated's 2->4 on a device it keeps");
  // 2 -> 3: the kept device holds its 2-device share, the old copy of it and a private copy of
  // its 3-device one.
  s = SizeDevices(Input({2, 3}, {"elastic-no-zero-copy"}));
  EXPECT_EQ(s.capacity_bytes, (3 * 22 + (48 + 48 + 32) * 24 + 24 + 10) * kMiB);
  EXPECT_EQ(s.capacity_why, "elastic-no-zero-copy's 2->3 on a device it keeps");
  // 4 -> 5: the kept device (X(4) = 24 experts a layer, both copies of it, a copy of X(5) = 20)
  // holds more than the added one (2 x 20 and a whole 320 MiB store: 1348 MiB).
  s = SizeDevices(Input({4, 5}, {"elastic-no-zero-copy"}));
  EXPECT_EQ(s.capacity_bytes, (3 * 22 + (24 + 24 + 20) * 24 + 24 + 10) * kMiB);
  EXPECT_EQ(s.capacity_why, "elastic-no-zero-copy's 4->5 on a device it keeps");
}

TEST(SizingTest, RefusesWhatTheNodeCannotHoldNamingTheNumbers) {
  NodeMemory node;
  node.node = 0;
  node.free_bytes = 5ull << 30;
  node.reclaimable_bytes = 3ull << 30;
  EXPECT_TRUE(CheckFits(4, 1536 * kMiB, "", node, 1ull << 30).ok());  // 6 + 1 <= 8 GiB
  const vmm::Status s = CheckFits(6, 1536 * kMiB, "colocated's 2->4", node, 1ull << 30);
  EXPECT_EQ(s.code(), vmm::StatusCode::kResourceExhausted);
  for (const char* want : {"6 x 1536 MiB (for colocated's 2->4) = 9.0 GiB populated",
                           "node 0 can give 8.0 GiB", "free 5.0 GiB", "page cache 3.0 GiB",
                           "less 1.0 GiB of headroom", "--methods", "--device_mb"}) {
    EXPECT_NE(s.message().find(want), std::string::npos) << want << " in " << s.message();
  }
}

// A checkpoint of `c`'s tensors in bf16, laid out one after another from `offset`, each aligned
// to `align` bytes (gen_model: 4096), without writing it.
hbm::Checkpoint Layout(const engine::ModelConfig& c, uint64_t offset, uint64_t align) {
  hbm::Checkpoint ckpt;
  for (const engine::TensorSpec& s : engine::ExpectedTensors(c)) {
    hbm::TensorInfo t;
    t.name = s.name;
    t.dtype = hbm::DType::kBF16;
    t.shape = s.shape;
    offset = (offset + align - 1) / align * align;
    t.file_offset = offset;
    t.size_bytes = t.num_elements() * 2;
    offset += t.size_bytes;
    ckpt.tensors.push_back(t);
  }
  return ckpt;
}

// The scale-large preset's arithmetic on the HMM's layout (without generating its 2.2 GiB): each
// expert fills two 2 MiB pages (a power of two: no buddy gap), and a 2 -> 4 event moves >= 1 GiB.
TEST(SizingTest, ScaleLargePresetMovesAGibibyteInWholePages) {
  auto c = engine::PresetConfig("scale-large");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  const uint64_t expert = c->ExpertBytes(2);
  EXPECT_EQ(expert, 3ull * 1024 * 672 * 2);
  const SizingModel m = SizingModelOf(*c, Layout(*c, 4096, 4096));  // as gen_model aligns
  EXPECT_EQ(m.expert_extent_bytes, 4 * kMiB);
  EXPECT_EQ(m.expert_footprint_bytes, 4 * kMiB);
  EXPECT_EQ(m.num_experts, 144);
  EXPECT_EQ(m.num_layers, 4);
  EXPECT_EQ(m.kv_bytes_per_token, 2ull * 4 * 4 * 64 * 4);
  EXPECT_GT(m.weights_bytes, 16 * kMiB);  // 4 layers of attention, 5 MiB each
  EXPECT_LT(m.weights_bytes, 40 * kMiB);
  const uint64_t moved = uint64_t(c->num_experts) * c->num_hidden_layers / 2 * expert;
  EXPECT_GE(moved, 1ull << 30) << "2 -> 4 moves half the experts";
  // Data that is not 4 KiB aligned in the file (4 KiB of slack a tensor) still fits two pages.
  EXPECT_EQ(SizingModelOf(*c, Layout(*c, 8 + 12345, 2)).expert_extent_bytes, 4 * kMiB);
  // The scale preset's 6 MiB experts: three pages, four in the arena; unaligned, four pages.
  auto scale = engine::PresetConfig("scale");
  ASSERT_TRUE(scale.ok());
  const SizingModel sm = SizingModelOf(*scale, Layout(*scale, 4096, 4096));
  EXPECT_EQ(sm.expert_extent_bytes, 6 * kMiB);
  EXPECT_EQ(sm.expert_footprint_bytes, 8 * kMiB);
  EXPECT_EQ(SizingModelOf(*scale, Layout(*scale, 8 + 12345, 2)).expert_extent_bytes, 8 * kMiB);
}

}  // namespace
}  // namespace emoe::tools
