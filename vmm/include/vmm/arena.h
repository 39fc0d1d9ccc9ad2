// vmm/arena.h: an Arena is one memfd of fixed capacity, carved into extents of whole pages.
//
// Concepts (see vmm/vmm.h for the glossary):
//  - The arena's page size is 2 MiB (hugetlb memfd or shmem with transparent huge pages) or 4 KiB.
//    PageSizePolicy::kAuto tries hugetlb, then shmem THP, then 4 KiB, and records why each
//    rejected kind was rejected (fallback_reason()).
//  - The memfd is named "vmm:<name>" so it shows in /proc/PID/maps, bound to a NUMA node with
//    mbind(MPOL_BIND) when one is given, and sealed (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL)
//    once sized and mapped, so no holder of the fd can truncate it under another.
//    ArenaOptions::seal_future_writes adds F_SEAL_FUTURE_WRITE once the direct map exists: that
//    mapping stays the only writable one, for good (see the option).
//  - Extents are runs of contiguous pages handed out by a BuddyAllocator. An Extent is a
//    refcounted handle: copies share it, and the pages return to the pool only when the last copy
//    (including mappings in Reservations, which hold a copy) is released. With
//    ArenaOptions::discard_on_free the released pages are punched out of the memfd
//    (fallocate PUNCH_HOLE) so their memory goes back to the kernel. Arenas sealed against
//    future writes cannot discard (the kernel refuses PUNCH_HOLE on them): they keep freed pages
//    in their pool, resident, for the next allocation.
//  - Resize() grows or shrinks an owned extent at its end, in place: its first page, and so
//    every address of the pages it keeps, stays the same (a KV cache gives memory back ahead of
//    a scale event and takes it back later without moving its data).
//  - Export() describes the arena (fd, capacity, page size, kind, node, name) for another process
//    (ExportMode::kReadOnly: through a read-only file description, so the receiver cannot map it
//    writable);
//    Arena::Import() on the receiving side gives an arena whose pages are addressed by offset
//    (View()), since the allocator lives with the exporter.
//
// Invariants (CheckInvariants()):
//  1. The allocator's invariants hold (page_allocator.h).
//  2. Live owned extents are disjoint, inside the arena, and together with the free blocks they
//     cover every page exactly once.
//  3. The memfd's size equals capacity and its seals include SHRINK, GROW and SEAL, and
//     FUTURE_WRITE when write_sealed().
//
// Thread safety: all methods are safe to call concurrently; allocation state is guarded by an
// internal vmm::Mutex (GUARDED_BY, checked by clang's -Wthread-safety). Extent handles may be
// copied and released from any thread.
#ifndef VMM_ARENA_H_
#define VMM_ARENA_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "vmm/mutex.h"
#include "vmm/os.h"
#include "vmm/page_allocator.h"
#include "vmm/status.h"
#include "vmm/unique_fd.h"

