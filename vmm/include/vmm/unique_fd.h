// vmm/unique_fd.h: RAII owner of one file descriptor (move-only).
//
// Thread safety: a UniqueFd is owned by one thread at a time; get() may be read concurrently.
#ifndef VMM_UNIQUE_FD_H_
#define VMM_UNIQUE_FD_H_

#include <unistd.h>

#include <utility>

namespace vmm {

class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  ~UniqueFd() { Reset(); }
  UniqueFd(UniqueFd&& o) noexcept : fd_(o.Release()) {}
  UniqueFd& operator=(UniqueFd&& o) noexcept {
    if (this != &o) Reset(o.Release());
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  // Gives up ownership; the caller must close the returned fd.
  int Release() { return std::exchange(fd_, -1); }
  // Closes the owned fd (if any) and takes `fd`.
  void Reset(int fd = -1) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
  }

 private:
  int fd_ = -1;
};

}  // namespace vmm

#endif  // VMM_UNIQUE_FD_H_
