#pragma once

#include <sys/socket.h>

#include <cstdint>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "kernel/nic_info.h"
#include "kernel/unique_fd.h"

namespace devmem {

// A numeric socket address. No name resolution happens in the daemon.
struct SockAddr {
  struct sockaddr_storage storage = {};
  socklen_t len = 0;
  int family() const { return storage.ss_family; }
};

// Parses a numeric IPv4/IPv6 address and port. `family` is AF_UNSPEC, AF_INET
// or AF_INET6; an empty ip means the family's wildcard (IPv6 for AF_UNSPEC).
// INVALID_ARGUMENT says which part is wrong.
absl::StatusOr<SockAddr> ParseSockAddr(absl::string_view ip, uint32_t port,
                                       int family);

// "ip" and port of a bound socket (getsockname) or its peer (getpeername).
absl::StatusOr<SockAddr> LocalAddress(int fd);
absl::StatusOr<SockAddr> PeerAddress(int fd);
std::string AddressIp(const SockAddr& addr);
uint32_t AddressPort(const SockAddr& addr);

// Creates a TCP socket bound to `ifname` (SO_BINDTODEVICE) and to `local`, and
// listening with `backlog`. Blocking, close-on-exec. Errors carry the errno and
// what failed (ALREADY_EXISTS for EADDRINUSE).
absl::StatusOr<UniqueFd> CreateBoundListener(absl::string_view ifname,
                                             const SockAddr& local,
                                             int backlog);

// The source address the kernel picks for flows to `remote` out of a
// device: a UDP connect(2) probe does the same route lookup as TCP's and
// sends nothing. Asked once per (device, remote ip) and remembered for the
// life of the object, e.g. one OpenSockets call, whose connects dial the
// same few peers. Errors are not remembered. Not thread-safe.
class RouteSources {
 public:
  absl::StatusOr<SockAddr> Source(absl::string_view ifname,
                                  const SockAddr& remote);
  size_t remembered() const { return known_.size(); }

 private:
  absl::flat_hash_map<std::string, SockAddr> known_;  // "dev|ip" -> source
};

// A TCP connect in steps, so that a caller can steer a connect before its
// SYN and have many in flight at once (OpenSockets). PrepareConnect makes
// the socket bound to `ifname`, and binds it to `local` if that has an
// address; with `bind_first` it is bound in any case (else to the route's
// source address, asked of `routes` if not null, and a port the kernel
// picks) and `local` in the answer is the address it got. Dial sends the
// SYN (non-blocking connect(2)) and starts the timeout. FinishConnects waits
// for a whole set together.
struct PendingConnect {
  UniqueFd fd;
  std::string target;  // "IP port N", for messages
  SockAddr remote;     // what it dials
  SockAddr local;      // its address if bound before the SYN (else len 0)
  absl::Duration timeout;
  absl::Time deadline;
  bool connected = false;  // connect(2) completed at once
};
absl::StatusOr<PendingConnect> PrepareConnect(
    absl::string_view ifname, const SockAddr& remote, const SockAddr* local,
    absl::Duration timeout, bool bind_first, RouteSources* routes = nullptr);
absl::Status Dial(PendingConnect* p);
// Polls every pending connect together until each is connected, refused or
// past its own deadline. One status per item, in order: OK (its fd is
// connected and blocking again), DEADLINE_EXCEEDED, or the connect errno
// (UNAVAILABLE for refused/unreachable).
std::vector<absl::Status> FinishConnects(absl::Span<PendingConnect> pending);

// INVALID_ARGUMENT unless `fd` is a TCP socket over IPv4 or IPv6; the
// message names what the fd is instead.
absl::Status CheckTcpSocket(int fd);

// SO_BINDTODEVICE `fd` to `ifname`. FAILED_PRECONDITION if it is already
// bound to another device.
absl::Status BindToDevice(int fd, absl::string_view ifname);

// The flow of a TCP socket as its receiver sees it: dst = the local address
// (wildcard ip left empty), src = the peer if connected, else empty (a
// listener: 3-tuple). IPv4-mapped IPv6 addresses become IPv4.
absl::StatusOr<FlowTuple> SocketFlowTuple(int fd);
// The same for a listening socket whose local address is known: a listener
// has no peer, so no syscall is needed.
absl::StatusOr<FlowTuple> ListenerFlowTuple(const SockAddr& local);

}  // namespace devmem
