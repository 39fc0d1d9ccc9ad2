// hbm/loader.h: reads file byte ranges straight into memory (arena pages) with io_uring.
//
// Each request is split into chunks of `chunk_bytes`; up to `queue_depth` chunks are in flight.
// Files are registered with the ring (IOSQE_FIXED_FILE). With `direct_io` the files are opened
// O_DIRECT when every request is aligned (file offset, length and destination to
// kDirectAlignment); otherwise, or when the file system refuses O_DIRECT, reads are buffered and
// LoadStats::fallback_reason says why. Short reads are resubmitted for the remainder; reaching
// end of file before a request is complete is kDataLoss naming the file and offset. Errors of a
// request surface as its Status (the first error wins; in-flight reads are drained before
// returning, so no read lands in memory after Load returns).
//
// Cancellation: LoaderOptions::cancel and Load's own token are looked at between batches of
// completions (at least every 100 ms, and whenever a signal interrupts the wait); once either is
// cancelled nothing more is submitted, the reads in flight are cancelled (IORING_OP_ASYNC_CANCEL:
// a read that would never complete, e.g. of a pipe, ends too) and drained, and Load returns
// kUnavailable "load: cancelled (stopping) ...".
//
// Thread safety: a Loader is used by one thread at a time; separate Loaders are independent.
#ifndef HBM_LOADER_H_
#define HBM_LOADER_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "hbm/cancel.h"
#include "vmm/status.h"

namespace emoe::hbm {

using vmm::Status;
using vmm::StatusOr;

inline constexpr uint64_t kDirectAlignment = 4096;

struct LoadProgress {
  uint64_t bytes_done = 0;
  uint64_t bytes_total = 0;
  double seconds = 0;
  double bytes_per_second = 0;
  double eta_seconds = 0;
  std::string ToString() const;  // "42.0% 1.2 GiB of 2.9 GiB, 1.8 GB/s, ETA 0.9 s"
};

struct LoaderOptions {
  unsigned queue_depth = 32;          // chunks in flight, 1..4096
  uint64_t chunk_bytes = 1ull << 20;  // bytes per read, multiple of 4096
  bool direct_io = true;              // O_DIRECT when aligned and supported
  // Register the destinations with the ring (IORING_OP_READ_FIXED): the kernel pins them once
  // instead of per read. Falls back silently when registration is refused (RLIMIT_MEMLOCK).
  bool register_buffers = true;
  // Called from the loading thread at most every `progress_interval_s` and once at the end.
  std::function<void(const LoadProgress&)> progress;
  double progress_interval_s = 1.0;
  const CancelToken* cancel = nullptr;  // not owned; null: none (see the header comment)
  Status Validate() const;
};

struct ReadRequest {
  std::string path;
  uint64_t file_offset = 0;
  uint64_t length = 0;
  void* dest = nullptr;  // `length` writable bytes
  // Bytes that must be read (0 = length). Bytes beyond it may be cut short by end of file: lets
  // an aligned O_DIRECT read cover a tensor at the end of a file whose size is not aligned.
  uint64_t required = 0;
};

struct LoadStats {
  uint64_t bytes = 0;
  double seconds = 0;
  uint64_t reads = 0;           // reads completed (chunks plus resubmissions)
  uint64_t short_reads = 0;     // resubmitted remainders
  bool direct_io = false;       // every file was read with O_DIRECT
  bool fixed_buffers = false;   // destinations were registered (READ_FIXED)
  std::string fallback_reason;  // why not, when direct_io was asked
  double gbps() const { return seconds > 0 ? bytes / seconds / 1e9 : 0; }
};

class Loader {
 public:
  explicit Loader(LoaderOptions options) : options_(std::move(options)) {}
  // Reads every request. On error returns the first failing request's status. `cancel` (not
  // owned; null: none) stops it like LoaderOptions::cancel.
  StatusOr<LoadStats> Load(const std::vector<ReadRequest>& requests,
                           const CancelToken* cancel = nullptr);

 private:
  LoaderOptions options_;
};

// The simplest correct alternative, for benchmarks and as the fallback when io_uring is
// unavailable: one pread loop per request. Either token (not owned; null: none) stops it between
// chunks, as it stops Loader::Load.
StatusOr<LoadStats> LoadWithPread(const std::vector<ReadRequest>& requests,
                                  uint64_t chunk_bytes = 1ull << 20,
                                  const CancelToken* cancel = nullptr,
                                  const CancelToken* also = nullptr);

}  // namespace emoe::hbm

#endif  // HBM_LOADER_H_
