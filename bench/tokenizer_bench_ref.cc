// bench/tokenizer_bench_ref.cc: RunReference (tokenizer_bench.h): node as a subprocess.
#include <sys/wait.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <string>

#include "tokenizer_bench.h"

namespace emoe::bench {
namespace {

std::string ShellQuote(const std::string& s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out += c;
    }
  }
  return out + "'";
}

// Runs `command` under /bin/sh; its stdout, and whether it exited 0.
bool Capture(const std::string& command, std::string* out) {
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) return false;
  char buffer[4096];
  size_t n;
  while ((n = fread(buffer, 1, sizeof(buffer), pipe)) > 0) out->append(buffer, n);
  const int status = pclose(pipe);
  return status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

// The ids file: per document its count, then its ids (int32, native = little-endian here).
bool ReadIds(const std::string& path, DocIds* ids) {
  std::ifstream in(path, std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (!in.good() && !in.eof()) return false;
  const size_t words = bytes.size() / 4;
  const auto* w = reinterpret_cast<const int32_t*>(bytes.data());
  size_t k = 0;
  while (k < words) {
    const auto count = static_cast<size_t>(w[k++]);
    if (count > words - k) return false;
    ids->emplace_back(w + k, w + k + count);
    k += count;
  }
  return true;
}

}  // namespace

ReferenceNumbers RunReference(const std::string& node, const std::string& node_modules,
                              const std::string& script, const std::string& vocab_dir,
                              const std::string& corpus_path, int runs) {
  ReferenceNumbers ref;
  std::string version;
  if (!Capture(ShellQuote(node) + " --version 2>/dev/null", &version)) {
    ref.why = std::string("node ('") + node + "') did not run; set --node";
    return ref;
  }
  const std::filesystem::path package =
      std::filesystem::path(node_modules) / "@huggingface" / "tokenizers" / "package.json";
  if (!std::filesystem::exists(package)) {
    ref.why = std::string("no @huggingface/tokenizers under --node_modules=") + node_modules;
    return ref;
  }
  const std::string ids_path = corpus_path + ".reference_ids";
  const std::string command =
      ShellQuote(node) + " " + ShellQuote(script) + " --node_modules=" + ShellQuote(node_modules) +
      " --tokenizer=" + ShellQuote(vocab_dir) + " --corpus=" + ShellQuote(corpus_path) +
      " --runs=" + std::to_string(runs) + " --ids_out=" + ShellQuote(ids_path);
  std::string out;
  if (!Capture(command, &out)) {
    ref.why = std::string("the reference script failed: ") + command;
    return ref;
  }
  const nlohmann::json j = nlohmann::json::parse(out, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object() || !j.contains("encode_s")) {
    ref.why = std::string("the reference script printed no result: ") + out;
    return ref;
  }
  ref.implementation = j.value("implementation", std::string("?")) + " (node " +
                       j.value("node", std::string("?")) + ")";
  ref.load_s = j.value("load_s", 0.0);
  ref.encode_s = j.value("encode_s", 0.0);
  ref.decode_s = j.value("decode_s", 0.0);
  ref.tokens = j.value("tokens", size_t{0});
  ref.decoded_bytes = j.value("decoded_bytes", size_t{0});
  if (!ReadIds(ids_path, &ref.ids)) {
    ref.why = std::string("unreadable ids file ") + ids_path;
    return ref;
  }
  std::filesystem::remove(ids_path);
  ref.available = true;
  return ref;
}

}  // namespace emoe::bench
