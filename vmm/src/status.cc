#include "vmm/status.h"

#include <cstdio>
#include <cstring>

namespace vmm {

const char* StatusCodeName(StatusCode code) {
  switch (code) {
    case StatusCode::kOk:
      return "OK";
    case StatusCode::kInvalidArgument:
      return "INVALID_ARGUMENT";
    case StatusCode::kNotFound:
      return "NOT_FOUND";
    case StatusCode::kAlreadyExists:
      return "ALREADY_EXISTS";
    case StatusCode::kResourceExhausted:
      return "RESOURCE_EXHAUSTED";
    case StatusCode::kFailedPrecondition:
      return "FAILED_PRECONDITION";
    case StatusCode::kOutOfRange:
      return "OUT_OF_RANGE";
    case StatusCode::kUnavailable:
      return "UNAVAILABLE";
    case StatusCode::kPermissionDenied:
      return "PERMISSION_DENIED";
    case StatusCode::kDataLoss:
      return "DATA_LOSS";
    case StatusCode::kInternal:
      return "INTERNAL";
  }
  return "UNKNOWN";
}

namespace {

StatusCode CodeForErrno(int err) {
  switch (err) {
    case ENOMEM:
    case ENOSPC:
    case EMFILE:
    case ENFILE:
      return StatusCode::kResourceExhausted;
    case EPERM:
    case EACCES:
      return StatusCode::kPermissionDenied;
    case EINVAL:
    case EBADF:
      return StatusCode::kInvalidArgument;
    case ENOENT:
      return StatusCode::kNotFound;
    case EEXIST:
      return StatusCode::kAlreadyExists;
    case EAGAIN:
    case EINTR:
    case EBUSY:
    case ENOSYS:
    case EOPNOTSUPP:
      return StatusCode::kUnavailable;
    case EFAULT:
    case ERANGE:
    case EOVERFLOW:
      return StatusCode::kOutOfRange;
    default:
      return StatusCode::kInternal;
  }
}

}  // namespace

Status Status::FromErrno(int err, const std::string& context, const char* syscall) {
  const char* name = strerrorname_np(err);
  std::string msg = context + ": " + syscall + ": " +
                    (name ? name : "errno " + std::to_string(err)) + " (" + strerror(err) + ")";
  return Status(CodeForErrno(err), err, std::move(msg));
}

Status& Status::Annotate(const std::string& context) {
  if (!ok()) message_ = context + ": " + message_;
  return *this;
}

std::string Status::ToString() const {
  if (ok()) return "OK";
  std::string s = std::string(StatusCodeName(code_)) + ": " + message_;
  if (errno_ != 0) {
    const char* name = strerrorname_np(errno_);
    s += " [errno ";
    s += name ? name : std::to_string(errno_);
    s += "]";
  }
  return s;
}

void CheckOk(const Status& s, const char* what) {
  if (s.ok()) return;
  std::fprintf(stderr, "vmm: fatal: %s: %s\n", what, s.ToString().c_str());
  std::fflush(stderr);
  std::abort();
}

}  // namespace vmm
