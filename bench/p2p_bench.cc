// p2p_bench: device-to-device copy bandwidth of the HMM's copy engine, against one plain memcpy
// and against re-reading the same bytes from disk (what P2P replaces).
//
//   p2p_bench [--size_mb=1024] [--threads=0] [--file=/var/tmp/emoe_loader_bench.bin] [--runs=3]
// --threads 0 runs 1, 2, ... up to the CPUs of the destination device. The disk comparison uses
// the loader benchmark's file (created by loader_bench) with a cold page cache when root.
#include <fcntl.h>
#include <gflags/gflags.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <vector>

#include "bench_util.h"
#include "hbm/device.h"
#include "hbm/loader.h"
#include "hbm/p2p.h"
#include "vmm/stats.h"

DEFINE_uint64(size_mb, 1024, "bytes copied per run, MiB");
DEFINE_int32(threads, 0, "copy threads (0: sweep 1..CPUs of the device)");
DEFINE_string(file, "/var/tmp/emoe_loader_bench.bin", "file for the disk comparison");
DEFINE_int32(runs, 3, "runs per configuration; the best is reported");

namespace {

using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

}  // namespace

int main(int argc, char** argv) {
  gflags::SetUsageMessage("P2P copy bandwidth vs memcpy vs re-reading from disk");
  gflags::ParseCommandLineFlags(&argc, &argv, true);
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
