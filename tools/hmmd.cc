// hmmd: the HBM Management daemon. Creates the devices and their arenas, optionally loads a
// checkpoint (each tensor read from disk once, replicas by peer-to-peer copy), then serves the
// protocol of hbm/server.h (attach / list / stats / release for instances; load / copy_group /
// find / release_* / kv_* for a controller) on a UNIX socket until SIGINT or SIGTERM.
//
//   hmmd [--checkpoint=DIR_OR_FILE] [--socket=PATH] [--devices_per_node=2] [--nodes=0,1]
//        [--device_capacity_mb=0] [--weights_mb=512] [--experts_mb=512] [--kv_mb=0]
//        [--control_fd=N] ...
//
// Preload (--checkpoint): a model directory (with config.json) is placed by the engine's one
// rule (engine/deployment.h: DeploymentTable over every device under the initial round-robin
// expert placement), so each expert of each layer is an extent of its own, as when a coordinator
// loads it, and can be remapped one layer at a time. A bare safetensors file names no model: its
// tensors are placed by name, expert e of layer l (".layers.<l>." and ".experts.<e>.") on device
// e mod N as group "layer<l>.expert<e>", every other tensor on all devices. Without --checkpoint
// the daemon starts empty and a controller loads (hbm/remote_control.h).
//
// --control_fd=N: N is a connected SOCK_SEQPACKET socket inherited from the launcher
// (hbm::RemoteHmmControl::Launch). Its first message carries the daemon's HmmOptions as JSON
// ({"op":"start",...}); the device, arena and loader flags are then checked but not used. After
// that it is served like any client; when it closes, hmmd stops as on SIGTERM, so a launcher that
// dies never leaves a daemon holding device memory. The daemon itself is hbm::RunDaemon
// (hbm/daemon.h).
//
// After setup the daemon drops every capability it does not need and says which it kept. Logs go
// to stderr; stdout carries only the memory report after a preload.
#include <fcntl.h>
#include <gflags/gflags.h>
#include <glog/logging.h>
#include <signal.h>
#include <sys/capability.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <memory>
#include <numeric>
#include <optional>
#include <regex>
#include <string>
#include <vector>

#include "engine/deployment.h"
#include "hbm/daemon.h"
#include "hbm/hmm.h"
#include "vmm/arena.h"

DEFINE_string(checkpoint, "",
              "safetensors file, or directory (with an index or shards), to load at start; "
              "empty: start with nothing loaded");
DEFINE_string(socket, "",
              "socket path; default $XDG_RUNTIME_DIR/emoe/hmmd.sock, "
              "/run/emoe/hmmd.sock as root, else /tmp/emoe-$UID/hmmd.sock");
DEFINE_int32(devices_per_node, 1, "devices per NUMA node");
DEFINE_string(nodes, "", "NUMA nodes to use, comma separated (default: every node with memory)");
DEFINE_bool(pin_cpus, false, "give every device CPUs of its own (refused if too few)");
DEFINE_uint64(device_capacity_mb, 0, "capacity per device in MiB (0: node memory / devices)");
DEFINE_uint64(weights_mb, 512, "weights arena per device, MiB");
DEFINE_uint64(experts_mb, 512, "experts arena per device, MiB");
DEFINE_uint64(kv_mb, 0, "KV arena per device, MiB");
DEFINE_string(page_size, "auto", "arena pages: auto, hugetlb, thp, 4k");
DEFINE_bool(populate, false, "fault every arena page in at start (resident device memory)");
DEFINE_bool(discard_on_free, false, "punch freed arena pages out (memory back to the kernel)");
DEFINE_uint32(queue_depth, 32, "io_uring reads in flight");
DEFINE_uint64(chunk_kb, 1024, "bytes per read, KiB");
DEFINE_bool(direct_io, true, "O_DIRECT reads where possible");
DEFINE_bool(register_buffers, true, "register load destinations with io_uring (READ_FIXED)");
DEFINE_double(progress_interval_s, 1.0, "seconds between load progress lines on stderr");
DEFINE_int32(copy_threads, 0, "peer-to-peer copy threads per device (0: one per CPU, at most 8)");
DEFINE_int32(control_fd, -1,
             "serve this inherited, connected socket as the control connection; stop when it "
             "closes");
