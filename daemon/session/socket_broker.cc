#include "daemon/session/socket_broker.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>

#include <cerrno>
#include <cstring>
#include <fstream>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "kernel/errno_status.h"
#include "kernel/nic_control.h"

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

// A socket of `family` and `type` (TCP for SOCK_STREAM, UDP for
// SOCK_DGRAM), close-on-exec, bound to `ifname`; `flags` may add
// SOCK_NONBLOCK.
absl::StatusOr<UniqueFd> DeviceSocket(absl::string_view ifname, int family,
                                      int type = SOCK_STREAM, int flags = 0) {
  const bool stream = type == SOCK_STREAM;
  UniqueFd fd(::socket(family, type | SOCK_CLOEXEC | flags,
                       stream ? IPPROTO_TCP : IPPROTO_UDP));
  if (!fd) {
    return ErrnoStatus(errno,
                       stream ? "socket(SOCK_STREAM)" : "socket(SOCK_DGRAM)");
  }
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

bool IsWildcard(const SockAddr& a) {
  if (a.family() == AF_INET) {
    return reinterpret_cast<const sockaddr_in*>(&a.storage)->sin_addr.s_addr ==
           htonl(INADDR_ANY);
  }
  if (a.family() == AF_INET6) {
    return IN6_IS_ADDR_UNSPECIFIED(
        &reinterpret_cast<const sockaddr_in6*>(&a.storage)->sin6_addr);
  }
  return false;
}

void SetPort(SockAddr* a, uint32_t port) {
  const uint16_t p = htons(static_cast<uint16_t>(port));
  if (a->family() == AF_INET) {
    reinterpret_cast<sockaddr_in*>(&a->storage)->sin_port = p;
  } else if (a->family() == AF_INET6) {
    reinterpret_cast<sockaddr_in6*>(&a->storage)->sin6_port = p;
  }
}

// The source address the kernel picks for a flow to `remote` out of
// `ifname`: connect(2) on a UDP socket does the same route lookup as TCP's
// and sends nothing (net/ipv4/datagram.c __ip4_datagram_connect()).
absl::StatusOr<SockAddr> AskRouteSource(absl::string_view ifname,
                                        const SockAddr& remote) {
  auto probe = DeviceSocket(ifname, remote.family(), SOCK_DGRAM);
  if (!probe.ok()) return probe.status();
  if (::connect(probe->get_unowned(),
                reinterpret_cast<const sockaddr*>(&remote.storage),
                remote.len) != 0) {
    return ErrnoStatus(errno, absl::StrCat("no route to ", AddressIp(remote),
                                           " via ", ifname));
  }
  return Name(probe->get_unowned(), /*peer=*/false);
}

// IP_LOCAL_PORT_RANGE (linux/in.h, Linux 6.3): a socket's own port range,
// (low | high << 16), within the netns's ip_local_port_range; 0 clears it.
constexpr int kIpLocalPortRange = 51;

// The upper half of the netns's local port range, as IP_LOCAL_PORT_RANGE
// takes it, or 0 if it cannot be read. The sysctl is read at most once a
// second.
uint32_t UpperPortHalf() {
  static absl::Mutex mu(absl::kConstInit);
  static uint32_t cached ABSL_GUARDED_BY(mu) = 0;
  static absl::Time read_at ABSL_GUARDED_BY(mu) = absl::InfinitePast();
  absl::MutexLock lock(&mu);
  const absl::Time now = absl::Now();
  if (now - read_at < absl::Seconds(1)) return cached;
  read_at = now;
  cached = 0;
  std::ifstream in("/proc/sys/net/ipv4/ip_local_port_range");
  uint32_t low = 0;
  uint32_t high = 0;
  if (in >> low >> high && low < high && high <= 65535) {
    // The kernel's own split (inet_csk_find_open_port()).
    const uint32_t half = low + (((high - low) >> 2) << 1);
    cached = half | (high << 16);
  }
  return cached;
}

// bind(2) for a socket that will connect. With port 0 the kernel searches
// odd ports first, in the lower half of the range for SO_REUSEADDR sockets
// (listeners): many steered connects bound there made every later
// listener's search long (connect(2) itself would have taken an even
// port). So port 0 is looked for in the upper half first, then anywhere.
// Returns 0 or the errno.
int BindForConnect(int s, const SockAddr& addr) {
  const auto* sa = reinterpret_cast<const sockaddr*>(&addr.storage);
  const uint32_t half = AddressPort(addr) == 0 ? UpperPortHalf() : 0;
  const bool narrowed =
      half != 0 &&
      ::setsockopt(s, IPPROTO_IP, kIpLocalPortRange, &half, sizeof(half)) == 0;
  if (::bind(s, sa, addr.len) == 0) return 0;
  int err = errno;
  if (narrowed && err == EADDRINUSE) {
    const uint32_t whole = 0;
    ::setsockopt(s, IPPROTO_IP, kIpLocalPortRange, &whole, sizeof(whole));
    if (::bind(s, sa, addr.len) == 0) return 0;
    err = errno;
  }
  return err;
}

}  // namespace

