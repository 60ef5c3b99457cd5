#include "kernel/fd_identity.h"

#include <linux/kcmp.h>
#include <linux/netlink.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>

#include "kernel/errno_status.h"

namespace devmem {

absl::StatusOr<FdIdentity> IdentifyFd(int fd) {
  struct stat st = {};
  if (fstat(fd, &st) != 0) return ErrnoStatus(errno, "fstat");
  FdIdentity id;
  id.dev = st.st_dev;
  id.ino = st.st_ino;
  if (S_ISSOCK(st.st_mode)) {
    struct sockaddr_nl nl = {};
    socklen_t len = sizeof(nl);
    if (getsockname(fd, reinterpret_cast<sockaddr*>(&nl), &len) == 0 &&
        nl.nl_family == AF_NETLINK) {
      id.netlink_port = nl.nl_pid;
    }
  }
  return id;
}

absl::StatusOr<bool> SameOpenFile(int a, int b) {
  const pid_t self = getpid();
  // kernel/kcmp.c: 0 means the same struct file; 1 and 2 order the two.
  const int64_t rc = syscall(SYS_kcmp, self, self, KCMP_FILE, a, b);
  if (rc >= 0) return rc == 0;
  if (errno != ENOSYS && errno != EPERM) return ErrnoStatus(errno, "kcmp");
  auto ia = IdentifyFd(a);
  if (!ia.ok()) return ia.status();
  auto ib = IdentifyFd(b);
  if (!ib.ok()) return ib.status();
  return *ia == *ib;
}

}  // namespace devmem
