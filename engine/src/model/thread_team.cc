#include "engine/thread_team.h"

#include <pthread.h>
#include <sched.h>

#include <algorithm>
#include <chrono>

namespace emoe::engine {

namespace {

void CpuRelax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#else
  std::this_thread::yield();
#endif
}

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace

ThreadTeam::ThreadTeam(int size, std::vector<int> cpus) : size_(std::max(1, size)) {
  for (int i = 1; i < size_; ++i) {
    const int cpu = cpus.empty() ? -1 : cpus[i % cpus.size()];
    helpers_.emplace_back([this, i, cpu] { HelperLoop(i, cpu); });
  }
}

ThreadTeam::~ThreadTeam() {
  {
    vmm::MutexLock l(&mu_);
    stop_.store(true, std::memory_order_release);
  }
  cv_.SignalAll();
  for (std::thread& t : helpers_) t.join();
}

std::pair<int64_t, int64_t> ThreadTeam::Range(int64_t n, int members, int i, int64_t align) {
  const int64_t units = (n + align - 1) / align;
  const int64_t first = units * i / members, last = units * (i + 1) / members;
  return {std::min(n, first * align), std::min(n, last * align)};
}

void ThreadTeam::Run(const std::function<void(int)>& job) {
  if (size_ == 1) return job(0);
  job_.store(&job, std::memory_order_relaxed);
  pending_.store(size_ - 1, std::memory_order_relaxed);
  generation_.fetch_add(1, std::memory_order_release);
  {
    vmm::MutexLock l(&mu_);  // a helper that checked the generation before it moved now sleeps
  }
  cv_.SignalAll();
  job(0);
  const int64_t start = NowNs();
  while (pending_.load(std::memory_order_acquire) != 0) {
    if (NowNs() - start < kSpinNs) {
      CpuRelax();
    } else {
      std::this_thread::yield();
    }
  }
}

void ThreadTeam::HelperLoop(int member, int cpu) {
  if (cpu >= 0) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
  }
  uint64_t seen = 0;
  while (true) {
    const int64_t start = NowNs();
    while (generation_.load(std::memory_order_acquire) == seen &&
           !stop_.load(std::memory_order_acquire) && NowNs() - start < kSpinNs) {
      CpuRelax();
    }
    {
      vmm::MutexLock l(&mu_);
      while (generation_.load(std::memory_order_acquire) == seen &&
             !stop_.load(std::memory_order_acquire)) {
        cv_.Wait(&mu_);
      }
    }
    if (stop_.load(std::memory_order_acquire)) return;
    seen = generation_.load(std::memory_order_acquire);
    (*job_.load(std::memory_order_relaxed))(member);
    pending_.fetch_sub(1, std::memory_order_release);
  }
}

}  // namespace emoe::engine
