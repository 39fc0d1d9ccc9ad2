#include "vmm/arena.h"

#include <fcntl.h>
#include <linux/magic.h>
#include <linux/memfd.h>
#include <numa.h>
#include <numaif.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/vfs.h>

#include <bit>
#include <cinttypes>
#include <cstdio>
#include <sstream>

#include "vmm/host.h"
#include "vmm/stats.h"

namespace vmm {

const char* PageKindName(PageKind k) {
  switch (k) {
    case PageKind::kHugetlb2M:
      return "hugetlb-2M";
    case PageKind::kShmemThp2M:
      return "shmem-thp-2M";
    case PageKind::kSmall4K:
      return "4K";
  }
  return "?";
}

uint64_t PageKindSize(PageKind k) {
  return k == PageKind::kSmall4K ? kSmallPageSize : kHugePageSize;
}

StatusOr<PageSizePolicy> ParsePageSizePolicy(const std::string& s) {
  if (s == "auto") return PageSizePolicy::kAuto;
  if (s == "hugetlb") return PageSizePolicy::kHugetlb;
  if (s == "thp") return PageSizePolicy::kShmemThp;
  if (s == "4k") return PageSizePolicy::kSmall;
  return Status::InvalidArgument("page size policy '" + s +
                                 "' is not one of auto, hugetlb, thp, 4k");
}

namespace {

std::string Mib(uint64_t bytes) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.1f MiB", static_cast<double>(bytes) / (1 << 20));
  return buf;
}

}  // namespace

Status ArenaOptions::Validate() const {
  if (name.empty() || name.size() > 240) {
    return Status::InvalidArgument("arena name must have 1 to 240 characters, got " +
                                   std::to_string(name.size()));
  }
  if (capacity_bytes == 0) return Status::InvalidArgument("arena '" + name + "': capacity is 0");
  if (capacity_bytes > (uint64_t{1} << 46)) {
    return Status::InvalidArgument("arena '" + name + "': capacity " +
                                   std::to_string(capacity_bytes) + " exceeds 64 TiB");
  }
  if (populate && (!direct_map || discard_on_free)) {
    return Status::InvalidArgument("arena '" + name +
                                   "': populate needs direct_map and no discard_on_free");
  }
  if (numa_node < -1) {
    return Status::InvalidArgument("arena '" + name + "': numa_node " + std::to_string(numa_node) +
                                   " is negative");
  }
  if (numa_node >= 0 && NumaAvailable() && numa_node > numa_max_node()) {
    return Status::InvalidArgument("arena '" + name + "': NUMA node " + std::to_string(numa_node) +
                                   " does not exist (highest node is " +
                                   std::to_string(numa_max_node()) + ")");
  }
  return Status::Ok();
}

// ---------------------------------------------------------------------------------------------
// Extent

struct Extent::State {
  std::shared_ptr<Arena> arena;
  uint64_t first_page = 0;
  uint64_t num_pages = 0;
  bool owned = false;
  ~State() {
    if (owned) arena->Release(first_page, num_pages);
  }
};

Arena* Extent::arena() const { return state_ ? state_->arena.get() : nullptr; }
const std::shared_ptr<Arena>& Extent::arena_ref() const {
  static const std::shared_ptr<Arena> kNone;
  return state_ ? state_->arena : kNone;
}
uint64_t Extent::first_page() const { return state_ ? state_->first_page : 0; }
uint64_t Extent::num_pages() const { return state_ ? state_->num_pages : 0; }
uint64_t Extent::offset_bytes() const {
  return state_ ? state_->first_page * state_->arena->page_size() : 0;
}
uint64_t Extent::size_bytes() const {
  return state_ ? state_->num_pages * state_->arena->page_size() : 0;
}
bool Extent::owned() const { return state_ && state_->owned; }
void* Extent::data() const {
  if (!state_ || state_->arena->direct_map() == nullptr) return nullptr;
  return state_->arena->direct_map() + offset_bytes();
}
std::string Extent::DebugString() const {
  if (!state_) return "empty extent";
  return "arena '" + state_->arena->name() + "' pages [" + std::to_string(first_page()) + ", " +
         std::to_string(first_page() + num_pages()) + ") (" + Mib(size_bytes()) + ")";
}

