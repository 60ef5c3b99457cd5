#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace devmem {

// Credentials of the process on the other end of a Unix socket (SO_PEERCRED),
// as the kernel recorded them at connect() time, and its systemd unit and
// slice as sd-login read them at accept time ("" if unknown; see
// unit_identity.h).
struct PeerCred {
  pid_t pid = 0;
  uid_t uid = 0;
  gid_t gid = 0;
  // Default-initialized so that PeerCred{pid, uid, gid} stays warning-free.
  std::string unit = "";
  std::string user_unit = "";  // for messages only
  std::string slice = "";
  std::string unit_error = "";  // why unit and slice are unknown ("" if known)
};

std::string PeerCredToString(const PeerCred& cred);

class AccessPolicy;

// SO_PEERCRED on a connected AF_UNIX socket, plus the peer's unit and slice
// (pinned by SO_PEERPIDFD where the kernel has it). With a `policy` that
// already allows the peer by its uid or gid, the unit and slice are not
// read: they could not change the answer, and reading them (sd-login reads
// the cgroup files of the peer and of pid 1) is most of a connection's cost.
absl::StatusOr<PeerCred> GetPeerCred(int fd,
                                     const AccessPolicy* policy = nullptr);

// Allow-list. A peer is allowed if its uid is listed, or its primary gid, or
// its system unit (allow_units), or its slice or a slice above it
// (allow_slices: "batch.slice" allows "batch-gpu.slice"). Nothing is
// implicit: root too must be listed. Immutable; thread-safe.
class AccessPolicy {
 public:
  AccessPolicy(const std::vector<uint32_t>& uids,
               const std::vector<uint32_t>& gids, std::string config_hint,
               const std::vector<std::string>& units = {},
               const std::vector<std::string>& slices = {});

  // OK or PERMISSION_DENIED naming the peer and how to allow it.
  absl::Status Check(const PeerCred& cred) const;
  // True if the uid or gid alone allows the peer.
  bool AllowsIds(uid_t uid, gid_t gid) const;

 private:
  absl::flat_hash_set<uint32_t> uids_;
  absl::flat_hash_set<uint32_t> gids_;
  absl::flat_hash_set<std::string> units_;
  absl::flat_hash_set<std::string> slices_;
  std::string config_hint_;
};

}  // namespace devmem
