// hbm/safetensors.h: reading (and, for tests and generators, writing) safetensors checkpoints.
//
// Format: 8-byte little-endian header length N, N bytes of JSON
//   {"name": {"dtype": "BF16", "shape": [a, b], "data_offsets": [begin, end]}, ...,
//    "__metadata__": {"k": "v"}}
// then the data section; offsets are relative to its start. Sharded checkpoints have an index
// (model.safetensors.index.json: {"weight_map": {"name": "model-00001-of-00002.safetensors"}}).
//
// Every file is opened through vmm::OpenRegularFile: a FIFO, a directory or a device given as a
// shard or an index is refused by type (kInvalidArgument naming the path) before it is read.
// Every field is bounds-checked; errors are kDataLoss (or kNotFound / kInvalidArgument) naming the
// file and the tensor: truncated file, header larger than kMaxHeaderBytes or than the file,
// malformed JSON, unknown dtype, negative or overflowing shapes, offsets out of range, reversed
// or overlapping, size != product(shape) * dtype size. Never a crash.
//
// Thread safety: the functions are reentrant; results are plain values.
#ifndef HBM_SAFETENSORS_H_
#define HBM_SAFETENSORS_H_

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "vmm/status.h"

namespace emoe::hbm {

using vmm::Status;
using vmm::StatusOr;

enum class DType : int { kF32 = 0, kBF16, kF16 };
const char* DTypeName(DType d);  // "F32", "BF16", "F16"
uint64_t DTypeSize(DType d);
StatusOr<DType> ParseDType(const std::string& s);

inline constexpr uint64_t kMaxHeaderBytes = 100ull << 20;
// model.safetensors.index.json: real ones are at most a few MiB (one line per tensor).
inline constexpr uint64_t kMaxIndexBytes = 64ull << 20;

struct TensorInfo {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  std::string file;          // path of the shard holding it
  uint64_t file_offset = 0;  // absolute byte offset of the data in `file`
  uint64_t size_bytes = 0;
  uint64_t num_elements() const;
};

struct SafetensorsFile {
  std::string path;
  uint64_t file_size = 0;
  uint64_t data_start = 0;          // 8 + header length
  std::vector<TensorInfo> tensors;  // in file order (ascending offset)
  std::map<std::string, std::string> metadata;
};

// Parses and validates one file's header.
StatusOr<SafetensorsFile> ReadSafetensorsHeader(const std::string& path);

// The pure parsers behind ReadSafetensorsHeader and OpenCheckpoint (fuzz/ drives them with
// arbitrary bytes; `path` only names the file in errors):
// the header length in the first 8 of `bytes`, checked against kMaxHeaderBytes and `file_size`;
StatusOr<uint64_t> SafetensorsHeaderLength(const std::string& path, std::string_view bytes,
                                           uint64_t file_size);
// the header of a file of `file_size` bytes whose first bytes (the length and at least the whole
// header; more is ignored) are `bytes`;
StatusOr<SafetensorsFile> ParseSafetensorsHeader(const std::string& path, std::string_view bytes,
                                                 uint64_t file_size);
// the weight map of an index (model.safetensors.index.json text): tensor name -> shard file name,
// a plain name inside the checkpoint's directory.
StatusOr<std::map<std::string, std::string>> ParseSafetensorsIndex(const std::string& path,
                                                                   std::string_view text);

// A checkpoint: one .safetensors file, a directory with model.safetensors.index.json, or a
// directory with exactly the *.safetensors files to use. Tensor names must be unique across
// shards, and every tensor of the index must exist in its shard.
struct Checkpoint {
  std::string path;  // as opened (a file or a directory)
  std::vector<SafetensorsFile> shards;
  std::vector<TensorInfo> tensors;  // all shards, sorted by name
  uint64_t total_bytes = 0;
  const TensorInfo* Find(const std::string& name) const;
};
StatusOr<Checkpoint> OpenCheckpoint(const std::string& path);

// For tests and generators: writes a safetensors file (data offsets aligned to `align` bytes).
struct TensorToWrite {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  std::string bytes;  // size must equal product(shape) * dtype size
};
Status WriteSafetensors(const std::string& path, const std::vector<TensorToWrite>& tensors,
                        const std::map<std::string, std::string>& metadata = {},
                        uint64_t align = 64);

}  // namespace emoe::hbm

#endif  // HBM_SAFETENSORS_H_
