#include "client/socket_calls.h"

#include <sys/socket.h>

namespace devmem {
namespace {

class Kernel final : public SocketCalls {
 public:
  ssize_t RecvMsg(int fd, msghdr* msg, int flags) override {
    return recvmsg(fd, msg, flags);
  }
  ssize_t SendMsg(int fd, const msghdr* msg, int flags) override {
    return sendmsg(fd, msg, flags);
  }
  int SetSockOpt(int fd, int level, int name, const void* value,
                 socklen_t size) override {
    return setsockopt(fd, level, name, value, size);
  }
};

}  // namespace

SocketCalls& KernelSocketCalls() {
  static Kernel* const kernel = new Kernel();
  return *kernel;
}

}  // namespace devmem
