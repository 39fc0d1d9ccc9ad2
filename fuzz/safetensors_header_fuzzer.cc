// Fuzzes the safetensors header parser (hbm/safetensors.h ParseSafetensorsHeader) with a file's
// first bytes: the 8-byte length, the JSON header and data. Whatever it accepts must describe
// tensors the loader can read without leaving the file: each inside the data section, its size
// that of its shape and dtype, none overlapping.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "fuzz_check.h"
#include "hbm/safetensors.h"

namespace {

using emoe::hbm::DTypeSize;
using emoe::hbm::SafetensorsFile;
using emoe::hbm::TensorInfo;

void CheckContract(const SafetensorsFile& f, uint64_t file_size) {
  FUZZ_CHECK(f.file_size == file_size);
  FUZZ_CHECK(f.data_start >= 8 && f.data_start <= file_size);
  uint64_t end_of_previous = f.data_start;
  for (const TensorInfo& t : f.tensors) {
    FUZZ_CHECK(t.file_offset >= f.data_start);
    FUZZ_CHECK(t.size_bytes <= file_size - t.file_offset);
    FUZZ_CHECK(t.size_bytes == t.num_elements() * DTypeSize(t.dtype));
    if (t.size_bytes > 0) {
      FUZZ_CHECK(t.file_offset >= end_of_previous);
      end_of_previous = t.file_offset + t.size_bytes;
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  // The input as the whole file, and as the start of a file with a large data section the
  // parser never reads (offsets far beyond the input must still be checked against the size).
  for (const uint64_t file_size : {uint64_t{size}, uint64_t{size} + (uint64_t{1} << 40)}) {
    auto f = emoe::hbm::ParseSafetensorsHeader("fuzz.safetensors", bytes, file_size);
    if (f.ok()) CheckContract(*f, file_size);
  }
  return 0;
}
