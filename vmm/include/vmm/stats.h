// vmm/stats.h: process-wide accounting of what vmm does to the address space.
//
// Counters are atomics updated by Arena and Reservation; they are monotonic except the "now"
// gauges. ProcessVmaCount() reads /proc/self/maps (ReadMaxMapCount() in host.h the limit):
// every mapping into a reservation splits its filler VMA, so a process mapping many small slots
// approaches that limit, and mmap/mremap then fail with ENOMEM. vmm reports that case as
// kResourceExhausted naming the limit (DiagnoseEnomem()).
//
// Thread safety: all functions are safe from any thread.
#ifndef VMM_STATS_H_
#define VMM_STATS_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>

#include "vmm/status.h"

namespace vmm {

struct Counters {
  std::atomic<uint64_t> bytes_mapped{0};     // Map() calls, total bytes
  std::atomic<uint64_t> bytes_populated{0};  // of which populated at map time
  std::atomic<uint64_t> bytes_unmapped{0};   // Unmap() + reservation teardown
  std::atomic<uint64_t> bytes_moved{0};      // Move()/Swap() by mremap
  std::atomic<uint64_t> bytes_copied{0};     // CopyBytes(): data actually copied
  std::atomic<uint64_t> map_calls{0};
  std::atomic<uint64_t> move_calls{0};
  std::atomic<int64_t> mapped_bytes_now{0};    // currently mapped into reservations
  std::atomic<int64_t> mappings_now{0};        // live mappings in reservations
  std::atomic<int64_t> reserved_bytes_now{0};  // address space held by reservations
  std::atomic<int64_t> reservations_now{0};
  std::atomic<int64_t> arenas_now{0};
  std::atomic<int64_t> arena_bytes_now{0};  // capacity of live arenas
};

// The process-wide counters.
Counters& GlobalCounters();

// memcpy that is counted in bytes_copied: use it wherever vmm users move data for real, so the
// report shows copies next to remaps.
void CopyBytes(void* dst, const void* src, size_t n);

// Number of lines in /proc/self/maps (= VMAs), or -1 if unreadable.
long ProcessVmaCount();

// The status of a failed mmap/mremap/mprotect with errno `err`. For ENOMEM it says whether the
// VMA limit is the likely cause: "<context>: mmap: ENOMEM (...); 65530 of vm.max_map_count=65530
// mappings in use: the limit is exhausted; raise it with sysctl -w vm.max_map_count=N".
// Always kResourceExhausted for ENOMEM; other errnos as Status::FromErrno.
Status MapError(int err, const std::string& context, const char* syscall);

// A human-readable multi-line report of the counters and the address-space usage.
std::string Report();

}  // namespace vmm

#endif  // VMM_STATS_H_
