#include "hbm/safetensors.h"

#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <string_view>

#include "vmm/file.h"
#include "vmm/unique_fd.h"

namespace emoe::hbm {

namespace fs = std::filesystem;
using nlohmann::json;

const char* DTypeName(DType d) {
  switch (d) {
    case DType::kF32:
      return "F32";
    case DType::kBF16:
      return "BF16";
    case DType::kF16:
      return "F16";
  }
  return "?";
}

uint64_t DTypeSize(DType d) { return d == DType::kF32 ? 4 : 2; }

StatusOr<DType> ParseDType(const std::string& s) {
  if (s == "F32") return DType::kF32;
  if (s == "BF16") return DType::kBF16;
  if (s == "F16") return DType::kF16;
  return Status::DataLoss("unsupported dtype '" + s + "' (supported: F32, BF16, F16)");
}

uint64_t TensorInfo::num_elements() const {
  uint64_t n = 1;
  for (int64_t d : shape) n *= static_cast<uint64_t>(d);
  return n;
}

const TensorInfo* Checkpoint::Find(const std::string& name) const {
  auto it = std::lower_bound(tensors.begin(), tensors.end(), name,
                             [](const TensorInfo& t, const std::string& n) { return t.name < n; });
  return it != tensors.end() && it->name == name ? &*it : nullptr;
}

namespace {

// Reads exactly n bytes at offset, or fails naming the file.
Status ReadExact(int fd, const std::string& path, uint64_t offset, void* buf, uint64_t n) {
  uint64_t done = 0;
  while (done < n) {
    const ssize_t r = pread(fd, static_cast<char*>(buf) + done, n - done, offset + done);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return Status::FromErrno(errno, path, "pread");
    if (r == 0) {
      return Status::DataLoss(path + ": truncated: end of file at byte " +
                              std::to_string(offset + done) + ", expected " +
                              std::to_string(offset + n));
    }
    done += r;
  }
  return Status::Ok();
}

StatusOr<TensorInfo> ParseEntry(const std::string& path, const std::string& name, const json& v,
                                uint64_t data_size) {
  const std::string what = path + ": tensor '" + name + "'";
  if (!v.is_object()) return Status::DataLoss(what + ": entry is not an object");
  TensorInfo t;
  t.name = name;
  t.file = path;
  auto dt = v.find("dtype");
  if (dt == v.end() || !dt->is_string()) return Status::DataLoss(what + ": missing dtype");
  auto dtype = ParseDType(dt->get<std::string>());
  if (!dtype.ok()) return Status::DataLoss(what + ": " + dtype.status().message());
  t.dtype = *dtype;
  auto sh = v.find("shape");
  if (sh == v.end() || !sh->is_array()) return Status::DataLoss(what + ": missing shape");
  uint64_t elements = 1;
  for (const json& d : *sh) {
    if (!d.is_number_integer() || d.get<int64_t>() < 0) {
      return Status::DataLoss(what + ": shape has a negative or non-integer dimension");
    }
    const uint64_t dim = d.get<uint64_t>();
    if (dim != 0 && elements > (uint64_t{1} << 60) / dim) {
      return Status::DataLoss(what + ": shape overflows");
    }
    elements *= dim;
    t.shape.push_back(static_cast<int64_t>(dim));
  }
  auto off = v.find("data_offsets");
  if (off == v.end() || !off->is_array() || off->size() != 2 || !(*off)[0].is_number_unsigned() ||
      !(*off)[1].is_number_unsigned()) {
    return Status::DataLoss(what + ": data_offsets must be two non-negative integers");
  }
  const uint64_t begin = (*off)[0].get<uint64_t>(), end = (*off)[1].get<uint64_t>();
  if (begin > end || end > data_size) {
    return Status::DataLoss(what + ": data_offsets [" + std::to_string(begin) + ", " +
                            std::to_string(end) + ") outside the data section of " +
                            std::to_string(data_size) + " bytes");
  }
  t.size_bytes = end - begin;
  if (t.size_bytes != elements * DTypeSize(t.dtype)) {
    return Status::DataLoss(what + ": " + std::to_string(t.size_bytes) + " bytes but shape x " +
                            DTypeName(t.dtype) + " needs " +
                            std::to_string(elements * DTypeSize(t.dtype)));
  }
  t.file_offset = begin;  // relative for now; made absolute by the caller
  return t;
}

}  // namespace

StatusOr<uint64_t> SafetensorsHeaderLength(const std::string& path, std::string_view bytes,
                                           uint64_t file_size) {
  if (file_size < 8 || bytes.size() < 8) {
    return Status::DataLoss(
        path + ": truncated: " + std::to_string(std::min<uint64_t>(file_size, bytes.size())) +
        " bytes, less than the 8-byte header length");
  }
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = header_len << 8 | static_cast<uint8_t>(bytes[i]);
  if (header_len > kMaxHeaderBytes) {
    return Status::DataLoss(path + ": header of " + std::to_string(header_len) +
                            " bytes exceeds the limit of " + std::to_string(kMaxHeaderBytes));
  }
  if (header_len > file_size - 8) {
    return Status::DataLoss(path + ": truncated: the header needs " + std::to_string(header_len) +
                            " bytes, the file has " + std::to_string(file_size - 8) +
                            " after the length");
  }
  return header_len;
}

StatusOr<SafetensorsFile> ParseSafetensorsHeader(const std::string& path, std::string_view bytes,
                                                 uint64_t file_size) {
  VMM_ASSIGN_OR_RETURN(const uint64_t header_len, SafetensorsHeaderLength(path, bytes, file_size));
  if (bytes.size() - 8 < header_len) {
    return Status::DataLoss(path + ": truncated: the header needs " + std::to_string(header_len) +
                            " bytes, only " + std::to_string(bytes.size() - 8) + " were read");
  }
  SafetensorsFile f;
  f.path = path;
  f.file_size = file_size;
  json j = json::parse(bytes.substr(8, header_len), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return Status::DataLoss(path + ": the header is not a JSON object");
  }
  f.data_start = 8 + header_len;
  const uint64_t data_size = f.file_size - f.data_start;
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (it.key() == "__metadata__") {
      if (!it->is_object()) return Status::DataLoss(path + ": __metadata__ is not an object");
      for (auto m = it->begin(); m != it->end(); ++m) {
        if (!m->is_string()) {
          return Status::DataLoss(path + ": __metadata__ value '" + m.key() + "' is not a string");
        }
        f.metadata[m.key()] = m->get<std::string>();
      }
      continue;
    }
    VMM_ASSIGN_OR_RETURN(TensorInfo t, ParseEntry(path, it.key(), *it, data_size));
    f.tensors.push_back(std::move(t));
  }
  std::sort(f.tensors.begin(), f.tensors.end(), [](const TensorInfo& a, const TensorInfo& b) {
    return a.file_offset != b.file_offset ? a.file_offset < b.file_offset : a.name < b.name;
  });
  for (size_t i = 0; i + 1 < f.tensors.size(); ++i) {
    const TensorInfo& a = f.tensors[i];
    const TensorInfo& b = f.tensors[i + 1];
    if (a.file_offset + a.size_bytes > b.file_offset && a.size_bytes > 0 && b.size_bytes > 0) {
      return Status::DataLoss(path + ": tensors '" + a.name + "' and '" + b.name + "' overlap");
    }
  }
  for (TensorInfo& t : f.tensors) t.file_offset += f.data_start;
  return f;
}

