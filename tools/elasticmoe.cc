// elasticmoe: the elastic-scaling experiment (#5). Serves a steady closed-loop load on a
// generated (or given) MoE model, runs a schedule of scale events with each method (ElasticMoE,
// its ablations, and the cold-restart / extravagant / colocated / horizontal baselines), and
// writes, per event: scale latency, downtime, peak memory (exact arena bytes and process PSS),
// bytes remapped / copied P2P / read from disk, per-phase times, throughput before / during /
// after, the largest gap between two tokens of a request, and failed requests. Outputs: a table on
// stdout, events.json, events.csv, timeline.csv and (with gnuplot) throughput.png.
#include <gflags/gflags.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>

#include "engine/coordinator.h"
#include "engine/model.h"
#include "hbm/remote_control.h"
#include "vmm/host.h"
#include "vmm/stats.h"

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
DEFINE_int32(max_devices, 7, "devices in the HMM (extravagant needs old + new)");
DEFINE_uint64(device_mb, 640,
              "memory per device, MiB: bounds what its weights, experts and KV hold together "
              "(a method that needs a second copy on a device shrinks its KV ahead of time); 0: "
              "the sum of the arenas");
DEFINE_uint64(weights_mb, 96, "weights arena per device, MiB");
DEFINE_uint64(
    experts_mb, 1024,
    "experts arena per device, MiB (room for contiguous runs; --device_mb bounds what it holds)");
DEFINE_uint64(kv_mb, 320, "KV store per device, MiB (its arena is as large)");
DEFINE_string(page_size, "auto", "arena pages: auto, hugetlb, thp, 4k");
DEFINE_bool(populate, true,
            "fault all device memory in once at start (resident, like HBM), so that no method "
            "pays first-touch faults; false: arenas fill lazily");
DEFINE_int32(concurrency, 8, "requests kept in flight (closed loop)");
DEFINE_int32(prompt_tokens, 24, "prompt length of each request");
DEFINE_int32(output_tokens, 48, "tokens generated per request");
DEFINE_double(settle_s, 2.0, "seconds of serving before each event and after the last");
DEFINE_double(compute_share, 0.5, "device compute share (DESIGN 4.4); 1 disables it");
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

namespace {

using emoe::engine::Coordinator;
using emoe::engine::ScaleOptions;
using emoe::engine::ScaleReport;
using vmm::Status;
using vmm::StatusOr;

int Fail(const Status& s) {
  std::fprintf(stderr, "elasticmoe: %s\n", s.ToString().c_str());
  return 1;
}

StatusOr<ScaleOptions> ParseMethod(const std::string& name) {
  ScaleOptions o;
  std::string base = name;
  for (const char* abl : {"-drain", "-no-zero-copy", "-no-p2p", "-no-preinit", "-no-vm-remap"}) {
    const std::string a = abl;
    if (base.size() > a.size() && base.compare(base.size() - a.size(), a.size(), a) == 0) {
      base.resize(base.size() - a.size());
      if (a == "-no-zero-copy") o.zero_copy = false;
      if (a == "-no-p2p") o.p2p = false;
      if (a == "-no-preinit") o.preinit = false;
      if (a == "-no-vm-remap") o.vm_remap = false;
      if (a == "-drain") o.drain = true;
    }
  }
  VMM_ASSIGN_OR_RETURN(o.method, emoe::engine::ParseScaleMethod(base));
  if (o.method != emoe::engine::ScaleMethod::kElastic && o.Name() != name) {
    return Status::InvalidArgument("ablations apply to 'elastic' only: '" + name + "'");
  }
  return o;
}

struct EventRow {
  std::string method;
  ScaleReport rep;
  double before_tps = 0, during_tps = 0, after_tps = 0, max_gap_s = 0;
  int failed = 0;
  std::string error;  // set when the event was refused or rolled back (serving went on)
};

std::string JsonEscape(const std::string& in) {
  std::string out;
  for (char ch : in) {
    if (ch == '"' || ch == '\\') out += '\\';
    if (static_cast<unsigned char>(ch) >= 0x20) out += ch;
  }
  return out;
}

double Tps(const std::vector<emoe::engine::StepRecord>& tl, double t0, double t1) {
  if (t1 <= t0) return 0;
  int64_t n = 0;
  for (const auto& s : tl) {
    if (s.t > t0 && s.t <= t1) n += s.tokens;
  }
  return n / (t1 - t0);
}

}  // namespace

