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
  if (n > 0) {
    uint64_t w = 0;
    std::memcpy(&w, p, n);
    h = (h ^ w) * kMul;
    h ^= h >> 31;
  }
  h *= 0xC2B2AE3D27D4EB4Full;
  return h ^ (h >> 29);
}

void StringIdMap::Reserve(size_t n, size_t key_bytes) {
  arena_.reserve(key_bytes);
  size_t capacity = 16;
  while (capacity < 2 * n) capacity *= 2;
  if (capacity > slots_.size()) Rehash(capacity);
}

void StringIdMap::Rehash(size_t capacity) {
  std::vector<Slot> old;
  old.swap(slots_);
  slots_.assign(capacity, Slot{0, 0, 0, -1});
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
  if (2 * (size_ + 1) > slots_.size()) Rehash(slots_.size() * 2);
  const uint64_t h = HashBytes(key);
  const uint32_t high = static_cast<uint32_t>(h >> 32);
  size_t i = h & mask_;
  for (;; i = (i + 1) & mask_) {
    Slot& s = slots_[i];
    if (s.id < 0) break;
    if (s.hash == high && s.length == key.size() &&
        std::string_view(arena_.data() + s.offset, s.length) == key) {
      const int32_t previous = s.id;
      s.id = id;
      return previous;
    }
  }
  slots_[i] =
      Slot{high, static_cast<uint32_t>(arena_.size()), static_cast<uint32_t>(key.size()), id};
  arena_.append(key);
  ++size_;
  return -1;
}

void PairMap::Reserve(size_t n) {
  size_t capacity = 16;
  while (capacity < 2 * n) capacity *= 2;
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
  if (2 * (size_ + 1) > slots_.size()) Rehash(slots_.size() * 2);
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
