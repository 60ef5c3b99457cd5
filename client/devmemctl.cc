// devmemctl: command-line client for devmemd.
//
//   devmemctl nics [NIC...]          NIC inventory as the kernel reports it
//   devmemctl status                 daemon status
//   devmemctl nic show [NIC...]      NIC profiles: original/desired/actual
//   devmemctl nic restore NIC        put a NIC back as recorded (admin)
//   devmemctl listen --nic IF ...    get a listening socket, receive one stream
//   devmemctl connect --nic IF ...   get a connected socket, send one stream
//   devmemctl selftest --nic IF      the kernel's devmem test sequence
//                                    (ncdevmem test mode), in-process
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
#include "daemon/nic/simulated/simulated_nic.h"
#include "kernel/devmem_selftest.h"
#include "kernel/errno_status.h"
#include "kernel/kernel_nic_control.h"
#include "kernel/nic_control.h"
#include "kernel/udmabuf.h"
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
ABSL_FLAG(bool, reconnect, true,
          "If devmemd restarts while this command runs, reconnect and resume "
          "the session (its bindings and steering rules survive).");
ABSL_FLAG(int32_t, bind_memfd_mb, 0,
          "Before the socket: bind N MiB of memfd-backed stand-in device "
          "memory to the NIC's devmem pool (BindRx) and steer the socket's "
          "flows to it. Only devmemd's simulated backend accepts a memfd; "
          "the kernel backend needs --dmabuf_fd. 0 = no binding.");
ABSL_FLAG(int32_t, dmabuf_fd, -1,
          "An inherited dma-buf fd (e.g. exported GPU memory) to bind "
          "instead of --bind_memfd_mb. -1 = none.");
ABSL_FLAG(int32_t, queues, 0,
          "RX queues the binding takes from the NIC's devmem pool; 0 means "
          "1. Needs --bind_memfd_mb or --dmabuf_fd.");
ABSL_FLAG(bool, simulated, false,
          "Run against a simulated devmem NIC named --nic (in this process, "
          "with a memfd as device memory) instead of the real kernel: shows "
          "the sequence passing without hardware. Results are SIMULATED.");
ABSL_FLAG(int32_t, memory_mb, 64,
          "Size of the memory the selftest binds: a udmabuf dma-buf on the "
          "kernel, a memfd with --simulated.");

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
      line.assign(indent.data(), indent.size());
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
    absl::FPrintF(out, "  %-12s %s\n", command.name, command.brief);
  }
  absl::FPrintF(out, "  %-12s %s\n", "help", "Show help for a command.");
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

void PrintTable(const std::vector<std::vector<std::string>>& rows,
                absl::string_view indent = "") {
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
      absl::PrintF("  %s\n", CapabilityLine(*cap));
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
  absl::PrintF("detached_sessions: %u\n", status->detached_sessions());
  absl::PrintF("bindings: %u\n", status->bindings());
  absl::PrintF("rules: %u\n", status->rules());
  absl::PrintF("journal_error: %s\n",
               status->journal_error().empty() ? "-" : status->journal_error());
  absl::PrintF("health: %s\n",
               status->health().empty() ? "-" : status->health());
  for (const std::string& line : status->health_reasons()) {
    absl::PrintF("health_reason: %s\n", line);
  }
  for (const std::string& line : status->degraded()) {
    absl::PrintF("degraded: %s\n", line);
  }
  for (const std::string& line : status->recovery()) {
    absl::PrintF("recovery: %s\n", line);
  }
  return kExitOk;
}

// ---------------------------------------------------------------------------
// nic show / nic restore
// ---------------------------------------------------------------------------

const char* ProfileStateName(v1::ProfileState state) {
  switch (state) {
    case v1::PROFILE_STATE_APPLIED:
      return "applied";
    case v1::PROFILE_STATE_NOT_CAPABLE:
      return "not devmem-capable";
    case v1::PROFILE_STATE_FAILED:
      return "failed";
    case v1::PROFILE_STATE_RESTORED:
      return "restored";
    case v1::PROFILE_STATE_UNMANAGED:
      return "unmanaged";
    default:
      return "unspecified";
  }
}

const char* RssModeName(v1::RssMode mode) {
  switch (mode) {
    case v1::RSS_MODE_CONTEXT:
      return "context (one RSS context per binding)";
    case v1::RSS_MODE_EXCLUDE_POOL:
      return "exclude-pool (main table avoids the pool)";
    default:
      return "exclude-pool (default)";
  }
}