absl::StatusOr<SockAddr> RouteSources::Source(absl::string_view ifname,
                                              const SockAddr& remote) {
  const std::string key = absl::StrCat(ifname, "|", AddressIp(remote));
  auto it = known_.find(key);
  if (it != known_.end()) return it->second;
  absl::StatusOr<SockAddr> source = AskRouteSource(ifname, remote);
  if (source.ok()) known_.emplace(key, *source);
  return source;
}

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

absl::StatusOr<PendingConnect> PrepareConnect(
    absl::string_view ifname, const SockAddr& remote, const SockAddr* local,
    absl::Duration timeout, bool bind_first, RouteSources* routes) {
  // Non-blocking from the start; FinishConnects makes it blocking again.
  auto fd = DeviceSocket(ifname, remote.family(), SOCK_STREAM, SOCK_NONBLOCK);
  if (!fd.ok()) return fd.status();
  const int s = fd->get_unowned();
  SockAddr bind_to;
  if (local != nullptr && local->len > 0) {
    if (local->family() != remote.family()) {
      return absl::InvalidArgumentError(
          "local and remote addresses are of different families");
    }
    bind_to = *local;
  } else if (bind_first) {
    // The caller needs the local port now, before the SYN goes out.
    auto wildcard = ParseSockAddr("", 0, remote.family());
    if (!wildcard.ok()) return wildcard.status();
    bind_to = *wildcard;
  }
  if (bind_first && IsWildcard(bind_to)) {
    // ... and the local address: connect(2) would pick it only with the SYN,
    // too late for a 5-tuple rule. Ask the routing table now, as connect
    // would (same device, same remote), and bind to what it answers.
    RouteSources once;
    auto source = (routes != nullptr ? routes : &once)->Source(ifname, remote);
    if (!source.ok()) return source.status();
    SetPort(&*source, AddressPort(bind_to));
    bind_to = *source;
  }
  if (bind_to.len > 0) {
    if (const int err = BindForConnect(s, bind_to); err != 0) {
      return ErrnoStatus(err, absl::StrCat("bind ", AddressIp(bind_to),
                                           " port ", AddressPort(bind_to)));
    }
  }
  PendingConnect p;
  if (bind_first) {
    absl::StatusOr<SockAddr> bound = LocalAddress(s);
    if (!bound.ok()) return bound.status();
    p.local = *bound;
  }
  p.remote = remote;
  p.timeout = timeout;
  p.fd = *std::move(fd);
  return p;
}

absl::Status Dial(PendingConnect* p) {
  p->target =
      absl::StrCat(AddressIp(p->remote), " port ", AddressPort(p->remote));
  p->deadline = absl::Now() + p->timeout;
  if (::connect(p->fd.get_unowned(),
                reinterpret_cast<const sockaddr*>(&p->remote.storage),
                p->remote.len) == 0) {
    p->connected = true;
  } else if (errno != EINPROGRESS) {
    return ErrnoStatus(errno, absl::StrCat("connect ", p->target));
  }
  return absl::OkStatus();
}

namespace {

// A socket's file status flags as socket(2) makes them, without
// SOCK_NONBLOCK: what F_GETFL would say of a blocking one.
constexpr int kBlockingSocketFlags = O_RDWR;

// The outcome of a connect poll(2) said is done (`revents`). Writable with
// no error or hang-up is connected (no SO_ERROR to read: one syscall per
// connect less); otherwise SO_ERROR says whether it failed.
absl::Status ConnectOutcome(PendingConnect& p, short revents) {
  if ((revents & (POLLERR | POLLHUP)) != 0) {
    int err = 0;
    socklen_t len = sizeof(err);
    ::getsockopt(p.fd.get_unowned(), SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0) return ErrnoStatus(err, absl::StrCat("connect ", p.target));
  }
  ::fcntl(p.fd.get_unowned(), F_SETFL, kBlockingSocketFlags);
  return absl::OkStatus();
}

}  // namespace

