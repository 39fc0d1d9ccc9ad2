// engine/serving_view.h: what a front end (the HTTP service) sees of serving while it runs: the
// tokens and results as they happen (ServingObserver), a snapshot of the load and the
// configuration (ServingSnapshot), and the scale event in progress (ScaleProgress). None of it
// waits for a scale event.
//
// Thread safety: plain values; the observer is called on the serving thread (see below).
#ifndef ENGINE_SERVING_VIEW_H_
#define ENGINE_SERVING_VIEW_H_

#include <cstdint>
#include <string>
#include <vector>

#include "engine/scheduler.h"

namespace emoe::engine {

// One token generated for request `id` at time `t` (the coordinator's clock).
struct TokenEvent {
  int64_t id = 0;
  int32_t token = 0;
  double t = 0;
};

// Told everything serving produces, on the serving thread, after every step (and after a
// cancellation or a rejection), never while a coordinator lock is held. It must return quickly
// (hand the data to another thread; never block on I/O) and must not call Scale/ScaleTo/
// RestartInstance/PrepareStandby. Submit and Cancel may be called from it.
class ServingObserver {
 public:
  virtual ~ServingObserver() = default;
  // The tokens of one step, in the order generated (a request's tokens in its order).
  virtual void OnTokens(const std::vector<TokenEvent>& tokens) = 0;
  // Requests finished, rejected, failed or cancelled since the last call; each request's
  // tokens were all passed to OnTokens before its result comes here.
  virtual void OnFinished(const std::vector<RequestResult>& results) = 0;
};

// The load and the configuration, as of the last step or task of the serving thread.
struct ServingSnapshot {
  double t = 0;                // when it was taken (coordinator clock)
  int generation = 0;          // the primary instance's generation (a new one at each switch)
  std::vector<int> devices;    // serving: the primary's and horizontal replicas' (sorted)
  std::vector<int> primary;    // the primary instance's devices (sorted)
  int64_t running = 0;         // requests with KV (decoding)
  int64_t waiting = 0;         // queued or preempted, including those not yet routed
  int64_t kv_blocks_used = 0;  // over the KV stores of the serving devices
  int64_t kv_blocks_total = 0;
  uint64_t kv_block_bytes = 0;  // bytes of one block (all layers, K and V)
  // The integral of devices.size() over the coordinator's clock from the start to `t`.
  double device_seconds = 0;
  // Seconds the serving thread spent stepping, from the start to `t` (coordinator clock): a
  // step runs on every device of the primary at once (DP attention + EP experts, in lockstep;
  // a compute share's idle after the step included), so its rate is each device's busy
  // fraction. Horizontal replicas step within the same steps.
  double busy_seconds = 0;
  std::string down;  // why nothing serves any more (MarkDown); empty while serving
  double kv_usage() const {
    return kv_blocks_total > 0 ? static_cast<double>(kv_blocks_used) / kv_blocks_total : 0.0;
  }
};

// The control operation in progress (Scale, ScaleTo, RestartInstance), if any.
struct ScaleProgress {
  bool scaling = false;
  std::string method;  // ScaleOptions::Name()
  std::vector<int> from_devices, to_devices;
  // The last phase that ended ("plan", "memory", "instance", "warmup", "switch", "drain", ...;
  // the order is the method's: engine/src/scale/); "" while the first runs.
  std::string phase;
  double since_s = 0;  // the command's time (coordinator clock)
};

}  // namespace emoe::engine

#endif  // ENGINE_SERVING_VIEW_H_
