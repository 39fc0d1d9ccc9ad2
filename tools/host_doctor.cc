// host_doctor: reports what this host offers the serving system and how to enable what is missing.
//
//   host_doctor [--dir=/path] [--json] [--strict]
//
// Sections: NUMA nodes (CPUs, memory), the 2 MiB hugetlb pool (global and per node), shmem THP,
// io_uring (ring setup and supported opcodes), capabilities (libcap), O_DIRECT in --dir,
// vm.max_map_count. Then one verdict per feature: OK, DEGRADED (works, slower or limited) or
// MISSING, with the command that fixes it.
#include <fcntl.h>
#include <gflags/gflags.h>
#include <liburing.h>
#include <sys/capability.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "vmm/host.h"

DEFINE_string(dir, "/tmp", "directory in which to test O_DIRECT (where model files would live)");
DEFINE_bool(json, false, "print a JSON object instead of text");
DEFINE_bool(strict, false, "exit with status 1 when a feature is MISSING");

namespace {

struct Verdict {
  std::string feature;
  std::string state;  // OK, DEGRADED, MISSING
  std::string detail;
  std::string fix;  // command that enables it, "" if none needed
};

struct Report {
  std::vector<vmm::NumaNode> nodes;
  bool numa = false;
  vmm::HugePagePool pool;
  std::vector<vmm::HugePagePool> node_pools;
  vmm::ShmemThpMode thp;
  std::string thp_reason;
  bool thp_ok = false;
  std::string uring_error;
  std::vector<std::string> uring_ops;  // supported among the ones the loader uses
  int uring_supported = 0;
  int uring_last_op = 0;
  struct Cap {
    const char* name;
    cap_value_t value;
    const char* enables;
    bool effective = false, permitted = false;
  };
  std::vector<Cap> caps;
  std::string odirect;  // "" ok, else the error
  long max_map_count = -1;
  std::vector<Verdict> verdicts;
};

void ProbeUring(Report* r) {
  io_uring ring;
  const int ret = io_uring_queue_init(8, &ring, 0);
  if (ret < 0) {
    r->uring_error = std::string("io_uring_queue_init: ") + strerror(-ret);
    const std::string disabled = vmm::ReadSysFile("/proc/sys/kernel/io_uring_disabled");
    if (!disabled.empty() && disabled != "0") {
      r->uring_error += " (kernel.io_uring_disabled=" + disabled + ")";
    }
    return;
  }
  io_uring_probe* probe = io_uring_get_probe_ring(&ring);
  if (probe != nullptr) {
    r->uring_last_op = probe->last_op;
    for (int op = 0; op <= probe->last_op; ++op)
      r->uring_supported += io_uring_opcode_supported(probe, op);
    const std::pair<int, const char*> wanted[] = {{IORING_OP_READ, "READ"},
                                                  {IORING_OP_READV, "READV"},
                                                  {IORING_OP_READ_FIXED, "READ_FIXED"},
                                                  {IORING_OP_WRITE, "WRITE"},
                                                  {IORING_OP_OPENAT, "OPENAT"},
                                                  {IORING_OP_FSYNC, "FSYNC"},
                                                  {IORING_OP_STATX, "STATX"},
                                                  {IORING_OP_CLOSE, "CLOSE"}};
    for (auto [op, name] : wanted) {
      if (io_uring_opcode_supported(probe, op)) r->uring_ops.push_back(name);
    }
    io_uring_free_probe(probe);
  }
  io_uring_queue_exit(&ring);
}

void ProbeCaps(Report* r) {
  r->caps = {{"CAP_IPC_LOCK", CAP_IPC_LOCK,
              "mlock without RLIMIT_MEMLOCK limits; SHM_HUGETLB shared memory"},
             {"CAP_SYS_NICE", CAP_SYS_NICE,
              "memory policies on other processes' pages (MPOL_MF_MOVE_ALL), real-time priorities "
              "and pinning for serving threads"},
             {"CAP_SYS_ADMIN", CAP_SYS_ADMIN,
              "dropping page caches for cold-cache benchmarks, raising sysctls, page frame numbers "
              "in /proc/self/pagemap"}};
  cap_t caps = cap_get_proc();
  if (caps == nullptr) return;
  for (auto& c : r->caps) {
    cap_flag_value_t v = CAP_CLEAR;
    if (cap_get_flag(caps, c.value, CAP_EFFECTIVE, &v) == 0) c.effective = v == CAP_SET;
    if (cap_get_flag(caps, c.value, CAP_PERMITTED, &v) == 0) c.permitted = v == CAP_SET;
  }
  cap_free(caps);
}

void ProbeODirect(Report* r) {
  std::string path = FLAGS_dir + "/host_doctor.XXXXXX";
  std::vector<char> tmpl(path.begin(), path.end());
  tmpl.push_back('\0');
  const int fd = mkostemp(tmpl.data(), O_DIRECT | O_CLOEXEC);
  if (fd < 0) {
    r->odirect = std::string("open with O_DIRECT in ") + FLAGS_dir + ": " + strerror(errno);
    return;
  }
  unlink(tmpl.data());
  void* buf = nullptr;
  if (posix_memalign(&buf, 4096, 4096) == 0) {
    std::memset(buf, 0, 4096);
    if (pwrite(fd, buf, 4096, 0) != 4096) {
      r->odirect = std::string("O_DIRECT write in ") + FLAGS_dir + ": " + strerror(errno);
    }
    free(buf);
  }
  close(fd);
}

std::string Gib(long long bytes) {
  char b[32];
  std::snprintf(b, sizeof(b), "%.1f GiB", bytes / 1073741824.0);
  return b;
}

void Judge(Report* r) {
  auto add = [&](std::string f, std::string s, std::string d, std::string fix = "") {
    r->verdicts.push_back({std::move(f), std::move(s), std::move(d), std::move(fix)});
  };
  if (r->numa) {
    add("NUMA binding", "OK", std::to_string(r->nodes.size()) + " node(s) with memory");
  } else {
    add("NUMA binding", "DEGRADED", "libnuma reports no NUMA support; arenas are not bound",
        "boot a kernel with CONFIG_NUMA");
  }
  if (r->pool.available() > 0) {
    add("hugetlb 2M", "OK",
        std::to_string(r->pool.available()) + " of " + std::to_string(r->pool.total) +
            " huge pages available");
  } else {
    add("hugetlb 2M", "MISSING",
        "no free 2 MiB huge pages (vm.nr_hugepages=" + std::to_string(r->pool.total) + ")",
        "sysctl -w vm.nr_hugepages=1100");
  }
  if (r->thp_ok) {
    add("shmem THP 2M", "OK", "shmem_enabled=" + r->thp.global);
  } else {
    add("shmem THP 2M", r->pool.available() > 0 ? "DEGRADED" : "MISSING", r->thp_reason,
        "echo advise > /sys/kernel/mm/transparent_hugepage/shmem_enabled");
  }
  if (r->uring_error.empty()) {
    add("io_uring", "OK", std::to_string(r->uring_supported) + " opcodes supported");
  } else {
    add("io_uring", "MISSING", r->uring_error + "; the loader falls back to pread",
        "sysctl -w kernel.io_uring_disabled=0");
  }
  if (r->odirect.empty()) {
    add("O_DIRECT", "OK", "works in " + FLAGS_dir);
  } else {
    add("O_DIRECT", "DEGRADED", r->odirect + "; loads use buffered reads",
        "keep model files on a file system with O_DIRECT (ext4, xfs), not tmpfs/overlay");
  }
  if (r->max_map_count >= 262144) {
    add("vm.max_map_count", "OK", std::to_string(r->max_map_count));
  } else {
    add("vm.max_map_count", "DEGRADED",
        std::to_string(r->max_map_count) +
            ": each mapped slot costs up to 2 mappings; many experts x layers may exceed it",
        "sysctl -w vm.max_map_count=1048576");
  }
  std::string missing;
  for (const auto& c : r->caps) {
    if (!c.effective) missing += std::string(missing.empty() ? "" : ", ") + c.name;
  }
  if (missing.empty()) {
    add("capabilities", "OK", "CAP_IPC_LOCK, CAP_SYS_NICE, CAP_SYS_ADMIN held");
  } else {
    add("capabilities", "DEGRADED", "not held: " + missing,
        "run as root, or setcap cap_ipc_lock,cap_sys_nice+ep on the binary");
  }
}

std::string Json(const std::string& s) {
  std::string o = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') {
      o += '\\';
      o += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char b[8];
      std::snprintf(b, sizeof(b), "\\u%04x", c);
      o += b;
    } else {
      o += c;
    }
  }
  return o + "\"";
}

