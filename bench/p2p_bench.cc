// p2p_bench: device-to-device copy bandwidth of the HMM's copy engine, against one plain memcpy
// and against re-reading the same bytes from disk (what P2P replaces); and, in batch mode, a scale
// event's redistribution as one request per expert against one batch (Hmm::ApplyCopies).
//
//   p2p_bench [--size_mb=1024] [--threads=0] [--file=/var/tmp/emoe_loader_bench.bin] [--runs=3]
// --threads 0 runs 1, 2, ... up to the CPUs of the destination device. The disk comparison uses
// the loader benchmark's file (created by loader_bench) with a cold page cache when root.
//
//   p2p_bench --mode=batch [--experts=64] [--expert_mb=6] [--chunk_kb=8192] [--runs=3]
//             [--threads=0] [--hmmd=build/tools/hmmd]
// Four devices on the first node; expert e lives on device e % 2 (three tensors, read once from
// --batch_file, written there when missing) and moves to device 2 + e % 2, through an HmmControl:
//   (a) one CopyGroup per expert, one after another (one request per expert: what the engine did),
//   (b) one ApplyCopies of all of them (every worker of devices 2 and 3: --threads each, 0 = one
//       per CPU of the device, at most 8),
//   (c) one ApplyCopies with max_parallel 1 (one chunk at a time, so one core),
// and the sources' metas as one Find per tensor against one Describe. The baseline is memcpy of
// the same number of bytes on this thread in the same run, from one device's arena to another's,
// in two calls (glibc streams copies that large); memcpy tensor by tensor is shown beside it.
// In process (LocalHmmControl), then with --hmmd=PATH through an hmmd child process
// (RemoteHmmControl: every call one request). The arenas are populated when the devices are
// created (HmmOptions memory.populate, as hmmd and the experiment do): fresh guest memory on a VM
// is slow on first touch, so without it the first copy into each page would measure the
// hypervisor, not the copy. Best of --runs.
#include <fcntl.h>
#include <gflags/gflags.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <vector>

#include "bench_util.h"
#include "hbm/device.h"
#include "hbm/hmm.h"
#include "hbm/loader.h"
#include "hbm/p2p.h"
#include "hbm/remote_control.h"
#include "vmm/stats.h"

DEFINE_uint64(size_mb, 1024, "bytes copied per run, MiB");
DEFINE_int32(threads, 0, "copy threads (0: sweep 1..CPUs of the device)");
DEFINE_string(file, "/var/tmp/emoe_loader_bench.bin", "file for the disk comparison");
DEFINE_int32(runs, 3, "runs per configuration; the best is reported");
DEFINE_string(mode, "engine",
              "engine: the copy engine vs memcpy vs disk; batch: a redistribution as one CopyGroup "
              "per expert vs one ApplyCopies");
DEFINE_int32(experts, 64, "batch mode: experts moved (half from device 0, half from device 1)");
DEFINE_uint64(expert_mb, 6, "batch mode: MiB per expert (three tensors of a third each)");
DEFINE_uint64(chunk_kb, 8192, "batch mode: CopyBatchOptions::chunk_bytes, KiB");
DEFINE_string(hmmd, "",
              "batch mode: also through this hmmd binary (RemoteHmmControl), after in process");
DEFINE_string(batch_file, "/var/tmp/emoe_p2p_batch.safetensors",
              "batch mode: the experts' checkpoint (written when missing or of another shape)");

namespace {

using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

}  // namespace

