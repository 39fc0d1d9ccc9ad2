// tokenizer/src/bpe.cc: BPE over one piece (the merge loops, byte fallback, the cache).
#include <algorithm>
#include <climits>
#include <functional>

#include "bpe.h"
#include "byte_level.h"
#include "utf8.h"

namespace emoe::tokenizer::internal {
namespace {

using Symbol = BpeScratch::Symbol;

// Merges symbol `pos` with its next one into `new_id`.
void MergeAt(std::vector<Symbol>* symbols, int32_t pos, int32_t new_id) {
  Symbol& left = (*symbols)[pos];
  Symbol& right = (*symbols)[left.next];
  left.id = new_id;
  left.length += right.length;
  left.next = right.next;
  if (right.next >= 0) (*symbols)[right.next].prev = pos;
  right.length = 0;  // dead
}

}  // namespace

void BpeModel::InitialSymbols(std::string_view piece, BpeScratch* scratch) const {
  auto& symbols = scratch->symbols;
  symbols.clear();
  if (byte_level_) {
    for (uint32_t i = 0; i < piece.size(); ++i) {
      const int32_t n = static_cast<int32_t>(symbols.size());
      symbols.push_back({byte_ids_[static_cast<unsigned char>(piece[i])], n - 1, n + 1, i, 1});
    }
  } else {
    for (uint32_t i = 0; i < piece.size();) {
      const unsigned char b = static_cast<unsigned char>(piece[i]);
      const uint32_t length =
          std::min<uint32_t>(Utf8SequenceLength(b), static_cast<uint32_t>(piece.size()) - i);
      const int32_t id = b < 0x80 ? ascii_ids_[b] : vocab_.Find(piece.substr(i, length));
      const int32_t n = static_cast<int32_t>(symbols.size());
      symbols.push_back({id, n - 1, n + 1, i, length});
      i += length;
    }
  }
  symbols.back().next = -1;
}

int32_t BpeModel::UpdatePair(BpeScratch* scratch, int32_t pos) const {
  const Symbol& s = scratch->symbols[pos];
  int32_t rank = INT32_MAX, new_id = -1;
  if (s.next >= 0 && s.id >= 0) {
    const int32_t right = scratch->symbols[s.next].id;
    if (right >= 0) {
      if (const PairMap::Value* v = merges_.Find(s.id, right)) {
        rank = v->rank;
        new_id = v->new_id;
      }
    }
  }
  scratch->ranks[pos] = rank;
  scratch->new_ids[pos] = new_id;
  return rank;
}

void BpeModel::MergeByScan(BpeScratch* scratch) const {
  auto& symbols = scratch->symbols;
  const int32_t n = static_cast<int32_t>(symbols.size());
  scratch->ranks.resize(n);
  scratch->new_ids.resize(n);
  for (int32_t i = 0; i < n; ++i) UpdatePair(scratch, i);
  for (;;) {
    int32_t best = -1, best_rank = INT32_MAX;
    for (int32_t i = 0; i >= 0; i = symbols[i].next) {
      if (scratch->ranks[i] < best_rank) {
        best_rank = scratch->ranks[i];
        best = i;
      }
    }
    if (best < 0) return;
    MergeAt(&symbols, best, scratch->new_ids[best]);
    UpdatePair(scratch, best);
    if (symbols[best].prev >= 0) UpdatePair(scratch, symbols[best].prev);
  }
}

void BpeModel::MergeByHeap(BpeScratch* scratch) const {
  auto& symbols = scratch->symbols;
  auto& heap = scratch->heap;
  const int32_t n = static_cast<int32_t>(symbols.size());
  scratch->ranks.resize(n);
  scratch->new_ids.resize(n);
  heap.clear();
  auto key = [](int32_t rank, int32_t pos) {
    return (uint64_t{static_cast<uint32_t>(rank)} << 32) | static_cast<uint32_t>(pos);
  };
  for (int32_t i = 0; i < n; ++i) {
    const int32_t rank = UpdatePair(scratch, i);
    if (rank != INT32_MAX) heap.push_back(key(rank, i));
  }
  std::make_heap(heap.begin(), heap.end(), std::greater<uint64_t>());
  auto update = [&](int32_t pos) {
    const int32_t rank = UpdatePair(scratch, pos);
    if (rank == INT32_MAX) return;
    heap.push_back(key(rank, pos));
    std::push_heap(heap.begin(), heap.end(), std::greater<uint64_t>());
  };
  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end(), std::greater<uint64_t>());
    const uint64_t top = heap.back();
    heap.pop_back();
    const int32_t pos = static_cast<int32_t>(top & 0xFFFFFFFFu);
    // Stale when the symbol was merged away or its pair changed since the push (a pair's rank
    // is unique to it, so an equal rank is the same pair).
    if (symbols[pos].length == 0 || scratch->ranks[pos] != static_cast<int32_t>(top >> 32)) {
      continue;
    }
    MergeAt(&symbols, pos, scratch->new_ids[pos]);
    update(pos);
    if (symbols[pos].prev >= 0) update(symbols[pos].prev);
  }
}

