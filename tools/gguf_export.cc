// gguf_export: one of our checkpoints (config.json + safetensors, either family) as a GGUF file
// llama.cpp loads (tools/gguf_model.h says what is written), in f32 or bf16.
//
//   gguf_export --model=DIR --out=FILE.gguf [--dtype=f32|bf16]
//
// Exit codes (tools/flag_checks.h): 0 written; 1 reading or writing failed (nothing is left at
// --out); 2 a bad flag (named).
#include <gflags/gflags.h>

#include <chrono>
#include <cstdio>
#include <string>

#include "tools/flag_checks.h"
#include "tools/gguf_model.h"

DEFINE_string(model, "", "model directory (config.json + safetensors)");
DEFINE_string(out, "", "the GGUF file to write (replaced)");
DEFINE_string(dtype, "bf16", "tensor type of the GGUF: f32 or bf16");

namespace {

vmm::Status CheckFlags() {
  namespace t = emoe::tools;
  return t::FirstError({
      t::NonEmpty("model", FLAGS_model),
      t::Directory("model", FLAGS_model),
      t::NonEmpty("out", FLAGS_out),
      t::CreatableFile("out", FLAGS_out),
      t::OneOf("dtype", FLAGS_dtype, {"f32", "bf16"}),
  });
}

}  // namespace

int main(int argc, char** argv) {
  namespace gguf = emoe::tools::gguf;
  gflags::SetUsageMessage("writes a checkpoint as GGUF (llama.cpp's qwen3moe or llama)" +
                          emoe::tools::ExitCodesHelp(/*requests=*/false));
  if (auto rc = emoe::tools::ParseFlags("gguf_export", &argc, &argv)) return *rc;
  if (vmm::Status s = CheckFlags(); !s.ok()) {
    std::fprintf(stderr, "gguf_export: %s\n", s.message().c_str());
    return emoe::tools::kExitUsage;
  }
  const auto start = std::chrono::steady_clock::now();
  const gguf::TensorType type =
      FLAGS_dtype == "f32" ? gguf::TensorType::kF32 : gguf::TensorType::kBF16;
  auto stats = emoe::tools::ExportGguf(FLAGS_model, FLAGS_out, type);
  if (!stats.ok()) {
    std::fprintf(stderr, "gguf_export: %s\n", stats.status().ToString().c_str());
    return emoe::tools::kExitError;
  }
  for (const std::string& w : stats->warnings)
    std::fprintf(stderr, "gguf_export: warning: %s\n", w.c_str());
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("wrote %s: arch %s, %llu tensors, %s, %.1f MiB in %.1f s\n", FLAGS_out.c_str(),
              stats->architecture.c_str(), static_cast<unsigned long long>(stats->tensors),
              gguf::TensorTypeName(type), stats->file_bytes / 1048576.0, s);
  return emoe::tools::kExitOk;
}
