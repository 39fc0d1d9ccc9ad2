#include "vmm/reservation.h"

#include <numaif.h>
#include <sys/mman.h>

#include <bit>
#include <cstdio>
#include <functional>

#include "vmm/host.h"
#include "vmm/stats.h"

namespace vmm {

namespace {

constexpr int kFillerFlags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE;

int ProtBits(Protection p) { return p == Protection::kRead ? PROT_READ : PROT_READ | PROT_WRITE; }

std::string Hex(uint64_t v) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "0x%llx", static_cast<unsigned long long>(v));
  return buf;
}

}  // namespace

StatusOr<std::unique_ptr<Reservation>> Reservation::Reserve(uint64_t size, uint64_t alignment,
                                                            Os* os, std::string name) {
  if (os == nullptr) os = Os::Default();
  const std::string what = "reserve '" + name + "'";
  if (size == 0) return Status::InvalidArgument(what + ": size 0");
  if (!std::has_single_bit(alignment) || alignment < kSmallPageSize) {
    return Status::InvalidArgument(what + ": alignment " + std::to_string(alignment) +
                                   " is not a power of two >= 4096");
  }
  if (size > (uint64_t{1} << 47)) {
    return Status::InvalidArgument(what + ": size " + std::to_string(size) +
                                   " exceeds the address space");
  }
  size = (size + kSmallPageSize - 1) & ~(kSmallPageSize - 1);
  const uint64_t span = size + alignment - kSmallPageSize;
  void* raw = os->Mmap(nullptr, span, PROT_NONE, kFillerFlags, -1, 0);
  if (raw == MAP_FAILED)
    return MapError(errno, what + " " + std::to_string(size) + " bytes", "mmap");
  auto* base = static_cast<uint8_t*>(raw);
  auto* aligned = reinterpret_cast<uint8_t*>((reinterpret_cast<uintptr_t>(base) + alignment - 1) &
                                             ~(alignment - 1));
  const uint64_t head = aligned - base, tail = span - head - size;
  if ((head > 0 && os->Munmap(base, head) != 0) ||
      (tail > 0 && os->Munmap(aligned + size, tail) != 0)) {
    const Status s = Status::FromErrno(errno, what + ": trim the alignment slack", "munmap");
    // Give everything back; whatever munmap refuses stays PROT_NONE, which is harmless.
    if (os->Munmap(base, span) != 0 && head > 0) os->Munmap(aligned, size + tail);
    return s;
  }
  GlobalCounters().reservations_now++;
  GlobalCounters().reserved_bytes_now += static_cast<int64_t>(size);
  return std::unique_ptr<Reservation>(new Reservation(aligned, size, alignment, os, name));
}

Reservation::~Reservation() {
  uint64_t mapped = 0;
  for (const auto& [off, m] : table_) mapped += m.length;
  os_->Munmap(base_, size_);
  Counters& c = GlobalCounters();
  c.bytes_unmapped += mapped;
  c.mapped_bytes_now -= static_cast<int64_t>(mapped);
  c.mappings_now -= static_cast<int64_t>(table_.size());
  c.reservations_now--;
  c.reserved_bytes_now -= static_cast<int64_t>(size_);
}

std::string Reservation::Where(uint64_t offset) const {
  return "reservation '" + name_ + "'+" + Hex(offset);
}

bool Reservation::OverlapsLocked(uint64_t offset, uint64_t len) const {
  auto it = table_.lower_bound(offset + len);  // first mapping starting at or after the end
  if (it == table_.begin()) return false;
  --it;  // the last mapping starting before the end
  return it->first + it->second.length > offset;
}

Status Reservation::FillLocked(uint8_t* addr, uint64_t len, const char* why) {
  void* p = os_->Mmap(addr, len, PROT_NONE, kFillerFlags | MAP_FIXED, -1, 0);
  if (p == MAP_FAILED) {
    return MapError(errno, Where(addr - base_) + ": " + why + ": restore PROT_NONE", "mmap");
  }
  return Status::Ok();
}

