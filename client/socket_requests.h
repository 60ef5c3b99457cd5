#pragma once
// What libdevmem's socket calls ask devmemd for: the options a workload
// fills in, and the devmem.v1 requests they become, for one socket (Listen,
// Connect) or many (OpenSockets). Pure functions, no I/O.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "absl/types/span.h"
#include "client/host_port.h"
#include "proto/devmem/v1/devmem.pb.h"

namespace devmem {

struct ListenOptions {
  std::string nic;    // required: the socket gets SO_BINDTODEVICE to it
  std::string ip;     // numeric; empty = wildcard of `family`
  uint16_t port = 0;  // 0 = the kernel picks (see SocketHandle::info.local)
  devmem::v1::AddressFamily family = devmem::v1::ADDRESS_FAMILY_UNSPECIFIED;
  uint32_t backlog = 0;  // 0 = daemon default
  // A binding of this session (Binding::handle): the daemon installs an
  // ntuple rule steering the listener's flows to it before handing the
  // socket over. 0 = no steering. `nic` may then be empty (the binding's).
  uint64_t binding = 0;
};

struct ConnectOptions {
  std::string nic;  // required
  HostPort remote;  // required, numeric
  HostPort local;   // optional local bind; empty ip and port 0 = none
  absl::Duration timeout = absl::ZeroDuration();  // 0 = daemon default
  uint64_t binding = 0;                           // as in ListenOptions
};

// One socket of Session::OpenSockets: set exactly one of the two.
struct SocketSpec {
  std::optional<ListenOptions> listen;
  std::optional<ConnectOptions> connect;
};

devmem::v1::ListenRequest ListenRequestFor(const ListenOptions& options,
                                           const std::string& session_token);
devmem::v1::ConnectRequest ConnectRequestFor(const ConnectOptions& options,
                                             const std::string& session_token);

// How long the daemon may spend inside a call that makes these sockets: a
// Connect may take its whole connect timeout (the daemon's default, 5 s,
// when it asks for 0); an OpenSockets call's connects are dialled together,
// so the longest one.
absl::Duration ConnectTime(const devmem::v1::ConnectRequest& request);
absl::Duration ConnectTime(const devmem::v1::OpenSocketsRequest& request);

// An OpenSockets call for `specs`, one item each, in order (their
// session_token left empty: the call's applies). A spec with neither or
// both of listen/connect becomes an empty item, which the daemon answers
// with that item's INVALID_ARGUMENT.
devmem::v1::OpenSocketsRequest OpenSocketsRequestFor(
    absl::Span<const SocketSpec> specs, const std::string& session_token);

// How Session::OpenSockets splits `n` sockets into calls, in order, with
// `in_flight` calls made at once. A few sockets go in one call. More are
// split so that the calls in flight hold at most `ticket_limit` tickets
// together; the first calls are smaller (doubling up to that share), so
// the first sockets are in the workload's hands while devmemd still makes
// the rest.
std::vector<size_t> OpenSocketsCalls(size_t n, size_t ticket_limit,
                                     size_t in_flight);

}  // namespace devmem
