#include "serving/kv_store_set.h"

#include <algorithm>
#include <cstdio>
#include <string>

#include "engine/scale_types.h"

namespace emoe::engine {

StatusOr<bool> KvStoreSet::Ensure(int device) {
  if (Has(device)) return false;
  VMM_ASSIGN_OR_RETURN(stores_[device],
                       kv::KvStore::Create(*hmm_, device, geometry_, bytes_per_device_));
  return true;
}

std::vector<kv::KvStore*> KvStoreSet::StoresFor(const std::vector<int>& devices) const {
  std::vector<kv::KvStore*> out;
  for (int d : devices) out.push_back(Find(d));
  return out;
}

kv::KvStore* KvStoreSet::Find(int device) const {
  auto it = stores_.find(device);
  return it == stores_.end() ? nullptr : it->second.get();
}

KvStoreSet::Guard& KvStoreSet::Guard::operator=(Guard&& o) noexcept {
  if (this != &o) {
    GrowBack();
    set_ = o.set_;
    room_ = std::move(o.room_);
    o.room_.clear();
  }
  return *this;
}

int KvStoreSet::Guard::GrowBack() {
  if (room_.empty() || set_ == nullptr) return 0;
  auto stats = set_->hmm_->Stats();
  int failed = 0;
  for (const auto& [d, bytes] : room_) {
    if (!set_->GrowTo(d, bytes, stats.ok() ? &*stats : nullptr).ok()) ++failed;
  }
  room_.clear();
  return failed;
}

Status KvStoreSet::GrowTo(int device, uint64_t bytes, const std::vector<hbm::DeviceStats>* stats) {
  kv::KvStore* st = Find(device);
  if (st == nullptr || st->size_bytes() >= bytes) return Status::Ok();
  Status s = st->Resize(bytes);
  Status fallback;
  if (!s.ok() && stats != nullptr) {
    // As far as the device has room (a private copy of the weights may hold the rest).
    const hbm::DeviceStats& ds = stats->at(device);
    const uint64_t free = ds.capacity_bytes > ds.used_bytes ? ds.capacity_bytes - ds.used_bytes : 0;
    const uint64_t bb = st->geometry().block_bytes();
    const uint64_t can = std::min(bytes, (st->size_bytes() + free) / bb * bb);
    if (can > st->size_bytes()) fallback = st->Resize(can);
  }
  if (st->size_bytes() >= bytes) return Status::Ok();
  std::fprintf(stderr, "coordinator: device %d: KV store at %llu MiB, below its %llu MiB (%s)\n",
               device, static_cast<unsigned long long>(st->size_bytes() >> 20),
               static_cast<unsigned long long>(bytes >> 20), s.ok() ? "" : s.ToString().c_str());
  if (!fallback.ok()) {
    std::fprintf(stderr, "coordinator: device %d: KV store could not grow: %s\n", device,
                 fallback.ToString().c_str());
  }
  return fallback;
}

StatusOr<KvStoreSet::Guard> KvStoreSet::ShrinkAhead(const std::map<int, uint64_t>& need,
                                                    const std::string& what,
                                                    const std::vector<int>& serving,
                                                    uint64_t* shrunk_bytes,
                                                    const std::vector<hbm::DeviceStats>* given) {
  std::vector<hbm::DeviceStats> stats;
  if (given != nullptr) {
    stats = *given;
  } else {
    VMM_ASSIGN_OR_RETURN(stats, hmm_->Stats());
  }
  Guard guard(this);
  for (const auto& [d, bytes] : need) {
    const hbm::DeviceStats& st = stats.at(d);
    const uint64_t free = st.capacity_bytes > st.used_bytes ? st.capacity_bytes - st.used_bytes : 0;
    if (bytes <= free) continue;
    const uint64_t short_by = bytes - free;
    kv::KvStore* store = Find(d);
    uint64_t can_give = 0;
    if (store != nullptr) {
      const uint64_t bb = store->geometry().block_bytes();
      const int64_t have = store->pool().num_blocks();
      const int64_t give = static_cast<int64_t>((short_by + bb - 1) / bb);
      const int64_t floor = store->pool().min_blocks();
      can_give = static_cast<uint64_t>(have - floor) * bb;
      const int64_t keep_blocks = have - give;
      if (keep_blocks >= floor) {
        const uint64_t before = store->size_bytes();
        Status s = store->Resize(static_cast<uint64_t>(keep_blocks) * bb);
        if (s.ok()) {
          // GrowBack restores the configured size (or the former one, if larger).
          guard.room_.emplace(d, std::max(before, bytes_per_device_));
          *shrunk_bytes += before - store->size_bytes();
          continue;
        }
        std::fprintf(stderr, "coordinator: device %d: KV could not shrink: %s\n", d,
                     s.ToString().c_str());
      }
    }
    guard.GrowBack();
    return Status::ResourceExhausted(
        what + " refused: device " + std::to_string(d) + " needs " + std::to_string(bytes >> 20) +
        " MiB but has " + std::to_string(free >> 20) + " MiB of its " +
        std::to_string(st.capacity_bytes >> 20) + " MiB free, and its KV store " +
        (store == nullptr ? std::string("is not there to shrink")
                          : "can give back only " + std::to_string(can_give >> 20) +
                                " MiB (free blocks past the highest one in use)") +
        "; serving continues on " + DevicesText(serving));
  }
  return guard;
}

}  // namespace emoe::engine
