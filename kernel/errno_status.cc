#include "kernel/errno_status.h"

#include <cerrno>
#include <cstring>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace devmem {
namespace {

constexpr char kErrnoPayload[] = "devmem/errno";
constexpr char kExtackPayload[] = "devmem/extack";

absl::StatusCode CodeForErrno(int err) {
  switch (err) {
    case EPERM:
    case EACCES:
      return absl::StatusCode::kPermissionDenied;
    case ENOENT:
    case ENODEV:
    case ENXIO:
    case ESRCH:
      return absl::StatusCode::kNotFound;
    case EOPNOTSUPP:
    case ENOSYS:
    case EPROTONOSUPPORT:
    case EAFNOSUPPORT:
      return absl::StatusCode::kUnimplemented;
    case EINVAL:
    case ERANGE:
    case EBADF:
    case ENOTSOCK:
    case EFAULT:
      return absl::StatusCode::kInvalidArgument;
    case EEXIST:
    case EADDRINUSE:
      return absl::StatusCode::kAlreadyExists;
    case EBUSY:
    case ENODATA:
      return absl::StatusCode::kFailedPrecondition;
    case ENOMEM:
    case ENOSPC:
    case EMFILE:
    case ENFILE:
    case ENOBUFS:
      return absl::StatusCode::kResourceExhausted;
    case ETIMEDOUT:
      return absl::StatusCode::kDeadlineExceeded;
    case EAGAIN:
    case ECONNREFUSED:
    case ECONNRESET:
    case EHOSTUNREACH:
    case ENETUNREACH:
    case ENETDOWN:
    case EINTR:
      return absl::StatusCode::kUnavailable;
    default:
      return absl::StatusCode::kUnknown;
  }
}

}  // namespace

absl::Status ErrnoStatus(int err, absl::string_view what,
                         absl::string_view extack) {
  std::string msg =
      absl::StrCat(what, ": ", std::strerror(err), " (errno ", err, ")");
  if (!extack.empty()) absl::StrAppend(&msg, " (kernel: ", extack, ")");
  absl::Status status(CodeForErrno(err), msg);
  status.SetPayload(kErrnoPayload, absl::Cord(absl::StrCat(err)));
  if (!extack.empty()) status.SetPayload(kExtackPayload, absl::Cord(extack));
  return status;
}

int StatusErrno(const absl::Status& status) {
  auto payload = status.GetPayload(kErrnoPayload);
  int err = 0;
  if (!payload.has_value() || !absl::SimpleAtoi(std::string(*payload), &err)) {
    return 0;
  }
  return err;
}

std::string StatusExtack(const absl::Status& status) {
  auto payload = status.GetPayload(kExtackPayload);
  return payload.has_value() ? std::string(*payload) : std::string();
}

}  // namespace devmem
