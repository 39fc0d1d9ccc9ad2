#include "hbm/loader.h"

#include <fcntl.h>
#include <liburing.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <deque>
#include <map>

#include "vmm/file.h"
#include "vmm/unique_fd.h"

namespace emoe::hbm {

namespace {

using Clock = std::chrono::steady_clock;

std::string Gib(double b) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.2f GiB", b / 1073741824.0);
  return buf;
}

bool Aligned(uint64_t v) { return v % kDirectAlignment == 0; }

// One read in flight or waiting. Lives in a vector; its index is the io_uring user_data.
struct Chunk {
  int file = 0;             // index into the open files
  int buffer = -1;          // registered buffer holding dest, -1 if none
  uint64_t offset = 0;      // next file offset to read
  uint64_t length = 0;      // bytes left to read
  uint8_t* dest = nullptr;  // where they go
  uint64_t must_reach = 0;  // file offset up to which end of file is an error
};

struct OpenFiles {
  std::vector<std::string> paths;
  std::vector<vmm::UniqueFd> fds;
  std::vector<uint64_t> sizes;
  std::map<std::string, int> index;
  bool all_direct = true;
  std::string fallback_reason;
};

StatusOr<OpenFiles> OpenAll(const std::vector<ReadRequest>& requests, bool want_direct) {
  OpenFiles f;
  bool direct = want_direct;
  if (!want_direct) {
    f.fallback_reason = "direct I/O not requested";
  } else {
    for (const ReadRequest& r : requests) {
      if (!Aligned(r.file_offset) || !Aligned(r.length) ||
          !Aligned(reinterpret_cast<uintptr_t>(r.dest))) {
        direct = false;
        f.fallback_reason = "request for " + r.path + " at offset " +
                            std::to_string(r.file_offset) + " is not 4 KiB-aligned";
        break;
      }
    }
  }
  for (const ReadRequest& r : requests) {
    if (f.index.count(r.path)) continue;
    // Through OpenRegularFile: a shard replaced by a FIFO since its header was read is refused
    // here instead of blocking the load.
    uint64_t size = 0;
    StatusOr<vmm::UniqueFd> fd = Status::InvalidArgument("not opened");
    if (direct) {
      fd = vmm::OpenRegularFile(r.path, "checkpoint file", O_DIRECT, &size);
      if (!fd.ok() && fd.status().err() == EINVAL) {
        f.fallback_reason = r.path + ": the file system refuses O_DIRECT";
      }
    }
    if (!direct || (!fd.ok() && fd.status().err() == EINVAL)) {
      fd = vmm::OpenRegularFile(r.path, "checkpoint file", 0, &size);
      f.all_direct = false;
    }
    if (!fd.ok()) {
      Status s = fd.status();
      return s.Annotate("load");
    }
    f.index[r.path] = static_cast<int>(f.paths.size());
    f.paths.push_back(r.path);
    f.fds.push_back(std::move(*fd));
    f.sizes.push_back(size);
  }
  if (!direct) f.all_direct = false;
  return f;
}

Status CheckRequests(const std::vector<ReadRequest>& requests, const OpenFiles& files) {
  for (const ReadRequest& r : requests) {
    if (r.dest == nullptr && r.length > 0) {
      return Status::InvalidArgument("read of " + r.path + " has no destination");
    }
    const uint64_t required = r.required ? r.required : r.length;
    const uint64_t size = files.sizes[files.index.at(r.path)];
    if (required > r.length || r.file_offset > size || required > size - r.file_offset) {
      return Status::DataLoss(r.path + ": truncated: needs bytes up to offset " +
                              std::to_string(r.file_offset + required) + ", the file has " +
                              std::to_string(size));
    }
  }
  return Status::Ok();
}

class ProgressReporter {
 public:
  ProgressReporter(const LoaderOptions& o, uint64_t total)
      : options_(o), total_(total), start_(Clock::now()), last_(start_) {}
  void Update(uint64_t done, bool final) {
    if (!options_.progress) return;
    const auto now = Clock::now();
    if (!final &&
        std::chrono::duration<double>(now - last_).count() < options_.progress_interval_s) {
      return;
    }
    last_ = now;
    LoadProgress p;
    p.bytes_done = done;
    p.bytes_total = total_;
    p.seconds = std::chrono::duration<double>(now - start_).count();
    p.bytes_per_second = p.seconds > 0 ? done / p.seconds : 0;
    p.eta_seconds = p.bytes_per_second > 0 ? (total_ - done) / p.bytes_per_second : 0;
    options_.progress(p);
  }

