#include "daemon/ops/bus_caller.h"

#include <sys/types.h>

#include <cstring>

#include "absl/strings/str_cat.h"

namespace devmem {
namespace {

// Owns one reference of an sd-bus credentials object.
struct CredsRef {
  sd_bus_creds* c = nullptr;
  ~CredsRef() { sd_bus_creds_unref(c); }
};

}  // namespace

absl::StatusOr<PeerCred> BusCallerCheck::Check(sd_bus_message* m) {
  const char* sender = sd_bus_message_get_sender(m);
  uint64_t cookie = 0;
  (void)sd_bus_message_get_cookie(m, &cookie);
  if (cache_.has_value() && sender != nullptr && cache_sender_ == sender &&
      cache_cookie_ == cookie) {
    return *cache_;
  }
  // The bus daemon vouches for the uid and pid (it read SO_PEERCRED when
  // the caller connected); gid, unit and slice are read from /proc/<pid>
  // ("augmented"), like sd-login does for the sockets.
  const uint64_t mask = SD_BUS_CREDS_UID | SD_BUS_CREDS_EUID |
                        SD_BUS_CREDS_EGID | SD_BUS_CREDS_PID |
                        SD_BUS_CREDS_UNIT | SD_BUS_CREDS_USER_UNIT |
                        SD_BUS_CREDS_SLICE;
  CredsRef creds;
  int r = sd_bus_query_sender_creds(m, mask | SD_BUS_CREDS_AUGMENT, &creds.c);
  if (r < 0) {
    // /proc/<pid> unreadable (hidepid, or the caller is gone): what the bus
    // daemon itself says.
    r = sd_bus_query_sender_creds(m, mask, &creds.c);
  }
  absl::StatusOr<PeerCred> result;
  PeerCred peer;
  uid_t uid = 0;
  if (r < 0 || (sd_bus_creds_get_uid(creds.c, &uid) < 0 &&
                sd_bus_creds_get_euid(creds.c, &uid) < 0)) {
    result = absl::PermissionDeniedError(absl::StrCat(
        "cannot identify the caller ", sender != nullptr ? sender : "",
        r < 0 ? absl::StrCat(": ", std::strerror(-r)) : ""));
  } else {
    peer.uid = uid;
    gid_t gid = static_cast<gid_t>(-1);
    (void)sd_bus_creds_get_egid(creds.c, &gid);
    peer.gid = gid;
    pid_t pid = 0;
    (void)sd_bus_creds_get_pid(creds.c, &pid);
    peer.pid = pid;
    const char* s = nullptr;
    if (sd_bus_creds_get_unit(creds.c, &s) >= 0 && s != nullptr) peer.unit = s;
    s = nullptr;
    if (sd_bus_creds_get_user_unit(creds.c, &s) >= 0 && s != nullptr) {
      peer.user_unit = s;
    }
    s = nullptr;
    if (sd_bus_creds_get_slice(creds.c, &s) >= 0 && s != nullptr) {
      peer.slice = s;
    }
    if (peer.slice.empty()) {
      peer.unit_error = absl::StrCat(
          "its unit and slice are unknown: /proc/", pid,
          " cannot be read (with allow_units/allow_slices, devmemd must see "
          "its peers in /proc)");
    }
    absl::Status allowed = policy_->Check(peer);
    if (allowed.ok()) {
      result = peer;
    } else {
      result = allowed;
    }
  }
  cache_sender_ = sender != nullptr ? sender : "";
  cache_cookie_ = cookie;
  cache_ = result;
  return result;
}

}  // namespace devmem
