// vmm/reservation.h: a reserved range of virtual addresses into which extents are mapped.
//
// Concepts:
//  - Reserve() takes an aligned range of address space as PROT_NONE anonymous memory
//    (MAP_NORESERVE: it costs no memory). Every byte of the range is always covered by a mapping:
//    either an extent of some arena (MAP_SHARED | MAP_FIXED over the arena's memfd) or the
//    PROT_NONE filler. Unmapping puts the filler back, so no other mmap can land inside.
//  - A slot is any page-aligned sub-range; Map() places an extent (or part of one) there,
//    read-only or read-write, and optionally populates the page tables at once
//    (MADV_POPULATE_READ / MADV_POPULATE_WRITE) so the first access does not fault.
//  - Move() relocates a mapped range to another offset or another reservation with mremap: the
//    kernel moves page-table entries, no data is copied. Swap() exchanges two slots that way.
//  - A software page table (`Mappings()`) records, per mapped range, which extent and which
//    offset inside it backs it; Lookup() answers "which arena page is behind this address?".
//
// Failure atomicity: every operation either succeeds or leaves both the kernel mappings and the
// software page table exactly as they were (tests inject failures at each syscall).
//
// Invariants (CheckInvariants()):
//  1. Mapped ranges are page-aligned for their arena, inside the reservation, and disjoint.
//  2. Each mapping's [extent_offset, extent_offset + length) lies inside its extent.
//  3. The reservation is aligned to `alignment()` and its size is a multiple of 4 KiB.
//
// Thread safety: all methods are safe to call concurrently. Operations on one reservation are
// serialized by its mutex; Move()/Swap() between two reservations lock both (deadlock-free).
// Accessing the memory itself is the caller's business: unmapping a slot another thread is
// reading makes that thread fault, exactly as with munmap.
#ifndef VMM_RESERVATION_H_
#define VMM_RESERVATION_H_

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "vmm/arena.h"
#include "vmm/mutex.h"
#include "vmm/os.h"
#include "vmm/status.h"

namespace vmm {

enum class Protection : int { kRead = 0, kReadWrite };

struct MapOptions {
  Protection prot = Protection::kReadWrite;
  bool populate = false;  // MADV_POPULATE_READ (kRead) / MADV_POPULATE_WRITE (kReadWrite)
};

// One entry of the software page table.
struct Mapping {
  uint64_t offset = 0;         // in the reservation
  uint64_t length = 0;         // bytes
  Extent extent;               // the backing pages (a handle: keeps them alive)
  uint64_t extent_offset = 0;  // bytes into the extent
  Protection prot = Protection::kReadWrite;
  bool populated = false;
};

// Answer of Lookup(): the arena page behind an address.
struct PageRef {
  Arena* arena = nullptr;
  Extent extent;
  uint64_t arena_offset = 0;  // byte offset in the arena's memfd
  uint64_t mapping_offset = 0;
};

class Reservation {
 public:
  // Reserves `size` bytes (rounded up to 4 KiB) aligned to `alignment` (a power of two >= 4 KiB;
  // 2 MiB by default so that huge pages can be mapped anywhere in it).
  static StatusOr<std::unique_ptr<Reservation>> Reserve(uint64_t size,
                                                        uint64_t alignment = kHugePageSize,
                                                        Os* os = nullptr,
                                                        std::string name = "reservation");
  // Unmaps everything (mappings and filler) and drops the extent handles.
  ~Reservation();
  Reservation(const Reservation&) = delete;
  Reservation& operator=(const Reservation&) = delete;

  uint8_t* base() const { return base_; }
  uint64_t size() const { return size_; }
  uint64_t alignment() const { return alignment_; }
  const std::string& name() const { return name_; }
  bool Contains(const void* p) const {
    auto a = reinterpret_cast<uintptr_t>(p), b = reinterpret_cast<uintptr_t>(base_);
    return a >= b && a < b + size_;
  }

  // Maps `length` bytes of `extent` starting at `extent_offset` at reservation offset `offset`.
  // length 0 = the rest of the extent. Offsets and length must be multiples of the arena's page
  // size. The target range must be unmapped (kAlreadyExists otherwise).
  Status Map(uint64_t offset, const Extent& extent, uint64_t extent_offset = 0, uint64_t length = 0,
             MapOptions options = {});

  // Unmaps the mapping that starts exactly at `offset` (kNotFound otherwise), restoring PROT_NONE.
  Status Unmap(uint64_t offset);

  // Moves the mapping starting at `offset` to `dst_offset` in `dst` (which may be this
  // reservation) with mremap: page tables move, data does not. The destination range must be
  // unmapped; the source becomes PROT_NONE.
  Status Move(uint64_t offset, Reservation& dst, uint64_t dst_offset);

  // Exchanges the mappings starting at `a` and `b` (equal lengths), by three moves through a
  // temporary reservation.
  Status Swap(uint64_t a, uint64_t b);

  // Changes the protection of the mapping at `offset`.
  Status Protect(uint64_t offset, Protection prot);

  // Fills the page tables of [offset, offset + length) now (MADV_POPULATE_READ, or _WRITE for a
  // read-write mapping), rounded out to 4 KiB, so that the first access does not fault: an
  // attach pays for its mappings once, not the first step that reads them. The range must lie in
  // one mapping (kNotFound otherwise). No memory is allocated for pages the arena already holds;
  // kResourceExhausted when the arena runs out of memory for pages it has to allocate.
  Status Populate(uint64_t offset, uint64_t length);

  // The arena page behind `addr`; kNotFound if the address is in the filler or outside.
  StatusOr<PageRef> Lookup(const void* addr) const;

  // The mapping that starts at `offset`, if any.
  std::optional<Mapping> MappingAt(uint64_t offset) const;
  // A copy of the software page table, ascending by offset.
  std::vector<Mapping> Mappings() const;
  uint64_t mapped_bytes() const;
  size_t mapping_count() const;

  Status CheckInvariants() const;

 private:
  Reservation(uint8_t* base, uint64_t size, uint64_t alignment, Os* os, std::string name)
      : base_(base), size_(size), alignment_(alignment), os_(os), name_(std::move(name)) {}
  // True if [offset, offset+len) overlaps a mapping.
  bool OverlapsLocked(uint64_t offset, uint64_t len) const REQUIRES(mu_);
  // Replaces [addr, addr+len) with PROT_NONE filler.
  Status FillLocked(uint8_t* addr, uint64_t len, const char* why) REQUIRES(mu_);
  // Move with both locks held (one lock when src and dst are the same).
  static Status MoveLocked(Reservation& src, uint64_t offset, Reservation& dst, uint64_t dst_offset)
      REQUIRES(src.mu_, dst.mu_);
  std::string Where(uint64_t offset) const;

  uint8_t* base_;
  uint64_t size_;
  uint64_t alignment_;
  Os* os_;
  std::string name_;
  mutable Mutex mu_;
  std::map<uint64_t, Mapping> table_ GUARDED_BY(mu_);  // offset -> mapping
};

}  // namespace vmm

#endif  // VMM_RESERVATION_H_