const char* SplitName(v1::TcpDataSplit split) {
  switch (split) {
    case v1::TCP_DATA_SPLIT_ENABLED:
      return "enabled";
    case v1::TCP_DATA_SPLIT_DISABLED:
      return "disabled";
    default:
      return "unknown (auto)";
  }
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

template <typename Repeated>
std::string QueueRanges(const Repeated& queues) {
  return QueueRanges(std::vector<uint32_t>(queues.begin(), queues.end()));
}

// "queues 0-5 (128 entries)": which queues the indirection table spreads
// over, not the table itself.
std::string RssSummary(const v1::NicSettings& s) {
  if (s.rss_indir().empty()) return "-";
  return absl::StrCat("queues ", QueueRanges(s.rss_indir()), " (",
                      s.rss_indir_size(), " entries)");
}

std::vector<std::vector<std::string>> SettingsRows(const v1::NicState& st) {
  const v1::NicSettings* cols[] = {&st.original(), &st.desired(), &st.actual()};
  std::vector<std::vector<std::string>> rows = {
      {"SETTING", "ORIGINAL", "DESIRED", "ACTUAL"},
      {"channels (c/rx/tx)"},
      {"tcp-data-split"},
      {"hds-thresh"},
      {"ntuple"},
      {"rss"}};
  for (const v1::NicSettings* s : cols) {
    std::string channels = "-";
    if (s->has_channels()) {
      const v1::Channels& c = s->channels();
      channels = absl::StrCat(Opt(c.has_combined_count(), c.combined_count()),
                              "/", Opt(c.has_rx_count(), c.rx_count()), "/",
                              Opt(c.has_tx_count(), c.tx_count()));
    }
    rows[1].push_back(channels);
    rows[2].push_back(s->has_tcp_data_split() ? SplitName(s->tcp_data_split())
                                              : "-");
    rows[3].push_back(s->has_hds_thresh() ? absl::StrCat(s->hds_thresh())
                                          : "-");
    rows[4].push_back(!s->has_ntuple() ? "-" : s->ntuple() ? "on" : "off");
    rows[5].push_back(RssSummary(*s));
  }
  return rows;
}

void PrintNicState(const v1::NicState& st) {
  absl::PrintF("%s: %s (ifindex %u, backend %s)\n", st.nic(),
               ProfileStateName(st.state()), st.ifindex(), Dash(st.backend()));
  if (!st.reason().empty()) absl::PrintF("  reason: %s\n", st.reason());
  if (!st.missing().empty()) {
    absl::PrintF("  missing:\n");
    for (const v1::Capability& cap : st.missing()) {
      absl::PrintF("    %s\n", CapabilityLine(cap));
    }
  }
  absl::PrintF("\n");
  PrintTable(SettingsRows(st), "  ");
  absl::PrintF("\n");
  std::string rules = absl::StrCat(st.rules());
  if (st.rule_quota() > 0) {
    absl::StrAppend(&rules, " (quota ", st.rule_quota(), ")");
  }
  PrintTable(
      {
          {"rss mode:", RssModeName(st.rss_mode())},
          {"pool queues:", QueueRanges(st.pool_queues())},
          {"free queues:", QueueRanges(st.free_queues())},
          {"bindings:", absl::StrCat(st.bindings())},
          {"rules:", rules},
          {"nic reports:",
           absl::StrCat(st.kernel_rules(), " rule(s), bound queues ",
                        QueueRanges(st.kernel_bound_queues()))},
          {"degraded:", st.degraded().empty() ? "no" : st.degraded()},
          {"record:", st.record_path().empty() ? "- (nothing recorded)"
                                               : st.record_path()},
      },
      "  ");
}

std::string NicStateHint(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kNotFound:
      return "devmemd manages only the NICs in its config's nic_profiles; "
             "`devmemctl nic show` lists them, `devmemctl nics` lists every "
             "NIC";
    case absl::StatusCode::kPermissionDenied:
      if (absl::StrContains(status.message(), "admin")) {
        return "restoring a NIC is an admin call: run as root, or ask the "
               "admin to add your uid to admin_uids in devmemd's config";
      }
      return HintFor(status);
    case absl::StatusCode::kFailedPrecondition:
      return "the kernel refused to put a setting back and the record is "
             "kept: see `devmemctl nic show` and devmemd's log, then retry";
    default:
      return HintFor(status);
  }
}

std::vector<std::string> NicNames(const std::vector<std::string>& args) {
  std::vector<std::string> names = args;
  for (absl::string_view name :
       absl::StrSplit(absl::GetFlag(FLAGS_nic), ',', absl::SkipEmpty())) {
    names.emplace_back(name);
  }
  return names;
}