StatusOr<SafetensorsFile> ReadSafetensorsHeader(const std::string& path) {
  // A FIFO or a directory is refused by type before anything is read (a FIFO would block).
  uint64_t file_size = 0;
  VMM_ASSIGN_OR_RETURN(vmm::UniqueFd fd,
                       vmm::OpenRegularFile(path, "safetensors file", 0, &file_size));
  std::string bytes(std::min<uint64_t>(8, file_size), '\0');
  VMM_RETURN_IF_ERROR(ReadExact(fd.get(), path, 0, bytes.data(), bytes.size()));
  VMM_ASSIGN_OR_RETURN(const uint64_t header_len, SafetensorsHeaderLength(path, bytes, file_size));
  bytes.resize(8 + header_len);
  VMM_RETURN_IF_ERROR(ReadExact(fd.get(), path, 8, bytes.data() + 8, header_len));
  return ParseSafetensorsHeader(path, bytes, file_size);
}

StatusOr<std::map<std::string, std::string>> ParseSafetensorsIndex(const std::string& path,
                                                                   std::string_view text) {
  const json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object() || !j.contains("weight_map") ||
      !j["weight_map"].is_object()) {
    return Status::DataLoss(path + ": not an index with a weight_map object");
  }
  std::map<std::string, std::string> weight_map;
  for (auto it = j["weight_map"].begin(); it != j["weight_map"].end(); ++it) {
    if (!it->is_string()) {
      return Status::DataLoss(path + ": weight_map entry '" + it.key() + "' is not a file name");
    }
    const std::string shard = it->get<std::string>();
    if (shard.empty() || shard == ".") {
      return Status::DataLoss(path + ": weight_map entry '" + it.key() +
                              "' names no file in the checkpoint directory");
    }
    if (shard.find('/') != std::string::npos || shard == "..") {
      return Status::DataLoss(path + ": shard name '" + shard +
                              "' leaves the checkpoint directory");
    }
    weight_map[it.key()] = shard;
  }
  return weight_map;
}