 private:
  const LoaderOptions& options_;
  uint64_t total_;
  Clock::time_point start_, last_;
};

}  // namespace

std::string LoadProgress::ToString() const {
  char buf[160];
  std::snprintf(buf, sizeof(buf), "%5.1f%% %s of %s, %.2f GB/s, ETA %.1f s",
                bytes_total ? 100.0 * bytes_done / bytes_total : 100.0, Gib(bytes_done).c_str(),
                Gib(bytes_total).c_str(), bytes_per_second / 1e9, eta_seconds);
  return buf;
}

Status LoaderOptions::Validate() const {
  if (queue_depth < 1 || queue_depth > 4096) {
    return Status::InvalidArgument("loader queue depth must be 1..4096, got " +
                                   std::to_string(queue_depth));
  }
  if (chunk_bytes == 0 || !Aligned(chunk_bytes) || chunk_bytes > (1ull << 30)) {
    return Status::InvalidArgument(
        "loader chunk size must be a multiple of 4096 up to 1 GiB, got " +
        std::to_string(chunk_bytes));
  }
  return Status::Ok();
}

namespace {

// The chunks of every request, the buffers to register (one per request piece of at most
// ~1 GiB, the kernel's limit) and the bytes that exist to be read.
struct ChunkPlan {
  std::vector<Chunk> chunks;
  std::vector<iovec> buffers;
  uint64_t total = 0;
};

ChunkPlan MakeChunks(const std::vector<ReadRequest>& requests, const OpenFiles& files,
                     uint64_t chunk_bytes) {
  ChunkPlan p;
  const uint64_t piece = (1ull << 30) / chunk_bytes * chunk_bytes;
  for (const ReadRequest& r : requests) {
    const uint64_t required_end = r.file_offset + (r.required ? r.required : r.length);
    for (uint64_t off = 0; off < r.length; off += chunk_bytes) {
      if (off % piece == 0) {
        p.buffers.push_back({static_cast<uint8_t*>(r.dest) + off, std::min(piece, r.length - off)});
      }
      Chunk c;
      c.file = files.index.at(r.path);
      c.buffer = static_cast<int>(p.buffers.size()) - 1;
      c.offset = r.file_offset + off;
      c.length = std::min(chunk_bytes, r.length - off);
      c.dest = static_cast<uint8_t*>(r.dest) + off;
      c.must_reach = std::min(required_end, c.offset + c.length);
      p.chunks.push_back(c);
    }
    // Bytes that exist: an aligned read may reach past end of file.
    const uint64_t size = files.sizes[files.index.at(r.path)];
    p.total += std::min(r.length, size > r.file_offset ? size - r.file_offset : 0);
  }
  return p;
}

// The user_data of the request that cancels every read in flight (Load's cancellation).
constexpr uint64_t kCancelData = ~uint64_t{1};

// The state of one ring's run over the chunks.
struct RingRun {
  io_uring ring;
  const OpenFiles* files = nullptr;
  std::vector<Chunk>* chunks = nullptr;
  std::vector<int> raw_fds;
  bool fixed_files = false;
  std::deque<size_t> pending;  // chunks to submit (resubmissions first)
  int inflight = 0;
  uint64_t done = 0;  // bytes read
  Status first_error;
  LoadStats* stats = nullptr;
};

// Queues chunks up to the queue depth.
void Submit(RingRun& run, int qd) {
  while (run.first_error.ok() && !run.pending.empty() && run.inflight < qd) {
    io_uring_sqe* sqe = io_uring_get_sqe(&run.ring);
    if (sqe == nullptr) break;
    const size_t i = run.pending.front();
    run.pending.pop_front();
    const Chunk& c = (*run.chunks)[i];
    const int file = run.fixed_files ? c.file : run.raw_fds[c.file];
    if (run.stats->fixed_buffers) {
      io_uring_prep_read_fixed(sqe, file, c.dest, c.length, c.offset, c.buffer);
    } else {
      io_uring_prep_read(sqe, file, c.dest, c.length, c.offset);
    }
    if (run.fixed_files) sqe->flags |= IOSQE_FIXED_FILE;
    io_uring_sqe_set_data64(sqe, i);
    ++run.inflight;
  }
}

// One completion: a retry, an error (the first is kept), end of file, or bytes (a short read
// resubmits the remainder).
void Complete(RingRun& run, const io_uring_cqe* cqe) {
  const uint64_t data = io_uring_cqe_get_data64(cqe);
  if (data == kCancelData || data == LIBURING_UDATA_TIMEOUT) return;  // not a read
  --run.inflight;
  const size_t i = data;
  Chunk& c = (*run.chunks)[i];
  const std::string& path = run.files->paths[c.file];
  const int res = cqe->res;
  auto eof_error = [&](const char* suffix) {
    if (c.offset < c.must_reach && run.first_error.ok()) {
      run.first_error =
          Status::DataLoss(path + ": end of file at offset " + std::to_string(c.offset) +
                           ", needed data up to " + std::to_string(c.must_reach) + suffix);
    }
  };
  if (res == -EINTR || res == -EAGAIN) {
    run.pending.push_front(i);
  } else if (res < 0) {
    if (run.first_error.ok()) {
      run.first_error = Status::FromErrno(-res,
                                          path + " at offset " + std::to_string(c.offset) + " (" +
                                              std::to_string(c.length) + " bytes)",
                                          "io_uring read");
    }
  } else if (res == 0) {
    eof_error(" (truncated while loading?)");
  } else {
    ++run.stats->reads;
    run.done += res;
    if (static_cast<uint64_t>(res) < c.length) {
      c.offset += res;
      c.dest += res;
      c.length -= res;
      if (c.offset >= run.files->sizes[c.file]) {
        // End of file (an aligned read covering a tail): fine if nothing required is missing.
        eof_error("");
      } else {
        ++run.stats->short_reads;
        run.pending.push_front(i);  // resubmit the remainder
      }
    }
  }
}

// A stop asked for (once): nothing more is submitted, and every read in flight is cancelled.
void StopRun(RingRun& run) {
  run.pending.clear();
  run.first_error =
      Status::Unavailable("load: cancelled (stopping) after " + std::to_string(run.done) +
                          " bytes; " + std::to_string(run.inflight) + " reads in flight cancelled");
  if (run.inflight == 0) return;
  if (io_uring_sqe* sqe = io_uring_get_sqe(&run.ring)) {
    io_uring_prep_cancel64(sqe, 0, IORING_ASYNC_CANCEL_ANY);
    io_uring_sqe_set_data64(sqe, kCancelData);
  }
}

// Submits what is queued and waits up to 100 ms for a completion (the bound on how late a stop
// is seen); the reaped completions are applied. A non-OK status: the ring is unusable.
Status SubmitAndReap(RingRun& run) {
  __kernel_timespec ts{0, 100'000'000};
  io_uring_cqe* first = nullptr;
  const int ret = io_uring_submit_and_wait_timeout(&run.ring, &first, 1, &ts, nullptr);
  if (ret < 0 && ret != -EINTR && ret != -EAGAIN && ret != -EBUSY && ret != -ETIME) {
    return Status::FromErrno(-ret, "io_uring load", "io_uring_submit_and_wait_timeout");
  }
  io_uring_cqe* cqe;
  unsigned head, seen = 0;
  io_uring_for_each_cqe(&run.ring, head, cqe) {
    ++seen;
    Complete(run, cqe);
  }
  io_uring_cq_advance(&run.ring, seen);
  return Status::Ok();
}

}  // namespace

