// tokenizer/src/bpe.h: the BPE model: a piece of text to token ids (internal).
//
// A piece's initial symbols are its bytes (byte-level vocabularies, whose tokens the loader
// mapped back to raw bytes) or its UTF-8 characters, each looked up in the vocabulary. Then the
// adjacent pair with the lowest merge rank is merged, leftmost first among equal ranks, until no
// pair has a merge: the reference's order (its heap scores rank + position / length). Both
// loops keep each pair's rank and merged token in arrays updated as pairs change; short words
// scan the rank array, long ones (a Mistral segment is one word: 100 KB of text) pop a heap of
// (rank, position) keys, skipping those the arrays no longer agree with: O(n log n). A symbol not
// in the vocabulary never merges; at the end it becomes its bytes' <0xNN> tokens (byte_fallback,
// when all of them exist) or unk_token (when the model has one) or nothing, as in the reference.
//
// ignore_merges: a piece that is a token as a whole is that token. fuse_unk (runs of unk ids
// become one) is the caller's, over a whole section (FuseUnk), as the reference does it.
//
// Long pieces are cut where no merge can reach across: a merge of symbols A and B spans the
// boundary between A's last character (byte, for byte-level vocabularies) and B's first, so
// where two adjacent characters are no merge's (last of left, first of right) pair, no merge
// ever joins them, and BPE on either side runs as if the other were absent (its pairs, their
// ranks and their left-to-right order are untouched). A Mistral segment (no pre-tokenizer)
// falls apart into words at "x▁" boundaries that way, exactly.
//
// Cache: pieces up to kMaxCachedBytes map to their ids in direct-mapped caches (bpe_cache.h:
// a lock-free one for short pieces, a sharded locked one for the others); EncodePiece is safe
// from many threads at once. A one-byte (one-character) piece that is a token skips them.
//
// Thread safety: immutable after Build, except the cache (internally locked).
#ifndef TOKENIZER_SRC_BPE_H_
#define TOKENIZER_SRC_BPE_H_

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "bpe_cache.h"
#include "hash_tables.h"
#include "json_fields.h"
#include "token_table.h"
#include "vmm/status.h"

namespace emoe::tokenizer::internal {

// One entry of tokenizer.json "added_tokens", as read (strings point into the JSON DOM).
struct AddedTokenSpec {
  std::string_view content;
  int32_t id = -1;
  bool single_word = false, lstrip = false, rstrip = false, normalized = false, special = false;
  // The normalizer's output for `content` when `normalized` (and there is a normalizer); the
  // reference maps this string to the token too.
  std::string normalized_content;
};

// Reused buffers of one Encode call (no allocation per piece).
struct BpeScratch {
  struct Symbol {
    int32_t id;              // -1: not in the vocabulary
    int32_t prev, next;      // -1 at the ends
    uint32_t start, length;  // bytes of the piece (for byte fallback)
  };
  std::vector<Symbol> symbols;
  // The merge of the pair (i, next(i)): its rank (INT32_MAX for none) and merged token.
  std::vector<int32_t> ranks, new_ids;
  std::vector<uint64_t> heap;  // rank << 32 | position, lowest first
};

class BpeModel {
 public:
  // Reads tokenizer.json's "model" (type BPE) at `where` with the added tokens, and fills
  // *table (json forms, raw bytes for byte_level, kPresent/kAdded flags). Errors name the field:
  // duplicate ids or tokens, ids out of range, merges naming tokens not in the vocabulary, merges
  // whose result is not in the vocabulary, options it does not implement.
  static vmm::StatusOr<std::unique_ptr<BpeModel>> Build(const element& model,
                                                        const std::string& where,
                                                        const std::vector<AddedTokenSpec>& added,
                                                        bool byte_level, TokenTable* table);

  // Appends the ids of `piece` (non-empty) to *out.
  void EncodePiece(std::string_view piece, BpeScratch* scratch, std::vector<int32_t>* out) const;

  // The id of the token spelled `key` (raw bytes for byte-level vocabularies), -1 if none.
  int32_t Find(std::string_view key) const { return vocab_.Find(key); }
  int32_t unk_id() const { return unk_id_; }
  bool fuse_unk() const { return fuse_unk_; }
  size_t vocab_entries() const { return vocab_entries_; }
  size_t merges() const { return merges_.size(); }
  bool byte_fallback() const { return byte_fallback_; }

  static constexpr size_t kMaxCachedBytes = 256;
  static constexpr size_t kCutAboveBytes = 24;  // pieces longer than this are cut (see above)
  static constexpr size_t kScanLimit = 48;      // symbols: rank-array scan up to here, heap above

 private:
  BpeModel() = default;
  vmm::Status ReadVocab(const element& vocab, const std::string& where,
                        const std::vector<AddedTokenSpec>& added, TokenTable* table);
  vmm::Status ReadMerges(const element& merges, const std::string& where);
  vmm::Status ReadOptions(const object& model, const std::string& where);
  void FinishTables();
  // Symbols of `piece` into scratch->symbols.
  void InitialSymbols(std::string_view piece, BpeScratch* scratch) const;
  // Sets scratch->ranks[pos] and new_ids[pos] for the pair at `pos`; returns the rank.
  int32_t UpdatePair(BpeScratch* scratch, int32_t pos) const;
  void MergeByScan(BpeScratch* scratch) const;
  void MergeByHeap(BpeScratch* scratch) const;
  // BPE of one chunk (cache, merges, fallback), appended to *out.
  void EncodeChunk(std::string_view chunk, BpeScratch* scratch, std::vector<int32_t>* out) const;
  // May a merge join the characters (bytes) a and b? See the concept block.
  bool Joinable(uint32_t a, uint32_t b) const {
    if (byte_level_) return (byte_bigrams_[(a << 8 | b) >> 6] >> (b & 63)) & 1;
    return char_bigrams_.Find(static_cast<int32_t>(a), static_cast<int32_t>(b)) != nullptr;
  }
  void NoteBoundary(std::string_view left_key, std::string_view right_key);
  // Appends the final ids (byte fallback / unk for unknown symbols) to *out.
  void EmitSymbols(std::string_view piece, const BpeScratch& scratch,
                   std::vector<int32_t>* out) const;
  // The key (vocabulary spelling) of a tokenizer.json token string; false when a byte-level
  // token is not in GPT-2's alphabet.
  bool KeyOf(std::string_view json, std::string* key) const;

  bool byte_level_ = false;
  bool byte_fallback_ = false;
  bool ignore_merges_ = false;
  bool fuse_unk_ = false;
  int32_t unk_id_ = -1;
  size_t vocab_entries_ = 0;
  StringIdMap vocab_;  // key -> id, added tokens included (they override)
  PairMap merges_;
  std::array<int32_t, 256> byte_ids_{};      // byte-level: the token of each byte (-1: none)
  std::array<int32_t, 128> ascii_ids_{};     // otherwise: the token of each ASCII character
  std::array<int32_t, 256> fallback_ids_{};  // <0xNN> tokens (-1: none)
  // The (last, first) pairs of the merges' halves: bytes (a bitmap of 2^16) or code points.
  std::array<uint64_t, 1024> byte_bigrams_{};
  PairMap char_bigrams_;
  mutable ShortWordCache short_cache_;
  mutable WordCache cache_;
};

// Replaces each run of unk_id in ids[begin, end) by one (the reference's fuse_unk) and shrinks
// *ids accordingly.
void FuseUnk(int32_t unk_id, size_t begin, std::vector<int32_t>* ids);

}  // namespace emoe::tokenizer::internal

#endif  // TOKENIZER_SRC_BPE_H_
