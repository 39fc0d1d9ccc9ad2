// hbm/device.h: devices (a NUMA node or a slice of one) and their memory arenas.
//
// A device stands in for an accelerator: a CPU set, a memory node and a capacity. By default there
// is one device per NUMA node with the node's memory; DeviceOptions can cut a node into several
// devices with an explicit capacity so that experiments run 2-8 devices on a one-node host.
// Each device owns one vmm::Arena per usage (weights, experts, KV), bound to its node, with exact
// accounting per usage and in total.
//
// Capacity: the arenas are address reservations (of any size: a large one keeps contiguous
// runs available despite fragmentation); what they hold *together* is bounded by the capacity
// (Device::Allocate and Resize refuse past it), as an accelerator's memory is shared by weights,
// experts and KV. So one usage can give memory to another (a KV store shrinks so that a second
// copy of the weights fits, then grows back).
//
// Invariant: the bytes allocated from all arenas of a device never exceed its capacity (checked
// under the device's lock before every allocation and growth; frees only lower it).
//
// Thread safety: PlanDevices is a pure function. Device::Allocate, Resize and Stats may be called
// from any thread.
#ifndef HBM_DEVICE_H_
#define HBM_DEVICE_H_

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "vmm/arena.h"
#include "vmm/host.h"
#include "vmm/mutex.h"
#include "vmm/status.h"

namespace emoe::hbm {

using vmm::Status;
using vmm::StatusOr;

struct DeviceOptions {
  int devices_per_node = 1;     // >= 1
  uint64_t capacity_bytes = 0;  // per device; 0 = the node's memory divided by devices_per_node
  bool pin_cpus = false;        // every device gets CPUs of its own (refused if too few CPUs)
  std::vector<int> nodes;       // NUMA nodes to use; empty = every node with memory
  Status Validate() const;
};

struct DeviceSpec {
  int id = 0;
  int node = 0;
  std::vector<int> cpus;        // the CPUs its worker threads run on
  uint64_t capacity_bytes = 0;  // memory the device may hold, all usages together
  std::string ToString() const;
};

// Cuts the topology into devices. Errors name the impossible part: a capacity beyond the node's
// memory, more pinned devices than CPUs, an unknown node.
StatusOr<std::vector<DeviceSpec>> PlanDevices(const DeviceOptions& options,
                                              const std::vector<vmm::NumaNode>& topology);

enum class Usage : int { kWeights = 0, kExperts, kKv };
inline constexpr int kNumUsages = 3;
const char* UsageName(Usage u);

// Bytes of each usage's arena on a device (their sum may exceed the capacity, which bounds what
// they hold together).
struct DeviceMemoryOptions {
  std::array<uint64_t, kNumUsages> usage_bytes = {0, 0, 0};  // 0 = no arena for that usage
  vmm::PageSizePolicy page_size = vmm::PageSizePolicy::kAuto;
  // Punch freed pages out of the arenas (memory back to the kernel). Not of sealed arenas
  // (seal_weights): the kernel refuses PUNCH_HOLE on them, they keep freed pages in their pool.
  bool discard_on_free = false;
  // Resident device memory (vmm::ArenaOptions::populate): every page is resident when it is
  // allocated. What the device can hold (Device::PopulateAhead) is faulted in ahead of use; the
  // rest of an arena, when it is allocated.
  bool populate = false;
  // Seal the weights and experts arenas against future writes (vmm::ArenaOptions::
  // seal_future_writes): only this process's direct maps write them (the loader's reads, P2P
  // copies, CopyGroup), and no process, not one reopening an attached fd O_RDWR through
  // /proc/PID/fd, can map them writable. KV arenas are never sealed (instances write them).
  // Not part of hmmd's start message: the daemon decides (off only with --allow_writable).
  bool seal_weights = true;
  Status Validate(const DeviceSpec& spec) const;
};

struct DeviceStats {
  int device = 0;
  std::array<vmm::ArenaStats, kNumUsages> usage;  // name empty when the usage has no arena
  uint64_t capacity_bytes = 0;
  uint64_t used_bytes = 0;       // all usages
  uint64_t peak_used_bytes = 0;  // sum of per-usage peaks (an upper bound of the joint peak)
  std::string ToString() const;
};

class Device {
 public:
  // Creates the arenas ("dev<id>.weights", ...) bound to the device's node.
  static StatusOr<std::unique_ptr<Device>> Create(const DeviceSpec& spec,
                                                  const DeviceMemoryOptions& memory);

  const DeviceSpec& spec() const { return spec_; }
  int id() const { return spec_.id; }
  // The arena of a usage, or null when the device has none.
  const std::shared_ptr<vmm::Arena>& arena(Usage u) const { return arenas_[static_cast<int>(u)]; }

  // Allocates from the usage's arena. kFailedPrecondition when the device has no such arena;
  // kResourceExhausted naming device and usage when the device is full (its capacity, what each
  // usage holds) or the arena is.
  StatusOr<vmm::Extent> Allocate(Usage u, uint64_t bytes, uint64_t align_bytes = 0);
  // vmm::Arena::Resize of an extent of the usage's arena; growth counts against the capacity
  // like an allocation. kInvalidArgument when the extent is not of that arena.
  Status Resize(Usage u, vmm::Extent& extent, uint64_t bytes);
  // Capacity minus what all usages hold.
  uint64_t free_bytes() const;

  // With DeviceMemoryOptions::populate (else 0 / nothing to do): the bytes of the usage's arena
  // that PopulateAhead faults in, from the arena's start: what the device can hold, i.e. the
  // whole arena when all arenas fit in the capacity, else the capacity given out in the order
  // KV, weights, experts (whole pages): what a serving device always holds in full first (its KV
  // store, the dense weights), the experts the rest, so that at most the capacity is populated
  // in all. Pages past it are populated when allocated, so every allocated page is resident
  // either way (on this VM first touch of fresh memory runs at ~0.5 GB/s: a KV store allocated
  // past the populated prefix made a scale event's memory phase 250 ms instead of 25).
  uint64_t populate_ahead_bytes(Usage u) const;
  uint64_t populate_ahead_bytes() const;  // all usages
  // Populates those bytes, `chunk_bytes` (> 0) at a time, arena by arena; after each chunk,
  // `after_chunk(bytes)` (the chunk's size) runs, and a non-OK status from it stops the work and
  // is returned. Errors of populating name the device and the arena (kResourceExhausted when the
  // memory cannot be had). Call before the device is used; it may be called again (populated
  // pages are skipped quickly).
  Status PopulateAhead(uint64_t chunk_bytes, const std::function<Status(uint64_t)>& after_chunk);

  DeviceStats Stats() const;

 private:
  Device() = default;
  uint64_t UsedBytes() const;
  // kResourceExhausted when `bytes` more of usage `u` would not fit in the capacity.
  Status CheckRoom(Usage u, uint64_t bytes) const REQUIRES(mu_);
  DeviceSpec spec_;
  bool populate_ = false;
  mutable vmm::Mutex mu_;  // serializes the capacity check with the allocation it admits
  std::array<std::shared_ptr<vmm::Arena>, kNumUsages> arenas_;
};

}  // namespace emoe::hbm

#endif  // HBM_DEVICE_H_