namespace vmm {

inline constexpr uint64_t kSmallPageSize = 4096;
inline constexpr uint64_t kHugePageSize = 2 << 20;

enum class PageKind : int {
  kHugetlb2M = 0,  // memfd_create(MFD_HUGETLB | MFD_HUGE_2MB): pages from the hugetlb pool
  kShmemThp2M,     // plain memfd + madvise(MADV_HUGEPAGE): shmem transparent huge pages
  kSmall4K,        // plain memfd, 4 KiB pages
};
const char* PageKindName(PageKind k);  // "hugetlb-2M", "shmem-thp-2M", "4K"
uint64_t PageKindSize(PageKind k);

enum class PageSizePolicy : int {
  kAuto = 0,  // hugetlb -> shmem THP -> 4 KiB, first that works
  kHugetlb,   // only hugetlb; error if unavailable
  kShmemThp,  // only shmem THP; error if unavailable
  kSmall,     // 4 KiB
};
// Parses "auto", "hugetlb", "thp", "4k" (as used by flags). kInvalidArgument otherwise.
StatusOr<PageSizePolicy> ParsePageSizePolicy(const std::string& s);

struct ArenaOptions {
  std::string name = "arena";   // shows as "memfd:vmm:<name>" in /proc/PID/maps; <= 240 chars
  uint64_t capacity_bytes = 0;  // rounded up to the page size; must be > 0
  PageSizePolicy page_size = PageSizePolicy::kAuto;
  int numa_node = -1;      // -1: no binding; otherwise mbind(MPOL_BIND) to this node
  bool direct_map = true;  // keep one read-write mapping of the whole arena (Extent::data())
  // Punch freed pages out of the memfd (returns memory to the OS). Not with seal_future_writes:
  // the kernel refuses PUNCH_HOLE on a sealed memfd, so sealed arenas keep freed pages in their
  // pool (resident, for the next allocation). Not with populate either (see there).
  bool discard_on_free = false;
  // Residency, as device memory is resident: with populate, every page an Allocate() or a
  // growing Resize() hands out is resident (faulted in with MADV_POPULATE_WRITE over the direct
  // map) when the call returns, so nothing that uses it waits for page faults or for a
  // hypervisor backing fresh guest memory. Create() populates the first `populate_bytes`
  // (rounded up to whole pages, at most the capacity; the default is all of it); Populate()
  // faults in more ahead of time (in chunks, between which a caller reports progress or stops);
  // pages neither reached are populated by the allocation that hands them out (the cost moves
  // there); an allocation takes pages of the resident prefix first where it fits there. Populated
  // pages stay resident: freed pages are never discarded (discard_on_free is refused with
  // populate), short of the kernel swapping shmem out. REQUIRES direct_map and !discard_on_free.
  bool populate = false;
  uint64_t populate_bytes = UINT64_MAX;
  // Seal the memfd with F_SEAL_FUTURE_WRITE once the direct map is made (and populated): the
  // direct map keeps writing (and faulting pages in: MADV_POPULATE_WRITE on it works after the
  // seal), but from then on no fd of the memfd, not even one reopened O_RDWR
  // through /proc/PID/fd/N by a process of the same uid, can be mapped PROT_WRITE|MAP_SHARED
  // (EPERM), mprotect'ed writable, written with write(2) or punched with fallocate (EPERM).
  // For memory only its creator writes (weights). REQUIRES direct_map (nothing else could ever
  // write it) and !discard_on_free (PUNCH_HOLE is refused). A kernel without the seal (before
  // Linux 5.1: EINVAL) gives an unsealed arena whose seal_note() says so.
  bool seal_future_writes = false;
  Os* os = nullptr;  // nullptr: Os::Default()

  Status Validate() const;
};

// How Export() hands out the memfd.
enum class ExportMode : int {
  kReadWrite = 0,  // a dup of the arena's own fd (O_RDWR): the receiver may map it writable
  // A new file description opened O_RDONLY (through /proc/self/fd): mmap(PROT_WRITE, MAP_SHARED)
  // and write(2) on it fail with EACCES / EBADF, and mprotect cannot upgrade a mapping of it.
  // By itself it does not stop a process of the same uid from reopening the memfd by path
  // (/proc/PID/fd/N) with O_RDWR: the memfd's inode, not the description, decides that; an arena
  // sealed against future writes (ArenaOptions::seal_future_writes) refuses that too.
  kReadOnly,
};

// What another process needs to map the arena. The fd is owned by this struct.
struct ExportedArena {
  UniqueFd fd;
  std::string name;
  uint64_t capacity_bytes = 0;
  uint64_t page_size = 0;
  PageKind kind = PageKind::kSmall4K;
  int numa_node = -1;

  // The fields other than the fd as one line of text ("name=...;capacity=...;..."), and back.
  std::string SerializeMetadata() const;
  static StatusOr<ExportedArena> ParseMetadata(const std::string& text);
};

class Arena;

// A refcounted run of pages in an Arena. Copyable; a default-constructed Extent is empty.
class Extent {
 public:
  Extent() = default;

  bool valid() const { return state_ != nullptr; }
  Arena* arena() const;
  const std::shared_ptr<Arena>& arena_ref() const;
  uint64_t first_page() const;
  uint64_t num_pages() const;
  uint64_t offset_bytes() const;  // offset in the memfd
  uint64_t size_bytes() const;
  // Pointer into the arena's direct map, or nullptr when the arena has none.
  void* data() const;
  // Number of handles (including mappings) sharing these pages.
  long use_count() const { return state_ ? state_.use_count() : 0; }
  // True for extents that return their pages to the allocator (false for Import()/View()).
  bool owned() const;
  // Drops this handle; the pages are freed if it was the last one.
  void Reset() { state_.reset(); }

  std::string DebugString() const;  // "arena 'x' pages [a, b) (N MiB)"

