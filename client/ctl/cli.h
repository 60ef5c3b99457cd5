#pragma once

// What every devmemctl command shares: the command table's shape, exit
// codes, the global and shared flags, error printing with hints, the devmemd
// session, and I/O helpers. Each command group lives in a file of its own
// (inventory.cc, nic.cc, sockets.cc, selftest.cc, reservations.cc, host.cc,
// gres.cc) and
// returns its rows of the command table; main.cc parses the command line and
// dispatches.

#include <sys/socket.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <google/protobuf/message.h>

#include "absl/flags/declare.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "client/libdevmem.h"
#include "kernel/unique_fd.h"
#include "proto/devmem/v1/devmem.pb.h"

ABSL_DECLARE_FLAG(std::string, runtime_dir);
ABSL_DECLARE_FLAG(bool, json);
ABSL_DECLARE_FLAG(std::string, nic);
ABSL_DECLARE_FLAG(int32_t, dmabuf_fd);
ABSL_DECLARE_FLAG(bool, reconnect);

namespace devmem {
namespace ctl {

inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;
inline constexpr int kExitUsage = 2;

inline constexpr size_t kIoChunk = 1 << 20;

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

// The rows of the command table, one function per command group, in the
// order `devmemctl --help` lists them.
std::vector<Command> InventoryCommands();    // nics, status
std::vector<Command> NicCommands();          // nic show, nic restore
std::vector<Command> SocketCommands();       // listen, connect
std::vector<Command> SelftestCommands();     // selftest
std::vector<Command> ReservationCommands();  // reserve, renew, release, ...
std::vector<Command> HostCommands();         // cordon, uncordon, drain, watch
std::vector<Command> GresCommands();         // gres-conf (Slurm)

// Prints "devmemctl CMD: MESSAGE" and where to find usage; returns
// kExitUsage.
int UsageError(const std::string& command, const std::string& message);
// Prints "devmemctl CMD: WHAT: STATUS" and, when there is one, a hint on
// what to try next. Returns the runtime-failure exit code.
int Fail(const char* command, absl::string_view what,
         const absl::Status& status, absl::string_view hint = "");
// Generic hints for the codes devmemd returns (docs/PROTOCOL.md, section 5).
std::string HintFor(const absl::Status& status);
// A session with the devmemd at --runtime_dir (reconnecting if --reconnect).
absl::StatusOr<std::unique_ptr<Session>> OpenSession();
int FailOpen(const char* command, const absl::Status& status);
// One JSON line with proto field names.
std::string ToJson(const google::protobuf::Message& message);
double Gbps(uint64_t bytes, double seconds);
// Opens --output/--input style paths: "-" is stdout/stdin (dup'ed, so that
// every fd is owned by a UniqueFd).
absl::StatusOr<UniqueFd> OpenPath(const std::string& path, bool for_write);
absl::Status WriteAll(int fd, const char* data, size_t size, const char* what);
absl::Status SendAll(int fd, const char* data, size_t size);
// One period of the test pattern, so senders and checkers can memcpy/memcmp.
const std::string& PatternPeriod();
// -1 if data (at stream offset `offset`) matches the pattern, else the index
// of the first bad byte.
int64_t CheckPattern(uint64_t offset, absl::string_view data);
std::string PeerName(const sockaddr_storage& addr);
// "supported", "unsupported", ...; and a capability as one line:
// "name: unsupported (errno 95): reason".
const char* SupportName(v1::Support support);
// Table cells: a number if present, else "-"; a string, or "-" if empty.
std::string Opt(bool has, uint32_t value);
std::string Dash(const std::string& s);
// Rows as left-aligned columns two spaces apart, each line after `indent`.
void PrintTable(const std::vector<std::vector<std::string>>& rows,
                absl::string_view indent = "");
// Queue ids as ranges: "0-3,6", "-" for none.
std::string QueueRanges(std::vector<uint32_t> queues);
template <typename Repeated>
std::string QueueRanges(const Repeated& queues) {
  return QueueRanges(std::vector<uint32_t>(queues.begin(), queues.end()));
}
std::string CapabilityLine(const v1::Capability& cap);

}  // namespace ctl
}  // namespace devmem
