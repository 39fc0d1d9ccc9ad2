// tokenizer/src/hash_tables.h: the flat hash tables of the BPE model (internal).
//
// StringIdMap maps token strings (bytes) to ids; its keys live in one arena, so building the
// 151k-entry Qwen3 vocabulary costs a few allocations, not one per token. PairMap maps a pair
// of ids (a merge's two halves) to the merge's rank and the id of the merged token. Both use
// open addressing with linear probing at a load factor <= 1/2, and never shrink.
//
// Thread safety: built on one thread; Find is then safe from any number of threads.
#ifndef TOKENIZER_SRC_HASH_TABLES_H_
#define TOKENIZER_SRC_HASH_TABLES_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace emoe::tokenizer::internal {

// A 64-bit hash of `bytes` (multiply-xorshift over 8-byte words; not for adversarial keys).
uint64_t HashBytes(std::string_view bytes);

class StringIdMap {
 public:
  StringIdMap() { Rehash(16); }
  // Maps `key` to `id`; returns the id it had (-1 when new). An existing key is overwritten.
  int32_t Set(std::string_view key, int32_t id);
  // The id of `key`, or -1.
  int32_t Find(std::string_view key) const {
    const uint64_t h = HashBytes(key);
    for (size_t i = h & mask_;; i = (i + 1) & mask_) {
      const Slot& s = slots_[i];
      if (s.id < 0) return -1;
      if (s.hash == static_cast<uint32_t>(h >> 32) && s.length == key.size() &&
          std::string_view(arena_.data() + s.offset, s.length) == key) {
        return s.id;
      }
    }
  }
  size_t size() const { return size_; }
  void Reserve(size_t n, size_t key_bytes);

 private:
  struct Slot {
    uint32_t hash;  // high half of HashBytes
    uint32_t offset, length;
    int32_t id;  // -1: empty
  };
  void Rehash(size_t capacity);

  std::string arena_;
  std::vector<Slot> slots_;
  size_t mask_ = 0, size_ = 0;
};

class PairMap {
 public:
  struct Value {
    int32_t rank;    // the merge's index in model.merges (lower merges first)
    int32_t new_id;  // the merged token
  };
  PairMap() { Rehash(16); }
  // Sets (a, b) -> value, replacing an earlier value (a later duplicate merge wins, as in the
  // reference's Map).
  void Set(int32_t a, int32_t b, Value value);
  // The merge of (a, b), or nullptr.
  const Value* Find(int32_t a, int32_t b) const {
    const uint64_t key = Key(a, b);
    for (size_t i = Mix(key) & mask_;; i = (i + 1) & mask_) {
      const Slot& s = slots_[i];
      if (s.key == key) return &s.value;
      if (s.key == kEmpty) return nullptr;
    }
  }
  size_t size() const { return size_; }
  void Reserve(size_t n);

 private:
  static constexpr uint64_t kEmpty = ~uint64_t{0};
  struct Slot {
    uint64_t key;
    Value value;
  };
  static uint64_t Key(int32_t a, int32_t b) {
    return (uint64_t{static_cast<uint32_t>(a)} << 32) | static_cast<uint32_t>(b);
  }
  static uint64_t Mix(uint64_t k) {
    k ^= k >> 29;
    k *= 0xBF58476D1CE4E5B9ull;
    return k ^ (k >> 32);
  }
  void Rehash(size_t capacity);

  std::vector<Slot> slots_;
  size_t mask_ = 0, size_ = 0;
};

}  // namespace emoe::tokenizer::internal

#endif  // TOKENIZER_SRC_HASH_TABLES_H_