void PrintText(const Report& r) {
  std::printf("== NUMA (%s)\n", r.numa ? "libnuma" : "not available: one pseudo-node");
  for (const auto& n : r.nodes) {
    std::string cpus;
    for (int c : n.cpus) cpus += (cpus.empty() ? "" : ",") + std::to_string(c);
    std::printf("  node %d: cpus [%s], memory %s total, %s free\n", n.id, cpus.c_str(),
                Gib(n.mem_total_bytes).c_str(), Gib(n.mem_free_bytes).c_str());
  }
  std::printf("== hugetlb 2 MiB pool\n  global: total %ld, free %ld, reserved %ld, surplus %ld\n",
              r.pool.total, r.pool.free, r.pool.reserved, r.pool.surplus);
  for (size_t i = 0; i < r.node_pools.size(); ++i) {
    std::printf("  node %d: total %ld, free %ld\n", r.nodes[i].id, r.node_pools[i].total,
                r.node_pools[i].free);
  }
  std::printf("== shmem THP\n  shmem_enabled=%s, hugepages-2048kB/shmem_enabled=%s: %s\n",
              r.thp.global.c_str(), r.thp.size_2m.empty() ? "(absent)" : r.thp.size_2m.c_str(),
              r.thp_ok ? "usable" : r.thp_reason.c_str());
  std::printf("== io_uring\n");
  if (r.uring_error.empty()) {
    std::string ops;
    for (const auto& o : r.uring_ops) ops += " " + o;
    std::printf("  ring ok; %d of %d opcodes supported; loader opcodes:%s\n", r.uring_supported,
                r.uring_last_op + 1, ops.c_str());
  } else {
    std::printf("  unavailable: %s\n", r.uring_error.c_str());
  }
  std::printf("== capabilities (effective/permitted)\n");
  for (const auto& c : r.caps) {
    std::printf("  %-14s %s/%s  enables: %s\n", c.name, c.effective ? "yes" : "no",
                c.permitted ? "yes" : "no", c.enables);
  }
  std::printf("== O_DIRECT in %s: %s\n", FLAGS_dir.c_str(),
              r.odirect.empty() ? "works" : r.odirect.c_str());
  std::printf("== vm.max_map_count: %ld\n\n== verdict\n", r.max_map_count);
  for (const auto& v : r.verdicts) {
    std::printf("  %-17s %-9s %s\n", v.feature.c_str(), v.state.c_str(), v.detail.c_str());
    if (!v.fix.empty() && v.state != "OK") std::printf("  %-27s fix: %s\n", "", v.fix.c_str());
  }
}

