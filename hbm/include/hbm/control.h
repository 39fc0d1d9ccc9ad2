// hbm/control.h: driving the HMM, wherever it lives (DESIGN 4.1).
//
// HmmControl is what a coordinator needs of the HBM Management Module: load a checkpoint under a
// placement, copy tensor groups peer to peer, find and release records, device statistics, and
// memory for KV stores. Two implementations, one contract:
//   LocalHmmControl   an Hmm in this process (tests, library users, the in-process mode);
//   RemoteHmmControl  hmmd, a daemon process, over its control socket (hbm/remote_control.h).
// "The transport between them is the only difference": every operation has the same meaning,
// the same failure atomicity (a failed load or copy leaves the registry unchanged) and the same
// error codes in both.
//
// Names: the HMM registers each tensor as (prefix + checkpoint name, device). A prefix lets a
// second, private copy of a tensor live on a device that already holds it (the baselines of #5).
//
// Thread safety: implementations may be called from any thread (the remote one serializes its
// requests on one connection).
#ifndef HBM_CONTROL_H_
#define HBM_CONTROL_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "hbm/device.h"
#include "hbm/hmm.h"
#include "vmm/mutex.h"

namespace emoe::hbm {

// What a control client learns of a record (no data pointer: the memory may be in another
// process; instances map it through an attach).
struct TensorMeta {
  std::string name;
  int device = 0;
  Usage usage = Usage::kWeights;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  uint64_t size_bytes = 0;    // the tensor's bytes
  uint64_t extent_bytes = 0;  // the pages it lives in (shared with its group, e.g. one expert)
};
TensorMeta MetaOf(const TensorRecord& r);

// Where each tensor of a load goes, by checkpoint name (without the prefix). Tensors of the
// checkpoint that are not listed are skipped; a listed name the checkpoint lacks is an error.
using PlacementTable = std::map<std::string, PlacementDecision>;

// The memory of one KV store: `size_bytes` at `base`, mapped read-write in this process, at
// `arena_offset` in the device's KV arena (where an instance process that attached the arena
// finds it). Its pages go back to the arena when this is destroyed.
class KvMemory {
 public:
  virtual ~KvMemory() = default;
  // Resizes in place at the end (Device::Resize): `base` and `arena_offset` stay, so block
  // addresses below the new end stay valid here and in every process that attached the arena.
  // Shrinking gives the tail back to the device (another usage may take it); growing needs the
  // pages after the end free and room in the device's capacity. On error nothing changes.
  virtual Status Resize(uint64_t bytes) = 0;
  int device = 0;
  uint8_t* base = nullptr;
  uint64_t arena_offset = 0;
  uint64_t size_bytes = 0;
};
// An extent of a device's (directly mapped) KV arena as KvMemory, holding the extent.
// kFailedPrecondition when the arena has no direct map.
StatusOr<std::unique_ptr<KvMemory>> KvMemoryFromExtent(Device& device, vmm::Extent extent);

// What a scale plan asks of the HMM, in one request (HmmControl::Describe).
struct HmmSnapshot {
  std::vector<TensorMeta> records;  // those asked for, in order
  std::vector<DeviceStats> stats;   // every device
};

class HmmControl {
 public:
  virtual ~HmmControl() = default;

  virtual int num_devices() const = 0;
  // REQUIRES: 0 <= device < num_devices().
  virtual const DeviceSpec& device_spec(int device) const = 0;
  // The socket instance processes attach through, or empty when nobody serves this HMM yet (an
  // in-process one: whoever needs instance processes serves it with an HmmServer over local()).
  virtual std::string socket_path() const = 0;
  // The HMM itself when it lives in this process, else null.
  virtual Hmm* local() { return nullptr; }

