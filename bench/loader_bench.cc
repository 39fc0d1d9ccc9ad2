// loader_bench: weight loading bandwidth on one multi-GiB file, cold and warm page cache:
//   io_uring loader (O_DIRECT, and buffered), a pread loop, mmap + memcpy, and fio's sequential
//   read of the same file with the same block size and queue depth (the reference).
// Every method writes into the same pre-faulted vmm arena, so page faults do not count.
//
//   loader_bench [--file=/var/tmp/emoe_loader_bench.bin] [--size_mb=2048] [--queue_depth=32]
//                [--chunk_kb=1024] [--runs=3] [--cold=true]
// Cold runs drop the page cache before each run (needs root; otherwise they are skipped).
#include <fcntl.h>
#include <gflags/gflags.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "bench_util.h"
#include "hbm/loader.h"
#include "vmm/arena.h"
#include "vmm/stats.h"

DEFINE_string(file, "/var/tmp/emoe_loader_bench.bin", "file to read (created if missing)");
DEFINE_uint64(size_mb, 2048, "file size in MiB");
DEFINE_uint32(queue_depth, 32, "reads in flight (io_uring loader and fio)");
DEFINE_uint64(chunk_kb, 1024, "bytes per read in KiB (all methods)");
DEFINE_int32(runs, 3, "runs per method; the best is reported");
DEFINE_bool(cold, true, "also measure with a cold page cache (drops caches; needs root)");

