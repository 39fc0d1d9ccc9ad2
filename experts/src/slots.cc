// Expert slots: one reservation per (device, layer) whose slot i maps the i-th local expert's
// extent, and the copy-everything baseline it replaces.
#include "experts/slots.h"

#include <algorithm>
#include <limits>
#include <string>

#include "vmm/stats.h"

namespace emoe::experts {

namespace {

std::string MiB(uint64_t bytes) {
  if (bytes % (1 << 20) == 0) return std::to_string(bytes >> 20) + " MiB";
  return std::to_string(bytes) + " bytes";
}

}  // namespace

StatusOr<std::unique_ptr<ExpertSlots>> ExpertSlots::Create(std::string name, uint64_t slot_bytes,
                                                           const std::vector<vmm::Extent>& extents,
                                                           vmm::MapOptions options) {
  const std::string what = "expert slots '" + name + "'";
  // Validate everything before reserving anything.
  uint64_t alignment = vmm::kHugePageSize;
  for (size_t i = 0; i < extents.size(); ++i) {
    const vmm::Extent& x = extents[i];
    const std::string slot = what + ": slot " + std::to_string(i);
    if (!x.valid()) return Status::InvalidArgument(slot + ": empty extent");
    const uint64_t page = x.arena()->page_size();
    if (slot_bytes == 0 || slot_bytes % page != 0) {
      return Status::InvalidArgument(slot + ": slot_bytes " + std::to_string(slot_bytes) +
                                     " is not a non-zero multiple of the page size " +
                                     std::to_string(page) + " of arena '" + x.arena()->name() +
                                     "'");
    }
    if (x.size_bytes() > slot_bytes) {
      return Status::InvalidArgument(slot + ": " + x.DebugString() + " is larger than slot_bytes " +
                                     std::to_string(slot_bytes));
    }
    alignment = std::max(alignment, page);
  }
  auto slots = std::unique_ptr<ExpertSlots>(new ExpertSlots());
  slots->name_ = std::move(name);
  slots->slot_bytes_ = slot_bytes;
  if (extents.empty()) return slots;
  if (slot_bytes > std::numeric_limits<uint64_t>::max() / extents.size()) {
    return Status::InvalidArgument(what + ": " + std::to_string(extents.size()) + " slots of " +
                                   std::to_string(slot_bytes) + " bytes overflow");
  }

  // The reservation goes through the first arena's Os so that a fault-injecting Os given to the
  // arena also sees the mappings of its pages.
  auto reserved = vmm::Reservation::Reserve(extents.size() * slot_bytes, alignment,
                                            extents[0].arena()->os(), slots->name_);
  if (!reserved.ok()) {
    Status s = reserved.status();
    return s.Annotate(what);
  }
  std::unique_ptr<vmm::Reservation> range = std::move(*reserved);
  for (size_t i = 0; i < extents.size(); ++i) {
    Status s = range->Map(i * slot_bytes, extents[i], 0, extents[i].size_bytes(), options);
    if (!s.ok()) {
      // All or nothing: dropping the reservation unmaps the slots mapped so far and releases
      // their extent handles.
      return s.Annotate(what + ": slot " + std::to_string(i) + " of " +
                        std::to_string(extents.size()));
    }
  }
  slots->extents_ = extents;
  slots->range_ = std::move(range);
  return slots;
}

const uint8_t* ExpertSlots::base() const { return range_ ? range_->base() : nullptr; }

const uint8_t* ExpertSlots::slot(int i) const {
  if (!range_ || i < 0 || i >= num_slots()) return nullptr;
  return range_->base() + static_cast<uint64_t>(i) * slot_bytes_;
}

uint64_t ExpertSlots::mapped_bytes() const { return range_ ? range_->mapped_bytes() : 0; }

uint64_t SlotBytesFor(const std::vector<vmm::Extent>& extents) {
  uint64_t largest = 0, page = 0;
  for (const vmm::Extent& x : extents) {
    if (!x.valid()) continue;
    largest = std::max(largest, x.size_bytes());
    page = std::max(page, x.arena()->page_size());
  }
  if (page == 0) return 0;
  return (largest + page - 1) / page * page;
}

StatusOr<NaiveBuffer> NaiveContiguousCopy(vmm::Arena& arena, uint64_t slot_bytes,
                                          const std::vector<const void*>& sources,
                                          uint64_t expert_bytes, const AllocateFn& allocate) {
  const std::string what =
      "naive copy of " + std::to_string(sources.size()) + " experts into '" + arena.name() + "'";
  const uint64_t page = arena.page_size();
  if (slot_bytes == 0 || slot_bytes % page != 0) {
    return Status::InvalidArgument(what + ": slot_bytes " + std::to_string(slot_bytes) +
                                   " is not a non-zero multiple of the page size " +
                                   std::to_string(page));
  }
  if (expert_bytes > slot_bytes) {
    return Status::InvalidArgument(what + ": experts of " + std::to_string(expert_bytes) +
                                   " bytes do not fit slots of " + std::to_string(slot_bytes));
  }
  for (size_t i = 0; i < sources.size(); ++i) {
    if (sources[i] == nullptr && expert_bytes > 0) {
      return Status::InvalidArgument(what + ": source " + std::to_string(i) + " is null");
    }
  }
  NaiveBuffer out;
  out.slot_bytes = slot_bytes;
  if (sources.empty()) return out;
  if (arena.direct_map() == nullptr) {
    return Status::FailedPrecondition(what + ": the arena has no direct map to copy through");
  }
  if (slot_bytes > std::numeric_limits<uint64_t>::max() / sources.size()) {
    return Status::InvalidArgument(what + ": " + std::to_string(sources.size()) + " slots of " +
                                   std::to_string(slot_bytes) + " bytes overflow");
  }
  const uint64_t total = sources.size() * slot_bytes;
  auto buffer = allocate ? allocate(total) : arena.Allocate(total);
  if (buffer.ok() && buffer->arena() != &arena) {
    return Status::InvalidArgument(what + ": the allocator gave " + buffer->DebugString());
  }
  if (!buffer.ok()) {
    Status s = buffer.status();
    return s.Annotate(what + " (" + MiB(sources.size() * slot_bytes) + ")");
  }
  auto* dst = static_cast<uint8_t*>(buffer->data());
  for (size_t i = 0; i < sources.size(); ++i) {
    vmm::CopyBytes(dst + i * slot_bytes, sources[i], expert_bytes);
  }
  out.buffer = std::move(*buffer);
  out.copied_bytes = sources.size() * expert_bytes;
  return out;
}

}  // namespace emoe::experts
