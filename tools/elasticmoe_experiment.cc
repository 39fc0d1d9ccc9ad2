// The elastic-scaling experiment (elasticmoe_experiment.h).
#include "tools/elasticmoe_experiment.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <thread>

#include "engine/model.h"
#include "tools/elasticmoe_measure.h"
#include "tools/elasticmoe_report.h"
#include "tools/elasticmoe_sizing.h"
#include "tools/hmm_session.h"
#include "vmm/host.h"
#include "vmm/mutex.h"
#include "vmm/stats.h"

namespace emoe::tools {
namespace {

// What the node must keep beyond the populated devices: instance processes, page tables, the
// private copies of the copying ablations' instances, the rest of the machine.
constexpr uint64_t kHeadroomBytes = 1ull << 30;

using engine::Coordinator;
using engine::ScaleOptions;
using engine::ScaleReport;
using vmm::Status;
using vmm::StatusOr;

double Seconds(std::chrono::steady_clock::time_point since) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - since).count();
}

// Copy bandwidth of this host (the copy-bound limit of a scale event is the bytes the new
// devices must receive divided by it), GB/s; printed.
double MeasureCopyBandwidth() {
  std::vector<uint8_t> a(256 << 20, 1), b(256 << 20, 2);
  vmm::CopyBytes(b.data(), a.data(), a.size());  // fault both in
  double best = 1e9;
  for (int i = 0; i < 3; ++i) {
    const auto t = std::chrono::steady_clock::now();
    vmm::CopyBytes(b.data(), a.data(), a.size());
    best = std::min(best, Seconds(t));
  }
  const double gbs = a.size() / best / 1e9;
  std::printf("copy bandwidth: %.1f GB/s (256 MiB memcpy, best of 3)\n", gbs);
  return gbs;
}

// The closed-loop load: `concurrency` requests in flight, a new one when one finishes. A
// request the coordinator refuses or rejects counts as failed when the load sees it (within a
// few milliseconds).
class ClosedLoop {
 public:
  ClosedLoop(Coordinator* c, const ExperimentOptions& o)
      : thread_([this, c, &o] {
          int64_t id = 0;
          while (!stop_) {
            for (auto& r : c->TakeFinished()) {
              if (!r.served()) Failed(r.finish_reason);
            }
            // At most `concurrency` submissions a round, and none once stopped: requests that
            // are rejected as fast as they are made (a prompt too long for the model) keep
            // outstanding() below the target, and this loop must still see stop_.
            for (int n = 0;
                 !stop_ && n < o.concurrency && static_cast<int>(c->outstanding()) < o.concurrency;
                 ++n) {
              engine::Request r;
              r.id = id++;
              for (int t = 0; t < o.prompt_tokens; ++t) r.prompt.push_back((id * 31 + t * 7) % 256);
              r.max_new_tokens = o.output_tokens;
              if (Status s = c->Submit(r); !s.ok()) {
                Failed("refused: " + s.ToString());
                break;  // not in flight: try again after the pause
              }
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(2));
          }
        }) {}
  ~ClosedLoop() { Stop(); }
  void Stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  // After Stop(): waits for the requests still in flight (as long as they make progress; 30 s
  // without any is a stuck run, reported by the serving errors) and counts those not served, so
  // that a run's total does not depend on where its last window ended.
  void Finish(Coordinator* c) {
    auto last_change = std::chrono::steady_clock::now();
    size_t left = c->outstanding();
    while (left > 0 && std::chrono::steady_clock::now() - last_change < std::chrono::seconds(30)) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
      if (const size_t now = c->outstanding(); now != left) {
        left = now;
        last_change = std::chrono::steady_clock::now();
      }
    }
    for (auto& r : c->TakeFinished()) {
      if (!r.served()) Failed(r.finish_reason);
    }
  }
  int failed() const { return failed_.load(); }
  std::string first_failure() const EXCLUDES(mu_) {
    vmm::MutexLock l(&mu_);
    return first_failure_;
  }

 private:
  void Failed(const std::string& why) EXCLUDES(mu_) {
    {
      vmm::MutexLock l(&mu_);
      if (first_failure_.empty()) first_failure_ = why;
    }
    ++failed_;
  }

  std::atomic<bool> stop_{false};
  std::atomic<int> failed_{0};
  mutable vmm::Mutex mu_;
  std::string first_failure_ GUARDED_BY(mu_);
  std::thread thread_;  // last: starts once the counters exist
};