DEFINE_bool(allow_writable, false, "let clients map arenas writable (testing only)");

namespace {

// "0,2,3" -> {0, 2, 3}; "" -> {}. False on anything else.
bool ParseIntList(const std::string& s, std::vector<int>* out) {
  out->clear();
  if (s.empty()) return true;
  size_t pos = 0;
  for (;;) {
    const size_t comma = s.find(',', pos);
    const std::string item = s.substr(pos, comma == std::string::npos ? comma : comma - pos);
    if (item.empty() || item.size() > 9 ||
        item.find_first_not_of("0123456789") != std::string::npos) {
      return false;
    }
    out->push_back(std::stoi(item));
    if (comma == std::string::npos) return true;
    pos = comma + 1;
  }
}

std::string DefaultSocket() {
  if (const char* xdg = std::getenv("XDG_RUNTIME_DIR")) return std::string(xdg) + "/emoe/hmmd.sock";
  if (geteuid() == 0) return "/run/emoe/hmmd.sock";
  return "/tmp/emoe-" + std::to_string(geteuid()) + "/hmmd.sock";
}

// Keeps only CAP_IPC_LOCK (locking arena memory) of the capabilities held; reports what it did.
void DropCapabilities() {
  cap_t now = cap_get_proc();
  cap_flag_value_t has_ipc_lock = CAP_CLEAR;
  if (now != nullptr) cap_get_flag(now, CAP_IPC_LOCK, CAP_PERMITTED, &has_ipc_lock);
  cap_t keep = cap_init();
  std::string kept = "none";
  if (has_ipc_lock == CAP_SET) {
    const cap_value_t v[] = {CAP_IPC_LOCK};
    cap_set_flag(keep, CAP_PERMITTED, 1, v, CAP_SET);
    cap_set_flag(keep, CAP_EFFECTIVE, 1, v, CAP_SET);
    kept = "CAP_IPC_LOCK";
  }
  if (cap_set_proc(keep) != 0) {
    LOG(WARNING) << "could not drop capabilities: " << strerror(errno);
  } else {
    LOG(INFO) << "dropped capabilities; kept: " << kept;
  }
  cap_free(keep);
  if (now != nullptr) cap_free(now);
}

// The daemon's options from the flags (exit code 2 and a message on stderr when one is bad).
// One function, so that the shared device/arena/page flags can replace it in one place.
std::optional<emoe::hbm::DaemonOptions> DaemonOptionsFromFlags() {
  auto policy = vmm::ParsePageSizePolicy(FLAGS_page_size);
  if (!policy.ok()) {
    std::fprintf(stderr, "hmmd: --page_size: %s\n", policy.status().message().c_str());
    return std::nullopt;
  }
  std::vector<int> nodes;
  if (!ParseIntList(FLAGS_nodes, &nodes)) {
    std::fprintf(stderr, "hmmd: --nodes: '%s' is not a comma-separated list of node ids\n",
                 FLAGS_nodes.c_str());
    return std::nullopt;
  }
  emoe::hbm::DaemonOptions d;
  if (FLAGS_control_fd >= 0) {
    struct stat st;
    if (fstat(FLAGS_control_fd, &st) != 0 || !S_ISSOCK(st.st_mode)) {
      std::fprintf(stderr, "hmmd: --control_fd=%d is not an open socket\n", FLAGS_control_fd);
      return std::nullopt;
    }
    fcntl(FLAGS_control_fd, F_SETFD, FD_CLOEXEC);
    d.control.Reset(FLAGS_control_fd);
  }
  emoe::hbm::HmmOptions& o = d.hmm;
  o.devices.devices_per_node = FLAGS_devices_per_node;
  o.devices.capacity_bytes = FLAGS_device_capacity_mb << 20;
  o.devices.pin_cpus = FLAGS_pin_cpus;
  o.devices.nodes = nodes;
  o.memory.usage_bytes = {FLAGS_weights_mb << 20, FLAGS_experts_mb << 20, FLAGS_kv_mb << 20};
  o.memory.page_size = *policy;
  o.memory.populate = FLAGS_populate;
  o.memory.discard_on_free = FLAGS_discard_on_free;
  o.loader.queue_depth = FLAGS_queue_depth;
  o.loader.chunk_bytes = FLAGS_chunk_kb << 10;
  o.loader.direct_io = FLAGS_direct_io;
  o.loader.register_buffers = FLAGS_register_buffers;
  o.loader.progress_interval_s = FLAGS_progress_interval_s;
  o.loader.progress = [](const emoe::hbm::LoadProgress& p) {
    LOG(INFO) << "load " << p.ToString();
  };
  o.copy_threads_per_device = FLAGS_copy_threads;
  d.checkpoint = FLAGS_checkpoint;
  d.socket_path = FLAGS_socket.empty() ? DefaultSocket() : FLAGS_socket;
  d.allow_writable = FLAGS_allow_writable;
  return d;
}

// Preload: see the header comment.
emoe::hbm::PlacementFn PreloadByName(int n) {
  return [n, layer = std::regex(R"(\.layers\.(\d+)\.)"),
          expert = std::regex(R"(\.experts\.(\d+)\.)")](const emoe::hbm::TensorInfo& t) {
    std::smatch l, e;
    if (std::regex_search(t.name, e, expert)) {
      const std::string lyr = std::regex_search(t.name, l, layer) ? l[1].str() : "0";
      return emoe::hbm::PlacementDecision{emoe::hbm::Usage::kExperts,
                                          {std::stoi(e[1].str()) % n},
                                          "layer" + lyr + ".expert" + e[1].str()};
    }
    emoe::hbm::PlacementDecision all{emoe::hbm::Usage::kWeights, {}, ""};
    for (int d = 0; d < n; ++d) all.devices.push_back(d);
    return all;
  };
}

emoe::hbm::PlacementFn PreloadPlacement(const std::string& checkpoint, int n) {
  auto config = emoe::engine::LoadModelConfig(checkpoint);
  if (!config.ok()) {
    LOG(INFO) << "preload: " << checkpoint << " names no model (" << config.status().message()
              << "): tensors placed by name";
    return PreloadByName(n);
  }
  std::vector<int> devices(n);
  std::iota(devices.begin(), devices.end(), 0);
  auto placement =
      emoe::experts::InitialPlacement(config->num_hidden_layers, config->num_experts, devices);
  if (!placement.ok()) {
    LOG(WARNING) << "preload: " << placement.status().ToString() << ": tensors placed by name";
    return PreloadByName(n);
  }
  auto table = std::make_shared<const emoe::hbm::PlacementTable>(
      emoe::engine::DeploymentTable(emoe::engine::ExpectedTensors(*config), devices, *placement));
  return [table](const emoe::hbm::TensorInfo& t) {
    auto it = table->find(t.name);
    return it == table->end() ? emoe::hbm::PlacementDecision{} : it->second;
  };
}

}  // namespace

int main(int argc, char** argv) {
  gflags::SetUsageMessage("HBM Management daemon: owns model memory, serves zero-copy attach");
  gflags::ParseCommandLineFlags(&argc, &argv, true);
  // Block the stop signals before any thread starts (copy workers, client threads inherit the
  // mask), so that only RunDaemon's sigwait receives them.
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGINT);
  sigaddset(&stop, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);
  FLAGS_logtostderr = true;
  google::InitGoogleLogging(argv[0]);
  std::optional<emoe::hbm::DaemonOptions> options = DaemonOptionsFromFlags();
  if (!options) return 2;
  const std::string checkpoint = options->checkpoint;
  options->preload_placement = [checkpoint](int n) { return PreloadPlacement(checkpoint, n); };
  options->after_setup = DropCapabilities;
  return emoe::hbm::RunDaemon(std::move(*options), stop);
}
