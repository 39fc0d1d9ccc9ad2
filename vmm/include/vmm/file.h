// vmm/file.h: opening input files that must be regular files.
//
// A path a user names as input (a config, a checkpoint, an index) can be anything: a FIFO, whose
// open(O_RDONLY) blocks until a writer appears and whose reads never end; a directory, which
// opens but cannot be read; a character device. OpenRegularFile opens with O_NONBLOCK (so a
// FIFO's open returns at once, and a device's open cannot wait on a line), checks the type with
// fstat on the opened descriptor (no race with a rename between a stat and the open), refuses
// anything but a regular file naming the path and its type, then clears O_NONBLOCK:
//   "config.json /m/config.json: is a directory, not a regular file"
//   "safetensors file /m/model.safetensors: is a FIFO, not a regular file"
// The code is kInvalidArgument for a wrong type; an open that fails is Status::FromErrno (a
// missing file is kNotFound).
//
// Thread safety: reentrant functions.
#ifndef VMM_FILE_H_
#define VMM_FILE_H_

#include <sys/types.h>

#include <cstdint>
#include <string>

#include "vmm/status.h"
#include "vmm/unique_fd.h"

namespace vmm {

// "a regular file", "a directory", "a FIFO", "a socket", "a character device", "a block device",
// "a symbolic link", "an unknown file type".
const char* FileTypeName(mode_t mode);

// `path` opened O_RDONLY | O_CLOEXEC | `extra_flags` (e.g. O_DIRECT), if it is a regular file.
// `what` names the file in errors ("config.json", "safetensors file"). On success, `size_bytes`
// (if not null) is the file's size at the open.
StatusOr<UniqueFd> OpenRegularFile(const std::string& path, const std::string& what,
                                   int extra_flags = 0, uint64_t* size_bytes = nullptr);

// The whole content of the regular file `path`, read through OpenRegularFile. A file larger than
// `max_bytes` (at the open or while reading: it may grow) is kInvalidArgument naming the limit,
// read no further.
StatusOr<std::string> ReadRegularFile(const std::string& path, const std::string& what,
                                      uint64_t max_bytes);

}  // namespace vmm

#endif  // VMM_FILE_H_
