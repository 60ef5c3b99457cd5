#include "client/socket_requests.h"

#include <algorithm>
#include <limits>

namespace devmem {

devmem::v1::ListenRequest ListenRequestFor(const ListenOptions& options,
                                           const std::string& session_token) {
  devmem::v1::ListenRequest request;
  request.set_session_token(session_token);
  request.set_nic(options.nic);
  request.mutable_local()->set_ip(options.ip);
  request.mutable_local()->set_port(options.port);
  request.set_family(options.family);
  request.set_backlog(options.backlog);
  request.set_binding(options.binding);
  return request;
}

devmem::v1::ConnectRequest ConnectRequestFor(const ConnectOptions& options,
                                             const std::string& session_token) {
  devmem::v1::ConnectRequest request;
  request.set_session_token(session_token);
  request.set_nic(options.nic);
  request.mutable_remote()->set_ip(options.remote.ip);
  request.mutable_remote()->set_port(options.remote.port);
  if (!options.local.ip.empty() || options.local.port != 0) {
    request.mutable_local()->set_ip(options.local.ip);
    request.mutable_local()->set_port(options.local.port);
  }
  const int64_t timeout_ms =
      std::clamp<int64_t>(absl::ToInt64Milliseconds(options.timeout), 0,
                          std::numeric_limits<uint32_t>::max());
  request.set_timeout_ms(static_cast<uint32_t>(timeout_ms));
  request.set_binding(options.binding);
  return request;
}

absl::Duration ConnectTime(const devmem::v1::ConnectRequest& request) {
  return request.timeout_ms() > 0 ? absl::Milliseconds(request.timeout_ms())
                                  : absl::Seconds(5);
}

absl::Duration ConnectTime(const devmem::v1::OpenSocketsRequest& request) {
  // The daemon dials a call's connects together: the slowest one counts.
  absl::Duration longest;
  for (const auto& item : request.sockets()) {
    if (item.has_connect()) {
      longest = std::max(longest, ConnectTime(item.connect()));
    }
  }
  return longest;
}

devmem::v1::OpenSocketsRequest OpenSocketsRequestFor(
    absl::Span<const SocketSpec> specs, const std::string& session_token) {
  devmem::v1::OpenSocketsRequest request;
  request.set_session_token(session_token);
  for (const SocketSpec& spec : specs) {
    devmem::v1::SocketRequest* item = request.add_sockets();
    // Neither or both: an empty item, which the daemon refuses on its own.
    if (spec.listen.has_value() == spec.connect.has_value()) continue;
    if (spec.listen) {
      *item->mutable_listen() = ListenRequestFor(*spec.listen, "");
    } else {
      *item->mutable_connect() = ConnectRequestFor(*spec.connect, "");
    }
  }
  return request;
}

std::vector<size_t> OpenSocketsCalls(size_t n, size_t ticket_limit,
                                     size_t in_flight) {
  // Below this many sockets one call is cheaper than any overlap.
  constexpr size_t kOneCall = 64;
  constexpr size_t kFirstCall = 16;
  std::vector<size_t> calls;
  if (n == 0) return calls;
  ticket_limit = std::max<size_t>(ticket_limit, 1);
  if (n <= std::min(kOneCall, ticket_limit)) return {n};
  const size_t share =
      std::max<size_t>(ticket_limit / std::max<size_t>(in_flight, 1), 1);
  size_t size = std::min(share, std::max(share / 8, kFirstCall));
  for (size_t left = n; left > 0;) {
    const size_t call = std::min(size, left);
    calls.push_back(call);
    left -= call;
    size = std::min(share, size * 2);
  }
  return calls;
}

}  // namespace devmem