Status Reservation::Map(uint64_t offset, const Extent& extent, uint64_t extent_offset,
                        uint64_t length, MapOptions options) {
  MutexLock l(&mu_);
  if (!extent.valid()) return Status::InvalidArgument(Where(offset) + ": map an empty extent");
  Arena* arena = extent.arena();
  const uint64_t page = arena->page_size();
  if (length == 0 && extent_offset < extent.size_bytes()) {
    length = extent.size_bytes() - extent_offset;
  }
  const std::string what = Where(offset) + ": map " + extent.DebugString();
  if (page > alignment_) {
    return Status::InvalidArgument(what + ": the reservation is aligned to " +
                                   std::to_string(alignment_) + " bytes, less than the page size " +
                                   std::to_string(page));
  }
  if (offset % page || extent_offset % page || length % page || length == 0) {
    return Status::InvalidArgument(what + ": offset " + Hex(offset) + ", extent offset " +
                                   Hex(extent_offset) + " and length " + Hex(length) +
                                   " must be non-zero multiples of the page size " + Hex(page));
  }
  if (extent_offset > extent.size_bytes() || length > extent.size_bytes() - extent_offset) {
    return Status::OutOfRange(what + ": [" + Hex(extent_offset) + ", +" + Hex(length) +
                              ") is beyond the extent");
  }
  if (offset > size_ || length > size_ - offset) {
    return Status::OutOfRange(what + ": [" + Hex(offset) + ", +" + Hex(length) +
                              ") is beyond the reservation of " + Hex(size_) + " bytes");
  }
  if (OverlapsLocked(offset, length)) {
    return Status::AlreadyExists(what + ": the range is already mapped");
  }

  uint8_t* addr = base_ + offset;
  const off_t file_offset = static_cast<off_t>(extent.offset_bytes() + extent_offset);
  void* p = os_->Mmap(addr, length, ProtBits(options.prot), MAP_SHARED | MAP_FIXED, arena->fd(),
                      file_offset);
  Status st;
  if (p == MAP_FAILED) {
    st = MapError(errno, what, "mmap");
  } else if (arena->kind() == PageKind::kShmemThp2M &&
             os_->Madvise(addr, length, MADV_HUGEPAGE) != 0) {
    st = Status::FromErrno(errno, what, "madvise(MADV_HUGEPAGE)");
  } else if (arena->numa_node() >= 0 && NumaAvailable()) {
    constexpr unsigned long kBits = 8 * sizeof(unsigned long);
    const int node = arena->numa_node();
    std::vector<unsigned long> mask(node / kBits + 1, 0);
    mask[node / kBits] |= 1UL << (node % kBits);
    if (os_->Mbind(addr, length, MPOL_BIND, mask.data(), mask.size() * kBits + 1, 0) != 0) {
      st = Status::FromErrno(errno, what + ": bind to node " + std::to_string(node), "mbind");
    }
  }
  if (st.ok() && options.populate) {
    const int advice = options.prot == Protection::kRead ? MADV_POPULATE_READ : MADV_POPULATE_WRITE;
    if (RetryOnEintr([&] { return os_->Madvise(addr, length, advice); }) != 0) {
      st = errno == ENOMEM || errno == EFAULT
               ? Status::ResourceExhausted(
                     Status::FromErrno(errno, what + ": populate", "madvise(MADV_POPULATE)")
                             .message() +
                         " (the arena's memory or huge pages ran out)",
                     errno)
               : Status::FromErrno(errno, what + ": populate", "madvise(MADV_POPULATE)");
    }
  }
  if (!st.ok()) {
    // Put the filler back (also after a failed MAP_FIXED mmap, which may have unmapped it).
    Status fill = FillLocked(addr, length, "undo a failed map");
    if (!fill.ok()) st.Annotate("and the undo failed too (" + fill.message() + ")");
    return st;
  }
  Mapping m;
  m.offset = offset;
  m.length = length;
  m.extent = extent;
  m.extent_offset = extent_offset;
  m.prot = options.prot;
  m.populated = options.populate;
  table_.emplace(offset, std::move(m));
  Counters& c = GlobalCounters();
  c.map_calls++;
  c.bytes_mapped += length;
  if (options.populate) c.bytes_populated += length;
  c.mapped_bytes_now += static_cast<int64_t>(length);
  c.mappings_now++;
  return Status::Ok();
}

Status Reservation::Unmap(uint64_t offset) {
  MutexLock l(&mu_);
  auto it = table_.find(offset);
  if (it == table_.end())
    return Status::NotFound(Where(offset) + ": unmap: no mapping starts here");
  const uint64_t length = it->second.length;
  VMM_RETURN_IF_ERROR(FillLocked(base_ + offset, length, "unmap"));
  table_.erase(it);  // drops the extent handle: the pages may return to the arena now
  Counters& c = GlobalCounters();
  c.bytes_unmapped += length;
  c.mapped_bytes_now -= static_cast<int64_t>(length);
  c.mappings_now--;
  return Status::Ok();
}

Status Reservation::Protect(uint64_t offset, Protection prot) {
  MutexLock l(&mu_);
  auto it = table_.find(offset);
  if (it == table_.end()) {
    return Status::NotFound(Where(offset) + ": protect: no mapping starts here");
  }
  if (os_->Mprotect(base_ + offset, it->second.length, ProtBits(prot)) != 0) {
    return MapError(errno, Where(offset) + ": protect", "mprotect");
  }
  it->second.prot = prot;
  return Status::Ok();
}

