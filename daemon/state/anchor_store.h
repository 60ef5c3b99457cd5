#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "kernel/unique_fd.h"

namespace devmem {

// Where a copy of each binding's anchor fd (the netlink socket that keeps the
// kernel binding alive) survives the daemon. Besides the copy each workload
// holds, the daemon keeps one in systemd's fd store when it runs under
// systemd, so a binding outlives a restart even if its workload is busy.
class AnchorStore {
 public:
  virtual ~AnchorStore() = default;
  // Keeps a copy of `fd` (borrowed) as the anchor of binding `handle`.
  virtual absl::Status Keep(uint64_t handle, int fd) = 0;
  // Drops the stored copy of binding `handle`'s anchor.
  virtual absl::Status Forget(uint64_t handle) = 0;
};

// The name a binding's anchor has in the fd store.
std::string AnchorFdName(uint64_t handle);
// The handle in `name`, or 0 if it is not an anchor name.
uint64_t HandleOfAnchorFdName(const std::string& name);

// systemd's fd store (sd_pid_notify_with_fds: FDSTORE=1 / FDSTOREREMOVE=1 with
// FDNAME=devmemd-binding-<handle>). The unit needs FileDescriptorStoreMax=.
class SystemdFdStore final : public AnchorStore {
 public:
  // Null when $NOTIFY_SOCKET is unset (not started by systemd).
  static std::unique_ptr<SystemdFdStore> FromEnvironment();
  absl::Status Keep(uint64_t handle, int fd) override;
  absl::Status Forget(uint64_t handle) override;
};

// Everything systemd passed ($LISTEN_FDS, $LISTEN_FDNAMES): binding anchors
// from the fd store, and the sockets of socket activation: named
// "devmemd-grpc" / "devmemd-session", or both named "devmemd" (one
// devmemd.socket) and told apart by type (stream: gRPC, seqpacket: session).
// Other fds are closed and reported.
struct SystemdFds {
  absl::flat_hash_map<uint64_t, UniqueFd> anchors;
  UniqueFd grpc;
  UniqueFd session;
};
SystemdFds TakeSystemdFds(std::vector<std::string>* report);

}  // namespace devmem
