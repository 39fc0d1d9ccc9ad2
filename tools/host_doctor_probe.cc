// host_doctor's probes and verdicts (host_doctor_probe.h): the io_uring, libcap, mbind and
// O_DIRECT probes live here; the rest comes from vmm/host.h.
#include "tools/host_doctor_probe.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <numa.h>
#include <numaif.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <sstream>

namespace emoe::tools {
namespace {

constexpr long kSuggestedMaxMapCount = 1048576;
constexpr long kSuggestedHugePages = 1024;  // 2 GiB of 2 MiB pages
constexpr size_t kDirectIoBytes = 4096;     // a multiple of every common logical block size
constexpr char kThpShmem[] = "/sys/kernel/mm/transparent_hugepage/shmem_enabled";
constexpr char kThpShmem2M[] = "/sys/kernel/mm/transparent_hugepage/hugepages-2048kB/shmem_enabled";

std::string Errno(int err) { return std::strerror(err); }

// A "Name:\tvalue" line of /proc/self/status, or "".
std::string ProcStatusField(const std::string& name) {
  std::istringstream in(vmm::ReadSysFile("/proc/self/status"));
  std::string line;
  while (std::getline(in, line)) {
    if (line.compare(0, name.size() + 1, name + ":") == 0) {
      const size_t v = line.find_first_not_of(" \t", name.size() + 1);
      return v == std::string::npos ? "" : line.substr(v);
    }
  }
  return "";
}

// ---------------------------------------------------------------------------------------------
// NUMA

// "" when an anonymous page can be bound to `node` with mbind(MPOL_BIND), else the error.
std::string ProbeMbind(int node) {
  const size_t len = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  void* p = mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return "mmap: " + Errno(errno);
  struct bitmask* mask = numa_allocate_nodemask();
  numa_bitmask_setbit(mask, static_cast<unsigned>(node));
  const long ret = mbind(p, len, MPOL_BIND, mask->maskp, mask->size + 1, 0);
  const int err = errno;
  numa_free_nodemask(mask);
  munmap(p, len);
  if (ret == 0) return "";
  return "mbind(MPOL_BIND) to node " + std::to_string(node) + ": " + Errno(err);
}

NumaFacts ProbeNuma() {
  NumaFacts f;
  f.available = vmm::NumaAvailable();
  f.nodes = vmm::NumaNodes();
  if (!f.available) return f;
  for (const auto& n : f.nodes) f.pools.push_back(vmm::ReadHugePagePool(n.id));
  f.mbind_error = ProbeMbind(f.nodes.front().id);
  return f;
}

ThpFacts ProbeThp() {
  ThpFacts f;
  f.mode = vmm::ReadShmemThpMode();
  f.usable = vmm::ShmemThpUsable(&f.reason);
  return f;
}

// ---------------------------------------------------------------------------------------------
// io_uring

void ReadOpcodes(io_uring* ring, UringFacts* f) {
  io_uring_probe* probe = io_uring_get_probe_ring(ring);
  if (probe == nullptr) return;  // kernels before 5.6 cannot be probed
  f->known = probe->last_op + 1;
  for (int op = 0; op <= probe->last_op; ++op) f->supported += io_uring_opcode_supported(probe, op);
  const std::pair<int, const char*> wanted[] = {{IORING_OP_READ, "READ"},
                                                {IORING_OP_READV, "READV"},
                                                {IORING_OP_READ_FIXED, "READ_FIXED"},
                                                {IORING_OP_WRITE, "WRITE"},
                                                {IORING_OP_OPENAT, "OPENAT"},
                                                {IORING_OP_FSYNC, "FSYNC"},
                                                {IORING_OP_STATX, "STATX"},
                                                {IORING_OP_CLOSE, "CLOSE"}};
  for (auto [op, name] : wanted) {
    f->opcodes.emplace_back(name, io_uring_opcode_supported(probe, op));
  }
  io_uring_free_probe(probe);
}

// "" when a ring with `flags` can be created, else the error.
std::string TryRing(unsigned flags) {
  io_uring ring;
  const int ret = io_uring_queue_init(4, &ring, flags);
  if (ret < 0) return Errno(-ret);
  io_uring_queue_exit(&ring);
  return "";
}

UringFacts ProbeUring() {
  UringFacts f;
  f.disabled = vmm::ReadSysFile("/proc/sys/kernel/io_uring_disabled");
  f.seccomp = ProcStatusField("Seccomp") == "2";
  io_uring ring;
  const int ret = io_uring_queue_init(8, &ring, 0);
  if (ret < 0) {
    f.error = "io_uring_queue_init: " + Errno(-ret);
    return f;
  }
  f.available = true;
  f.features = ring.features;
  ReadOpcodes(&ring, &f);
  io_uring_queue_exit(&ring);
  f.sqpoll = TryRing(IORING_SETUP_SQPOLL);
  return f;
}

// ---------------------------------------------------------------------------------------------
// Capabilities

CapFacts ProbeCaps() {
  CapFacts f;
  f.caps = {
      {"CAP_IPC_LOCK", CAP_IPC_LOCK,
       "mlock and io_uring registered buffers beyond RLIMIT_MEMLOCK; SHM_HUGETLB shared memory "
       "outside vm.hugetlb_shm_group"},
      {"CAP_SYS_NICE", CAP_SYS_NICE,
       "moving other processes' pages (MPOL_MF_MOVE_ALL, move_pages); binding threads and "
       "memory of other processes to nodes; negative nice and real-time priorities"},
      {"CAP_SYS_ADMIN", CAP_SYS_ADMIN,
       "dropping page caches for cold-load benchmarks; raising sysctls (nr_hugepages, "
       "max_map_count, shmem_enabled); physical frames in /proc/self/pagemap"}};
  struct rlimit rl;
  if (getrlimit(RLIMIT_MEMLOCK, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) {
    f.memlock_bytes = static_cast<long long>(rl.rlim_cur);
  }
  cap_t caps = cap_get_proc();
  if (caps == nullptr) {
    f.error = "cap_get_proc: " + Errno(errno);
    return f;
  }
  for (auto& c : f.caps) {
    cap_flag_value_t v = CAP_CLEAR;
    if (cap_get_flag(caps, c.value, CAP_EFFECTIVE, &v) == 0) c.effective = v == CAP_SET;
    if (cap_get_flag(caps, c.value, CAP_PERMITTED, &v) == 0) c.permitted = v == CAP_SET;
  }
  cap_free(caps);
  return f;
}

// ---------------------------------------------------------------------------------------------
// O_DIRECT

// 0 when aligned O_DIRECT I/O on `fd` works (a write first when `write`, then a read); else the
// errno, with `error` saying which call failed.
int DirectIo(int fd, bool write, std::string* error) {
  void* buf = std::aligned_alloc(kDirectIoBytes, kDirectIoBytes);
  if (buf == nullptr) {
    *error = "aligned_alloc failed";
    return ENOMEM;
  }
  std::memset(buf, 0, kDirectIoBytes);
  int err = 0;
  if (write && pwrite(fd, buf, kDirectIoBytes, 0) < 0) {
    err = errno;
    *error = "O_DIRECT write: " + Errno(err);
  } else if (pread(fd, buf, kDirectIoBytes, 0) < 0) {
    err = errno;
    *error = "O_DIRECT read: " + Errno(err);
  }
  std::free(buf);
  return err;
}

// The first regular file in `dir` this process can read, or "".
std::string FirstReadableFile(const std::string& dir) {
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) return "";
  std::string found;
  while (dirent* e = readdir(d)) {
    const std::string path = dir + "/" + e->d_name;
    struct stat st;
    if (stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) && access(path.c_str(), R_OK) == 0) {
      found = path;
      break;
    }
  }
  closedir(d);
  return found;
}

// Records the outcome of opening with O_DIRECT (fd, or -1 with errno) and of one I/O.
void RecordDirect(int fd, int open_errno, bool write, ODirectFacts* f) {
  if (fd < 0) {
    f->unsupported = open_errno == EINVAL;
    f->error = "open(O_DIRECT): " + Errno(open_errno) +
               (f->unsupported ? " (the file system does not support O_DIRECT)" : "");
    return;
  }
  const int err = DirectIo(fd, write, &f->error);
  f->unsupported = err == EINVAL;
  f->works = err == 0;
  close(fd);
}

// Creates (and removes) a temporary file in --dir; a read-only directory is tested on an existing
// file instead.
ODirectFacts ProbeODirect(const std::string& dir) {
  ODirectFacts f;
  f.dir = dir;
  std::string tmpl = dir + "/.host_doctor.XXXXXX";
  const int fd = mkostemp(tmpl.data(), O_DIRECT | O_CLOEXEC);
  const int err = errno;
  if (fd >= 0) unlink(tmpl.c_str());
  if (fd >= 0 || err == EINVAL) {
    f.tested = "a temporary file (write and read 4 KiB)";
    RecordDirect(fd, err, /*write=*/true, &f);
    return f;
  }
  const std::string file = FirstReadableFile(dir);
  if (file.empty()) {
    f.error =
        "cannot create a file in " + dir + " (" + Errno(err) + ") and it holds no readable file";
    return f;
  }
  f.tested = file + " (read 4 KiB)";
  const int rfd = open(file.c_str(), O_RDONLY | O_DIRECT | O_CLOEXEC);
  RecordDirect(rfd, errno, /*write=*/false, &f);
  return f;
}

// ---------------------------------------------------------------------------------------------
// Verdicts

}  // namespace