int RunNicShow(const std::vector<std::string>& args) {
  const std::vector<std::string> names = NicNames(args);
  absl::StatusOr<std::unique_ptr<Session>> session = OpenSession();
  if (!session.ok()) return FailOpen("nic show", session.status());
  absl::StatusOr<v1::GetNicStateResponse> states =
      (*session)->GetNicState(names);
  if (!states.ok()) {
    return Fail("nic show", "GetNicState", states.status(),
                NicStateHint(states.status()));
  }
  if (absl::GetFlag(FLAGS_json)) {
    absl::PrintF("%s\n", ToJson(*states));
    return kExitOk;
  }
  if (states->nics().empty()) {
    absl::PrintF(
        "no NIC profiles: devmemd manages no NIC (add nic_profiles to its "
        "config)\n");
    return kExitOk;
  }
  bool first = true;
  for (const v1::NicState& st : states->nics()) {
    if (!first) absl::PrintF("\n");
    first = false;
    PrintNicState(st);
  }
  return kExitOk;
}

int RunNicRestore(const std::vector<std::string>& args) {
  const std::vector<std::string> names = NicNames(args);
  if (names.size() != 1) {
    return UsageError("nic restore", "name exactly one NIC to restore");
  }
  absl::StatusOr<std::unique_ptr<Session>> session = OpenSession();
  if (!session.ok()) return FailOpen("nic restore", session.status());
  absl::StatusOr<v1::RestoreNicResponse> restored =
      (*session)->RestoreNic(names[0]);
  if (!restored.ok()) {
    return Fail("nic restore", absl::StrCat("RestoreNic ", names[0]),
                restored.status(), NicStateHint(restored.status()));
  }
  if (absl::GetFlag(FLAGS_json)) {
    absl::PrintF("%s\n", ToJson(*restored));
    return kExitOk;
  }
  absl::PrintF("%s: released %u binding(s) and removed %u rule(s); state %s\n",
               names[0], restored->bindings_released(),
               restored->rules_removed(),
               ProfileStateName(restored->state().state()));
  absl::PrintF("\n");
  PrintNicState(restored->state());
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

// ---------------------------------------------------------------------------
// Bindings for listen/connect (--bind_memfd_mb, --dmabuf_fd, --queues)
// ---------------------------------------------------------------------------

struct BindFlags {
  int32_t memfd_mb = 0;
  int32_t dmabuf_fd = -1;
  int32_t queues = 0;
  bool wanted() const { return memfd_mb > 0 || dmabuf_fd >= 0; }
};

// Reads and checks the binding flags; kExitOk, or the usage exit code
// after printing what is wrong.
int ParseBindFlags(const char* command, BindFlags* flags) {
  flags->memfd_mb = absl::GetFlag(FLAGS_bind_memfd_mb);
  flags->dmabuf_fd = absl::GetFlag(FLAGS_dmabuf_fd);
  flags->queues = absl::GetFlag(FLAGS_queues);
  if (flags->memfd_mb < 0 || flags->memfd_mb > 65536) {
    return UsageError(command, "--bind_memfd_mb must be in 0..65536");
  }
  if (flags->dmabuf_fd < -1) {
    return UsageError(command, "--dmabuf_fd must be a file descriptor or -1");
  }
  if (flags->memfd_mb > 0 && flags->dmabuf_fd >= 0) {
    return UsageError(command,
                      "--bind_memfd_mb and --dmabuf_fd are "
                      "alternatives");
  }
  if (flags->queues < 0 || flags->queues > 64) {
    return UsageError(command, "--queues must be in 0..64");
  }
  if (flags->queues > 0 && !flags->wanted()) {
    return UsageError(command, "--queues needs --bind_memfd_mb or --dmabuf_fd");
  }
  if (flags->dmabuf_fd >= 0 && fcntl(flags->dmabuf_fd, F_GETFD) < 0) {
    return UsageError(command,
                      absl::StrCat("--dmabuf_fd=", flags->dmabuf_fd, ": fd ",
                                   flags->dmabuf_fd,
                                   " is not open in this process (it must be "
                                   "inherited, e.g. `devmemctl ... 7<&N`)"));
  }
  return kExitOk;
}

std::string BindHint(const absl::Status& status, const BindFlags& flags,
                     absl::string_view nic) {
  switch (status.code()) {
    case absl::StatusCode::kInvalidArgument:
      if (flags.memfd_mb > 0 && absl::StrContains(status.message(), "memfd")) {
        return "only devmemd's simulated backend (--nic_backend=simulated) "
               "binds memfd-backed memory; this devmemd drives the real "
               "kernel, which needs a real dma-buf: pass one with "
               "--dmabuf_fd (e.g. GPU memory exported with "
               "cuMemGetHandleForAddressRange)";
      }
      return "--dmabuf_fd must be a dma-buf (fstatfs reports DMA_BUF_MAGIC)";
    case absl::StatusCode::kNotFound:
      return "bindings go to NICs with a devmem profile: `devmemctl nic show` "
             "lists them";
    case absl::StatusCode::kResourceExhausted:
      return absl::StrCat("the devmem pool of ", nic,
                          " has too few free queues: ask for fewer --queues "
                          "or wait; `devmemctl nic show ",
                          nic, "` shows the free queues");
    case absl::StatusCode::kFailedPrecondition:
      return absl::StrCat("`devmemctl nic show ", nic,
                          "` shows the NIC's profile state; `devmemctl "
                          "selftest --nic ",
                          nic, "` checks the NIC itself");
    default:
      return HintFor(status);
  }
}

// Binds the memory the flags name, prints the binding (stderr; a JSON line
// on stdout with --json) and returns kExitOk with `*binding` set, or the
// failure exit code. `*memory` keeps a memfd alive while the binding lives.
int BindForSocket(const char* command, Session& session, const std::string& nic,
                  const BindFlags& flags, UniqueFd* memory,
                  v1::Binding* binding) {
  std::string what;
  int fd = flags.dmabuf_fd;
  if (flags.memfd_mb > 0) {
    absl::StatusOr<UniqueFd> memfd = CreateSealedMemfd(
        static_cast<size_t>(flags.memfd_mb) << 20, "devmemctl");
    if (!memfd.ok()) {
      return Fail(command, "creating the memfd for --bind_memfd_mb",
                  memfd.status());
    }
    *memory = *std::move(memfd);
    fd = memory->get_unowned();
    what = absl::StrCat(flags.memfd_mb, " MiB memfd");
  } else {
    what = absl::StrCat("fd ", fd, " (", DmabufKindName(ClassifyFd(fd)), ")");
  }
  BindOptions options;
  options.nic = nic;
  options.queue_count = flags.queues == 0 ? 1 : flags.queues;
  absl::StatusOr<v1::Binding> bound = session.BindRx(fd, options);
  if (!bound.ok()) {
    return Fail(command, absl::StrCat("BindRx of ", what, " on nic ", nic),
                bound.status(), BindHint(bound.status(), flags, nic));
  }
  *binding = *bound;
  absl::FPrintF(stderr,
                "bound %s: binding %u (kernel id %u) on nic %s RX queues "
                "%s%s\n",
                what, binding->handle(), binding->kernel_id(),
                binding->nic().empty() ? nic : binding->nic(),
                QueueRanges(binding->queues()),
                binding->has_rss_context()
                    ? absl::StrCat(", rss context ", binding->rss_context())
                    : "");
  if (absl::GetFlag(FLAGS_json)) {
    absl::PrintF("{\"binding\":%s}\n", ToJson(*binding));
    std::fflush(stdout);
  }
  return kExitOk;
}

std::string Endpoint(const std::string& ip, uint32_t port) {
  if (ip.empty() && port == 0) return "*";
  return FormatHostPort(ip.empty() ? "*" : ip, static_cast<uint16_t>(port));
}

// "steering rule at location 1023 on lo: tcp4 dst 10.0.0.1:5000 -> queue 4
// (3-tuple: ...)".
std::string RuleLine(const v1::FlowRule& rule, bool listener) {
  std::string match =
      absl::StrCat(rule.family() == v1::ADDRESS_FAMILY_INET ? "tcp4" : "tcp6");
  if (!rule.src_ip().empty() || rule.src_port() != 0) {
    absl::StrAppend(&match, " src ", Endpoint(rule.src_ip(), rule.src_port()));
  }
  absl::StrAppend(&match, " dst ", Endpoint(rule.dst_ip(), rule.dst_port()));
  const std::string target =
      rule.has_rss_context() ? absl::StrCat("rss context ", rule.rss_context(),
                                            " (offset ", rule.queue(), ")")
                             : absl::StrCat("queue ", rule.queue());
  const char* tuple = rule.five_tuple() ? "5-tuple"
                      : listener ? "3-tuple: the listener's address and port"
                                 : "3-tuple fallback: the NIC refused the "
                                   "5-tuple";
  return absl::StrCat("steering rule at location ", rule.location(), " on ",
                      rule.nic(), ": ", match, " -> ", target, " (", tuple,
                      ")");
}

void PrintRule(const v1::SocketResponse& info, bool listener) {
  if (!info.has_rule()) {
    absl::FPrintF(stderr, "no steering rule reported by devmemd\n");
    return;
  }
  absl::FPrintF(stderr, "%s\n", RuleLine(info.rule(), listener));
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
  BindFlags bind;
  if (int rc = ParseBindFlags("listen", &bind); rc != kExitOk) return rc;
  ListenOptions options;
  options.nic = nic;
  options.port = static_cast<uint16_t>(port);
  options.backlog = static_cast<uint32_t>(backlog);
  if (!absl::GetFlag(FLAGS_addr).empty()) {
    absl::StatusOr<HostPort> addr =
        ParseHostPort(absl::GetFlag(FLAGS_addr), /*port_optional=*/true);
    if (!addr.ok()) {
      return UsageError("listen", absl::StrCat(addr.status().message()));
    }
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
  UniqueFd memory;  // the memfd, while it is bound
  v1::Binding binding;
  if (bind.wanted()) {
    int rc = BindForSocket("listen", **session, nic, bind, &memory, &binding);
    if (rc != kExitOk) return rc;
    options.binding = binding.handle();
  }
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
  if (bind.wanted()) PrintRule(sock->info, /*listener=*/true);
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
        "\"bytes\":%u,\"seconds\":%.6f,\"gbps\":%.3f,\"pattern_checked\":%s,"
        "\"binding\":%u}\n",
        local, peer, received, seconds, Gbps(received, seconds),
        check ? "true" : "false", binding.handle());
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
  BindFlags bind;
  if (int rc = ParseBindFlags("connect", &bind); rc != kExitOk) return rc;
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
  UniqueFd memory;  // the memfd, while it is bound
  v1::Binding binding;
  if (bind.wanted()) {
    int rc = BindForSocket("connect", **session, nic, bind, &memory, &binding);
    if (rc != kExitOk) return rc;
    options.binding = binding.handle();
  }
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
  if (bind.wanted()) PrintRule(sock->info, /*listener=*/false);
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
        "\"%s\",\"bytes\":%u,\"seconds\":%.6f,\"gbps\":%.3f,\"binding\":%u}\n",
        local_name, remote_name, sent, seconds, Gbps(sent, seconds),
        binding.handle());
  } else {
    absl::PrintF("sent %u bytes in %.3f s (%.3f Gbit/s)\n", sent, seconds,
                 Gbps(sent, seconds));
  }
  return kExitOk;
}

