#pragma once

// The syscalls of the devmem data path behind an interface, so that tests
// can feed exact kernel answers (cmsg sequences, partial frees, errors)
// while production code calls the kernel. Each method returns what the
// syscall returns: on failure -1 with errno set.

#include <sys/socket.h>
#include <sys/types.h>

namespace devmem {

class SocketCalls {
 public:
  virtual ~SocketCalls() = default;
  virtual ssize_t RecvMsg(int fd, msghdr* msg, int flags) = 0;
  virtual ssize_t SendMsg(int fd, const msghdr* msg, int flags) = 0;
  virtual int SetSockOpt(int fd, int level, int name, const void* value,
                         socklen_t size) = 0;
};

// The kernel's recvmsg, sendmsg and setsockopt.
SocketCalls& KernelSocketCalls();

}  // namespace devmem
