// hbm/src/clock_text.h: two helpers the HMM's reports share: seconds since a steady-clock
// time point, and a byte count as MiB text ("12.5 MiB").
//
// Thread safety: functions of values.
#ifndef HBM_SRC_CLOCK_TEXT_H_
#define HBM_SRC_CLOCK_TEXT_H_

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>

namespace emoe::hbm::internal {

using Clock = std::chrono::steady_clock;

inline double Since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

inline std::string Mib(uint64_t b) {
  char buf[48];
  std::snprintf(buf, sizeof(buf), "%.1f MiB", b / 1048576.0);
  return buf;
}

}  // namespace emoe::hbm::internal

#endif  // HBM_SRC_CLOCK_TEXT_H_
