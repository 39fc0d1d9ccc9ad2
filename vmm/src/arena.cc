#include "vmm/arena.h"

#include <fcntl.h>
#include <linux/magic.h>
#include <linux/memfd.h>
#include <numa.h>
#include <numaif.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/vfs.h>

#include <algorithm>
#include <bit>
#include <cinttypes>
#include <cstdio>
#include <cstring>
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
  if (seal_future_writes && (!direct_map || discard_on_free)) {
    return Status::InvalidArgument(
        "arena '" + name +
        "': seal_future_writes needs direct_map (the only writable mapping) and no "
        "discard_on_free (a memfd sealed against writes refuses fallocate(PUNCH_HOLE))");
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
    MutexLock l(&mu_);
    // A populated arena hands out its resident prefix first: pages beyond it cost a first touch
    // (on a VM, the hypervisor backing fresh memory: ~0.3 GB/s here), and the buddy allocator
    // alone would take the arena's smallest maximal block, at its end.
    const uint64_t resident_pages = populate_ ? resident_prefix_.load() / page_size_ : 0;
    auto r = allocator_->Allocate(pages, align_bytes / page_size_, resident_pages);
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
  Extent extent(std::move(state));
  // On failure the extent's pages go back with it.
  VMM_RETURN_IF_ERROR(PopulateForUse(first, pages));
  return extent;
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
    MutexLock l(&mu_);
    live_[first] = new_pages;
    state.num_pages = new_pages;
    allocator_->Free(first + new_pages, old_pages - new_pages);
    ++shrinks_;
    return Status::Ok();
  }

  VMM_RETURN_IF_ERROR(GrowInPlace(state, new_pages));
  Status populated = PopulateForUse(old_end, new_pages - old_pages);
  if (!populated.ok()) {  // give the new tail back: nothing changes
    MutexLock l(&mu_);
    live_[first] = old_pages;
    state.num_pages = old_pages;
    allocator_->Free(old_end, new_pages - old_pages);
    --grows_;
    ++failed_grows_;
  }
  return populated;
}

Status Arena::GrowInPlace(Extent::State& state, uint64_t new_pages) {
  const uint64_t first = state.first_page;
  const uint64_t old_pages = state.num_pages;
  const uint64_t old_end = first + old_pages;
  const std::string what = "arena '" + name_ + "': cannot grow extent pages [" +
                           std::to_string(first) + ", " + std::to_string(old_end) + ") to " +
                           std::to_string(new_pages) + " pages";
  MutexLock l(&mu_);
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

Status Arena::Populate(uint64_t offset, uint64_t bytes) {
  const std::string what = "arena '" + name_ + "': populate [" + std::to_string(offset) + ", +" +
                           std::to_string(bytes) + ")";
  if (offset % page_size_ != 0 || bytes % page_size_ != 0 || offset > capacity_ ||
      bytes > capacity_ - offset) {
    return Status::InvalidArgument(what + ": not page-aligned or beyond the capacity " +
                                   std::to_string(capacity_));
  }
  if (direct_map_ == nullptr || imported_) {
    return Status::FailedPrecondition(what + ": needs the arena's own direct map");
  }
  if (bytes == 0) return Status::Ok();
  if (os_->Madvise(direct_map_ + offset, bytes, MADV_POPULATE_WRITE) != 0) {
    const int err = errno;
    if (err == ENOMEM || err == EFAULT) {
      return Status::ResourceExhausted(
          what + " (" + PageKindName(kind_) + "): the memory cannot be had: " + strerror(err), err);
    }
    return Status::FromErrno(err, what, "madvise(MADV_POPULATE_WRITE)");
  }
  GlobalCounters().bytes_populated += bytes;
  // Grow the prefix when this range starts inside it (a CAS loop: other populates may race).
  uint64_t prefix = resident_prefix_.load();
  while (offset <= prefix && offset + bytes > prefix &&
         !resident_prefix_.compare_exchange_weak(prefix, offset + bytes)) {
  }
  return Status::Ok();
}

Status Arena::PopulateForUse(uint64_t first_page, uint64_t num_pages) {
  if (!populate_) return Status::Ok();
  const uint64_t begin = std::max(first_page * page_size_, resident_prefix_.load());
  const uint64_t end = (first_page + num_pages) * page_size_;
  if (begin >= end) return Status::Ok();
  return Populate(begin, end - begin);
}

void Arena::Discard(uint64_t first_page, uint64_t num_pages) {
  if (!discard_on_free_) return;
  if (os_->Fallocate(fd_.get(), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                     static_cast<off_t>(first_page * page_size_),
                     static_cast<off_t>(num_pages * page_size_)) == 0) {
    MutexLock l(&mu_);
    discarded_bytes_ += num_pages * page_size_;
  }
}

void Arena::Release(uint64_t first_page, uint64_t num_pages) {
  // Give the memory back first: once Free returns, another thread may reuse the pages.
  Discard(first_page, num_pages);
  MutexLock l(&mu_);
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

// ---------------------------------------------------------------------------------------------
// Inspection

ArenaStats Arena::Stats() const {
  ArenaStats s;
  s.name = name_;
  s.kind = kind_;
  s.page_size = page_size_;
  s.capacity_bytes = capacity_;
  MutexLock l(&mu_);
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
  const int want = F_SEAL_SHRINK | F_SEAL_GROW | (imported_ ? 0 : F_SEAL_SEAL) |
                   (write_sealed_ ? F_SEAL_FUTURE_WRITE : 0);
  if (seals < 0 || (seals & want) != want) {
    return Status::Internal(what + " invariant 3: seals " + std::to_string(seals) + " lack " +
                            std::to_string(want));
  }
  MutexLock l(&mu_);
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