 private:
  friend class Arena;
  struct State;
  explicit Extent(std::shared_ptr<State> s) : state_(std::move(s)) {}
  std::shared_ptr<State> state_;
};

struct ArenaStats {
  std::string name;
  PageKind kind = PageKind::kSmall4K;
  uint64_t page_size = 0;
  uint64_t capacity_bytes = 0;
  uint64_t used_bytes = 0;
  uint64_t free_bytes = 0;
  uint64_t peak_used_bytes = 0;
  uint64_t largest_free_bytes = 0;
  uint64_t live_extents = 0;
  // Counted per extent, so live_extents == allocations - frees; a Resize() that changes the size
  // counts as one grow or one shrink, not as an allocation or a free.
  uint64_t allocations = 0;         // Allocate() calls that returned an extent
  uint64_t frees = 0;               // extents whose last handle was released
  uint64_t failed_allocations = 0;  // Allocate() calls refused for lack of space
  uint64_t grows = 0;               // Resize() calls that took pages after an extent
  uint64_t shrinks = 0;             // Resize() calls that freed the tail of an extent
  uint64_t failed_grows = 0;        // Resize() calls refused with kResourceExhausted
  uint64_t discarded_bytes = 0;     // punched out on free (releases and shrinks)
  double fragmentation = 0.0;
  std::string ToString() const;
};

class Arena : public std::enable_shared_from_this<Arena> {
 public:
  // Creates the memfd, sizes and seals it, binds it to the node, maps it if direct_map.
  // Errors: kInvalidArgument (bad options), kUnavailable (the page size asked for cannot be had:
  // the message says why and how to enable it), kResourceExhausted (not enough memory or huge
  // pages), or the failing syscall's status. Nothing is left behind on failure.
  static StatusOr<std::shared_ptr<Arena>> Create(const ArenaOptions& options);

  // Adopts an exported arena received from another process. Verifies the fd's size against the
  // metadata and that it is sealed against shrinking. The result has no allocator: address its
  // pages with View().
  static StatusOr<std::shared_ptr<Arena>> Import(ExportedArena exported, Os* os = nullptr,
                                                 bool direct_map = true);

  ~Arena();
  Arena(const Arena&) = delete;
  Arena& operator=(const Arena&) = delete;

  // Allocates `bytes` (rounded up to whole pages) of contiguous pages aligned to `align_bytes`
  // (a power of two, at least the page size; 0 = page size). Full arena -> kResourceExhausted
  // naming the arena, the request, free bytes and the largest free run. With populate, the
  // extent's pages are resident on return (kResourceExhausted, nothing allocated, when they
  // cannot be populated).
  StatusOr<Extent> Allocate(uint64_t bytes, uint64_t align_bytes = 0);

  // A non-owning extent over [offset, offset + bytes) (page-aligned): for imported arenas, or to
  // address a sub-range of an owned extent. It keeps the arena alive but frees nothing.
  StatusOr<Extent> View(uint64_t offset, uint64_t bytes);

  // Resizes an owned extent in place, keeping its first page (so every address and mapping of
  // the pages it keeps stays valid): smaller frees the pages past the new end (punched out when
  // discard_on_free); larger takes the pages right after the run, which must be free. `bytes`
  // is rounded up to whole pages. Every handle of the extent sees the new size. The same size in
  // pages returns Ok and changes nothing. Pages taken by growing hold what they held when last
  // freed, as with Allocate() (zero if never written or punched out).
  // Errors (nothing changes): kInvalidArgument (empty, not owned: from Import() or View(),
  // another arena's extent, or 0 bytes), kResourceExhausted (growing past the capacity, or a
  // page after the run in use: the message names the arena, the extent, the pages asked and what
  // is in the way; with populate, pages taken that cannot be populated).
  // REQUIRES: no other thread uses a handle of this extent during the call.
  // REQUIRES: when shrinking, no Reservation mapping or View() of this extent covers the pages
  // past the new end (they go back to the pool and may be handed to another extent).
  Status Resize(Extent& extent, uint64_t bytes);

