// bench/tokenizer_corpus.h: the benchmark corpus of tokenizer_bench, generated deterministically
// (the same bytes on every machine and run: a fixed-seed SplitMix64, no std distributions).
//
// Documents of 1-6 KiB, each of one genre, drawn with these shares of the bytes: English prose
// with numbers (40%), source code with tabs, runs of spaces and blank lines (25%), Chinese,
// Japanese and Korean (15%), Arabic with Arabic-Indic digits (10%), and chat-like text dense in
// emoji (skin tones, ZWJ families, flags) (10%). The corpus file holds the documents separated
// by NUL bytes (no document contains one), so the reference reads exactly the same texts.
#ifndef BENCH_TOKENIZER_CORPUS_H_
#define BENCH_TOKENIZER_CORPUS_H_

#include <cstddef>
#include <string>
#include <vector>

namespace emoe::bench {

// About `target_bytes` of documents (the last one completes past it).
std::vector<std::string> MakeTokenizerCorpus(size_t target_bytes);

}  // namespace emoe::bench

#endif  // BENCH_TOKENIZER_CORPUS_H_
