#include "daemon/peer_cred.h"

#include <sys/socket.h>

#include <cerrno>

#include "absl/strings/str_cat.h"
#include "kernel/errno_status.h"

namespace devmem {

std::string PeerCredToString(const PeerCred& cred) {
  return absl::StrCat("uid ", cred.uid, " gid ", cred.gid, " pid ", cred.pid);
}

absl::StatusOr<PeerCred> GetPeerCred(int fd) {
  struct ucred uc;
  socklen_t len = sizeof(uc);
  if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &uc, &len) != 0) {
    return ErrnoStatus(errno, "getsockopt(SO_PEERCRED)");
  }
  return PeerCred{uc.pid, uc.uid, uc.gid};
}

AccessPolicy::AccessPolicy(const std::vector<uint32_t>& uids,
                           const std::vector<uint32_t>& gids,
                           std::string config_hint)
    : uids_(uids.begin(), uids.end()),
      gids_(gids.begin(), gids.end()),
      config_hint_(std::move(config_hint)) {}

absl::Status AccessPolicy::Check(const PeerCred& cred) const {
  if (uids_.contains(cred.uid) || gids_.contains(cred.gid)) {
    return absl::OkStatus();
  }
  return absl::PermissionDeniedError(absl::StrCat(
      "peer ", PeerCredToString(cred),
      " is not allowed to use devmemd; add its uid to allow_uids or its gid "
      "to allow_gids in ",
      config_hint_));
}

}  // namespace devmem