struct Done {
  ScaleReport rep;
  int position = 0;           // the schedule entry it scaled to
  int failed = 0;             // in the event's window
  int failed_cumulative = 0;  // since the method started, at the end of the window
  std::string error;
};

// Requests the load saw fail plus serving steps that failed, since the method started.
int FailedSoFar(const Coordinator& c, const ClosedLoop& load) {
  return load.failed() + c.serving_errors();
}

// The schedule's events on `c` under the load, each followed by settle_s of serving; each
// event's window runs from the end of the previous one (its preparation, its command) to the end
// of its settle, so that windows neither overlap nor leave gaps and a failure counts in one event
// only. An error that ends the method leaves the events done
// before it in *reps.
Status RunEvents(const ExperimentOptions& o, size_t mi, Coordinator& c, const ClosedLoop& load,
                 std::vector<Done>* reps) {
  const ScaleOptions& method = o.methods[mi];
  for (size_t e = 1; e < o.schedule.size(); ++e) {
    const int failed0 = FailedSoFar(c, load);  // where the previous window ended
    // The pool anticipates the next event (the devices ScaleTo will pick).
    VMM_ASSIGN_OR_RETURN(const std::vector<int> to, c.TargetDevices(o.schedule[e]));
    if (method.preinit) (void)c.PrepareStandby(to);
    const std::vector<int> from = c.devices();
    auto rep = c.ScaleTo(o.schedule[e], method);
    Done d;
    d.position = static_cast<int>(e);
    if (rep.ok()) {
      d.rep = *rep;
    } else {
      // A refused or rolled-back event is a result: the old configuration keeps serving.
      d.rep.from_devices = from;
      d.rep.to_devices = to;
      d.error = rep.status().ToString();
      std::fprintf(stderr, "elasticmoe: %s %zu->%zu: %s\n", o.method_names[mi].c_str(), from.size(),
                   to.size(), d.error.c_str());
    }
    std::this_thread::sleep_for(std::chrono::duration<double>(o.settle_s));
    d.failed_cumulative = FailedSoFar(c, load);
    d.failed = d.failed_cumulative - failed0;
    reps->push_back(std::move(d));
  }
  return Status::Ok();
}

// The rows of one run's events, measured on its timeline in the fixed windows; the done ones go to
// events_at.
void AddRows(const ExperimentOptions& o, const std::string& name, int run, double copy_gbs,
             const Coordinator& c, const std::vector<engine::StepRecord>& tl,
             const std::vector<Done>& reps, std::ofstream& events_at, std::vector<EventRow>* rows) {
  for (const Done& d : reps) {
    EventRow row;
    row.method = name;
    row.run = run;
    row.position = d.position;
    row.rep = d.rep;
    row.error = d.error;
    row.failed = d.failed;
    row.failed_cumulative = d.failed_cumulative;
    if (!d.error.empty()) {
      rows->push_back(row);
      continue;
    }
    const ScaleReport& rep = d.rep;
    const double t0 = rep.command_s, t1 = rep.command_s + rep.latency_s;
    const WindowThroughput w = EventWindows(tl, t0, o.window_s);
    row.before_tps = w.before_tps;
    row.during_tps = w.during_tps;
    row.after_tps = w.after_tps;
    row.step_s = w.step_s;
    row.copy_bound_s = CopyBoundSeconds(rep, copy_gbs);
    row.max_gap_s = c.MaxTokenGap(t0, t1 + 0.5);
    events_at << row.method << "," << t0 << "," << t1 << "," << rep.from_devices.size() << "->"
              << rep.to_devices.size() << "," << run << "\n";
    rows->push_back(row);
  }
}

// What each device holds (used bytes), by device.
StatusOr<std::map<int, uint64_t>> Held(hbm::HmmControl* hmm) {
  VMM_ASSIGN_OR_RETURN(auto stats, hmm->Stats());
  std::map<int, uint64_t> held;
  for (const auto& st : stats) held[st.device] = st.used_bytes;
  return held;
}

