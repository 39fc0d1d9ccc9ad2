// experts/slots.h: the virtual-memory view of a device's local experts in one layer.
//
// An ExpertSlots object reserves one contiguous range of num_slots x slot_bytes and maps slot i
// to the i-th expert's own extent (its pages, wherever the allocator put them), read-only and
// populated by default. Kernels see one contiguous expert tensor; a redistribution builds the
// new instance's slots over retained extents (the same pages: no copy) and freshly copied
// incoming ones, while the old instance keeps its own ExpertSlots (its old view) until it exits.
// Dropping an ExpertSlots unmaps its range; the extents' pages return to their arena only when
// their last holder (the HMM's record, another view) lets go.
//
// The naive baseline (NaiveContiguousCopy) is what systems without a VM layer do: allocate one
// new contiguous buffer for all local experts and copy each expert into it, retained ones too.
//
// Thread safety: an ExpertSlots is immutable after Create and may be read from any thread.
#ifndef EXPERTS_SLOTS_H_
#define EXPERTS_SLOTS_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "vmm/arena.h"
#include "vmm/reservation.h"
#include "vmm/status.h"

namespace emoe::experts {

using vmm::Status;
using vmm::StatusOr;

class ExpertSlots {
 public:
  // `slot_bytes`: a multiple of every extent's arena page size and >= every extent's size (the
  // tail of a slot past its extent stays PROT_NONE). `extents` may be empty (a device without
  // experts in this layer: nothing is reserved). kInvalidArgument names the offending slot;
  // mapping errors (vm.max_map_count) come from vmm and leave nothing mapped.
  static StatusOr<std::unique_ptr<ExpertSlots>> Create(
      std::string name, uint64_t slot_bytes, const std::vector<vmm::Extent>& extents,
      vmm::MapOptions options = {vmm::Protection::kRead, /*populate=*/true});

  int num_slots() const { return static_cast<int>(extents_.size()); }
  uint64_t slot_bytes() const { return slot_bytes_; }
  const uint8_t* base() const;       // null when there are no slots
  const uint8_t* slot(int i) const;  // base() + i * slot_bytes()
  const vmm::Extent& extent(int i) const { return extents_.at(i); }
  uint64_t mapped_bytes() const;
  const vmm::Reservation* reservation() const { return range_.get(); }

 private:
  ExpertSlots() = default;
  std::string name_;
  uint64_t slot_bytes_ = 0;
  std::vector<vmm::Extent> extents_;
  std::unique_ptr<vmm::Reservation> range_;
};

// The smallest slot size that holds every extent: the largest extent size rounded up to the
// largest page size among their arenas. 0 for no extents.
uint64_t SlotBytesFor(const std::vector<vmm::Extent>& extents);

struct NaiveBuffer {
  vmm::Extent buffer;  // num x slot_bytes, contiguous, from the destination arena
  uint64_t slot_bytes = 0;
  uint64_t copied_bytes = 0;  // every expert's bytes, retained ones included
};

// The baseline without VM remapping: allocates one contiguous extent of
// sources.size() x slot_bytes from `arena` and copies sources[i] (each `expert_bytes` long) into
// slot i. kResourceExhausted (from the arena) when it does not fit; nothing is left allocated.
// `allocate`, when given, allocates instead of arena.Allocate (e.g. a device that bounds all its
// arenas together); it must return an extent of `arena`.
using AllocateFn = std::function<StatusOr<vmm::Extent>(uint64_t bytes)>;
StatusOr<NaiveBuffer> NaiveContiguousCopy(vmm::Arena& arena, uint64_t slot_bytes,
                                          const std::vector<const void*>& sources,
                                          uint64_t expert_bytes, const AllocateFn& allocate = {});

}  // namespace emoe::experts

#endif  // EXPERTS_SLOTS_H_
