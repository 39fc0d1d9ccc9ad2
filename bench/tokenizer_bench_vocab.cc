// bench/tokenizer_bench_vocab.cc: tokenizer_bench's measurements of one vocabulary.
#include <simdjson.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "gflags/gflags.h"
#include "regex.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer_bench.h"

DECLARE_string(node);
DECLARE_string(node_modules);
DECLARE_int32(runs);

namespace emoe::bench {
namespace {

using emoe::tokenizer::Tokenizer;
using emoe::tokenizer::internal::Regex;

std::string ReadFile(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// Every Split pre-tokenizer's Regex pattern under `j` (tokenizer.json's "pre_tokenizer"); with
// `wrap`, each is rewritten as "(?:pattern)": the same regex, which the fast path does not
// recognize, so Oniguruma runs it.
void SplitPatterns(nlohmann::json* j, bool wrap, std::vector<std::string>* patterns) {
  if (j->is_array()) {
    for (nlohmann::json& item : *j) SplitPatterns(&item, wrap, patterns);
    return;
  }
  if (!j->is_object()) return;
  const auto type = j->find("type");
  const auto pattern = j->find("pattern");
  if (type != j->end() && *type == "Split" && pattern != j->end() && pattern->is_object()) {
    const auto regex = pattern->find("Regex");
    if (regex != pattern->end() && regex->is_string()) {
      patterns->push_back(regex->get<std::string>());
      if (wrap) *regex = "(?:" + patterns->back() + ")";
    }
  }
  for (auto it = j->begin(); it != j->end(); ++it) SplitPatterns(&it.value(), wrap, patterns);
}

double EncodeAll(const Tokenizer& t, const std::vector<std::string>& docs, DocIds* ids) {
  return BestSeconds(FLAGS_runs, [&] {
    ids->assign(docs.size(), {});
    for (size_t d = 0; d < docs.size(); ++d) t.EncodeInto(docs[d], false, &(*ids)[d]);
  });
}

// Documents whose ids equal; the first that differs (if any) is described in *first_diff.
size_t SameDocuments(const DocIds& a, const DocIds& b, std::string* first_diff) {
  size_t same = 0;
  for (size_t d = 0; d < a.size() && d < b.size(); ++d) {
    if (a[d] == b[d]) {
      ++same;
      continue;
    }
    if (!first_diff->empty()) continue;
    size_t k = 0;
    while (k < a[d].size() && k < b[d].size() && a[d][k] == b[d][k]) ++k;
    *first_diff = std::string("document ") + std::to_string(d) + " differs at id " +
                  std::to_string(k) + " of " + std::to_string(a[d].size());
  }
  return same;
}

double Mbps(size_t bytes, double s) { return bytes / 1e6 / s; }

// Parse-only times of tokenizer.json (simdjson DOM, nlohmann), printed and reported.
void ParseOnly(const std::string& json_text, nlohmann::json* out) {
  const simdjson::padded_string padded(json_text);
  simdjson::dom::parser parser;
  bool simdjson_ok = true;
  const double simd_s = BestSeconds(FLAGS_runs, [&] {
    simdjson_ok = parser.parse(padded).error() == simdjson::SUCCESS && simdjson_ok;
  });
  bool nlohmann_ok = true;
  const double nl_s = BestSeconds(FLAGS_runs, [&] {
    nlohmann_ok =
        !nlohmann::json::parse(json_text, nullptr, /*allow_exceptions=*/false).is_discarded() &&
        nlohmann_ok;
  });
  std::printf(
      "        parse only: simdjson DOM %.1f ms%s, nlohmann::json %.1f ms%s: simdjson %.1fx\n",
      simd_s * 1e3, simdjson_ok ? "" : " (FAILED)", nl_s * 1e3, nlohmann_ok ? "" : " (FAILED)",
      nl_s / simd_s);
  (*out)["parse_simdjson_s"] = simd_s;
  (*out)["parse_nlohmann_s"] = nl_s;
}

// The ablation: encode with Oniguruma for the Split regexes, and the Split regex alone.
void Ablation(const std::string& json_text, const std::string& config_text,
              const std::vector<std::string>& docs, size_t bytes, double fast_encode_s,
              const DocIds& fast_ids, nlohmann::json* out) {
  nlohmann::json j = nlohmann::json::parse(json_text, nullptr, /*allow_exceptions=*/false);
  std::vector<std::string> patterns;
  if (!j.is_discarded() && j.contains("pre_tokenizer")) {
    SplitPatterns(&j["pre_tokenizer"], /*wrap=*/true, &patterns);
  }
  if (patterns.empty()) {
    std::printf("  ablation: none (no Split regex in pre_tokenizer)\n");
    return;
  }
  auto onig_tokenizer = Tokenizer::FromJson(j.dump(), config_text, "ablation");
  auto fast = Regex::Compile(patterns[0]);
  auto onig = Regex::Compile(patterns[0], /*use_fast_path=*/false);
  if (!onig_tokenizer.ok() || !fast.ok() || !onig.ok()) {
    std::printf("  ablation: FAILED to build the Oniguruma-only tokenizer or regex\n");
    return;
  }
  DocIds onig_ids;
  const double onig_encode_s = EncodeAll(**onig_tokenizer, docs, &onig_ids);
  std::vector<std::pair<uint32_t, uint32_t>> spans;
  auto split = [&](const Regex& r) {
    return BestSeconds(FLAGS_runs, [&] {
      for (const std::string& d : docs) {
        spans.clear();
        r.FindAll(d, &spans);
      }
    });
  };
  const double fast_split_s = split(**fast), onig_split_s = split(**onig);
  std::printf(
      "  ablation: encode with Oniguruma for the Split regex %.2f MB/s%s (fast matcher %.2fx);\n"
      "            the Split regex alone: fast matcher %.1f MB/s%s, Oniguruma %.1f MB/s (%.1fx)\n",
      Mbps(bytes, onig_encode_s), onig_ids == fast_ids ? "" : " (DIFFERENT ids)",
      onig_encode_s / fast_encode_s, Mbps(bytes, fast_split_s),
      (*fast)->fast() ? "" : " (NOT FAST)", Mbps(bytes, onig_split_s), onig_split_s / fast_split_s);
  (*out)["encode_oniguruma_mbps"] = Mbps(bytes, onig_encode_s);
  (*out)["split_fast_mbps"] = Mbps(bytes, fast_split_s);
  (*out)["split_oniguruma_mbps"] = Mbps(bytes, onig_split_s);
}

}  // namespace

bool BenchVocabulary(const std::string& name, const std::string& dir,
                     const std::vector<std::string>& docs, const std::string& corpus_path,
                     nlohmann::json* report) {
  size_t bytes = 0;
  for (const std::string& d : docs) bytes += d.size();
  const std::filesystem::path json_path = std::filesystem::path(dir) / "tokenizer.json";
  const std::string json_text = ReadFile(json_path);
  const std::string config_text = ReadFile(std::filesystem::path(dir) / "tokenizer_config.json");
  std::unique_ptr<Tokenizer> tokenizer;
  vmm::Status status = vmm::Status::Ok();
  const double load_s = BestSeconds(FLAGS_runs, [&] {
    auto loaded = Tokenizer::Load(dir);
    status = loaded.status();
    if (loaded.ok()) tokenizer = std::move(*loaded);
  });
  if (tokenizer == nullptr) {
    std::printf("%s: cannot load %s: %s (scripts/fetch_tokenizers.sh fetches it)\n", name.c_str(),
                dir.c_str(), status.ToString().c_str());
    return false;
  }
  DocIds ids;
  const double encode_s = EncodeAll(*tokenizer, docs, &ids);
  size_t tokens = 0, decoded = 0;
  for (const auto& d : ids) tokens += d.size();
  const double decode_s = BestSeconds(FLAGS_runs, [&] {
    decoded = 0;
    for (const auto& d : ids) decoded += tokenizer->Decode(d).size();
  });
  const ReferenceNumbers ref =
      RunReference(FLAGS_node, FLAGS_node_modules, EMOE_SOURCE_DIR "/bench/tokenizer_ref_bench.mjs",
                   dir, corpus_path, FLAGS_runs);
  nlohmann::json& out = (*report)["vocabularies"][name];
  out = {{"description", tokenizer->description()},
         {"load_s", load_s},
         {"encode_mbps", Mbps(bytes, encode_s)},
         {"decode_mbps", Mbps(decoded, decode_s)},
         {"tokens", tokens}};
  std::printf("%s: %s\n", name.c_str(), tokenizer->description().c_str());
  std::printf("  load tokenizer.json (%.2f MB): ours %.1f ms", json_text.size() / 1e6,
              load_s * 1e3);
  if (ref.available) {
    std::printf(", reference %.1f ms: ours %.2fx faster\n", ref.load_s * 1e3, ref.load_s / load_s);
  } else {
    std::printf("\n");
  }
  ParseOnly(json_text, &out);
  std::printf("  encode: ours %.2f MB/s (%zu tokens)", Mbps(bytes, encode_s), tokens);
  if (ref.available) {
    std::printf(", reference %.2f MB/s: ours/reference %.2f\n", Mbps(bytes, ref.encode_s),
                ref.encode_s / encode_s);
  } else {
    std::printf("\n");
  }
  std::printf("  decode: ours %.2f MB/s", Mbps(decoded, decode_s));
  if (ref.available) {
    std::printf(", reference %.2f MB/s: ours/reference %.2f\n",
                Mbps(ref.decoded_bytes, ref.decode_s),
                Mbps(decoded, decode_s) / Mbps(ref.decoded_bytes, ref.decode_s));
    std::string first_diff;
    const size_t same = SameDocuments(ids, ref.ids, &first_diff);
    std::printf("  ids: ours == reference (%s) on %zu of %zu documents%s%s\n",
                ref.implementation.c_str(), same, docs.size(), first_diff.empty() ? "" : "; ",
                first_diff.c_str());
    out["reference"] = {{"implementation", ref.implementation},
                        {"load_s", ref.load_s},
                        {"encode_mbps", Mbps(bytes, ref.encode_s)},
                        {"decode_mbps", Mbps(ref.decoded_bytes, ref.decode_s)},
                        {"same_documents", same}};
  } else {
    std::printf("\n  reference: not run (%s); our numbers only\n", ref.why.c_str());
  }
  Ablation(json_text, config_text, docs, bytes, encode_s, ids, &out);
  return true;
}

}  // namespace emoe::bench
