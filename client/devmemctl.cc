// devmemctl: command-line client for devmemd.
//
//   devmemctl nics [NIC...]          NIC inventory as the kernel reports it
//   devmemctl status                 daemon status
//   devmemctl listen --nic IF ...    get a listening socket, receive one stream
//   devmemctl connect --nic IF ...   get a connected socket, send one stream
//
// Exit codes: 0 ok, 1 runtime failure (stderr says what and what to try),
// 2 usage error.
//
// Flags are absl flags, but parsed here through absl's flag reflection rather
// than absl::ParseCommandLine: that one exits with status 1 on a bad flag
// (we promise 2) and cannot reject a flag that exists but does not belong to
// the chosen subcommand.

#include <arpa/inet.h>
#include <fcntl.h>
#include <google/protobuf/util/json_util.h>
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
#include <functional>
#include <iostream>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/reflection.h"
#include "absl/status/status.h"
#include "absl/strings/match.h"
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
#include "kernel/unique_fd.h"
#include "proto/devmem/v1/devmem.pb.h"

ABSL_FLAG(std::string, runtime_dir, "/run/devmemd",
          "Directory holding devmemd's session.sock and grpc.sock.");
ABSL_FLAG(bool, json, false,
          "Machine output: the daemon's response as one JSON line (proto "
          "field names), plus a final JSON summary line for listen/connect.");
ABSL_FLAG(std::string, nic, "",
          "The NIC (listen/connect), or NICs, comma-separated (nics).");
ABSL_FLAG(std::string, addr, "",
          "Local numeric IP to listen on; empty means the wildcard address.");
ABSL_FLAG(int32_t, port, 0, "Local port to listen on; 0 lets the kernel pick.");
ABSL_FLAG(std::string, family, "",
          "inet or inet6; empty derives it from --addr (IPv6 if --addr is "
          "empty).");
ABSL_FLAG(int32_t, backlog, 0,
          "listen(2) backlog; 0 means the daemon default.");
ABSL_FLAG(
    std::string, output, "",
    "Where received bytes go: a FILE, or - for stdout. Default: discard.");
ABSL_FLAG(bool, expect_pattern, false,
          "Check every received byte against the devmemctl test pattern and "
          "fail naming the first bad offset.");
ABSL_FLAG(int64_t, max_bytes, 0,
          "Stop after receiving this many bytes; 0 means read until EOF.");
ABSL_FLAG(std::string, remote, "",
          "Peer to connect to: IP:PORT, or [IPv6]:PORT (required).");
ABSL_FLAG(std::string, local, "",
          "Optional local address to bind before connecting: IP, IP:PORT or "
          "[IPv6]:PORT.");
ABSL_FLAG(int32_t, timeout_ms, 0,
          "Connect timeout in ms; 0 means the daemon default.");
ABSL_FLAG(int64_t, bytes, 0,
          "Send this many bytes: the test pattern with --pattern, zeros "
          "without.");
ABSL_FLAG(bool, pattern, false,
          "With --bytes: send the deterministic test pattern that "
          "`listen --expect_pattern` checks.");
ABSL_FLAG(std::string, input, "",
          "Send the contents of FILE, or of stdin with -, instead of --bytes.");

