// hbm/p2p.h: peer-to-peer copies between devices, on worker threads of the destination device.
//
// A CopyEngine keeps a small team of threads per device, pinned to the device's CPUs (the
// destination's, so the writes are local to its node). CopyAsync splits a copy into one part
// per worker and returns a future; the caller (a serving thread, a scaling plan) is never the one
// copying. CopyBatch runs many copies as one unit (a scale event's memory phase): every span cut
// into chunks, all of them queued on their destinations' workers at once, or at most
// max_parallel in flight over the whole batch (each finished chunk starts the next, so the batch
// takes at most that many cores from serving). Large copies use non-temporal stores (the
// destination is read later by other cores, not by the copying thread: hbm/src/stream_copy.h),
// and every byte counts in vmm's bytes_copied.
//
// Thread safety: CopyAsync and CopyBatch may be called from any thread, concurrently (their
// chunks share the workers' queues). The destructor drains queued copies.
#ifndef HBM_P2P_H_
#define HBM_P2P_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <future>
#include <memory>
#include <thread>
#include <vector>

#include "hbm/device.h"

namespace emoe::hbm {

// One contiguous copy of a batch (CopyEngine::CopyBatch).
struct CopySpan {
  int dst_device = 0;  // whose workers copy it
  void* dst = nullptr;
  const void* src = nullptr;
  uint64_t bytes = 0;
};

// When a span's bytes moved, in seconds from the start of the batch's first chunk. Both 0 for an
// empty span.
struct SpanTimes {
  double start_s = 0;  // its first chunk's start
  double end_s = 0;    // its last chunk's end
};

struct CopyBatchTimes {
  std::vector<SpanTimes> spans;  // one per span, in order
  double wall_s = 0;             // first chunk's start to last chunk's end
  uint64_t chunks = 0;           // chunks copied
};

class CopyEngine {
 public:
  // `threads_per_device` 0 = one per CPU of the device, at most 8.
  explicit CopyEngine(const std::vector<DeviceSpec>& devices, int threads_per_device = 0);
  ~CopyEngine();
  CopyEngine(const CopyEngine&) = delete;
  CopyEngine& operator=(const CopyEngine&) = delete;

  // Copies `bytes` from `src` to `dst` on `dst_device`'s workers. kInvalidArgument for an unknown
  // device. REQUIRES: the ranges stay valid until the future is ready and do not overlap.
  std::future<Status> CopyAsync(int dst_device, void* dst, const void* src, uint64_t bytes);
  Status Copy(int dst_device, void* dst, const void* src, uint64_t bytes) {
    return CopyAsync(dst_device, dst, src, bytes).get();
  }
  // Copies every span, cut into chunks of `chunk_bytes` (at 4 KiB boundaries), each on the
  // workers of its span's destination device, and returns once all are done. max_parallel 0:
  // every chunk is queued at once (all workers of the destinations take part); N > 0: at most N
  // chunks are in flight over the whole batch, a worker that finishes one copies the next itself
  // when that chunk's device is on its node (no hand-off), else queues it on that device's
  // workers. Chunks start in span order. kInvalidArgument,
  // nothing copied: chunk_bytes 0 or not a multiple of 4096, max_parallel < 0, a span to an
  // unknown device (named by its index).
  // REQUIRES: the ranges stay valid until it returns; no destination overlaps another range.
  StatusOr<CopyBatchTimes> CopyBatch(const std::vector<CopySpan>& spans, uint64_t chunk_bytes,
                                     int max_parallel);
  int threads(int device) const;
  // How the workers store large copies: "avx512 streaming stores" (or avx2, sse2: non-temporal),
  // or "memcpy" (hbm/src/stream_copy.h).
  static const char* StoreKind();

 private:
  struct Batch;  // p2p.cc: one CopyBatch's chunks, their times, and its completion
  struct Team {
    int node = 0;  // the device's NUMA node
    std::vector<std::thread> threads;
    vmm::Mutex mu;
    vmm::CondVar cv;
    std::deque<std::function<void()>> queue GUARDED_BY(mu);
    bool stop GUARDED_BY(mu) = false;
  };
  void Work(Team* team, std::vector<int> cpus);
  bool KnownDevice(int device) const;
  // Queues chunk `i` of `b` on its destination's team.
  void SubmitChunk(const std::shared_ptr<Batch>& b, size_t i);
  // On a worker of `team`: copies chunk `i`, then the next chunk not started yet (when
  // max_parallel bounds the batch): itself when that chunk's team is on the same node (no
  // hand-off, no wake-up), else by queueing it there.
  void RunChunk(const std::shared_ptr<Batch>& b, size_t i, const Team* team);
  std::vector<std::unique_ptr<Team>> teams_;  // index = device id
};

}  // namespace emoe::hbm

#endif  // HBM_P2P_H_
