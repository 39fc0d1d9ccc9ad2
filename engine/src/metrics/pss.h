// engine/src/metrics/pss.h: proportional set size of this process and its children (the
// instance processes), sampled off the scaling path.
//
// Thread safety: PssBytes is reentrant; a PssSampler is driven by one thread (its own sampling
// thread is internal).
#ifndef ENGINE_SRC_METRICS_PSS_H_
#define ENGINE_SRC_METRICS_PSS_H_

#include <chrono>
#include <cstdint>
#include <thread>

#include "vmm/mutex.h"

namespace emoe::engine {

// PSS of this process plus its children, bytes: pages they share, such as the arenas every
// instance maps, are counted once in the sum. 0 for a process whose smaps_rollup is unreadable.
uint64_t PssBytes();

// Samples PssBytes() every `period` on a thread of its own while a scale event runs: reading
// smaps_rollup walks every page table (milliseconds with GiBs mapped), so it never runs on the
// scaling path.
class PssSampler {
 public:
  explicit PssSampler(std::chrono::milliseconds period);
  ~PssSampler() { Stop(); }
  PssSampler(const PssSampler&) = delete;
  PssSampler& operator=(const PssSampler&) = delete;
  // PSS at the first sample (0 until it is taken).
  uint64_t first();
  // Stops sampling (after one last sample) and returns the peak.
  uint64_t Stop();

 private:
  vmm::Mutex mu_;
  vmm::CondVar cv_;
  bool stop_ GUARDED_BY(mu_) = false;
  uint64_t peak_ GUARDED_BY(mu_) = 0;
  uint64_t first_ GUARDED_BY(mu_) = 0;
  std::thread thread_;  // last: starts after the fields above exist
};

}  // namespace emoe::engine

#endif  // ENGINE_SRC_METRICS_PSS_H_
