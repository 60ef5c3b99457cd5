#pragma once
// Who sent the D-Bus message being handled, checked against the AccessPolicy
// of the sockets: uid and pid as the bus daemon vouches for them (it read
// SO_PEERCRED when the caller connected), gid, unit and slice from
// /proc/<pid>. Private to AdminBus.
//
// Not thread-safe: one instance on the bus thread. It remembers the answer
// for the last message (sender and cookie), so that a GetAll asks the bus
// once, not once per property. The policy must outlive it.

#include <systemd/sd-bus.h>

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "daemon/session/peer_cred.h"

namespace devmem {

class BusCallerCheck {
 public:
  explicit BusCallerCheck(const AccessPolicy* policy) : policy_(policy) {}

  // The caller of `m`, or PERMISSION_DENIED naming why: the bus cannot say
  // who it is, or the policy refuses it.
  absl::StatusOr<PeerCred> Check(sd_bus_message* m);

 private:
  const AccessPolicy* policy_;
  std::string cache_sender_;
  uint64_t cache_cookie_ = 0;
  std::optional<absl::StatusOr<PeerCred>> cache_;
};

}  // namespace devmem