StatusOr<LoadStats> Loader::Load(const std::vector<ReadRequest>& requests,
                                 const CancelToken* cancel) {
  VMM_RETURN_IF_ERROR(options_.Validate());
  const auto start = Clock::now();
  VMM_ASSIGN_OR_RETURN(OpenFiles files, OpenAll(requests, options_.direct_io));
  VMM_RETURN_IF_ERROR(CheckRequests(requests, files));
  LoadStats stats;
  stats.direct_io = files.all_direct;
  if (!files.all_direct) stats.fallback_reason = files.fallback_reason;
  ChunkPlan plan = MakeChunks(requests, files, options_.chunk_bytes);

  RingRun run;
  const int qd = static_cast<int>(
      std::min<uint64_t>(options_.queue_depth, std::max<size_t>(plan.chunks.size(), 1)));
  if (int ret = io_uring_queue_init(qd, &run.ring, 0); ret < 0) {
    // No io_uring (disabled by sysctl or seccomp): the pread loop does the same job.
    auto fallback = LoadWithPread(requests, options_.chunk_bytes, options_.cancel, cancel);
    if (fallback.ok()) {
      fallback->fallback_reason =
          std::string("io_uring unavailable (") + strerror(-ret) + "): loaded with pread";
    }
    return fallback;
  }
  run.files = &files;
  run.chunks = &plan.chunks;
  run.stats = &stats;
  for (const auto& fd : files.fds) run.raw_fds.push_back(fd.get());
  run.fixed_files = io_uring_register_files(&run.ring, run.raw_fds.data(), run.raw_fds.size()) == 0;
  stats.fixed_buffers =
      options_.register_buffers && !plan.buffers.empty() && plan.buffers.size() <= 16384 &&
      io_uring_register_buffers(&run.ring, plan.buffers.data(), plan.buffers.size()) == 0;
  for (size_t i = 0; i < plan.chunks.size(); ++i) run.pending.push_back(i);
  ProgressReporter progress(options_, plan.total);
  bool stopped = false;
  while ((run.first_error.ok() && !run.pending.empty()) || run.inflight > 0) {
    if (!stopped && Cancelled(options_.cancel, cancel)) {
      stopped = true;
      StopRun(run);
    }
    Submit(run, qd);
    if (Status s = SubmitAndReap(run); !s.ok()) {
      run.first_error = s;
      break;  // the ring is unusable; in-flight reads are cancelled by queue_exit below
    }
    progress.Update(run.done, false);
  }
  io_uring_queue_exit(&run.ring);
  if (!run.first_error.ok()) return run.first_error;
  progress.Update(run.done, true);
  stats.bytes = run.done;
  stats.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  return stats;
}

