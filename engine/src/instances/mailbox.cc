#include "instances/mailbox.h"

#include <cstring>
#include <string>

namespace emoe::engine {

namespace {

constexpr uint64_t kHeaderBytes = sizeof(int64_t);  // n

uint64_t AlignUp(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }

uint64_t SequenceBytes(uint64_t num_blocks, uint64_t num_tokens) {
  return sizeof(StepMailbox::Record) + sizeof(int32_t) * (num_blocks + num_tokens);
}

Status Malformed(const std::string& what) {
  return Status::InvalidArgument("step mailbox: " + what);
}

}  // namespace

StepMailbox::Layout StepMailbox::Plan(std::span<const Sequence> batch, int64_t vocab) {
  Layout l;
  l.n = static_cast<int64_t>(batch.size());
  l.request_bytes = kHeaderBytes;
  for (const Sequence& s : batch)
    l.request_bytes += SequenceBytes(s.blocks.size(), s.tokens.size());
  l.logits_offset = AlignUp(l.request_bytes, kLogitsAlignment);
  l.logits_bytes = batch.size() * static_cast<uint64_t>(vocab) * sizeof(float);
  return l;
}

Status StepMailbox::Write(std::span<const Sequence> batch, const Layout& layout, uint8_t* box,
                          uint64_t capacity_bytes) {
  uint64_t request_bytes = kHeaderBytes;
  for (const Sequence& s : batch) request_bytes += SequenceBytes(s.blocks.size(), s.tokens.size());
  if (layout.n != static_cast<int64_t>(batch.size()) || layout.request_bytes != request_bytes ||
      layout.logits_offset < request_bytes || layout.logits_offset % kLogitsAlignment != 0) {
    return Malformed("the layout was not planned for this batch of " +
                     std::to_string(batch.size()));
  }
  if (layout.total_bytes() > capacity_bytes) {
    return Malformed("a batch of " + std::to_string(layout.total_bytes()) +
                     " bytes does not fit a mailbox of " + std::to_string(capacity_bytes));
  }
  const int64_t n = layout.n;
  std::memcpy(box, &n, sizeof(n));
  uint8_t* at = box + kHeaderBytes;
  for (const Sequence& s : batch) {
    const Record r{s.rank, s.length, static_cast<int64_t>(s.blocks.size()),
                   static_cast<int64_t>(s.tokens.size())};
    std::memcpy(at, &r, sizeof(r));
    at += sizeof(r);
  }
  for (const Sequence& s : batch) {
    for (std::span<const int32_t> v : {s.blocks, s.tokens}) {
      // An empty span's data() may be null, and memcpy from null is undefined even for 0 bytes.
      if (!v.empty()) std::memcpy(at, v.data(), v.size_bytes());
      at += v.size_bytes();
    }
  }
  return Status::Ok();
}

Status StepMailbox::Read(const uint8_t* box, uint64_t capacity_bytes, uint64_t request_bytes,
                         uint64_t logits_offset, int64_t vocab, std::vector<Sequence>* batch,
                         Layout* layout) {
  const std::string cap = std::to_string(capacity_bytes);
  if (request_bytes < kHeaderBytes || request_bytes > capacity_bytes) {
    return Malformed("request_bytes " + std::to_string(request_bytes) + " outside [" +
                     std::to_string(kHeaderBytes) + ", " + cap + "], the mailbox's capacity");
  }
  int64_t n = 0;
  std::memcpy(&n, box, sizeof(n));
  if (n < 0 || static_cast<uint64_t>(n) > (request_bytes - kHeaderBytes) / sizeof(Record)) {
    return Malformed("n = " + std::to_string(n) + " sequences do not fit request_bytes " +
                     std::to_string(request_bytes));
  }
  if (logits_offset % kLogitsAlignment != 0 || logits_offset < request_bytes ||
      logits_offset > capacity_bytes) {
    return Malformed("logits_offset " + std::to_string(logits_offset) + " is not a multiple of " +
                     std::to_string(kLogitsAlignment) + " in [request_bytes " +
                     std::to_string(request_bytes) + ", capacity " + cap + "]");
  }
  const uint64_t room_floats = (capacity_bytes - logits_offset) / sizeof(float);
  if (vocab <= 0 || (n > 0 && static_cast<uint64_t>(vocab) > room_floats / n)) {
    return Malformed("the logits of " + std::to_string(n) + " sequences x vocab " +
                     std::to_string(vocab) + " at offset " + std::to_string(logits_offset) +
                     " run past the capacity " + cap);
  }
  batch->assign(n, Sequence{});
  uint64_t at = kHeaderBytes + n * sizeof(Record);
  for (int64_t i = 0; i < n; ++i) {
    Record r;
    std::memcpy(&r, box + kHeaderBytes + i * sizeof(Record), sizeof(r));
    const std::string who = "sequence " + std::to_string(i) + ": ";
    if (r.rank < 0 || r.length < 0 || r.num_blocks < 0 || r.num_tokens < 0) {
      return Malformed(who + "negative rank, length, num_blocks or num_tokens");
    }
    const uint64_t room = (request_bytes - at) / sizeof(int32_t);
    if (static_cast<uint64_t>(r.num_blocks) > room ||
        static_cast<uint64_t>(r.num_tokens) > room - r.num_blocks) {
      return Malformed(who + std::to_string(r.num_blocks) + " blocks and " +
                       std::to_string(r.num_tokens) + " tokens at byte " + std::to_string(at) +
                       " run past request_bytes " + std::to_string(request_bytes));
    }
    Sequence& s = (*batch)[i];
    s.rank = r.rank;
    s.length = r.length;
    s.blocks = {reinterpret_cast<const int32_t*>(box + at), static_cast<size_t>(r.num_blocks)};
    at += r.num_blocks * sizeof(int32_t);
    s.tokens = {reinterpret_cast<const int32_t*>(box + at), static_cast<size_t>(r.num_tokens)};
    at += r.num_tokens * sizeof(int32_t);
  }
  if (at != request_bytes) {
    return Malformed("the sequences end at byte " + std::to_string(at) + " but request_bytes is " +
                     std::to_string(request_bytes));
  }
  layout->n = n;
  layout->request_bytes = request_bytes;
  layout->logits_offset = logits_offset;
  layout->logits_bytes = n * static_cast<uint64_t>(vocab) * sizeof(float);
  return Status::Ok();
}

}  // namespace emoe::engine
