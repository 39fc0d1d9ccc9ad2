// tokenizer/src/bpe_cache.h: the BPE model's caches of word -> ids (internal).
//
// Most text repeats its words, and BPE over a word costs far more than a lookup. Both caches
// are direct-mapped (a word's hash picks its slot; an insert overwrites whatever the slot held),
// so they are bounded and never allocate after construction (ShortWordCache) or after a slot's
// first fill (WordCache).
//
// ShortWordCache holds words of at most kMaxKeyBytes bytes that became at most kMaxIds ids
// (nearly all pre-tokenized pieces) in one cache line each, read without locking: a slot is a
// seqlock (Boehm, "Can seqlocks get along with programming language memory models?", 2012):
// a writer makes the slot's sequence odd, writes, makes it even again; a reader copies the slot
// and keeps the copy only if the sequence was even and unchanged. Every field is an atomic
// (acquire loads, release stores: plain moves on x86; no standalone fences, which
// ThreadSanitizer does not model), so readers and writers are race-free; a writer that finds
// the slot being written by another thread just skips its insert.
//
// WordCache holds longer words (up to BpeModel::kMaxCachedBytes): kShards shards, each a mutex
// and kSlotsPerShard entries whose key and ids share one std::string, reused when overwritten.
//
// Thread safety: Lookup and Insert of both may be called from any number of threads at once.
#ifndef TOKENIZER_SRC_BPE_CACHE_H_
#define TOKENIZER_SRC_BPE_CACHE_H_

#include <array>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace emoe::tokenizer::internal {

class ShortWordCache {
 public:
  static constexpr size_t kSlots = size_t{1} << 16;
  static constexpr size_t kMaxKeyBytes = 24;
  static constexpr size_t kMaxIds = 8;

  ShortWordCache() : slots_(new Slot[kSlots]) {}

  // Appends the cached ids of `word` (whose HashBytes is `hash`) to *out; false if absent.
  // REQUIRES: 0 < word.size() <= kMaxKeyBytes.
  bool Lookup(std::string_view word, uint64_t hash, std::vector<int32_t>* out) const {
    const Slot& slot = slots_[hash & (kSlots - 1)];
    const uint64_t header = slot.header.load(std::memory_order_acquire);
    if ((header & 1) || KeyBytes(header) != word.size()) return false;
    // Acquire loads: the second header load cannot move before them, and a word written by a
    // newer insert makes that insert's odd header visible to it.
    uint64_t words[kWords];
    for (size_t i = 0; i < kWords; ++i) words[i] = slot.words[i].load(std::memory_order_acquire);
    if (slot.header.load(std::memory_order_relaxed) != header) return false;
    uint64_t key[kKeyWords] = {};
    std::memcpy(key, word.data(), word.size());
    for (size_t i = 0; i < kKeyWords; ++i) {
      if (key[i] != words[i]) return false;
    }
    const size_t n = IdCount(header);
    int32_t ids[kMaxIds];
    std::memcpy(ids, words + kKeyWords, sizeof(ids));
    out->insert(out->end(), ids, ids + n);
    return true;
  }

  // REQUIRES: 0 < word.size() <= kMaxKeyBytes, 0 < n <= kMaxIds.
  void Insert(std::string_view word, uint64_t hash, const int32_t* ids, size_t n) {
    Slot& slot = slots_[hash & (kSlots - 1)];
    uint64_t header = slot.header.load(std::memory_order_relaxed);
    if ((header & 1) ||
        !slot.header.compare_exchange_strong(header, header | 1, std::memory_order_relaxed)) {
      return;  // another thread is writing this slot
    }
    uint64_t words[kWords] = {};
    std::memcpy(words, word.data(), word.size());
    std::memcpy(words + kKeyWords, ids, n * sizeof(int32_t));
    // Release stores: the odd header (the CAS above) is visible to whoever reads these words.
    for (size_t i = 0; i < kWords; ++i) slot.words[i].store(words[i], std::memory_order_release);
    const uint64_t sequence = (header + 2) & 0xFFFFFFFEull;
    slot.header.store(sequence | (uint64_t{word.size()} << 32) | (uint64_t{n} << 40),
                      std::memory_order_release);
  }

 private:
  static constexpr size_t kKeyWords = kMaxKeyBytes / 8;
  static constexpr size_t kWords = kKeyWords + kMaxIds / 2;
  static size_t KeyBytes(uint64_t header) { return (header >> 32) & 0xFF; }
  static size_t IdCount(uint64_t header) { return (header >> 40) & 0xFF; }
  // header: bits 0..31 the sequence (odd while written), 32..39 the key's bytes (0: empty),
  // 40..47 the number of ids. words: the key, zero-padded, then the ids.
  struct alignas(64) Slot {
    std::atomic<uint64_t> header{0};
    std::atomic<uint64_t> words[kWords] = {};
  };
  std::unique_ptr<Slot[]> slots_;
};

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
