// hbm/hmm.h: the HBM Management Module, the one owner of model memory.
//
// It holds the devices (and their arenas) and a registry of named tensors per device. Loading a
// checkpoint asks a placement callback where each tensor goes: the first device of the decision
// gets it from disk (io_uring, once), the others by peer-to-peer copy from that first copy.
// Records hold vmm::Extent handles (shared by the tensors of a placement group), so released
// tensors return their pages only when nobody (the group's other tensors, an attached instance's
// mapping) uses them any more.
//
// With HmmOptions::check_weights, each tensor read from disk is scanned for NaN/Inf before its
// replicas are copied; a load with any fails (kDataLoss naming the tensor) like any other error.
//
// Failure atomicity: LoadCheckpoint validates everything first (names, devices, and capacity:
// the extents it would allocate, per device and usage, against the arenas' and the devices' free
// bytes), then allocates, reads and copies; on any failure every extent it allocated is released
// and the registry is unchanged. ApplyCopies (a scale event's peer-to-peer copies as one batch,
// hbm/src/copy_batch.cc) likewise checks every copy and allocates every extent before one byte
// moves, copies them all at once, and registers them together or not at all.
//
// Thread safety: all methods may be called from any thread; the registry is guarded by a
// vmm::Mutex (GUARDED_BY), loads are serialized by another.
#ifndef HBM_HMM_H_
#define HBM_HMM_H_

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "hbm/cancel.h"
#include "hbm/device.h"
#include "hbm/loader.h"
#include "hbm/p2p.h"
#include "hbm/safetensors.h"
#include "vmm/mutex.h"

