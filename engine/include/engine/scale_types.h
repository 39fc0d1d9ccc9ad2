// engine/scale_types.h: the vocabulary of scale events: the methods, their options, what an
// event reports, and one record of the serving timeline.
//
// Thread safety: plain values.
#ifndef ENGINE_SCALE_TYPES_H_
#define ENGINE_SCALE_TYPES_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "vmm/status.h"

namespace emoe::engine {

using vmm::Status;
using vmm::StatusOr;

enum class ScaleMethod {
  kElastic,      // this project
  kColdRestart,  // stop serving, reload from disk on the new devices, start
  kExtravagant,  // a new instance on fresh devices loaded from disk, then switch
  kColocated,    // a new instance on the new device set with its own copy (loaded from disk)
  kHorizontal,   // whole replicas of the first configuration added (from disk) or removed
};
const char* ScaleMethodName(ScaleMethod m);
// "[0,1,2]": how every scale message names a device set.
std::string DevicesText(const std::vector<int>& devices);
StatusOr<ScaleMethod> ParseScaleMethod(const std::string& name);

struct ScaleOptions {
  ScaleMethod method = ScaleMethod::kElastic;
  // Ablations of kElastic, one at a time.
  bool zero_copy = true;  // false: the new instance copies every tensor it uses
  bool p2p = true;        // false: new devices read what they need from disk
  bool preinit = true;    // false: boot the new instance on demand, not from the standby pool
  bool vm_remap = true;   // false: experts copied into one new contiguous buffer per layer
  // kElastic: instead of handing running requests over, let them finish on the old instance
  // (its own scheduler, stepped by the serving loop next to the new one) while new and waiting
  // requests go to the new instance; the old instance exits and its memory is freed once they
  // are done (phase "drain", after the switch; latency still ends at the switch).
  bool drain = false;
  // Fault injection for tests: fail the event right after this phase ("plan", "memory",
  // "instance"; "warmup" for the methods that run one: the baselines and horizontal), as if the
  // step had failed there. kElastic has no warm-up step: its standby is warm and its attach
  // populates what the first step reads.
  std::string fail_after;
  std::string Name() const;  // "elastic", "elastic-no-p2p", "cold-restart", ...
};
// The options a method name stands for (the inverse of ScaleOptions::Name): "elastic",
// "cold-restart", ... and the elastic ablations ("elastic-no-p2p", "-no-zero-copy",
// "-no-preinit", "-no-vm-remap", "-drain", combinable). kInvalidArgument for an unknown method
// or an ablation of a baseline, naming it. What elasticmoe --methods and the server's
// /scale_elastic_ep "method" read.
StatusOr<ScaleOptions> ParseScaleOptions(const std::string& name);

struct ScaleReport {
  std::string name;
  std::vector<int> from_devices, to_devices;
  double command_s = 0;   // on the coordinator's clock
  double latency_s = 0;   // command -> the new instance serving
  double downtime_s = 0;  // time no instance could serve
  std::map<std::string, double> phase_s;
  uint64_t bytes_remapped = 0;  // expert slot bytes mapped over existing pages
  uint64_t bytes_p2p = 0;       // device-to-device copies (weights, experts, KV)
  uint64_t bytes_disk = 0;      // read from the checkpoint
  uint64_t bytes_copied = 0;    // copied into private buffers (ablations)
  // The HMM's own time for the event's peer-to-peer copies (first chunk's start to last chunk's
  // end, hbm::CopyBatchReport::copy_s): bytes_p2p / p2p_copy_s is the copy bandwidth reached.
  double p2p_copy_s = 0;
  uint64_t arena_before = 0, arena_peak = 0, arena_after = 0;  // all devices, exact
  // PSS of the coordinator and its instance processes (sampled every 20 ms off the scaling
  // path): at the command and the peak.
  uint64_t pss_before_bytes = 0, pss_peak_bytes = 0;
  int64_t experts_moved = 0, experts_retained = 0;
  int requests_kept = 0, requests_kv_copied = 0, requests_recomputed = 0, requests_drained = 0;
  // KV given back ahead of the event so that it fits (all devices; grown back afterwards).
  uint64_t kv_shrunk_bytes = 0;
  // Cleanup steps that failed (a release or a KV resize after the switch or during a rollback):
  // each is logged naming what was not given back; serving is not affected.
  int cleanup_errors = 0;
  // What the switch waited for (phase part "switch:wait"): the steps that ended while it was
  // queued (at most the one in flight), the longest one's length and its tokens (prefill +
  // decode, all schedulers).
  int switch_steps_waited = 0;
  double switch_step_s = 0;
  int64_t switch_step_tokens = 0;
  std::string ToJson() const;
};

struct StepRecord {
  double t = 0;            // end of the step, coordinator clock
  int tokens = 0;          // tokens produced
  int replica_tokens = 0;  // of which by horizontal replicas (and draining old instances)
  int instance = 0;        // generation of the instance that ran it
};

}  // namespace emoe::engine

#endif  // ENGINE_SCALE_TYPES_H_
