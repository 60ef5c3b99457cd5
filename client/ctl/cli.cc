// Shared pieces of devmemctl (cli.h).
#include "client/ctl/cli.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <iostream>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/reflection.h"
#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "client/host_port.h"
#include "client/libdevmem.h"
#include "client/pattern.h"
#include "kernel/errno_status.h"
#include "kernel/nic_control.h"
#include "kernel/unique_fd.h"
#include "proto/devmem/v1/devmem.pb.h"

ABSL_FLAG(std::string, runtime_dir, "/run/devmemd",
          "Directory holding devmemd's session.sock and grpc.sock.");
ABSL_FLAG(bool, json, false,
          "Machine output: the daemon's response as one JSON line (proto "
          "field names), plus a final JSON summary line for listen/connect; "
          "selftest prints one JSON object.");
ABSL_FLAG(std::string, nic, "",
          "The NIC (listen/connect), or NICs, comma-separated (nics).");
ABSL_FLAG(int32_t, dmabuf_fd, -1,
          "An inherited dma-buf fd (e.g. exported GPU memory) to bind "
          "instead of --bind_memfd_mb. -1 = none.");
ABSL_FLAG(bool, reconnect, true,
          "If devmemd restarts while this command runs, reconnect and resume "
          "the session (its bindings and steering rules survive).");