// The default mode: one large copy by the engine (a sweep of worker counts) vs memcpy vs disk.
int RunEngine() {
  const uint64_t size = FLAGS_size_mb << 20;
  emoe::hbm::DeviceOptions dopt;
  dopt.devices_per_node = 2;
  dopt.capacity_bytes = size + (64 << 20);
  auto specs = emoe::hbm::PlanDevices(dopt, vmm::NumaNodes());
  vmm::CheckOk(specs.status(), "plan two devices");
  emoe::hbm::DeviceMemoryOptions mem;
  mem.usage_bytes = {size, 0, 0};
  std::vector<std::unique_ptr<emoe::hbm::Device>> devs;
  for (int i = 0; i < 2; ++i) {
    auto d = emoe::hbm::Device::Create((*specs)[i], mem);
    vmm::CheckOk(d.status(), "device");
    devs.push_back(std::move(*d));
  }
  auto src = devs[0]->Allocate(emoe::hbm::Usage::kWeights, size);
  auto dst = devs[1]->Allocate(emoe::hbm::Usage::kWeights, size);
  vmm::CheckOk(src.status(), "source extent");
  vmm::CheckOk(dst.status(), "destination extent");
  std::memset(src->data(), 7, size);
  std::memset(dst->data(), 0, size);
  const auto& arena = devs[1]->arena(emoe::hbm::Usage::kWeights);
  std::printf("two devices on node %d and %d, %s pages, %llu MiB per copy\n", (*specs)[0].node,
              (*specs)[1].node, vmm::PageKindName(arena->kind()),
              static_cast<unsigned long long>(FLAGS_size_mb));

  double memcpy_best = 0;
  for (int r = 0; r < FLAGS_runs; ++r) {
    const auto t0 = Clock::now();
    std::memcpy(dst->data(), src->data(), size);
    memcpy_best = std::max(memcpy_best, size / Seconds(t0) / 1e9);
  }
  std::printf("%-34s %8.2f GB/s\n", "memcpy, caller's thread", memcpy_best);

  std::vector<int> sweep;
  const int cpus = static_cast<int>((*specs)[1].cpus.size());
  if (FLAGS_threads > 0) {
    sweep.push_back(FLAGS_threads);
  } else {
    for (int t = 1; t <= std::max(1, cpus); t *= 2) sweep.push_back(t);
    if (sweep.back() != std::max(1, cpus)) sweep.push_back(cpus);
  }
  double p2p_best = 0;
  for (int threads : sweep) {
    emoe::hbm::CopyEngine engine(*specs, threads);
    double best = 0;
    for (int r = 0; r < FLAGS_runs; ++r) {
      const auto t0 = Clock::now();
      vmm::CheckOk(engine.Copy(1, dst->data(), src->data(), size), "p2p copy");
      best = std::max(best, size / Seconds(t0) / 1e9);
    }
    p2p_best = std::max(p2p_best, best);
    std::printf("copy engine, %2d thread(s) on dev 1   %8.2f GB/s  (%.2fx memcpy)\n", threads, best,
                best / memcpy_best);
  }
  if (access(FLAGS_file.c_str(), R_OK) == 0) {
    const bool cold = emoe::bench::DropCaches();
    emoe::hbm::LoaderOptions lo;
    auto s = emoe::hbm::Loader(lo).Load({{FLAGS_file, 0, size, dst->data()}});
    if (s.ok()) {
      std::printf("%-34s %8.2f GB/s  (P2P is %.1fx faster)\n",
                  cold ? "re-read from disk (cold, loader)" : "re-read from disk (loader)",
                  s->gbps(), p2p_best / s->gbps());
    } else {
      std::printf("re-read from disk: %s\n", s.status().ToString().c_str());
    }
  } else {
    std::printf("re-read from disk: skipped (%s missing; run loader_bench first)\n",
                FLAGS_file.c_str());
  }
  return 0;
}

namespace batch {

using emoe::hbm::GroupCopy;
using emoe::hbm::Hmm;
using emoe::hbm::Usage;

std::string TensorName(int expert, int k) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "experts.%03d.w%d", expert, k + 1);
  return buf;
}

// Expert e ("experts.EEE.wK") on device e % 2, one group per expert.
emoe::hbm::PlacementDecision Place(const emoe::hbm::TensorInfo& t) {
  const int e = std::stoi(t.name.substr(8, 3));
  return {Usage::kExperts, {e % 2}, t.name.substr(0, 11)};
}

