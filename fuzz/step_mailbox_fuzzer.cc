// Fuzzes what an instance process reads from the coordinator's untrusted side (the instance
// protocol, engine/remote_instance.h): the step mailbox (engine/src/instances/mailbox.h) and the
// arena metadata a step or attach message carries (vmm::ExportedArena::ParseMetadata).
//
// Input: [0, 8) request_bytes, [8, 16) logits_offset, [16, 24) vocab (native-endian; the step
// message gives them), then the mailbox's bytes (its capacity is their count). A batch that Read
// accepts must lie inside the request, its logits inside the mailbox (they are written, as the
// instance does, so ASan sees any overrun), and written back with Plan and Write it must give the
// same request bytes.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "fuzz_check.h"
#include "instances/mailbox.h"
#include "vmm/arena.h"

namespace {

using emoe::engine::StepMailbox;

void CheckBatch(const uint8_t* box, uint64_t capacity, uint64_t request_bytes, int64_t vocab,
                const std::vector<StepMailbox::Sequence>& batch,
                const StepMailbox::Layout& layout) {
  FUZZ_CHECK(layout.n == static_cast<int64_t>(batch.size()));
  FUZZ_CHECK(layout.request_bytes == request_bytes);
  FUZZ_CHECK(layout.total_bytes() <= capacity);
  for (const StepMailbox::Sequence& s : batch) {
    for (auto span : {s.blocks, s.tokens}) {
      const auto* begin = reinterpret_cast<const uint8_t*>(span.data());
      FUZZ_CHECK(begin >= box && span.size_bytes() <= request_bytes - (begin - box));
    }
  }
  // Written back from the spans, the request is byte for byte the one read.
  const StepMailbox::Layout planned = StepMailbox::Plan(batch, vocab);
  FUZZ_CHECK(planned.request_bytes == request_bytes);
  FUZZ_CHECK(planned.total_bytes() <= layout.total_bytes());
  std::vector<uint8_t> copy(capacity);
  FUZZ_CHECK(StepMailbox::Write(batch, planned, copy.data(), capacity).ok());
  FUZZ_CHECK(std::memcmp(copy.data(), box, request_bytes) == 0);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  constexpr size_t kFields = 24;
  if (size < kFields) return 0;
  uint64_t request_bytes = 0, logits_offset = 0;
  int64_t vocab = 0;
  std::memcpy(&request_bytes, data, 8);
  std::memcpy(&logits_offset, data + 8, 8);
  std::memcpy(&vocab, data + 16, 8);
  const uint64_t capacity = size - kFields;
  // A heap block of exactly `capacity` bytes (malloc-aligned, as the int32 and float views need),
  // so that ASan reports any access past the mailbox.
  std::unique_ptr<uint8_t[]> box(new uint8_t[capacity]);
  std::memcpy(box.get(), data + kFields, capacity);
  std::vector<StepMailbox::Sequence> batch;
  StepMailbox::Layout layout;
  if (StepMailbox::Read(box.get(), capacity, request_bytes, logits_offset, vocab, &batch, &layout)
          .ok()) {
    CheckBatch(box.get(), capacity, request_bytes, vocab, batch, layout);
    // The instance then writes every sequence's logits.
    for (int64_t i = 0; i < layout.n; ++i) {
      std::memset(StepMailbox::Logits(box.get(), layout, vocab, i), 0, vocab * sizeof(float));
    }
  }
  const std::string text(reinterpret_cast<const char*>(data + kFields), capacity);
  (void)vmm::ExportedArena::ParseMetadata(text);
  return 0;
}
