// vmm/host.h: facts about the host that decide which page kinds and placements work.
//
// All readers are cheap (a few /proc and /sys reads) and never fail: an unreadable value is
// reported as -1 / "" with the reason in the returned struct where useful.
//
// Thread safety: all functions are safe from any thread.
#ifndef VMM_HOST_H_
#define VMM_HOST_H_

#include <cstdint>
#include <string>
#include <vector>

namespace vmm {

// 2 MiB hugetlb pool, globally (node -1) or for one NUMA node.
struct HugePagePool {
  long total = -1;     // nr_hugepages
  long free = -1;      // free_hugepages
  long reserved = -1;  // resv_hugepages (global only; -1 per node)
  long surplus = -1;
  // Pages a new mapping can still get: free - reserved (global), free (per node).
  long available() const;
};
HugePagePool ReadHugePagePool(int node = -1);

// /sys/kernel/mm/transparent_hugepage/shmem_enabled, the bracketed word ("never", "advise", ...),
// and the per-size 2048kB setting ("inherit", ...); "" when absent.
struct ShmemThpMode {
  std::string global;
  std::string size_2m;
};
ShmemThpMode ReadShmemThpMode();
// True when a memfd with MADV_HUGEPAGE can get 2 MiB pages; otherwise `reason` says why and how
// to enable it.
bool ShmemThpUsable(std::string* reason);

struct NumaNode {
  int id = 0;
  std::vector<int> cpus;
  long long mem_total_bytes = -1;
  long long mem_free_bytes = -1;
};
// The NUMA nodes that have memory (libnuma); one node 0 with all CPUs when NUMA is unavailable.
// With one node, its memory is at least /proc/meminfo's (MemTotal, MemFree): a VM may add memory
// to its node only as the guest touches it, so the node's own meminfo says less than it can give.
std::vector<NumaNode> NumaNodes();
bool NumaAvailable();

// /proc/sys/vm/max_map_count, or -1.
long ReadMaxMapCount();

// Writes `value` to a sysctl-style file (e.g. /proc/sys/vm/nr_hugepages). Returns false with the
// reason on failure. For setup tools and root-only tests.
bool WriteSysFile(const std::string& path, const std::string& value, std::string* error);
// Reads a whole small file, trailing newline stripped; "" on failure.
std::string ReadSysFile(const std::string& path);

}  // namespace vmm

#endif  // VMM_HOST_H_