// --batch_file holding --experts experts of three `tensor_bytes` tensors, written when it is
// missing or of another shape.
emoe::hbm::Checkpoint OpenExperts(uint64_t tensor_bytes) {
  auto c = emoe::hbm::OpenCheckpoint(FLAGS_batch_file);
  bool fits = c.ok() && c->tensors.size() == static_cast<size_t>(FLAGS_experts) * 3;
  for (size_t i = 0; fits && i < c->tensors.size(); ++i) {
    fits = c->tensors[i].size_bytes == tensor_bytes && c->tensors[i].file_offset % 4096 == 0;
  }
  if (!fits) {
    std::printf("writing %s (%d experts)...\n", FLAGS_batch_file.c_str(), FLAGS_experts);
    std::vector<emoe::hbm::TensorToWrite> t;
    for (int e = 0; e < FLAGS_experts; ++e) {
      for (int k = 0; k < 3; ++k) {
        t.push_back({TensorName(e, k),
                     emoe::hbm::DType::kBF16,
                     {static_cast<int64_t>(tensor_bytes / 2)},
                     std::string(tensor_bytes, static_cast<char>('a' + (3 * e + k) % 26))});
      }
    }
    // 4 KiB-aligned data: each tensor's span in a group extent is its size exactly.
    vmm::CheckOk(emoe::hbm::WriteSafetensors(FLAGS_batch_file, t, {}, 4096), "write experts");
    c = emoe::hbm::OpenCheckpoint(FLAGS_batch_file);
  }
  vmm::CheckOk(c.status(), "open the experts' checkpoint");
  return std::move(*c);
}

// Four devices on the first node, each with an experts arena for `per_device_bytes`, populated
// when created (HmmOptions memory.populate).
emoe::hbm::HmmOptions BatchOptions(uint64_t per_device_bytes) {
  emoe::hbm::HmmOptions o;
  o.devices.devices_per_node = 4;
  o.devices.nodes = {vmm::NumaNodes().at(0).id};
  o.devices.capacity_bytes = per_device_bytes + (64 << 20);
  o.memory.usage_bytes = {0, per_device_bytes + (32 << 20), 0};
  o.memory.populate = true;
  o.check_weights = false;
  o.copy_threads_per_device = FLAGS_threads;
  return o;
}

std::unique_ptr<Hmm> CreateHmm(emoe::hbm::HmmOptions o) {
  emoe::hbm::PopulateProgress last;
  o.populate_progress = [&last](const emoe::hbm::PopulateProgress& p) { last = p; };
  auto h = Hmm::Create(o);
  vmm::CheckOk(h.status(), "create the HMM");
  std::printf(
      "4 devices, %s pages, %d copy workers per device; arenas populated at creation "
      "(memory.populate): %s\n",
      vmm::PageKindName((*h)->device(2).arena(Usage::kExperts)->kind()), (*h)->copies().threads(2),
      last.ToString().c_str());
  if (!(*h)->page_note().empty()) std::printf("  (%s)\n", (*h)->page_note().c_str());
  return std::move(*h);
}

// memcpy of every tensor of `copies` on this thread, into extents of the destinations' arenas
// laid out as the copies' (allocated before the clock starts). Returns the seconds.
double TimeMemcpy(Hmm& hmm, const std::vector<GroupCopy>& copies) {
  std::vector<std::pair<uint8_t*, const emoe::hbm::TensorRecord>> plan;
  std::vector<vmm::Extent> extents;
  for (const GroupCopy& c : copies) {
    uint64_t bytes = 0;
    std::vector<emoe::hbm::TensorRecord> src;
    for (const std::string& n : c.names) {
      src.push_back(hmm.Find(n, c.from).value());
      bytes += (src.back().size_bytes + 4095) / 4096 * 4096;
    }
    auto e = hmm.device(c.to).Allocate(c.usage, bytes);
    vmm::CheckOk(e.status(), "memcpy destination");
    uint64_t off = 0;
    for (const auto& r : src) {
      plan.emplace_back(static_cast<uint8_t*>(e->data()) + off, r);
      off += (r.size_bytes + 4095) / 4096 * 4096;
    }
    extents.push_back(std::move(*e));
  }
  const auto t0 = Clock::now();
  for (const auto& [dst, r] : plan) std::memcpy(dst, r.data(), r.size_bytes);
  return Seconds(t0);
}

// memcpy of `bytes` on this thread, half at a time from device 3's arena into device 2's (one
// call per half: glibc streams copies this large). Returns the seconds.
double TimeMemcpyBulk(Hmm& hmm, uint64_t bytes) {
  const uint64_t half = bytes / 2 / 4096 * 4096;
  auto dst = hmm.device(2).Allocate(Usage::kExperts, half);
  auto src = hmm.device(3).Allocate(Usage::kExperts, half);
  vmm::CheckOk(dst.status(), "memcpy destination");
  vmm::CheckOk(src.status(), "memcpy source");
  std::memset(src->data(), 1, half);
  const auto t0 = Clock::now();
  for (int i = 0; i < 2; ++i) std::memcpy(dst->data(), src->data(), half);
  return Seconds(t0);
}

