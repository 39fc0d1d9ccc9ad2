// vmm/page_allocator.h: a buddy allocator of page numbers (pure metadata, no memory touched).
//
// Concept: the arena's pages [0, total_pages) are kept as free blocks of 2^order pages, each
// aligned to its size (the kernel's buddy system). Allocate(n) takes the lowest-addressed block of
// the smallest order >= ceil(log2 n) (and >= log2 align), splits it down, and gives the unused tail
// back as smaller blocks, so an extent occupies exactly n pages (like alloc_pages_exact). When no
// block is large enough, a run of adjacent free blocks that are not buddies (exact extents leave
// such runs behind) is taken instead, first fit by address, O(free blocks). AllocateAt takes a
// run at a given page (an extent growing in place): the free blocks covering it are taken and the
// parts of them outside the run go back as maximal aligned blocks. Free decomposes a run into
// maximal aligned blocks and merges each with its buddy while the buddy is free. Allocate is
// O(log^2 n) set operations at worst (one per order), Free O(log^2 n), AllocateAt O(log^2 n) plus
// one per free block covering the run.
//
// Invariants (CheckInvariants() verifies all of them):
//  1. Every free block [start, start + 2^order) lies inside [0, total_pages) and start is a
//     multiple of 2^order.
//  2. Free blocks do not overlap; `free_by_start_` and `free_lists_` hold exactly the same blocks.
//  3. No free block has its buddy free at the same order (merging is complete).
//  4. free_pages_ equals the sum of the free blocks' sizes; used = total - free; peak >= used.
//
// Thread safety: none. The owner (vmm::Arena) serializes calls with its own mutex.
#ifndef VMM_PAGE_ALLOCATOR_H_
#define VMM_PAGE_ALLOCATOR_H_

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "vmm/status.h"

namespace vmm {

struct PageAllocatorStats {
  uint64_t total_pages = 0;
  uint64_t free_pages = 0;
  uint64_t used_pages = 0;
  uint64_t peak_used_pages = 0;           // highest used_pages ever seen
  uint64_t largest_free_block_pages = 0;  // the largest single buddy block
  uint64_t largest_free_run_pages = 0;    // the largest extent Allocate can return right now
  uint64_t free_blocks = 0;               // number of free buddy blocks
  uint64_t allocations = 0;               // successful Allocate and AllocateAt calls
  uint64_t frees = 0;                     // Free calls (whole runs or sub-runs)
  uint64_t failed_allocations = 0;        // Allocate calls refused for lack of space
  // 1 - largest_free_run / free_pages: 0 when all free memory is one run, -> 1 when the free
  // memory is shattered into single pages. 0 when nothing is free.
  double fragmentation = 0.0;
  std::vector<uint64_t> free_blocks_per_order;  // index = order
};

class BuddyAllocator {
 public:
  static constexpr int kMaxOrder = 48;

  // All pages start free.
  explicit BuddyAllocator(uint64_t total_pages);

  // Returns the first page of `num_pages` contiguous pages whose first page is a multiple of
  // `align_pages`. REQUIRES: num_pages >= 1; align_pages a power of two.
  // Errors: kInvalidArgument for a bad request, kResourceExhausted when no free block is large
  // enough (the message gives free pages and the largest free block).
  // `prefer_below_page`: where some pages are cheaper than others (a populated arena's resident
  // prefix [0, prefer_below_page)), the smallest order whose lowest-addressed block would hold
  // the extent entirely below it is taken first, else the lowest run of adjacent free blocks
  // below it; only when neither exists does the usual choice (the smallest order, which an
  // arena's maximal blocks put at its end) apply.
  StatusOr<uint64_t> Allocate(uint64_t num_pages, uint64_t align_pages = 1,
                              uint64_t prefer_below_page = 0);

  // Takes exactly pages [first_page, first_page + num_pages), e.g. the pages right after an
  // extent that grows in place. Returns true (counted in `allocations`, like Allocate) when every
  // page of the run is free and inside [0, total_pages); the caller then owns the run and gives
  // it back with Free. Returns false and changes nothing (no counter either) otherwise, and for
  // num_pages 0.
  bool AllocateAt(uint64_t first_page, uint64_t num_pages);

  // Returns pages [first_page, first_page + num_pages) to the free pool.
  // REQUIRES: the run was returned by Allocate (or is a sub-run of one) and is not free already.
  // A run that overlaps free pages or leaves the arena is memory corruption: aborts.
  void Free(uint64_t first_page, uint64_t num_pages);

  // True if page `page` is inside a free block.
  bool IsFree(uint64_t page) const;

  uint64_t total_pages() const { return total_pages_; }
  uint64_t free_pages() const { return free_pages_; }
  uint64_t used_pages() const { return total_pages_ - free_pages_; }
  PageAllocatorStats Stats() const;

  // Free blocks as (first_page, num_pages), ascending.
  std::vector<std::pair<uint64_t, uint64_t>> FreeBlocks() const;

  Status CheckInvariants() const;

 private:
  void InsertFree(uint64_t start, int order);
  void EraseFree(uint64_t start, int order);
  // Frees one aligned block, merging with its buddies.
  void FreeBlock(uint64_t start, int order);
  // Frees an arbitrary run by decomposing it into maximal aligned blocks.
  void FreeRun(uint64_t start, uint64_t num_pages);
  // The fallback of Allocate: the lowest run of adjacent free blocks holding num_pages pages at an
  // aligned start, taken out of the free pool (head and tail given back); nullopt if none.
  std::optional<uint64_t> TakeRun(uint64_t num_pages, uint64_t align_pages);
  // The lowest such run without taking it: (the start of its first free block, the aligned first
  // page of the extent); nullopt if none.
  std::optional<std::pair<uint64_t, uint64_t>> FindRun(uint64_t num_pages,
                                                       uint64_t align_pages) const;
  // Takes pages [first_page, first_page + num_pages) out of the free pool: erases the free blocks
  // from `block` on until the run is covered and gives back, as maximal aligned blocks, the parts
  // of them before first_page and after the run. REQUIRES: `block` starts at or before
  // first_page and it and the blocks after it are adjacent up to the end of the run.
  void TakeCovered(std::map<uint64_t, int>::iterator block, uint64_t first_page,
                   uint64_t num_pages);
  // Counts a successful allocation and updates the peak.
  void CountAllocation();
  uint64_t LargestFreeRun() const;

  uint64_t total_pages_;
  uint64_t free_pages_ = 0;
  uint64_t peak_used_pages_ = 0;
  uint64_t allocations_ = 0;
  uint64_t frees_ = 0;
  uint64_t failed_allocations_ = 0;
  std::set<uint64_t> free_lists_[kMaxOrder + 1];  // start pages of free blocks, per order
  std::map<uint64_t, int> free_by_start_;         // start page -> order, all free blocks
};

}  // namespace vmm

#endif  // VMM_PAGE_ALLOCATOR_H_
