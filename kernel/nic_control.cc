#include "kernel/nic_control.h"

#include <linux/magic.h>
#include <linux/netlink.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <array>
#include <cstdint>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace devmem {

// drivers/dma-buf/dma-buf.c: dma_buf_fs_type's init_fs_context uses
// DMA_BUF_MAGIC, so fstatfs() on any dma-buf fd reports it.
static_assert(DMA_BUF_MAGIC == 0x444d4142, "include/uapi/linux/magic.h");

DmabufKind ClassifyFd(int fd) {
  struct statfs fs = {};
  if (fstatfs(fd, &fs) != 0) return DmabufKind::kOther;
  if (static_cast<uint64_t>(fs.f_type) == DMA_BUF_MAGIC) {
    return DmabufKind::kDmabuf;
  }
  // memfds live on the internal shmem mount; their link names them.
  std::array<char, 64> target = {};
  const std::string link = absl::StrCat("/proc/self/fd/", fd);
  const ssize_t n = readlink(link.c_str(), target.data(), target.size() - 1);
  if (n > 0 &&
      absl::StartsWith(absl::string_view(target.data(), static_cast<size_t>(n)),
                       "/memfd:")) {
    return DmabufKind::kMemfd;
  }
  return DmabufKind::kOther;
}

std::string DmabufKindName(DmabufKind kind) {
  switch (kind) {
    case DmabufKind::kDmabuf:
      return "dma-buf";
    case DmabufKind::kMemfd:
      return "memfd";
    case DmabufKind::kOther:
      break;
  }
  return "not a dma-buf";
}

namespace {

std::string SocketDomainName(int domain) {
  switch (domain) {
    case AF_UNIX:
      return "AF_UNIX";
    case AF_INET:
      return "AF_INET";
    case AF_INET6:
      return "AF_INET6";
    case AF_NETLINK:
      return "AF_NETLINK";
    case AF_PACKET:
      return "AF_PACKET";
    default:
      return absl::StrCat("domain ", domain);
  }
}

// The protocol for IP and netlink sockets, else the socket type.
std::string SocketProtocolName(int domain, int type, int protocol) {
  if (domain == AF_NETLINK) {
    switch (protocol) {
      case NETLINK_ROUTE:
        return "NETLINK_ROUTE";
      case NETLINK_SOCK_DIAG:
        return "NETLINK_SOCK_DIAG";
      case NETLINK_GENERIC:
        return "NETLINK_GENERIC";
      default:
        return absl::StrCat("protocol ", protocol);
    }
  }
  if (domain == AF_INET || domain == AF_INET6) {
    if (protocol == IPPROTO_TCP) return "TCP";
    if (protocol == IPPROTO_UDP) return "UDP";
    if (protocol == IPPROTO_SCTP) return "SCTP";
  }
  switch (type) {
    case SOCK_STREAM:
      return "SOCK_STREAM";
    case SOCK_DGRAM:
      return "SOCK_DGRAM";
    case SOCK_SEQPACKET:
      return "SOCK_SEQPACKET";
    case SOCK_RAW:
      return "SOCK_RAW";
    default:
      return absl::StrCat("type ", type, ", protocol ", protocol);
  }
}

int SocketOption(int fd, int option) {
  int value = -1;
  socklen_t len = sizeof(value);
  if (getsockopt(fd, SOL_SOCKET, option, &value, &len) != 0) return -1;
  return value;
}

// " (/path)" from /proc/self/fd, or "" if it cannot be read.
std::string LinkSuffix(int fd) {
  char target[4096];
  const std::string link = absl::StrCat("/proc/self/fd/", fd);
  const ssize_t n = readlink(link.c_str(), target, sizeof(target) - 1);
  if (n <= 0) return "";
  return absl::StrCat(" (", absl::string_view(target, static_cast<size_t>(n)),
                      ")");
}

}  // namespace

std::string DescribeFd(int fd) {
  struct stat st = {};
  if (fstat(fd, &st) != 0) {
    return absl::StrCat("not an open file (", std::strerror(errno), ")");
  }
  if (S_ISSOCK(st.st_mode)) {
    const int domain = SocketOption(fd, SO_DOMAIN);
    return absl::StrCat("a socket (", SocketDomainName(domain), ", ",
                        SocketProtocolName(domain, SocketOption(fd, SO_TYPE),
                                           SocketOption(fd, SO_PROTOCOL)),
                        ")");
  }
  if (S_ISFIFO(st.st_mode)) return "a pipe";
  if (S_ISDIR(st.st_mode)) return absl::StrCat("a directory", LinkSuffix(fd));
  if (S_ISCHR(st.st_mode)) {
    return absl::StrCat("a character device", LinkSuffix(fd));
  }
  if (S_ISBLK(st.st_mode)) {
    return absl::StrCat("a block device", LinkSuffix(fd));
  }
  switch (ClassifyFd(fd)) {
    case DmabufKind::kDmabuf:
      return "a dma-buf";
    case DmabufKind::kMemfd:
      return "a memfd";
    case DmabufKind::kOther:
      break;
  }
  if (S_ISREG(st.st_mode)) {
    return absl::StrCat("a regular file", LinkSuffix(fd));
  }
  // Anonymous inodes (eventfd, epoll, timerfd, pidfd...) name themselves.
  return absl::StrCat("a file of another kind", LinkSuffix(fd));
}

}  // namespace devmem