struct Best {
  double gbs = 0, call_gbs = 0;
  emoe::hbm::CopyBatchReport report;
};

// The best of each way to move `copies` (and to ask for their sources) through one control.
struct Results {
  Best seq, all, one;
  double find_ms = 1e30, describe_ms = 1e30;
};

// One run of each through `c`: (a) one CopyGroup per copy, (b) one ApplyCopies, (c) one with
// max_parallel 1, each undone after; the plan's questions as one Find per source tensor and as
// one Describe.
void MeasureOnce(emoe::hbm::HmmControl& c, const std::vector<GroupCopy>& copies, uint64_t bytes,
                 Results* out) {
  auto drop = [&] { vmm::CheckOk(c.ReleaseMatching("", {2, 3}).status(), "release the copies"); };
  auto t0 = Clock::now();
  for (const GroupCopy& g : copies) {
    vmm::CheckOk(c.CopyGroup(g.names, g.from, g.to, g.usage, "").status(), "CopyGroup");
  }
  out->seq.call_gbs = std::max(out->seq.call_gbs, bytes / Seconds(t0) / 1e9);
  drop();
  for (auto [best, max_parallel] : {std::pair<Best*, int>{&out->all, 0}, {&out->one, 1}}) {
    t0 = Clock::now();
    auto rep = c.ApplyCopies(copies, {max_parallel, FLAGS_chunk_kb << 10});
    const double call_gbs = bytes / Seconds(t0) / 1e9;
    vmm::CheckOk(rep.status(), "ApplyCopies");
    if (call_gbs > best->call_gbs) *best = {rep->gbs(), call_gbs, *rep};
    drop();
  }
  std::vector<std::pair<std::string, int>> records;
  for (const GroupCopy& g : copies) {
    for (const std::string& n : g.names) records.emplace_back(n, g.from);
  }
  t0 = Clock::now();
  for (const auto& [name, device] : records) vmm::CheckOk(c.Find(name, device).status(), "Find");
  out->find_ms = std::min(out->find_ms, Seconds(t0) * 1e3);
  t0 = Clock::now();
  vmm::CheckOk(c.Describe(records).status(), "Describe");
  out->describe_ms = std::min(out->describe_ms, Seconds(t0) * 1e3);
}

void Print(const char* what, const Best& b, double memcpy_gbs) {
  std::printf("%-58s %6.2f GB/s (%.2fx memcpy)", what, b.call_gbs, b.call_gbs / memcpy_gbs);
  if (b.gbs > 0) {
    std::printf("; copy phase %.2f GB/s (%.2fx), prepare %.2f ms, register %.2f ms", b.gbs,
                b.gbs / memcpy_gbs, b.report.prepare_s * 1e3, b.report.register_s * 1e3);
  }
  std::printf("\n");
}

void PrintResults(const char* where, const Results& r, double memcpy_gbs, size_t records) {
  std::printf("%s:\n", where);
  Print("  (a) one CopyGroup per expert, one after another", r.seq, memcpy_gbs);
  Print("  (b) one ApplyCopies (every worker of devices 2, 3)", r.all, memcpy_gbs);
  Print("  (c) one ApplyCopies, max_parallel 1", r.one, memcpy_gbs);
  std::printf("  the sources' metas: %zu Find requests %.2f ms, one Describe %.2f ms\n", records,
              r.find_ms, r.describe_ms);
}

// The same through hmmd (--hmmd): launched on the same devices, loaded from the same file.
Results MeasureOverHmmd(const emoe::hbm::HmmOptions& options, const emoe::hbm::Checkpoint& ckpt,
                        const std::vector<GroupCopy>& copies, uint64_t bytes) {
  emoe::hbm::HmmdOptions o;
  o.binary = FLAGS_hmmd;
  o.hmm = options;
  o.progress = [](const emoe::hbm::StartProgress&) {};
  auto c = emoe::hbm::RemoteHmmControl::Launch(o);
  vmm::CheckOk(c.status(), "launch hmmd");
  emoe::hbm::PlacementTable table;
  for (const emoe::hbm::TensorInfo& t : ckpt.tensors) table[t.name] = Place(t);
  vmm::CheckOk((*c)->Load(FLAGS_batch_file, table, "").status(), "load the experts into hmmd");
  Results r;
  for (int run = 0; run < FLAGS_runs; ++run) MeasureOnce(**c, copies, bytes, &r);
  return r;
}

