// kv/kv_cache.h: the paged KV cache: a block pool (pure metadata), append-only block tables per
// sequence, and block storage in a device's KV arena (shareable with other processes like any
// arena).
//
// Concepts:
//  - A block holds `block_tokens` tokens of K and V for every layer, fp32, laid out
//    [layer][K|V][token][kv_heads * head_dim]; block b lives at byte b * block_bytes of the store.
//  - BlockPool: free list + refcounts (a block shared by two sequences, e.g. a common prefix,
//    has refcount 2 and returns to the free list at the last release).
//  - Sequence: the KV of one request as the attention code sees it: Reserve room for more
//    tokens, then Key/Value pointers per (layer, position). PagedSequence maps positions to
//    blocks through its block table; ContiguousSequence is one flat buffer (reference, tests).
//
// Invariants (BlockPool::CheckInvariants):
//  1. Every block is either free (refcount 0, on the free list exactly once) or used (refcount
//     > 0, not on the free list).
//  2. free_blocks() equals the free list's length.
//  3. A KvStore's pool has exactly as many blocks as its memory holds (size_bytes / block_bytes),
//     also across Resize (shrink: the pool first, then the memory; grow: the other way round).
//
// Thread safety: BlockPool and KvStore lock internally (BlockPool::mu_, a vmm::Mutex, guards the
// refcounts and the free list; clang's -Wthread-safety checks it); a Sequence belongs to one
// request and is used by one thread at a time.
#ifndef KV_KV_CACHE_H_
#define KV_KV_CACHE_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "hbm/control.h"
#include "hbm/device.h"
#include "vmm/mutex.h"
#include "vmm/status.h"

namespace emoe::kv {

using vmm::Status;
using vmm::StatusOr;

using BlockId = int32_t;

struct KvGeometry {
  int64_t layers = 0;
  int64_t kv_heads = 0;
  int64_t head_dim = 0;
  int64_t block_tokens = 16;
  int64_t token_floats() const { return kv_heads * head_dim; }  // one token, one of K or V
  uint64_t block_bytes() const {
    return 2ull * layers * block_tokens * token_floats() * sizeof(float);
  }
  // Byte offset of (layer, K or V, slot) inside a block.
  uint64_t offset_in_block(int64_t layer, bool value, int64_t slot) const {
    return ((layer * 2 + (value ? 1 : 0)) * block_tokens + slot) * token_floats() * sizeof(float);
  }
  Status Validate() const;
};

class BlockPool {
 public:
  explicit BlockPool(int64_t num_blocks);
  // All-or-nothing: `n` blocks with refcount 1, or kResourceExhausted and nothing taken.
  StatusOr<std::vector<BlockId>> Allocate(int64_t n);
  void Ref(BlockId b);    // REQUIRES: b is used
  void Unref(BlockId b);  // frees at zero; aborts on a free block (double release)
  int64_t num_blocks() const;
  int64_t free_blocks() const;
  // Changes the number of blocks to `n` (>= 1): more appends free blocks; fewer drops blocks
  // [n, num_blocks()), which must all be free (kFailedPrecondition naming the first one in use
  // otherwise; nothing changes).
  Status Resize(int64_t n);
  // The fewest blocks Resize can keep now: one past the highest block in use (at least 1).
  int64_t min_blocks() const;
  int32_t refcount(BlockId b) const;
  Status CheckInvariants() const;

 private:
  mutable vmm::Mutex mu_;
  std::vector<int32_t> refs_ GUARDED_BY(mu_);
  std::vector<BlockId> free_
      GUARDED_BY(mu_);  // LIFO: recently freed blocks are reused first (warm in cache)
};

// Block storage: one extent of a device's KV arena.
class KvStore {
 public:
  // `capacity_bytes` 0 = everything the KV arena and the device have free. kResourceExhausted when
  // not even one block fits; kFailedPrecondition when the device has no KV arena.
  static StatusOr<std::unique_ptr<KvStore>> Create(hbm::Device& device, const KvGeometry& g,
                                                   uint64_t capacity_bytes = 0);
  // The same through an HmmControl (the HMM in this process or in hmmd): as many whole blocks as
  // fit in `capacity_bytes` (> 0) of the device's KV arena.
  static StatusOr<std::unique_ptr<KvStore>> Create(hbm::HmmControl& hmm, int device,
                                                   const KvGeometry& g, uint64_t capacity_bytes);
  const KvGeometry& geometry() const { return geometry_; }
  BlockPool& pool() { return *pool_; }
  const BlockPool& pool() const { return *pool_; }
  // Resizes the store to as many whole blocks as fit in `bytes` (at least one), in place
  // (KvMemory::Resize: block addresses stay): shrinking gives the tail back to the device, and
  // needs every block past the new end free (pool().min_blocks()); growing takes the arena pages
  // after the end. kFailedPrecondition / kResourceExhausted naming why; nothing changes on error.
  // Safe while sequences allocate and release blocks on other threads. Processes that attached
  // the KV arena keep the whole arena mapped; a tail given back stays mapped there but is never
  // addressed (block ids come from this pool, which no longer has those blocks).
  Status Resize(uint64_t bytes);
  float* Key(BlockId b, int64_t layer, int64_t slot);  // slot < block_tokens
  float* Value(BlockId b, int64_t layer, int64_t slot);
  uint8_t* BlockData(BlockId b) { return mem_->base + b * geometry_.block_bytes(); }
  // The blocks' memory: mapped here at data(), at arena_offset() in the device's KV arena.
  uint8_t* data() const { return mem_->base; }
  uint64_t size_bytes() const { return mem_->size_bytes; }
  uint64_t arena_offset() const { return mem_->arena_offset; }
  int device() const { return mem_->device; }

