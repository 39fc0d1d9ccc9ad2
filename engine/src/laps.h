// laps.h (engine, private): where an operation's time went, part by part (AttachStats::phase_s).
//
// Thread safety: one owner.
#ifndef ENGINE_SRC_LAPS_H_
#define ENGINE_SRC_LAPS_H_

#include <chrono>
#include <map>
#include <string>

namespace emoe::engine {

class Laps {
 public:
  // Adds the time since the last mark (or construction) to (*out)[part] and restarts the lap.
  void Mark(const std::string& part, std::map<std::string, double>* out) {
    const auto now = std::chrono::steady_clock::now();
    (*out)[part] += std::chrono::duration<double>(now - last_).count();
    last_ = now;
  }
  double Total() const {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  }

 private:
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
  std::chrono::steady_clock::time_point last_ = start_;
};

}  // namespace emoe::engine

#endif  // ENGINE_SRC_LAPS_H_