// What every run shares: the model, the HMM, the output streams, the rows and the summary.
struct RunContext {
  const engine::ModelConfig& config;
  const hbm::Checkpoint& ckpt;
  HmmSession& hmm;
  std::ofstream& timeline;
  std::ofstream& events_at;
  std::vector<EventRow>* rows;
  RunSummary* sum;  // failed_requests and first_failure are added to
};

// The instance binary of method `mi` ("" : instances in this process): the two ablations that
// copy weights into the instance's own memory always run in-process.
std::string InstanceBinary(const ExperimentOptions& o, size_t mi) {
  const ScaleOptions& m = o.methods[mi];
  return o.instance_processes && m.zero_copy && m.vm_remap ? o.instance_binary : std::string();
}

bool NeedsInProcessHmm(const ExperimentOptions& o, size_t mi) {
  return InstanceBinary(o, mi).empty() || !o.hmmd;
}

// One run of one method over the whole schedule, from empty arenas back to them, on a fresh
// coordinator. The requests that failed under it go to ctx.sum (and its first failure when it
// had none); an error that ends it still leaves the rows of the events done before it.
Status RunMethod(const ExperimentOptions& o, size_t mi, int run, RunContext& ctx) {
  const std::string& name = o.method_names[mi];
  HmmSession& hmm = ctx.hmm;
  engine::CoordinatorOptions co;
  co.instance.compute_share = o.compute_share;
  co.scheduler.max_tokens_per_step = o.max_tokens_per_step;
  co.scheduler.chunked_prefill = o.chunked_prefill;
  co.instance_binary = InstanceBinary(o, mi);
  VMM_RETURN_IF_ERROR(hmm.Use(NeedsInProcessHmm(o, mi)));
  std::fprintf(stderr, "elasticmoe: %s: instances %s, HMM %s (run %d of %d)\n", name.c_str(),
               co.instance_binary.empty()
                   ? "in this process"
                   : ("in processes of their own (" + co.instance_binary + ")").c_str(),
               hmm.in_process() ? "in this process" : "in hmmd", run + 1, o.repeat);
  co.kv_bytes_per_device = o.hmm.memory.usage_bytes[static_cast<int>(hbm::Usage::kKv)];
  if (!o.hmmd_socket.empty()) co.record_namespace = "elasticmoe-" + std::to_string(getpid()) + "/";
  // What the devices hold before this method (others' records in a shared hmmd): it must all
  // come back to this after the method.
  VMM_ASSIGN_OR_RETURN(auto held0, Held(hmm.get()));
  std::vector<int> start;
  for (int d = 0; d < o.schedule[0]; ++d) start.push_back(d);
  VMM_ASSIGN_OR_RETURN(std::unique_ptr<Coordinator> coord,
                       Coordinator::Create(hmm.get(), ctx.ckpt, ctx.config, start, co));
  std::vector<Done> reps;
  Status ran;
  {
    ClosedLoop load(coord.get(), o);
    std::this_thread::sleep_for(std::chrono::duration<double>(o.settle_s));
    ran = RunEvents(o, mi, *coord, load, &reps);
    load.Stop();
    if (ran.ok()) load.Finish(coord.get());  // after an error, what is in flight is lost anyway
    ctx.sum->failed_requests += FailedSoFar(*coord, load);
    std::string& first = ctx.sum->first_failure;
    if (first.empty()) first = load.first_failure();
    if (first.empty() && coord->serving_errors() > 0) first = "a serving step";
  }
  const auto tl = coord->Timeline();
  for (const auto& s : tl) {
    ctx.timeline << name << "," << s.t << "," << s.tokens << "," << s.replica_tokens << ","
                 << s.instance << "," << run << "\n";
  }
  AddRows(o, name, run, ctx.sum->copy_gbs, *coord, tl, reps, ctx.events_at, ctx.rows);
  VMM_RETURN_IF_ERROR(ran);
  // The next method starts from the same devices: everything this one held must come back.
  coord.reset();  // gives back everything it created
  VMM_ASSIGN_OR_RETURN(const auto held, Held(hmm.get()));
  for (const auto& [device, used] : held) {
    if (used != held0[device]) {
      return Status::Internal(name + " (run " + std::to_string(run + 1) + ") left " +
                              std::to_string(used - held0[device]) + " bytes on device " +
                              std::to_string(device));
    }
  }
  return Status::Ok();
}