 private:
  KvStore() = default;
  static StatusOr<std::unique_ptr<KvStore>> Make(std::unique_ptr<hbm::KvMemory> mem,
                                                 const KvGeometry& g);
  KvGeometry geometry_;
  std::unique_ptr<hbm::KvMemory> mem_;
  std::unique_ptr<BlockPool> pool_;
};

// The KV of one sequence, as attention sees it.
class Sequence {
 public:
  virtual ~Sequence() = default;
  virtual int64_t length() const = 0;  // tokens stored
  // Makes room for `total_tokens` tokens; kResourceExhausted (state unchanged) when it cannot.
  virtual Status Reserve(int64_t total_tokens) = 0;
  virtual void SetLength(int64_t tokens) = 0;  // REQUIRES: <= reserved
  virtual float* Key(int64_t layer, int64_t pos) = 0;
  virtual float* Value(int64_t layer, int64_t pos) = 0;
};

// One flat buffer (the reference layout).
class ContiguousSequence : public Sequence {
 public:
  ContiguousSequence(const KvGeometry& g, int64_t max_tokens);
  int64_t length() const override { return length_; }
  Status Reserve(int64_t total_tokens) override;
  void SetLength(int64_t tokens) override { length_ = tokens; }
  float* Key(int64_t layer, int64_t pos) override;
  float* Value(int64_t layer, int64_t pos) override;

 private:
  KvGeometry g_;
  int64_t max_tokens_, length_ = 0;
  std::vector<float> k_, v_;
};

// Blocks from a KvStore through an append-only block table. Releases its blocks on destruction.
class PagedSequence : public Sequence {
 public:
  explicit PagedSequence(KvStore* store) : store_(store) {}
  ~PagedSequence() override { Release(); }
  PagedSequence(const PagedSequence&) = delete;
  PagedSequence& operator=(const PagedSequence&) = delete;

  int64_t length() const override { return length_; }
  Status Reserve(int64_t total_tokens) override;
  void SetLength(int64_t tokens) override { length_ = tokens; }
  float* Key(int64_t layer, int64_t pos) override;
  float* Value(int64_t layer, int64_t pos) override;
  // Returns every block to the pool (the sequence is empty afterwards).
  void Release();
  const std::vector<BlockId>& blocks() const { return blocks_; }
  KvStore* store() const { return store_; }

  // Copies this sequence's blocks into fresh blocks of `dst` (another device's store: a request
  // moving off a device that leaves the instance) with `copy` (e.g. the HMM's P2P engine), and
  // returns the copy; this sequence is unchanged. kResourceExhausted when `dst` has too few free
  // blocks; on any failure nothing stays allocated in `dst`.
  using CopyFn = std::function<Status(void* dst, const void* src, uint64_t bytes)>;
  StatusOr<std::unique_ptr<PagedSequence>> CopyTo(KvStore* dst, const CopyFn& copy) const;

 private:
  KvStore* store_;
  std::vector<BlockId> blocks_;
  int64_t length_ = 0;
};

// A sequence whose block table is managed elsewhere (another process's BlockPool): a view of
// `blocks` over block storage mapped at `store_base` (e.g. an instance process's mapping of a KV
// arena served by hmmd). It never allocates: Reserve fails past the blocks it was given.
class MappedSequence : public Sequence {
 public:
  MappedSequence(uint8_t* store_base, const KvGeometry& g, std::vector<BlockId> blocks,
                 int64_t length)
      : base_(store_base), g_(g), blocks_(std::move(blocks)), length_(length) {}
  int64_t length() const override { return length_; }
  Status Reserve(int64_t total_tokens) override;
  void SetLength(int64_t tokens) override { length_ = tokens; }
  float* Key(int64_t layer, int64_t pos) override;
  float* Value(int64_t layer, int64_t pos) override;

 private:
  uint8_t* base_;
  KvGeometry g_;
  std::vector<BlockId> blocks_;
  int64_t length_;
};

}  // namespace emoe::kv

#endif  // KV_KV_CACHE_H_
