#include "daemon/socket_broker.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "kernel/errno_status.h"

namespace devmem {

absl::StatusOr<SockAddr> ParseSockAddr(absl::string_view ip, uint32_t port,
                                       int family) {
  if (port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("port ", port, " is out of range [0, 65535]"));
  }
  SockAddr out;
  const std::string s(ip);
  struct sockaddr_in v4 = {};
  struct sockaddr_in6 v6 = {};
  v4.sin_family = AF_INET;
  v4.sin_port = htons(static_cast<uint16_t>(port));
  v6.sin6_family = AF_INET6;
  v6.sin6_port = htons(static_cast<uint16_t>(port));
  bool is_v4 = false;
  if (s.empty()) {
    is_v4 = family == AF_INET;
    v4.sin_addr.s_addr = htonl(INADDR_ANY);
    v6.sin6_addr = in6addr_any;
  } else if (::inet_pton(AF_INET, s.c_str(), &v4.sin_addr) == 1) {
    is_v4 = true;
  } else if (::inet_pton(AF_INET6, s.c_str(), &v6.sin6_addr) == 1) {
    is_v4 = false;
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("\"", s,
                     "\" is not a numeric IPv4 or IPv6 address (names are not "
                     "resolved)"));
  }
  if (family == AF_INET6 && is_v4) {
    return absl::InvalidArgumentError(
        absl::StrCat("address \"", s, "\" is IPv4 but family INET6 was asked"));
  }
  if (family == AF_INET && !is_v4) {
    return absl::InvalidArgumentError(
        absl::StrCat("address \"", s, "\" is IPv6 but family INET was asked"));
  }
  if (is_v4) {
    std::memcpy(&out.storage, &v4, sizeof(v4));
    out.len = sizeof(v4);
  } else {
    std::memcpy(&out.storage, &v6, sizeof(v6));
    out.len = sizeof(v6);
  }
  return out;
}

namespace {

absl::StatusOr<SockAddr> Name(int fd, bool peer) {
  SockAddr out;
  out.len = sizeof(out.storage);
  int rc = peer ? ::getpeername(fd, reinterpret_cast<sockaddr*>(&out.storage),
                                &out.len)
                : ::getsockname(fd, reinterpret_cast<sockaddr*>(&out.storage),
                                &out.len);
  if (rc != 0) return ErrnoStatus(errno, peer ? "getpeername" : "getsockname");
  return out;
}

// A TCP socket of `family`, close-on-exec, bound to `ifname`.
absl::StatusOr<UniqueFd> DeviceSocket(absl::string_view ifname, int family) {
  UniqueFd fd(::socket(family, SOCK_STREAM | SOCK_CLOEXEC, IPPROTO_TCP));
  if (!fd) return ErrnoStatus(errno, "socket(SOCK_STREAM)");
  if (ifname.empty() || ifname.size() >= IFNAMSIZ) {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid interface name \"", ifname, "\""));
  }
  const std::string name(ifname);
  if (::setsockopt(fd.get_unowned(), SOL_SOCKET, SO_BINDTODEVICE, name.c_str(),
                   static_cast<socklen_t>(name.size())) != 0) {
    return ErrnoStatus(errno, absl::StrCat("SO_BINDTODEVICE ", name));
  }
  return fd;
}

}  // namespace

absl::StatusOr<SockAddr> LocalAddress(int fd) { return Name(fd, false); }
absl::StatusOr<SockAddr> PeerAddress(int fd) { return Name(fd, true); }

std::string AddressIp(const SockAddr& addr) {
  char buf[INET6_ADDRSTRLEN] = {};
  if (addr.family() == AF_INET) {
    const auto* a = reinterpret_cast<const sockaddr_in*>(&addr.storage);
    ::inet_ntop(AF_INET, &a->sin_addr, buf, sizeof(buf));
  } else if (addr.family() == AF_INET6) {
    const auto* a = reinterpret_cast<const sockaddr_in6*>(&addr.storage);
    ::inet_ntop(AF_INET6, &a->sin6_addr, buf, sizeof(buf));
  }
  return buf;
}

uint32_t AddressPort(const SockAddr& addr) {
  if (addr.family() == AF_INET) {
    return ntohs(reinterpret_cast<const sockaddr_in*>(&addr.storage)->sin_port);
  }
  if (addr.family() == AF_INET6) {
    return ntohs(
        reinterpret_cast<const sockaddr_in6*>(&addr.storage)->sin6_port);
  }
  return 0;
}

absl::StatusOr<UniqueFd> CreateBoundListener(absl::string_view ifname,
                                             const SockAddr& local,
                                             int backlog) {
  auto fd = DeviceSocket(ifname, local.family());
  if (!fd.ok()) return fd.status();
  int one = 1;
  ::setsockopt(fd->get_unowned(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (::bind(fd->get_unowned(),
             reinterpret_cast<const sockaddr*>(&local.storage),
             local.len) != 0) {
    return ErrnoStatus(errno, absl::StrCat("bind ", AddressIp(local), " port ",
                                           AddressPort(local)));
  }
  if (::listen(fd->get_unowned(), backlog) != 0) {
    return ErrnoStatus(errno, "listen");
  }
  return fd;
}

absl::StatusOr<UniqueFd> CreateBoundConnected(absl::string_view ifname,
                                              const SockAddr& remote,
                                              const SockAddr* local,
                                              absl::Duration timeout) {
  auto fd = DeviceSocket(ifname, remote.family());
  if (!fd.ok()) return fd.status();
  const int s = fd->get_unowned();
  if (local != nullptr && local->len > 0) {
    if (local->family() != remote.family()) {
      return absl::InvalidArgumentError(
          "local and remote addresses are of different families");
    }
    if (::bind(s, reinterpret_cast<const sockaddr*>(&local->storage),
               local->len) != 0) {
      return ErrnoStatus(errno, absl::StrCat("bind ", AddressIp(*local),
                                             " port ", AddressPort(*local)));
    }
  }
  const int flags = ::fcntl(s, F_GETFL);
  ::fcntl(s, F_SETFL, flags | O_NONBLOCK);
  const std::string target =
      absl::StrCat(AddressIp(remote), " port ", AddressPort(remote));
  if (::connect(s, reinterpret_cast<const sockaddr*>(&remote.storage),
                remote.len) != 0) {
    if (errno != EINPROGRESS) {
      return ErrnoStatus(errno, absl::StrCat("connect ", target));
    }
    const absl::Time deadline = absl::Now() + timeout;
    for (;;) {
      const int64_t left = absl::ToInt64Milliseconds(deadline - absl::Now());
      if (left <= 0) {
        return absl::DeadlineExceededError(
            absl::StrCat("connect ", target, ": no answer within ",
                         absl::FormatDuration(timeout)));
      }
      struct pollfd p = {s, POLLOUT, 0};
      int n = ::poll(&p, 1, static_cast<int>(left));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return ErrnoStatus(errno, "poll");
      if (n == 1) break;
    }
    int err = 0;
    socklen_t len = sizeof(err);
    ::getsockopt(s, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0) return ErrnoStatus(err, absl::StrCat("connect ", target));
  }
  ::fcntl(s, F_SETFL, flags);
  return fd;
}

}  // namespace devmem
