#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace devmem {

// Credentials of the process on the other end of a Unix socket (SO_PEERCRED),
// as the kernel recorded them at connect() time.
struct PeerCred {
  pid_t pid = 0;
  uid_t uid = 0;
  gid_t gid = 0;
};

std::string PeerCredToString(const PeerCred& cred);

// SO_PEERCRED on a connected AF_UNIX socket.
absl::StatusOr<PeerCred> GetPeerCred(int fd);

// uid/gid allow-list. A peer is allowed if its uid is listed or its primary gid
// is listed. Nothing is implicit: root too must be listed. Immutable;
// thread-safe.
class AccessPolicy {
 public:
  AccessPolicy(const std::vector<uint32_t>& uids,
               const std::vector<uint32_t>& gids, std::string config_hint);

  // OK or PERMISSION_DENIED naming the peer and how to allow it.
  absl::Status Check(const PeerCred& cred) const;

 private:
  absl::flat_hash_set<uint32_t> uids_;
  absl::flat_hash_set<uint32_t> gids_;
  std::string config_hint_;
};

}  // namespace devmem
