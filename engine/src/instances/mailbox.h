// instances/mailbox.h: the step mailbox, the one layout both sides of the instance-process
// protocol (engine/remote_instance.h) use for a step's batch and its logits.
//
// The mailbox is a small shared memfd arena made by the coordinator (RemoteInstance) and mapped
// by the instance process. A step's batch lies at its start; byte offsets from the mailbox's
// first byte, all integers native-endian:
//
//   [0, 8)                        int64 n, the number of sequences
//   [8, 8 + 32 n)                 n x Record {int64 rank, length, num_blocks, num_tokens}
//   [8 + 32 n, request_bytes)     each sequence's blocks (int32 kv::BlockId) then its tokens
//                                 (int32), sequence after sequence, in record order
//   [logits_offset, + 4 n vocab)  n x vocab float logits, written by the instance process;
//                                 logits_offset is a multiple of kLogitsAlignment and at least
//                                 request_bytes
//
// request_bytes and logits_offset travel in the step's JSON message. The writer (coordinator)
// sizes a batch with Plan() and writes it with Write(); the reader (instance process) trusts
// nothing: Read() checks every count and offset against the mailbox's capacity and returns a
// kInvalidArgument naming what is wrong.
//
// Thread safety: stateless functions; the two processes take turns on the memory (the
// coordinator writes, then waits for the step's reply).
#ifndef ENGINE_INSTANCES_MAILBOX_H_
#define ENGINE_INSTANCES_MAILBOX_H_

#include <cstdint>
#include <span>
#include <vector>

#include "vmm/status.h"

namespace emoe::engine {

using vmm::Status;

class StepMailbox {
 public:
  // Where the logits start: a cache line, so the instance's float writes never straddle one
  // holding the request.
  static constexpr uint64_t kLogitsAlignment = 64;

  // One sequence's record, as it lies in the mailbox (32 bytes).
  struct Record {
    int64_t rank;        // the instance's rank that runs the sequence
    int64_t length;      // tokens already in its KV
    int64_t num_blocks;  // its block table's length
    int64_t num_tokens;  // new tokens this step
  };
  static_assert(sizeof(Record) == 4 * sizeof(int64_t));

  // One sequence of a batch. For Write, the spans point at the caller's memory; from Read, into
  // the mailbox (valid while it is mapped and the writer leaves it alone).
  struct Sequence {
    int64_t rank = 0;
    int64_t length = 0;               // tokens already in the KV
    std::span<const int32_t> blocks;  // kv::BlockId each
    std::span<const int32_t> tokens;  // the new tokens
  };

  // Where a batch lies in the mailbox (bytes from its start).
  struct Layout {
    int64_t n = 0;               // sequences
    uint64_t request_bytes = 0;  // header, records, blocks and tokens
    uint64_t logits_offset = 0;  // aligned, >= request_bytes
    uint64_t logits_bytes = 0;   // n * vocab * sizeof(float)
    uint64_t total_bytes() const { return logits_offset + logits_bytes; }
  };

  // The layout of `batch` with `vocab` logits per sequence.
  static Layout Plan(std::span<const Sequence> batch, int64_t vocab);

  // Writes `batch` (laid out as `layout`, from Plan over the same batch) into the mailbox at
  // `box` of `capacity_bytes`. kInvalidArgument, writing nothing, when the layout does not fit
  // or was not planned for this batch.
  static Status Write(std::span<const Sequence> batch, const Layout& layout, uint8_t* box,
                      uint64_t capacity_bytes);

  // Reads the batch the writer left at `box` (of `capacity_bytes`), whose request ends at
  // `request_bytes` and whose logits (`vocab` floats per sequence) start at `logits_offset`.
  // On success fills *batch (spans into the mailbox) and *layout. kInvalidArgument naming the
  // fault when n, a count, an offset or the logits do not fit; *batch is then unspecified.
  static Status Read(const uint8_t* box, uint64_t capacity_bytes, uint64_t request_bytes,
                     uint64_t logits_offset, int64_t vocab, std::vector<Sequence>* batch,
                     Layout* layout);

  // Sequence i's logits (vocab floats) in a mailbox holding `layout`; REQUIRES: i < layout.n.
  static float* Logits(uint8_t* box, const Layout& layout, int64_t vocab, int64_t i) {
    return reinterpret_cast<float*>(box + layout.logits_offset) + i * vocab;
  }
  static const float* Logits(const uint8_t* box, const Layout& layout, int64_t vocab, int64_t i) {
    return reinterpret_cast<const float*>(box + layout.logits_offset) + i * vocab;
  }
};

}  // namespace emoe::engine

#endif  // ENGINE_INSTANCES_MAILBOX_H_
