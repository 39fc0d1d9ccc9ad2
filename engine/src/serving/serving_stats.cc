#include "serving/serving_stats.h"

#include <algorithm>

namespace emoe::engine {

void ServingStats::Accepted() {
  vmm::MutexLock l(&mu_);
  ++outstanding_;
}

void ServingStats::Record(double now, int stepped, const std::vector<TokenEvent>& events,
                          int replica_tokens, int generation, std::vector<RequestResult> done) {
  vmm::MutexLock l(&mu_);
  outstanding_ -= done.size();
  if (!keep_history_) return;
  std::vector<std::pair<int64_t, double>> tokens;
  tokens.reserve(events.size());
  for (const TokenEvent& e : events) tokens.emplace_back(e.id, e.t);
  std::sort(tokens.begin(), tokens.end(),
            [](const auto& a, const auto& b) { return a.second < b.second; });
  for (auto& r : done) {
    last_token_.erase(r.id);
    finished_.push_back(std::move(r));
  }
  if (stepped > 0) {
    timeline_.push_back({now, static_cast<int>(tokens.size()), replica_tokens, generation});
  }
  for (auto [id, t] : tokens) {
    auto it = last_token_.find(id);
    if (it != last_token_.end()) gaps_.emplace_back(t, t - it->second);
    last_token_[id] = t;
  }
}

void ServingStats::CountError() {
  vmm::MutexLock l(&mu_);
  ++errors_;
}

std::vector<RequestResult> ServingStats::TakeFinished() {
  vmm::MutexLock l(&mu_);
  std::vector<RequestResult> out;
  out.swap(finished_);
  return out;
}

size_t ServingStats::outstanding() const {
  vmm::MutexLock l(&mu_);
  return outstanding_;
}

std::vector<StepRecord> ServingStats::Timeline() const {
  vmm::MutexLock l(&mu_);
  return timeline_;
}

double ServingStats::MaxTokenGap(double t0, double t1) const {
  vmm::MutexLock l(&mu_);
  double g = 0;
  for (const auto& [t, gap] : gaps_) {
    if (t >= t0 && t <= t1) g = std::max(g, gap);
  }
  return g;
}

int ServingStats::errors() const {
  vmm::MutexLock l(&mu_);
  return errors_;
}

}  // namespace emoe::engine