int main(int argc, char** argv) {
  gflags::SetUsageMessage("elastic-scaling experiment: serve, scale, compare methods");
  gflags::ParseCommandLineFlags(&argc, &argv, true);
  std::vector<int> schedule;
  {
    std::stringstream ss(FLAGS_schedule);
    std::string x;
    while (std::getline(ss, x, ',')) schedule.push_back(std::atoi(x.c_str()));
  }
  if (schedule.size() < 2) {
    return Fail(Status::InvalidArgument("--schedule needs a start and at least one event"));
  }
  for (int n : schedule) {
    if (n < 1 || n > FLAGS_max_devices) {
      return Fail(Status::InvalidArgument(
          "--schedule entry " + std::to_string(n) +
          " outside 1..--max_devices=" + std::to_string(FLAGS_max_devices)));
    }
  }
  auto beside_me = [](const std::string& name) {
    std::error_code ec;
    return (std::filesystem::read_symlink("/proc/self/exe", ec).parent_path() / name).string();
  };
  std::string instance_binary = FLAGS_instance_binary;
  if (FLAGS_instance_processes && instance_binary.empty()) {
    instance_binary = beside_me("emoe_instance");
  }
  const std::string hmmd_binary = FLAGS_hmmd_binary.empty() ? beside_me("hmmd") : FLAGS_hmmd_binary;
  if (FLAGS_hmmd && FLAGS_instance_processes && access(hmmd_binary.c_str(), X_OK) != 0) {
    return Fail(Status::NotFound("hmmd binary '" + hmmd_binary +
                                 "' is not executable (--hmmd_binary, or --hmmd=false)"));
  }
  if (FLAGS_instance_processes && access(instance_binary.c_str(), X_OK) != 0) {
    return Fail(Status::NotFound("instance binary '" + instance_binary +
                                 "' is not executable (--instance_binary, or "
                                 "--instance_processes=false)"));
  }
  std::vector<ScaleOptions> methods;
  std::vector<std::string> method_names;
  {
    std::stringstream ss(FLAGS_methods);
    std::string x;
    while (std::getline(ss, x, ',')) {
      auto o = ParseMethod(x);
      if (!o.ok()) return Fail(o.status());
      methods.push_back(*o);
      method_names.push_back(x);
    }
  }
  if (FLAGS_concurrency < 1 || FLAGS_prompt_tokens < 1 || FLAGS_output_tokens < 1) {
    return Fail(Status::InvalidArgument("--concurrency, --prompt_tokens, --output_tokens >= 1"));
  }
  auto policy = vmm::ParsePageSizePolicy(FLAGS_page_size);
  if (!policy.ok()) return Fail(policy.status());
  std::string cmd = "mkdir -p '" + FLAGS_out_dir + "'";
  if (std::system(cmd.c_str()) != 0) return Fail(Status::Internal("cannot create --out_dir"));
  std::string model = FLAGS_model;
  if (model.empty()) {
    model = FLAGS_out_dir + "/model";
    auto cfg = emoe::engine::PresetConfig(FLAGS_preset);
    if (!cfg.ok()) return Fail(cfg.status());
    if (auto s = emoe::engine::GenerateModel(*cfg, {}, model); !s.ok()) return Fail(s);
  }
  auto config = emoe::engine::LoadModelConfig(model);
  if (!config.ok()) return Fail(config.status());
  auto ckpt = emoe::hbm::OpenCheckpoint(model);
  if (!ckpt.ok()) return Fail(ckpt.status());
  if (auto s = emoe::engine::ValidateCheckpoint(*config, *ckpt); !s.ok()) return Fail(s);

  // Copy bandwidth of this host (the copy-bound limit of a scale event is the bytes the new
  // devices must receive divided by it).
  double copy_gbs = 0;
  {
    std::vector<uint8_t> a(256 << 20, 1), b(256 << 20, 2);
    vmm::CopyBytes(b.data(), a.data(), a.size());  // fault both in
    double best = 1e9;
    for (int i = 0; i < 3; ++i) {
      const auto t = std::chrono::steady_clock::now();
      vmm::CopyBytes(b.data(), a.data(), a.size());
      best = std::min(best,
                      std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count());
    }
    copy_gbs = a.size() / best / 1e9;
    std::printf("copy bandwidth: %.1f GB/s (256 MiB memcpy, best of 3)\n", copy_gbs);
  }
  std::vector<EventRow> rows;
  std::ofstream timeline(FLAGS_out_dir + "/timeline.csv");
  timeline << "method,t_s,tokens,replica_tokens,instance\n";
  std::ofstream events_at(FLAGS_out_dir + "/events_at.csv");
  events_at << "method,command_s,serving_s,event\n";
  // One set of devices for all methods: each method starts from empty arenas.
  emoe::hbm::HmmOptions ho;
  ho.devices.devices_per_node = FLAGS_max_devices;
  ho.devices.nodes = {vmm::NumaNodes()[0].id};
  ho.memory.usage_bytes = {FLAGS_weights_mb << 20, FLAGS_experts_mb << 20, FLAGS_kv_mb << 20};
  ho.memory.page_size = *policy;
  ho.memory.populate = FLAGS_populate;
  ho.devices.capacity_bytes =
      (FLAGS_device_mb ? FLAGS_device_mb : FLAGS_weights_mb + FLAGS_experts_mb + FLAGS_kv_mb) << 20;
  // The HMM: in hmmd or in this process, whichever the method needs (one at a time, so that
  // the devices' memory exists once).
  std::unique_ptr<emoe::hbm::Hmm> local_hmm;
  std::unique_ptr<emoe::hbm::HmmControl> hmm;
  auto use_hmm = [&](bool in_process) -> Status {
    if (hmm != nullptr && (local_hmm != nullptr) == in_process) return Status::Ok();
    hmm.reset();
    local_hmm.reset();
    const auto tc = std::chrono::steady_clock::now();
    std::string note, where;
    if (in_process) {
      VMM_ASSIGN_OR_RETURN(local_hmm, emoe::hbm::Hmm::Create(ho));
      hmm = std::make_unique<emoe::hbm::LocalHmmControl>(local_hmm.get());
      note = local_hmm->page_note();
      where = "in this process";
    } else {
      std::unique_ptr<emoe::hbm::RemoteHmmControl> remote;
      if (!FLAGS_hmmd_socket.empty()) {
        VMM_ASSIGN_OR_RETURN(remote, emoe::hbm::RemoteHmmControl::Connect(FLAGS_hmmd_socket));
        where = "in the running hmmd at " + FLAGS_hmmd_socket;
      } else {
        emoe::hbm::HmmdOptions hd;
        hd.binary = hmmd_binary;
        hd.hmm = ho;
        hd.extra_args = {"--minloglevel=1"};  // hmmd's warnings and errors only
        VMM_ASSIGN_OR_RETURN(remote, emoe::hbm::RemoteHmmControl::Launch(hd));
        where = "in hmmd (pid " + std::to_string(remote->pid()) + ")";
      }
      note = remote->page_note();
      hmm = std::move(remote);
    }
    VMM_ASSIGN_OR_RETURN(auto stats, hmm->Stats());
    const auto& ex = stats.at(0).usage[static_cast<int>(emoe::hbm::Usage::kExperts)];
    uint64_t arenas = 0;
    for (const auto& u : stats.at(0).usage) arenas += u.capacity_bytes;
    std::printf("HMM %s: %d devices x %" PRIu64 " MiB (%s pages%s) in %.1f s%s%s\n", where.c_str(),
                hmm->num_devices(), arenas >> 20, vmm::PageKindName(ex.kind),
                FLAGS_populate && FLAGS_hmmd_socket.empty() ? ", populated" : "",
                std::chrono::duration<double>(std::chrono::steady_clock::now() - tc).count(),
                note.empty() ? "" : "; ", note.c_str());
    std::fflush(stdout);
    return Status::Ok();
  };
  for (size_t mi = 0; mi < methods.size(); ++mi) {
    const ScaleOptions& method = methods[mi];
    emoe::engine::CoordinatorOptions co;
    co.instance.compute_share = FLAGS_compute_share;
    if (FLAGS_instance_processes && method.zero_copy && method.vm_remap) {
      co.instance_binary = instance_binary;
    }
    if (Status s = use_hmm(co.instance_binary.empty() || !FLAGS_hmmd); !s.ok()) return Fail(s);
    std::fprintf(stderr, "elasticmoe: %s: instances %s, HMM %s\n", method_names[mi].c_str(),
                 co.instance_binary.empty()
                     ? "in this process"
                     : ("in processes of their own (" + co.instance_binary + ")").c_str(),
                 local_hmm ? "in this process" : "in hmmd");
    co.kv_bytes_per_device = FLAGS_kv_mb << 20;
    if (!FLAGS_hmmd_socket.empty())
      co.record_namespace = "elasticmoe-" + std::to_string(getpid()) + "/";
    // What the devices hold before this method (others' records in a shared hmmd): it must all
    // come back to this after the method.
    std::map<int, uint64_t> held0;
    {
      auto st0 = hmm->Stats();
      if (!st0.ok()) return Fail(st0.status());
      for (const auto& st : *st0) held0[st.device] = st.used_bytes;
    }
    std::vector<int> start;
    for (int d = 0; d < schedule[0]; ++d) start.push_back(d);
    auto coord = Coordinator::Create(hmm.get(), *ckpt, *config, start, co);
    if (!coord.ok()) return Fail(coord.status());
    Coordinator& c = **coord;
    // The closed-loop load: `concurrency` requests in flight, a new one when one finishes.
    std::atomic<bool> stop{false};
    std::atomic<int> failed{0};
    std::thread load([&] {
      int64_t id = 0;
      while (!stop) {
        for (auto& r : c.TakeFinished()) {
          if (r.finish_reason.rfind("rejected", 0) == 0) ++failed;
        }
        while (static_cast<int>(c.outstanding()) < FLAGS_concurrency) {
          emoe::engine::Request r;
          r.id = id++;
          for (int t = 0; t < FLAGS_prompt_tokens; ++t) r.prompt.push_back((id * 31 + t * 7) % 256);
          r.max_new_tokens = FLAGS_output_tokens;
          if (!c.Submit(r).ok()) ++failed;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
      }
    });
    std::this_thread::sleep_for(std::chrono::duration<double>(FLAGS_settle_s));
    struct Done {
      ScaleReport rep;
      int failed = 0;
      std::string error;
    };
    std::vector<Done> reps;
    for (size_t e = 1; e < schedule.size(); ++e) {
      // The pool anticipates the next event (the devices ScaleTo will pick).
      auto to = c.TargetDevices(schedule[e]);
      if (!to.ok()) return Fail(to.status());
      if (method.preinit) (void)c.PrepareStandby(*to);
      const int failed0 = failed.load();
      const std::vector<int> from = c.devices();
      auto rep = c.ScaleTo(schedule[e], method);
      Done d;
      if (rep.ok()) {
        d.rep = *rep;
      } else {
        // A refused or rolled-back event is a result: the old configuration keeps serving.
        d.rep.from_devices = from;
        d.rep.to_devices = *to;
        d.error = rep.status().ToString();
        std::fprintf(stderr, "elasticmoe: %s %zu->%zu: %s\n", method_names[mi].c_str(), from.size(),
                     to->size(), d.error.c_str());
      }
      std::this_thread::sleep_for(std::chrono::duration<double>(FLAGS_settle_s));
      d.failed = failed.load() - failed0;
      reps.push_back(std::move(d));
    }
    stop = true;
    load.join();
    const auto tl = c.Timeline();
    for (const auto& s : tl) {
      timeline << method_names[mi] << "," << s.t << "," << s.tokens << "," << s.replica_tokens
               << "," << s.instance << "\n";
    }
    for (const Done& d : reps) {
      EventRow row;
      row.method = method_names[mi];
      row.rep = d.rep;
      row.error = d.error;
      row.failed = d.failed + c.serving_errors();
      if (!d.error.empty()) {
        rows.push_back(row);
        continue;
      }
      const ScaleReport& rep = d.rep;
      const double t0 = rep.command_s, t1 = rep.command_s + rep.latency_s;
      row.before_tps = Tps(tl, t0 - FLAGS_settle_s * 0.8, t0);
      // During: from the command to the new instance serving, at least 0.5 s (a few steps).
      row.during_tps = Tps(tl, t0, std::max(t1, t0 + 0.5));
      row.after_tps = Tps(tl, t1 + 0.2, t1 + FLAGS_settle_s * 0.9);
      row.max_gap_s = c.MaxTokenGap(t0, t1 + 0.5);
      events_at << row.method << "," << t0 << "," << t1 << "," << rep.from_devices.size() << "->"
                << rep.to_devices.size() << "\n";
      rows.push_back(row);
    }
    // The next method starts from the same devices: everything this one held must come back.
    coord->reset();  // gives back everything it created
    auto stats = hmm->Stats();
    if (!stats.ok()) return Fail(stats.status());
    for (const auto& st : *stats) {
      if (st.used_bytes != held0[st.device]) {
        return Fail(Status::Internal(method_names[mi] + " left " +
                                     std::to_string(st.used_bytes - held0[st.device]) +
                                     " bytes on device " + std::to_string(st.device)));
      }
    }
  }
  // Output: JSON, CSV and the table.
  std::ofstream js(FLAGS_out_dir + "/events.json");
  std::ofstream csv(FLAGS_out_dir + "/events.csv");
  csv << "method,event,latency_s,downtime_s,arena_before_mib,arena_peak_mib,arena_after_mib,"
         "pss_before_mib,pss_peak_mib,remapped_mib,p2p_mib,disk_mib,copied_mib,tps_before,tps_"
         "during,tps_after,"
         "max_token_gap_s,failed,experts_moved,kept,kv_copied,recomputed,kv_shrunk_mib,phases,"
         "error\n";
  js << "[\n";
  std::printf("\n%-26s %-6s %9s %9s %9s %9s %8s %8s %8s %7s %7s %7s %7s %8s %5s\n", "method",
              "event", "latency", "downtime", "peak MiB", "PSS +MiB", "remap", "p2p", "disk",
              "KV -MiB", "tps-pre", "during", "after", "max gap", "fail");
  for (size_t i = 0; i < rows.size(); ++i) {
    const EventRow& r = rows[i];
    const ScaleReport& p = r.rep;
    const std::string ev =
        std::to_string(p.from_devices.size()) + "->" + std::to_string(p.to_devices.size());
    std::string phases;
    for (const auto& [k, v] : p.phase_s) {
      char b[64];
      std::snprintf(b, sizeof(b), "%s%s=%.4f", phases.empty() ? "" : ";", k.c_str(), v);
      phases += b;
    }
    auto mib = [](uint64_t b) { return b / 1048576.0; };
    if (!r.error.empty()) {
      std::printf("%-26s %-6s not done, serving went on: %s\n", r.method.c_str(), ev.c_str(),
                  r.error.c_str());
      csv << r.method << "," << ev << ",,,,,,,,,,,,,,,," << r.failed << ",,,,,,,\"" << r.error
          << "\"\n";
      js << "  {\"method\":\"" << r.method << "\",\"event\":\"" << ev
         << "\",\"failed\":" << r.failed << ",\"error\":\"" << JsonEscape(r.error) << "\"}"
         << (i + 1 < rows.size() ? ",\n" : "\n");
      continue;
    }
    std::printf(
        "%-26s %-6s %8.3fs %8.4fs %9.1f %9.1f %8.1f %8.1f %8.1f %7.1f %7.1f %7.1f %7.1f %7.3fs "
        "%5d\n",
        r.method.c_str(), ev.c_str(), p.latency_s, p.downtime_s, mib(p.arena_peak),
        mib(p.pss_peak_bytes) - mib(p.pss_before_bytes), mib(p.bytes_remapped), mib(p.bytes_p2p),
        mib(p.bytes_disk), mib(p.kv_shrunk_bytes), r.before_tps, r.during_tps, r.after_tps,
        r.max_gap_s, r.failed);
    csv << r.method << "," << ev << "," << p.latency_s << "," << p.downtime_s << ","
        << mib(p.arena_before) << "," << mib(p.arena_peak) << "," << mib(p.arena_after) << ","
        << mib(p.pss_before_bytes) << "," << mib(p.pss_peak_bytes) << "," << mib(p.bytes_remapped)
        << "," << mib(p.bytes_p2p) << "," << mib(p.bytes_disk) << "," << mib(p.bytes_copied) << ","
        << r.before_tps << "," << r.during_tps << "," << r.after_tps << "," << r.max_gap_s << ","
        << r.failed << "," << p.experts_moved << "," << p.requests_kept << ","
        << p.requests_kv_copied << "," << p.requests_recomputed << "," << mib(p.kv_shrunk_bytes)
        << "," << phases << ",\n";
    js << "  {\"method\":\"" << r.method << "\",\"event\":\"" << ev
       << "\",\"tps_before\":" << r.before_tps << ",\"tps_during\":" << r.during_tps
       << ",\"tps_after\":" << r.after_tps << ",\"max_token_gap_s\":" << r.max_gap_s
       << ",\"failed\":" << r.failed << ",\"report\":" << p.ToJson() << "}"
       << (i + 1 < rows.size() ? ",\n" : "\n");
  }
  js << "]\n";
  js.close();
  csv.close();
  timeline.close();
  events_at.close();
  // Ratios against the baselines measured in this run, per event.
  std::map<std::string, const EventRow*> by;
  for (const EventRow& r : rows) {
    by[r.method + "|" + std::to_string(r.rep.from_devices.size()) + "->" +
       std::to_string(r.rep.to_devices.size())] = &r;
  }
  std::printf("\nElasticMoE against the baselines (same run, same load):\n");
  std::printf("%-6s %14s %16s %12s %14s %16s %16s %12s\n", "event", "lat vs cold", "lat/copy bound",
              "tput kept", "peak vs cold", "peak vs extrav.", "peak vs horiz.", "max gap");
  for (const EventRow& r : rows) {
    if (r.method != "elastic" || !r.error.empty()) continue;
    const std::string ev =
        std::to_string(r.rep.from_devices.size()) + "->" + std::to_string(r.rep.to_devices.size());
    auto done = [&](const std::string& key) -> const EventRow* {
      auto it = by.find(key);
      return it != by.end() && it->second->error.empty() ? it->second : nullptr;
    };
    const EventRow* cold = done("cold-restart|" + ev);
    const EventRow* ext = done("extravagant|" + ev);
    const EventRow* hor = done("horizontal|" + ev);
    char lat[32] = "-", pc[32] = "-", pe[32] = "-", ph[32] = "-";
    if (hor) {
      std::snprintf(ph, sizeof(ph), "%.1f%% below",
                    100.0 * (1 - double(r.rep.arena_peak) / hor->rep.arena_peak));
    }
    if (cold) std::snprintf(lat, sizeof(lat), "%.1fx lower", cold->rep.latency_s / r.rep.latency_s);
    if (cold) {
      std::snprintf(pc, sizeof(pc), "%+.1f%%",
                    100.0 * (double(r.rep.arena_peak) / cold->rep.arena_peak - 1));
    }
    if (ext) {
      std::snprintf(pe, sizeof(pe), "%.1f%% below",
                    100.0 * (1 - double(r.rep.arena_peak) / ext->rep.arena_peak));
    }
    const double bound = r.rep.bytes_p2p / (copy_gbs * 1e9);
    char cb[32] = "-";
    if (bound > 0) std::snprintf(cb, sizeof(cb), "%.1fx", r.rep.latency_s / bound);
    std::printf("%-6s %14s %16s %11.0f%% %14s %16s %16s %11.3fs\n", ev.c_str(), lat, cb,
                r.before_tps > 0 ? 100.0 * r.during_tps / r.before_tps : 0.0, pc, pe, ph,
                r.max_gap_s);
  }
  // The plot, when gnuplot is there.
  {
    std::ofstream gp(FLAGS_out_dir + "/throughput.gp");
    gp << "set terminal pngcairo size 1400," << 60 + 190 * ((methods.size() + 1) / 2)
       << "\nset output '" << FLAGS_out_dir
       << "/throughput.png'\nset datafile separator ','\nset multiplot layout "
       << (methods.size() + 1) / 2 << ",2 title 'throughput (tokens/s, 0.5 s bins); scale events "
       << "between the dashed lines'\n";
    for (size_t mi = 0; mi < methods.size(); ++mi) {
      gp << "set title '" << method_names[mi] << "'\nset yrange [0:*]\nunset arrow\n";
      for (const EventRow& r : rows) {
        if (r.method != method_names[mi]) continue;
        gp << "set arrow from " << r.rep.command_s << ", graph 0 to " << r.rep.command_s
           << ", graph 1 nohead dt 2 lc rgb 'red'\n";
        gp << "set arrow from " << r.rep.command_s + r.rep.latency_s << ", graph 0 to "
           << r.rep.command_s + r.rep.latency_s << ", graph 1 nohead dt 2 lc rgb 'blue'\n";
      }
      gp << "plot '" << FLAGS_out_dir << "/timeline.csv' using (strcol(1) eq '" << method_names[mi]
         << "' ? floor($2*2)/2 : 1/0):($3*2) smooth frequency with steps notitle\n";
    }
    gp << "unset multiplot\n";
  }
  if (std::system("command -v gnuplot >/dev/null 2>&1") == 0) {
    const std::string plot = "gnuplot '" + FLAGS_out_dir + "/throughput.gp'";
    if (std::system(plot.c_str()) == 0) {
      std::printf("\nplot: %s/throughput.png\n", FLAGS_out_dir.c_str());
    }
  } else {
    std::printf("\n(gnuplot not installed: %s/throughput.gp draws the plot)\n",
                FLAGS_out_dir.c_str());
  }
  std::printf("reports: %s/events.json, events.csv, timeline.csv\n", FLAGS_out_dir.c_str());
  return 0;
}
