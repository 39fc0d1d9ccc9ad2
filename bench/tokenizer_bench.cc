// tokenizer_bench: the tokenizer module (tokenizer/) against the reference implementation
// (@huggingface/tokenizers under node) on the real vocabularies, one thread, in the same run on
// the same corpus file:
//   * load: Tokenizer::Load of tokenizer.json (+ tokenizer_config.json), against the
//     reference's JSON.parse + new Tokenizer; and, for the choice of JSON parser, parse-only
//     times of the same file with simdjson's DOM and with nlohmann::json;
//   * encode and decode throughput (MB/s = 10^6 bytes of corpus text per second; decode counts
//     the bytes of text it produces), and the ratio ours/reference (above 1: we are faster);
//   * ablation: encode with every Split regex run by Oniguruma instead of the fast matcher (the
//     pattern wrapped in "(?:...)", the same regex that MakeFastSplit does not recognize), and
//     the Split regex alone over the corpus, fast matcher against Oniguruma;
//   * a check: how many documents get exactly the reference's ids.
//
//   tokenizer_bench [--vocabs=qwen3,mistral] [--data_dir=<source>/data/tokenizers]
//                   [--node_modules=<source>/tests/tokenizer/node/node_modules] [--node=node]
//                   [--corpus_mb=4] [--corpus=<tmp>/tokenizer_bench_corpus.txt] [--runs=3]
//                   [--json=path]
//
// The corpus (tokenizer_corpus.h) is written by this bench, deterministically, to --corpus;
// times are the best of --runs. Without node or the reference the bench says so and prints our
// numbers only.
#include <gflags/gflags.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "tokenizer/tokenizer.h"
#include "tokenizer_bench.h"
#include "tokenizer_corpus.h"

DEFINE_string(vocabs, "qwen3,mistral", "vocabularies: sub-directories of --data_dir");
DEFINE_string(data_dir, EMOE_SOURCE_DIR "/data/tokenizers",
              "where the vocabularies are (scripts/fetch_tokenizers.sh)");
DEFINE_string(node_modules, EMOE_SOURCE_DIR "/tests/tokenizer/node/node_modules",
              "node_modules holding @huggingface/tokenizers");
DEFINE_string(node, "node", "the node binary");
DEFINE_double(corpus_mb, 4, "corpus size, MiB");
DEFINE_string(corpus, "", "where to write the corpus (default <tmp>/tokenizer_bench_corpus.txt)");
DEFINE_int32(runs, 3, "runs of each measurement; the fastest is reported");
DEFINE_string(json, "", "also write the results as JSON to this path");

namespace emoe::bench {

// Measures one vocabulary (tokenizer_bench_vocab.cc); adds its results to `report`. False when
// the vocabulary could not be loaded.
bool BenchVocabulary(const std::string& name, const std::string& dir,
                     const std::vector<std::string>& docs, const std::string& corpus_path,
                     nlohmann::json* report);

}  // namespace emoe::bench

namespace {

bool WriteCorpus(const std::string& path, const std::vector<std::string>& docs) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  for (size_t d = 0; d < docs.size(); ++d) {
    if (d > 0) out.put('\0');
    out << docs[d];
  }
  return out.good();
}

// "load average 2.51 on 2 CPUs": other work on the host slows wall-clock numbers down.
std::string HostLoad() {
  std::ifstream in("/proc/loadavg");
  double load = -1;
  in >> load;
  const unsigned cpus = std::thread::hardware_concurrency();
  char line[96];
  std::snprintf(line, sizeof(line), "load average %.2f on %u CPUs", load, cpus);
  return line;
}

std::vector<std::string> SplitComma(const std::string& s) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= s.size()) {
    const size_t comma = s.find(',', start);
    const size_t end = comma == std::string::npos ? s.size() : comma;
    if (end > start) out.push_back(s.substr(start, end - start));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  gflags::SetUsageMessage("tokenizer encode/decode/load against @huggingface/tokenizers");
  gflags::ParseCommandLineFlags(&argc, &argv, true);
  if (FLAGS_runs < 1 || FLAGS_corpus_mb <= 0) {
    std::fprintf(stderr, "tokenizer_bench: --runs must be >= 1 and --corpus_mb > 0\n");
    return 2;
  }
  const std::string corpus_path =
      FLAGS_corpus.empty()
          ? (std::filesystem::temp_directory_path() / "tokenizer_bench_corpus.txt").string()
          : FLAGS_corpus;
  const std::vector<std::string> docs =
      emoe::bench::MakeTokenizerCorpus(static_cast<size_t>(FLAGS_corpus_mb * (1 << 20)));
  size_t bytes = 0;
  for (const std::string& d : docs) bytes += d.size();
  if (!WriteCorpus(corpus_path, docs)) {
    std::fprintf(stderr, "tokenizer_bench: cannot write the corpus to %s\n", corpus_path.c_str());
    return 1;
  }
  std::printf(
      "tokenizer_bench: corpus %s: %.2f MB in %zu documents (English prose 40%%, code 25%%, "
      "CJK 15%%, Arabic 10%%, chat with emoji 10%%); one thread, best of %d; host %s\n",
      corpus_path.c_str(), bytes / 1e6, docs.size(), FLAGS_runs, HostLoad().c_str());
  nlohmann::json report = {{"corpus", corpus_path},
                           {"corpus_bytes", bytes},
                           {"documents", docs.size()},
                           {"runs", FLAGS_runs},
                           {"vocabularies", nlohmann::json::object()}};
  int failures = 0;
  for (const std::string& name : SplitComma(FLAGS_vocabs)) {
    const std::string dir = (std::filesystem::path(FLAGS_data_dir) / name).string();
    if (!emoe::bench::BenchVocabulary(name, dir, docs, corpus_path, &report)) ++failures;
  }
  if (!FLAGS_json.empty()) {
    std::ofstream(FLAGS_json, std::ios::trunc) << report.dump(2) << "\n";
  }
  return failures == 0 ? 0 : 1;
}