std::vector<absl::Status> FinishConnects(absl::Span<PendingConnect> pending) {
  std::vector<absl::Status> out(pending.size(), absl::OkStatus());
  std::vector<size_t> waiting;
  for (size_t i = 0; i < pending.size(); ++i) {
    if (pending[i].connected) {
      ::fcntl(pending[i].fd.get_unowned(), F_SETFL, kBlockingSocketFlags);
    } else {
      waiting.push_back(i);
    }
  }
  std::vector<struct pollfd> pfds;
  while (!waiting.empty()) {
    // Expire what is past its deadline; wait for the nearest of the rest.
    const absl::Time now = absl::Now();
    absl::Time nearest = absl::InfiniteFuture();
    std::vector<size_t> still;
    for (size_t i : waiting) {
      if (pending[i].deadline <= now) {
        out[i] = absl::DeadlineExceededError(
            absl::StrCat("connect ", pending[i].target, ": no answer within ",
                         absl::FormatDuration(pending[i].timeout)));
        continue;
      }
      nearest = std::min(nearest, pending[i].deadline);
      still.push_back(i);
    }
    waiting.swap(still);
    if (waiting.empty()) break;
    pfds.clear();
    for (size_t i : waiting) {
      pfds.push_back({pending[i].fd.get_unowned(), POLLOUT, 0});
    }
    const int64_t ms = std::max<int64_t>(
        1, absl::ToInt64Milliseconds(nearest - absl::Now()) + 1);
    const int n = ::poll(pfds.data(), pfds.size(), static_cast<int>(ms));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const absl::Status failed = ErrnoStatus(errno, "poll");
      for (size_t i : waiting) out[i] = failed;
      break;
    }
    still.clear();
    for (size_t k = 0; k < waiting.size(); ++k) {
      if (pfds[k].revents == 0) {
        still.push_back(waiting[k]);
        continue;
      }
      out[waiting[k]] = ConnectOutcome(pending[waiting[k]], pfds[k].revents);
    }
    waiting.swap(still);
  }
  return out;
}

}  // namespace devmem

namespace devmem {

absl::Status CheckTcpSocket(int fd) {
  int domain = 0;
  int type = 0;
  int protocol = 0;
  socklen_t len = sizeof(int);
  const bool ok = ::getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) == 0 &&
                  (len = sizeof(int),
                   ::getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) == 0) &&
                  (len = sizeof(int), ::getsockopt(fd, SOL_SOCKET, SO_PROTOCOL,
                                                   &protocol, &len) == 0);
  if (ok && (domain == AF_INET || domain == AF_INET6) && type == SOCK_STREAM &&
      protocol == IPPROTO_TCP) {
    return absl::OkStatus();
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "the deposited fd is ", DescribeFd(fd),
      ", not a TCP socket; deposit a TCP/IPv4 or TCP/IPv6 socket that is "
      "bound and listening, or connected"));
}

absl::Status BindToDevice(int fd, absl::string_view ifname) {
  char current[IFNAMSIZ] = {};
  socklen_t len = sizeof(current);
  if (::getsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, current, &len) == 0 &&
      current[0] != '\0') {
    if (ifname == current) return absl::OkStatus();
    return absl::FailedPreconditionError(absl::StrCat(
        "the socket is bound to device ", current, " but the binding is on ",
        ifname, "; use a socket not bound to another device"));
  }
  const std::string name(ifname);
  if (::setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, name.c_str(),
                   static_cast<socklen_t>(name.size())) != 0) {
    return ErrnoStatus(errno, absl::StrCat("SO_BINDTODEVICE ", name));
  }
  return absl::OkStatus();
}

namespace {

// ip and port of a socket address; v4-mapped v6 becomes v4.
void AddrParts(const SockAddr& a, int* family, std::string* ip,
               uint16_t* port) {
  *family = a.family();
  *port = static_cast<uint16_t>(AddressPort(a));
  if (a.family() == AF_INET6) {
    const auto* v6 = reinterpret_cast<const sockaddr_in6*>(&a.storage);
    if (IN6_IS_ADDR_V4MAPPED(&v6->sin6_addr)) {
      char buf[INET_ADDRSTRLEN] = {};
      ::inet_ntop(AF_INET, &v6->sin6_addr.s6_addr[12], buf, sizeof(buf));
      *family = AF_INET;
      *ip = buf;
      return;
    }
  }
  *ip = IsWildcard(a) ? "" : AddressIp(a);
}

}  // namespace

absl::StatusOr<FlowTuple> ListenerFlowTuple(const SockAddr& local) {
  FlowTuple t;
  AddrParts(local, &t.family, &t.dst_ip, &t.dst_port);
  if (t.dst_port == 0) {
    return absl::InvalidArgumentError(
        "the socket has no local port; bind (and listen) or connect it "
        "before steering");
  }
  return t;
}

absl::StatusOr<FlowTuple> SocketFlowTuple(int fd) {
  auto local = LocalAddress(fd);
  if (!local.ok()) return local.status();
  absl::StatusOr<FlowTuple> listener = ListenerFlowTuple(*local);
  if (!listener.ok()) return listener.status();
  FlowTuple t = *std::move(listener);
  auto peer = PeerAddress(fd);
  if (peer.ok()) {
    int family = 0;
    AddrParts(*peer, &family, &t.src_ip, &t.src_port);
    if (family != t.family) {
      return absl::InvalidArgumentError(
          "local and peer addresses are of different families");
    }
  } else if (StatusErrno(peer.status()) != ENOTCONN) {
    return peer.status();
  }
  return t;
}

}  // namespace devmem