  // Faults in [offset, offset + bytes) ahead of allocation (MADV_POPULATE_WRITE over the direct
  // map; both page-aligned, inside the capacity), with or without ArenaOptions::populate. When
  // the range starts inside the resident prefix, the prefix grows to its end (allocations there
  // need no populating). Errors: kInvalidArgument (range), kFailedPrecondition (no direct map,
  // imported), kResourceExhausted (the memory cannot be had: ENOMEM, or SIGBUS/EFAULT from an
  // exhausted hugetlb pool) or the syscall's status.
  Status Populate(uint64_t offset, uint64_t bytes);
  // Bytes from the start of the arena known to be resident (populated by Create or Populate).
  uint64_t resident_prefix_bytes() const { return resident_prefix_.load(); }

  // Describes the arena for another process with a new fd of its memfd (owned by the result):
  // a dup (kReadWrite) or a read-only reopening (kReadOnly, see ExportMode).
  StatusOr<ExportedArena> Export(ExportMode mode = ExportMode::kReadWrite) const;

  const std::string& name() const { return name_; }
  PageKind kind() const { return kind_; }
  uint64_t page_size() const { return page_size_; }
  uint64_t capacity_bytes() const { return capacity_; }
  uint64_t num_pages() const { return capacity_ / page_size_; }
  int numa_node() const { return numa_node_; }
  int fd() const { return fd_.get(); }
  bool imported() const { return imported_; }
  Os* os() const { return os_; }
  // Base of the direct map, or nullptr.
  uint8_t* direct_map() const { return direct_map_; }
  // Why larger page kinds were not used ("" when the first choice worked).
  const std::string& fallback_reason() const { return fallback_reason_; }
  // Why the NUMA binding was skipped ("" when bound or not asked).
  const std::string& numa_note() const { return numa_note_; }
  // True when the memfd carries F_SEAL_FUTURE_WRITE (only the direct map writes it).
  bool write_sealed() const { return write_sealed_; }
  // Why seal_future_writes was asked but the arena is not sealed ("" otherwise).
  const std::string& seal_note() const { return seal_note_; }

  ArenaStats Stats() const;
  Status CheckInvariants() const;

 private:
  friend class Extent;
  Arena() = default;
  // Called by the last Extent handle of an owned run.
  void Release(uint64_t first_page, uint64_t num_pages) EXCLUDES(mu_);
  // With discard_on_free, punches pages [first_page, first_page + num_pages) out of the memfd
  // and counts them in discarded_bytes_ (best effort: a failed punch leaves the memory in place).
  // Call before the pages go back to the allocator.
  void Discard(uint64_t first_page, uint64_t num_pages) EXCLUDES(mu_);
  // With populate_: faults in the pages of [first_page, first_page + num_pages) past the
  // resident prefix (pages being handed out). Called without the lock: the pages are the
  // caller's, and populating may take long.
  Status PopulateForUse(uint64_t first_page, uint64_t num_pages) EXCLUDES(mu_);
  // Resize's growth of an owned extent's run to `new_pages` (more than it has), in the allocator.
  Status GrowInPlace(Extent::State& state, uint64_t new_pages) EXCLUDES(mu_);

  std::string name_;
  PageKind kind_ = PageKind::kSmall4K;
  uint64_t page_size_ = kSmallPageSize;
  uint64_t capacity_ = 0;
  int numa_node_ = -1;
  bool imported_ = false;
  bool discard_on_free_ = false;
  bool write_sealed_ = false;
  bool populate_ = false;                     // see ArenaOptions::populate
  std::atomic<uint64_t> resident_prefix_{0};  // bytes; only grows
  Os* os_ = nullptr;
  UniqueFd fd_;
  uint8_t* direct_map_ = nullptr;
  std::string fallback_reason_;
  std::string numa_note_;
  std::string seal_note_;

  mutable Mutex mu_;
  std::unique_ptr<BuddyAllocator> allocator_ GUARDED_BY(mu_);  // null for imported arenas
  std::map<uint64_t, uint64_t> live_ GUARDED_BY(mu_);  // first page -> pages, owned live extents
  uint64_t discarded_bytes_ GUARDED_BY(mu_) = 0;
  uint64_t allocations_ GUARDED_BY(mu_) = 0;  // see ArenaStats
  uint64_t frees_ GUARDED_BY(mu_) = 0;
  uint64_t grows_ GUARDED_BY(mu_) = 0;
  uint64_t shrinks_ GUARDED_BY(mu_) = 0;
  uint64_t failed_grows_ GUARDED_BY(mu_) = 0;
};

}  // namespace vmm

#endif  // VMM_ARENA_H_
