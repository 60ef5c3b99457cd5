#include "daemon/session/unit_identity.h"

#include <sys/syscall.h>
#include <systemd/sd-login.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace devmem {
namespace {

// One sd_pid_get_* answer; "" and the negative errno on failure.
std::string Ask(int (*fn)(pid_t, char**), pid_t pid, int* err) {
  char* out = nullptr;
  const int r = fn(pid, &out);
  *err = r < 0 ? -r : 0;
  std::string s = (r >= 0 && out != nullptr) ? out : "";
  std::free(out);
  return s;
}

// systemd's unit name characters (unit-name.c VALID_CHARS), '@' aside.
bool ValidUnitChars(absl::string_view s) {
  for (char c : s) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                    (c >= '0' && c <= '9') || c == ':' || c == '-' ||
                    c == '_' || c == '.' || c == '\\';
    if (!ok) return false;
  }
  return true;
}

// systemd's limit (UNIT_NAME_MAX, with the NUL).
constexpr size_t kUnitNameMax = 255;

}  // namespace

UnitIdentity LookupUnitIdentity(pid_t pid, int pidfd) {
  UnitIdentity id;
  if (pid <= 0) {
    id.error = "the peer's pid is unknown";
    return id;
  }
  int unit_err = 0, user_err = 0, slice_err = 0;
  id.unit = Ask(sd_pid_get_unit, pid, &unit_err);
  id.user_unit = Ask(sd_pid_get_user_unit, pid, &user_err);
  id.slice = Ask(sd_pid_get_slice, pid, &slice_err);
  // A pid is only reused once its process is reaped; while the pidfd's
  // process exists (zombies included) the pid still names it. Signal 0 only
  // checks: ESRCH is "gone"; EPERM (a peer of another uid, devmemd without
  // CAP_KILL) is alive.
  if (pidfd >= 0 &&
      ::syscall(SYS_pidfd_send_signal, pidfd, 0, nullptr, 0) != 0 &&
      errno == ESRCH) {
    id = UnitIdentity();
    id.error = absl::StrCat("pid ", pid,
                            " exited before its cgroup could be read; its "
                            "unit and slice are unknown");
    return id;
  }
  // sd-login answers ENODATA for "not in a unit" (the root cgroup); that is
  // an answer, not an error.
  if (slice_err != 0 && slice_err != ENODATA) {
    id.error = absl::StrCat(
        "cannot read /proc/", pid, "/cgroup: ", std::strerror(slice_err),
        slice_err == ESRCH || slice_err == ENOENT || slice_err == EACCES
            ? " (with allow_units/allow_slices, devmemd must see its "
              "peers in /proc: no hidepid=, ProtectProc=default)"
            : "");
  }
  return id;
}

std::vector<std::string> SliceAndParents(absl::string_view slice) {
  std::vector<std::string> out;
  absl::string_view prefix = slice;
  if (!absl::ConsumeSuffix(&prefix, ".slice") || prefix.empty() ||
      prefix == "-") {
    return out;
  }
  for (;;) {
    out.push_back(absl::StrCat(prefix, ".slice"));
    const size_t dash = prefix.rfind('-');
    if (dash == absl::string_view::npos || dash == 0) return out;
    prefix = prefix.substr(0, dash);
  }
}

std::string UnitRuleProblem(absl::string_view name) {
  if (name.empty()) return "is empty";
  if (name.size() > kUnitNameMax) {
    return absl::StrCat("is longer than a unit name can be (", kUnitNameMax,
                        ")");
  }
  const size_t dot = name.rfind('.');
  if (dot == absl::string_view::npos || dot == 0) {
    return "is not a unit name (e.g. \"train.service\", \"job-7.scope\")";
  }
  const absl::string_view type = name.substr(dot + 1);
  absl::string_view prefix = name.substr(0, dot);
  if (type == "slice") {
    return "is a slice; list it in allow_slices";
  }
  if (type != "service" && type != "scope" && type != "socket" &&
      type != "mount" && type != "swap") {
    return absl::StrCat(
        "is a .", type,
        " unit, which runs no processes of its own; name the .service or "
        ".scope its workload runs in");
  }
  const size_t at = prefix.find('@');
  if (at != absl::string_view::npos) {
    if (at == 0) return "is not a unit name (nothing before '@')";
    if (at + 1 == prefix.size()) {
      return absl::StrCat("is a template; name an instance, e.g. \"",
                          prefix.substr(0, at + 1), "1.", type, "\"");
    }
    if (prefix.find('@', at + 1) != absl::string_view::npos) {
      return "is not a unit name (more than one '@')";
    }
    if (!ValidUnitChars(prefix.substr(0, at)) ||
        !ValidUnitChars(name.substr(at + 1, dot - at - 1))) {
      return "is not a unit name (allowed: letters, digits, ':', '-', '_', "
             "'.', '\\', one '@')";
    }
    return "";
  }
  if (!ValidUnitChars(prefix)) {
    return "is not a unit name (allowed: letters, digits, ':', '-', '_', '.', "
           "'\\', one '@')";
  }
  return "";
}

std::string SliceRuleProblem(absl::string_view name) {
  if (name.empty()) return "is empty";
  if (name.size() > kUnitNameMax) {
    return absl::StrCat("is longer than a unit name can be (", kUnitNameMax,
                        ")");
  }
  absl::string_view prefix = name;
  if (!absl::ConsumeSuffix(&prefix, ".slice") || prefix.empty()) {
    return "is not a slice name (it must end in \".slice\", e.g. "
           "\"batch.slice\")";
  }
  if (prefix == "-") {
    return "is the root slice, which holds every process; use allow_uids or "
           "allow_gids to allow everyone";
  }
  if (!ValidUnitChars(prefix) || absl::StrContains(prefix, "--") ||
      absl::StartsWith(prefix, "-") || absl::EndsWith(prefix, "-")) {
    return "is not a slice name (letters, digits, ':', '_', '.', '\\', and "
           "'-' between parts, e.g. \"batch-gpu.slice\")";
  }
  return "";
}

}  // namespace devmem
