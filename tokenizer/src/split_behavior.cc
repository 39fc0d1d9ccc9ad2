// tokenizer/src/split_behavior.cc: the delimiter behaviors, as the Rust crate's
// NormalizedString::split folds them (tokenizers/src/tokenizer/normalizer.rs).
#include "split_behavior.h"

#include <algorithm>

namespace emoe::tokenizer::internal {
namespace {

struct Part {
  uint32_t start, end;
  bool delimiter;
};

}  // namespace

bool ParseSplitBehavior(std::string_view name, SplitBehavior* behavior) {
  if (name == "Removed")
    *behavior = SplitBehavior::kRemoved;
  else if (name == "Isolated")
    *behavior = SplitBehavior::kIsolated;
  else if (name == "MergedWithPrevious")
    *behavior = SplitBehavior::kMergedWithPrevious;
  else if (name == "MergedWithNext")
    *behavior = SplitBehavior::kMergedWithNext;
  else if (name == "Contiguous")
    *behavior = SplitBehavior::kContiguous;
  else
    return false;
  return true;
}

void SplitAtMatches(uint32_t offset, uint32_t length,
                    const std::vector<std::pair<uint32_t, uint32_t>>& matches,
                    SplitBehavior behavior, bool invert,
                    std::vector<std::pair<uint32_t, uint32_t>>* out) {
  auto emit = [&](uint32_t start, uint32_t end) {
    if (end > start) out->emplace_back(offset + start, end - start);
  };
  if (behavior == SplitBehavior::kIsolated) {  // the common case, without the Part list
    uint32_t prev = 0;
    for (const auto& m : matches) {
      emit(prev, m.first);
      emit(m.first, m.first + m.second);
      prev = m.first + m.second;
    }
    emit(prev, length);
    return;
  }
  std::vector<Part> parts;
  parts.reserve(matches.size() * 2 + 1);
  uint32_t prev = 0;
  for (const auto& m : matches) {
    if (m.first > prev) parts.push_back({prev, m.first, invert});
    parts.push_back({m.first, m.first + m.second, !invert});
    prev = m.first + m.second;
  }
  if (prev < length) parts.push_back({prev, length, invert});

  std::vector<Part> merged;
  merged.reserve(parts.size());
  bool previous_delimiter = false;
  switch (behavior) {
    case SplitBehavior::kRemoved:
      for (const Part& p : parts) {
        if (!p.delimiter) merged.push_back(p);
      }
      break;
    case SplitBehavior::kContiguous:
      for (const Part& p : parts) {
        if (p.delimiter == previous_delimiter && !merged.empty()) {
          merged.back().end = p.end;
        } else {
          merged.push_back(p);
        }
        previous_delimiter = p.delimiter;
      }
      break;
    case SplitBehavior::kMergedWithPrevious:
      for (const Part& p : parts) {
        if (p.delimiter && !previous_delimiter && !merged.empty()) {
          merged.back().end = p.end;
        } else {
          merged.push_back(p);
        }
        previous_delimiter = p.delimiter;
      }
      break;
    case SplitBehavior::kMergedWithNext:
      for (auto it = parts.rbegin(); it != parts.rend(); ++it) {
        if (it->delimiter && !previous_delimiter && !merged.empty()) {
          merged.back().start = it->start;
        } else {
          merged.push_back(*it);
        }
        previous_delimiter = it->delimiter;
      }
      std::reverse(merged.begin(), merged.end());
      break;
    case SplitBehavior::kIsolated:
      break;
  }
  for (const Part& p : merged) emit(p.start, p.end);
}

}  // namespace emoe::tokenizer::internal
