#include "kernel/accept_reserve.h"

#include <fcntl.h>
#include <sys/socket.h>

#include <cerrno>

namespace devmem {

AcceptReserve::AcceptReserve()
    : spare_(::open("/dev/null", O_RDONLY | O_CLOEXEC)) {}

UniqueFd AcceptReserve::Accept(int listen_fd, int flags,
                               const std::function<void(int)>& refuse) {
  UniqueFd conn(::accept4(listen_fd, nullptr, nullptr, flags));
  if (conn || (errno != EMFILE && errno != ENFILE) || !spare_) return conn;
  spare_.Reset();
  UniqueFd shed(::accept4(listen_fd, nullptr, nullptr, flags));
  if (shed) {
    if (refuse) refuse(shed.get_unowned());
    ++shed_;
  }
  shed.Reset();
  spare_.Reset(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  errno = EMFILE;
  return UniqueFd();
}

}  // namespace devmem
