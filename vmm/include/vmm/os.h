// vmm/os.h: the OS seam. Every system call vmm makes on memory goes through an `Os`.
//
// Contract (the only place in vmm that talks to the kernel about memory, like LevelDB's Env):
//  - Each method is the named syscall with the kernel's signature, returning its result; on failure
//    it returns -1 (or MAP_FAILED) and leaves errno set. No retries here: callers decide.
//  - `Os::Default()` is the real kernel. `FaultInjectingOs` wraps another Os and fails chosen calls
//    with a chosen errno, so tests can show that every operation either succeeds or leaves the
//    manager exactly as it was.
//
// Thread safety: Os::Default() is stateless and safe from any thread. FaultInjectingOs guards its
// rules with a mutex and is safe from any thread.
#ifndef VMM_OS_H_
#define VMM_OS_H_

#include <sys/types.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "vmm/mutex.h"

namespace vmm {

// The syscalls behind the seam, for fault rules and call counting.
enum class Syscall : int {
  kMemfdCreate = 0,
  kFtruncate,
  kFcntl,
  kFallocate,
  kMmap,
  kMunmap,
  kMremap,
  kMprotect,
  kMadvise,
  kMbind,
  kCount,  // number of syscalls, not a syscall
};
const char* SyscallName(Syscall s);

class Os {
 public:
  virtual ~Os() = default;

  // The real kernel. Never null, never destroyed.
  static Os* Default();

  virtual int MemfdCreate(const char* name, unsigned int flags) = 0;
  virtual int Ftruncate(int fd, off_t length) = 0;
  virtual int FcntlInt(int fd, int cmd, int arg) = 0;  // fcntl(fd, cmd, arg), e.g. F_ADD_SEALS
  virtual int Fallocate(int fd, int mode, off_t offset, off_t len) = 0;
  virtual void* Mmap(void* addr, size_t len, int prot, int flags, int fd, off_t offset) = 0;
  virtual int Munmap(void* addr, size_t len) = 0;
  // mremap(old, old_len, new_len, flags, new_addr); new_addr used with MREMAP_FIXED.
  virtual void* Mremap(void* old_addr, size_t old_len, size_t new_len, int flags,
                       void* new_addr) = 0;
  virtual int Mprotect(void* addr, size_t len, int prot) = 0;
  virtual int Madvise(void* addr, size_t len, int advice) = 0;
  // mbind(2) through libnuma's numaif.h wrapper.
  virtual long Mbind(void* addr, unsigned long len, int mode, const unsigned long* nodemask,
                     unsigned long maxnode, unsigned flags) = 0;
};

// Wraps an Os; fails selected calls. A rule "fail the n-th call (0-based, counted from the moment
// the rule is added) of syscall S with errno E, `times` times in a row" models ENOMEM, EINTR and
// EAGAIN at any step of a multi-step operation.
class FaultInjectingOs : public Os {
 public:
  explicit FaultInjectingOs(Os* base = Os::Default()) : base_(base) {}

  // Fails call number `nth` (0 = the next one) of `s`, `times` consecutive calls, with `err`.
  void FailNth(Syscall s, int nth, int err, int times = 1);
  // Removes all rules.
  void Clear();
  // Calls of `s` seen so far (passed through or failed) since construction or ResetCounts().
  uint64_t Calls(Syscall s) const;
  uint64_t Failures() const;  // calls failed by a rule so far
  void ResetCounts();

  int MemfdCreate(const char* name, unsigned int flags) override;
  int Ftruncate(int fd, off_t length) override;
  int FcntlInt(int fd, int cmd, int arg) override;
  int Fallocate(int fd, int mode, off_t offset, off_t len) override;
  void* Mmap(void* addr, size_t len, int prot, int flags, int fd, off_t offset) override;
  int Munmap(void* addr, size_t len) override;
  void* Mremap(void* old_addr, size_t old_len, size_t new_len, int flags, void* new_addr) override;
  int Mprotect(void* addr, size_t len, int prot) override;
  int Madvise(void* addr, size_t len, int advice) override;
  long Mbind(void* addr, unsigned long len, int mode, const unsigned long* nodemask,
             unsigned long maxnode, unsigned flags) override;

 private:
  struct Rule {
    Syscall syscall;
    uint64_t first_call;  // absolute call index that fails first
    int times;            // how many consecutive calls fail
    int err;
  };
  // Counts the call; returns the errno to inject, or 0 to pass it through.
  int Intercept(Syscall s) EXCLUDES(mu_);

  Os* base_;
  mutable Mutex mu_;
  uint64_t calls_[static_cast<int>(Syscall::kCount)] GUARDED_BY(mu_) = {};
  uint64_t failures_ GUARDED_BY(mu_) = 0;
  std::vector<Rule> rules_ GUARDED_BY(mu_);
};

// Retries `fn()` while it returns -1 with errno EINTR. Returns the final result.
template <typename Fn>
auto RetryOnEintr(Fn fn) -> decltype(fn()) {
  decltype(fn()) r;
  do {
    r = fn();
  } while (r == static_cast<decltype(r)>(-1) && errno == EINTR);
  return r;
}

}  // namespace vmm

#endif  // VMM_OS_H_