namespace emoe::hbm {

// Create's populating (DeviceMemoryOptions::populate), after each chunk.
struct PopulateProgress {
  uint64_t done_bytes = 0;
  uint64_t total_bytes = 0;      // what the devices can hold (Device::populate_ahead_bytes)
  double seconds = 0;            // since populating began
  std::string ToString() const;  // "populated 512 of 4480 MiB (11%) in 2.1 s"
};

// The granularity of populating: progress is reported, and a stop honoured, between chunks (a
// chunk takes ~0.1 s on a VM whose hypervisor backs fresh memory at ~300 MB/s).
inline constexpr uint64_t kPopulateChunkBytes = 32ull << 20;

struct HmmOptions {
  DeviceOptions devices;
  DeviceMemoryOptions memory;
  LoaderOptions loader;
  int copy_threads_per_device = 0;  // 0 = one per device CPU, at most 8
  // Scan what each load reads from disk for NaN and Inf (hbm/weight_check.h) and refuse a load
  // that has any, naming the tensor. false: load them as they are.
  bool check_weights = true;
  // The fields below do not travel to hmmd (codec.h): they are the creating process's own.
  // Called from Create's thread after each populated chunk.
  std::function<void(const PopulateProgress&)> populate_progress;
  // Not owned (it must outlive the Hmm); null: never cancelled. When cancelled, Create stops
  // between populated chunks, and loads stop between batches of reads (LoaderOptions::cancel), both
  // with kUnavailable
  // "...: cancelled (stopping)" and nothing left behind.
  const CancelToken* cancel = nullptr;
  // Test hook only (hmmd --test_populate_delay_ms): Create sleeps this long after each
  // populated chunk (cut short by `cancel`), so tests can see a slow start-up. 0: no delay.
  int test_populate_chunk_delay_ms = 0;
};

struct TensorRecord {
  std::string name;
  int device = 0;
  Usage usage = Usage::kWeights;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  vmm::Extent extent;             // pages holding it (keeps them alive)
  uint64_t offset_in_extent = 0;  // where the data starts (O_DIRECT alignment slack)
  uint64_t size_bytes = 0;
  const void* data() const { return static_cast<const uint8_t*>(extent.data()) + offset_in_extent; }
};

struct PlacementDecision {
  Usage usage = Usage::kWeights;
  std::vector<int> devices;  // first: read from disk; others: P2P replicas. Empty: skip tensor.
  // Tensors of one load with the same (device, usage, group) share one extent, each at a 4 KiB
  // boundary: small tensors do not each cost a 2 MiB page. Give experts a group of their own
  // ("layer 3 expert 17") so that each expert can later be remapped on its own. The extent's
  // pages return when every tensor in it is released.
  std::string group;
};
using PlacementFn = std::function<PlacementDecision(const TensorInfo&)>;
// Every tensor on every listed device, as weights.
PlacementFn ReplicateEverywhere(std::vector<int> devices);

struct LoadReport {
  uint64_t tensors = 0;          // records created
  uint64_t bytes_from_disk = 0;  // tensor bytes read (each tensor once)
  uint64_t bytes_p2p = 0;        // tensor bytes copied device to device
  double disk_seconds = 0;
  double p2p_seconds = 0;
  uint64_t bytes_checked = 0;  // tensor bytes scanned for NaN/Inf (0: check_weights off)
  double check_seconds = 0;
  LoadStats disk;
  std::string ToString() const;
};

// One copy of a batch (Hmm::ApplyCopies): CopyGroup's arguments.
struct GroupCopy {
  std::vector<std::string> names;  // registered on `from`; copied into ONE new extent on `to`
  int from = 0, to = 0;
  Usage usage = Usage::kWeights;
  std::string dst_prefix;  // registered as dst_prefix + name
};

// How a batch runs. The copies compete with serving for the host's cores: max_parallel bounds
// how many copy jobs (of chunk_bytes each) run at once over the whole batch.
// The most copies one batch may hold (a large redistribution is ~2000): every copy has a
// record in the report, so a batch of empty copies must not make the reply unbounded.
inline constexpr size_t kMaxBatchCopies = 1 << 16;

struct CopyBatchOptions {
  int max_parallel = 0;               // 0: every worker of the destination devices
  uint64_t chunk_bytes = 8ull << 20;  // unit of work (multiple of 4 KiB, > 0)
};

struct GroupCopyStats {
  uint64_t bytes = 0;             // tensor bytes copied
  double start_s = 0, end_s = 0;  // of its first and last chunk, from the start of the copies
};

struct CopyBatchReport {
  std::vector<GroupCopyStats> copies;  // one per GroupCopy, in order
  uint64_t bytes = 0;                  // tensor bytes of all copies
  double prepare_s = 0;                // checks and allocations (before any byte moved)
  double copy_s = 0;                   // first chunk's start to last chunk's end (wall time)
  double register_s = 0;               // registering the records
  double gbs() const { return copy_s > 0 ? bytes / copy_s / 1e9 : 0; }
};

class Hmm {
 public:
  // Plans devices from the host topology (vmm::NumaNodes()) and creates them. With
  // memory.populate, what the devices can hold is populated before it returns (reported through
  // populate_progress; stopped by cancel), the rest of the arenas when allocated.
  static StatusOr<std::unique_ptr<Hmm>> Create(const HmmOptions& options);
  // Uses the given device specs (tests, experiments).
  static StatusOr<std::unique_ptr<Hmm>> CreateWithDevices(const std::vector<DeviceSpec>& specs,
                                                          const HmmOptions& options);

  int num_devices() const { return static_cast<int>(devices_.size()); }
  Device& device(int id) { return *devices_.at(id); }
  CopyEngine& copies() { return *copies_; }

  // Registers each loaded tensor as `name_prefix` + its checkpoint name (a prefix lets a second,
  // private copy of a tensor live on a device that already holds it: the baselines of #5).
  // `cancel` (not owned; null: none) stops the load between batches of reads and before the
  // peer-to-peer copies, as HmmOptions::cancel does (kUnavailable, nothing registered).
  StatusOr<LoadReport> LoadCheckpoint(const Checkpoint& checkpoint, const PlacementFn& placement,
                                      const std::string& name_prefix = "",
                                      const CancelToken* cancel = nullptr);

