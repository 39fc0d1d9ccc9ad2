// Arena creation (Create: the page kinds tried in turn, each built in phases), Import and Export.
#include <fcntl.h>
#include <linux/magic.h>
#include <linux/memfd.h>
#include <numa.h>
#include <numaif.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/vfs.h>

#include <algorithm>
#include <cstdio>
#include <sstream>
#include <vector>

#include "vmm/arena.h"
#include "vmm/host.h"
#include "vmm/stats.h"

namespace vmm {

namespace {

// The pieces of a half-built arena, released on failure.
struct Built {
  Os* os = nullptr;
  UniqueFd fd;
  uint8_t* map = nullptr;
  uint64_t capacity = 0;
  uint64_t populated = 0;  // bytes from the start faulted in at creation
  ~Built() {
    if (map != nullptr) os->Munmap(map, capacity);
  }
};

// Maps [0, capacity) of fd read-write at a 2 MiB-aligned address.
StatusOr<uint8_t*> MapAligned(Os* os, int fd, uint64_t capacity, const std::string& what) {
  const uint64_t span = capacity + kHugePageSize;
  void* raw =
      os->Mmap(nullptr, span, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (raw == MAP_FAILED) return MapError(errno, what + ": reserve address space", "mmap");
  auto* base = static_cast<uint8_t*>(raw);
  auto* aligned = reinterpret_cast<uint8_t*>(
      (reinterpret_cast<uintptr_t>(base) + kHugePageSize - 1) & ~(kHugePageSize - 1));
  void* m = os->Mmap(aligned, capacity, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd, 0);
  if (m == MAP_FAILED) {
    const int err = errno;
    os->Munmap(base, span);
    errno = err;
    return MapError(err, what + ": map the memfd", "mmap");
  }
  // Trim the unused head and tail of the reservation (cannot fail for valid ranges; if it does,
  // the bytes stay reserved PROT_NONE, which is harmless).
  if (aligned > base) os->Munmap(base, aligned - base);
  const uint64_t tail = (base + span) - (aligned + capacity);
  if (tail > 0) os->Munmap(aligned + capacity, tail);
  return aligned;
}

Status BindToNode(Os* os, void* addr, uint64_t len, int node, const std::string& what) {
  constexpr unsigned long kBits = 8 * sizeof(unsigned long);
  std::vector<unsigned long> mask(node / kBits + 1, 0);
  mask[node / kBits] |= 1UL << (node % kBits);
  if (os->Mbind(addr, len, MPOL_BIND, mask.data(), mask.size() * kBits + 1, 0) != 0) {
    return Status::FromErrno(errno, what + ": bind to NUMA node " + std::to_string(node), "mbind");
  }
  return Status::Ok();
}

// The page kinds a policy tries, in order.
std::vector<PageKind> Candidates(PageSizePolicy policy) {
  switch (policy) {
    case PageSizePolicy::kAuto:
      return {PageKind::kHugetlb2M, PageKind::kShmemThp2M, PageKind::kSmall4K};
    case PageSizePolicy::kHugetlb:
      return {PageKind::kHugetlb2M};
    case PageSizePolicy::kShmemThp:
      return {PageKind::kShmemThp2M};
    case PageSizePolicy::kSmall:
      return {PageKind::kSmall4K};
  }
  return {};
}

// Preconditions of a page kind the kernel would only reveal late (or never, for THP):
// kUnavailable saying what is missing.
Status CheckPageKind(PageKind kind, uint64_t capacity, int numa_node) {
  const uint64_t page = PageKindSize(kind);
  if (kind == PageKind::kHugetlb2M) {
    const long need = static_cast<long>(capacity / page);
    const HugePagePool pool = ReadHugePagePool(-1);
    if (pool.available() < need) {
      return Status::Unavailable("hugetlb: needs " + std::to_string(need) +
                                 " free 2 MiB huge pages, " +
                                 std::to_string(std::max(0L, pool.available())) +
                                 " available (vm.nr_hugepages=" + std::to_string(pool.total) +
                                 "; raise it with sysctl -w vm.nr_hugepages=N)");
    }
    if (numa_node >= 0) {
      const HugePagePool node_pool = ReadHugePagePool(numa_node);
      if (node_pool.free >= 0 && node_pool.free < need) {
        return Status::Unavailable("hugetlb: needs " + std::to_string(need) +
                                   " free 2 MiB huge pages on node " + std::to_string(numa_node) +
                                   ", " + std::to_string(node_pool.free) + " free there");
      }
    }
  } else if (kind == PageKind::kShmemThp2M) {
    std::string why;
    if (!ShmemThpUsable(&why)) return Status::Unavailable("shmem THP: " + why);
  }
  return Status::Ok();
}

// Phase 1: the memfd of `kind`, sized to b.capacity and sealed against shrink and grow (F_SEAL_SEAL
// waits for phase 3, which may add the write seal).
Status MakeMemfd(Built& b, PageKind kind, const ArenaOptions& options, const std::string& what) {
  unsigned flags = MFD_CLOEXEC | MFD_ALLOW_SEALING;
  if (kind == PageKind::kHugetlb2M) flags |= MFD_HUGETLB | MFD_HUGE_2MB;
  const std::string memfd_name = "vmm:" + options.name;
  const int fd = b.os->MemfdCreate(memfd_name.c_str(), flags);
  if (fd < 0)
    return Status::FromErrno(errno, what + " (" + PageKindName(kind) + ")", "memfd_create");
  b.fd.Reset(fd);
  if (RetryOnEintr([&] { return b.os->Ftruncate(b.fd.get(), b.capacity); }) != 0) {
    return Status::FromErrno(errno, what + ": size to " + std::to_string(b.capacity), "ftruncate");
  }
  if (b.os->FcntlInt(b.fd.get(), F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW) != 0) {
    return Status::FromErrno(errno, what + ": seal against shrink/grow", "fcntl(F_ADD_SEALS)");
  }
  return Status::Ok();
}

// Phase 2: the mapping (needed for the NUMA binding even without a direct map), huge-page
// advice, the binding and the population.
Status MapAndPlace(Built& b, PageKind kind, const ArenaOptions& options, const std::string& what) {
  const bool bind = options.numa_node >= 0 && NumaAvailable();
  if (options.direct_map || bind) {
    auto m = MapAligned(b.os, b.fd.get(), b.capacity, what);
    if (!m.ok()) {
      Status st = m.status();
      if (kind == PageKind::kHugetlb2M && st.err() == ENOMEM) {
        return Status::Unavailable("hugetlb: the kernel could not reserve " +
                                   std::to_string(b.capacity / PageKindSize(kind)) +
                                   " huge pages (" + st.message() + ")");
      }
      return st;
    }
    b.map = *m;
  }
  if (kind == PageKind::kShmemThp2M && b.map != nullptr &&
      b.os->Madvise(b.map, b.capacity, MADV_HUGEPAGE) != 0) {
    return Status::FromErrno(errno, what + ": ask for huge pages", "madvise(MADV_HUGEPAGE)");
  }
  if (bind) VMM_RETURN_IF_ERROR(BindToNode(b.os, b.map, b.capacity, options.numa_node, what));
  if (options.populate) {
    // The prefix asked for; the rest is populated when allocated (ArenaOptions::populate).
    const uint64_t page = PageKindSize(kind);
    const uint64_t want = std::min(options.populate_bytes, b.capacity);
    b.populated = (want + page - 1) / page * page;
    if (b.populated > 0 && b.os->Madvise(b.map, b.populated, MADV_POPULATE_WRITE) != 0) {
      return Status::FromErrno(errno,
                               what + ": populate " + std::to_string(b.populated >> 20) + " MiB (" +
                                   PageKindName(kind) + ")",
                               "madvise(MADV_POPULATE_WRITE)");
    }
    GlobalCounters().bytes_populated += b.populated;
  }
  return Status::Ok();
}

// Phase 3, once the direct map exists (the one writable mapping F_SEAL_FUTURE_WRITE leaves):
// the write seal when asked, then F_SEAL_SEAL. A kernel without the write seal (EINVAL) leaves
// the arena unsealed against writes, with the reason in `*note`.
Status Seal(Built& b, const ArenaOptions& options, const std::string& what, bool* write_sealed,
            std::string* note) {
  *write_sealed = false;
  if (options.seal_future_writes) {
    if (b.os->FcntlInt(b.fd.get(), F_ADD_SEALS, F_SEAL_FUTURE_WRITE) == 0) {
      *write_sealed = true;
    } else if (errno == EINVAL) {
      *note =
          "the kernel refuses F_SEAL_FUTURE_WRITE (EINVAL: it needs Linux 5.1): a process "
          "of the same uid could reopen the memfd writable";
    } else {
      return Status::FromErrno(errno, what + ": seal against future writes",
                               "fcntl(F_ADD_SEALS, F_SEAL_FUTURE_WRITE)");
    }
  }
  if (b.os->FcntlInt(b.fd.get(), F_ADD_SEALS, F_SEAL_SEAL) != 0) {
    return Status::FromErrno(errno, what + ": seal the seals", "fcntl(F_ADD_SEALS, F_SEAL_SEAL)");
  }
  return Status::Ok();
}

}  // namespace

StatusOr<std::shared_ptr<Arena>> Arena::Create(const ArenaOptions& options) {
  VMM_RETURN_IF_ERROR(options.Validate());
  Os* os = options.os ? options.os : Os::Default();
  const std::vector<PageKind> candidates = Candidates(options.page_size);
  std::string reasons;  // why each rejected kind was rejected
  const std::string what = "arena '" + options.name + "'";
  Status last;
  for (PageKind kind : candidates) {
    const uint64_t page = PageKindSize(kind);
    Built b;
    b.os = os;
    b.capacity = (options.capacity_bytes + page - 1) / page * page;
    Status st = CheckPageKind(kind, b.capacity, options.numa_node);
    if (st.ok()) st = MakeMemfd(b, kind, options, what);
    if (st.ok()) st = MapAndPlace(b, kind, options, what);
    bool write_sealed = false;
    std::string seal_note;
    if (st.ok()) st = Seal(b, options, what, &write_sealed, &seal_note);
    if (!st.ok()) {
      last = st;
      if (!reasons.empty()) reasons += "; ";
      reasons += std::string(PageKindName(kind)) + " rejected: " + st.message();
      continue;
    }
    auto arena = std::shared_ptr<Arena>(new Arena());
    arena->name_ = options.name;
    arena->kind_ = kind;
    arena->page_size_ = page;
    arena->capacity_ = b.capacity;
    arena->numa_node_ = options.numa_node;
    arena->discard_on_free_ = options.discard_on_free;
    arena->write_sealed_ = write_sealed;
    arena->seal_note_ = std::move(seal_note);
    arena->populate_ = options.populate;
    arena->resident_prefix_ = b.populated;
    arena->os_ = os;
    arena->fd_ = std::move(b.fd);
    arena->fallback_reason_ = reasons;
    if (options.numa_node >= 0 && !NumaAvailable()) {
      arena->numa_note_ = "libnuma reports NUMA unavailable; the binding to node " +
                          std::to_string(options.numa_node) + " was skipped";
    }
    {
      MutexLock l(&arena->mu_);  // nobody else sees the arena yet; the analysis wants the lock
      arena->allocator_ = std::make_unique<BuddyAllocator>(b.capacity / page);
    }
    if (options.direct_map) {
      arena->direct_map_ = std::exchange(b.map, nullptr);
    }  // else ~Built unmaps the binding-only mapping; the shared policy stays with the file.
    GlobalCounters().arenas_now++;
    GlobalCounters().arena_bytes_now += static_cast<int64_t>(b.capacity);
    return arena;
  }
  if (candidates.size() > 1) {
    return Status(last.code(), last.err(), what + ": no page kind could be used: " + reasons);
  }
  return last.Annotate(what);
}

StatusOr<std::shared_ptr<Arena>> Arena::Import(ExportedArena exported, Os* os, bool direct_map) {
  if (os == nullptr) os = Os::Default();
  const std::string what = "import arena '" + exported.name + "'";
  if (!exported.fd.valid()) return Status::InvalidArgument(what + ": no file descriptor");
  if (exported.page_size != PageKindSize(exported.kind)) {
    return Status::InvalidArgument(what + ": page size " + std::to_string(exported.page_size) +
                                   " does not match kind " + PageKindName(exported.kind));
  }
  if (exported.capacity_bytes == 0 || exported.capacity_bytes % exported.page_size != 0) {
    return Status::InvalidArgument(what + ": capacity " + std::to_string(exported.capacity_bytes) +
                                   " is not a positive multiple of the page size");
  }
  struct stat st;
  if (fstat(exported.fd.get(), &st) != 0) return Status::FromErrno(errno, what, "fstat");
  if (static_cast<uint64_t>(st.st_size) != exported.capacity_bytes) {
    return Status::DataLoss(what + ": the memfd has " + std::to_string(st.st_size) +
                            " bytes, the metadata says " + std::to_string(exported.capacity_bytes));
  }
  const int seals = fcntl(exported.fd.get(), F_GET_SEALS);
  if (seals < 0) return Status::FromErrno(errno, what + ": read seals", "fcntl(F_GET_SEALS)");
  if ((seals & (F_SEAL_SHRINK | F_SEAL_GROW)) != (F_SEAL_SHRINK | F_SEAL_GROW)) {
    return Status::FailedPrecondition(what + ": the memfd is not sealed against shrink and grow");
  }
  struct statfs fs;
  if (fstatfs(exported.fd.get(), &fs) != 0) return Status::FromErrno(errno, what, "fstatfs");
  const bool is_hugetlbfs = static_cast<unsigned long>(fs.f_type) == HUGETLBFS_MAGIC;
  if (is_hugetlbfs != (exported.kind == PageKind::kHugetlb2M)) {
    return Status::DataLoss(what + ": the fd is " + (is_hugetlbfs ? "" : "not ") +
                            "on hugetlbfs but the metadata says " + PageKindName(exported.kind));
  }
  auto arena = std::shared_ptr<Arena>(new Arena());
  arena->name_ = exported.name;
  arena->kind_ = exported.kind;
  arena->page_size_ = exported.page_size;
  arena->capacity_ = exported.capacity_bytes;
  arena->numa_node_ = exported.numa_node;
  arena->imported_ = true;
  arena->write_sealed_ = (seals & F_SEAL_FUTURE_WRITE) != 0;
  arena->os_ = os;
  if (direct_map) {
    VMM_ASSIGN_OR_RETURN(arena->direct_map_,
                         MapAligned(os, exported.fd.get(), arena->capacity_, what));
    if (arena->kind_ == PageKind::kShmemThp2M) {
      os->Madvise(arena->direct_map_, arena->capacity_, MADV_HUGEPAGE);  // best effort
    }
  }
  arena->fd_ = std::move(exported.fd);
  GlobalCounters().arenas_now++;
  GlobalCounters().arena_bytes_now += static_cast<int64_t>(arena->capacity_);
  return arena;
}

StatusOr<ExportedArena> Arena::Export(ExportMode mode) const {
  ExportedArena e;
  const std::string what = "export arena '" + name_ + "'";
  if (mode == ExportMode::kReadOnly) {
    // A new, read-only file description of the same memfd (a dup would share this one's
    // O_RDWR): whoever receives it cannot map it writable (mmap PROT_WRITE|MAP_SHARED: EACCES)
    // nor write(2) it.
    const std::string path = "/proc/self/fd/" + std::to_string(fd_.get());
    const int ro = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (ro < 0) return Status::FromErrno(errno, what + " read-only: reopen " + path, "open");
    e.fd.Reset(ro);
  } else {
    const int fd = fcntl(fd_.get(), F_DUPFD_CLOEXEC, 0);
    if (fd < 0) return Status::FromErrno(errno, what, "fcntl(F_DUPFD)");
    e.fd.Reset(fd);
  }
  e.name = name_;
  e.capacity_bytes = capacity_;
  e.page_size = page_size_;
  e.kind = kind_;
  e.numa_node = numa_node_;
  return e;
}

std::string ExportedArena::SerializeMetadata() const {
  std::ostringstream o;
  o << "vmm-arena-v1;capacity=" << capacity_bytes << ";page_size=" << page_size
    << ";kind=" << static_cast<int>(kind) << ";node=" << numa_node << ";name=" << name;
  return o.str();
}

StatusOr<ExportedArena> ExportedArena::ParseMetadata(const std::string& text) {
  ExportedArena e;
  const std::string prefix = "vmm-arena-v1;";
  if (text.rfind(prefix, 0) != 0) {
    return Status::DataLoss("arena metadata does not start with '" + prefix + "'");
  }
  unsigned long long cap = 0, page = 0;
  int kind = -1, node = -2, name_at = -1;
  if (std::sscanf(text.c_str() + prefix.size(),
                  "capacity=%llu;page_size=%llu;kind=%d;node=%d;name=%n", &cap, &page, &kind, &node,
                  &name_at) != 4 ||
      name_at < 0) {
    return Status::DataLoss("malformed arena metadata: '" + text.substr(0, 200) + "'");
  }
  if (kind < 0 || kind > static_cast<int>(PageKind::kSmall4K) || node < -1) {
    return Status::DataLoss("arena metadata has kind " + std::to_string(kind) + " node " +
                            std::to_string(node));
  }
  e.capacity_bytes = cap;
  e.page_size = page;
  e.kind = static_cast<PageKind>(kind);
  e.numa_node = node;
  e.name = text.substr(prefix.size() + name_at);
  return e;
}

}  // namespace vmm