int Run() {
  if (FLAGS_experts < 2 || FLAGS_expert_mb == 0 || FLAGS_runs < 1) {
    std::fprintf(stderr, "p2p_bench: --experts >= 2, --expert_mb >= 1, --runs >= 1\n");
    return 2;
  }
  const uint64_t tensor_bytes = (FLAGS_expert_mb << 20) / 3 / 4096 * 4096;
  const emoe::hbm::Checkpoint ckpt = OpenExperts(tensor_bytes);
  // Room per device for half the experts: each extent in 2 MiB pages (the largest the arenas may
  // use), rounded up to a power of two (the arenas' page allocator is a buddy allocator).
  uint64_t expert_bytes = 2 << 20;
  while (expert_bytes < 3 * tensor_bytes) expert_bytes *= 2;
  const emoe::hbm::HmmOptions options = BatchOptions((FLAGS_experts + 1) / 2 * expert_bytes);
  std::unique_ptr<Hmm> hmm = CreateHmm(options);
  vmm::CheckOk(hmm->LoadCheckpoint(ckpt, Place).status(), "load the experts");
  std::vector<GroupCopy> copies;
  for (int e = 0; e < FLAGS_experts; ++e) {
    copies.push_back({{TensorName(e, 0), TensorName(e, 1), TensorName(e, 2)},
                      e % 2,
                      2 + e % 2,
                      Usage::kExperts,
                      ""});
  }
  const uint64_t bytes = 3 * tensor_bytes * copies.size();
  std::printf("redistribution: %d experts of %.1f MiB (3 tensors), devices 0,1 -> 2,3: %.0f MiB\n",
              FLAGS_experts, 3 * tensor_bytes / 1048576.0, bytes / 1048576.0);
  double memcpy_gbs = 0, tensor_memcpy_gbs = 0;
  Results local;
  emoe::hbm::LocalHmmControl control(hmm.get());
  for (int r = 0; r < FLAGS_runs; ++r) {
    memcpy_gbs = std::max(memcpy_gbs, bytes / TimeMemcpyBulk(*hmm, bytes) / 1e9);
    tensor_memcpy_gbs = std::max(tensor_memcpy_gbs, bytes / TimeMemcpy(*hmm, copies) / 1e9);
    MeasureOnce(control, copies, bytes, &local);
  }
  std::printf("%-58s %6.2f GB/s (the baseline)\n", "memcpy, this thread, 2 calls of half the bytes",
              memcpy_gbs);
  std::printf("%-58s %6.2f GB/s (%.2fx)\n", "memcpy, this thread, tensor by tensor",
              tensor_memcpy_gbs, tensor_memcpy_gbs / memcpy_gbs);
  std::printf("copy engine: %s for copies of 256 KiB and more\n",
              emoe::hbm::CopyEngine::StoreKind());
  PrintResults("in process (LocalHmmControl)", local, memcpy_gbs, 3 * copies.size());
  if (FLAGS_hmmd.empty()) return 0;
  hmm.reset();  // its memory (hugetlb pages) to hmmd
  PrintResults("over hmmd (RemoteHmmControl, one request each)",
               MeasureOverHmmd(options, ckpt, copies, bytes), memcpy_gbs, 3 * copies.size());
  return 0;
}

}  // namespace batch

int main(int argc, char** argv) {
  gflags::SetUsageMessage(
      "P2P copy bandwidth vs memcpy vs re-reading from disk; --mode=batch: a redistribution");
  gflags::ParseCommandLineFlags(&argc, &argv, true);
  if (FLAGS_mode == "batch") return batch::Run();
  if (FLAGS_mode != "engine") {
    std::fprintf(stderr, "p2p_bench: --mode is '%s', not engine or batch\n", FLAGS_mode.c_str());
    return 2;
  }
  return RunEngine();
}
