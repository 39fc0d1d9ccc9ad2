// server/src/slo_tracker.h: what the service saw of its requests over a sliding window, for
// the autoscaler (server/autoscaler.h): the requests finished in the window with their TTFT and
// TPOT against the SLO, the requests still waiting for a first token, and the rates of
// arrivals, prompt and generated tokens. Times are the coordinator's clock.
//
// Definitions (as serve_bench's, measured at the server): TTFT = first token - arrival;
// TPOT = (last token - first token) / (tokens - 1), none for one token. A request meets the
// SLO when it was served with TTFT <= ttft bound and TPOT <= tpot bound (0: no bound); one
// that failed misses it; one the client abandoned is not counted. A request in flight that has
// waited longer than the TTFT bound for its first token already misses it and counts in the
// window at once (so that a stuck queue shows before its requests finish).
//
// Thread safety: every method from any thread (one leaf mutex: never held while calling out).
#ifndef SERVER_SRC_SLO_TRACKER_H_
#define SERVER_SRC_SLO_TRACKER_H_

#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <utility>

#include "server/autoscale_policy.h"
#include "vmm/mutex.h"

namespace emoe::server {

class SloTracker {
 public:
  // REQUIRES: window_s > 0, bounds >= 0 (0: none).
  SloTracker(double window_s, double slo_ttft_s, double slo_tpot_s);

  void Admitted(int64_t id, double t, int64_t prompt_tokens) EXCLUDES(mu_);
  void FirstToken(int64_t id, double t) EXCLUDES(mu_);
  void Generated(double t, int64_t tokens) EXCLUDES(mu_);  // one step's tokens
  // A response ended at t: served (ok) with its arrival, first and last token times and its
  // tokens, or failed (ok false).
  void Finished(int64_t id, double t, bool ok, double arrival_s, double first_token_s,
                double last_token_s, int64_t tokens) EXCLUDES(mu_);
  void Forget(int64_t id) EXCLUDES(mu_);  // abandoned by its client: not counted
  // The serving thread's busy seconds so far (ServingSnapshot::busy_seconds) at time t: Fill's
  // busy_fraction is their rate over the window.
  void Busy(double t, double busy_seconds) EXCLUDES(mu_);

  // The SLO and rate fields of `s` as of `now` (window_requests, window_met, ttft_p90_s,
  // tpot_p90_s, oldest_wait_s, tokens_per_s, prompt_tokens_per_s, arrivals_per_s,
  // mean_output_tokens, busy_fraction); the rates over min(window, now - the first
  // admission), the busy fraction over the Busy samples in the window.
  void Fill(double now, AutoscaleSignals* s) EXCLUDES(mu_);
  // Entries held (tests): each addition drops what left the window, so that memory stays
  // bounded by the window's traffic whether or not anyone calls Fill (the autoscaler off).
  size_t held() EXCLUDES(mu_);

 private:
  struct Done {
    double t, ttft_s, tpot_s;  // tpot_s < 0: none
    bool met;
    int64_t tokens;
  };
  struct Amount {
    double t;
    int64_t n;
  };
  void Prune(double now) REQUIRES(mu_);
  bool Met(bool ok, double ttft_s, double tpot_s) const;

  const double window_s_, slo_ttft_s_, slo_tpot_s_;
  vmm::Mutex mu_;
  std::deque<Done> done_ GUARDED_BY(mu_);
  std::deque<Amount> generated_ GUARDED_BY(mu_), prompts_ GUARDED_BY(mu_);
  std::deque<std::pair<double, double>> busy_ GUARDED_BY(mu_);  // (t, busy seconds)
  std::map<int64_t, double> awaiting_ GUARDED_BY(mu_);          // id -> arrival, no first token yet
  double first_admission_t_ GUARDED_BY(mu_) = -1;
};

}  // namespace emoe::server

#endif  // SERVER_SRC_SLO_TRACKER_H_
