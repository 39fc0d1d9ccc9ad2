// tokenizer/src/split_behavior.h: how a split's delimiters are kept (the Rust tokenizers crate's
// SplitDelimiterBehavior), shared by Split and Metaspace (internal).
//
//   Removed             delimiters are dropped: "a-b" on "-" -> "a", "b"
//   Isolated            delimiters are pieces of their own: "a", "-", "b"
//   MergedWithPrevious  a delimiter joins the piece before it: "a-", "b"
//   MergedWithNext      a delimiter joins the piece after it: "a", "-b"
//   Contiguous          adjacent delimiters form one piece: "a--b" -> "a", "--", "b"
// Thread safety: pure functions.
#ifndef TOKENIZER_SRC_SPLIT_BEHAVIOR_H_
#define TOKENIZER_SRC_SPLIT_BEHAVIOR_H_

#include <cstdint>
#include <string_view>
#include <utility>
#include <vector>

namespace emoe::tokenizer::internal {

enum class SplitBehavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous };

// "Removed" -> kRemoved, ...; false for other names.
bool ParseSplitBehavior(std::string_view name, SplitBehavior* behavior);

// Splits the piece [offset, offset + length) at `matches` (non-empty, in order, relative to the
// piece) and appends the resulting non-empty pieces, as absolute {offset, length}, to *out.
// invert: the matches are the text to keep and the gaps between them the delimiters.
void SplitAtMatches(uint32_t offset, uint32_t length,
                    const std::vector<std::pair<uint32_t, uint32_t>>& matches,
                    SplitBehavior behavior, bool invert,
                    std::vector<std::pair<uint32_t, uint32_t>>* out);

}  // namespace emoe::tokenizer::internal

#endif  // TOKENIZER_SRC_SPLIT_BEHAVIOR_H_
