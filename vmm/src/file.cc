#include "vmm/file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

namespace vmm {

const char* FileTypeName(mode_t mode) {
  switch (mode & S_IFMT) {
    case S_IFREG:
      return "a regular file";
    case S_IFDIR:
      return "a directory";
    case S_IFIFO:
      return "a FIFO";
    case S_IFSOCK:
      return "a socket";
    case S_IFCHR:
      return "a character device";
    case S_IFBLK:
      return "a block device";
    case S_IFLNK:
      return "a symbolic link";
  }
  return "an unknown file type";
}

namespace {

Status NotRegular(const std::string& path, const std::string& what, mode_t mode) {
  return Status::InvalidArgument(what + " " + path + ": is " + FileTypeName(mode) +
                                 ", not a regular file");
}

}  // namespace

StatusOr<UniqueFd> OpenRegularFile(const std::string& path, const std::string& what,
                                   int extra_flags, uint64_t* size_bytes) {
  // O_NONBLOCK: a FIFO's open returns at once instead of waiting for a writer. O_NOCTTY: a
  // terminal named by mistake does not become ours.
  UniqueFd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY | extra_flags));
  if (!fd.valid()) {
    const int err = errno;
    // A socket cannot be opened at all (ENXIO): say what it is rather than "no such device".
    struct stat st;
    if (stat(path.c_str(), &st) == 0 && !S_ISREG(st.st_mode)) {
      return NotRegular(path, what, st.st_mode);
    }
    return Status::FromErrno(err, "open " + what + " " + path, "open");
  }
  struct stat st;
  if (fstat(fd.get(), &st) != 0) return Status::FromErrno(errno, what + " " + path, "fstat");
  if (!S_ISREG(st.st_mode)) return NotRegular(path, what, st.st_mode);
  // Regular files ignore O_NONBLOCK today; clear it so that no read can ever return EAGAIN.
  const int fl = fcntl(fd.get(), F_GETFL);
  if (fl < 0 || fcntl(fd.get(), F_SETFL, fl & ~O_NONBLOCK) != 0) {
    return Status::FromErrno(errno, what + " " + path, "fcntl(F_SETFL)");
  }
  if (size_bytes != nullptr) *size_bytes = static_cast<uint64_t>(st.st_size);
  return fd;
}

StatusOr<std::string> ReadRegularFile(const std::string& path, const std::string& what,
                                      uint64_t max_bytes) {
  uint64_t size = 0;
  VMM_ASSIGN_OR_RETURN(UniqueFd fd, OpenRegularFile(path, what, 0, &size));
  auto too_large = [&](uint64_t bytes) {
    return Status::InvalidArgument(what + " " + path + ": " + std::to_string(bytes) +
                                   " bytes or more exceed the limit of " +
                                   std::to_string(max_bytes) + " bytes");
  };
  if (size > max_bytes) return too_large(size);
  std::string out;
  // Reads until end of file, not just `size` bytes (files of /proc say 0); one byte past the
  // limit tells a file that grew.
  char buf[64 * 1024];
  for (;;) {
    const ssize_t n = read(fd.get(), buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Status::FromErrno(errno, what + " " + path, "read");
    if (n == 0) return out;
    if (out.size() + static_cast<uint64_t>(n) > max_bytes) return too_large(out.size() + n);
    out.append(buf, static_cast<size_t>(n));
  }
}

}  // namespace vmm
