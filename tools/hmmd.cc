// hmmd: the HBM Management daemon. Creates the devices and their arenas, optionally loads a
// checkpoint (each tensor read from disk once, replicas by peer-to-peer copy), then serves the
// protocol of hbm/server.h (attach / list / stats / release for instances; load / copy_group /
// apply_copies / find / describe / release_* / kv_* for a controller) on a UNIX socket until
// SIGINT or SIGTERM.
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
// Start-up: with --populate, what the devices can hold (each device's capacity, over its arenas)
// is faulted in before serving, in chunks, with progress logged and (launched) sent to the
// launcher, which waits as long as progress comes. SIGTERM or SIGINT stops the daemon within
// about a second in any phase (waiting for the start message, populating, preloading, serving,
// a client's load in flight); a second one ends it at once. A launched daemon also stops when
// its launcher dies during start-up (PR_SET_PDEATHSIG, and the control connection's hang-up).
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

#include <cmath>
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
#include "hbm/server.h"
#include "tools/flag_checks.h"
#include "tools/hmm_flags.h"
#include "vmm/arena.h"

DEFINE_string(checkpoint, "",
              "safetensors file, or directory (with an index or shards), to load at start; "
              "empty: start with nothing loaded");
DEFINE_string(socket, "",
              "socket path; default $XDG_RUNTIME_DIR/emoe/hmmd.sock, "
              "/run/emoe/hmmd.sock as root, else /tmp/emoe-$UID/hmmd.sock");
// The device, arena, page and loader flags: tools/hmm_flags.h (shared with emoe, elasticmoe).
DEFINE_int32(control_fd, -1,
             "serve this inherited, connected socket as the control connection; stop when it "
             "closes");
DEFINE_bool(allow_writable, false,
            "testing only: create the weights and experts arenas unsealed (no "
            "F_SEAL_FUTURE_WRITE) and let clients map them writable");
// Connection admission (hbm/server.h "Admission").
DEFINE_int32(max_clients, emoe::hbm::ConnectionLimits{}.max_clients,
             "connections served at once (the control connection not counted)");
DEFINE_int32(max_clients_per_peer, emoe::hbm::ConnectionLimits{}.max_clients_per_peer,
             "connections of one process (SO_PEERCRED pid), at most --max_clients");
DEFINE_double(handshake_timeout_s, emoe::hbm::ConnectionLimits{}.handshake_timeout_s,
              "a connection whose first request is not answered OK within this is closed");
DEFINE_double(idle_timeout_s, emoe::hbm::ConnectionLimits{}.idle_timeout_s,
              "a connection idle this long that holds nothing (no KV memory, no attached "
              "arenas) is closed when a new one needs its slot; 0: never");
DEFINE_int32(test_populate_delay_ms, 0,
             "test hook only: sleep this long after each populated chunk (32 MiB), so that "
             "tests can see a slow start-up; 0 in production");

namespace {

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

// The admission flags, each checked by its name: "" when they are good.
std::string BadLimitFlag() {
  namespace t = emoe::tools;
  const vmm::Status s = t::FirstError({
      t::IntIn("max_clients", FLAGS_max_clients, 1, 1 << 16),
      t::IntIn("max_clients_per_peer", FLAGS_max_clients_per_peer, 1, FLAGS_max_clients),
      t::RealIn("handshake_timeout_s", FLAGS_handshake_timeout_s, 0, /*lo_open=*/true, 3600),
      t::RealIn("idle_timeout_s", FLAGS_idle_timeout_s, 0, /*lo_open=*/false, 86400),
  });
  return s.ok() ? "" : s.message();
}

// The daemon's options from the flags (exit code 2 and a message on stderr when one is bad).
std::optional<emoe::hbm::DaemonOptions> DaemonOptionsFromFlags() {
  if (const std::string bad = BadLimitFlag(); !bad.empty()) {
    std::fprintf(stderr, "hmmd: %s\n", bad.c_str());
    return std::nullopt;
  }
  auto hmm = emoe::tools::HmmOptionsFromFlags();
  if (!hmm.ok()) {
    std::fprintf(stderr, "hmmd: %s\n", hmm.status().message().c_str());
    return std::nullopt;
  }
  emoe::hbm::DaemonOptions d;
  if (FLAGS_test_populate_delay_ms < 0) {
    std::fprintf(stderr, "hmmd: --test_populate_delay_ms=%d must be >= 0\n",
                 FLAGS_test_populate_delay_ms);
    return std::nullopt;
  }
  if (FLAGS_control_fd >= 0) {
    struct stat st;
    if (fstat(FLAGS_control_fd, &st) != 0 || !S_ISSOCK(st.st_mode)) {
      std::fprintf(stderr, "hmmd: --control_fd=%d is not an open socket\n", FLAGS_control_fd);
      return std::nullopt;
    }
    fcntl(FLAGS_control_fd, F_SETFD, FD_CLOEXEC);
    d.control.Reset(FLAGS_control_fd);
  }
  d.hmm = std::move(*hmm);
  d.hmm.test_populate_chunk_delay_ms = FLAGS_test_populate_delay_ms;
  d.hmm.loader.progress = [](const emoe::hbm::LoadProgress& p) {
    LOG(INFO) << "load " << p.ToString();
  };
  d.checkpoint = FLAGS_checkpoint;
  d.socket_path = FLAGS_socket.empty() ? DefaultSocket() : FLAGS_socket;
  d.allow_writable = FLAGS_allow_writable;
  d.limits.max_clients = FLAGS_max_clients;
  d.limits.max_clients_per_peer = FLAGS_max_clients_per_peer;
  d.limits.handshake_timeout_s = FLAGS_handshake_timeout_s;
  d.limits.idle_timeout_s = FLAGS_idle_timeout_s;
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
  gflags::SetUsageMessage(
      "HBM Management daemon: owns model memory, serves zero-copy attach\n\nexit codes: 0 stopped "
      "(SIGINT, SIGTERM, its control connection closed); 1 an error; 2 a bad command line (the "
      "message names the flag; nothing was started)");
  if (auto rc = emoe::tools::ParseFlags("hmmd", &argc, &argv)) return *rc;
  // Block the stop signals before any thread starts (copy workers, client threads inherit the
  // mask), so that only RunDaemon's watcher receives them (signalfd).
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
