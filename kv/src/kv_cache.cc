#include "kv/kv_cache.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>

namespace emoe::kv {

Status KvGeometry::Validate() const {
  if (layers <= 0 || kv_heads <= 0 || head_dim <= 0 || block_tokens <= 0 || block_tokens > 4096) {
    return Status::InvalidArgument(
        "KV geometry needs positive layers, heads, head_dim and 1..4096 "
        "tokens per block");
  }
  return Status::Ok();
}

BlockPool::BlockPool(int64_t num_blocks) : refs_(num_blocks, 0) {
  free_.reserve(num_blocks);
  for (int64_t b = num_blocks - 1; b >= 0; --b) free_.push_back(static_cast<BlockId>(b));
}

StatusOr<std::vector<BlockId>> BlockPool::Allocate(int64_t n) {
  vmm::MutexLock l(&mu_);
  if (n < 0 || n > static_cast<int64_t>(free_.size())) {
    return Status::ResourceExhausted("KV block pool: " + std::to_string(n) + " blocks asked, " +
                                     std::to_string(free_.size()) + " of " +
                                     std::to_string(refs_.size()) + " free");
  }
  std::vector<BlockId> out(free_.end() - n, free_.end());
  free_.resize(free_.size() - n);
  for (BlockId b : out) refs_[b] = 1;
  return out;
}

void BlockPool::Ref(BlockId b) {
  vmm::MutexLock l(&mu_);
  if (b < 0 || b >= static_cast<BlockId>(refs_.size()) || refs_[b] <= 0) {
    std::fprintf(stderr, "kv: Ref of free or unknown block %d\n", b);
    std::abort();
  }
  ++refs_[b];
}

void BlockPool::Unref(BlockId b) {
  vmm::MutexLock l(&mu_);
  if (b < 0 || b >= static_cast<BlockId>(refs_.size()) || refs_[b] <= 0) {
    std::fprintf(stderr, "kv: release of free or unknown block %d (double release)\n", b);
    std::abort();
  }
  if (--refs_[b] == 0) free_.push_back(b);
}

int64_t BlockPool::num_blocks() const {
  vmm::MutexLock l(&mu_);
  return static_cast<int64_t>(refs_.size());
}

Status BlockPool::Resize(int64_t n) {
  if (n < 1) return Status::InvalidArgument("KV block pool: resize to " + std::to_string(n));
  vmm::MutexLock l(&mu_);
  const int64_t have = static_cast<int64_t>(refs_.size());
  if (n < have) {
    for (int64_t b = n; b < have; ++b) {
      if (refs_[b] != 0) {
        return Status::FailedPrecondition("KV block pool: cannot shrink from " +
                                          std::to_string(have) + " to " + std::to_string(n) +
                                          " blocks: block " + std::to_string(b) + " is in use");
      }
    }
    std::erase_if(free_, [n](BlockId b) { return b >= n; });
    refs_.resize(n);
    return Status::Ok();
  }
  refs_.resize(n, 0);
  // Lowest last: the LIFO list hands out the new blocks in address order after the old ones.
  std::vector<BlockId> added;
  for (int64_t b = n - 1; b >= have; --b) added.push_back(static_cast<BlockId>(b));
  free_.insert(free_.begin(), added.begin(), added.end());
  return Status::Ok();
}

int64_t BlockPool::min_blocks() const {
  vmm::MutexLock l(&mu_);
  for (int64_t b = static_cast<int64_t>(refs_.size()) - 1; b > 0; --b) {
    if (refs_[b] != 0) return b + 1;
  }
  return 1;
}

int64_t BlockPool::free_blocks() const {
  vmm::MutexLock l(&mu_);
  return free_.size();
}

int32_t BlockPool::refcount(BlockId b) const {
  vmm::MutexLock l(&mu_);
  return refs_.at(b);
}

Status BlockPool::CheckInvariants() const {
  vmm::MutexLock l(&mu_);
  std::vector<int> on_list(refs_.size(), 0);
  for (BlockId b : free_) {
    if (b < 0 || b >= static_cast<BlockId>(refs_.size())) {
      return Status::Internal("invariant 1: free list holds unknown block " + std::to_string(b));
    }
    if (++on_list[b] > 1 || refs_[b] != 0) {
      return Status::Internal("invariant 1: block " + std::to_string(b) +
                              " is on the free list twice or while in use");
    }
  }
  for (size_t b = 0; b < refs_.size(); ++b) {
    if (refs_[b] < 0 || (refs_[b] == 0 && on_list[b] != 1)) {
      return Status::Internal("invariant 1: block " + std::to_string(b) + " is lost");
    }
  }
  return Status::Ok();
}

StatusOr<std::unique_ptr<KvStore>> KvStore::Create(hbm::Device& device, const KvGeometry& g,
                                                   uint64_t capacity_bytes) {
  VMM_RETURN_IF_ERROR(g.Validate());
  const auto& arena = device.arena(hbm::Usage::kKv);
  if (!arena) {
    return Status::FailedPrecondition("device " + std::to_string(device.id()) + " has no KV arena");
  }
  if (capacity_bytes == 0) {
    capacity_bytes = std::min(arena->Stats().largest_free_bytes, device.free_bytes());
  }
  const int64_t blocks = capacity_bytes / g.block_bytes();
  if (blocks < 1) {
    return Status::ResourceExhausted(
        "device " + std::to_string(device.id()) + ": " + std::to_string(capacity_bytes) +
        " bytes of KV memory hold no block of " + std::to_string(g.block_bytes()) + " bytes");
  }
  VMM_ASSIGN_OR_RETURN(vmm::Extent e, device.Allocate(hbm::Usage::kKv, blocks * g.block_bytes()));
  VMM_ASSIGN_OR_RETURN(auto mem, hbm::KvMemoryFromExtent(device, std::move(e)));
  return Make(std::move(mem), g);
}

StatusOr<std::unique_ptr<KvStore>> KvStore::Create(hbm::HmmControl& hmm, int device,
                                                   const KvGeometry& g, uint64_t capacity_bytes) {
  VMM_RETURN_IF_ERROR(g.Validate());
  const uint64_t blocks = capacity_bytes / g.block_bytes();
  if (blocks < 1) {
    return Status::ResourceExhausted(
        "device " + std::to_string(device) + ": " + std::to_string(capacity_bytes) +
        " bytes of KV memory hold no block of " + std::to_string(g.block_bytes()) + " bytes");
  }
  VMM_ASSIGN_OR_RETURN(auto mem, hmm.AllocateKv(device, blocks * g.block_bytes()));
  return Make(std::move(mem), g);
}

StatusOr<std::unique_ptr<KvStore>> KvStore::Make(std::unique_ptr<hbm::KvMemory> mem,
                                                 const KvGeometry& g) {
  auto s = std::unique_ptr<KvStore>(new KvStore());
  s->geometry_ = g;
  s->pool_ = std::make_unique<BlockPool>(mem->size_bytes / g.block_bytes());
  s->mem_ = std::move(mem);
  return s;
}

Status KvStore::Resize(uint64_t bytes) {
  const uint64_t bb = geometry_.block_bytes();
  const int64_t want = static_cast<int64_t>(bytes / bb);
  const std::string what = "KV store on device " + std::to_string(device());
  if (want < 1) {
    return Status::InvalidArgument(what + ": " + std::to_string(bytes) +
                                   " bytes hold no block of " + std::to_string(bb) + " bytes");
  }
  const int64_t have = pool_->num_blocks();
  if (want == have) return Status::Ok();
  if (want < have) {
    // The pool first: once the tail blocks are out of it, nobody can take them.
    Status s = pool_->Resize(want);
    if (!s.ok()) return s.Annotate(what);
    s = mem_->Resize(want * bb);
    if (!s.ok()) {
      (void)pool_->Resize(have);  // growing the pool back cannot fail
      return s.Annotate(what);
    }
  } else {
    Status s = mem_->Resize(want * bb);
    if (!s.ok()) return s.Annotate(what);
  }
  // Page rounding may leave room for more blocks than asked for: the pool takes all of it.
  return pool_->Resize(static_cast<int64_t>(mem_->size_bytes / bb));
}

namespace {

float* At(uint8_t* base, const KvGeometry& g, BlockId b, int64_t layer, bool value, int64_t slot) {
  return reinterpret_cast<float*>(base + b * g.block_bytes() +
                                  g.offset_in_block(layer, value, slot));
}

}  // namespace

float* KvStore::Key(BlockId b, int64_t layer, int64_t slot) {
  return At(mem_->base, geometry_, b, layer, false, slot);
}

float* KvStore::Value(BlockId b, int64_t layer, int64_t slot) {
  return At(mem_->base, geometry_, b, layer, true, slot);
}

Status MappedSequence::Reserve(int64_t total_tokens) {
  if (total_tokens > static_cast<int64_t>(blocks_.size()) * g_.block_tokens) {
    return Status::ResourceExhausted("KV: " + std::to_string(total_tokens) + " tokens exceed the " +
                                     std::to_string(blocks_.size()) +
                                     " blocks reserved for this sequence");
  }
  return Status::Ok();
}

float* MappedSequence::Key(int64_t layer, int64_t pos) {
  return At(base_, g_, blocks_[pos / g_.block_tokens], layer, false, pos % g_.block_tokens);
}

float* MappedSequence::Value(int64_t layer, int64_t pos) {
  return At(base_, g_, blocks_[pos / g_.block_tokens], layer, true, pos % g_.block_tokens);
}

ContiguousSequence::ContiguousSequence(const KvGeometry& g, int64_t max_tokens)
    : g_(g),
      max_tokens_(max_tokens),
      k_(g.layers * max_tokens * g.token_floats()),
      v_(g.layers * max_tokens * g.token_floats()) {}

Status ContiguousSequence::Reserve(int64_t total_tokens) {
  if (total_tokens > max_tokens_) {
    return Status::ResourceExhausted("KV: " + std::to_string(total_tokens) +
                                     " tokens exceed the sequence's " +
                                     std::to_string(max_tokens_));
  }
  return Status::Ok();
}

float* ContiguousSequence::Key(int64_t layer, int64_t pos) {
  return &k_[(layer * max_tokens_ + pos) * g_.token_floats()];
}

float* ContiguousSequence::Value(int64_t layer, int64_t pos) {
  return &v_[(layer * max_tokens_ + pos) * g_.token_floats()];
}

Status PagedSequence::Reserve(int64_t total_tokens) {
  const int64_t bt = store_->geometry().block_tokens;
  const int64_t need = (total_tokens + bt - 1) / bt - static_cast<int64_t>(blocks_.size());
  if (need <= 0) return Status::Ok();
  VMM_ASSIGN_OR_RETURN(std::vector<BlockId> more, store_->pool().Allocate(need));
  blocks_.insert(blocks_.end(), more.begin(), more.end());
  return Status::Ok();
}

float* PagedSequence::Key(int64_t layer, int64_t pos) {
  const int64_t bt = store_->geometry().block_tokens;
  return store_->Key(blocks_[pos / bt], layer, pos % bt);
}

float* PagedSequence::Value(int64_t layer, int64_t pos) {
  const int64_t bt = store_->geometry().block_tokens;
  return store_->Value(blocks_[pos / bt], layer, pos % bt);
}

void PagedSequence::Release() {
  for (BlockId b : blocks_) store_->pool().Unref(b);
  blocks_.clear();
  length_ = 0;
}

StatusOr<std::unique_ptr<PagedSequence>> PagedSequence::CopyTo(KvStore* dst,
                                                               const CopyFn& copy) const {
  const KvGeometry &a = store_->geometry(), &b = dst->geometry();
  if (a.block_bytes() != b.block_bytes() || a.block_tokens != b.block_tokens) {
    return Status::InvalidArgument("KV copy between stores of different geometry");
  }
  auto out = std::make_unique<PagedSequence>(dst);
  if (blocks_.empty()) return out;
  VMM_ASSIGN_OR_RETURN(out->blocks_, dst->pool().Allocate(blocks_.size()));
  for (size_t i = 0; i < blocks_.size(); ++i) {
    Status s =
        copy(dst->BlockData(out->blocks_[i]), store_->BlockData(blocks_[i]), a.block_bytes());
    if (!s.ok()) return s.Annotate("KV block copy");  // `out` releases its blocks
  }
  out->length_ = length_;
  return out;
}

}  // namespace emoe::kv