void PrintJson(const Report& r) {
  std::printf("{\n  \"numa_available\": %s,\n  \"nodes\": [", r.numa ? "true" : "false");
  for (size_t i = 0; i < r.nodes.size(); ++i) {
    const auto& n = r.nodes[i];
    std::printf("%s\n    {\"id\": %d, \"cpus\": [", i ? "," : "", n.id);
    for (size_t c = 0; c < n.cpus.size(); ++c) std::printf("%s%d", c ? ", " : "", n.cpus[c]);
    std::printf("], \"mem_total_bytes\": %lld, \"mem_free_bytes\": %lld", n.mem_total_bytes,
                n.mem_free_bytes);
    if (i < r.node_pools.size()) {
      std::printf(", \"hugepages_total\": %ld, \"hugepages_free\": %ld", r.node_pools[i].total,
                  r.node_pools[i].free);
    }
    std::printf("}");
  }
  std::printf(
      "\n  ],\n  \"hugepages\": {\"total\": %ld, \"free\": %ld, \"reserved\": %ld, "
      "\"surplus\": %ld},\n",
      r.pool.total, r.pool.free, r.pool.reserved, r.pool.surplus);
  std::printf("  \"shmem_thp\": {\"global\": %s, \"size_2m\": %s, \"usable\": %s},\n",
              Json(r.thp.global).c_str(), Json(r.thp.size_2m).c_str(), r.thp_ok ? "true" : "false");
  std::printf(
      "  \"io_uring\": {\"available\": %s, \"error\": %s, \"opcodes_supported\": %d, "
      "\"loader_opcodes\": [",
      r.uring_error.empty() ? "true" : "false", Json(r.uring_error).c_str(), r.uring_supported);
  for (size_t i = 0; i < r.uring_ops.size(); ++i) {
    std::printf("%s%s", i ? ", " : "", Json(r.uring_ops[i]).c_str());
  }
  std::printf("]},\n  \"capabilities\": {");
  for (size_t i = 0; i < r.caps.size(); ++i) {
    std::printf("%s%s: {\"effective\": %s, \"permitted\": %s}", i ? ", " : "",
                Json(r.caps[i].name).c_str(), r.caps[i].effective ? "true" : "false",
                r.caps[i].permitted ? "true" : "false");
  }
  std::printf("},\n  \"o_direct\": {\"dir\": %s, \"works\": %s, \"error\": %s},\n",
              Json(FLAGS_dir).c_str(), r.odirect.empty() ? "true" : "false",
              Json(r.odirect).c_str());
  std::printf("  \"max_map_count\": %ld,\n  \"verdicts\": [", r.max_map_count);
  for (size_t i = 0; i < r.verdicts.size(); ++i) {
    const auto& v = r.verdicts[i];
    std::printf("%s\n    {\"feature\": %s, \"state\": %s, \"detail\": %s, \"fix\": %s}",
                i ? "," : "", Json(v.feature).c_str(), Json(v.state).c_str(),
                Json(v.detail).c_str(), Json(v.fix).c_str());
  }
  std::printf("\n  ]\n}\n");
}

}  // namespace

int main(int argc, char** argv) {
  gflags::SetUsageMessage(
      "reports NUMA, huge pages, THP, io_uring, capabilities, O_DIRECT and vm.max_map_count, "
      "with a verdict per feature and how to enable what is missing");
  gflags::ParseCommandLineFlags(&argc, &argv, true);
  Report r;
  r.numa = vmm::NumaAvailable();
  r.nodes = vmm::NumaNodes();
  r.pool = vmm::ReadHugePagePool(-1);
  if (r.numa) {
    for (const auto& n : r.nodes) r.node_pools.push_back(vmm::ReadHugePagePool(n.id));
  }
  r.thp = vmm::ReadShmemThpMode();
  r.thp_ok = vmm::ShmemThpUsable(&r.thp_reason);
  ProbeUring(&r);
  ProbeCaps(&r);
  ProbeODirect(&r);
  r.max_map_count = vmm::ReadMaxMapCount();
  Judge(&r);
  if (FLAGS_json) {
    PrintJson(r);
  } else {
    PrintText(r);
  }
  if (FLAGS_strict) {
    for (const auto& v : r.verdicts) {
      if (v.state == "MISSING") return 1;
    }
  }
  return 0;
}