// ---------------------------------------------------------------------------
// selftest
// ---------------------------------------------------------------------------

// Whether this process has CAP_NET_ADMIN in its effective set (bit 12 of
// CapEff in /proc/self/status). true when it cannot tell: the kernel then
// answers with EPERM itself.
bool HasNetAdmin() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (!absl::StartsWith(line, "CapEff:")) continue;
    uint64_t caps = 0;
    const std::string hex(absl::StripAsciiWhitespace(line.substr(7)));
    if (!absl::SimpleHexAtoi(hex, &caps)) return true;
    constexpr int kCapNetAdmin = 12;  // include/uapi/linux/capability.h
    return (caps >> kCapNetAdmin) & 1;
  }
  return true;
}

constexpr char kNeedsNetAdmin[] =
    "the selftest changes NIC settings (ethtool) and binds memory (netdev "
    "bind-rx is admin-perm), so it needs CAP_NET_ADMIN";
constexpr char kNetAdminHint[] =
    "run it as root (sudo devmemctl selftest --nic IF), or add --simulated "
    "to watch the sequence on a simulated NIC without privileges";

const char* CapSupportName(Support support) {
  switch (support) {
    case Support::kSupported:
      return "supported";
    case Support::kUnsupported:
      return "unsupported";
    case Support::kUnknown:
      break;
  }
  return "unknown";
}

