#include "vmm/os.h"

#include <fcntl.h>
#include <numaif.h>
#include <sys/mman.h>
#include <unistd.h>

namespace vmm {

const char* SyscallName(Syscall s) {
  switch (s) {
    case Syscall::kMemfdCreate:
      return "memfd_create";
    case Syscall::kFtruncate:
      return "ftruncate";
    case Syscall::kFcntl:
      return "fcntl";
    case Syscall::kFallocate:
      return "fallocate";
    case Syscall::kMmap:
      return "mmap";
    case Syscall::kMunmap:
      return "munmap";
    case Syscall::kMremap:
      return "mremap";
    case Syscall::kMprotect:
      return "mprotect";
    case Syscall::kMadvise:
      return "madvise";
    case Syscall::kMbind:
      return "mbind";
    case Syscall::kCount:
      break;
  }
  return "?";
}

namespace {

// The real kernel.
class LinuxOs final : public Os {
 public:
  int MemfdCreate(const char* name, unsigned int flags) override {
    return ::memfd_create(name, flags);
  }
  int Ftruncate(int fd, off_t length) override { return ::ftruncate(fd, length); }
  int FcntlInt(int fd, int cmd, int arg) override { return ::fcntl(fd, cmd, arg); }
  int Fallocate(int fd, int mode, off_t offset, off_t len) override {
    return ::fallocate(fd, mode, offset, len);
  }
  void* Mmap(void* addr, size_t len, int prot, int flags, int fd, off_t offset) override {
    return ::mmap(addr, len, prot, flags, fd, offset);
  }
  int Munmap(void* addr, size_t len) override { return ::munmap(addr, len); }
  void* Mremap(void* old_addr, size_t old_len, size_t new_len, int flags, void* new_addr) override {
    return ::mremap(old_addr, old_len, new_len, flags, new_addr);
  }
  int Mprotect(void* addr, size_t len, int prot) override { return ::mprotect(addr, len, prot); }
  int Madvise(void* addr, size_t len, int advice) override { return ::madvise(addr, len, advice); }
  long Mbind(void* addr, unsigned long len, int mode, const unsigned long* nodemask,
             unsigned long maxnode, unsigned flags) override {
    return ::mbind(addr, len, mode, nodemask, maxnode, flags);
  }
};

}  // namespace

Os* Os::Default() {
  static LinuxOs* os = new LinuxOs();  // never destroyed: usable during static destruction
  return os;
}

void FaultInjectingOs::FailNth(Syscall s, int nth, int err, int times) {
  MutexLock l(&mu_);
  rules_.push_back(Rule{s, calls_[static_cast<int>(s)] + static_cast<uint64_t>(nth), times, err});
}

void FaultInjectingOs::Clear() {
  MutexLock l(&mu_);
  rules_.clear();
}

uint64_t FaultInjectingOs::Calls(Syscall s) const {
  MutexLock l(&mu_);
  return calls_[static_cast<int>(s)];
}

uint64_t FaultInjectingOs::Failures() const {
  MutexLock l(&mu_);
  return failures_;
}

void FaultInjectingOs::ResetCounts() {
  MutexLock l(&mu_);
  for (auto& c : calls_) c = 0;
  failures_ = 0;
  rules_.clear();
}

int FaultInjectingOs::Intercept(Syscall s) {
  MutexLock l(&mu_);
  const uint64_t index = calls_[static_cast<int>(s)]++;
  for (const Rule& r : rules_) {
    if (r.syscall == s && index >= r.first_call &&
        index < r.first_call + static_cast<uint64_t>(r.times)) {
      ++failures_;
      return r.err;
    }
  }
  return 0;
}

// Each wrapper: fail with the injected errno, or pass through to the base Os.
#define VMM_FAULT_OR(syscall, fail_value)       \
  if (int err = Intercept(syscall); err != 0) { \
    errno = err;                                \
    return fail_value;                          \
  }

int FaultInjectingOs::MemfdCreate(const char* name, unsigned int flags) {
  VMM_FAULT_OR(Syscall::kMemfdCreate, -1);
  return base_->MemfdCreate(name, flags);
}
int FaultInjectingOs::Ftruncate(int fd, off_t length) {
  VMM_FAULT_OR(Syscall::kFtruncate, -1);
  return base_->Ftruncate(fd, length);
}
int FaultInjectingOs::FcntlInt(int fd, int cmd, int arg) {
  VMM_FAULT_OR(Syscall::kFcntl, -1);
  return base_->FcntlInt(fd, cmd, arg);
}
int FaultInjectingOs::Fallocate(int fd, int mode, off_t offset, off_t len) {
  VMM_FAULT_OR(Syscall::kFallocate, -1);
  return base_->Fallocate(fd, mode, offset, len);
}
void* FaultInjectingOs::Mmap(void* addr, size_t len, int prot, int flags, int fd, off_t offset) {
  VMM_FAULT_OR(Syscall::kMmap, MAP_FAILED);
  return base_->Mmap(addr, len, prot, flags, fd, offset);
}
int FaultInjectingOs::Munmap(void* addr, size_t len) {
  VMM_FAULT_OR(Syscall::kMunmap, -1);
  return base_->Munmap(addr, len);
}
void* FaultInjectingOs::Mremap(void* old_addr, size_t old_len, size_t new_len, int flags,
                               void* new_addr) {
  VMM_FAULT_OR(Syscall::kMremap, MAP_FAILED);
  return base_->Mremap(old_addr, old_len, new_len, flags, new_addr);
}
int FaultInjectingOs::Mprotect(void* addr, size_t len, int prot) {
  VMM_FAULT_OR(Syscall::kMprotect, -1);
  return base_->Mprotect(addr, len, prot);
}
int FaultInjectingOs::Madvise(void* addr, size_t len, int advice) {
  VMM_FAULT_OR(Syscall::kMadvise, -1);
  return base_->Madvise(addr, len, advice);
}
long FaultInjectingOs::Mbind(void* addr, unsigned long len, int mode, const unsigned long* nodemask,
                             unsigned long maxnode, unsigned flags) {
  VMM_FAULT_OR(Syscall::kMbind, -1);
  return base_->Mbind(addr, len, mode, nodemask, maxnode, flags);
}

#undef VMM_FAULT_OR

}  // namespace vmm