// The HMM of every method: in hmmd or in this process, whichever the method needs (one at a
// time, so that the devices' memory exists once); its line goes to stdout with the reports.
HmmSessionOptions SessionOptions(const ExperimentOptions& o) {
  HmmSessionOptions s;
  s.hmm = o.hmm;
  s.hmmd_binary = o.hmmd_binary;
  s.hmmd_socket = o.hmmd_socket;
  s.hmmd_flags = o.hmmd_flags;
  s.prog = "elasticmoe";
  s.report = stdout;
  return s;
}

// The model the experiment serves: --model, or --preset generated into out_dir/model.
Status OpenModel(const ExperimentOptions& o, engine::ModelConfig* config, hbm::Checkpoint* ckpt) {
  std::string model = o.model;
  if (model.empty()) {
    model = o.out_dir + "/model";
    VMM_ASSIGN_OR_RETURN(auto cfg, engine::PresetConfig(o.preset));
    const auto t = std::chrono::steady_clock::now();
    VMM_RETURN_IF_ERROR(engine::GenerateModel(cfg, {}, model));
    std::printf("model: preset %s generated into %s in %.1f s\n", o.preset.c_str(), model.c_str(),
                Seconds(t));
  }
  VMM_ASSIGN_OR_RETURN(*config, engine::LoadModelConfig(model));
  VMM_ASSIGN_OR_RETURN(*ckpt, hbm::OpenCheckpoint(model));
  return engine::ValidateCheckpoint(*config, *ckpt);
}

// The devices of the run: o.hmm with what o.auto_size names sized from the model and the
// schedule (elasticmoe_sizing.h), printed; then, when hmmd or this process populates them, the
// check that every node can hold its devices.
StatusOr<hbm::HmmOptions> SizedHmmOptions(const ExperimentOptions& o,
                                          const engine::ModelConfig& config,
                                          const hbm::Checkpoint& ckpt) {
  hbm::HmmOptions h = o.hmm;
  auto& usage = h.memory.usage_bytes;
  const int kw = static_cast<int>(hbm::Usage::kWeights),
            ke = static_cast<int>(hbm::Usage::kExperts), kk = static_cast<int>(hbm::Usage::kKv);
  const int nodes = static_cast<int>(h.devices.nodes.size());
  std::string capacity_why;  // what sized the capacity, when it was sized
  if (o.auto_size.any()) {
    SizingInput in;
    in.model = SizingModelOf(config, ckpt);
    in.schedule = o.schedule;
    in.methods = o.methods;
    in.method_names = o.method_names;
    in.concurrency = o.concurrency;
    in.tokens_per_request = o.prompt_tokens + o.output_tokens;
    const Sizing s = SizeDevices(in);
    if (o.auto_size.capacity) capacity_why = s.capacity_why;
    if (o.auto_size.devices) h.devices.devices_per_node = (s.devices + nodes - 1) / nodes;
    if (o.auto_size.weights) usage[kw] = s.weights_arena_bytes;
    if (o.auto_size.experts) usage[ke] = s.experts_arena_bytes;
    if (o.auto_size.kv) usage[kk] = s.kv_bytes;
    if (o.auto_size.capacity) {
      h.devices.capacity_bytes =
          std::min(usage[kw] + usage[ke] + usage[kk], s.capacity_bytes - s.kv_bytes + usage[kk]);
    }
    std::printf(
        "devices sized from the model and the schedule (the device flags left at their defaults; "
        "given ones are kept): %d devices (%s) x %" PRIu64
        " MiB (for %s); the %d-device "
        "configuration holds weights %" PRIu64 " + experts %" PRIu64 " + KV %" PRIu64
        " MiB; arenas reserved: weights %" PRIu64 ", experts %" PRIu64 ", KV %" PRIu64 " MiB\n",
        h.devices.devices_per_node * nodes, s.devices_why.c_str(), h.devices.capacity_bytes >> 20,
        s.capacity_why.c_str(), s.smallest_config, s.steady_weights_bytes >> 20,
        s.steady_experts_bytes >> 20, usage[kk] >> 20, usage[kw] >> 20, usage[ke] >> 20,
        usage[kk] >> 20);
  }
  const int devices = h.devices.devices_per_node * nodes;
  if (o.schedule.size() > 0 && *std::max_element(o.schedule.begin(), o.schedule.end()) > devices) {
    return Status::InvalidArgument("--schedule " + engine::DevicesText(o.schedule) +
                                   " needs more than the " + std::to_string(devices) +
                                   " devices of --max_devices");
  }
  if (h.memory.populate && o.hmmd_socket.empty()) {
    const uint64_t populated =
        std::min(h.devices.capacity_bytes, usage[kw] + usage[ke] + usage[kk]);
    for (int node : h.devices.nodes) {
      VMM_ASSIGN_OR_RETURN(const NodeMemory mem, NodeAvailableBytes(node));
      VMM_RETURN_IF_ERROR(
          CheckFits(h.devices.devices_per_node, populated, capacity_why, mem, kHeadroomBytes));
      std::printf("node %d: %d x %" PRIu64
                  " MiB populated of %.1f GiB it can give (free %.1f + "
                  "reclaimable page cache %.1f GiB)\n",
                  node, h.devices.devices_per_node, populated >> 20,
                  mem.available_bytes() / double(1ull << 30), mem.free_bytes / double(1ull << 30),
                  mem.reclaimable_bytes / double(1ull << 30));
    }
  }
  return h;
}

}  // namespace

