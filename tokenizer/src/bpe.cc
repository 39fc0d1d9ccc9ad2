// tokenizer/src/bpe.cc: BPE over one piece (the merge loops, byte fallback, the cache).
#include <algorithm>
#include <climits>

#include "bpe.h"
#include "byte_level.h"
#include "utf8.h"

namespace emoe::tokenizer::internal {
namespace {

using Symbol = BpeScratch::Symbol;
using Candidate = BpeScratch::Candidate;

// Heap order: the lowest rank first, then the leftmost position.
struct Later {
  bool operator()(const Candidate& a, const Candidate& b) const {
    return a.rank != b.rank ? a.rank > b.rank : a.pos > b.pos;
  }
};

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

void BpeModel::MergeByScan(BpeScratch* scratch) const {
  auto& symbols = scratch->symbols;
  auto& ranks = scratch->ranks;
  auto rank_of = [&](int32_t pos) {
    const Symbol& s = symbols[pos];
    if (s.next < 0 || s.id < 0 || symbols[s.next].id < 0) return INT32_MAX;
    const PairMap::Value* v = merges_.Find(s.id, symbols[s.next].id);
    return v ? v->rank : INT32_MAX;
  };
  ranks.resize(symbols.size());
  for (size_t i = 0; i < symbols.size(); ++i) ranks[i] = rank_of(static_cast<int32_t>(i));
  for (;;) {
    int32_t best = -1, best_rank = INT32_MAX;
    for (int32_t i = 0; i >= 0; i = symbols[i].next) {
      if (ranks[i] < best_rank) {
        best_rank = ranks[i];
        best = i;
      }
    }
    if (best < 0) return;
    const PairMap::Value* v = merges_.Find(symbols[best].id, symbols[symbols[best].next].id);
    MergeAt(&symbols, best, v->new_id);
    ranks[best] = rank_of(best);
    if (symbols[best].prev >= 0) ranks[symbols[best].prev] = rank_of(symbols[best].prev);
  }
}

void BpeModel::MergeByHeap(BpeScratch* scratch) const {
  auto& symbols = scratch->symbols;
  auto& heap = scratch->heap;
  heap.clear();
  auto push = [&](int32_t pos) {
    const Symbol& s = symbols[pos];
    if (s.next < 0 || s.id < 0 || symbols[s.next].id < 0) return;
    const PairMap::Value* v = merges_.Find(s.id, symbols[s.next].id);
    if (v == nullptr) return;
    heap.push_back({v->rank, pos, s.id, symbols[s.next].id, v->new_id});
    std::push_heap(heap.begin(), heap.end(), Later());
  };
  for (int32_t i = 0; i < static_cast<int32_t>(symbols.size()); ++i) {
    const Symbol& s = symbols[i];
    if (s.next < 0 || s.id < 0 || symbols[s.next].id < 0) continue;
    const PairMap::Value* v = merges_.Find(s.id, symbols[s.next].id);
    if (v != nullptr) heap.push_back({v->rank, i, s.id, symbols[s.next].id, v->new_id});
  }
  std::make_heap(heap.begin(), heap.end(), Later());
  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end(), Later());
    const Candidate c = heap.back();
    heap.pop_back();
    const Symbol& s = symbols[c.pos];
    // Stale when the left symbol was merged away or either half changed since the push.
    if (s.length == 0 || s.id != c.left || s.next < 0 || symbols[s.next].id != c.right) continue;
    MergeAt(&symbols, c.pos, c.new_id);
    if (symbols[c.pos].prev >= 0) push(symbols[c.pos].prev);
    push(c.pos);
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
  if (ignore_merges_) {
    const int32_t id = vocab_.Find(piece);
    if (id >= 0) {
      out->push_back(id);
      return;
    }
  }
  const bool cacheable = piece.size() <= kMaxCachedBytes;
  uint64_t hash = 0;
  if (cacheable) {
    hash = HashBytes(piece);
    if (cache_.Lookup(piece, hash, out)) return;
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
  if (cacheable) cache_.Insert(piece, hash, out->data() + first, out->size() - first);
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
