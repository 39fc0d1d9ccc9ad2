#include "vmm/page_allocator.h"

#include <bit>
#include <cstdio>
#include <cstdlib>
#include <optional>

namespace vmm {

namespace {

uint64_t BlockSize(int order) { return uint64_t{1} << order; }

// Smallest order whose block holds n pages.
int OrderFor(uint64_t n) { return n <= 1 ? 0 : 64 - std::countl_zero(n - 1); }

[[noreturn]] void Corruption(const char* what, uint64_t a, uint64_t b) {
  std::fprintf(stderr, "vmm: BuddyAllocator corruption: %s (%llu, %llu)\n", what,
               static_cast<unsigned long long>(a), static_cast<unsigned long long>(b));
  std::abort();
}

}  // namespace

BuddyAllocator::BuddyAllocator(uint64_t total_pages) : total_pages_(total_pages) {
  FreeRun(0, total_pages);
}

void BuddyAllocator::InsertFree(uint64_t start, int order) {
  free_lists_[order].insert(start);
  free_by_start_.emplace(start, order);
  free_pages_ += BlockSize(order);
}

void BuddyAllocator::EraseFree(uint64_t start, int order) {
  free_lists_[order].erase(start);
  free_by_start_.erase(start);
  free_pages_ -= BlockSize(order);
}

void BuddyAllocator::FreeBlock(uint64_t start, int order) {
  // Merge with the buddy while it is free at the same order and the merged block fits.
  while (order < kMaxOrder) {
    const uint64_t buddy = start ^ BlockSize(order);
    if (buddy + BlockSize(order) > total_pages_) break;
    auto it = free_lists_[order].find(buddy);
    if (it == free_lists_[order].end()) break;
    EraseFree(buddy, order);
    start = std::min(start, buddy);
    ++order;
  }
  InsertFree(start, order);
}

void BuddyAllocator::FreeRun(uint64_t start, uint64_t num_pages) {
  while (num_pages > 0) {
    // Largest aligned block starting at `start` that fits in the run.
    int order = start == 0 ? kMaxOrder : std::countr_zero(start);
    if (order > kMaxOrder) order = kMaxOrder;
    while (BlockSize(order) > num_pages) --order;
    FreeBlock(start, order);
    start += BlockSize(order);
    num_pages -= BlockSize(order);
  }
}

StatusOr<uint64_t> BuddyAllocator::Allocate(uint64_t num_pages, uint64_t align_pages,
                                            uint64_t prefer_below_page) {
  if (num_pages == 0) return Status::InvalidArgument("allocate 0 pages");
  if (align_pages == 0 || !std::has_single_bit(align_pages)) {
    return Status::InvalidArgument("alignment of " + std::to_string(align_pages) +
                                   " pages is not a power of two");
  }
  if (num_pages > total_pages_) {
    ++failed_allocations_;
    return Status::ResourceExhausted("request of " + std::to_string(num_pages) +
                                     " pages exceeds the capacity of " +
                                     std::to_string(total_pages_) + " pages");
  }
  // Buddy blocks are aligned to their size, so a block of order >= log2(align) is aligned.
  const int want = std::max(OrderFor(num_pages), std::countr_zero(align_pages));
  int first_order = -1;  // the order to take from: one below prefer_below_page, else the smallest
  for (int order = want; order <= kMaxOrder && first_order < 0; ++order) {
    if (!free_lists_[order].empty() && *free_lists_[order].begin() + num_pages <= prefer_below_page)
      first_order = order;
  }
  if (first_order < 0 && prefer_below_page > 0) {
    // No block below the mark holds it, but a run of adjacent free blocks there may.
    if (auto run = FindRun(num_pages, align_pages);
        run && run->second + num_pages <= prefer_below_page) {
      TakeCovered(free_by_start_.find(run->first), run->second, num_pages);
      CountAllocation();
      return run->second;
    }
  }
  for (int order = first_order >= 0 ? first_order : want; order <= kMaxOrder; ++order) {
    if (free_lists_[order].empty()) continue;
    const uint64_t start = *free_lists_[order].begin();  // lowest address: less fragmentation
    EraseFree(start, order);
    // Give back the tail beyond num_pages (as in alloc_pages_exact).
    const uint64_t block = BlockSize(order);
    if (block > num_pages) FreeRun(start + num_pages, block - num_pages);
    CountAllocation();
    return start;
  }
  // No single block is large enough, but adjacent free blocks that are not buddies of each
  // other (e.g. the tail of one extent next to the head of another) may still form a run.
  if (auto run = TakeRun(num_pages, align_pages)) {
    CountAllocation();
    return *run;
  }
  ++failed_allocations_;
  const PageAllocatorStats s = Stats();
  return Status::ResourceExhausted(
      "no free run of " + std::to_string(num_pages) + " pages (aligned to " +
      std::to_string(align_pages) + "): " + std::to_string(s.free_pages) + " of " +
      std::to_string(total_pages_) + " pages free, largest free block " +
      std::to_string(s.largest_free_run_pages) + " pages");
}

std::optional<std::pair<uint64_t, uint64_t>> BuddyAllocator::FindRun(uint64_t num_pages,
                                                                     uint64_t align_pages) const {
  // First fit by address over maximal runs of adjacent free blocks.
  uint64_t run_start = 0, run_end = 0;
  for (auto it = free_by_start_.begin(); it != free_by_start_.end(); ++it) {
    if (it->first != run_end) run_start = it->first;
    run_end = it->first + BlockSize(it->second);
    const uint64_t first = (run_start + align_pages - 1) / align_pages * align_pages;
    if (first >= run_end || run_end - first < num_pages) continue;
    return std::make_pair(run_start, first);
  }
  return std::nullopt;
}

std::optional<uint64_t> BuddyAllocator::TakeRun(uint64_t num_pages, uint64_t align_pages) {
  const auto run = FindRun(num_pages, align_pages);
  if (!run) return std::nullopt;
  TakeCovered(free_by_start_.find(run->first), run->second, num_pages);
  return run->second;
}

bool BuddyAllocator::AllocateAt(uint64_t first_page, uint64_t num_pages) {
  if (num_pages == 0 || first_page >= total_pages_ || num_pages > total_pages_ - first_page) {
    return false;
  }
  // The block holding first_page, then adjacent blocks up to the end of the run: any gap between
  // them is a used page.
  auto block = free_by_start_.upper_bound(first_page);
  if (block == free_by_start_.begin()) return false;
  --block;
  uint64_t covered_end = block->first + BlockSize(block->second);
  if (covered_end <= first_page) return false;
  for (auto b = std::next(block); covered_end < first_page + num_pages; ++b) {
    if (b == free_by_start_.end() || b->first != covered_end) return false;
    covered_end += BlockSize(b->second);
  }
  TakeCovered(block, first_page, num_pages);
  CountAllocation();
  return true;
}

void BuddyAllocator::TakeCovered(std::map<uint64_t, int>::iterator block, uint64_t first_page,
                                 uint64_t num_pages) {
  // Take every block up to (and including) the one holding the last page, then give back the
  // head before first_page and the tail after the run.
  const uint64_t head_start = block->first;
  const uint64_t end = first_page + num_pages;
  uint64_t covered_end = head_start;
  while (covered_end < end) {
    const uint64_t start = block->first;
    const int order = block->second;
    ++block;  // before EraseFree invalidates it
    EraseFree(start, order);
    covered_end = start + BlockSize(order);
  }
  if (first_page > head_start) FreeRun(head_start, first_page - head_start);
  if (covered_end > end) FreeRun(end, covered_end - end);
}

void BuddyAllocator::CountAllocation() {
  ++allocations_;
  peak_used_pages_ = std::max(peak_used_pages_, used_pages());
}

uint64_t BuddyAllocator::LargestFreeRun() const {
  uint64_t best = 0, run_start = 0, run_end = 0;
  for (const auto& [start, order] : free_by_start_) {
    if (start != run_end) run_start = start;
    run_end = start + BlockSize(order);
    best = std::max(best, run_end - run_start);
  }
  return best;
}

void BuddyAllocator::Free(uint64_t first_page, uint64_t num_pages) {
  if (num_pages == 0 || first_page >= total_pages_ || num_pages > total_pages_ - first_page) {
    Corruption("free outside the arena", first_page, num_pages);
  }
  // The run must not overlap any free block: check the block at or before first_page and any
  // block starting inside the run.
  auto it = free_by_start_.upper_bound(first_page);
  if (it != free_by_start_.begin()) {
    auto prev = std::prev(it);
    if (prev->first + BlockSize(prev->second) > first_page) {
      Corruption("double free (run starts inside a free block)", first_page, num_pages);
    }
  }
  if (it != free_by_start_.end() && it->first < first_page + num_pages) {
    Corruption("double free (run overlaps a free block)", first_page, num_pages);
  }
  ++frees_;
  FreeRun(first_page, num_pages);
}

bool BuddyAllocator::IsFree(uint64_t page) const {
  auto it = free_by_start_.upper_bound(page);
  if (it == free_by_start_.begin()) return false;
  --it;
  return page < it->first + BlockSize(it->second);
}

PageAllocatorStats BuddyAllocator::Stats() const {
  PageAllocatorStats s;
  s.total_pages = total_pages_;
  s.free_pages = free_pages_;
  s.used_pages = used_pages();
  s.peak_used_pages = peak_used_pages_;
  s.allocations = allocations_;
  s.frees = frees_;
  s.failed_allocations = failed_allocations_;
  s.free_blocks = free_by_start_.size();
  s.free_blocks_per_order.assign(kMaxOrder + 1, 0);
  for (int o = 0; o <= kMaxOrder; ++o) {
    s.free_blocks_per_order[o] = free_lists_[o].size();
    if (!free_lists_[o].empty()) s.largest_free_block_pages = BlockSize(o);
  }
  s.largest_free_run_pages = LargestFreeRun();
  s.fragmentation =
      free_pages_ == 0 ? 0.0 : 1.0 - static_cast<double>(s.largest_free_run_pages) / free_pages_;
  return s;
}

std::vector<std::pair<uint64_t, uint64_t>> BuddyAllocator::FreeBlocks() const {
  std::vector<std::pair<uint64_t, uint64_t>> out;
  out.reserve(free_by_start_.size());
  for (const auto& [start, order] : free_by_start_) out.emplace_back(start, BlockSize(order));
  return out;
}

Status BuddyAllocator::CheckInvariants() const {
  uint64_t sum = 0, end_of_prev = 0, blocks_in_lists = 0;
  for (int o = 0; o <= kMaxOrder; ++o) {
    blocks_in_lists += free_lists_[o].size();
    for (uint64_t start : free_lists_[o]) {
      auto it = free_by_start_.find(start);
      if (it == free_by_start_.end() || it->second != o) {
        return Status::Internal("invariant 2: block " + std::to_string(start) + " of order " +
                                std::to_string(o) + " missing from free_by_start");
      }
    }
  }
  if (blocks_in_lists != free_by_start_.size()) {
    return Status::Internal("invariant 2: free lists and free_by_start differ in size");
  }
  for (const auto& [start, order] : free_by_start_) {
    const uint64_t size = BlockSize(order);
    if (start % size != 0 || start + size > total_pages_) {
      return Status::Internal("invariant 1: block " + std::to_string(start) + " order " +
                              std::to_string(order) + " misaligned or outside the arena");
    }
    if (start < end_of_prev) {
      return Status::Internal("invariant 2: free block " + std::to_string(start) + " overlaps");
    }
    end_of_prev = start + size;
    sum += size;
    const uint64_t buddy = start ^ size;
    if (buddy + size <= total_pages_ && order < kMaxOrder) {
      auto b = free_by_start_.find(buddy);
      if (b != free_by_start_.end() && b->second == order) {
        return Status::Internal("invariant 3: block " + std::to_string(start) +
                                " and its buddy are both free at order " + std::to_string(order));
      }
    }
  }
  if (sum != free_pages_) {
    return Status::Internal("invariant 4: free blocks sum to " + std::to_string(sum) +
                            " pages but free_pages is " + std::to_string(free_pages_));
  }
  if (peak_used_pages_ < used_pages()) return Status::Internal("invariant 4: peak < used");
  return Status::Ok();
}

}  // namespace vmm