StatusOr<Checkpoint> OpenCheckpoint(const std::string& path) {
  Checkpoint c;
  c.path = path;
  std::error_code ec;
  std::vector<std::string> files;
  std::map<std::string, std::string> weight_map;  // name -> shard file, from the index
  if (fs::is_directory(path, ec)) {
    const fs::path index = fs::path(path) / "model.safetensors.index.json";
    if (fs::exists(index, ec)) {
      VMM_ASSIGN_OR_RETURN(
          const std::string text,
          vmm::ReadRegularFile(index.string(), "checkpoint index", kMaxIndexBytes));
      VMM_ASSIGN_OR_RETURN(auto shards, ParseSafetensorsIndex(index.string(), text));
      std::set<std::string> shard_names;
      for (const auto& [name, shard] : shards) {
        weight_map[name] = (fs::path(path) / shard).string();
        shard_names.insert(shard);
      }
      for (const auto& s : shard_names) files.push_back((fs::path(path) / s).string());
    } else {
      // increment(ec), not ++: a directory that fails while listed is an error, not a throw.
      for (fs::directory_iterator it(path, ec), end; !ec && it != end; it.increment(ec)) {
        if (it->path().extension() == ".safetensors") files.push_back(it->path().string());
      }
      if (ec) return Status::FromErrno(ec.value(), "list checkpoint directory " + path, "readdir");
      std::sort(files.begin(), files.end());
    }
    if (files.empty()) return Status::NotFound(path + ": no .safetensors files");
  } else if (fs::exists(path, ec)) {
    files.push_back(path);
  } else {
    return Status::NotFound("checkpoint " + path + " does not exist");
  }
  std::set<std::string> names;
  for (const auto& f : files) {
    VMM_ASSIGN_OR_RETURN(SafetensorsFile sf, ReadSafetensorsHeader(f));
    for (const TensorInfo& t : sf.tensors) {
      if (!names.insert(t.name).second) {
        return Status::DataLoss(f + ": tensor '" + t.name + "' also appears in another shard");
      }
      if (!weight_map.empty()) {
        auto w = weight_map.find(t.name);
        if (w == weight_map.end() || w->second != f) {
          return Status::DataLoss(f + ": tensor '" + t.name +
                                  "' is not mapped to this shard by the index");
        }
      }
      c.tensors.push_back(t);
      c.total_bytes += t.size_bytes;
    }
    c.shards.push_back(std::move(sf));
  }
  for (const auto& [name, file] : weight_map) {
    if (!names.count(name)) {
      return Status::DataLoss("index names tensor '" + name + "' in " + file +
                              " but the shard does not contain it");
    }
  }
  std::sort(c.tensors.begin(), c.tensors.end(),
            [](const TensorInfo& a, const TensorInfo& b) { return a.name < b.name; });
  return c;
}

Status WriteSafetensors(const std::string& path, const std::vector<TensorToWrite>& tensors,
                        const std::map<std::string, std::string>& metadata, uint64_t align) {
  json header = json::object();
  uint64_t offset = 0;
  std::vector<uint64_t> offsets;
  for (const TensorToWrite& t : tensors) {
    uint64_t n = 1;
    for (int64_t d : t.shape) n *= static_cast<uint64_t>(d);
    if (n * DTypeSize(t.dtype) != t.bytes.size()) {
      return Status::InvalidArgument("write " + path + ": tensor '" + t.name + "' has " +
                                     std::to_string(t.bytes.size()) + " bytes for its shape");
    }
    offset = (offset + align - 1) / align * align;
    offsets.push_back(offset);
    header[t.name] = {{"dtype", DTypeName(t.dtype)},
                      {"shape", t.shape},
                      {"data_offsets", {offset, offset + t.bytes.size()}}};
    offset += t.bytes.size();
  }
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::string h = header.dump();
  // Pad the header with spaces so that the data section starts aligned, as real writers do.
  while ((8 + h.size()) % align != 0) h.push_back(' ');
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) return Status::FromErrno(errno, "write " + path, "open");
  uint8_t len[8];
  for (int i = 0; i < 8; ++i) len[i] = static_cast<uint8_t>(h.size() >> (8 * i));
  out.write(reinterpret_cast<const char*>(len), 8);
  out.write(h.data(), h.size());
  uint64_t pos = 0;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const std::string pad(offsets[i] - pos, '\0');
    out.write(pad.data(), pad.size());
    out.write(tensors[i].bytes.data(), tensors[i].bytes.size());
    pos = offsets[i] + tensors[i].bytes.size();
  }
  out.close();
  if (!out) return Status::DataLoss("write " + path + ": short write");
  return Status::Ok();
}

}  // namespace emoe::hbm
