// tokenizer/src/bpe_cache.h: the BPE model's cache of word -> ids (internal).
//
// Most text repeats its words, and BPE over a word costs far more than a lookup. The cache is
// kShards shards, each a mutex and a direct-mapped table of kSlotsPerShard entries: a word's
// hash picks its shard and slot; an insert overwrites whatever the slot held (so the cache is
// bounded: kShards * kSlotsPerShard words, each at most BpeModel::kMaxCachedBytes long). An
// entry's key and ids share one std::string, reused when the slot is overwritten.
//
// Thread safety: Lookup and Insert may be called from any number of threads at once; a shard's
// mutex is held only to copy ids in or out.
#ifndef TOKENIZER_SRC_BPE_CACHE_H_
#define TOKENIZER_SRC_BPE_CACHE_H_

#include <array>
#include <cstdint>
#include <cstring>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace emoe::tokenizer::internal {

class WordCache {
 public:
  static constexpr size_t kShards = 16;
  static constexpr size_t kSlotsPerShard = 4096;

  WordCache() {
    for (Shard& shard : shards_) shard.slots.resize(kSlotsPerShard);
  }

  // Appends the cached ids of `word` (whose HashBytes is `hash`) to *out; false if absent.
  bool Lookup(std::string_view word, uint64_t hash, std::vector<int32_t>* out) {
    Shard& shard = shards_[hash % kShards];
    std::lock_guard<std::mutex> lock(shard.mu);
    const Entry& e = shard.slots[(hash / kShards) % kSlotsPerShard];
    if (e.hash != hash || e.key_bytes != word.size() ||
        std::memcmp(e.data.data(), word.data(), word.size()) != 0) {
      return false;
    }
    const size_t n = (e.data.size() - e.key_bytes) / sizeof(int32_t);
    const size_t old = out->size();
    out->resize(old + n);
    std::memcpy(out->data() + old, e.data.data() + e.key_bytes, n * sizeof(int32_t));
    return true;
  }

  void Insert(std::string_view word, uint64_t hash, const int32_t* ids, size_t n) {
    Shard& shard = shards_[hash % kShards];
    std::lock_guard<std::mutex> lock(shard.mu);
    Entry& e = shard.slots[(hash / kShards) % kSlotsPerShard];
    e.hash = hash;
    e.key_bytes = static_cast<uint32_t>(word.size());
    e.data.assign(word.data(), word.size());
    e.data.append(reinterpret_cast<const char*>(ids), n * sizeof(int32_t));
  }

 private:
  struct Entry {
    uint64_t hash = 0;
    uint32_t key_bytes = 0;
    std::string data;  // the word's bytes, then its ids; empty: never filled
  };
  struct Shard {
    std::mutex mu;
    std::vector<Entry> slots;  // guarded by mu
  };
  std::array<Shard, kShards> shards_;
};

}  // namespace emoe::tokenizer::internal

#endif  // TOKENIZER_SRC_BPE_CACHE_H_
