// engine/thread_team.h: a device as a team of threads (DESIGN 4.2): the rank's worker thread is
// member 0, size - 1 helpers are the others, each pinned to one of the device's CPUs. The worker
// hands every member a share of a product's rows (Run) and continues when all are done.
//
// Invariants:
//   1. At most one Run is in flight (the rank's worker is the only caller); helpers run the job of
//      generation g only after Run(g) published it, and Run returns only after every helper
//      finished it (pending_ back to 0), so the job and what it captures outlive its use.
//   2. A helper waiting for work spins for about kSpinNs, then sleeps on cv_ until the next
//      generation or stop: a step's many small products pay no wake-up, an idle team burns no CPU.
//   3. Range() splits rows into contiguous, aligned shares that depend only on (n, members,
//      align): the same row always goes to the same member, and every row to exactly one.
//
// Thread safety: Run is called by one thread at a time; the destructor joins the helpers.
#ifndef ENGINE_THREAD_TEAM_H_
#define ENGINE_THREAD_TEAM_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <thread>
#include <utility>
#include <vector>

#include "vmm/mutex.h"

namespace emoe::engine {

class ThreadTeam {
 public:
  // `size` members; helper i (1..size-1) is pinned to cpus[i % cpus.size()] when cpus is given.
  explicit ThreadTeam(int size, std::vector<int> cpus = {});
  ~ThreadTeam();
  ThreadTeam(const ThreadTeam&) = delete;
  ThreadTeam& operator=(const ThreadTeam&) = delete;

  int size() const { return size_; }
  // Runs job(member) for every member, member 0 on the calling thread; returns when all are done.
  void Run(const std::function<void(int)>& job);
  // Member i's share [first, second) of n rows, in multiples of `align` (the last may be short).
  static std::pair<int64_t, int64_t> Range(int64_t n, int members, int i, int64_t align);

  static constexpr int64_t kSpinNs = 200'000;

 private:
  void HelperLoop(int member, int cpu);

  const int size_;
  std::vector<std::thread> helpers_;
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> pending_{0};
  std::atomic<bool> stop_{false};
  std::atomic<const std::function<void(int)>*> job_{nullptr};
  vmm::Mutex mu_;  // only for sleeping helpers: Run takes it after publishing a generation
  vmm::CondVar cv_;
};

}  // namespace emoe::engine

#endif  // ENGINE_THREAD_TEAM_H_