StatusOr<LoadStats> LoadWithPread(const std::vector<ReadRequest>& requests, uint64_t chunk_bytes,
                                  const CancelToken* cancel, const CancelToken* also) {
  const auto start = Clock::now();
  VMM_ASSIGN_OR_RETURN(OpenFiles files, OpenAll(requests, false));
  VMM_RETURN_IF_ERROR(CheckRequests(requests, files));
  LoadStats stats;
  stats.fallback_reason = "pread loop";
  for (const ReadRequest& r : requests) {
    const int fd = files.fds[files.index.at(r.path)].get();
    const uint64_t required = r.required ? r.required : r.length;
    uint64_t got = 0;
    while (got < r.length) {
      if (Cancelled(cancel, also)) {
        return Status::Unavailable("load: cancelled (stopping) while reading " + r.path);
      }
      const uint64_t n = std::min(chunk_bytes, r.length - got);
      const ssize_t k = pread(fd, static_cast<uint8_t*>(r.dest) + got, n, r.file_offset + got);
      if (k < 0 && errno == EINTR) continue;
      if (k < 0) return Status::FromErrno(errno, r.path, "pread");
      if (k == 0) break;
      got += k;
      ++stats.reads;
    }
    if (got < required) {
      return Status::DataLoss(r.path + ": end of file at offset " +
                              std::to_string(r.file_offset + got) + ", needed data up to " +
                              std::to_string(r.file_offset + required));
    }
    stats.bytes += got;
  }
  stats.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  return stats;
}

}  // namespace emoe::hbm