void BpeModel::EmitSymbols(std::string_view piece, const BpeScratch& scratch,
                           std::vector<int32_t>* out) const {
  const auto& symbols = scratch.symbols;
  for (int32_t i = 0; i >= 0; i = symbols[i].next) {
    const Symbol& s = symbols[i];
    if (s.id >= 0) {
      out->push_back(s.id);
      continue;
    }
    // Unknown: its tokenizer.json spelling's bytes as <0xNN> tokens, else unk, else nothing.
    if (byte_fallback_) {
      std::string spelling;
      if (byte_level_) {
        AppendUtf8(ByteToUnicode(static_cast<unsigned char>(piece[s.start])), &spelling);
      } else {
        spelling.assign(piece.data() + s.start, s.length);
      }
      bool all = true;
      for (unsigned char b : spelling) all &= fallback_ids_[b] >= 0;
      if (all) {
        for (unsigned char b : spelling) out->push_back(fallback_ids_[b]);
        continue;
      }
    }
    if (unk_id_ >= 0) out->push_back(unk_id_);
  }
}

void BpeModel::EncodePiece(std::string_view piece, BpeScratch* scratch,
                           std::vector<int32_t>* out) const {
  if (piece.size() == 1) {  // a single symbol: no merges
    const unsigned char b = static_cast<unsigned char>(piece[0]);
    const int32_t id = byte_level_ ? byte_ids_[b] : b < 0x80 ? ascii_ids_[b] : -1;
    if (id >= 0) {
      out->push_back(id);
      return;
    }
  }
  if (ignore_merges_) {  // on the whole piece, as the reference checks its pre-tokens
    const int32_t id = vocab_.Find(piece);
    if (id >= 0) {
      out->push_back(id);
      return;
    }
  }
  if (piece.size() <= kCutAboveBytes) {
    EncodeChunk(piece, scratch, out);
    return;
  }
  // Cut where no merge joins the two sides (bytes, or the characters' code points).
  size_t start = 0;
  uint32_t prev = 0;
  for (size_t i = 0; i < piece.size();) {
    uint32_t length = 1, cur = static_cast<unsigned char>(piece[i]);
    if (!byte_level_ && cur >= 0x80) {
      length = std::min<uint32_t>(Utf8SequenceLength(static_cast<unsigned char>(cur)),
                                  static_cast<uint32_t>(piece.size() - i));
      cur = DecodeUtf8(piece, i, &length);
    }
    if (i > start && !Joinable(prev, cur)) {
      EncodeChunk(piece.substr(start, i - start), scratch, out);
      start = i;
    }
    prev = cur;
    i += length;
  }
  EncodeChunk(piece.substr(start), scratch, out);
}

void BpeModel::EncodeChunk(std::string_view piece, BpeScratch* scratch,
                           std::vector<int32_t>* out) const {
  if (piece.size() == 1) {
    const unsigned char b = static_cast<unsigned char>(piece[0]);
    const int32_t id = byte_level_ ? byte_ids_[b] : b < 0x80 ? ascii_ids_[b] : -1;
    if (id >= 0) {
      out->push_back(id);
      return;
    }
  }
  const bool cacheable = piece.size() <= kMaxCachedBytes;
  const bool short_word = piece.size() <= ShortWordCache::kMaxKeyBytes;
  uint64_t hash = 0;
  if (cacheable) {
    hash = HashBytes(piece);
    if (short_word ? short_cache_.Lookup(piece, hash, out) : cache_.Lookup(piece, hash, out)) {
      return;
    }
  }
  InitialSymbols(piece, scratch);
  if (scratch->symbols.size() > 1) {
    if (scratch->symbols.size() <= kScanLimit) {
      MergeByScan(scratch);
    } else {
      MergeByHeap(scratch);
    }
  }
  const size_t first = out->size();
  EmitSymbols(piece, *scratch, out);
  const size_t n = out->size() - first;
  if (!cacheable || n == 0) return;
  if (short_word && n <= ShortWordCache::kMaxIds) {
    short_cache_.Insert(piece, hash, out->data() + first, n);
  } else {
    cache_.Insert(piece, hash, out->data() + first, n);
  }
}

void FuseUnk(int32_t unk_id, size_t begin, std::vector<int32_t>* ids) {
  size_t w = begin;
  for (size_t r = begin; r < ids->size(); ++r) {
    if ((*ids)[r] == unk_id && w > begin && (*ids)[w - 1] == unk_id) continue;
    (*ids)[w++] = (*ids)[r];
  }
  ids->resize(w);
}

}  // namespace emoe::tokenizer::internal
