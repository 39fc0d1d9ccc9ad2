// vmm/mutex.h: a mutex, its scoped lock, a condition variable and a thread role that clang's
// thread-safety analysis understands (vmm/thread_annotations.h). libstdc++'s std::mutex carries
// no annotations, so GUARDED_BY(std::mutex) would check nothing: every guarded member in the
// project names a vmm::Mutex or a vmm::ThreadRole.
//
//   vmm::Mutex mu_;
//   int count_ GUARDED_BY(mu_) = 0;
//   void Bump() { vmm::MutexLock l(&mu_); ++count_; }
//   void BumpLocked() REQUIRES(mu_);
//
// ThreadRole names a thread ("the serving thread") as a capability: state only that thread may
// touch is GUARDED_BY(role); functions that must run there are REQUIRES(role). The thread itself
// calls role.Bind() once and then role.AssertHeld() where analysis needs to know (e.g. at the top
// of a lambda it runs): AssertHeld also checks at run time and aborts naming the role when
// called from another thread.
//
// Thread safety: Mutex and CondVar are for use from any thread; a ThreadRole is bound once by
// its thread before other threads read it.
#ifndef VMM_MUTEX_H_
#define VMM_MUTEX_H_

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <thread>

#include "vmm/thread_annotations.h"

namespace vmm {

class VMM_CAPABILITY("mutex") Mutex {
 public:
  Mutex() = default;
  Mutex(const Mutex&) = delete;
  Mutex& operator=(const Mutex&) = delete;
  void Lock() ACQUIRE() { mu_.lock(); }
  void Unlock() RELEASE() { mu_.unlock(); }
  // Tells the analysis (not the run time) that the caller holds the lock.
  void AssertHeld() const ASSERT_CAPABILITY(this) {}

 private:
  friend class CondVar;
  std::mutex mu_;
};

// Holds `mu` for its scope.
class VMM_SCOPED_CAPABILITY MutexLock {
 public:
  explicit MutexLock(Mutex* mu) ACQUIRE(mu) : mu_(mu) { mu_->Lock(); }
  ~MutexLock() RELEASE() { mu_->Unlock(); }
  MutexLock(const MutexLock&) = delete;
  MutexLock& operator=(const MutexLock&) = delete;

 private:
  Mutex* const mu_;
};

// A condition variable over a vmm::Mutex. Every wait REQUIRES the mutex it is given and holds
// it again on return; one CondVar is always used with the same mutex.
class CondVar {
 public:
  CondVar() = default;
  CondVar(const CondVar&) = delete;
  CondVar& operator=(const CondVar&) = delete;
  void Wait(Mutex* mu) REQUIRES(mu) {
    std::unique_lock<std::mutex> l(mu->mu_, std::adopt_lock);
    cv_.wait(l);
    l.release();
  }
  // Returns false on timeout.
  template <typename Rep, typename Period>
  bool WaitFor(Mutex* mu, std::chrono::duration<Rep, Period> d) REQUIRES(mu) {
    std::unique_lock<std::mutex> l(mu->mu_, std::adopt_lock);
    const bool woken = cv_.wait_for(l, d) == std::cv_status::no_timeout;
    l.release();
    return woken;
  }
  void Signal() { cv_.notify_one(); }
  void SignalAll() { cv_.notify_all(); }

 private:
  std::condition_variable cv_;
};

// A thread as a capability (see the header comment).
class VMM_CAPABILITY("thread role") ThreadRole {
 public:
  explicit ThreadRole(const char* name) : name_(name) {}
  ThreadRole(const ThreadRole&) = delete;
  ThreadRole& operator=(const ThreadRole&) = delete;
  // Called by the thread that plays the role, before anything REQUIRES it.
  void Bind() { id_ = std::this_thread::get_id(); }
  bool OnThisThread() const { return id_ == std::this_thread::get_id(); }
  // Aborts unless called on the bound thread; afterwards the analysis holds the role.
  void AssertHeld() const ASSERT_CAPABILITY(this) {
    if (!OnThisThread()) {
      std::fprintf(stderr, "vmm: %s code ran on another thread\n", name_);
      std::abort();
    }
  }
  const char* name() const { return name_; }

 private:
  const char* name_;
  std::thread::id id_;
};

}  // namespace vmm

#endif  // VMM_MUTEX_H_