  // Loads the checkpoint at `checkpoint_path` (a safetensors file or directory) under
  // `placement`, registering each tensor as prefix + name. All or nothing (Hmm::LoadCheckpoint).
  virtual StatusOr<LoadReport> Load(const std::string& checkpoint_path,
                                    const PlacementTable& placement, const std::string& prefix) = 0;
  // Hmm::CopyGroup: registered tensors of `from` into one new extent of `usage` on `to`, P2P,
  // registered as dst_prefix + name. All or nothing. Returns the bytes copied.
  virtual StatusOr<uint64_t> CopyGroup(const std::vector<std::string>& names, int from, int to,
                                       Usage usage, const std::string& dst_prefix = "") = 0;
  virtual StatusOr<TensorMeta> Find(const std::string& name, int device) = 0;
  // Hmm::ApplyCopies: the batch as one unit, all or nothing; one request to hmmd.
  virtual StatusOr<CopyBatchReport> ApplyCopies(const std::vector<GroupCopy>& copies,
                                                const CopyBatchOptions& options) = 0;
  // The metas of `records` (name, device), in order, and every device's statistics, taken
  // together (one request to hmmd; one registry snapshot). kNotFound names the first record
  // that is not registered.
  virtual StatusOr<HmmSnapshot> Describe(
      const std::vector<std::pair<std::string, int>>& records) = 0;

  // Drops these records (name, device); those not registered are skipped. Returns how many
  // were dropped. Pages return when the last mapping of them goes.
  virtual StatusOr<size_t> Release(const std::vector<std::pair<std::string, int>>& records) = 0;
  // Drops every record whose name starts with `prefix` ("" matches all) and, when `devices` is
  // not empty, that lives on one of them. Returns how many.
  virtual StatusOr<size_t> ReleaseMatching(const std::string& prefix,
                                           const std::vector<int>& devices) = 0;
  virtual StatusOr<std::vector<DeviceStats>> Stats() = 0;
  // `bytes` (> 0) of the device's KV arena for a KV store. kResourceExhausted when the arena
  // cannot hold it, kFailedPrecondition when the device has no KV arena.
  virtual StatusOr<std::unique_ptr<KvMemory>> AllocateKv(int device, uint64_t bytes) = 0;
  // Copies `n` bytes between this process's mappings of device memory, onto `device` (KV blocks
  // of a request moving there): on the HMM's copy workers in process, on the calling thread
  // otherwise.
  virtual Status Copy(int device, void* dst, const void* src, uint64_t n) = 0;
};

// An Hmm in this process (not owned).
class LocalHmmControl : public HmmControl {
 public:
  explicit LocalHmmControl(Hmm* hmm);
  int num_devices() const override { return hmm_->num_devices(); }
  const DeviceSpec& device_spec(int device) const override { return hmm_->device(device).spec(); }
  std::string socket_path() const override { return ""; }
  Hmm* local() override { return hmm_; }
  StatusOr<LoadReport> Load(const std::string& checkpoint_path, const PlacementTable& placement,
                            const std::string& prefix) override;
  StatusOr<uint64_t> CopyGroup(const std::vector<std::string>& names, int from, int to, Usage usage,
                               const std::string& dst_prefix) override;
  StatusOr<TensorMeta> Find(const std::string& name, int device) override;
  StatusOr<CopyBatchReport> ApplyCopies(const std::vector<GroupCopy>& copies,
                                        const CopyBatchOptions& options) override;
  StatusOr<HmmSnapshot> Describe(const std::vector<std::pair<std::string, int>>& records) override;
  StatusOr<size_t> Release(const std::vector<std::pair<std::string, int>>& records) override;
  StatusOr<size_t> ReleaseMatching(const std::string& prefix,
                                   const std::vector<int>& devices) override;
  StatusOr<std::vector<DeviceStats>> Stats() override { return hmm_->Stats(); }
  StatusOr<std::unique_ptr<KvMemory>> AllocateKv(int device, uint64_t bytes) override;
  Status Copy(int device, void* dst, const void* src, uint64_t n) override;

 private:
  Hmm* hmm_;
  vmm::Mutex mu_;
  // Opened, by path.
  std::map<std::string, std::shared_ptr<const Checkpoint>> checkpoints_ GUARDED_BY(mu_);
};

// Shared by both sides of the transport: the load of `placement` as a PlacementFn, after
// checking that every listed name is in the checkpoint and every device exists.
StatusOr<PlacementFn> PlacementFromTable(const Checkpoint& checkpoint,
                                         const PlacementTable& placement, int num_devices);
// Describe's answer: the metas of `records` (found by Hmm::FindAll) and every device's stats.
HmmSnapshot SnapshotOf(Hmm& hmm, const std::vector<TensorRecord>& records);
// Hmm::ReleaseIf with ReleaseMatching's predicate.
size_t ReleaseMatchingIn(Hmm& hmm, const std::string& prefix, const std::vector<int>& devices);

}  // namespace emoe::hbm

#endif  // HBM_CONTROL_H_
