// vmm/thread_annotations.h: clang's thread-safety annotations (-Wthread-safety), as LevelDB's
// port/thread_annotations.h. They expand to nothing on other compilers (GCC builds ignore them);
// CI also builds the libraries and tests with clang and -Wthread-safety -Werror, so a member
// read without its mutex, or a function called without the lock it REQUIRES, fails the build.
//
// The capabilities we name: a vmm::Mutex (vmm/mutex.h) and a vmm::ThreadRole ("the serving
// thread"), both declared with VMM_CAPABILITY.
//
// Thread safety: macros only.
#ifndef VMM_THREAD_ANNOTATIONS_H_
#define VMM_THREAD_ANNOTATIONS_H_

#if defined(__clang__)
#define VMM_THREAD_ANNOTATION_(x) __attribute__((x))
#else
#define VMM_THREAD_ANNOTATION_(x)
#endif

#define VMM_CAPABILITY(x) VMM_THREAD_ANNOTATION_(capability(x))
#define VMM_SCOPED_CAPABILITY VMM_THREAD_ANNOTATION_(scoped_lockable)
#define GUARDED_BY(x) VMM_THREAD_ANNOTATION_(guarded_by(x))
#define PT_GUARDED_BY(x) VMM_THREAD_ANNOTATION_(pt_guarded_by(x))
#define ACQUIRED_AFTER(...) VMM_THREAD_ANNOTATION_(acquired_after(__VA_ARGS__))
#define ACQUIRED_BEFORE(...) VMM_THREAD_ANNOTATION_(acquired_before(__VA_ARGS__))
#define REQUIRES(...) VMM_THREAD_ANNOTATION_(requires_capability(__VA_ARGS__))
#define REQUIRES_SHARED(...) VMM_THREAD_ANNOTATION_(requires_shared_capability(__VA_ARGS__))
#define ACQUIRE(...) VMM_THREAD_ANNOTATION_(acquire_capability(__VA_ARGS__))
#define ACQUIRE_SHARED(...) VMM_THREAD_ANNOTATION_(acquire_shared_capability(__VA_ARGS__))
#define RELEASE(...) VMM_THREAD_ANNOTATION_(release_capability(__VA_ARGS__))
#define RELEASE_SHARED(...) VMM_THREAD_ANNOTATION_(release_shared_capability(__VA_ARGS__))
#define TRY_ACQUIRE(...) VMM_THREAD_ANNOTATION_(try_acquire_capability(__VA_ARGS__))
#define EXCLUDES(...) VMM_THREAD_ANNOTATION_(locks_excluded(__VA_ARGS__))
#define ASSERT_CAPABILITY(x) VMM_THREAD_ANNOTATION_(assert_capability(x))
#define RETURN_CAPABILITY(x) VMM_THREAD_ANNOTATION_(lock_returned(x))
#define NO_THREAD_SAFETY_ANALYSIS VMM_THREAD_ANNOTATION_(no_thread_safety_analysis)

#endif  // VMM_THREAD_ANNOTATIONS_H_