StatusOr<int> RunElasticMoe(const ExperimentOptions& options) {
  std::error_code ec;
  std::filesystem::create_directories(options.out_dir, ec);
  if (ec) {
    return Status::Internal("cannot create --out_dir " + options.out_dir + ": " + ec.message());
  }
  ExperimentOptions o = options;  // with the devices sized
  RunSummary sum;
  sum.repeat = o.repeat;
  sum.window_s = o.window_s;
  engine::ModelConfig config;
  hbm::Checkpoint ckpt;
  std::vector<EventRow> rows;
  sum.status = OpenModel(o, &config, &ckpt);
  if (sum.status.ok()) {
    auto sized = SizedHmmOptions(o, config, ckpt);
    if (sized.ok()) o.hmm = *sized;
    sum.status = sized.status();
  }
  if (sum.status.ok()) {
    sum.copy_gbs = MeasureCopyBandwidth();
    std::ofstream timeline(o.out_dir + "/timeline.csv");
    timeline << "method,t_s,tokens,replica_tokens,instance,run\n";
    std::ofstream events_at(o.out_dir + "/events_at.csv");
    events_at << "method,command_s,serving_s,event,run\n";
    HmmSession hmm(SessionOptions(o));  // one set of devices for all methods
    RunContext ctx{config, ckpt, hmm, timeline, events_at, &rows, &sum};
    std::vector<bool> in_process;
    for (size_t mi = 0; mi < o.methods.size(); ++mi) in_process.push_back(NeedsInProcessHmm(o, mi));
    for (int run = 0; run < o.repeat && sum.status.ok(); ++run) {
      for (size_t mi : RunOrder(in_process, run)) {
        sum.method = o.method_names[mi];
        sum.status = RunMethod(o, mi, run, ctx);
        if (!sum.status.ok()) break;
      }
    }
  }
  // The reports are written whatever happened: what was measured, and the error if one ended it.
  WriteEvents(rows, sum, o.out_dir);
  if (!rows.empty()) {
    PrintComparison(rows, sum.copy_gbs);
    WritePlot(rows, o.method_names, o.out_dir);
  }
  std::printf("reports: %s/events.json, events.csv, timeline.csv\n", o.out_dir.c_str());
  if (sum.failed_requests > 0) {
    std::fprintf(stderr, "elasticmoe: %d requests failed or were rejected (the first: %s)\n",
                 sum.failed_requests, sum.first_failure.c_str());
  }
  if (!sum.status.ok()) return sum.status;
  return sum.failed_requests;
}

}  // namespace emoe::tools
