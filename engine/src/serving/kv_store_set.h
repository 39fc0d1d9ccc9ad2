// engine/src/serving/kv_store_set.h: the KV stores of the devices an engine serves on, one per
// device (device -> kv::KvStore over the HMM's KV memory). Stores outlive instances: a
// switchover hands block tables from the old instance to the new one over the same stores.
//
// ShrinkAhead (KV shrunk ahead of time, DESIGN 4.3): before a scale event allocates anything,
// every device whose free capacity is below what the event needs gives back the difference from
// its KV store (only free blocks past the highest one in use can go). The Guard it returns grows
// those stores back when it dies (or at GrowBack), to their configured size or as far as their
// device has room (an ablation's private copy may hold the rest: logged).
//
// Thread safety: driven by the control thread (scale events, restarts); the serving thread uses
// the stores through its schedulers only, never the set.
#ifndef ENGINE_SRC_SERVING_KV_STORE_SET_H_
#define ENGINE_SRC_SERVING_KV_STORE_SET_H_

#include <cstdint>
#include <map>
#include <memory>
#include <vector>

#include "engine/scale_types.h"
#include "hbm/control.h"
#include "kv/kv_cache.h"

namespace emoe::engine {

class KvStoreSet {
 public:
  // New stores have `geometry` and `bytes_per_device` bytes of KV memory from `hmm`.
  KvStoreSet(hbm::HmmControl* hmm, kv::KvGeometry geometry, uint64_t bytes_per_device)
      : hmm_(hmm), geometry_(geometry), bytes_per_device_(bytes_per_device) {}

  // Creates the store of `device` unless it has one. Returns whether it created one; the HMM's
  // error (a full device) otherwise, with nothing changed.
  StatusOr<bool> Ensure(int device);
  bool Has(int device) const { return stores_.count(device) > 0; }
  // The stores of `devices`, in order; null for a device without one.
  std::vector<kv::KvStore*> StoresFor(const std::vector<int>& devices) const;
  kv::KvStore* Find(int device) const;
  // Drops the store of `device` (its KV memory goes back to the HMM); no-op without one.
  void Drop(int device) { stores_.erase(device); }
  void DropAll() { stores_.clear(); }
  uint64_t bytes_per_device() const { return bytes_per_device_; }

  // Grows the stores it shrank back when it dies (see the header comment).
  class Guard {
   public:
    Guard() = default;
    explicit Guard(KvStoreSet* set) : set_(set) {}
    Guard(Guard&& o) noexcept : set_(o.set_), room_(std::move(o.room_)) { o.room_.clear(); }
    Guard& operator=(Guard&& o) noexcept;
    ~Guard() { GrowBack(); }
    // Grows every shrunk store back now (a store whose device has no room for all of it grows
    // as far as it can: logged). Returns the number of resizes that failed outright.
    int GrowBack();
    bool empty() const { return room_.empty(); }

   private:
    friend class KvStoreSet;
    KvStoreSet* set_ = nullptr;
    std::map<int, uint64_t> room_;  // device -> bytes to grow its store back to
  };
  // Makes room for `need` (bytes per device the event is about to take). Adds the bytes given
  // back to `*shrunk_bytes`. A device that cannot make room is kResourceExhausted naming it,
  // what it needs, holds and could give (nothing stays shrunk then); `what` names the event
  // ("scale to [0,1,2]") and `serving` the devices that keep serving.
  // `stats`: the HMM's statistics the need was computed from (null: asked here, one request).
  StatusOr<Guard> ShrinkAhead(const std::map<int, uint64_t>& need, const std::string& what,
                              const std::vector<int>& serving, uint64_t* shrunk_bytes,
                              const std::vector<hbm::DeviceStats>* stats = nullptr);

 private:
  // Grows the store of `device` to `bytes`, or as far as its device has room (logged if it stays
  // below). Not OK when the fallback resize itself failed.
  Status GrowTo(int device, uint64_t bytes, const std::vector<hbm::DeviceStats>* stats);

  hbm::HmmControl* hmm_;
  kv::KvGeometry geometry_;
  uint64_t bytes_per_device_;
  std::map<int, std::unique_ptr<kv::KvStore>> stores_;
};

}  // namespace emoe::engine

#endif  // ENGINE_SRC_SERVING_KV_STORE_SET_H_
