// hbm/p2p.h: peer-to-peer copies between devices, on worker threads of the destination device.
//
// A CopyEngine keeps a small team of threads per device, pinned to the device's CPUs (the
// destination's, so the writes are local to its node). CopyAsync splits a copy into one part
// per worker and returns a future; the caller (a serving thread, a scaling plan) is never the one
// copying. Bytes go through vmm::CopyBytes so the copy shows in vmm's counters.
//
// Thread safety: CopyAsync may be called from any thread. The destructor drains queued copies.
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
  int threads(int device) const;

 private:
  struct Team {
    std::vector<std::thread> threads;
    vmm::Mutex mu;
    vmm::CondVar cv;
    std::deque<std::function<void()>> queue GUARDED_BY(mu);
    bool stop GUARDED_BY(mu) = false;
  };
  void Work(Team* team, std::vector<int> cpus);
  std::vector<std::unique_ptr<Team>> teams_;  // index = device id
};

}  // namespace emoe::hbm

#endif  // HBM_P2P_H_
