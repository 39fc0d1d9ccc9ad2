// The service's sliding window of SLO and rate signals (slo_tracker.h).
#include "slo_tracker.h"

#include <algorithm>
#include <vector>

namespace emoe::server {
namespace {

double P90(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t rank = (v.size() * 9 + 9) / 10;  // nearest rank, 1-based
  return v[std::min(v.size(), std::max<size_t>(rank, 1)) - 1];
}

}  // namespace

SloTracker::SloTracker(double window_s, double slo_ttft_s, double slo_tpot_s)
    : window_s_(window_s), slo_ttft_s_(slo_ttft_s), slo_tpot_s_(slo_tpot_s) {}

bool SloTracker::Met(bool ok, double ttft_s, double tpot_s) const {
  if (!ok) return false;
  if (slo_ttft_s_ > 0 && ttft_s > slo_ttft_s_) return false;
  return !(slo_tpot_s_ > 0 && tpot_s >= 0 && tpot_s > slo_tpot_s_);
}

void SloTracker::Admitted(int64_t id, double t, int64_t prompt_tokens) {
  vmm::MutexLock l(&mu_);
  if (first_admission_t_ < 0) first_admission_t_ = t;
  awaiting_[id] = t;
  prompts_.push_back({t, prompt_tokens});
  Prune(t);
}

void SloTracker::FirstToken(int64_t id, double /*t*/) {
  vmm::MutexLock l(&mu_);
  awaiting_.erase(id);
}

void SloTracker::Generated(double t, int64_t tokens) {
  vmm::MutexLock l(&mu_);
  generated_.push_back({t, tokens});
  Prune(t);
}

void SloTracker::Finished(int64_t id, double t, bool ok, double arrival_s, double first_token_s,
                          double last_token_s, int64_t tokens) {
  const double ttft = ok ? first_token_s - arrival_s : 0;
  const double tpot = ok && tokens > 1 ? (last_token_s - first_token_s) / (tokens - 1) : -1;
  vmm::MutexLock l(&mu_);
  awaiting_.erase(id);
  done_.push_back({t, ttft, tpot, Met(ok, ttft, tpot), ok ? tokens : 0});
  Prune(t);
}

void SloTracker::Forget(int64_t id) {
  vmm::MutexLock l(&mu_);
  awaiting_.erase(id);
}

void SloTracker::Busy(double t, double busy_seconds) {
  vmm::MutexLock l(&mu_);
  busy_.emplace_back(t, busy_seconds);
  Prune(t);
}

void SloTracker::Prune(double now) {
  const double from = now - window_s_;
  while (busy_.size() > 2 && busy_[1].first <= from) busy_.pop_front();
  while (!done_.empty() && done_.front().t < from) done_.pop_front();
  while (!generated_.empty() && generated_.front().t < from) generated_.pop_front();
  while (!prompts_.empty() && prompts_.front().t < from) prompts_.pop_front();
}

size_t SloTracker::held() {
  vmm::MutexLock l(&mu_);
  return done_.size() + generated_.size() + prompts_.size() + busy_.size() + awaiting_.size();
}

void SloTracker::Fill(double now, AutoscaleSignals* s) {
  vmm::MutexLock l(&mu_);
  Prune(now);
  std::vector<double> ttft, tpot;
  int64_t met = 0, served = 0, out_tokens = 0;
  for (const Done& d : done_) {
    met += d.met ? 1 : 0;
    if (d.tokens > 0) {
      ++served;
      out_tokens += d.tokens;
      ttft.push_back(d.ttft_s);
      if (d.tpot_s >= 0) tpot.push_back(d.tpot_s);
    }
  }
  int64_t late = 0;
  double oldest = 0;
  for (const auto& a : awaiting_) {
    const double waited = now - a.second;
    oldest = std::max(oldest, waited);
    if (slo_ttft_s_ > 0 && waited > slo_ttft_s_) ++late;
  }
  s->window_requests = static_cast<int64_t>(done_.size()) + late;
  s->window_met = met;
  s->ttft_p90_s = P90(std::move(ttft));
  s->tpot_p90_s = P90(std::move(tpot));
  s->oldest_wait_s = oldest;
  // The rates over the window, or over the time since the first request when that is shorter.
  const double span =
      first_admission_t_ < 0 ? window_s_ : std::clamp(now - first_admission_t_, 1e-3, window_s_);
  int64_t gen = 0, prompt = 0;
  for (const Amount& a : generated_) gen += a.n;
  for (const Amount& a : prompts_) prompt += a.n;
  s->tokens_per_s = static_cast<double>(gen) / span;
  s->prompt_tokens_per_s = static_cast<double>(prompt) / span;
  s->arrivals_per_s = static_cast<double>(prompts_.size()) / span;
  s->mean_output_tokens = served > 0 ? static_cast<double>(out_tokens) / served : 0;
  s->busy_fraction = 0;
  if (busy_.size() >= 2 && busy_.back().first > busy_.front().first) {
    s->busy_fraction = std::clamp(
        (busy_.back().second - busy_.front().second) / (busy_.back().first - busy_.front().first),
        0.0, 1.0);
  }
}

}  // namespace emoe::server