v1::Capability CapabilityProto(const Capability& cap) {
  v1::Capability out;
  out.set_name(cap.name);
  out.set_support(cap.support == Support::kSupported ? v1::SUPPORT_SUPPORTED
                  : cap.support == Support::kUnsupported
                      ? v1::SUPPORT_UNSUPPORTED
                      : v1::SUPPORT_UNKNOWN);
  out.set_errno_value(cap.error);
  out.set_reason(cap.reason);
  return out;
}

std::string SelftestJson(const std::string& nic, uint32_t ifindex,
                         const std::string& backend, bool simulated,
                         const std::string& memory,
                         const SelftestResult& result) {
  using google::protobuf::Struct;
  using google::protobuf::Value;
  Struct out;
  auto& f = *out.mutable_fields();
  f["command"].set_string_value("selftest");
  f["nic"].set_string_value(nic);
  f["ifindex"].set_number_value(ifindex);
  f["backend"].set_string_value(backend);
  f["simulated"].set_bool_value(simulated);
  f["memory"].set_string_value(memory);
  f["ran"].set_bool_value(result.ran);
  f["passed"].set_bool_value(result.passed());
  f["restored"].set_bool_value(result.restored);
  auto* missing = f["missing"].mutable_list_value();
  for (const Capability& cap : result.missing) {
    auto& m = *missing->add_values()->mutable_struct_value()->mutable_fields();
    m["name"].set_string_value(cap.name);
    m["support"].set_string_value(CapSupportName(cap.support));
    m["errno"].set_number_value(cap.error);
    m["reason"].set_string_value(cap.reason);
  }
  auto* steps = f["steps"].mutable_list_value();
  for (const SelftestStep& step : result.steps) {
    auto& s = *steps->add_values()->mutable_struct_value()->mutable_fields();
    s["name"].set_string_value(step.name);
    s["passed"].set_bool_value(step.passed);
    s["detail"].set_string_value(step.detail);
  }
  return ToJson(out);
}