std::vector<std::string> FeatureNames(unsigned features) {
  const std::pair<unsigned, const char*> known[] = {
      {IORING_FEAT_NODROP, "NODROP"},       {IORING_FEAT_SUBMIT_STABLE, "SUBMIT_STABLE"},
      {IORING_FEAT_FAST_POLL, "FAST_POLL"}, {IORING_FEAT_SQPOLL_NONFIXED, "SQPOLL_NONFIXED"},
      {IORING_FEAT_EXT_ARG, "EXT_ARG"},     {IORING_FEAT_NATIVE_WORKERS, "NATIVE_WORKERS"}};
  std::vector<std::string> names;
  for (auto [bit, name] : known) {
    if (features & bit) names.emplace_back(name);
  }
  return names;
}

std::string Join(const std::vector<std::string>& parts, const std::string& sep) {
  std::string out;
  for (const auto& p : parts) out += (out.empty() ? "" : sep) + p;
  return out;
}

namespace {

Verdict JudgeNuma(const NumaFacts& f) {
  if (!f.available) {
    return {"NUMA binding", "DEGRADED",
            "libnuma reports no NUMA support; arenas are not bound to nodes",
            "boot a kernel with CONFIG_NUMA=y and without numa=off"};
  }
  if (!f.mbind_error.empty()) {
    return {"NUMA binding", "DEGRADED", f.mbind_error + "; arenas are not bound to nodes",
            "grant CAP_SYS_NICE or allow mbind in the seccomp profile (docker: --cap-add "
            "SYS_NICE)"};
  }
  return {"NUMA binding", "OK",
          std::to_string(f.nodes.size()) + " node(s) with memory; mbind works", ""};
}

// Nodes whose pool has no free page while others have some: arenas bound there fall back.
std::vector<std::string> EmptyNodePools(const NumaFacts& f) {
  std::vector<std::string> empty;
  if (f.pools.size() < 2) return empty;
  for (size_t i = 0; i < f.pools.size(); ++i) {
    if (f.pools[i].free == 0) empty.push_back(std::to_string(f.nodes[i].id));
  }
  return empty;
}

Verdict JudgeHugetlb(const Report& r) {
  const vmm::HugePagePool& p = r.pool;
  // The other 2 MiB source covers a missing one, so only both missing is MISSING.
  const std::string missing = r.thp.usable ? "DEGRADED" : "MISSING";
  const std::string fallback = r.thp.usable ? "; arenas use shmem THP instead" : "";
  if (p.total < 0) {
    return {"hugetlb 2M", missing, "the kernel has no 2 MiB hugetlb pool" + fallback,
            "use a kernel with CONFIG_HUGETLBFS=y"};
  }
  if (p.available() <= 0) {
    return {"hugetlb 2M", missing,
            "no 2 MiB huge page available (vm.nr_hugepages=" + std::to_string(p.total) + ", free " +
                std::to_string(p.free) + ")" + fallback,
            "sysctl -w vm.nr_hugepages=" + std::to_string(p.total + kSuggestedHugePages)};
  }
  const std::string detail = std::to_string(p.available()) + " of " + std::to_string(p.total) +
                             " pages available (" + std::to_string(p.available() * 2) + " MiB)";
  const std::vector<std::string> empty = EmptyNodePools(r.numa);
  if (!empty.empty()) {
    return {"hugetlb 2M", "DEGRADED", detail + "; none free on node(s) " + Join(empty, ","),
            "echo " + std::to_string(kSuggestedHugePages) + " > /sys/devices/system/node/node" +
                empty.front() + "/hugepages/hugepages-2048kB/nr_hugepages"};
  }
  return {"hugetlb 2M", "OK", detail, ""};
}

bool ThpModeAllowsMadvise(const std::string& mode) {
  return mode == "always" || mode == "within_size" || mode == "advise" || mode == "force";
}

std::string ThpFix(const vmm::ShmemThpMode& m) {
  if (m.global.empty()) return "use a kernel with CONFIG_TRANSPARENT_HUGEPAGE=y";
  std::vector<std::string> cmds;
  if (!ThpModeAllowsMadvise(m.global)) cmds.push_back(std::string("echo advise > ") + kThpShmem);
  if (!m.size_2m.empty() && m.size_2m != "inherit" && !ThpModeAllowsMadvise(m.size_2m)) {
    cmds.push_back(std::string("echo inherit > ") + kThpShmem2M);
  }
  return Join(cmds, " && ");
}

std::string ThpModes(const vmm::ShmemThpMode& m) {
  return "shmem_enabled=" + m.global + (m.size_2m.empty() ? "" : ", 2048kB=" + m.size_2m);
}

Verdict JudgeThp(const Report& r) {
  const vmm::ShmemThpMode& m = r.thp.mode;
  if (r.thp.usable) return {"shmem THP 2M", "OK", ThpModes(m), ""};
  if (m.global.empty()) {
    return {"shmem THP 2M", "MISSING", "the kernel has no shmem THP", ThpFix(m)};
  }
  const bool hugetlb = r.pool.available() > 0;
  return {"shmem THP 2M", hugetlb ? "DEGRADED" : "MISSING",
          ThpModes(m) + (hugetlb ? "; arenas use hugetlb pages while the pool lasts" : ""),
          ThpFix(m)};
}

std::string UringFix(const UringFacts& f) {
  if (!f.disabled.empty() && f.disabled != "0") return "sysctl -w kernel.io_uring_disabled=0";
  if (f.seccomp) {
    return "run without a seccomp filter that blocks io_uring_setup (docker: --security-opt "
           "seccomp=<profile allowing io_uring_*>)";
  }
  return "use a kernel >= 5.6 with CONFIG_IO_URING=y";
}

Verdict JudgeUring(const UringFacts& f) {
  if (!f.available) {
    std::string why = f.error;
    if (!f.disabled.empty() && f.disabled != "0") why += "; kernel.io_uring_disabled=" + f.disabled;
    if (f.seccomp) why += "; a seccomp filter is active";
    return {"io_uring", "MISSING", why + "; the loader falls back to pread", UringFix(f)};
  }
  std::vector<std::string> absent;
  for (auto [name, ok] : f.opcodes) {
    if (!ok) absent.emplace_back(name);
  }
  const std::string count = std::to_string(f.supported) + " opcodes supported";
  if (!absent.empty()) {
    return {"io_uring", "DEGRADED", count + "; missing " + Join(absent, ", "),
            "use a kernel >= 5.6 (READ, OPENAT, STATX, CLOSE)"};
  }
  return {"io_uring", "OK", count, ""};
}

Verdict JudgeODirect(const ODirectFacts& f) {
  if (f.works) return {"O_DIRECT", "OK", "works in " + f.dir, ""};
  return {"O_DIRECT", "DEGRADED", f.dir + ": " + f.error + "; loads use buffered reads",
          f.unsupported
              ? "keep model files on a file system with O_DIRECT (ext4, xfs), not overlay/fuse"
              : "pass --dir= a directory this user can write, or that holds a model file"};
}

Verdict JudgeMaxMapCount(long count) {
  if (count >= kRecommendedMaxMapCount) return {"max_map_count", "OK", std::to_string(count), ""};
  const std::string fix = "sysctl -w vm.max_map_count=" + std::to_string(kSuggestedMaxMapCount);
  if (count < 0) return {"max_map_count", "DEGRADED", "/proc/sys/vm/max_map_count unreadable", fix};
  return {"max_map_count", "DEGRADED",
          std::to_string(count) + " < " + std::to_string(kRecommendedMaxMapCount) +
              " recommended: each mapped slot costs up to 2 mappings",
          fix};
}

std::string CapsFix(const std::vector<std::string>& missing) {
  std::vector<std::string> fixes;
  for (const auto& name : missing) {
    if (name == "CAP_IPC_LOCK") {
      fixes.push_back("setcap cap_ipc_lock+ep build/tools/hmmd");
    }
  }
  if (fixes.size() < missing.size()) fixes.push_back("run setup and benchmarks as root");
  return Join(fixes, "; ");
}

Verdict JudgeCaps(const CapFacts& f) {
  if (!f.error.empty()) return {"capabilities", "DEGRADED", f.error, ""};
  std::vector<std::string> missing;
  for (const auto& c : f.caps) {
    if (!c.effective) missing.emplace_back(c.name);
  }
  if (missing.empty()) {
    return {"capabilities", "OK", "CAP_IPC_LOCK, CAP_SYS_NICE, CAP_SYS_ADMIN", ""};
  }
  return {"capabilities", "DEGRADED", "not effective: " + Join(missing, ", "), CapsFix(missing)};
}

std::vector<Verdict> Judge(const Report& r) {
  return {JudgeNuma(r.numa),   JudgeHugetlb(r),         JudgeThp(r),
          JudgeUring(r.uring), JudgeODirect(r.odirect), JudgeMaxMapCount(r.max_map_count),
          JudgeCaps(r.caps)};
}

}  // namespace

Report Examine(const std::string& dir) {
  Report r;
  r.numa = ProbeNuma();
  r.pool = vmm::ReadHugePagePool(-1);
  r.thp = ProbeThp();
  r.uring = ProbeUring();
  r.caps = ProbeCaps();
  r.odirect = ProbeODirect(dir);
  r.max_map_count = vmm::ReadMaxMapCount();
  r.verdicts = Judge(r);
  return r;
}

}  // namespace emoe::tools
