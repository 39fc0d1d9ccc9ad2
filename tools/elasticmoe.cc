// elasticmoe: the elastic-scaling experiment (#5). Serves a steady closed-loop load on a
// generated (or given) MoE model, runs a schedule of scale events with each method (ElasticMoE,
// its ablations, and the cold-restart / extravagant / colocated / horizontal baselines), and
// writes, per event: scale latency, downtime, peak memory (exact arena bytes and process PSS),
// bytes remapped / copied P2P / read from disk, per-phase times, throughput before / during /
// after, the largest gap between two tokens of a request, and failed requests. Outputs: a table on
// stdout, events.json, events.csv, timeline.csv and (with gnuplot) throughput.png.
//
// This file reads the flags (the device, arena and page flags are tools/hmm_flags.h's, with
// this binary's defaults); the experiment is elasticmoe_experiment.cc, the outputs
// elasticmoe_report.cc.
//
// Exit codes (tools/flag_checks.h): 0 every method ran its schedule and no request failed; 1 an
// error ended the run (the reports are still written, with the error); 2 a bad flag (named; nothing
// started); 3 the run completed but requests failed or were rejected (their count per event is in
// the reports).
#include <gflags/gflags.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "engine/model.h"
#include "tools/elasticmoe_experiment.h"
#include "tools/flag_checks.h"
#include "tools/hmm_flags.h"
#include "vmm/host.h"

DEFINE_string(model, "", "model directory; empty: generate --preset into --out_dir/model");
DEFINE_string(preset, "scale", "preset generated when --model is empty");
DEFINE_string(out_dir, "elastic_out", "where the reports, the timeline and the plot go");
DEFINE_string(methods,
              "elastic,elastic-no-zero-copy,elastic-no-p2p,elastic-no-preinit,"
              "elastic-no-vm-remap,cold-restart,extravagant,colocated,horizontal",
              "comma-separated scale methods to compare");
DEFINE_string(schedule, "2,3,4,3,2,4,2",
              "device counts: start, then one scale event per entry (horizontal scaling refuses "
              "counts that are not a multiple of the first; its next event starts from where it "
              "is)");
DEFINE_int32(concurrency, 8, "requests kept in flight (closed loop), 1..4096");
DEFINE_int32(prompt_tokens, 24, "prompt length of each request, 1..1048576");
DEFINE_int32(output_tokens, 48, "tokens generated per request, 1..1048576");
DEFINE_int32(max_tokens_per_step, 512, "token budget of one serving step, 1..1048576");
DEFINE_bool(enable_chunked_prefill, false,
            "prefill a prompt larger than what a step's budget has left over several steps "
            "(bounds the step in flight that a switchover waits for)");
DEFINE_double(settle_s, 6.0,
              "seconds of serving before each event and after the last, 0..3600; at least 2 x "
              "--window_s (an event's after window must end before the next one's before "
              "window starts)");
DEFINE_double(window_s, 3.0,
              "the fixed throughput windows around every event, the same for every method, "
              "seconds in (0, 1800]: before = [command - W, command], during = [command, command "
              "+ W], after = [command + W, command + 2W]; throughput kept = during / before");
DEFINE_int32(repeat, 3,
             "runs of each method's schedule, 1..100 (a fresh coordinator each; each round runs "
             "every method once); the tables give mean +- std over the runs");
DEFINE_double(compute_share, 0.5, "device compute share in (0, 1] (DESIGN 4.4); 1 disables it");
DEFINE_bool(instance_processes, true,
            "run each instance in a process of its own (emoe_instance) that attaches to the HMM "
            "through its socket (DESIGN 4.1); the two ablations that copy weights into the "
            "instance's own memory always run in-process");
DEFINE_string(instance_binary, "", "the instance binary; empty: emoe_instance next to this one");
DEFINE_bool(hmmd, true,
            "run the HMM in hmmd, a daemon process of its own that elasticmoe starts and drives "
            "over a control socket, and that instances attach to (DESIGN 4.1); methods whose "
            "instances run in this process (the two copying ablations, or "
            "--instance_processes=false) use an HMM in this process instead");
DEFINE_string(hmmd_binary, "", "the hmmd binary; empty: hmmd next to this one");
DEFINE_string(hmmd_socket, "",
              "drive an hmmd that is already running (its socket) instead of starting one; its "
              "devices and arenas are used as they are (the device flags do not apply), and this "
              "run's records live under elasticmoe-<pid>/");
DEFINE_string(hmmd_flags, "",
              "more flags for the hmmd that elasticmoe starts, separated by spaces (e.g. "
              "\"--v=1\"); its device, arena and page flags do not apply (elasticmoe's do)");
// Older names of two HMM flags, kept so that existing command lines work.
DEFINE_int32(max_devices, 0,
             "devices in the HMM (extravagant needs old + new): the same as --devices_per_node "
             "(0, the default: sized from the schedule, see --device_mb)");