namespace devmem {
namespace {

constexpr int kExitOk = 0;
constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;

constexpr size_t kIoChunk = 1 << 20;

// ---------------------------------------------------------------------------
// Subcommand table and usage
// ---------------------------------------------------------------------------

// A flag a command accepts, with command-specific help where the flag's own
// help text is shared between commands (e.g. --nic).
struct FlagDoc {
  const char* name;
  const char* help = nullptr;
};

struct Command {
  const char* name;
  const char* synopsis;
  const char* brief;           // one line, for the command list
  const char* summary;         // for `devmemctl <command> --help`
  std::vector<FlagDoc> flags;  // besides the global ones
  bool takes_positional;
  std::function<int(const std::vector<std::string>& args)> run;
};

const std::vector<const char*>& GlobalFlags() {
  static const auto* flags =
      new std::vector<const char*>{"runtime_dir", "json"};
  return *flags;
}

// Word-wraps `text` to 79 columns, every line starting with `indent`.
std::string Wrap(absl::string_view text, absl::string_view indent) {
  std::string out;
  std::string line(indent);
  for (absl::string_view word : absl::StrSplit(text, ' ', absl::SkipEmpty())) {
    if (line.size() > indent.size() && line.size() + 1 + word.size() > 79) {
      absl::StrAppend(&out, line, "\n");
      line = std::string(indent);
    }
    if (line.size() > indent.size()) line += ' ';
    absl::StrAppend(&line, word);
  }
  absl::StrAppend(&out, line, "\n");
  return out;
}

void PrintFlagHelp(FILE* out, const char* name, const char* help = nullptr) {
  absl::CommandLineFlag* flag = absl::FindCommandLineFlag(name);
  if (flag == nullptr) return;
  std::string def = flag->DefaultValue();
  absl::FPrintF(
      out, "  --%s%s\n%s", name,
      def.empty() || def == "false" || def == "0"
          ? ""
          : absl::StrCat(" (default ", def, ")"),
      Wrap(help != nullptr ? std::string(help) : flag->Help(), "      "));
}

void PrintCommandUsage(FILE* out, const Command& command) {
  absl::FPrintF(out, "usage: devmemctl %s %s\n\n%s", command.name,
                command.synopsis, Wrap(command.summary, ""));
  if (!command.flags.empty()) {
    absl::FPrintF(out, "\nflags:\n");
    for (const FlagDoc& doc : command.flags) {
      PrintFlagHelp(out, doc.name, doc.help);
    }
  }
  absl::FPrintF(out, "\nglobal flags:\n");
  for (const char* name : GlobalFlags()) PrintFlagHelp(out, name);
}

void PrintMainUsage(FILE* out, const std::vector<Command>& commands) {
  absl::FPrintF(out,
                "usage: devmemctl <command> [flags]\n\n"
                "Talks to devmemd, the daemon that hands out TCP sockets bound "
                "to a NIC.\n\ncommands:\n");
  for (const Command& command : commands) {
    absl::FPrintF(out, "  %-8s %s\n", command.name, command.brief);
  }
  absl::FPrintF(out, "  %-8s %s\n", "help", "Show help for a command.");
  absl::FPrintF(out,
                "\n`devmemctl <command> --help` shows that command's flags.\n"
                "\nglobal flags:\n");
  for (const char* name : GlobalFlags()) PrintFlagHelp(out, name);
  absl::FPrintF(out, "\nexit status: 0 ok, 1 failure, 2 usage error\n");
}

// ---------------------------------------------------------------------------
// Errors and output helpers
// ---------------------------------------------------------------------------

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
         const absl::Status& status, absl::string_view hint = "") {
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
    if (fd < 0)
      return ErrnoStatus(errno, for_write ? "dup(stdout)" : "dup(stdin)");
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

// ---------------------------------------------------------------------------
// nics
// ---------------------------------------------------------------------------

std::string Opt(bool has, uint32_t value) {
  return has ? absl::StrCat(value) : "-";
}

std::string Dash(const std::string& s) { return s.empty() ? "-" : s; }

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

std::vector<std::string> NicRow(const v1::Nic& nic) {
  std::string channels = "-";
  if (nic.has_channels()) {
    const v1::Channels& c = nic.channels();
    channels = absl::StrCat(Opt(c.has_combined_count(), c.combined_count()),
                            "/", Opt(c.has_rx_count(), c.rx_count()), "/",
                            Opt(c.has_tx_count(), c.tx_count()));
  }
  std::string ntuple = "-";
  if (nic.has_features()) {
    // ethtool's notation: "[fixed]" when the driver cannot change it.
    ntuple = absl::StrCat(nic.features().ntuple_active() ? "on" : "off",
                          nic.features().ntuple_hw() ? "" : " [fixed]");
  }
  std::string split = "-";
  if (nic.has_rings()) {
    switch (nic.rings().tcp_data_split()) {
      case v1::TCP_DATA_SPLIT_ENABLED:
        split = "enabled";
        break;
      case v1::TCP_DATA_SPLIT_DISABLED:
        split = "disabled";
        break;
      default:
        split = "unknown";
    }
  }
  std::string queues = "-";
  if (nic.queues_size() > 0) {
    int rx = 0, tx = 0;
    for (const v1::Queue& q : nic.queues()) {
      (q.type() == v1::Queue::TYPE_RX ? rx : tx)++;
    }
    queues = absl::StrCat(rx, "/", tx);
  }
  return {
      nic.name(),
      absl::StrCat(nic.ifindex()),
      Dash(nic.kind()),
      absl::StrCat(nic.admin_up() ? "up" : "down", "/", Dash(nic.oper_state())),
      Dash(nic.driver()),
      Dash(nic.pci_address()),
      nic.numa_node() < 0 ? "-" : absl::StrCat(nic.numa_node()),
      channels,
      ntuple,
      split,
      queues,
      nic.devmem_capable() ? "yes" : "no"};
}

void PrintTable(const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> width;
  for (const auto& row : rows) {
    width.resize(std::max(width.size(), row.size()), 0);
    for (size_t i = 0; i < row.size(); ++i) {
      width[i] = std::max(width[i], row[i].size());
    }
  }
  for (const auto& row : rows) {
    std::string line;
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

int RunNics(const std::vector<std::string>& args) {
  std::vector<std::string> names = args;
  for (absl::string_view name :
       absl::StrSplit(absl::GetFlag(FLAGS_nic), ',', absl::SkipEmpty())) {
    names.emplace_back(name);
  }
  absl::StatusOr<std::unique_ptr<Session>> session = OpenSession();
  if (!session.ok()) return FailOpen("nics", session.status());
  absl::StatusOr<v1::GetInventoryResponse> inventory =
      (*session)->GetInventory(names);
  if (!inventory.ok()) {
    std::string hint = HintFor(inventory.status());
    if (inventory.status().code() == absl::StatusCode::kNotFound) {
      hint = "run `devmemctl nics` without names to list every NIC";
    }
    return Fail("nics", "GetInventory", inventory.status(), hint);
  }
  if (absl::GetFlag(FLAGS_json)) {
    absl::PrintF("%s\n", ToJson(*inventory));
    return kExitOk;
  }
  std::vector<std::vector<std::string>> rows = {
      {"NAME", "IFINDEX", "KIND", "STATE", "DRIVER", "PCI", "NUMA",
       "CHANNELS(c/rx/tx)", "NTUPLE", "TCP-DATA-SPLIT", "QUEUES(rx/tx)",
       "DEVMEM"}};
  for (const v1::Nic& nic : inventory->nics()) rows.push_back(NicRow(nic));
  PrintTable(rows);

  // Per NIC, why it falls short, in the kernel's own errno and words.
  for (const v1::Nic& nic : inventory->nics()) {
    std::vector<const v1::Capability*> lacking;
    for (const v1::Capability& cap : nic.capabilities()) {
      if (cap.support() != v1::SUPPORT_SUPPORTED) lacking.push_back(&cap);
    }
    if (lacking.empty() && nic.devmem_capable()) continue;
    absl::PrintF("\n%s: ", nic.name());
    if (nic.devmem_capable()) {
      absl::PrintF("devmem RX possible\n");
    } else {
      // devmem_missing entries start with the capability's name when one is
      // to blame; its details follow on its own line, so name it only once.
      std::vector<std::string> missing;
      for (const std::string& entry : nic.devmem_missing()) {
        const std::string head = entry.substr(0, entry.find(':'));
        const bool is_cap = std::any_of(
            lacking.begin(), lacking.end(),
            [&](const v1::Capability* c) { return c->name() == head; });
        missing.push_back(is_cap ? head : entry);
      }
      absl::PrintF(
          "devmem RX not possible%s\n",
          missing.empty()
              ? ""
              : absl::StrCat(", missing: ", absl::StrJoin(missing, ", ")));
    }
    for (const v1::Capability* cap : lacking) {
      // `reason` already holds strerror (+ extack), so only the number here.
      absl::PrintF("  %s: %s", cap->name(), SupportName(cap->support()));
      if (cap->errno_value() != 0 &&
          !absl::StrContains(cap->reason(),
                             absl::StrCat("errno ", cap->errno_value()))) {
        absl::PrintF(" (errno %d)", cap->errno_value());
      }
      if (!cap->reason().empty()) absl::PrintF(": %s", cap->reason());
      absl::PrintF("\n");
    }
  }
  if (!inventory->backend().empty()) {
    absl::PrintF("\nbackend: %s\n", inventory->backend());
  }
  return kExitOk;
}

// ---------------------------------------------------------------------------
// status
// ---------------------------------------------------------------------------

int RunStatus(const std::vector<std::string>&) {
  absl::StatusOr<std::unique_ptr<Session>> session = OpenSession();
  if (!session.ok()) return FailOpen("status", session.status());
  absl::StatusOr<v1::GetStatusResponse> status = (*session)->GetStatus();
  if (!status.ok()) {
    return Fail("status", "GetStatus", status.status(),
                HintFor(status.status()));
  }
  if (absl::GetFlag(FLAGS_json)) {
    absl::PrintF("%s\n", ToJson(*status));
    return kExitOk;
  }
  // Keys are the proto field names, so scripts can grep either output.
  absl::PrintF("version: %s\n", status->version());
  absl::PrintF("kernel_release: %s\n", status->kernel_release());
  absl::PrintF("uptime_seconds: %.1f\n", status->uptime_seconds());
  absl::PrintF("sessions: %u (including this one)\n", status->sessions());
  absl::PrintF("pending_tickets: %u\n", status->pending_tickets());
  absl::PrintF("backend: %s\n", status->backend());
  absl::PrintF("netdev_family: %s\n", status->netdev_family() ? "yes" : "no");
  absl::PrintF("netdev_ops: %s\n",
               status->netdev_ops().empty()
                   ? "-"
                   : absl::StrJoin(status->netdev_ops(), ","));
  absl::PrintF("ethtool_family: %s\n", status->ethtool_family() ? "yes" : "no");
  absl::PrintF("fds_handed_off: %u\n", status->fds_handed_off());
  absl::PrintF("peer_uid: %u\n", status->peer_uid());
  absl::PrintF("peer_gid: %u\n", status->peer_gid());
  absl::PrintF("session_id: %u\n", (*session)->session_id());
  return kExitOk;
}

// ---------------------------------------------------------------------------
// listen
// ---------------------------------------------------------------------------

std::string SocketHint(const absl::Status& status, absl::string_view command) {
  switch (status.code()) {
    case absl::StatusCode::kNotFound:
      return "run `devmemctl nics` to see the NICs devmemd knows";
    case absl::StatusCode::kAlreadyExists:
      return "the address is in use: pick another --port, or --port=0 to let "
             "the kernel choose";
    case absl::StatusCode::kInvalidArgument:
      return command == "listen"
                 ? "check --addr, --port and --family (numeric addresses only)"
                 : "check --remote and --local (numeric IP:PORT, [IPv6]:PORT)";
    case absl::StatusCode::kUnavailable:
      if (command == "connect" &&
          !absl::StrContains(status.message(), "session")) {
        return "is anything listening at --remote, and is it reachable "
               "through --nic?";
      }
      return HintFor(status);
    case absl::StatusCode::kDeadlineExceeded:
      if (command == "connect") {
        return "the peer did not answer in time: check --remote and routing "
               "via --nic, or raise --timeout_ms";
      }
      return HintFor(status);
    default:
      return HintFor(status);
  }
}

int RunListen(const std::vector<std::string>&) {
  const bool json = absl::GetFlag(FLAGS_json);
  const std::string nic = absl::GetFlag(FLAGS_nic);
  const std::string output = absl::GetFlag(FLAGS_output);
  const int32_t port = absl::GetFlag(FLAGS_port);
  const int32_t backlog = absl::GetFlag(FLAGS_backlog);
  const int64_t max_bytes = absl::GetFlag(FLAGS_max_bytes);
  const std::string family = absl::GetFlag(FLAGS_family);
  if (nic.empty()) return UsageError("listen", "--nic is required");
  if (port < 0 || port > 65535) {
    return UsageError("listen", "--port must be in 0..65535");
  }
  if (backlog < 0) return UsageError("listen", "--backlog must be >= 0");
  if (max_bytes < 0) return UsageError("listen", "--max_bytes must be >= 0");
  if (json && output == "-") {
    return UsageError("listen",
                      "--json and --output=- would both write to stdout");
  }
  ListenOptions options;
  options.nic = nic;
  options.port = static_cast<uint16_t>(port);
  options.backlog = static_cast<uint32_t>(backlog);
  if (!absl::GetFlag(FLAGS_addr).empty()) {
    absl::StatusOr<HostPort> addr =
        ParseHostPort(absl::GetFlag(FLAGS_addr), /*port_optional=*/true);
    if (!addr.ok())
      return UsageError("listen", std::string(addr.status().message()));
    if (addr->port != 0) {
      return UsageError("listen", "--addr takes an IP only; use --port");
    }
    options.ip = addr->ip;
  }
  if (family == "inet") {
    options.family = v1::ADDRESS_FAMILY_INET;
  } else if (family == "inet6") {
    options.family = v1::ADDRESS_FAMILY_INET6;
  } else if (!family.empty()) {
    return UsageError("listen", "--family must be inet or inet6");
  }

  UniqueFd out;
  if (!output.empty()) {
    absl::StatusOr<UniqueFd> opened = OpenPath(output, /*for_write=*/true);
    if (!opened.ok()) return Fail("listen", "--output", opened.status());
    out = *std::move(opened);
  }

  absl::StatusOr<std::unique_ptr<Session>> session = OpenSession();
  if (!session.ok()) return FailOpen("listen", session.status());
  absl::StatusOr<SocketHandle> sock = (*session)->Listen(options);
  if (!sock.ok()) {
    return Fail("listen", absl::StrCat("Listen on nic ", nic), sock.status(),
                SocketHint(sock.status(), "listen"));
  }
  const std::string local =
      FormatHostPort(sock->info.local().ip(), sock->info.local().port());
  if (json) {
    absl::PrintF("%s\n", ToJson(sock->info));
    std::fflush(stdout);
  }
  // Scripts wait for this line to learn the port, so flush it now.
  absl::FPrintF(stderr, "listening on %s (nic %s, fd from devmemd)\n", local,
                sock->info.nic().empty() ? nic : sock->info.nic());
  std::fflush(stderr);

  sockaddr_storage peer_addr{};
  socklen_t peer_len = sizeof(peer_addr);
  UniqueFd conn;
  for (;;) {
    conn.Reset(accept4(sock->fd.get_unowned(),
                       reinterpret_cast<sockaddr*>(&peer_addr), &peer_len,
                       SOCK_CLOEXEC));
    if (conn.valid() || errno != EINTR) break;
  }
  if (!conn.valid()) {
    return Fail("listen", "accept", ErrnoStatus(errno, "accept4"),
                "the fd from devmemd should be a listening socket; report a "
                "devmemd bug if this persists");
  }
  sock->fd.Reset();  // one connection only
  const std::string peer = PeerName(peer_addr);
  absl::FPrintF(stderr, "accepted connection from %s\n", peer);
  std::fflush(stderr);

  const bool check = absl::GetFlag(FLAGS_expect_pattern);
  std::string buf(kIoChunk, '\0');
  uint64_t received = 0;
  const absl::Time start = absl::Now();
  for (;;) {
    size_t want = buf.size();
    if (max_bytes > 0) {
      const uint64_t left = static_cast<uint64_t>(max_bytes) - received;
      if (left == 0) break;
      want = std::min<uint64_t>(want, left);
    }
    ssize_t n = read(conn.get_unowned(), buf.data(), want);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Fail(
          "listen",
          absl::StrCat("receiving from ", peer, " after ", received, " bytes"),
          ErrnoStatus(errno, "read"),
          "the sender reset the connection or the link went down");
    }
    if (n == 0) break;
    absl::string_view chunk(buf.data(), static_cast<size_t>(n));
    if (check) {
      int64_t bad = CheckPattern(received, chunk);
      if (bad >= 0) {
        const uint64_t offset = received + static_cast<uint64_t>(bad);
        absl::FPrintF(stderr,
                      "devmemctl listen: pattern mismatch at byte offset %u: "
                      "expected 0x%02x, got 0x%02x\n"
                      "  hint: the data was corrupted, reordered or lost on "
                      "the way; was the sender `devmemctl connect --pattern` "
                      "from offset 0?\n",
                      offset, PatternByte(offset),
                      static_cast<uint8_t>(chunk[static_cast<size_t>(bad)]));
        if (json) {
          absl::PrintF(
              "{\"command\":\"listen\",\"ok\":false,\"bytes\":%u,"
              "\"pattern_mismatch_offset\":%u}\n",
              received + static_cast<uint64_t>(bad), offset);
        }
        return kExitFailure;
      }
    }
    if (out.valid()) {
      absl::Status written = WriteAll(out.get_unowned(), chunk.data(),
                                      chunk.size(), "write --output");
      if (!written.ok()) return Fail("listen", "--output", written);
    }
    received += static_cast<uint64_t>(n);
  }
  const double seconds = absl::ToDoubleSeconds(absl::Now() - start);
  FILE* report = output == "-" ? stderr : stdout;
  if (json) {
    absl::PrintF(
        "{\"command\":\"listen\",\"ok\":true,\"local\":\"%s\",\"peer\":\"%s\","
        "\"bytes\":%u,\"seconds\":%.6f,\"gbps\":%.3f,\"pattern_checked\":%s}\n",
        local, peer, received, seconds, Gbps(received, seconds),
        check ? "true" : "false");
  } else {
    absl::FPrintF(report, "received %u bytes in %.3f s (%.3f Gbit/s)%s\n",
                  received, seconds, Gbps(received, seconds),
                  check ? ", pattern ok" : "");
  }
  return kExitOk;
}

// ---------------------------------------------------------------------------
// connect
// ---------------------------------------------------------------------------

// After shutdown(SHUT_WR), waits (bounded) for the peer to close, so that we
// exit only once the receiver has read everything; a close with unread
// incoming data would turn into a RST that can discard data in flight.
void DrainUntilPeerCloses(int fd, absl::Duration limit) {
  const absl::Time deadline = absl::Now() + limit;
  char buf[4096];
  for (;;) {
    const int64_t ms = absl::ToInt64Milliseconds(deadline - absl::Now());
    if (ms <= 0) return;
    struct pollfd pfd = {fd, POLLIN, 0};
    int r = poll(&pfd, 1, static_cast<int>(ms));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return;
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
  }
}

int RunConnect(const std::vector<std::string>&) {
  const bool json = absl::GetFlag(FLAGS_json);
  const std::string nic = absl::GetFlag(FLAGS_nic);
  const std::string input = absl::GetFlag(FLAGS_input);
  const int64_t bytes = absl::GetFlag(FLAGS_bytes);
  const bool pattern = absl::GetFlag(FLAGS_pattern);
  const int32_t timeout_ms = absl::GetFlag(FLAGS_timeout_ms);
  if (nic.empty()) return UsageError("connect", "--nic is required");
  if (absl::GetFlag(FLAGS_remote).empty()) {
    return UsageError("connect", "--remote IP:PORT is required");
  }
  if (bytes < 0) return UsageError("connect", "--bytes must be >= 0");
  if (timeout_ms < 0) return UsageError("connect", "--timeout_ms must be >= 0");
  if (!input.empty() && (bytes > 0 || pattern)) {
    return UsageError("connect",
                      "--input and --bytes/--pattern are alternatives");
  }
  if (pattern && bytes == 0) {
    return UsageError("connect", "--pattern needs --bytes=N");
  }
  ConnectOptions options;
  options.nic = nic;
  options.timeout = absl::Milliseconds(timeout_ms);
  absl::StatusOr<HostPort> remote = ParseHostPort(absl::GetFlag(FLAGS_remote));
  if (!remote.ok()) {
    return UsageError("connect",
                      absl::StrCat("--remote: ", remote.status().message()));
  }
  options.remote = *remote;
  if (!absl::GetFlag(FLAGS_local).empty()) {
    absl::StatusOr<HostPort> local =
        ParseHostPort(absl::GetFlag(FLAGS_local), /*port_optional=*/true);
    if (!local.ok()) {
      return UsageError("connect",
                        absl::StrCat("--local: ", local.status().message()));
    }
    options.local = *local;
  }

  UniqueFd in;
  if (!input.empty()) {
    absl::StatusOr<UniqueFd> opened = OpenPath(input, /*for_write=*/false);
    if (!opened.ok()) return Fail("connect", "--input", opened.status());
    in = *std::move(opened);
  }

  absl::StatusOr<std::unique_ptr<Session>> session = OpenSession();
  if (!session.ok()) return FailOpen("connect", session.status());
  absl::StatusOr<SocketHandle> sock = (*session)->Connect(options);
  if (!sock.ok()) {
    return Fail(
        "connect",
        absl::StrCat("Connect to ",
                     FormatHostPort(options.remote.ip, options.remote.port),
                     " via nic ", nic),
        sock.status(), SocketHint(sock.status(), "connect"));
  }
  const std::string remote_name =
      FormatHostPort(options.remote.ip, options.remote.port);
  const std::string local_name =
      FormatHostPort(sock->info.local().ip(), sock->info.local().port());
  if (json) {
    absl::PrintF("%s\n", ToJson(sock->info));
    std::fflush(stdout);
  }
  absl::FPrintF(stderr, "connected to %s from %s (nic %s, fd from devmemd)\n",
                remote_name, local_name,
                sock->info.nic().empty() ? nic : sock->info.nic());
  std::fflush(stderr);

  const int fd = sock->fd.get_unowned();
  uint64_t sent = 0;
  const absl::Time start = absl::Now();
  if (in.valid()) {
    std::string buf(kIoChunk, '\0');
    for (;;) {
      ssize_t n = read(in.get_unowned(), buf.data(), buf.size());
      if (n < 0) {
        if (errno == EINTR) continue;
        return Fail("connect", "reading --input", ErrnoStatus(errno, "read"));
      }
      if (n == 0) break;
      absl::Status s = SendAll(fd, buf.data(), static_cast<size_t>(n));
      if (!s.ok()) {
        return Fail("connect", absl::StrCat("sending after ", sent, " bytes"),
                    s, "the receiver closed or reset the connection");
      }
      sent += static_cast<uint64_t>(n);
    }
  } else if (bytes > 0) {
    const std::string zeros =
        pattern ? std::string() : std::string(kIoChunk, '\0');
    const std::string& source = pattern ? PatternPeriod() : zeros;
    const uint64_t total = static_cast<uint64_t>(bytes);
    while (sent < total) {
      // The pattern repeats every kPatternPeriod bytes, so one precomputed
      // period serves any stream offset.
      const size_t phase = pattern ? sent % kPatternPeriod : 0;
      const size_t n = std::min<uint64_t>(total - sent, source.size() - phase);
      absl::Status s = SendAll(fd, source.data() + phase, n);
      if (!s.ok()) {
        return Fail("connect", absl::StrCat("sending after ", sent, " bytes"),
                    s, "the receiver closed or reset the connection");
      }
      sent += n;
    }
  }
  if (shutdown(fd, SHUT_WR) != 0) {
    return Fail("connect", "shutdown", ErrnoStatus(errno, "shutdown(SHUT_WR)"));
  }
  const double seconds = absl::ToDoubleSeconds(absl::Now() - start);
  DrainUntilPeerCloses(fd, absl::Seconds(10));
  if (json) {
    absl::PrintF(
        "{\"command\":\"connect\",\"ok\":true,\"local\":\"%s\",\"remote\":"
        "\"%s\",\"bytes\":%u,\"seconds\":%.6f,\"gbps\":%.3f}\n",
        local_name, remote_name, sent, seconds, Gbps(sent, seconds));
  } else {
    absl::PrintF("sent %u bytes in %.3f s (%.3f Gbit/s)\n", sent, seconds,
                 Gbps(sent, seconds));
  }
  return kExitOk;
}

// ---------------------------------------------------------------------------
// main: subcommand and flag parsing
// ---------------------------------------------------------------------------

std::vector<Command> Commands() {
  return {
      {"nics",
       "[NIC...] [--nic=a,b]",
       "List NICs and their devmem capabilities.",
       "Show the NICs devmemd sees (ethtool/netdev facts as the kernel reports "
       "them) and, per NIC, each capability it lacks with the kernel's errno "
       "and reason. Names given as arguments or --nic restrict the list.",
       {{"nic", "Comma-separated NIC names to show (default all)."}},
       /*takes_positional=*/true,
       RunNics},
      {"status",
       "",
       "Show devmemd's status.",
       "Show devmemd's status as key: value lines (or --json).",
       {},
       /*takes_positional=*/false,
       RunStatus},
      {"listen",
       "--nic IF [--addr IP] [--port P] [--output FILE|-] [--expect_pattern] "
       "[--max_bytes N]",
       "Receive one TCP stream on a socket from devmemd.",
       "Get a listening TCP socket bound to IF from devmemd, print "
       "\"listening on IP:PORT ...\" to stderr, accept one connection, read "
       "it to EOF and report bytes, seconds and Gbit/s.",
       {{"nic", "NIC the socket is bound to (required)."},
        {"addr"},
        {"port"},
        {"family"},
        {"backlog"},
        {"output"},
        {"expect_pattern"},
        {"max_bytes"}},
       /*takes_positional=*/false,
       RunListen},
      {"connect",
       "--nic IF --remote IP:PORT [--local IP[:PORT]] [--timeout_ms MS] "
       "[--bytes N [--pattern] | --input FILE|-]",
       "Send one TCP stream on a socket from devmemd.",
       "Get a TCP socket bound to IF and connected to --remote from devmemd, "
       "send --bytes (or --input), shut down writing, wait for the receiver "
       "to close, and report bytes sent.",
       {{"nic", "NIC the socket is bound to (required)."},
        {"remote"},
        {"local"},
        {"timeout_ms"},
        {"bytes"},
        {"pattern"},
        {"input"}},
       /*takes_positional=*/false,
       RunConnect},
  };
}

struct ParsedFlag {
  std::string name;
  absl::CommandLineFlag* flag;
  std::string value;
};

int Main(int argc, char** argv) {
  // A receiver that goes away must not kill us silently in write(2).
  signal(SIGPIPE, SIG_IGN);

  const std::vector<Command> commands = Commands();
  std::vector<std::string> positional;
  std::vector<ParsedFlag> flags;
  bool help = false;
  for (int i = 1; i < argc; ++i) {
    absl::string_view arg = argv[i];
    if (arg == "--") {
      for (++i; i < argc; ++i) positional.emplace_back(argv[i]);
      break;
    }
    if (arg.size() < 2 || arg[0] != '-') {
      positional.emplace_back(arg);
      continue;
    }
    absl::string_view body =
        absl::StripPrefix(absl::StripPrefix(arg, "-"), "-");
    absl::string_view name = body;
    absl::string_view value;
    bool has_value = false;
    if (size_t eq = body.find('='); eq != absl::string_view::npos) {
      name = body.substr(0, eq);
      value = body.substr(eq + 1);
      has_value = true;
    }
    if (name == "help" || name == "h") {
      help = true;
      continue;
    }
    absl::CommandLineFlag* flag = absl::FindCommandLineFlag(name);
    std::string flag_name(name);
    if (flag == nullptr && absl::StartsWith(name, "no") && !has_value) {
      // --nojson style negation of a boolean flag.
      flag = absl::FindCommandLineFlag(name.substr(2));
      if (flag != nullptr && flag->IsOfType<bool>()) {
        flags.push_back({std::string(name.substr(2)), flag, "false"});
        continue;
      }
      flag = nullptr;
    }
    if (flag == nullptr) {
      return UsageError(positional.empty() ? "" : positional[0],
                        absl::StrCat("unknown flag --", name));
    }
    if (!has_value) {
      if (flag->IsOfType<bool>()) {
        value = "true";
      } else if (i + 1 < argc) {
        value = argv[++i];
      } else {
        return UsageError(positional.empty() ? "" : positional[0],
                          absl::StrCat("--", name, " needs a value"));
      }
    }
    flags.push_back({flag_name, flag, std::string(value)});
  }

  if (positional.empty()) {
    if (help) {
      PrintMainUsage(stdout, commands);
      return kExitOk;
    }
    PrintMainUsage(stderr, commands);
    return kExitUsage;
  }
  std::string name = positional[0];
  positional.erase(positional.begin());
  if (name == "help") {
    if (positional.empty()) {
      PrintMainUsage(stdout, commands);
      return kExitOk;
    }
    name = positional[0];
    positional.clear();
    help = true;
  }
  const Command* command = nullptr;
  for (const Command& c : commands) {
    if (name == c.name) command = &c;
  }
  if (command == nullptr) {
    absl::FPrintF(stderr, "devmemctl: unknown command '%s'\n\n", name);
    PrintMainUsage(stderr, commands);
    return kExitUsage;
  }
  if (help) {
    PrintCommandUsage(stdout, *command);
    return kExitOk;
  }
  for (const ParsedFlag& parsed : flags) {
    const auto allowed = [&](const std::vector<const char*>& list) {
      return std::any_of(list.begin(), list.end(),
                         [&](const char* n) { return parsed.name == n; });
    };
    const bool command_flag = std::any_of(
        command->flags.begin(), command->flags.end(),
        [&](const FlagDoc& doc) { return parsed.name == doc.name; });
    if (!allowed(GlobalFlags()) && !command_flag) {
      return UsageError(command->name, absl::StrCat("flag --", parsed.name,
                                                    " does not apply to `",
                                                    command->name, "`"));
    }
    std::string error;
    if (!parsed.flag->ParseFrom(parsed.value, &error)) {
      return UsageError(command->name, absl::StrCat("--", parsed.name, "=",
                                                    parsed.value, ": ", error));
    }
  }
  if (!command->takes_positional && !positional.empty()) {
    return UsageError(command->name, absl::StrCat("unexpected argument '",
                                                  positional[0], "'"));
  }
  return command->run(positional);
}

}  // namespace
}  // namespace devmem

int main(int argc, char** argv) { return devmem::Main(argc, argv); }
