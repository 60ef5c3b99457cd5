#pragma once

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace devmem {

// Turns a positive errno into an absl::Status whose code follows the errno's
// meaning (EPERM -> PERMISSION_DENIED, ENODEV/ENOENT -> NOT_FOUND, EOPNOTSUPP
// -> UNIMPLEMENTED, EINVAL -> INVALID_ARGUMENT, EBUSY/EEXIST -> ...). The
// message is
// "<what>: <strerror>" plus " (kernel: <extack>)" when the kernel gave extack
// text. The errno itself is kept in the payload and recoverable with
// StatusErrno().
absl::Status ErrnoStatus(int err, absl::string_view what,
                         absl::string_view extack = "");

// The errno stored by ErrnoStatus, or 0 if the status did not come from one.
int StatusErrno(const absl::Status& status);

// The kernel extack text stored by ErrnoStatus, or "" if there was none.
std::string StatusExtack(const absl::Status& status);

}  // namespace devmem
