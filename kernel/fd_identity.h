#pragma once

#include <cstdint>

#include "absl/status/statusor.h"

namespace devmem {

// Which kernel object an fd refers to, in numbers that outlive the process
// that read them: the inode (device and number; for a socket, the socket
// itself) and, for a netlink socket, its port id. Two fds with the same
// identity refer to the same socket while it lives (netlink port ids are
// unique per protocol and network namespace; socket inodes while they are
// open). Used to recognise a binding's anchor after a restart, when devmemd
// no longer has a copy to compare with.
struct FdIdentity {
  uint64_t dev = 0;
  uint64_t ino = 0;
  uint32_t netlink_port = 0;  // 0 unless an AF_NETLINK socket
  bool operator==(const FdIdentity& o) const {
    return dev == o.dev && ino == o.ino && netlink_port == o.netlink_port;
  }
  bool operator!=(const FdIdentity& o) const { return !(*this == o); }
};

// fstat(2) plus getsockname(2) for netlink sockets. Errno status (EBADF) if
// `fd` is not open.
absl::StatusOr<FdIdentity> IdentifyFd(int fd);

// True if `a` and `b` (both open in this process) share one open file
// description, as dup(2) and SCM_RIGHTS copies do: kcmp(2) KCMP_FILE. Where
// kcmp is unavailable (ENOSYS, or EPERM from a seccomp filter) it falls back
// to comparing IdentifyFd(), which is exact for sockets (a socket cannot be
// opened anew) but not for files. Errno status if either fd is not open.
absl::StatusOr<bool> SameOpenFile(int a, int b);

}  // namespace devmem
