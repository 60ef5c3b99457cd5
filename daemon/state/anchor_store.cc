#include "daemon/state/anchor_store.h"

#include <sys/socket.h>
#include <systemd/sd-daemon.h>

#include <cstdlib>
#include <cstring>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "kernel/errno_status.h"

namespace devmem {
namespace {
constexpr absl::string_view kPrefix = "devmemd-binding-";
}  // namespace

std::string AnchorFdName(uint64_t handle) {
  return absl::StrCat(kPrefix, handle);
}

uint64_t HandleOfAnchorFdName(const std::string& name) {
  absl::string_view rest = name;
  if (!absl::ConsumePrefix(&rest, kPrefix)) return 0;
  uint64_t handle = 0;
  if (!absl::SimpleAtoi(rest, &handle)) return 0;
  return handle;
}

std::unique_ptr<SystemdFdStore> SystemdFdStore::FromEnvironment() {
  const char* sock = std::getenv("NOTIFY_SOCKET");
  if (sock == nullptr || *sock == '\0') return nullptr;
  return std::make_unique<SystemdFdStore>();
}

absl::Status SystemdFdStore::Keep(uint64_t handle, int fd) {
  const std::string msg =
      absl::StrCat("FDSTORE=1\nFDNAME=", AnchorFdName(handle));
  int r = sd_pid_notify_with_fds(0, 0, msg.c_str(), &fd, 1);
  if (r < 0) return ErrnoStatus(-r, "sd_pid_notify_with_fds(FDSTORE=1)");
  if (r == 0) {
    return absl::FailedPreconditionError("NOTIFY_SOCKET is not set");
  }
  return absl::OkStatus();
}

absl::Status SystemdFdStore::Forget(uint64_t handle) {
  const std::string msg =
      absl::StrCat("FDSTOREREMOVE=1\nFDNAME=", AnchorFdName(handle));
  int r = sd_pid_notify(0, 0, msg.c_str());
  if (r < 0) return ErrnoStatus(-r, "sd_pid_notify(FDSTOREREMOVE=1)");
  return absl::OkStatus();
}

SystemdFds TakeSystemdFds(std::vector<std::string>* report) {
  SystemdFds out;
  char** names = nullptr;
  // unset_environment = 1: children must not take these for their own.
  int n = sd_listen_fds_with_names(1, &names);
  if (n <= 0) {
    if (report != nullptr && n < 0) {
      report->push_back(absl::StrCat("systemd fds: cannot read $LISTEN_FDS: ",
                                     std::strerror(-n)));
    }
    return out;
  }
  std::vector<std::string> unknown;
  for (int i = 0; i < n; ++i) {
    const std::string name = names != nullptr && names[i] != nullptr
                                 ? std::string(names[i])
                                 : std::string();
    UniqueFd fd(SD_LISTEN_FDS_START + i);
    const uint64_t handle = HandleOfAnchorFdName(name);
    if (handle != 0) {
      out.anchors[handle] = std::move(fd);
    } else if (name == "devmemd-grpc") {
      out.grpc = std::move(fd);
    } else if (name == "devmemd-session") {
      out.session = std::move(fd);
    } else if (name == "devmemd") {
      // One devmemd.socket with both listeners: stream is gRPC, seqpacket
      // is the session socket.
      int type = 0;
      socklen_t len = sizeof(type);
      (void)::getsockopt(fd.get_unowned(), SOL_SOCKET, SO_TYPE, &type, &len);
      if (type == SOCK_STREAM) {
        out.grpc = std::move(fd);
      } else if (type == SOCK_SEQPACKET) {
        out.session = std::move(fd);
      } else {
        unknown.push_back(absl::StrCat(name, " (socket type ", type, ")"));
      }
    } else {
      unknown.push_back(name.empty() ? "(unnamed)" : name);
    }
  }
  if (names != nullptr) {
    for (int i = 0; i < n; ++i) std::free(names[i]);
    std::free(names);
  }
  if (report != nullptr) {
    report->push_back(absl::StrCat(
        "systemd fds: ", n, " passed: ", out.anchors.size(),
        " binding anchor(s) handed back", out.grpc ? ", the gRPC socket" : "",
        out.session ? ", the session socket" : "",
        unknown.empty() ? ""
                        : absl::StrCat("; closed unknown: ",
                                       absl::StrJoin(unknown, ", "))));
  }
  return out;
}

}  // namespace devmem
