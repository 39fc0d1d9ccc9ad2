// hmmd: the HBM Management daemon. Creates the devices and their arenas, loads a checkpoint
// (each tensor read from disk once, replicas by peer-to-peer copy), then serves attach / list /
// stats / release on a UNIX socket (see hbm/server.h) until SIGINT or SIGTERM.
//
//   hmmd --checkpoint=DIR_OR_FILE [--socket=PATH] [--devices_per_node=2]
//        [--device_capacity_mb=0] [--weights_mb=512] [--experts_mb=512] [--kv_mb=0]
//
// Placement: tensors whose name contains ".experts.<e>." go to device e mod N (expert
// parallelism); every other tensor is replicated on all devices. After setup the daemon drops
// every capability it does not need and says which it kept.
#include <gflags/gflags.h>
#include <glog/logging.h>
#include <signal.h>
#include <sys/capability.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <regex>
#include <string>

#include "hbm/hmm.h"
#include "hbm/server.h"

DEFINE_string(checkpoint, "", "safetensors file, or directory (with an index or shards)");
DEFINE_string(socket, "",
              "socket path; default $XDG_RUNTIME_DIR/emoe/hmmd.sock, "
              "/run/emoe/hmmd.sock as root, else /tmp/emoe-$UID/hmmd.sock");
DEFINE_int32(devices_per_node, 1, "devices per NUMA node");
DEFINE_uint64(device_capacity_mb, 0, "capacity per device in MiB (0: node memory / devices)");
DEFINE_uint64(weights_mb, 512, "weights arena per device, MiB");
DEFINE_uint64(experts_mb, 512, "experts arena per device, MiB");
DEFINE_uint64(kv_mb, 0, "KV arena per device, MiB");
DEFINE_string(page_size, "auto", "arena pages: auto, hugetlb, thp, 4k");
DEFINE_uint32(queue_depth, 32, "io_uring reads in flight");
DEFINE_uint64(chunk_kb, 1024, "bytes per read, KiB");
DEFINE_bool(direct_io, true, "O_DIRECT reads where possible");
DEFINE_bool(allow_writable, false, "let clients map arenas writable (testing only)");

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

}  // namespace

int main(int argc, char** argv) {
  gflags::SetUsageMessage("HBM Management daemon: owns model memory, serves zero-copy attach");
  gflags::ParseCommandLineFlags(&argc, &argv, true);
  // Block the stop signals before any thread starts (copy workers, client threads inherit the
  // mask), so that only the sigwait below receives them.
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGINT);
  sigaddset(&stop, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);
  FLAGS_logtostderr = true;
  google::InitGoogleLogging(argv[0]);
  if (FLAGS_checkpoint.empty()) {
    std::fprintf(stderr, "hmmd: --checkpoint is required (see --help)\n");
    return 2;
  }
  auto policy = vmm::ParsePageSizePolicy(FLAGS_page_size);
  if (!policy.ok()) {
    std::fprintf(stderr, "hmmd: --page_size: %s\n", policy.status().message().c_str());
    return 2;
  }
  emoe::hbm::HmmOptions o;
  o.devices.devices_per_node = FLAGS_devices_per_node;
  o.devices.capacity_bytes = FLAGS_device_capacity_mb << 20;
  o.memory.usage_bytes = {FLAGS_weights_mb << 20, FLAGS_experts_mb << 20, FLAGS_kv_mb << 20};
  o.memory.page_size = *policy;
  o.loader.queue_depth = FLAGS_queue_depth;
  o.loader.chunk_bytes = FLAGS_chunk_kb << 10;
  o.loader.direct_io = FLAGS_direct_io;
  o.loader.progress = [](const emoe::hbm::LoadProgress& p) {
    LOG(INFO) << "load " << p.ToString();
  };

  auto ckpt = emoe::hbm::OpenCheckpoint(FLAGS_checkpoint);
  if (!ckpt.ok()) {
    LOG(ERROR) << ckpt.status().ToString();
    return 1;
  }
  auto hmm = emoe::hbm::Hmm::Create(o);
  if (!hmm.ok()) {
    LOG(ERROR) << hmm.status().ToString();
    return 1;
  }
  const int n = (*hmm)->num_devices();
  for (int d = 0; d < n; ++d) {
    const auto& arena = (*hmm)->device(d).arena(emoe::hbm::Usage::kWeights);
    LOG(INFO) << (*hmm)->device(d).spec().ToString()
              << (arena ? std::string(", pages ") + vmm::PageKindName(arena->kind()) : "")
              << (arena && !arena->fallback_reason().empty()
                      ? " (fallback: " + arena->fallback_reason() + ")"
                      : "");
  }
  const std::regex expert(R"(\.experts\.(\d+)\.)");
  auto placement = [&](const emoe::hbm::TensorInfo& t) {
    std::smatch m;
    if (std::regex_search(t.name, m, expert)) {
      return emoe::hbm::PlacementDecision{
          emoe::hbm::Usage::kExperts, {std::stoi(m[1].str()) % n}, "expert" + m[1].str()};
    }
    emoe::hbm::PlacementDecision all{emoe::hbm::Usage::kWeights, {}, ""};
    for (int d = 0; d < n; ++d) all.devices.push_back(d);
    return all;
  };
  auto report = (*hmm)->LoadCheckpoint(*ckpt, placement);
  if (!report.ok()) {
    LOG(ERROR) << "load " << FLAGS_checkpoint << ": " << report.status().ToString();
    return 1;
  }
  LOG(INFO) << "loaded: " << report->ToString();

  emoe::hbm::ServerOptions so;
  so.socket_path = FLAGS_socket.empty() ? DefaultSocket() : FLAGS_socket;
  so.allow_writable = FLAGS_allow_writable;
  const std::string dir = so.socket_path.substr(0, so.socket_path.rfind('/'));
  if (!dir.empty()) mkdir(dir.c_str(), 0700);  // the runtime directory, private
  emoe::hbm::HmmServer server(hmm->get(), so);
  if (auto s = server.Start(); !s.ok()) {
    LOG(ERROR) << s.ToString();
    return 1;
  }
  DropCapabilities();
  LOG(INFO) << "serving on " << so.socket_path << " (mode 0600, uid " << geteuid() << " only)";
  std::printf("%s", (*hmm)->Report().c_str());
  std::fflush(stdout);
  int sig = 0;
  sigwait(&stop, &sig);
  LOG(INFO) << "signal " << sig << ": stopping after " << server.requests_served() << " requests";
  server.Stop();
  return 0;
}
