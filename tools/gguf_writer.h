// tools/gguf_writer.h: the GGUF container (version 3), written from its specification
// (ggml's docs/gguf.md): all values little-endian,
//   magic "GGUF", u32 version, u64 tensor count, u64 metadata count,
//   metadata: { string key, u32 value type, value } ...       (string = u64 length + bytes)
//   tensor infos: { string name, u32 n_dims, u64 dims[n_dims] (innermost first), u32 ggml type,
//                   u64 offset relative to the data section, a multiple of the alignment } ...
//   padding to `general.alignment` (32 by default), then the data section: each tensor's bytes
//   at its offset, padded to the alignment.
// The caller lists the tensors (name, dims, type, bytes) first, so that the header is written
// before any data; the data is then streamed tensor by tensor (GgufFile::WriteTensor).
//
// Thread safety: plain values; a GgufFile is used by one thread.
#ifndef TOOLS_GGUF_WRITER_H_
#define TOOLS_GGUF_WRITER_H_

#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

#include "vmm/status.h"

namespace emoe::tools::gguf {

inline constexpr uint32_t kMagic = 0x46554747;  // "GGUF" read as a little-endian u32
inline constexpr uint32_t kVersion = 3;
inline constexpr uint32_t kDefaultAlignment = 32;

// Metadata value types (gguf_metadata_value_type).
enum class ValueType : uint32_t {
  kU8 = 0,
  kI8 = 1,
  kU16 = 2,
  kI16 = 3,
  kU32 = 4,
  kI32 = 5,
  kF32 = 6,
  kBool = 7,
  kString = 8,
  kArray = 9,
  kU64 = 10,
  kI64 = 11,
  kF64 = 12,
};

// The ggml tensor types this writer emits (ggml_type).
enum class TensorType : uint32_t { kF32 = 0, kF16 = 1, kBF16 = 30 };
uint64_t TensorTypeSize(TensorType t);  // bytes per element
const char* TensorTypeName(TensorType t);

// The key-value section, serialized as keys are added (in order; keys must be unique).
class Metadata {
 public:
  void U32(const std::string& key, uint32_t v);
  void I32(const std::string& key, int32_t v);
  void F32(const std::string& key, float v);
  void Bool(const std::string& key, bool v);
  void String(const std::string& key, const std::string& v);
  void StringArray(const std::string& key, const std::vector<std::string>& v);
  void F32Array(const std::string& key, const std::vector<float>& v);
  void I32Array(const std::string& key, const std::vector<int32_t>& v);

  uint64_t count() const { return count_; }
  const std::string& bytes() const { return bytes_; }
  // Whether `key` was added (keys are few: a linear scan).
  bool Has(const std::string& key) const;

 private:
  void Key(const std::string& key, ValueType type);
  std::string bytes_;
  std::vector<std::string> keys_;
  uint64_t count_ = 0;
};

struct TensorEntry {
  std::string name;
  std::vector<uint64_t> dims;  // ggml order: dims[0] is the innermost (contiguous) one
  TensorType type = TensorType::kF32;
  uint64_t elements() const;
  uint64_t bytes() const { return elements() * TensorTypeSize(type); }
};

// Each tensor's offset in the data section: in order, each at the next multiple of alignment.
std::vector<uint64_t> DataOffsets(const std::vector<TensorEntry>& tensors, uint32_t alignment);
// Everything before the data section: header, metadata, tensor infos, padding to alignment.
// kInvalidArgument for a tensor without dims, more than 4 dims (ggml's limit), a zero dim, or a
// name longer than 64 bytes (the specification's limit).
vmm::StatusOr<std::string> HeaderBytes(const Metadata& metadata,
                                       const std::vector<TensorEntry>& tensors, uint32_t alignment);

// A GGUF file being written: Create writes the header; WriteTensor(i, bytes...) appends tensor
// i's bytes, in order, in as many calls as wanted; Finish checks that every tensor got exactly
// its size, pads, and closes. The file is removed when it is not finished.
class GgufFile {
 public:
  static vmm::StatusOr<GgufFile> Create(const std::string& path, const Metadata& metadata,
                                        std::vector<TensorEntry> tensors,
                                        uint32_t alignment = kDefaultAlignment);
  GgufFile(GgufFile&& o) noexcept;
  GgufFile& operator=(GgufFile&&) = delete;
  GgufFile(const GgufFile&) = delete;
  ~GgufFile();

  // Appends bytes to tensor `index`; tensors are written in order (index must be the current
  // tensor or the next one), and a tensor may not get more than its size.
  vmm::Status Append(size_t index, std::string_view bytes);
  vmm::Status Finish();
  uint64_t file_bytes() const { return written_; }

 private:
  GgufFile() = default;
  vmm::Status Write(std::string_view bytes);
  vmm::Status Pad();
  std::string path_;
  std::FILE* f_ = nullptr;
  std::vector<TensorEntry> tensors_;
  uint32_t alignment_ = kDefaultAlignment;
  size_t current_ = 0;       // the tensor being written
  uint64_t in_current_ = 0;  // its bytes so far
  uint64_t written_ = 0;     // bytes in the file
  bool finished_ = false;
};

}  // namespace emoe::tools::gguf

#endif  // TOOLS_GGUF_WRITER_H_