Status Reservation::Populate(uint64_t offset, uint64_t length) {
  MutexLock l(&mu_);
  const uint64_t begin = offset & ~uint64_t{4095};
  const uint64_t end = (offset + length + 4095) & ~uint64_t{4095};
  const std::string what = Where(offset) + ": populate " + Hex(length) + " bytes";
  auto it = table_.upper_bound(begin);
  if (length == 0 || end > size_ || it == table_.begin() ||
      std::prev(it)->second.offset + std::prev(it)->second.length < end) {
    return Status::NotFound(what + ": not inside one mapping");
  }
  const Mapping& m = std::prev(it)->second;
  const int advice = m.prot == Protection::kRead ? MADV_POPULATE_READ : MADV_POPULATE_WRITE;
  if (RetryOnEintr([&] { return os_->Madvise(base_ + begin, end - begin, advice); }) != 0) {
    const int err = errno;
    return err == ENOMEM || err == EFAULT
               ? Status::ResourceExhausted(
                     Status::FromErrno(err, what, "madvise(MADV_POPULATE)").message(), err)
               : Status::FromErrno(err, what, "madvise(MADV_POPULATE)");
  }
  GlobalCounters().bytes_populated += end - begin;
  return Status::Ok();
}

Status Reservation::MoveLocked(Reservation& src, uint64_t offset, Reservation& dst,
                               uint64_t dst_offset) {
  auto it = src.table_.find(offset);
  if (it == src.table_.end()) {
    return Status::NotFound(src.Where(offset) + ": move: no mapping starts here");
  }
  const uint64_t len = it->second.length;
  const uint64_t page = it->second.extent.arena()->page_size();
  const std::string what =
      src.Where(offset) + ": move " + Hex(len) + " bytes to " + dst.Where(dst_offset);
  if (dst_offset % page != 0 || page > dst.alignment_) {
    return Status::InvalidArgument(what + ": the destination is not aligned to the page size " +
                                   Hex(page));
  }
  if (dst_offset > dst.size_ || len > dst.size_ - dst_offset) {
    return Status::OutOfRange(what + ": beyond the destination's " + Hex(dst.size_) + " bytes");
  }
  if (dst.OverlapsLocked(dst_offset, len)) {
    return Status::AlreadyExists(what + ": the destination range is mapped");
  }
  uint8_t* from = src.base_ + offset;
  uint8_t* to = dst.base_ + dst_offset;
  Os* os = src.os_;
  const bool hugetlb = it->second.extent.arena()->kind() == PageKind::kHugetlb2M;

  // Preferred: MREMAP_DONTUNMAP leaves `from` mapped (without page tables), so no other thread's
  // mmap can slip into a hole; then the filler replaces it atomically. hugetlb VMAs refuse
  // DONTUNMAP (VM_DONTEXPAND), so they move plainly and the hole is refilled at once.
  bool dontunmap = !hugetlb;
  void* p = MAP_FAILED;
  if (dontunmap) {
    p = os->Mremap(from, len, len, MREMAP_MAYMOVE | MREMAP_FIXED | MREMAP_DONTUNMAP, to);
    if (p == MAP_FAILED && errno == EINVAL) dontunmap = false;  // older kernel: move plainly
  }
  if (!dontunmap) p = os->Mremap(from, len, len, MREMAP_MAYMOVE | MREMAP_FIXED, to);
  if (p == MAP_FAILED) {
    Status st = MapError(errno, what, "mremap");
    // mremap(MREMAP_FIXED) may have unmapped the destination filler before failing.
    if (Status f = dst.FillLocked(to, len, "undo a failed move"); !f.ok()) {
      st.Annotate("and the undo failed too (" + f.message() + ")");
    }
    return st;
  }
  if (Status f = src.FillLocked(from, len, "move"); !f.ok()) {
    // Put the mapping back where it was, then the filler at the destination.
    if (os->Mremap(to, len, len, MREMAP_MAYMOVE | MREMAP_FIXED, from) == MAP_FAILED) {
      return Status::Internal(what + ": " + f.message() +
                              "; moving the mapping back failed too (errno " +
                              std::to_string(errno) + "): the mapping is now at the destination");
    }
    if (Status g = dst.FillLocked(to, len, "undo a move"); !g.ok()) {
      f.Annotate("and the undo failed too (" + g.message() + ")");
    }
    return f;
  }
  Mapping m = std::move(it->second);
  src.table_.erase(it);
  m.offset = dst_offset;
  dst.table_.emplace(dst_offset, std::move(m));
  GlobalCounters().bytes_moved += len;
  GlobalCounters().move_calls++;
  return Status::Ok();
}

