// bench/serve_run.h: one open-loop load against the server: every planned request sent at its
// arrival offset (an Asio timer for the next one; never waiting for answers), the planned
// scale events POSTed while the load runs, one at a time (each at its time, or when the one
// before has been answered if that is later), each outcome recorded, and the count of requests
// in flight followed. Runs on the calling thread until every call has ended.
//
// Thread safety: one load per io_context; call from the thread that owns it.
#ifndef BENCH_SERVE_RUN_H_
#define BENCH_SERVE_RUN_H_

#include <cstdint>
#include <string>
#include <vector>

#include "bench/serve_client.h"
#include "bench/serve_workload.h"

namespace emoe::bench {

struct LoadOptions {
  std::string model;               // the "model" of every request
  int token_ids = 256;             // prompt ids drawn from [0, token_ids)
  uint64_t seed = 1;               // prompt ids
  double request_timeout_s = 600;  // per request, from its connect to its last byte
  double scale_timeout_s = 600;    // per scale event
};

struct RequestOutcome {
  PlannedRequest plan;
  StreamResult result;  // result.start_s is when it was sent (load clock)
};

struct ScaleOutcome {
  PlannedScale plan;
  CallResult result;  // status 0 and error set when no answer came
};

struct LoadResult {
  std::vector<RequestOutcome> requests;  // in plan order
  std::vector<ScaleOutcome> scales;
  int max_in_flight = 0;      // requests sent and not yet ended, at most
  int max_streaming = 0;      // requests with a 200 head and not yet ended, at most
  double max_send_lag_s = 0;  // the latest a request was sent after its arrival offset
  double start_s = 0;         // the clock when the load began (arrival offsets count from it)
  double wall_s = 0;          // load start to the end of the last call
  // The requests/streams in flight when each scale event was sent and when it was answered.
  std::vector<int> in_flight_at_scale_send, in_flight_at_scale_end;
};

// Runs the load from now: sends `requests` (sorted by arrival) and `scales` to `client`'s
// server over `io`; times are `clock()`'s (the Client's) seconds.
LoadResult RunLoad(boost::asio::io_context* io, Client* client, const LoadOptions& o,
                   const std::vector<PlannedRequest>& requests,
                   const std::vector<PlannedScale>& scales, const std::function<double()>& clock);

}  // namespace emoe::bench

#endif  // BENCH_SERVE_RUN_H_
