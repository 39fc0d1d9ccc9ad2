// bench/tokenizer_bench.h: the pieces of tokenizer_bench shared by its files: timing, and the
// reference side (bench/tokenizer_ref_bench.mjs under node) run as a subprocess.
#ifndef BENCH_TOKENIZER_BENCH_H_
#define BENCH_TOKENIZER_BENCH_H_

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

namespace emoe::bench {

// Seconds of the fastest of `runs` calls of fn().
template <typename F>
double BestSeconds(int runs, F fn) {
  double best = std::numeric_limits<double>::infinity();
  for (int r = 0; r < runs; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    fn();
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (s < best) best = s;
  }
  return best;
}

using DocIds = std::vector<std::vector<int32_t>>;  // the ids of each corpus document

// The reference's numbers for one vocabulary; `available` false with `why` when node or
// @huggingface/tokenizers is missing or the script failed.
struct ReferenceNumbers {
  bool available = false;
  std::string why;
  std::string implementation;  // "@huggingface/tokenizers 0.2.0 (node v20.20.2)"
  double load_s = 0, encode_s = 0, decode_s = 0;
  size_t tokens = 0, decoded_bytes = 0;
  DocIds ids;
};

// Runs `script` (tokenizer_ref_bench.mjs) with `node` on the vocabulary in `vocab_dir` and the
// corpus file, best of `runs`; its ids come back through a scratch file beside the corpus.
ReferenceNumbers RunReference(const std::string& node, const std::string& node_modules,
                              const std::string& script, const std::string& vocab_dir,
                              const std::string& corpus_path, int runs);

}  // namespace emoe::bench

#endif  // BENCH_TOKENIZER_BENCH_H_
