#include "vmm/host.h"

#include <numa.h>
#include <unistd.h>

#include <fstream>
#include <iterator>
#include <sstream>

namespace vmm {

namespace {

constexpr char kHugeDir[] = "/sys/kernel/mm/hugepages/hugepages-2048kB/";
constexpr char kThpShmem[] = "/sys/kernel/mm/transparent_hugepage/shmem_enabled";
constexpr char kThpShmem2M[] =
    "/sys/kernel/mm/transparent_hugepage/hugepages-2048kB/shmem_enabled";

long ReadLong(const std::string& path) {
  const std::string s = ReadSysFile(path);
  if (s.empty()) return -1;
  char* end = nullptr;
  const long v = std::strtol(s.c_str(), &end, 10);
  return end == s.c_str() ? -1 : v;
}

// The bracketed word of a sysfs choice file: "always [advise] never" -> "advise".
std::string ActiveChoice(const std::string& s) {
  const size_t a = s.find('['), b = s.find(']');
  if (a == std::string::npos || b == std::string::npos || b < a) return s;
  return s.substr(a + 1, b - a - 1);
}

// /proc/meminfo field in bytes, or -1.
long long MeminfoBytes(const std::string& field) {
  std::ifstream in("/proc/meminfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(field + ":", 0) == 0) {
      return std::atoll(line.c_str() + field.size() + 1) * 1024;
    }
  }
  return -1;
}

}  // namespace

std::string ReadSysFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return "";
  std::string s((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

bool WriteSysFile(const std::string& path, const std::string& value, std::string* error) {
  std::ofstream out(path);
  if (out) out << value << "\n";
  out.close();
  if (!out) {
    if (error) *error = "cannot write '" + value + "' to " + path + " (need root?)";
    return false;
  }
  return true;
}

long HugePagePool::available() const {
  if (free < 0) return 0;
  return reserved >= 0 ? free - reserved : free;
}

HugePagePool ReadHugePagePool(int node) {
  const std::string dir = node < 0 ? std::string(kHugeDir)
                                   : "/sys/devices/system/node/node" + std::to_string(node) +
                                         "/hugepages/hugepages-2048kB/";
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
    if (reason) *reason = std::string(kThpShmem) + " is missing (kernel without THP for shmem)";
    return false;
  }
  const std::string effective = m.size_2m.empty() || m.size_2m == "inherit" ? m.global : m.size_2m;
  if (effective == "always" || effective == "within_size" || effective == "advise" ||
      effective == "force") {
    return true;
  }
  if (reason) {
    *reason = "shmem_enabled=" + m.global +
              (m.size_2m.empty() ? "" : ", hugepages-2048kB/shmem_enabled=" + m.size_2m) +
              "; enable with: echo advise > " + kThpShmem +
              (m.size_2m.empty() || m.size_2m == "inherit"
                   ? std::string()
                   : std::string(" and echo inherit > ") + kThpShmem2M);
  }
  return false;
}

bool NumaAvailable() { return numa_available() >= 0; }

std::vector<NumaNode> NumaNodes() {
  std::vector<NumaNode> nodes;
  if (NumaAvailable()) {
    struct bitmask* cpus = numa_allocate_cpumask();
    for (int n = 0; n <= numa_max_node(); ++n) {
      long long free_bytes = -1;
      const long long total = numa_node_size64(n, &free_bytes);
      if (total <= 0) continue;  // memoryless or offline node
      NumaNode node;
      node.id = n;
      node.mem_total_bytes = total;
      node.mem_free_bytes = free_bytes;
      if (numa_node_to_cpus(n, cpus) == 0) {
        for (unsigned c = 0; c < cpus->size; ++c) {
          if (numa_bitmask_isbitset(cpus, c)) node.cpus.push_back(static_cast<int>(c));
        }
      }
      nodes.push_back(std::move(node));
    }
    numa_free_cpumask(cpus);
  }
  if (nodes.empty()) {
    NumaNode node;
    const long n = sysconf(_SC_NPROCESSORS_ONLN);
    for (int c = 0; c < n; ++c) node.cpus.push_back(c);
    node.mem_total_bytes = MeminfoBytes("MemTotal");
    node.mem_free_bytes = MeminfoBytes("MemAvailable");
    nodes.push_back(std::move(node));
  }
  return nodes;
}

long ReadMaxMapCount() { return ReadLong("/proc/sys/vm/max_map_count"); }

}  // namespace vmm
