#include "hbm/p2p.h"

#include <pthread.h>
#include <sched.h>

#include <atomic>
#include <string>

#include "vmm/stats.h"

namespace emoe::hbm {

CopyEngine::CopyEngine(const std::vector<DeviceSpec>& devices, int threads_per_device) {
  int max_id = -1;
  for (const auto& d : devices) max_id = std::max(max_id, d.id);
  teams_.resize(max_id + 1);
  for (const auto& d : devices) {
    auto team = std::make_unique<Team>();
    int n = threads_per_device > 0 ? threads_per_device
                                   : std::min<int>(8, std::max<size_t>(1, d.cpus.size()));
    for (int i = 0; i < n; ++i) {
      team->threads.emplace_back(&CopyEngine::Work, this, team.get(), d.cpus);
      // Named for top -H / perf: "p2p-d<device>".
      pthread_setname_np(team->threads.back().native_handle(),
                         ("p2p-d" + std::to_string(d.id)).substr(0, 15).c_str());
    }
    teams_[d.id] = std::move(team);
  }
}

CopyEngine::~CopyEngine() {
  for (auto& t : teams_) {
    if (!t) continue;
    {
      vmm::MutexLock l(&t->mu);
      t->stop = true;
    }
    t->cv.SignalAll();
    for (auto& th : t->threads) th.join();
  }
}

int CopyEngine::threads(int device) const {
  if (device < 0 || device >= static_cast<int>(teams_.size()) || !teams_[device]) return 0;
  return static_cast<int>(teams_[device]->threads.size());
}

void CopyEngine::Work(Team* team, std::vector<int> cpus) {
  if (!cpus.empty()) {
    cpu_set_t set;
    CPU_ZERO(&set);
    for (int c : cpus) CPU_SET(c, &set);
    pthread_setaffinity_np(pthread_self(), sizeof(set), &set);  // best effort
  }
  for (;;) {
    std::function<void()> job;
    {
      vmm::MutexLock l(&team->mu);
      while (!team->stop && team->queue.empty()) team->cv.Wait(&team->mu);
      if (team->queue.empty()) return;  // stop requested and drained
      job = std::move(team->queue.front());
      team->queue.pop_front();
    }
    job();
  }
}

std::future<Status> CopyEngine::CopyAsync(int dst_device, void* dst, const void* src,
                                          uint64_t bytes) {
  auto promise = std::make_shared<std::promise<Status>>();
  std::future<Status> future = promise->get_future();
  if (dst_device < 0 || dst_device >= static_cast<int>(teams_.size()) || !teams_[dst_device]) {
    promise->set_value(
        Status::InvalidArgument("copy to unknown device " + std::to_string(dst_device)));
    return future;
  }
  Team* team = teams_[dst_device].get();
  // One part per worker, each at least 1 MiB, split at 4 KiB boundaries.
  const uint64_t workers = team->threads.size();
  uint64_t parts = std::max<uint64_t>(1, std::min<uint64_t>(workers, bytes >> 20));
  const uint64_t part = ((bytes + parts - 1) / parts + 4095) & ~uint64_t{4095};
  parts = bytes == 0 ? 1 : (bytes + part - 1) / part;
  auto left = std::make_shared<std::atomic<uint64_t>>(parts);
  {
    vmm::MutexLock l(&team->mu);
    for (uint64_t p = 0; p < parts; ++p) {
      const uint64_t off = p * part;
      const uint64_t n = off < bytes ? std::min(part, bytes - off) : 0;
      team->queue.push_back([=] {
        if (n > 0) {
          vmm::CopyBytes(static_cast<uint8_t*>(dst) + off, static_cast<const uint8_t*>(src) + off,
                         n);
        }
        if (left->fetch_sub(1) == 1) promise->set_value(Status::Ok());
      });
    }
  }
  team->cv.SignalAll();
  return future;
}

}  // namespace emoe::hbm