std::string ArenaStats::ToString() const {
  char buf[640];
  std::snprintf(buf, sizeof(buf),
                "arena '%s' (%s): capacity %s, used %s, free %s, peak %s, largest free %s, "
                "%" PRIu64 " live extents, %" PRIu64 " allocs, %" PRIu64 " frees, %" PRIu64
                " refused, fragmentation %.3f, discarded %s, %" PRIu64 " grows (%" PRIu64
                " refused), %" PRIu64 " shrinks",
                name.c_str(), PageKindName(kind), Mib(capacity_bytes).c_str(),
                Mib(used_bytes).c_str(), Mib(free_bytes).c_str(), Mib(peak_used_bytes).c_str(),
                Mib(largest_free_bytes).c_str(), live_extents, allocations, frees,
                failed_allocations, fragmentation, Mib(discarded_bytes).c_str(), grows,
                failed_grows, shrinks);
  return buf;
}

// ---------------------------------------------------------------------------------------------
// Creation

namespace {

// The pieces of a half-built arena, released on failure.
struct Built {
  Os* os = nullptr;
  UniqueFd fd;
  uint8_t* map = nullptr;
  uint64_t capacity = 0;
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

}  // namespace

StatusOr<std::shared_ptr<Arena>> Arena::Create(const ArenaOptions& options) {
  VMM_RETURN_IF_ERROR(options.Validate());
  Os* os = options.os ? options.os : Os::Default();

  std::vector<PageKind> candidates;
  switch (options.page_size) {
    case PageSizePolicy::kAuto:
      candidates = {PageKind::kHugetlb2M, PageKind::kShmemThp2M, PageKind::kSmall4K};
      break;
    case PageSizePolicy::kHugetlb:
      candidates = {PageKind::kHugetlb2M};
      break;
    case PageSizePolicy::kShmemThp:
      candidates = {PageKind::kShmemThp2M};
      break;
    case PageSizePolicy::kSmall:
      candidates = {PageKind::kSmall4K};
      break;
  }

  std::string reasons;
  const std::string what = "arena '" + options.name + "'";
  Status last;
  for (PageKind kind : candidates) {
    const uint64_t page = PageKindSize(kind);
    const uint64_t capacity = (options.capacity_bytes + page - 1) / page * page;
    std::string note;
    Status st;
    // Preconditions the kernel would only reveal late (or never, for THP).
    if (kind == PageKind::kHugetlb2M) {
      const long need = static_cast<long>(capacity / page);
      const HugePagePool pool = ReadHugePagePool(-1);
      if (pool.available() < need) {
        st = Status::Unavailable("hugetlb: needs " + std::to_string(need) +
                                 " free 2 MiB huge pages, " +
                                 std::to_string(std::max(0L, pool.available())) +
                                 " available (vm.nr_hugepages=" + std::to_string(pool.total) +
                                 "; raise it with sysctl -w vm.nr_hugepages=N)");
      } else if (options.numa_node >= 0) {
        const HugePagePool node_pool = ReadHugePagePool(options.numa_node);
        if (node_pool.free >= 0 && node_pool.free < need) {
          st = Status::Unavailable("hugetlb: needs " + std::to_string(need) +
                                   " free 2 MiB huge pages on node " +
                                   std::to_string(options.numa_node) + ", " +
                                   std::to_string(node_pool.free) + " free there");
        }
      }
    } else if (kind == PageKind::kShmemThp2M) {
      std::string why;
      if (!ShmemThpUsable(&why)) st = Status::Unavailable("shmem THP: " + why);
    }

    Built b;
    b.os = os;
    b.capacity = capacity;
    if (st.ok()) {
      unsigned flags = MFD_CLOEXEC | MFD_ALLOW_SEALING;
      if (kind == PageKind::kHugetlb2M) flags |= MFD_HUGETLB | MFD_HUGE_2MB;
      const std::string memfd_name = "vmm:" + options.name;
      const int fd = os->MemfdCreate(memfd_name.c_str(), flags);
      if (fd < 0)
        st = Status::FromErrno(errno, what + " (" + PageKindName(kind) + ")", "memfd_create");
      b.fd.Reset(fd);
    }
    if (st.ok() && RetryOnEintr([&] { return os->Ftruncate(b.fd.get(), capacity); }) != 0) {
      st = Status::FromErrno(errno, what + ": size to " + std::to_string(capacity), "ftruncate");
    }
    if (st.ok() &&
        os->FcntlInt(b.fd.get(), F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0) {
      st = Status::FromErrno(errno, what + ": seal against shrink/grow", "fcntl(F_ADD_SEALS)");
    }
    // A mapping is needed for the NUMA binding even without a direct map.
    const bool bind = options.numa_node >= 0 && NumaAvailable();
    if (st.ok() && (options.direct_map || bind)) {
      auto m = MapAligned(os, b.fd.get(), capacity, what);
      if (m.ok()) {
        b.map = *m;
      } else {
        st = m.status();
        if (kind == PageKind::kHugetlb2M && st.err() == ENOMEM) {
          st = Status::Unavailable("hugetlb: the kernel could not reserve " +
                                   std::to_string(capacity / page) + " huge pages (" +
                                   st.message() + ")");
        }
      }
    }
    if (st.ok() && kind == PageKind::kShmemThp2M && b.map != nullptr &&
        os->Madvise(b.map, capacity, MADV_HUGEPAGE) != 0) {
      st = Status::FromErrno(errno, what + ": ask for huge pages", "madvise(MADV_HUGEPAGE)");
    }
    if (st.ok() && bind) st = BindToNode(os, b.map, capacity, options.numa_node, what);
    if (st.ok() && options.populate) {
      if (os->Madvise(b.map, capacity, MADV_POPULATE_WRITE) != 0) {
        st = Status::FromErrno(errno,
                               what + ": populate " + std::to_string(capacity >> 20) + " MiB (" +
                                   PageKindName(kind) + ")",
                               "madvise(MADV_POPULATE_WRITE)");
      } else {
        GlobalCounters().bytes_populated += capacity;
      }
    }
    if (st.ok() && options.numa_node >= 0 && !NumaAvailable()) {
      note = "libnuma reports NUMA unavailable; the binding to node " +
             std::to_string(options.numa_node) + " was skipped";
    }
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
    arena->capacity_ = capacity;
    arena->numa_node_ = options.numa_node;
    arena->discard_on_free_ = options.discard_on_free;
    arena->os_ = os;
    arena->fd_ = std::move(b.fd);
    arena->fallback_reason_ = reasons;
    arena->numa_note_ = note;
    arena->allocator_ = std::make_unique<BuddyAllocator>(capacity / page);
    if (options.direct_map) {
      arena->direct_map_ = std::exchange(b.map, nullptr);
    }  // else ~Built unmaps the binding-only mapping; the shared policy stays with the file.
    GlobalCounters().arenas_now++;
    GlobalCounters().arena_bytes_now += static_cast<int64_t>(capacity);
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

Arena::~Arena() {
  if (direct_map_ != nullptr) os_->Munmap(direct_map_, capacity_);
  GlobalCounters().arenas_now--;
  GlobalCounters().arena_bytes_now -= static_cast<int64_t>(capacity_);
}

// ---------------------------------------------------------------------------------------------
// Allocation

StatusOr<Extent> Arena::Allocate(uint64_t bytes, uint64_t align_bytes) {
  if (imported_) {
    return Status::FailedPrecondition("arena '" + name_ +
                                      "' is imported; its owner allocates, use View()");
  }
  if (bytes == 0) return Status::InvalidArgument("arena '" + name_ + "': allocate 0 bytes");
  if (align_bytes == 0) align_bytes = page_size_;
  if (!std::has_single_bit(align_bytes) || align_bytes < page_size_) {
    return Status::InvalidArgument(
        "arena '" + name_ + "': alignment " + std::to_string(align_bytes) +
        " is not a power of two >= the page size " + std::to_string(page_size_));
  }
  const uint64_t pages = (bytes + page_size_ - 1) / page_size_;
  uint64_t first;
  {
    std::lock_guard<std::mutex> l(mu_);
    auto r = allocator_->Allocate(pages, align_bytes / page_size_);
    if (!r.ok()) {
      const PageAllocatorStats s = allocator_->Stats();
      return Status(r.status().code(), 0,
                    "arena '" + name_ + "' is full: cannot allocate " + Mib(bytes) + " (" +
                        std::to_string(pages) + " pages of " + Mib(page_size_) + "); " +
                        Mib(s.free_pages * page_size_) + " free of " + Mib(capacity_) +
                        ", largest free run " + Mib(s.largest_free_run_pages * page_size_));
    }
    first = *r;
    live_.emplace(first, pages);
    ++allocations_;
  }
  auto state = std::make_shared<Extent::State>();
  state->arena = shared_from_this();
  state->first_page = first;
  state->num_pages = pages;
  state->owned = true;
  return Extent(std::move(state));
}

StatusOr<Extent> Arena::View(uint64_t offset, uint64_t bytes) {
  if (bytes == 0 || offset % page_size_ != 0 || bytes % page_size_ != 0) {
    return Status::InvalidArgument(
        "arena '" + name_ + "': view [" + std::to_string(offset) + ", +" + std::to_string(bytes) +
        ") is empty or not aligned to the page size " + std::to_string(page_size_));
  }
  if (offset > capacity_ || bytes > capacity_ - offset) {
    return Status::OutOfRange("arena '" + name_ + "': view [" + std::to_string(offset) + ", +" +
                              std::to_string(bytes) + ") ends beyond the capacity " +
                              std::to_string(capacity_));
  }
  auto state = std::make_shared<Extent::State>();
  state->arena = shared_from_this();
  state->first_page = offset / page_size_;
  state->num_pages = bytes / page_size_;
  state->owned = false;
  return Extent(std::move(state));
}

Status Arena::Resize(Extent& extent, uint64_t bytes) {
  if (!extent.valid()) {
    return Status::InvalidArgument("arena '" + name_ + "': resize of an empty extent");
  }
  Extent::State& state = *extent.state_;
  if (state.arena.get() != this) {
    return Status::InvalidArgument("arena '" + name_ + "': resize of " + extent.DebugString() +
                                   ", which belongs to another arena");
  }
  if (!state.owned) {
    return Status::InvalidArgument("arena '" + name_ + "': resize of " + extent.DebugString() +
                                   ", which is not owned (a View() or an imported arena's)");
  }
  if (bytes == 0) {
    return Status::InvalidArgument("arena '" + name_ + "': resize of " + extent.DebugString() +
                                   " to 0 bytes; release the extent instead");
  }
  const uint64_t first = state.first_page;
  const uint64_t old_pages = state.num_pages;
  const uint64_t new_pages = bytes / page_size_ + (bytes % page_size_ != 0);  // no overflow
  const uint64_t old_end = first + old_pages;
  if (new_pages == old_pages) return Status::Ok();

  if (new_pages < old_pages) {
    // Same order as Release: punch while the tail is still ours, then give it to the allocator.
    Discard(first + new_pages, old_pages - new_pages);
    std::lock_guard<std::mutex> l(mu_);
    live_[first] = new_pages;
    state.num_pages = new_pages;
    allocator_->Free(first + new_pages, old_pages - new_pages);
    ++shrinks_;
    return Status::Ok();
  }

  const std::string what = "arena '" + name_ + "': cannot grow extent pages [" +
                           std::to_string(first) + ", " + std::to_string(old_end) + ") to " +
                           std::to_string(new_pages) + " pages";
  std::lock_guard<std::mutex> l(mu_);
  if (new_pages > num_pages() - first) {
    ++failed_grows_;
    return Status::ResourceExhausted(what + ": it would end at page " +
                                     std::to_string(first + new_pages) + ", past the capacity of " +
                                     std::to_string(num_pages()) + " pages");
  }
  const uint64_t new_end = first + new_pages;
  if (!allocator_->AllocateAt(old_end, new_pages - old_pages)) {
    ++failed_grows_;
    // Every page that is not free belongs to a live extent (invariant 2); name the first one in
    // the way. None can start before old_end: it would overlap this extent.
    std::string blocker = "a page in use";
    auto it = live_.lower_bound(old_end);
    if (it != live_.end() && it->first < new_end) {
      blocker = "extent pages [" + std::to_string(it->first) + ", " +
                std::to_string(it->first + it->second) + ")";
    }
    return Status::ResourceExhausted(what + ": pages [" + std::to_string(old_end) + ", " +
                                     std::to_string(new_end) + ") are not free, " + blocker +
                                     " is in the way");
  }
  live_[first] = new_pages;
  state.num_pages = new_pages;
  ++grows_;
  return Status::Ok();
}

void Arena::Discard(uint64_t first_page, uint64_t num_pages) {
  if (!discard_on_free_) return;
  if (os_->Fallocate(fd_.get(), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                     static_cast<off_t>(first_page * page_size_),
                     static_cast<off_t>(num_pages * page_size_)) == 0) {
    std::lock_guard<std::mutex> l(mu_);
    discarded_bytes_ += num_pages * page_size_;
  }
}

void Arena::Release(uint64_t first_page, uint64_t num_pages) {
  // Give the memory back first: once Free returns, another thread may reuse the pages.
  Discard(first_page, num_pages);
  std::lock_guard<std::mutex> l(mu_);
  auto it = live_.find(first_page);
  if (it == live_.end() || it->second != num_pages) {
    std::fprintf(stderr, "vmm: arena '%s': release of unknown extent at page %llu\n", name_.c_str(),
                 static_cast<unsigned long long>(first_page));
    std::abort();
  }
  live_.erase(it);
  allocator_->Free(first_page, num_pages);
  ++frees_;
}

StatusOr<ExportedArena> Arena::Export() const {
  ExportedArena e;
  const int fd = fcntl(fd_.get(), F_DUPFD_CLOEXEC, 0);
  if (fd < 0) return Status::FromErrno(errno, "export arena '" + name_ + "'", "fcntl(F_DUPFD)");
  e.fd.Reset(fd);
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

// ---------------------------------------------------------------------------------------------
// Inspection

ArenaStats Arena::Stats() const {
  ArenaStats s;
  s.name = name_;
  s.kind = kind_;
  s.page_size = page_size_;
  s.capacity_bytes = capacity_;
  std::lock_guard<std::mutex> l(mu_);
  if (allocator_) {
    const PageAllocatorStats a = allocator_->Stats();
    s.used_bytes = a.used_pages * page_size_;
    s.free_bytes = a.free_pages * page_size_;
    s.peak_used_bytes = a.peak_used_pages * page_size_;
    s.largest_free_bytes = a.largest_free_run_pages * page_size_;
    s.failed_allocations = a.failed_allocations;  // AllocateAt refusals are not counted there
    s.fragmentation = a.fragmentation;
  }
  s.live_extents = live_.size();
  s.allocations = allocations_;
  s.frees = frees_;
  s.grows = grows_;
  s.shrinks = shrinks_;
  s.failed_grows = failed_grows_;
  s.discarded_bytes = discarded_bytes_;
  return s;
}

Status Arena::CheckInvariants() const {
  const std::string what = "arena '" + name_ + "'";
  struct stat st;
  if (fstat(fd_.get(), &st) != 0) return Status::FromErrno(errno, what, "fstat");
  if (static_cast<uint64_t>(st.st_size) != capacity_) {
    return Status::Internal(what + " invariant 3: memfd size " + std::to_string(st.st_size) +
                            " != capacity " + std::to_string(capacity_));
  }
  const int seals = fcntl(fd_.get(), F_GET_SEALS);
  const int want = F_SEAL_SHRINK | F_SEAL_GROW | (imported_ ? 0 : F_SEAL_SEAL);
  if (seals < 0 || (seals & want) != want) {
    return Status::Internal(what + " invariant 3: seals " + std::to_string(seals) + " lack " +
                            std::to_string(want));
  }
  std::lock_guard<std::mutex> l(mu_);
  if (!allocator_) return Status::Ok();
  VMM_RETURN_IF_ERROR(allocator_->CheckInvariants().Annotate(what));
  uint64_t live_pages = 0, end = 0;
  for (const auto& [first, n] : live_) {
    if (first < end || first + n > num_pages()) {
      return Status::Internal(what + " invariant 2: live extent at page " + std::to_string(first) +
                              " overlaps or leaves the arena");
    }
    if (allocator_->IsFree(first) || allocator_->IsFree(first + n - 1)) {
      return Status::Internal(what + " invariant 2: live extent at page " + std::to_string(first) +
                              " is also free");
    }
    end = first + n;
    live_pages += n;
  }
  if (live_pages + allocator_->free_pages() != num_pages()) {
    return Status::Internal(what + " invariant 2: live " + std::to_string(live_pages) + " + free " +
                            std::to_string(allocator_->free_pages()) +
                            " pages != " + std::to_string(num_pages()));
  }
  return Status::Ok();
}

}  // namespace vmm
