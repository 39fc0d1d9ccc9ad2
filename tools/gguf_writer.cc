#include "tools/gguf_writer.h"

#include <cstring>
#include <utility>

namespace emoe::tools::gguf {

using vmm::Status;
using vmm::StatusOr;

namespace {

template <typename T>
void Put(std::string* out, T v) {
  char b[sizeof(T)];
  std::memcpy(b, &v, sizeof(T));  // x86-64 and aarch64 Linux: little-endian, as GGUF is
  out->append(b, sizeof(T));
}

void PutString(std::string* out, std::string_view s) {
  Put<uint64_t>(out, s.size());
  out->append(s.data(), s.size());
}

uint64_t AlignUp(uint64_t n, uint64_t a) { return (n + a - 1) / a * a; }

}  // namespace

uint64_t TensorTypeSize(TensorType t) { return t == TensorType::kF32 ? 4 : 2; }

const char* TensorTypeName(TensorType t) {
  switch (t) {
    case TensorType::kF32:
      return "f32";
    case TensorType::kF16:
      return "f16";
    case TensorType::kBF16:
      return "bf16";
  }
  return "?";
}

void Metadata::Key(const std::string& key, ValueType type) {
  keys_.push_back(key);
  ++count_;
  PutString(&bytes_, key);
  Put<uint32_t>(&bytes_, static_cast<uint32_t>(type));
}

bool Metadata::Has(const std::string& key) const {
  for (const std::string& k : keys_) {
    if (k == key) return true;
  }
  return false;
}

void Metadata::U32(const std::string& key, uint32_t v) {
  Key(key, ValueType::kU32);
  Put(&bytes_, v);
}

void Metadata::I32(const std::string& key, int32_t v) {
  Key(key, ValueType::kI32);
  Put(&bytes_, v);
}

void Metadata::F32(const std::string& key, float v) {
  Key(key, ValueType::kF32);
  Put(&bytes_, v);
}

void Metadata::Bool(const std::string& key, bool v) {
  Key(key, ValueType::kBool);
  Put<uint8_t>(&bytes_, v ? 1 : 0);
}

void Metadata::String(const std::string& key, const std::string& v) {
  Key(key, ValueType::kString);
  PutString(&bytes_, v);
}

void Metadata::StringArray(const std::string& key, const std::vector<std::string>& v) {
  Key(key, ValueType::kArray);
  Put<uint32_t>(&bytes_, static_cast<uint32_t>(ValueType::kString));
  Put<uint64_t>(&bytes_, v.size());
  for (const std::string& s : v) PutString(&bytes_, s);
}

void Metadata::F32Array(const std::string& key, const std::vector<float>& v) {
  Key(key, ValueType::kArray);
  Put<uint32_t>(&bytes_, static_cast<uint32_t>(ValueType::kF32));
  Put<uint64_t>(&bytes_, v.size());
  for (float x : v) Put(&bytes_, x);
}

void Metadata::I32Array(const std::string& key, const std::vector<int32_t>& v) {
  Key(key, ValueType::kArray);
  Put<uint32_t>(&bytes_, static_cast<uint32_t>(ValueType::kI32));
  Put<uint64_t>(&bytes_, v.size());
  for (int32_t x : v) Put(&bytes_, x);
}

uint64_t TensorEntry::elements() const {
  uint64_t n = 1;
  for (uint64_t d : dims) n *= d;
  return n;
}

std::vector<uint64_t> DataOffsets(const std::vector<TensorEntry>& tensors, uint32_t alignment) {
  std::vector<uint64_t> out;
  out.reserve(tensors.size());
  uint64_t at = 0;
  for (const TensorEntry& t : tensors) {
    out.push_back(at);
    at = AlignUp(at + t.bytes(), alignment);
  }
  return out;
}

StatusOr<std::string> HeaderBytes(const Metadata& metadata, const std::vector<TensorEntry>& tensors,
                                  uint32_t alignment) {
  if (alignment == 0 || alignment % 8 != 0) {
    return Status::InvalidArgument("gguf: alignment must be a positive multiple of 8, got " +
                                   std::to_string(alignment));
  }
  std::string out;
  Put<uint32_t>(&out, kMagic);
  Put<uint32_t>(&out, kVersion);
  Put<uint64_t>(&out, tensors.size());
  Put<uint64_t>(&out, metadata.count());
  out += metadata.bytes();
  const std::vector<uint64_t> offsets = DataOffsets(tensors, alignment);
  for (size_t i = 0; i < tensors.size(); ++i) {
    const TensorEntry& t = tensors[i];
    if (t.dims.empty() || t.dims.size() > 4) {
      return Status::InvalidArgument("gguf: tensor '" + t.name + "' has " +
                                     std::to_string(t.dims.size()) + " dims (1..4 allowed)");
    }
    for (uint64_t d : t.dims) {
      if (d == 0) return Status::InvalidArgument("gguf: tensor '" + t.name + "' has a zero dim");
    }
    if (t.name.size() > 64) {
      return Status::InvalidArgument("gguf: tensor name '" + t.name + "' is over 64 bytes");
    }
    PutString(&out, t.name);
    Put<uint32_t>(&out, static_cast<uint32_t>(t.dims.size()));
    for (uint64_t d : t.dims) Put<uint64_t>(&out, d);
    Put<uint32_t>(&out, static_cast<uint32_t>(t.type));
    Put<uint64_t>(&out, offsets[i]);
  }
  out.resize(AlignUp(out.size(), alignment), '\0');
  return out;
}

StatusOr<GgufFile> GgufFile::Create(const std::string& path, const Metadata& metadata,
                                    std::vector<TensorEntry> tensors, uint32_t alignment) {
  VMM_ASSIGN_OR_RETURN(std::string header, HeaderBytes(metadata, tensors, alignment));
  GgufFile g;
  g.path_ = path;
  g.tensors_ = std::move(tensors);
  g.alignment_ = alignment;
  g.f_ = std::fopen(path.c_str(), "wb");
  if (g.f_ == nullptr) {
    return Status::PermissionDenied("gguf: cannot create " + path + ": " + std::strerror(errno));
  }
  VMM_RETURN_IF_ERROR(g.Write(header));
  return g;
}

GgufFile::GgufFile(GgufFile&& o) noexcept
    : path_(std::move(o.path_)),
      f_(std::exchange(o.f_, nullptr)),
      tensors_(std::move(o.tensors_)),
      alignment_(o.alignment_),
      current_(o.current_),
      in_current_(o.in_current_),
      written_(o.written_),
      finished_(o.finished_) {}

GgufFile::~GgufFile() {
  if (f_ == nullptr) return;
  std::fclose(f_);
  if (!finished_) std::remove(path_.c_str());
}

Status GgufFile::Write(std::string_view bytes) {
  if (bytes.empty()) return Status::Ok();
  if (std::fwrite(bytes.data(), 1, bytes.size(), f_) != bytes.size()) {
    return Status::DataLoss("gguf: write " + path_ + " failed: " + std::strerror(errno));
  }
  written_ += bytes.size();
  return Status::Ok();
}

Status GgufFile::Pad() {
  const uint64_t pad = AlignUp(written_, alignment_) - written_;
  return Write(std::string(pad, '\0'));
}

Status GgufFile::Append(size_t index, std::string_view bytes) {
  if (f_ == nullptr || finished_) return Status::FailedPrecondition("gguf: file not open");
  while (current_ < index && current_ < tensors_.size()) {
    if (in_current_ != tensors_[current_].bytes()) {
      return Status::FailedPrecondition("gguf: tensor '" + tensors_[current_].name + "' got " +
                                        std::to_string(in_current_) + " of its " +
                                        std::to_string(tensors_[current_].bytes()) + " bytes");
    }
    VMM_RETURN_IF_ERROR(Pad());
    ++current_;
    in_current_ = 0;
  }
  if (index != current_ || index >= tensors_.size()) {
    return Status::FailedPrecondition("gguf: tensor " + std::to_string(index) +
                                      " written out of order");
  }
  if (in_current_ + bytes.size() > tensors_[index].bytes()) {
    return Status::FailedPrecondition("gguf: tensor '" + tensors_[index].name +
                                      "' given more than its " +
                                      std::to_string(tensors_[index].bytes()) + " bytes");
  }
  in_current_ += bytes.size();
  return Write(bytes);
}

Status GgufFile::Finish() {
  if (tensors_.empty()) {
    finished_ = std::fflush(f_) == 0;
  } else {
    // Closes the last tensor (and checks every earlier one) by moving past it.
    VMM_RETURN_IF_ERROR(Append(tensors_.size() - 1, {}));
    if (in_current_ != tensors_.back().bytes()) {
      return Status::FailedPrecondition("gguf: tensor '" + tensors_.back().name + "' got " +
                                        std::to_string(in_current_) + " of its " +
                                        std::to_string(tensors_.back().bytes()) + " bytes");
    }
    VMM_RETURN_IF_ERROR(Pad());
  }
  if (std::fclose(std::exchange(f_, nullptr)) != 0) {
    std::remove(path_.c_str());
    return Status::DataLoss("gguf: close " + path_ + " failed: " + std::strerror(errno));
  }
  finished_ = true;
  return Status::Ok();
}

}  // namespace emoe::tools::gguf