Status Reservation::Move(uint64_t offset, Reservation& dst, uint64_t dst_offset) {
  if (&dst == this) {
    MutexLock l(&mu_);
    return MoveLocked(*this, offset, *this, dst_offset);
  }
  // Two reservations: lock in address order, so two opposite moves cannot deadlock.
  Mutex* first = std::less<Mutex*>()(&mu_, &dst.mu_) ? &mu_ : &dst.mu_;
  Mutex* second = first == &mu_ ? &dst.mu_ : &mu_;
  MutexLock l1(first);
  MutexLock l2(second);
  mu_.AssertHeld();  // the analysis cannot follow the ordering
  dst.mu_.AssertHeld();
  return MoveLocked(*this, offset, dst, dst_offset);
}

Status Reservation::Swap(uint64_t a, uint64_t b) {
  MutexLock l(&mu_);
  auto ia = table_.find(a), ib = table_.find(b);
  if (ia == table_.end() || ib == table_.end()) {
    return Status::NotFound(Where(ia == table_.end() ? a : b) + ": swap: no mapping starts here");
  }
  if (a == b) return Status::Ok();
  const uint64_t len = ia->second.length;
  if (ib->second.length != len) {
    return Status::InvalidArgument(Where(a) + ": swap with " + Where(b) + ": lengths differ (" +
                                   Hex(len) + " vs " + Hex(ib->second.length) + ")");
  }
  const uint64_t page =
      std::max(ia->second.extent.arena()->page_size(), ib->second.extent.arena()->page_size());
  VMM_ASSIGN_OR_RETURN(auto tmp, Reserve(len, std::max(alignment_, page), os_, name_ + ".swap"));
  MutexLock tmp_lock(&tmp->mu_);  // nobody else knows `tmp`; MoveLocked REQUIRES its lock
  VMM_RETURN_IF_ERROR(MoveLocked(*this, a, *tmp, 0));
  if (Status s = MoveLocked(*this, b, *this, a); !s.ok()) {
    if (Status r = MoveLocked(*tmp, 0, *this, a); !r.ok())
      s.Annotate("undo failed: " + r.message());
    return s;
  }
  if (Status s = MoveLocked(*tmp, 0, *this, b); !s.ok()) {
    Status r = MoveLocked(*this, a, *this, b);
    if (r.ok()) r = MoveLocked(*tmp, 0, *this, a);
    if (!r.ok()) s.Annotate("undo failed: " + r.message());
    return s;
  }
  return Status::Ok();
}

StatusOr<PageRef> Reservation::Lookup(const void* addr) const {
  if (!Contains(addr)) return Status::OutOfRange("address is outside " + Where(0));
  const uint64_t off = static_cast<const uint8_t*>(addr) - base_;
  MutexLock l(&mu_);
  auto it = table_.upper_bound(off);
  if (it == table_.begin()) return Status::NotFound(Where(off) + ": not mapped");
  --it;
  const Mapping& m = it->second;
  if (off >= m.offset + m.length) return Status::NotFound(Where(off) + ": not mapped");
  PageRef r;
  r.arena = m.extent.arena();
  r.extent = m.extent;
  r.mapping_offset = m.offset;
  r.arena_offset = m.extent.offset_bytes() + m.extent_offset + (off - m.offset);
  return r;
}

std::optional<Mapping> Reservation::MappingAt(uint64_t offset) const {
  MutexLock l(&mu_);
  auto it = table_.find(offset);
  if (it == table_.end()) return std::nullopt;
  return it->second;
}

std::vector<Mapping> Reservation::Mappings() const {
  MutexLock l(&mu_);
  std::vector<Mapping> out;
  out.reserve(table_.size());
  for (const auto& [off, m] : table_) out.push_back(m);
  return out;
}

uint64_t Reservation::mapped_bytes() const {
  MutexLock l(&mu_);
  uint64_t n = 0;
  for (const auto& [off, m] : table_) n += m.length;
  return n;
}

size_t Reservation::mapping_count() const {
  MutexLock l(&mu_);
  return table_.size();
}

Status Reservation::CheckInvariants() const {
  MutexLock l(&mu_);
  if (reinterpret_cast<uintptr_t>(base_) % alignment_ != 0 || size_ % kSmallPageSize != 0) {
    return Status::Internal(Where(0) + " invariant 3: base or size misaligned");
  }
  uint64_t end = 0;
  for (const auto& [off, m] : table_) {
    if (off != m.offset) return Status::Internal(Where(off) + ": key and offset differ");
    const uint64_t page = m.extent.arena()->page_size();
    if (off % page || m.length % page || m.length == 0 || off < end || off + m.length > size_) {
      return Status::Internal(Where(off) + " invariant 1: mapping of " + Hex(m.length) +
                              " bytes is misaligned, overlapping or outside");
    }
    if (m.extent_offset % page || m.extent_offset + m.length > m.extent.size_bytes()) {
      return Status::Internal(Where(off) + " invariant 2: mapping leaves its extent");
    }
    end = off + m.length;
  }
  return Status::Ok();
}

}  // namespace vmm