namespace devmem {
namespace ctl {

int UsageError(const std::string& command, const std::string& message) {
  absl::FPrintF(stderr, "devmemctl%s: %s\n",
                command.empty() ? "" : absl::StrCat(" ", command), message);
  absl::FPrintF(stderr, "run `devmemctl %s--help` for usage\n",
                command.empty() ? "" : absl::StrCat(command, " "));
  return kExitUsage;
}

// Prints "devmemctl CMD: WHAT: STATUS" and, when there is one, a hint on
// what to try next. Returns the runtime-failure exit code.
int Fail(const char* command, absl::string_view what,
         const absl::Status& status, absl::string_view hint) {
  absl::FPrintF(stderr, "devmemctl %s: %s: %s: %s\n", command, what,
                absl::StatusCodeToString(status.code()), status.message());
  if (!hint.empty()) absl::FPrintF(stderr, "  hint: %s\n", hint);
  return kExitFailure;
}

// Generic hints for the codes devmemd returns (docs/PROTOCOL.md, section 5).
std::string HintFor(const absl::Status& status) {
  const std::string dir = absl::GetFlag(FLAGS_runtime_dir);
  switch (status.code()) {
    case absl::StatusCode::kPermissionDenied:
      return "devmemd only serves the uids/gids in its config (allow_uids, "
             "allow_gids), and the sockets are group-owned by its "
             "socket_group: ask the admin to add yours";
    case absl::StatusCode::kUnavailable:
      return absl::StrCat(
          "start devmemd (or check it is healthy), or pass "
          "--runtime_dir if it does not use ",
          dir);
    case absl::StatusCode::kUnauthenticated:
      return "devmemd did not recognize the session (did it restart?); retry";
    case absl::StatusCode::kDeadlineExceeded:
      return "devmemd or the network is slow or wedged; retry, or check the "
             "daemon's logs";
    case absl::StatusCode::kResourceExhausted:
      return "too many open tickets or sessions; retry later";
    default:
      return "";
  }
}

absl::StatusOr<std::unique_ptr<Session>> OpenSession() {
  SessionOptions options;
  options.runtime_dir = absl::GetFlag(FLAGS_runtime_dir);
  // listen/connect hold leases for as long as they run: if devmemd restarts
  // meanwhile, resume the session and hand the binding anchors back.
  options.auto_reconnect = absl::GetFlag(FLAGS_reconnect);
  options.on_reconnect = [](const absl::Status& status, bool resumed) {
    if (!status.ok()) {
      absl::FPrintF(stderr,
                    "devmemctl: devmemd went away and did not come "
                    "back: %s\n",
                    status.ToString());
    } else if (resumed) {
      absl::FPrintF(stderr,
                    "devmemctl: devmemd restarted; session resumed, "
                    "bindings and steering kept\n");
    } else {
      absl::FPrintF(stderr,
                    "devmemctl: devmemd restarted and did not know "
                    "this session; leases are gone\n");
    }
  };
  return Session::Open(options);
}

int FailOpen(const char* command, const absl::Status& status) {
  std::string hint = HintFor(status);
  if (status.code() == absl::StatusCode::kNotFound) {
    hint = "start devmemd, or pass --runtime_dir=DIR if it runs elsewhere";
  }
  return Fail(command, "cannot open a devmemd session", status, hint);
}

std::string ToJson(const google::protobuf::Message& message) {
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = false;
  options.always_print_primitive_fields = true;
  options.preserve_proto_field_names = true;
  std::string out;
  auto status =
      google::protobuf::util::MessageToJsonString(message, &out, options);
  if (!status.ok()) return absl::StrCat("{\"error\":\"json conversion\"}");
  return out;
}

double Gbps(uint64_t bytes, double seconds) {
  return seconds > 0 ? static_cast<double>(bytes) * 8 / seconds / 1e9 : 0;
}

// Opens --output/--input style paths: "-" is stdout/stdin (borrowed, so it
// is dup'ed to keep every fd owned by a UniqueFd).
absl::StatusOr<UniqueFd> OpenPath(const std::string& path, bool for_write) {
  if (path == "-") {
    int fd =
        fcntl(for_write ? STDOUT_FILENO : STDIN_FILENO, F_DUPFD_CLOEXEC, 0);
    if (fd < 0) {
      return ErrnoStatus(errno, for_write ? "dup(stdout)" : "dup(stdin)");
    }
    return UniqueFd(fd);
  }
  int fd = for_write ? open(path.c_str(),
                            O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)
                     : open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoStatus(errno, absl::StrCat("open ", path));
  return UniqueFd(fd);
}

absl::Status WriteAll(int fd, const char* data, size_t size, const char* what) {
  while (size > 0) {
    ssize_t n = write(fd, data, size);
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus(errno, what);
    }
    data += n;
    size -= static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

absl::Status SendAll(int fd, const char* data, size_t size) {
  while (size > 0) {
    ssize_t n = send(fd, data, size, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus(errno, "send");
    }
    data += n;
    size -= static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

// One period of the test pattern, so senders and checkers can memcpy/memcmp.
const std::string& PatternPeriod() {
  static const std::string* period = [] {
    auto* s = new std::string(kPatternPeriod, '\0');
    FillPattern(0, absl::MakeSpan(*s));
    return s;
  }();
  return *period;
}

// -1 if data (at stream offset `offset`) matches the pattern, else the index
// of the first bad byte.
int64_t CheckPattern(uint64_t offset, absl::string_view data) {
  const std::string& period = PatternPeriod();
  size_t done = 0;
  while (done < data.size()) {
    const size_t phase = (offset + done) % kPatternPeriod;
    const size_t n = std::min(data.size() - done, kPatternPeriod - phase);
    if (std::memcmp(data.data() + done, period.data() + phase, n) != 0) {
      return static_cast<int64_t>(done) +
             FirstPatternMismatch(offset + done, data.substr(done, n));
    }
    done += n;
  }
  return -1;
}

std::string PeerName(const sockaddr_storage& addr) {
  char host[INET6_ADDRSTRLEN] = "?";
  uint16_t port = 0;
  if (addr.ss_family == AF_INET) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(&addr);
    inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
    port = ntohs(in->sin_port);
  } else if (addr.ss_family == AF_INET6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(&addr);
    inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
    port = ntohs(in6->sin6_port);
  }
  return FormatHostPort(host, port);
}

const char* SupportName(v1::Support support) {
  switch (support) {
    case v1::SUPPORT_SUPPORTED:
      return "supported";
    case v1::SUPPORT_UNSUPPORTED:
      return "unsupported";
    case v1::SUPPORT_UNKNOWN:
      return "unknown";
    default:
      return "not probed";
  }
}

// "name: unsupported (errno 95): reason". `reason` usually holds strerror
// (+ extack) with the number already, so the number is added only once.
std::string CapabilityLine(const v1::Capability& cap) {
  std::string line = absl::StrCat(cap.name(), ": ", SupportName(cap.support()));
  if (cap.errno_value() != 0 &&
      !absl::StrContains(cap.reason(),
                         absl::StrCat("errno ", cap.errno_value()))) {
    absl::StrAppend(&line, " (errno ", cap.errno_value(), ")");
  }
  if (!cap.reason().empty()) absl::StrAppend(&line, ": ", cap.reason());
  return line;
}

// Queue ids as ranges: "0-3,6", "-" for none.
std::string QueueRanges(std::vector<uint32_t> queues) {
  if (queues.empty()) return "-";
  std::sort(queues.begin(), queues.end());
  queues.erase(std::unique(queues.begin(), queues.end()), queues.end());
  std::vector<std::string> parts;
  for (size_t i = 0; i < queues.size();) {
    size_t j = i;
    while (j + 1 < queues.size() && queues[j + 1] == queues[j] + 1) ++j;
    parts.push_back(j == i ? absl::StrCat(queues[i])
                           : absl::StrCat(queues[i], "-", queues[j]));
    i = j + 1;
  }
  return absl::StrJoin(parts, ",");
}

std::string Opt(bool has, uint32_t value) {
  return has ? absl::StrCat(value) : "-";
}

std::string Dash(const std::string& s) { return s.empty() ? "-" : s; }

void PrintTable(const std::vector<std::vector<std::string>>& rows,
                absl::string_view indent) {
  std::vector<size_t> width;
  for (const auto& row : rows) {
    width.resize(std::max(width.size(), row.size()), 0);
    for (size_t i = 0; i < row.size(); ++i) {
      width[i] = std::max(width[i], row[i].size());
    }
  }
  for (const auto& row : rows) {
    std::string line(indent);
    for (size_t i = 0; i < row.size(); ++i) {
      if (i + 1 == row.size()) {
        absl::StrAppend(&line, row[i]);
      } else {
        absl::StrAppend(&line, row[i],
                        std::string(width[i] - row[i].size() + 2, ' '));
      }
    }
    absl::PrintF("%s\n", line);
  }
}

}  // namespace ctl
}  // namespace devmem
