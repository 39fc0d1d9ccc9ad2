// tools/elasticmoe_experiment.h: the elastic-scaling experiment (#5) behind the elasticmoe
// binary: one set of devices for all methods; per method, a coordinator serves a closed-loop
// load, runs the schedule of scale events, and must give back everything it took; the rows of
// every event then go to the reports (elasticmoe_report.h).
//
// Thread safety: RunElasticMoe is the whole program; call it once, from main(). It starts the
// load thread of each method itself and joins it before the next.
#ifndef TOOLS_ELASTICMOE_EXPERIMENT_H_
#define TOOLS_ELASTICMOE_EXPERIMENT_H_

#include <string>
#include <vector>

#include "engine/coordinator.h"
#include "hbm/hmm.h"
#include "vmm/status.h"

namespace emoe::tools {

struct ExperimentOptions {
  std::string model;    // model directory; empty: generate `preset` into out_dir/model
  std::string preset;   // the preset generated when `model` is empty
  std::string out_dir;  // the reports, the timeline and the plot
  std::vector<engine::ScaleOptions> methods;
  std::vector<std::string> method_names;  // as given, one per method
  std::vector<int> schedule;              // device counts: the start, then one event each
  // The devices and arenas (one set for all methods; each method starts from empty arenas).
  // memory.usage_bytes[kKv] is also each KV store's size.
  hbm::HmmOptions hmm;
  bool instance_processes = true;  // instances in processes of their own (emoe_instance)
  std::string instance_binary;     // with instance_processes
  bool hmmd = true;                // the HMM in hmmd, for methods whose instances run elsewhere
  std::string hmmd_binary;         // started when hmmd_socket is empty
  std::string hmmd_socket;         // a running hmmd to drive instead of starting one
  std::vector<std::string> hmmd_flags;  // more flags for the hmmd started (e.g. --v=1)
  int concurrency = 8;                  // requests in flight (closed loop)
  int prompt_tokens = 24;               // per request
  int output_tokens = 48;               // per request
  int max_tokens_per_step = 512;        // engine::SchedulerOptions
  bool chunked_prefill = false;         // likewise
  // Seconds of serving before each event and after the last. REQUIRES: >= 2 * window_s (the
  // next event's before window must not reach into this one's after window).
  double settle_s = 6.0;
  // The fixed throughput windows around every event, the same for every method (seconds):
  // before = [command - W, command], during = [command, command + W], after = [command + W,
  // command + 2W].
  double window_s = 3.0;
  int repeat = 3;              // runs of each method's schedule (a fresh coordinator each)
  double compute_share = 0.5;  // engine::InstanceOptions::compute_share
  // Which of hmm's device settings to size from the model and the schedule (their flags were
  // left at their defaults; elasticmoe_sizing.h); the others are used as given.
  struct AutoSize {
    bool devices = false;   // devices per node (--max_devices)
    bool capacity = false;  // device capacity (--device_mb)
    bool weights = false;   // weights arena (--weights_mb)
    bool experts = false;   // experts arena (--experts_mb)
    bool kv = false;        // KV arena and store (--kv_mb)
    bool any() const { return devices || capacity || weights || experts || kv; }
  } auto_size;
};

// One scale event of one run of one method, as measured. Its failure window runs from the end of
// the previous event's (the first: of the settle_s before it) to the end of the settle_s after
// it; its throughput windows are the fixed ones of ExperimentOptions::window_s.
struct EventRow {
  std::string method;
  int run = 0;       // 0..repeat-1
  int position = 0;  // 1..schedule.size()-1: the schedule entry it scaled to
  engine::ScaleReport rep;
  double before_tps = 0, during_tps = 0, after_tps = 0;  // tokens per second, fixed windows
  double step_s = 0;        // the mean decode step in the before window (0: unknown)
  double copy_bound_s = 0;  // what it moved at the run's memcpy bandwidth (CopyBoundSeconds)
  double max_gap_s = 0;     // the largest gap between two tokens of a request around the event
  // Requests that failed (rejected, or refused at submission) and serving steps that failed,
  // in this event's window; and since the method started, at the end of the window.
  int failed = 0;
  int failed_cumulative = 0;
  std::string error;  // set when the event was refused or rolled back (serving went on)
};

// How the whole run went, for the reports.
struct RunSummary {
  vmm::Status status;         // the error that ended the run, or Ok
  std::string method;         // the method running when it ended (with an error: the failed one)
  int failed_requests = 0;    // over every method, also outside the events' windows
  std::string first_failure;  // the first failed request's reason ("" when none failed)
  double copy_gbs = 0;        // memcpy bandwidth measured in the run (0: not measured)
  int repeat = 1;             // runs of each method
  double window_s = 0;        // the throughput windows
};

// Runs the experiment of `o` and writes its reports: the device sizing (with o.auto_size), the
// copy bandwidth and the HMM on stdout, then the events of every run of every method (the runs
// in rounds: each method once per round, in RunOrder of elasticmoe_measure.h); out_dir gets
// timeline.csv, events_at.csv, events.json, events.csv, throughput.gp (and throughput.png with
// gnuplot). Returns the number of requests that failed or were rejected (0: all served). An error
// stops it (a method that leaves memory behind is kInternal naming the device); the reports are
// then written all the same, with the events measured until then and the error. Devices that the
// node cannot hold (populated) are refused before anything starts (kResourceExhausted naming the
// numbers).
vmm::StatusOr<int> RunElasticMoe(const ExperimentOptions& o);

}  // namespace emoe::tools

#endif  // TOOLS_ELASTICMOE_EXPERIMENT_H_
