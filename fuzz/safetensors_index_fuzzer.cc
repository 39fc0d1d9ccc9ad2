// Fuzzes the sharded checkpoint index parser (hbm/safetensors.h ParseSafetensorsIndex) with
// model.safetensors.index.json text. Whatever it accepts must name shards that stay inside the
// checkpoint's directory: plain, non-empty file names.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "fuzz_check.h"
#include "hbm/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto map = emoe::hbm::ParseSafetensorsIndex("fuzz/model.safetensors.index.json", text);
  if (!map.ok()) return 0;
  for (const auto& [tensor, shard] : *map) {
    FUZZ_CHECK(!shard.empty());
    FUZZ_CHECK(shard.find('/') == std::string::npos);
    FUZZ_CHECK(shard != "." && shard != "..");
  }
  return 0;
}
