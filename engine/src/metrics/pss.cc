#include "metrics/pss.h"

#include <dirent.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <string>

namespace emoe::engine {

namespace {

// A process's proportional set size from /proc/PID/smaps_rollup (0 when unreadable).
uint64_t PssBytesOf(const std::string& pid) {
  std::ifstream f("/proc/" + pid + "/smaps_rollup");
  std::string key;
  uint64_t kb;
  std::string unit;
  while (f >> key) {
    if (key == "Pss:" && (f >> kb >> unit)) return kb * 1024;
    f.ignore(1 << 12, '\n');
  }
  return 0;
}

}  // namespace

uint64_t PssBytes() {
  uint64_t sum = PssBytesOf("self");
  const pid_t me = getpid();
  DIR* d = opendir("/proc");
  if (d == nullptr) return sum;
  while (dirent* e = readdir(d)) {
    if (e->d_name[0] < '1' || e->d_name[0] > '9') continue;
    std::ifstream f(std::string("/proc/") + e->d_name + "/stat");
    std::string stat;
    std::getline(f, stat);
    const size_t paren = stat.rfind(')');
    char state = 0;
    int ppid = 0;
    if (paren != std::string::npos &&
        std::sscanf(stat.c_str() + paren + 1, " %c %d", &state, &ppid) == 2 && ppid == me) {
      sum += PssBytesOf(e->d_name);
    }
  }
  closedir(d);
  return sum;
}

PssSampler::PssSampler(std::chrono::milliseconds period)
    : thread_([this, period] {
        vmm::MutexLock l(&mu_);
        do {
          mu_.Unlock();
          const uint64_t p = PssBytes();
          mu_.Lock();
          if (first_ == 0) first_ = p;
          peak_ = std::max(peak_, p);
        } while (!stop_ && (cv_.WaitFor(&mu_, period), !stop_));
      }) {}

uint64_t PssSampler::first() {
  vmm::MutexLock l(&mu_);
  return first_;
}

uint64_t PssSampler::Stop() {
  {
    vmm::MutexLock l(&mu_);
    if (stop_) return peak_;
    stop_ = true;
  }
  cv_.SignalAll();
  thread_.join();
  const uint64_t last = PssBytes();
  vmm::MutexLock l(&mu_);
  peak_ = std::max(peak_, last);
  return peak_;
}

}  // namespace emoe::engine
