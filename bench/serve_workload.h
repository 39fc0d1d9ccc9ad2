// bench/serve_workload.h: what serve_bench sends and when: an open-loop schedule of requests
// (arrival offset, prompt and output lengths) from Poisson arrivals or from a trace CSV, the
// random token-id prompts, the request bodies, and the scale events of --scale_at.
//
// Open loop: every request is sent at its arrival offset whatever the server's state (the
// answers of earlier requests never delay later ones), as vLLM's benchmark_serving does.
//
// Thread safety: pure functions of their arguments (the trace file is read by the caller).
#ifndef BENCH_SERVE_WORKLOAD_H_
#define BENCH_SERVE_WORKLOAD_H_

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "vmm/status.h"

namespace emoe::bench {

// One request of the schedule.
struct PlannedRequest {
  int64_t id = 0;
  double arrival_s = 0;  // seconds after the start of the load
  int prompt_tokens = 1;
  int output_tokens = 1;  // max_tokens, generated whole (ignore_eos)
};

// `n` requests with exponential gaps of mean 1/rate_per_s (the first at 0), fixed lengths.
// REQUIRES: rate_per_s > 0, n >= 0, prompt_tokens >= 1, output_tokens >= 1.
std::vector<PlannedRequest> PoissonSchedule(int n, double rate_per_s, int prompt_tokens,
                                            int output_tokens, uint64_t seed);

// One point of a --rate_profile: the request rate `rate_per_s` at `t_s` seconds of the load.
struct RatePoint {
  double t_s = 0;
  double rate_per_s = 0;
};
// Parses "T:R,T:R,..." (T seconds, the first 0, strictly increasing, finite; R req/s, finite,
// >= 0, not all 0); at least two points. kInvalidArgument naming the item at fault.
vmm::StatusOr<std::vector<RatePoint>> ParseRateProfile(const std::string& spec);

// The request rate of `profile` at `t_s`: linear between its points, 0 outside them.
// REQUIRES: profile is ParseRateProfile's.
double RateAt(const std::vector<RatePoint>& profile, double t_s);

// Non-homogeneous Poisson arrivals at RateAt(profile, t) for t in [0, last T) (Lewis and
// Shedler's thinning: candidates at the profile's largest rate, each kept with probability
// rate(t) / largest), at most `max_requests` of them, fixed lengths, seeded.
// REQUIRES: profile is ParseRateProfile's, max_requests >= 0, lengths >= 1.
std::vector<PlannedRequest> RateProfileSchedule(const std::vector<RatePoint>& profile,
                                                int max_requests, int prompt_tokens,
                                                int output_tokens, uint64_t seed);

// Which rows of a trace CSV become requests, and how (TraceSchedule).
struct TraceOptions {
  int max_requests = 100;        // rows kept, at most (>= 0)
  double time_scale = 1;         // trace offsets are divided by this (10: ten times faster), > 0
  int max_prompt_tokens = 1024;  // prompt lengths clipped to [1, this]
  int max_output_tokens = 256;   // output lengths clipped to [1, this]
  double skip_s = 0;             // the segment starts this many trace seconds after the first row
  double duration_s = 0;  // and holds the rows less than this many trace seconds later (0: all)
  double sample = 1;      // each row of the segment is kept with this probability, (0, 1]
  uint64_t seed = 1;      // of the sampling
};

// The requests of a segment of a trace CSV `csv` (the text of `path`, named in errors) with
// header TIMESTAMP,ContextTokens,GeneratedTokens (data/traces/README.md; TIMESTAMP
// "YYYY-MM-DD HH:MM:SS.fffffff"): the rows from trace time first + skip_s (first: the first
// row's timestamp) to first + skip_s + duration_s, each kept with probability `sample`, at most
// max_requests of them; arrivals are the offsets from first + skip_s divided by time_scale
// (so the load's time 0 is the segment's start, whenever its first kept row comes), lengths
// clipped. kDataLoss naming the line for a malformed row or a timestamp earlier than the
// first; kInvalidArgument for a wrong header, a trace with no rows, or a segment with none.
// REQUIRES: o's fields in the ranges above.
vmm::StatusOr<std::vector<PlannedRequest>> TraceSchedule(const std::string& csv,
                                                         const std::string& path,
                                                         const TraceOptions& o);

// The first `n` rows of a trace CSV `csv` (the text of `path`, named in errors) with header
// TIMESTAMP,ContextTokens,GeneratedTokens (data/traces/README.md; TIMESTAMP
// "YYYY-MM-DD HH:MM:SS.fffffff"): arrivals are the offsets from the first row's timestamp
// divided by `time_scale` (10: ten times faster), lengths clipped to [1, max_prompt_tokens] and
// [1, max_output_tokens]. kDataLoss naming the line for a malformed row or a timestamp earlier
// than the first; kInvalidArgument for a wrong header or a trace with no rows.
// REQUIRES: time_scale > 0, max_prompt_tokens >= 1, max_output_tokens >= 1.
vmm::StatusOr<std::vector<PlannedRequest>> TraceSchedule(const std::string& csv,
                                                         const std::string& path, int n,
                                                         double time_scale, int max_prompt_tokens,
                                                         int max_output_tokens);

// Seconds since 1970-01-01 of "YYYY-MM-DD HH:MM:SS[.fraction]" (UTC, proleptic Gregorian);
// false when it does not parse or a field is out of range.
bool ParseTimestamp(const std::string& s, double* seconds);

// A POST /v1/completions body for `r`: "prompt" a list of r.prompt_tokens token ids drawn
// uniformly from [0, token_ids) (vLLM takes token-id prompts), "max_tokens" r.output_tokens,
// "ignore_eos": true, "temperature": 0, "stream": true with stream_options.include_usage.
// REQUIRES: token_ids >= 1.
std::string CompletionBody(const std::string& model, const PlannedRequest& r, int token_ids,
                           std::mt19937_64* rng);

// One --scale_at event: POST /scale_elastic_ep {"new_data_parallel_size": target} at at_s.
struct PlannedScale {
  double at_s = 0;
  int target = 0;
};
// Parses "T:N,T:N,..." (T seconds >= 0, finite; N an integer in 1..4096); "" is no event.
// Events are returned sorted by time. kInvalidArgument naming the item at fault.
vmm::StatusOr<std::vector<PlannedScale>> ParseScaleAt(const std::string& spec);

}  // namespace emoe::bench

#endif  // BENCH_SERVE_WORKLOAD_H_
