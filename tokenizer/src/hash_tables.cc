// tokenizer/src/hash_tables.cc: StringIdMap and PairMap.
#include "hash_tables.h"

#include <cstring>

namespace emoe::tokenizer::internal {

uint64_t HashBytes(std::string_view bytes) {
  constexpr uint64_t kMul = 0x9E3779B97F4A7C15ull;
  uint64_t h = bytes.size() * kMul;
  const char* p = bytes.data();
  size_t n = bytes.size();
  while (n >= 8) {
    uint64_t w;
    std::memcpy(&w, p, 8);
    h = (h ^ w) * kMul;
    h ^= h >> 31;
    p += 8;
    n -= 8;
  }
  // The tail by whole loads (a memcpy of n < 8 bytes into a word compiles to byte stores that
  // the next load stalls on): 4..7 bytes as two overlapping 4-byte loads, 1..3 bytes as their
  // first, middle and last. The length, already in h, tells the overlaps apart.
  if (n >= 4) {
    uint32_t a, b;
    std::memcpy(&a, p, 4);
    std::memcpy(&b, p + n - 4, 4);
    h = (h ^ ((uint64_t{a} << 32) | b)) * kMul;
    h ^= h >> 31;
  } else if (n > 0) {
    const auto* u = reinterpret_cast<const unsigned char*>(p);
    const uint64_t w = u[0] | (uint64_t{u[n / 2]} << 8) | (uint64_t{u[n - 1]} << 16);
    h = (h ^ w) * kMul;
    h ^= h >> 31;
  }
  h *= 0xC2B2AE3D27D4EB4Full;
  return h ^ (h >> 29);
}

namespace {

// Tables grow past a load factor of 5/8 (linear probing stays short; the 151k-token Qwen3
// vocabulary fits 2^18 slots).
bool OverLoaded(size_t n, size_t capacity) { return 8 * n > 5 * capacity; }

}  // namespace

void StringIdMap::Reserve(size_t n, size_t key_bytes) {
  arena_.reserve(key_bytes);
  size_t capacity = 16;
  while (OverLoaded(n, capacity)) capacity *= 2;
  if (capacity > slots_.size()) Rehash(capacity);
}

void StringIdMap::Rehash(size_t capacity) {
  std::vector<Slot> old;
  old.swap(slots_);
  slots_.assign(capacity, Slot{0, 0, 0, -1, 0});
  mask_ = capacity - 1;
  for (const Slot& s : old) {
    if (s.id < 0) continue;
    const uint64_t h = HashBytes(std::string_view(arena_.data() + s.offset, s.length));
    size_t i = h & mask_;
    while (slots_[i].id >= 0) i = (i + 1) & mask_;
    slots_[i] = s;
  }
}

int32_t StringIdMap::Set(std::string_view key, int32_t id) {
  if (OverLoaded(size_ + 1, slots_.size())) Rehash(slots_.size() * 2);
  const uint64_t h = HashBytes(key);
  const uint32_t high = static_cast<uint32_t>(h >> 32);
  const uint64_t prefix = Prefix(key);
  size_t i = h & mask_;
  for (;; i = (i + 1) & mask_) {
    Slot& s = slots_[i];
    if (s.id < 0) break;
    if (s.hash == high && s.length == key.size() && s.prefix == prefix &&
        std::string_view(arena_.data() + s.offset, s.length) == key) {
      const int32_t previous = s.id;
      s.id = id;
      return previous;
    }
  }
  slots_[i] = Slot{high, static_cast<uint32_t>(arena_.size()), static_cast<uint32_t>(key.size()),
                   id, prefix};
  arena_.append(key);
  ++size_;
  return -1;
}

void PairMap::Reserve(size_t n) {
  size_t capacity = 16;
  while (OverLoaded(n, capacity)) capacity *= 2;
  if (capacity > slots_.size()) Rehash(capacity);
}

void PairMap::Rehash(size_t capacity) {
  std::vector<Slot> old;
  old.swap(slots_);
  slots_.assign(capacity, Slot{kEmpty, {0, 0}});
  mask_ = capacity - 1;
  for (const Slot& s : old) {
    if (s.key == kEmpty) continue;
    size_t i = Mix(s.key) & mask_;
    while (slots_[i].key != kEmpty) i = (i + 1) & mask_;
    slots_[i] = s;
  }
}

void PairMap::Set(int32_t a, int32_t b, Value value) {
  if (OverLoaded(size_ + 1, slots_.size())) Rehash(slots_.size() * 2);
  const uint64_t key = Key(a, b);
  size_t i = Mix(key) & mask_;
  for (;; i = (i + 1) & mask_) {
    Slot& s = slots_[i];
    if (s.key == key) {
      s.value = value;
      return;
    }
    if (s.key == kEmpty) break;
  }
  slots_[i] = Slot{key, value};
  ++size_;
}

}  // namespace emoe::tokenizer::internal