int RunSelftest(const std::vector<std::string>&) {
  const bool json = absl::GetFlag(FLAGS_json);
  const std::string nic = absl::GetFlag(FLAGS_nic);
  const bool simulated = absl::GetFlag(FLAGS_simulated);
  const int32_t memory_mb = absl::GetFlag(FLAGS_memory_mb);
  const int32_t dmabuf_fd = absl::GetFlag(FLAGS_dmabuf_fd);
  if (nic.empty()) return UsageError("selftest", "--nic is required");
  if (absl::StrContains(nic, ",")) {
    return UsageError("selftest", "--nic takes one NIC");
  }
  if (memory_mb < 1 || memory_mb > 65536) {
    return UsageError("selftest", "--memory_mb must be in 1..65536");
  }
  if (dmabuf_fd < -1) {
    return UsageError("selftest",
                      "--dmabuf_fd must be a file descriptor or -1");
  }
  if (dmabuf_fd >= 0 && fcntl(dmabuf_fd, F_GETFD) < 0) {
    return UsageError(
        "selftest", absl::StrCat("--dmabuf_fd=", dmabuf_fd, ": fd ", dmabuf_fd,
                                 " is not open in this process (it must "
                                 "be inherited)"));
  }
  const size_t bytes = static_cast<size_t>(memory_mb) << 20;

  std::unique_ptr<NicControl> control;
  uint32_t ifindex = if_nametoindex(nic.c_str());
  if (simulated) {
    SimulatedNicSpec spec;
    spec.name = nic;
    // A real link of that name lends its ifindex, for recognisable output.
    spec.ifindex = ifindex != 0 ? ifindex : 1;
    ifindex = spec.ifindex;
    absl::StatusOr<std::unique_ptr<SimulatedNic>> sim =
        SimulatedNic::Create({spec});
    if (!sim.ok()) {
      return UsageError("selftest",
                        absl::StrCat("--nic: ", sim.status().message()));
    }
    control = *std::move(sim);
  } else {
    if (ifindex == 0) {
      return Fail("selftest", absl::StrCat("no interface ", nic),
                  ErrnoStatus(errno, absl::StrCat("if_nametoindex ", nic)),
                  "`ip link` lists the interfaces; with --simulated any "
                  "name works");
    }
    if (!HasNetAdmin()) {
      return Fail("selftest", absl::StrCat("selftest on ", nic),
                  absl::PermissionDeniedError(kNeedsNetAdmin), kNetAdminHint);
    }
    absl::StatusOr<std::unique_ptr<KernelNicControl>> kernel =
        KernelNicControl::Create();
    if (!kernel.ok()) {
      const bool eperm =
          StatusErrno(kernel.status()) == EPERM ||
          kernel.status().code() == absl::StatusCode::kPermissionDenied;
      return Fail("selftest", "opening the kernel's ethtool and netdev netlink",
                  kernel.status(),
                  eperm ? absl::StrCat(kNeedsNetAdmin, ": ", kNetAdminHint)
                        : "the kernel needs ethtool netlink and the netdev "
                          "family (6.12+ for devmem)");
    }
    control = *std::move(kernel);
  }

  // The memory to bind: an inherited dma-buf, a memfd (simulated) or a
  // udmabuf; a missing exporter is reported by the probe, not here.
  UniqueFd owned;
  absl::StatusOr<int> fd = dmabuf_fd;
  std::string memory;
  if (dmabuf_fd >= 0) {
    memory = absl::StrCat("fd ", dmabuf_fd, " (",
                          DmabufKindName(ClassifyFd(dmabuf_fd)), ")");
  } else if (simulated) {
    absl::StatusOr<UniqueFd> memfd =
        CreateSealedMemfd(bytes, "devmemctl-selftest");
    if (!memfd.ok()) return Fail("selftest", "memfd", memfd.status());
    owned = *std::move(memfd);
    fd = owned.get_unowned();
    memory = absl::StrCat(memory_mb, " MiB memfd (simulated device memory)");
  } else {
    absl::StatusOr<UniqueFd> udmabuf = CreateUdmabuf(bytes);
    if (udmabuf.ok()) {
      owned = *std::move(udmabuf);
      fd = owned.get_unowned();
      memory = absl::StrCat(memory_mb, " MiB udmabuf dma-buf (host memory)");
    } else {
      fd = udmabuf.status();
      memory = "none (no dma-buf could be made)";
    }
  }

  const std::string backend = control->BackendName();
  if (!json) {
    if (simulated) {
      absl::PrintF(
          "SIMULATED devmem selftest on %s (simulated NIC, ifindex %u): not "
          "real hardware; memory: %s\n",
          nic, ifindex, memory);
    } else {
      absl::PrintF(
          "devmem selftest on %s (ifindex %u, %s backend); memory: %s\n", nic,
          ifindex, backend, memory);
    }
    std::fflush(stdout);
  }
  SelftestReporter report = [json](const SelftestStep& step) {
    // A failed probe is explained capability by capability below.
    if (json || (step.name == "probe" && !step.passed)) return;
    absl::PrintF("  %s  %s: %s\n", step.passed ? "PASS" : "FAIL", step.name,
                 step.detail);
    std::fflush(stdout);
  };
  const SelftestResult result =
      RunDevmemSelftest(*control, ifindex, nic, fd, report);

  if (json) {
    absl::PrintF(
        "%s\n", SelftestJson(nic, ifindex, backend, simulated, memory, result));
    return result.passed() ? kExitOk : kExitFailure;
  }
  if (!result.ran) {
    absl::PrintF(
        "cannot run: %s lacks what devmem needs; nothing was "
        "changed\n",
        nic);
    bool no_dmabuf = false;
    for (const Capability& cap : result.missing) {
      absl::PrintF("  %s\n", CapabilityLine(CapabilityProto(cap)));
      no_dmabuf |= cap.name == "dma-buf";
    }
    absl::FPrintF(
        stderr,
        "  hint: devmem RX needs a NIC with header split, ntuple and RSS "
        "whose driver binds unreadable memory (bnxt from 6.16, mlx5 from "
        "6.17, fbnic and gve from 6.18)%s\n",
        no_dmabuf ? ", and a dma-buf: modprobe udmabuf, or pass GPU memory "
                    "with --dmabuf_fd"
                  : "");
    return kExitFailure;
  }
  const size_t failed =
      std::count_if(result.steps.begin(), result.steps.end(),
                    [](const SelftestStep& s) { return !s.passed; });
  absl::PrintF("%sresult: %s; %s\n", simulated ? "SIMULATED " : "",
               failed == 0
                   ? absl::StrCat("PASSED (", result.steps.size(), " steps)")
                   : absl::StrCat("FAILED (", failed, " of ",
                                  result.steps.size(), " steps)"),
               result.restored
                   ? absl::StrCat(nic, " restored as recorded")
                   : absl::StrCat(nic, " NOT restored: see the restore step"));
  return result.passed() ? kExitOk : kExitFailure;
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
      {"nic show",
       "[NIC...] [--nic=a,b]",
       "Show the NIC profiles: original, desired and actual settings.",
       "Show, per NIC devmemd manages (or the NICs named), the profile state "
       "(applied, not devmem-capable, failed, restored, unmanaged) and why, "
       "each missing capability with the kernel's errno and message, a table "
       "of the original (recorded), desired and actual channels, "
       "tcp-data-split, hds-thresh, ntuple and RSS spread, and the devmem "
       "queue pool, free queues, bindings, rules and quota, backend and the "
       "record's path.",
       {{"nic", "Comma-separated NIC names to show (default all)."}},
       /*takes_positional=*/true,
       RunNicShow},
      {"nic restore",
       "NIC",
       "Release a NIC's leases, put back its recorded settings (admin).",
       "Ask devmemd to release every binding and rule on NIC and restore the "
       "settings it recorded before its first change, then print what was "
       "released and the NIC's state. Admin only: uid 0 or admin_uids.",
       {{"nic", "The NIC to restore (or give it as the argument)."}},
       /*takes_positional=*/true,
       RunNicRestore},
      {"listen",
       "--nic IF [--addr IP] [--port P] [--output FILE|-] [--expect_pattern] "
       "[--max_bytes N] [--bind_memfd_mb N | --dmabuf_fd FD [--queues N]]",
       "Receive one TCP stream on a socket from devmemd.",
       "Get a listening TCP socket bound to IF from devmemd, print "
       "\"listening on IP:PORT ...\" to stderr, accept one connection, read "
       "it to EOF and report bytes, seconds and Gbit/s. With --bind_memfd_mb "
       "or --dmabuf_fd the memory is first bound to IF's devmem pool "
       "(BindRx) and the listener's flows are steered to it; the binding and "
       "the steering rule are printed to stderr (and as JSON with --json).",
       {{"nic", "NIC the socket is bound to (required)."},
        {"addr"},
        {"port"},
        {"family"},
        {"backlog"},
        {"output"},
        {"expect_pattern"},
        {"max_bytes"},
        {"bind_memfd_mb"},
        {"dmabuf_fd"},
        {"queues"}},
       /*takes_positional=*/false,
       RunListen},
      {"connect",
       "--nic IF --remote IP:PORT [--local IP[:PORT]] [--timeout_ms MS] "
       "[--bytes N [--pattern] | --input FILE|-]",
       "Send one TCP stream on a socket from devmemd.",
       "Get a TCP socket bound to IF and connected to --remote from devmemd, "
       "send --bytes (or --input), shut down writing, wait for the receiver "
       "to close, and report bytes sent. With --bind_memfd_mb or --dmabuf_fd "
       "the memory is first bound to IF's devmem pool (BindRx) and the "
       "connection's incoming flow is steered to it (5-tuple, or the 3-tuple "
       "if the NIC refuses it); binding and rule go to stderr.",
       {{"nic", "NIC the socket is bound to (required)."},
        {"remote"},
        {"local"},
        {"timeout_ms"},
        {"bytes"},
        {"pattern"},
        {"input"},
        {"bind_memfd_mb"},
        {"dmabuf_fd"},
        {"queues"}},
       /*takes_positional=*/false,
       RunConnect},
      {"selftest",
       "--nic IF [--simulated] [--memory_mb N] [--dmabuf_fd FD]",
       "Run the kernel's devmem test sequence on a NIC (ncdevmem).",
       "Run, in this process and without devmemd, the kernel's own devmem "
       "acceptance sequence (tools/testing/selftests/drivers/net/hw/ncdevmem.c "
       "test mode) on IF: probe channels, rings, ntuple, RSS and queues; "
       "record them; keep the upper half of the RX queues out of RSS; header "
       "split on; then (a) a bind without queues must fail, (b) a bind with "
       "header split off must fail, (c) a bind on the upper half must succeed "
       "and show in queue-get, (d) shrinking channels under it must fail, (e) "
       "closing its netlink socket must unbind; finally put everything back as "
       "recorded. Each step prints PASS or FAIL with the kernel's text. If "
       "the NIC cannot do devmem it says why (each missing capability with "
       "errno and message) and changes nothing. The memory is a udmabuf "
       "dma-buf (needs /dev/udmabuf) or --dmabuf_fd. Needs CAP_NET_ADMIN; "
       "--simulated runs on a simulated NIC instead, needing nothing. Do not "
       "run it on a NIC devmemd is using (`devmemctl nic restore IF` first). "
       "Exit 0 only if every step passed and the NIC was restored.",
       {{"nic", "The NIC to test (required)."},
        {"simulated"},
        {"memory_mb"},
        {"dmabuf_fd",
         "An inherited dma-buf fd to bind instead of a udmabuf "
         "(e.g. exported GPU memory)."}},
       /*takes_positional=*/false,
       RunSelftest},
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
        flags.push_back({absl::StrCat(name.substr(2)), flag, "false"});
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
    flags.push_back({flag_name, flag, absl::StrCat(value)});
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
    positional.erase(positional.begin());
    help = true;
  }
  const auto find = [&commands](const std::string& n) -> const Command* {
    for (const Command& c : commands) {
      if (n == c.name) return &c;
    }
    return nullptr;
  };
  const Command* command = find(name);
  // Two-word commands ("nic show"): `name` is their group.
  std::vector<std::string> group;
  for (const Command& c : commands) {
    if (absl::StartsWith(c.name, name + " ")) {
      group.push_back(
          std::string(absl::string_view(c.name).substr(name.size() + 1)));
    }
  }
  if (command == nullptr && !group.empty()) {
    if (!positional.empty() && find(name + " " + positional[0]) != nullptr) {
      command = find(name + " " + positional[0]);
      positional.erase(positional.begin());
    } else if (help && positional.empty()) {
      absl::PrintF("usage: devmemctl %s <%s> [flags]\n\n", name,
                   absl::StrJoin(group, "|"));
      for (const Command& c : commands) {
        if (absl::StartsWith(c.name, name + " ")) {
          absl::PrintF("  %-12s %s\n", c.name, c.brief);
        }
      }
      return kExitOk;
    } else {
      return UsageError(
          name,
          absl::StrCat(positional.empty() ? "needs a subcommand"
                                          : absl::StrCat("unknown subcommand '",
                                                         positional[0], "'"),
                       "; one of: ", absl::StrJoin(group, ", ")));
    }
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