  // Copies a registered tensor to another device (P2P). kAlreadyExists if it is there.
  Status Replicate(const std::string& name, int from_device, int to_device);

  // Copies registered tensors of `from_device` into ONE new extent of `usage` on `to_device` (each
  // at a 4 KiB boundary, like a load group), P2P on the destination's workers, registered as
  // `dst_prefix` + name. All or nothing: on any error (unknown tensor, already there, arena full,
  // copy failure) nothing is registered and the new extent is freed. Returns the bytes copied.
  // ApplyCopies of this one copy (the same checks, layout and errors).
  StatusOr<uint64_t> CopyGroup(const std::vector<std::string>& names, int from_device,
                               int to_device, Usage usage, const std::string& dst_prefix = "");

  // A batch of group copies as ONE unit (DESIGN 4.3's memory phase in one request): every copy is
  // checked first (devices known, sources registered, no destination registered already or named
  // twice in the batch, options valid), every extent allocated, then all copies run at once on
  // the destinations' workers in chunks (at most options.max_parallel at a time); the records
  // are registered together. On any error (the first is returned, naming the copy) nothing is
  // registered and every new extent is freed. Reports bytes and times per copy.
  // Errors: kInvalidArgument (an unknown device, a destination named twice, bad options, more
  // than kMaxBatchCopies copies),
  // kNotFound (a source), kAlreadyExists (a destination, also one registered meanwhile by
  // someone else), kFailedPrecondition (no arena of the usage on the destination),
  // kResourceExhausted (the destinations' arenas or capacities cannot hold the batch), each
  // "apply copies: copy I of N ('first tensor' and K more, device F -> T): ...". An empty batch
  // is an empty report. (hbm/src/copy_batch.cc)
  StatusOr<CopyBatchReport> ApplyCopies(const std::vector<GroupCopy>& copies,
                                        const CopyBatchOptions& options = {});

  StatusOr<TensorRecord> Find(const std::string& name, int device) const;
  // The records (name, device), in order, from one registry snapshot (one lock). kNotFound
  // naming the first that is not registered (and its index).
  StatusOr<std::vector<TensorRecord>> FindAll(
      const std::vector<std::pair<std::string, int>>& records) const;
  std::vector<TensorRecord> List(int device = -1) const;  // -1: all devices
  // Drops the record; its pages return when the last mapping of them goes.
  Status Release(const std::string& name, int device);
  void ReleaseAll();
  // Drops every record `pred` accepts; returns how many.
  size_t ReleaseIf(const std::function<bool(const TensorRecord&)>& pred);

  std::vector<DeviceStats> Stats() const;
  std::string Report() const;
  // With PageSizePolicy::kAuto all devices get the same page kind: hugetlb only when the pool
  // holds every device's arenas, else shmem THP, else 4 KiB (a device left with 4 KiB pages would
  // take first-touch faults ~50x slower than its peers, which skews P2P copies and scaling). Empty
  // when hugetlb was possible; otherwise why it was not.
  const std::string& page_note() const { return page_note_; }

 private:
  Hmm() = default;
  using Key = std::pair<std::string, int>;  // (name, device)

  HmmOptions options_;
  std::string page_note_;
  std::vector<std::unique_ptr<Device>> devices_;
  std::unique_ptr<CopyEngine> copies_;
  vmm::Mutex load_mu_;  // serializes loads
  mutable vmm::Mutex mu_;
  std::map<Key, TensorRecord> registry_ GUARDED_BY(mu_);
};

// The device memory a LoadCheckpoint of `placement` takes, per device: one extent per (device,
// usage, group), each tensor at its 4 KiB-aligned span, every extent rounded up to
// `page_bytes(device, usage)` (the arena's page size). Lets a caller make room before a load.
std::map<int, uint64_t> LoadFootprint(const Checkpoint& checkpoint, const PlacementFn& placement,
                                      const std::function<uint64_t(int, Usage)>& page_bytes);

}  // namespace emoe::hbm

#endif  // HBM_HMM_H_
