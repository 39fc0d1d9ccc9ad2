// Host facts read from /proc, /sys and libnuma. See vmm/host.h for the contract: every reader is
// cheap, never fails, and reports an unreadable value as -1 or "".
//
// Files read:
//   /sys/kernel/mm/hugepages/hugepages-2048kB/{nr,free,resv,surplus}_hugepages   global pool
//   /sys/devices/system/node/nodeN/hugepages/hugepages-2048kB/...                 per-node pool
//   /sys/kernel/mm/transparent_hugepage/shmem_enabled                             global THP mode
//   /sys/kernel/mm/transparent_hugepage/hugepages-2048kB/shmem_enabled            2 MiB override
//   /proc/sys/vm/max_map_count, /proc/meminfo (when libnuma is unavailable)
#include "vmm/host.h"

#include <errno.h>
#include <fcntl.h>
#include <numa.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

namespace vmm {

namespace {

constexpr char kHugeDir[] = "/sys/kernel/mm/hugepages/hugepages-2048kB/";
constexpr char kThpShmem[] = "/sys/kernel/mm/transparent_hugepage/shmem_enabled";
constexpr char kThpShmem2M[] = "/sys/kernel/mm/transparent_hugepage/hugepages-2048kB/shmem_enabled";

// The directory holding one pool's counters: global when node < 0.
std::string HugePageDir(int node) {
  if (node < 0) return kHugeDir;
  return "/sys/devices/system/node/node" + std::to_string(node) + "/hugepages/hugepages-2048kB/";
}

// A file holding one decimal number, or -1 when it is absent or not a number.
long ReadLong(const std::string& path) {
  const std::string s = ReadSysFile(path);
  if (s.empty()) return -1;
  char* end = nullptr;
  errno = 0;
  const long v = std::strtol(s.c_str(), &end, 10);
  return end == s.c_str() || errno != 0 ? -1 : v;
}

// The bracketed word of a sysfs choice file: "always [advise] never" -> "advise". A file without
// brackets is returned whole; an absent file gives "".
std::string ActiveChoice(const std::string& s) {
  const size_t open = s.find('[');
  const size_t close = s.find(']', open == std::string::npos ? 0 : open);
  if (open == std::string::npos || close == std::string::npos) return s;
  return s.substr(open + 1, close - open - 1);
}

// Modes under which a memfd with MADV_HUGEPAGE gets 2 MiB pages.
bool ThpModeAllowsMadvise(const std::string& mode) {
  return mode == "always" || mode == "within_size" || mode == "advise" || mode == "force";
}

// The commands that make shmem THP usable for 2 MiB given the current modes.
std::string ThpEnableCommands(const ShmemThpMode& m) {
  std::string cmds;
  if (!ThpModeAllowsMadvise(m.global)) {
    cmds = std::string("echo advise > ") + kThpShmem;
  }
  if (!m.size_2m.empty() && m.size_2m != "inherit" && !ThpModeAllowsMadvise(m.size_2m)) {
    cmds += std::string(cmds.empty() ? "" : " && ") + "echo inherit > " + kThpShmem2M;
  }
  return cmds;
}

// A /proc/meminfo field ("MemTotal") in bytes, or -1.
long long MeminfoBytes(const std::string& field) {
  std::istringstream in(ReadSysFile("/proc/meminfo"));
  const std::string prefix = field + ":";
  std::string line;
  while (std::getline(in, line)) {
    if (line.compare(0, prefix.size(), prefix) == 0) {
      return std::atoll(line.c_str() + prefix.size()) * 1024;  // the file counts kB
    }
  }
  return -1;
}

// The CPUs of one node from libnuma; empty when the node has none or the query fails.
std::vector<int> NodeCpus(int node) {
  std::vector<int> cpus;
  struct bitmask* mask = numa_allocate_cpumask();
  if (mask == nullptr) return cpus;
  if (numa_node_to_cpus(node, mask) == 0) {
    for (unsigned c = 0; c < mask->size; ++c) {
      if (numa_bitmask_isbitset(mask, c)) cpus.push_back(static_cast<int>(c));
    }
  }
  numa_free_cpumask(mask);
  return cpus;
}

// The host as one node 0 when libnuma is unavailable: online CPUs and /proc/meminfo totals.
NumaNode WholeHostNode() {
  NumaNode node;
  const long n = sysconf(_SC_NPROCESSORS_ONLN);
  for (int c = 0; c < n; ++c) node.cpus.push_back(c);
  node.mem_total_bytes = MeminfoBytes("MemTotal");
  // MemFree, not MemAvailable, to match what libnuma reports per node.
  node.mem_free_bytes = MeminfoBytes("MemFree");
  return node;
}

}  // namespace

std::string ReadSysFile(const std::string& path) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return "";
  std::string s;
  char buf[4096];
  for (;;) {
    const ssize_t n = read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    s.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

bool WriteSysFile(const std::string& path, const std::string& value, std::string* error) {
  const std::string line = value + "\n";
  // The flags of the shell's `echo value > path`, which sysfs and procfs accept.
  const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  ssize_t n = -1;
  if (fd >= 0) {
    do {
      n = write(fd, line.data(), line.size());
    } while (n < 0 && errno == EINTR);
  }
  const int err = errno;
  if (fd >= 0) close(fd);
  if (n == static_cast<ssize_t>(line.size())) return true;
  if (error != nullptr) {
    *error = "write '" + value + "' to " + path + ": " +
             (n >= 0 ? std::string("short write") : std::string(std::strerror(err)));
    if (err == EACCES || err == EPERM) *error += " (needs root)";
  }
  return false;
}

long HugePagePool::available() const {
  if (free < 0) return 0;
  return reserved >= 0 ? free - reserved : free;
}

HugePagePool ReadHugePagePool(int node) {
  const std::string dir = HugePageDir(node);
  HugePagePool p;
  p.total = ReadLong(dir + "nr_hugepages");
  p.free = ReadLong(dir + "free_hugepages");
  p.surplus = ReadLong(dir + "surplus_hugepages");
  if (node < 0) p.reserved = ReadLong(dir + "resv_hugepages");
  return p;
}

ShmemThpMode ReadShmemThpMode() {
  ShmemThpMode m;
  m.global = ActiveChoice(ReadSysFile(kThpShmem));
  m.size_2m = ActiveChoice(ReadSysFile(kThpShmem2M));
  return m;
}

bool ShmemThpUsable(std::string* reason) {
  const ShmemThpMode m = ReadShmemThpMode();
  if (m.global.empty()) {
    if (reason != nullptr) {
      *reason = std::string(kThpShmem) +
                " is absent: the kernel has no transparent huge pages for shmem "
                "(CONFIG_TRANSPARENT_HUGEPAGE)";
    }
    return false;
  }
  const bool inherits = m.size_2m.empty() || m.size_2m == "inherit";
  const std::string effective = inherits ? m.global : m.size_2m;
  if (ThpModeAllowsMadvise(effective)) return true;
  if (reason != nullptr) {
    *reason = "shmem THP for 2 MiB is '" + effective + "' (shmem_enabled=" + m.global +
              (m.size_2m.empty() ? "" : ", hugepages-2048kB/shmem_enabled=" + m.size_2m) +
              "); enable as root with: " + ThpEnableCommands(m);
  }
  return false;
}

bool NumaAvailable() { return numa_available() >= 0; }

std::vector<NumaNode> NumaNodes() {
  std::vector<NumaNode> nodes;
  if (NumaAvailable()) {
    for (int n = 0; n <= numa_max_node(); ++n) {
      long long free_bytes = -1;
      const long long total = numa_node_size64(n, &free_bytes);
      if (total <= 0) continue;  // memoryless, offline or absent node
      NumaNode node;
      node.id = n;
      node.cpus = NodeCpus(n);
      node.mem_total_bytes = total;
      node.mem_free_bytes = free_bytes;
      nodes.push_back(std::move(node));
    }
  }
  if (nodes.empty()) nodes.push_back(WholeHostNode());
  if (nodes.size() == 1) {
    // One node is the whole host. Some VMs (firecracker with memory added as the guest first
    // touches it) report less in the node's meminfo than in /proc/meminfo, although the node
    // grows into all of it: take the host's figures where they are larger.
    const NumaNode host = WholeHostNode();
    nodes[0].mem_total_bytes = std::max(nodes[0].mem_total_bytes, host.mem_total_bytes);
    nodes[0].mem_free_bytes = std::max(nodes[0].mem_free_bytes, host.mem_free_bytes);
  }
  return nodes;
}

long ReadMaxMapCount() { return ReadLong("/proc/sys/vm/max_map_count"); }

}  // namespace vmm
