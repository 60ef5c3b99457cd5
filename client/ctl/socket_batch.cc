#include "client/ctl/socket_batch.h"

#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "client/ctl/cli.h"
#include "client/host_port.h"

ABSL_FLAG(absl::Duration, hold, absl::ZeroDuration(),
          "listen/connect --count: keep the sockets open this long after "
          "reporting them (e.g. 10m), then close them.");

namespace devmem::ctl {
namespace {

namespace v1 = ::devmem::v1;

std::string SocketLine(const v1::SocketResponse& info, bool listener) {
  std::string line =
      listener
          ? absl::StrCat("listening on ",
                         FormatHostPort(info.local().ip(), info.local().port()))
          : absl::StrCat(
                "connected to ",
                FormatHostPort(info.remote().ip(), info.remote().port()),
                " from ",
                FormatHostPort(info.local().ip(), info.local().port()));
  if (info.has_rule()) {
    absl::StrAppend(
        &line, ", rule at ", info.rule().location(), " -> ",
        info.rule().has_rss_context()
            ? absl::StrCat("rss context ", info.rule().rss_context())
            : absl::StrCat("queue ", info.rule().queue()),
        info.rule().five_tuple() ? " (5-tuple)" : " (3-tuple)");
  }
  return line;
}

// One JSON object: the figures and every socket's answer or error, as
// devmem.v1.SocketResult.
void PrintJson(const char* command,
               const std::vector<absl::StatusOr<SocketHandle>>& sockets,
               int failed, absl::Duration wall) {
  std::vector<std::string> items;
  for (const auto& s : sockets) {
    // The daemon's own per-item answer shape (OpenSocketsResponse).
    v1::SocketResult result;
    if (s.ok()) {
      *result.mutable_socket() = s->info;
    } else {
      result.set_code(static_cast<int>(s.status().code()));
      result.set_message(absl::StrCat(s.status().message()));
    }
    items.push_back(ToJson(result));
  }
  absl::PrintF(
      "{\"command\":\"%s\",\"count\":%d,\"opened\":%d,\"failed\":%d,"
      "\"wall_ms\":%.3f,\"sockets\":[%s]}\n",
      command, static_cast<int>(sockets.size()),
      static_cast<int>(sockets.size()) - failed, failed,
      absl::ToDoubleMilliseconds(wall), absl::StrJoin(items, ","));
}

}  // namespace

int OpenManySockets(const char* command, Session& session,
                    const SocketSpec& spec, int count) {
  const bool listener = spec.listen.has_value();
  std::vector<SocketSpec> specs(static_cast<size_t>(count), spec);
  const absl::Time start = absl::Now();
  auto sockets = session.OpenSockets(specs);
  const absl::Duration wall = absl::Now() - start;
  if (!sockets.ok()) {
    return Fail(command, absl::StrCat("OpenSockets of ", count, " sockets"),
                sockets.status());
  }
  int failed = 0;
  for (size_t i = 0; i < sockets->size(); ++i) {
    const auto& s = (*sockets)[i];
    if (!s.ok()) ++failed;
    if (absl::GetFlag(FLAGS_json)) continue;
    if (s.ok()) {
      absl::PrintF("%zu: %s\n", i, SocketLine(s->info, listener));
    } else {
      absl::PrintF("%zu: failed: %s\n", i, s.status().ToString());
    }
  }
  if (absl::GetFlag(FLAGS_json)) {
    PrintJson(command, *sockets, failed, wall);
  }
  const double secs = absl::ToDoubleSeconds(wall);
  absl::FPrintF(stderr,
                "devmemctl %s: %d of %d sockets made in %.1f ms (%.0f/s), %d "
                "failed\n",
                command, count - failed, count, secs * 1e3,
                secs > 0 ? (count - failed) / secs : 0.0, failed);
  std::fflush(stdout);
  std::fflush(stderr);
  const absl::Duration hold = absl::GetFlag(FLAGS_hold);
  if (hold > absl::ZeroDuration()) absl::SleepFor(hold);
  return failed == 0 ? kExitOk : kExitFailure;
}

}  // namespace devmem::ctl