namespace {

using Clock = std::chrono::steady_clock;

vmm::Status EnsureFile(const std::string& path, uint64_t size) {
  struct stat st;
  if (stat(path.c_str(), &st) == 0 && static_cast<uint64_t>(st.st_size) == size) {
    return vmm::Status::Ok();
  }
  std::printf("writing %s (%llu MiB)...\n", path.c_str(),
              static_cast<unsigned long long>(size >> 20));
  const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return vmm::Status::FromErrno(errno, "create " + path, "open");
  std::vector<uint64_t> block((8 << 20) / 8);
  uint64_t x = 0x9e3779b97f4a7c15ull;
  for (uint64_t done = 0; done < size;) {
    for (auto& v : block) v = (x ^= x << 13, x ^= x >> 7, x ^= x << 17);
    const uint64_t n = std::min<uint64_t>(block.size() * 8, size - done);
    if (write(fd, block.data(), n) != static_cast<ssize_t>(n)) {
      close(fd);
      return vmm::Status::FromErrno(errno, "write " + path, "write");
    }
    done += n;
  }
  fsync(fd);
  close(fd);
  return vmm::Status::Ok();
}

// Reads the file into dest with mmap + memcpy; returns seconds.
vmm::StatusOr<double> MmapCopy(const std::string& path, uint8_t* dest, uint64_t size) {
  const auto t0 = Clock::now();
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return vmm::Status::FromErrno(errno, path, "open");
  void* p = mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  close(fd);
  if (p == MAP_FAILED) return vmm::Status::FromErrno(errno, path, "mmap");
  madvise(p, size, MADV_SEQUENTIAL);
  const uint64_t chunk = FLAGS_chunk_kb << 10;
  for (uint64_t off = 0; off < size; off += chunk) {
    std::memcpy(dest + off, static_cast<uint8_t*>(p) + off, std::min(chunk, size - off));
  }
  munmap(p, size);
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// fio's sequential read bandwidth in bytes/s, or a negative value when fio is missing.
double Fio(const std::string& path, uint64_t size, bool direct, bool huge_buffers) {
  const std::string cmd = "fio --name=seqread --filename=" + path +
                          " --rw=read --bs=" + std::to_string(FLAGS_chunk_kb) +
                          "k --iodepth=" + std::to_string(FLAGS_queue_depth) +
                          " --ioengine=io_uring --direct=" + (direct ? "1" : "0") +
                          " --size=" + std::to_string(size) +
                          " --invalidate=0 --output-format=json" +
                          (huge_buffers ? " --iomem=shmhuge" : "") + " 2>/dev/null";
  FILE* f = popen(cmd.c_str(), "r");
  if (f == nullptr) return -1;
  std::string out;
  char buf[4096];
  while (size_t n = fread(buf, 1, sizeof(buf), f)) out.append(buf, n);
  if (pclose(f) != 0) return -1;
  auto j = nlohmann::json::parse(out, nullptr, false);
  if (j.is_discarded() || !j.contains("jobs") || j["jobs"].empty()) return -1;
  return j["jobs"][0]["read"]["bw_bytes"].get<double>();
}

struct Row {
  std::string method;
  double gbps = 0;
  std::string note;
};

}  // namespace

int main(int argc, char** argv) {
  gflags::SetUsageMessage(
      "weight-loading bandwidth: io_uring loader vs pread vs mmap+memcpy vs fio");
  gflags::ParseCommandLineFlags(&argc, &argv, true);
  const uint64_t size = FLAGS_size_mb << 20;
  vmm::CheckOk(EnsureFile(FLAGS_file, size), "bench file");
  vmm::ArenaOptions ao;
  ao.name = "loader-bench";
  ao.capacity_bytes = size;
  auto arena = vmm::Arena::Create(ao);
  vmm::CheckOk(arena.status(), "destination arena");
  std::printf("destination: %s arena of %llu MiB%s%s\n", vmm::PageKindName((*arena)->kind()),
              static_cast<unsigned long long>(size >> 20),
              (*arena)->fallback_reason().empty() ? "" : "; fallback: ",
              (*arena)->fallback_reason().c_str());
  uint8_t* dest = (*arena)->direct_map();
  std::memset(dest, 0, size);  // fault in once; the methods measure I/O, not page faults

  const bool can_drop = FLAGS_cold && emoe::bench::DropCaches();
  if (FLAGS_cold && !can_drop) std::printf("cold runs skipped: cannot drop caches (not root?)\n");

  auto loader = [&](bool direct) -> vmm::StatusOr<double> {
    emoe::hbm::LoaderOptions o;
    o.queue_depth = FLAGS_queue_depth;
    o.chunk_bytes = FLAGS_chunk_kb << 10;
    o.direct_io = direct;
    auto s = emoe::hbm::Loader(o).Load({{FLAGS_file, 0, size, dest}});
    if (!s.ok()) return s.status();
    if (direct && !s->direct_io) std::printf("  (no O_DIRECT: %s)\n", s->fallback_reason.c_str());
    if (!s->fixed_buffers) std::printf("  (destination not registered: per-read pinning)\n");
    return s->seconds;
  };
  // The same engine with fio's memory footprint: every chunk lands in one small buffer that stays
  // in cache (queue_depth x chunk bytes), as fio's buffers do. Separates engine cost from the
  // cost of writing fresh destination memory.
  auto loader_small_buffer = [&]() -> vmm::StatusOr<double> {
    emoe::hbm::LoaderOptions o;
    o.queue_depth = FLAGS_queue_depth;
    o.chunk_bytes = FLAGS_chunk_kb << 10;
    const uint64_t window = o.chunk_bytes * o.queue_depth;
    std::vector<emoe::hbm::ReadRequest> reqs;
    for (uint64_t off = 0; off < size; off += o.chunk_bytes) {
      reqs.push_back({FLAGS_file, off, std::min(o.chunk_bytes, size - off), dest + off % window});
    }
    auto s = emoe::hbm::Loader(o).Load(reqs);
    if (!s.ok()) return s.status();
    return s->seconds;
  };
  auto pread_loop = [&]() -> vmm::StatusOr<double> {
    auto s = emoe::hbm::LoadWithPread({{FLAGS_file, 0, size, dest}}, FLAGS_chunk_kb << 10);
    if (!s.ok()) return s.status();
    return s->seconds;
  };
  auto mmap_copy = [&]() { return MmapCopy(FLAGS_file, dest, size); };

  struct Method {
    const char* name;
    std::function<vmm::StatusOr<double>()> run;
    bool direct;
  };
  const std::vector<Method> methods = {
      {"io_uring loader, O_DIRECT", [&] { return loader(true); }, true},
      {"io_uring loader, buffered", [&] { return loader(false); }, false},
      {"io_uring loader, O_DIRECT, fio-size buf", loader_small_buffer, true},
      {"pread loop, buffered", pread_loop, false},
      {"mmap + memcpy", mmap_copy, false},
  };
  for (bool cold : {true, false}) {
    if (cold && !can_drop) continue;
    std::vector<Row> rows;
    for (const Method& m : methods) {
      double best = 0;
      for (int r = 0; r < FLAGS_runs; ++r) {
        if (cold) emoe::bench::DropCaches();
        auto secs = m.run();
        vmm::CheckOk(secs.status(), m.name);
        best = std::max(best, size / *secs / 1e9);
      }
      rows.push_back({m.name, best, ""});
    }
    // fio: O_DIRECT when cold (like the loader's default), buffered when warm; its buffers in
    // huge pages when the loader's destination is (pinning 4 KiB pages for O_DIRECT costs ~4x).
    const bool huge = (*arena)->kind() == vmm::PageKind::kHugetlb2M;
    double fio_best = -1;
    for (int r = 0; r < FLAGS_runs; ++r) {
      if (cold) emoe::bench::DropCaches();
      fio_best = std::max(fio_best, Fio(FLAGS_file, size, cold, huge) / 1e9);
    }
    std::printf("\n== %s page cache, %llu MiB, %llu KiB reads, queue depth %u (best of %d)\n",
                cold ? "cold" : "warm", static_cast<unsigned long long>(size >> 20),
                static_cast<unsigned long long>(FLAGS_chunk_kb), FLAGS_queue_depth, FLAGS_runs);
    std::printf("%-40s %10s %12s\n", "method", "GB/s", "vs fio");
    for (const Row& r : rows) {
      if (fio_best > 0) {
        std::printf("%-40s %10.2f %11.0f%%\n", r.method.c_str(), r.gbps, 100 * r.gbps / fio_best);
      } else {
        std::printf("%-40s %10.2f %12s\n", r.method.c_str(), r.gbps, "-");
      }
    }
    if (fio_best > 0) {
      std::printf(
          "%-40s %10.2f %11s\n",
          (std::string("fio io_uring, direct=") + (cold ? "1" : "0") + (huge ? ", shmhuge" : ""))
              .c_str(),
          fio_best, "100%");
    } else {
      std::printf("fio unavailable (install fio)\n");
    }
    const Row& best_loader =
        cold ? rows[0]
             : *std::max_element(rows.begin(), rows.begin() + 2,
                                 [](const Row& a, const Row& b) { return a.gbps < b.gbps; });
    std::printf(
        "loader vs mmap+memcpy: %.2fx; loader vs fio: %s\n", best_loader.gbps / rows[4].gbps,
        fio_best > 0
            ? (std::to_string(static_cast<int>(100 * best_loader.gbps / fio_best)) + "%").c_str()
            : "-");
  }
  return 0;
}
