// tokenizer/src/fast_split.h: hand-written matchers for the Split patterns tokenizers ship most,
// giving exactly Oniguruma's matches (tests/tokenizer/fast_split_test.cc compares them on every
// code point and on generated text; fuzz/fast_split_fuzzer.cc on whatever libFuzzer finds).
//
// Each pattern is an alternation tried left to right at each position, and every character
// starts a match of one of its alternatives, so the matches tile the text: the matcher walks it
// once, choosing at each position the alternative Oniguruma's backtracking would take (the
// derivation of each rule is written beside it in fast_split.cc). Classes come from
// unicode_classes.h (Oniguruma's own tables); ASCII is looked up without decoding.
//
// Thread safety: the matchers are const; FindAll may run on several threads at once.
#ifndef TOKENIZER_SRC_FAST_SPLIT_H_
#define TOKENIZER_SRC_FAST_SPLIT_H_

#include <memory>
#include <string_view>

#include "regex.h"

namespace emoe::tokenizer::internal {

// Qwen2 / Qwen3's Split pattern (tokenizer.json "pre_tokenizer.pretokenizers[0].pattern.Regex").
inline constexpr std::string_view kQwen2Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
// OpenAI's cl100k_base pattern (Llama 3, DeepSeek and others): digits in runs of up to three.
inline constexpr std::string_view kCl100kPattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
// GPT-2's pattern, which the ByteLevel pre-tokenizer splits with when use_regex is true.
inline constexpr std::string_view kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

// A matcher for `pattern` when it is exactly one of the patterns above; nullptr for any other
// pattern (or when Oniguruma's class tables are unavailable), and the caller compiles it with
// Oniguruma.
std::unique_ptr<Regex> MakeFastSplit(std::string_view pattern);

}  // namespace emoe::tokenizer::internal

#endif  // TOKENIZER_SRC_FAST_SPLIT_H_
