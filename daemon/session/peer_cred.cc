#include "daemon/session/peer_cred.h"

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "daemon/session/unit_identity.h"
#include "kernel/errno_status.h"

#ifndef SO_PEERPIDFD
#define SO_PEERPIDFD 77  // include/uapi/asm-generic/socket.h, Linux 6.5
#endif

namespace devmem {

std::string PeerCredToString(const PeerCred& cred) {
  std::string out =
      absl::StrCat("uid ", cred.uid, " gid ", cred.gid, " pid ", cred.pid);
  if (!cred.unit.empty()) absl::StrAppend(&out, " unit ", cred.unit);
  if (!cred.user_unit.empty()) {
    absl::StrAppend(&out, " user unit ", cred.user_unit);
  }
  if (!cred.slice.empty()) absl::StrAppend(&out, " slice ", cred.slice);
  return out;
}

absl::StatusOr<PeerCred> GetPeerCred(int fd, const AccessPolicy* policy) {
  struct ucred uc;
  socklen_t len = sizeof(uc);
  if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &uc, &len) != 0) {
    return ErrnoStatus(errno, "getsockopt(SO_PEERCRED)");
  }
  PeerCred cred{uc.pid, uc.uid, uc.gid};
  if (policy != nullptr && policy->AllowsIds(uc.uid, uc.gid)) return cred;
  // The pidfd pins the peer while its cgroup is read (see unit_identity.h).
  int pidfd = -1;
  len = sizeof(pidfd);
  if (::getsockopt(fd, SOL_SOCKET, SO_PEERPIDFD, &pidfd, &len) != 0) {
    pidfd = -1;  // ENOPROTOOPT before 6.5: the pid alone
  }
  UnitIdentity id = LookupUnitIdentity(uc.pid, pidfd);
  if (pidfd >= 0) ::close(pidfd);
  cred.unit = std::move(id.unit);
  cred.user_unit = std::move(id.user_unit);
  cred.slice = std::move(id.slice);
  cred.unit_error = std::move(id.error);
  return cred;
}

AccessPolicy::AccessPolicy(const std::vector<uint32_t>& uids,
                           const std::vector<uint32_t>& gids,
                           std::string config_hint,
                           const std::vector<std::string>& units,
                           const std::vector<std::string>& slices)
    : uids_(uids.begin(), uids.end()),
      gids_(gids.begin(), gids.end()),
      units_(units.begin(), units.end()),
      slices_(slices.begin(), slices.end()),
      config_hint_(std::move(config_hint)) {}

bool AccessPolicy::AllowsIds(uid_t uid, gid_t gid) const {
  return uids_.contains(uid) || gids_.contains(gid);
}

absl::Status AccessPolicy::Check(const PeerCred& cred) const {
  if (AllowsIds(cred.uid, cred.gid)) return absl::OkStatus();
  if (!cred.unit.empty() && units_.contains(cred.unit)) {
    return absl::OkStatus();
  }
  if (!slices_.empty()) {
    for (const std::string& s : SliceAndParents(cred.slice)) {
      if (slices_.contains(s)) return absl::OkStatus();
    }
  }
  std::string unknown;
  if ((!units_.empty() || !slices_.empty()) && !cred.unit_error.empty()) {
    unknown = absl::StrCat(" (", cred.unit_error, ")");
  }
  std::vector<std::string> ways = {"its uid to allow_uids",
                                   "its gid to allow_gids"};
  if (!cred.unit.empty()) ways.push_back("its unit to allow_units");
  if (!SliceAndParents(cred.slice).empty()) {
    ways.push_back("its slice (or a slice above it) to allow_slices");
  }
  const std::string last = ways.back();
  ways.pop_back();
  return absl::PermissionDeniedError(absl::StrCat(
      "peer ", PeerCredToString(cred), unknown,
      " is not allowed to use devmemd; add ", absl::StrJoin(ways, ", "), " or ",
      last, " in ", config_hint_));
}

}  // namespace devmem