DEFINE_uint64(device_mb, 0,
              "memory per device, MiB: the same as --device_capacity_mb. Left at its default "
              "(0), it is sized from the model and the schedule, as are --max_devices, "
              "--weights_mb, --experts_mb and --kv_mb when left at theirs: devices for the "
              "largest configuration (extravagant: old + new), each holding the smallest "
              "configuration's share of the experts, the weights and a KV store of 320 MiB; the "
              "node must be able to hold them populated. A flag given is used as given");

namespace {

using emoe::tools::FirstError;
using vmm::Status;

int Fail(const Status& s) {
  std::fprintf(stderr, "elasticmoe: %s\n", s.ToString().c_str());
  return emoe::tools::kExitError;
}

int Usage(const Status& s) {
  std::fprintf(stderr, "elasticmoe: %s\n", s.message().c_str());
  return emoe::tools::kExitUsage;
}

// elasticmoe's defaults of the HMM flags: the device flags are sized from the model and the
// schedule when left at these (elasticmoe_sizing.h: for the scale preset and the default
// schedule, 7 devices of about 630 MiB with a KV store of 320 MiB, taking much of a device as on
// a GPU); all of it resident from the start so that no method pays first-touch faults.
emoe::tools::HmmFlagDefaults ElasticMoeHmmDefaults() {
  emoe::tools::HmmFlagDefaults d;
  d.devices_per_node = 7;
  d.device_capacity_mb = 0;
  d.weights_mb = 96;
  d.experts_mb = 1024;
  d.kv_mb = 320;
  d.populate = true;
  return d;
}

std::string Num(double v) {
  char b[32];
  std::snprintf(b, sizeof(b), "%g", v);
  return b;
}

// Whether --<flag> was left at its default (not on the command line).
bool AtDefault(const char* flag) {
  gflags::CommandLineFlagInfo info;
  return gflags::GetCommandLineFlagInfo(flag, &info) && info.is_default;
}

// The devices and arenas: the first NUMA node unless --nodes says otherwise; a capacity of 0
// is the sum of the arenas.
vmm::StatusOr<emoe::hbm::HmmOptions> HmmOptions() {
  VMM_RETURN_IF_ERROR(emoe::tools::ForwardFlagAlias("max_devices", "devices_per_node"));
  VMM_RETURN_IF_ERROR(emoe::tools::ForwardFlagAlias("device_mb", "device_capacity_mb"));
  VMM_ASSIGN_OR_RETURN(emoe::hbm::HmmOptions ho, emoe::tools::HmmOptionsFromFlags());
  if (ho.devices.nodes.empty()) ho.devices.nodes = {vmm::NumaNodes()[0].id};
  if (ho.devices.capacity_bytes == 0) {
    for (uint64_t b : ho.memory.usage_bytes) ho.devices.capacity_bytes += b;
  }
  return ho;
}

std::string BesideMe(const std::string& name) {
  std::error_code ec;
  return (std::filesystem::read_symlink("/proc/self/exe", ec).parent_path() / name).string();
}

// This binary's own flags, each checked under its own name (the HMM flags: HmmOptions).
Status CheckFlags() {
  namespace t = emoe::tools;
  struct stat st;
  return FirstError({
      t::Directory("model", FLAGS_model),
      FLAGS_model.empty() ? t::Named("preset", emoe::engine::PresetConfig(FLAGS_preset).status())
                          : Status::Ok(),
      t::NonEmpty("out_dir", FLAGS_out_dir),
      stat(FLAGS_out_dir.c_str(), &st) == 0 && !S_ISDIR(st.st_mode)
          ? Status::InvalidArgument("--out_dir: '" + FLAGS_out_dir + "' is not a directory")
          : Status::Ok(),
      t::List("methods", FLAGS_methods, ',', nullptr),
      t::IntIn("concurrency", FLAGS_concurrency, 1, 4096),
      t::IntIn("prompt_tokens", FLAGS_prompt_tokens, 1, 1 << 20),
      t::IntIn("output_tokens", FLAGS_output_tokens, 1, 1 << 20),
      t::IntIn("max_tokens_per_step", FLAGS_max_tokens_per_step, 1, 1 << 20),
      t::RealIn("settle_s", FLAGS_settle_s, 0, false, 3600),
      t::RealIn("window_s", FLAGS_window_s, 0, true, 1800),
      t::IntIn("repeat", FLAGS_repeat, 1, 100),
      FLAGS_settle_s < 2 * FLAGS_window_s
          ? vmm::Status::InvalidArgument(
                "--settle_s=" + Num(FLAGS_settle_s) + " is shorter than the " +
                Num(2 * FLAGS_window_s) +
                " s that the throughput windows need between events (2 x --window_s=" +
                Num(FLAGS_window_s) + "): raise --settle_s or lower --window_s")
          : Status::Ok(),
      t::RealIn("compute_share", FLAGS_compute_share, 0, true, 1),
      t::Executable("instance_binary", FLAGS_instance_binary),
      t::Executable("hmmd_binary", FLAGS_hmmd_binary),
      t::Socket("hmmd_socket", FLAGS_hmmd_socket),
  });
}

// The experiment's options from the flags; every error names its flag.
vmm::StatusOr<emoe::tools::ExperimentOptions> OptionsFromFlags() {
  VMM_RETURN_IF_ERROR(CheckFlags());
  emoe::tools::ExperimentOptions o;
  // The device flags left at their defaults are sized once the model is open.
  o.auto_size.devices = AtDefault("max_devices") && AtDefault("devices_per_node");
  o.auto_size.capacity = AtDefault("device_mb") && AtDefault("device_capacity_mb");
  o.auto_size.weights = AtDefault("weights_mb");
  o.auto_size.experts = AtDefault("experts_mb");
  o.auto_size.kv = AtDefault("kv_mb");
  // A running hmmd's devices are used as they are.
  if (!FLAGS_hmmd_socket.empty()) o.auto_size = {};
  if (!AtDefault("max_devices")) {
    VMM_RETURN_IF_ERROR(emoe::tools::IntIn("max_devices", FLAGS_max_devices, 1, 256));
  }
  VMM_ASSIGN_OR_RETURN(o.hmm, HmmOptions());
  // Entries are bounded by the devices (--max_devices; sized: by the most the HMM can have).
  const int max_devices =
      o.auto_size.devices ? 256 : o.hmm.devices.devices_per_node * o.hmm.devices.nodes.size();
  VMM_RETURN_IF_ERROR(
      emoe::tools::IntList("schedule", FLAGS_schedule, 1, max_devices, &o.schedule));
  if (o.schedule.size() < 2) {
    return Status::InvalidArgument("--schedule needs a start and at least one event, got '" +
                                   FLAGS_schedule + "'");
  }
  std::vector<std::string> methods;
  VMM_RETURN_IF_ERROR(emoe::tools::List("methods", FLAGS_methods, ',', &methods));
  for (const std::string& x : methods) {
    auto m = emoe::engine::ParseScaleOptions(x);
    if (!m.ok()) return emoe::tools::Named("methods", m.status());
    o.methods.push_back(*m);
    o.method_names.push_back(x);
  }
  o.instance_processes = FLAGS_instance_processes;
  o.instance_binary = FLAGS_instance_binary;
  if (o.instance_processes && o.instance_binary.empty())
    o.instance_binary = BesideMe("emoe_instance");
  o.hmmd = FLAGS_hmmd;
  o.hmmd_binary = FLAGS_hmmd_binary.empty() ? BesideMe("hmmd") : FLAGS_hmmd_binary;
  if (o.hmmd && o.instance_processes && access(o.hmmd_binary.c_str(), X_OK) != 0) {
    return Status::InvalidArgument("--hmmd_binary: '" + o.hmmd_binary +
                                   "' is not executable (or --hmmd=false)");
  }
  if (o.instance_processes && access(o.instance_binary.c_str(), X_OK) != 0) {
    return Status::InvalidArgument("--instance_binary: '" + o.instance_binary +
                                   "' is not executable (or --instance_processes=false)");
  }
  o.model = FLAGS_model;
  o.preset = FLAGS_preset;
  o.out_dir = FLAGS_out_dir;
  o.hmmd_socket = FLAGS_hmmd_socket;
  {
    std::istringstream flags(FLAGS_hmmd_flags);
    for (std::string f; flags >> f;) o.hmmd_flags.push_back(f);
  }
  o.concurrency = FLAGS_concurrency;
  o.prompt_tokens = FLAGS_prompt_tokens;
  o.output_tokens = FLAGS_output_tokens;
  o.max_tokens_per_step = FLAGS_max_tokens_per_step;
  o.chunked_prefill = FLAGS_enable_chunked_prefill;
  o.settle_s = FLAGS_settle_s;
  o.window_s = FLAGS_window_s;
  o.repeat = FLAGS_repeat;
  o.compute_share = FLAGS_compute_share;
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  gflags::SetUsageMessage("elastic-scaling experiment: serve, scale, compare methods" +
                          emoe::tools::ExitCodesHelp(/*requests=*/true));
  emoe::tools::SetHmmFlagDefaults(ElasticMoeHmmDefaults());
  if (auto rc = emoe::tools::ParseFlags("elasticmoe", &argc, &argv)) return *rc;
  auto o = OptionsFromFlags();
  if (!o.ok()) return Usage(o.status());
  auto failed = emoe::tools::RunElasticMoe(*o);
  if (!failed.ok()) return Fail(failed.status());
  return *failed > 0 ? emoe::tools::kExitRequestsFailed : emoe::tools::kExitOk;
}
