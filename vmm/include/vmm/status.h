// vmm/status.h: Status and StatusOr<T>, the error currency of the project.
//
// Every fallible operation returns a Status (or StatusOr<T>) carrying a code, the errno of the
// failing system call (0 if none) and a message that names the object involved, e.g.
//   "map extent [off 4 MiB, 2 MiB] of arena 'experts.dev0' at reservation+6 MiB: mmap: ENOMEM
//    (vm.max_map_count=65530 may be exhausted; raise it with sysctl vm.max_map_count=...)".
// No exceptions are thrown anywhere in vmm.
//
// Thread safety: Status and StatusOr are values; distinct objects may be used from distinct
// threads.
#ifndef VMM_STATUS_H_
#define VMM_STATUS_H_

#include <cstdlib>
#include <optional>
#include <string>
#include <utility>

namespace vmm {

enum class StatusCode : int {
  kOk = 0,
  kInvalidArgument,     // the caller passed something malformed (misaligned offset, zero size)
  kNotFound,            // no such mapping / extent / file
  kAlreadyExists,       // the target range is already occupied
  kResourceExhausted,   // out of arena pages, memory, huge pages, or vm.max_map_count
  kFailedPrecondition,  // the object is in the wrong state for the call
  kOutOfRange,          // an offset or length beyond the object's bounds
  kUnavailable,         // a feature the host lacks (no hugetlb pages, no THP for shmem)
  kPermissionDenied,    // the kernel or a peer refused (EPERM, EACCES, wrong uid)
  kDataLoss,            // truncated or corrupted input
  kInternal,            // a broken invariant or an unexpected kernel answer
};

// Returns "OK", "INVALID_ARGUMENT", ...
const char* StatusCodeName(StatusCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;  // OK
  Status(StatusCode code, int err, std::string message)
      : code_(code), errno_(err), message_(std::move(message)) {}

  static Status Ok() { return Status(); }
  static Status InvalidArgument(std::string m) {
    return {StatusCode::kInvalidArgument, 0, std::move(m)};
  }
  static Status NotFound(std::string m) { return {StatusCode::kNotFound, 0, std::move(m)}; }
  static Status AlreadyExists(std::string m) {
    return {StatusCode::kAlreadyExists, 0, std::move(m)};
  }
  static Status ResourceExhausted(std::string m, int err = 0) {
    return {StatusCode::kResourceExhausted, err, std::move(m)};
  }
  static Status FailedPrecondition(std::string m) {
    return {StatusCode::kFailedPrecondition, 0, std::move(m)};
  }
  static Status OutOfRange(std::string m) { return {StatusCode::kOutOfRange, 0, std::move(m)}; }
  static Status Unavailable(std::string m, int err = 0) {
    return {StatusCode::kUnavailable, err, std::move(m)};
  }
  static Status PermissionDenied(std::string m, int err = 0) {
    return {StatusCode::kPermissionDenied, err, std::move(m)};
  }
  static Status DataLoss(std::string m) { return {StatusCode::kDataLoss, 0, std::move(m)}; }
  static Status Internal(std::string m, int err = 0) {
    return {StatusCode::kInternal, err, std::move(m)};
  }

  // Builds a Status from a failed system call: the code is derived from `err` (ENOMEM -> resource
  // exhausted, EPERM/EACCES -> permission denied, EINVAL -> invalid argument, ...) and the message
  // reads "<context>: <syscall>: <ERRNAME> (<strerror>)".
  static Status FromErrno(int err, const std::string& context, const char* syscall);

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  int err() const { return errno_; }  // errno of the failing syscall, 0 if none
  const std::string& message() const { return message_; }

  // Prefixes the message with "<context>: ", keeping code and errno. Returns *this for chaining.
  Status& Annotate(const std::string& context);

  // "RESOURCE_EXHAUSTED: <message> [errno ENOMEM]"
  std::string ToString() const;

 private:
  StatusCode code_ = StatusCode::kOk;
  int errno_ = 0;
  std::string message_;
};

// Aborts with the status printed when it is not OK. For tests, tools and places where failure
// would corrupt memory; library code returns the Status instead.
void CheckOk(const Status& s, const char* what);

// Either a value or a non-OK Status.
template <typename T>
class [[nodiscard]] StatusOr {
 public:
  StatusOr(Status status) : status_(std::move(status)) {  // NOLINT: implicit by design
    if (status_.ok())
      status_ = Status::Internal("StatusOr constructed from an OK status without value");
  }
  StatusOr(T value) : value_(std::move(value)) {}  // NOLINT: implicit by design

  bool ok() const { return status_.ok(); }
  const Status& status() const { return status_; }

  // REQUIRES: ok(). Aborts otherwise, printing the status.
  T& value() & {
    if (!ok()) CheckOk(status_, "StatusOr::value()");
    return *value_;
  }
  const T& value() const& {
    if (!ok()) CheckOk(status_, "StatusOr::value()");
    return *value_;
  }
  T&& value() && {
    if (!ok()) CheckOk(status_, "StatusOr::value()");
    return std::move(*value_);
  }
  T& operator*() & { return value(); }
  T&& operator*() && { return std::move(*this).value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

 private:
  Status status_;
  std::optional<T> value_;
};

}  // namespace vmm

#define VMM_STATUS_CONCAT_INNER_(a, b) a##b
#define VMM_STATUS_CONCAT_(a, b) VMM_STATUS_CONCAT_INNER_(a, b)

// Returns the Status from the enclosing function when `expr` is not OK.
#define VMM_RETURN_IF_ERROR(expr)                      \
  do {                                                 \
    ::vmm::Status vmm_status_tmp_ = (expr);            \
    if (!vmm_status_tmp_.ok()) return vmm_status_tmp_; \
  } while (0)

// `lhs` = value of the StatusOr `expr`, or return its Status.
#define VMM_ASSIGN_OR_RETURN(lhs, expr)                          \
  auto VMM_STATUS_CONCAT_(vmm_statusor_, __LINE__) = (expr);     \
  if (!VMM_STATUS_CONCAT_(vmm_statusor_, __LINE__).ok())         \
    return VMM_STATUS_CONCAT_(vmm_statusor_, __LINE__).status(); \
  lhs = std::move(VMM_STATUS_CONCAT_(vmm_statusor_, __LINE__)).value()

#endif  // VMM_STATUS_H_
