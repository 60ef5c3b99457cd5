// load_bench: what 1000 concurrent sessions of 8 sockets cost devmemd, in
// memory, and what they cost a workload, in time, next to opening the same
// sockets without the daemon.
//
// Real processes: devmemd (no NIC profile, sockets on lo) and
// tests/load/load_driver, which opens --sessions sessions from --threads
// threads and takes --sockets sockets in each (--connects of them Connect to
// a local listener, the rest Listen on 127.0.0.1 port 0), checking every fd.
// Three paths per round, in alternating order:
//
//   shared      one client process: its 1000 gRPC channels share one
//               connection (what gRPC does within a process)
//   per-conn    a gRPC connection per session (as 1000 separate workload
//               processes would have)
//   direct      the baseline: the driver opens and checks the same sockets
//               itself (socket, SO_BINDTODEVICE, bind, listen / connect)
//
// Each daemon path gets a fresh devmemd, so its idle -> loaded growth is its
// own. Printed: devmemd VmRSS idle / loaded / after close, per session, the
// loaded/idle ratio, fds, and the median wall time to open everything with
// its ratio to the direct baseline. Figures only: nothing is asserted.
//
//   bazel run -c opt //bench:load_bench
//   bazel run -c opt //bench:load_bench -- --rounds=5 --sessions=500
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "bench/runfiles_path.h"
#include "tests/testing/process.h"
#include "tools/cpp/runfiles/runfiles.h"

ABSL_FLAG(std::string, devmemd, "",
          "Path of devmemd. Empty: the runfiles copy (bazel run), else "
          "$BUILD_WORKSPACE_DIRECTORY/bazel-bin/daemon/devmemd, else "
          "bazel-bin/daemon/devmemd.");
ABSL_FLAG(std::string, load_driver, "",
          "Path of load_driver; same defaults as --devmemd "
          "(tests/load/load_driver).");
ABSL_FLAG(int, sessions, 1000, "Concurrent sessions.");
ABSL_FLAG(int, sockets, 8, "Sockets per session.");
ABSL_FLAG(int, connects, 2, "Of --sockets, how many are Connect.");
ABSL_FLAG(int, threads, 8, "Client threads.");
ABSL_FLAG(int, rounds, 3, "Rounds of the three paths.");

namespace devmem {
namespace {

using ::devmem::testing::FdCount;
using ::devmem::testing::LineFields;
using ::devmem::testing::Proc;
using ::devmem::testing::ProcStatusField;
using ::devmem::testing::RaiseFdLimit;

// devmemd as a child, once it printed "ready:"; its log is drained from then
// on so that it never blocks on a write.
absl::StatusOr<Proc> StartDaemon(const std::string& binary,
                                 const std::string& dir,
                                 const std::string& state_dir) {
  Proc p = Proc::Spawn({binary, absl::StrCat("--runtime_dir=", dir),
                        absl::StrCat("--state_dir=", state_dir),
                        absl::StrCat("--allow_uids=", ::getuid())});
  if (!p.running()) {
    return absl::InternalError(absl::StrCat("could not spawn ", binary));
  }
  // "devmemd <version>: ready: ..."
  const auto ready = p.WaitLine("devmemd ");
  if (!ready || !absl::StrContains(*ready, ": ready: ")) {
    return absl::UnavailableError(
        absl::StrCat("devmemd did not get ready:\n", p.output()));
  }
  p.DrainInBackground();
  return p;
}

struct Run {
  std::string path;
  double open_s = 0;
  double close_s = 0;
  int64_t sessions = 0;
  int64_t sockets = 0;
  int64_t bad = 0;
  // devmemd, for the daemon paths.
  int64_t idle_kib = 0;
  int64_t loaded_kib = 0;
  int64_t after_kib = 0;
  int idle_fds = 0;
  int loaded_fds = 0;
  int after_fds = 0;
};

struct Setup {
  std::string devmemd;
  std::string driver;
  int sessions, sockets, connects, threads;
};

// One path: "direct", "shared" or "per-conn".
absl::StatusOr<Run> RunPath(const Setup& s, const std::string& path,
                            int round) {
  Run r;
  r.path = path;
  const std::string dir = absl::StrCat("/tmp/dmlb-", ::getpid(), "-", round);
  const std::string state =
      absl::StrCat("/tmp/dmlb-state-", ::getpid(), "-", round, "-", path);
  Proc daemon;  // not running() on the direct path
  std::vector<std::string> args = {s.driver,
                                   absl::StrCat("--sessions=", s.sessions),
                                   absl::StrCat("--sockets=", s.sockets),
                                   absl::StrCat("--connects=", s.connects),
                                   absl::StrCat("--threads=", s.threads)};
  if (path == "direct") {
    args.push_back("--direct");
  } else {
    absl::StatusOr<Proc> started = StartDaemon(s.devmemd, dir, state);
    if (!started.ok()) return started.status();
    daemon = *std::move(started);
    r.idle_kib = ProcStatusField(daemon.pid(), "VmRSS");
    r.idle_fds = FdCount(daemon.pid());
    args.push_back(absl::StrCat("--runtime_dir=", dir));
    args.push_back(absl::StrCat("--connection_per_session=",
                                path == "per-conn" ? "true" : "false"));
  }
  Proc driver = Proc::Spawn(args, /*env=*/{}, /*fds=*/{},
                            /*listen_pid=*/false, /*merge_stderr=*/false);
  if (!driver.running()) {
    return absl::InternalError(absl::StrCat("could not spawn ", s.driver));
  }
  const absl::Time deadline = absl::Now() + absl::Minutes(10);
  std::optional<std::string> line;
  while ((line = driver.WaitLine("", deadline - absl::Now()))) {
    if (absl::StartsWith(*line, "FAIL ")) {
      std::fprintf(stderr, "load_bench: %s: %s\n", path.c_str(), line->c_str());
    }
    if (absl::StartsWith(*line, "SKIP ")) {
      driver.Kill();
      return absl::FailedPreconditionError(line->substr(5));
    }
    if (absl::StartsWith(*line, "OPENED ") ||
        absl::StartsWith(*line, "DIRECT ")) {
      break;
    }
  }
  if (!line) {
    driver.Kill();
    return absl::InternalError("load_driver stopped before opening");
  }
  std::map<std::string, int64_t> f = LineFields(*line);
  r.open_s = static_cast<double>(f["wall_us"]) / 1e6;
  r.sessions = f["sessions"];
  r.sockets = f["sockets"];
  r.bad = f["bad"];
  if (daemon.running()) {
    r.loaded_kib = ProcStatusField(daemon.pid(), "VmRSS");
    r.loaded_fds = FdCount(daemon.pid());
  }
  (void)driver.Send("close");
  line = driver.WaitLine("", deadline - absl::Now());
  if (line && absl::StartsWith(*line, "CLOSED ")) {
    r.close_s = static_cast<double>(LineFields(*line)["wall_us"]) / 1e6;
  }
  driver.CloseStdin();  // EOF: the driver exits
  (void)driver.Wait(absl::Minutes(1));
  if (daemon.running()) {
    // Closing is asynchronous in the daemon: give it until its fds are back.
    const absl::Time until = absl::Now() + absl::Seconds(30);
    while (FdCount(daemon.pid()) != r.idle_fds && absl::Now() < until) {
      absl::SleepFor(absl::Milliseconds(10));
    }
    r.after_kib = ProcStatusField(daemon.pid(), "VmRSS");
    r.after_fds = FdCount(daemon.pid());
    (void)daemon.Terminate();
  }
  ::rmdir(dir.c_str());
  std::filesystem::remove_all(state);
  return r;
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

double MiB(int64_t kib) { return static_cast<double>(kib) / 1024.0; }

// One script, top to bottom: find the binaries, measure the baseline (no
// daemon), then devmemd idle and loaded, print the ratios. Longer than 80
// lines on purpose: the phases share the daemon and the figures, and read
// best in the order they run.
int Main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  std::string error;
  std::unique_ptr<bazel::tools::cpp::runfiles::Runfiles> runfiles(
      bazel::tools::cpp::runfiles::Runfiles::Create(argv[0], &error));
  Setup s;
  s.devmemd = Executable(absl::GetFlag(FLAGS_devmemd), runfiles.get(),
                         "daemon/devmemd");
  s.driver = Executable(absl::GetFlag(FLAGS_load_driver), runfiles.get(),
                        "tests/load/load_driver");
  s.sessions = absl::GetFlag(FLAGS_sessions);
  s.sockets = absl::GetFlag(FLAGS_sockets);
  s.connects = absl::GetFlag(FLAGS_connects);
  s.threads = absl::GetFlag(FLAGS_threads);
  const int rounds = absl::GetFlag(FLAGS_rounds);
  if (s.sessions < 1 || s.sockets < 1 || s.connects < 0 ||
      s.connects > s.sockets || s.threads < 1 || rounds < 1) {
    std::fprintf(stderr,
                 "load_bench: bad --sessions/--sockets/--connects/"
                 "--threads/--rounds\n");
    return 2;
  }
  for (const std::string& p : {s.devmemd, s.driver}) {
    if (::access(p.c_str(), X_OK) != 0) {
      std::fprintf(stderr,
                   "load_bench: %s: %s (build it, or pass --devmemd / "
                   "--load_driver)\n",
                   p.c_str(), std::strerror(errno));
      return 1;
    }
  }
  absl::Status limit = RaiseFdLimit(
      static_cast<rlim_t>(s.sessions) * (1 + s.sockets + s.connects) + 512);
  if (!limit.ok()) {
    std::printf("load_bench: SKIPPED: %s (or pass a smaller --sessions)\n",
                std::string(limit.message()).c_str());
    return 0;
  }
  ::signal(SIGPIPE, SIG_IGN);
  std::printf(
      "load_bench: %d sessions x %d sockets (%d Listen + %d Connect) on lo, "
      "%d client threads, %d rounds\n  devmemd=%s\n  load_driver=%s\n",
      s.sessions, s.sockets, s.sockets - s.connects, s.connects, s.threads,
      rounds, s.devmemd.c_str(), s.driver.c_str());

  const std::vector<std::string> paths = {"direct", "shared", "per-conn"};
  std::map<std::string, std::vector<Run>> runs;
  for (int round = 0; round < rounds; ++round) {
    std::vector<std::string> order = paths;
    if (round % 2 == 1) std::reverse(order.begin(), order.end());
    for (const std::string& path : order) {
      auto r = RunPath(s, path, round);
      if (!r.ok()) {
        if (r.status().code() == absl::StatusCode::kFailedPrecondition) {
          std::printf("load_bench: SKIPPED: %s\n",
                      std::string(r.status().message()).c_str());
          return 0;
        }
        std::fprintf(stderr, "load_bench: %s: %s\n", path.c_str(),
                     r.status().ToString().c_str());
        return 1;
      }
      std::printf(
          "  round %d %-8s open %7.3f s  close %6.3f s  sessions %lld  "
          "sockets %lld  bad %lld",
          round + 1, path.c_str(), r->open_s, r->close_s,
          static_cast<long long>(r->sessions),
          static_cast<long long>(r->sockets), static_cast<long long>(r->bad));
      if (path != "direct") {
        std::printf(
            "  devmemd RSS %.1f -> %.1f -> %.1f MiB, fds %d -> %d -> %d",
            MiB(r->idle_kib), MiB(r->loaded_kib), MiB(r->after_kib),
            r->idle_fds, r->loaded_fds, r->after_fds);
      }
      std::printf("\n");
      std::fflush(stdout);
      runs[path].push_back(*r);
    }
  }

  auto median_of = [&](const std::string& path, auto field) {
    std::vector<double> v;
    for (const Run& r : runs[path]) v.push_back(field(r));
    return Median(v);
  };
  const double direct_open =
      median_of("direct", [](const Run& r) { return r.open_s; });
  const int total = s.sessions * s.sockets;
  std::printf("\n%-10s %10s %10s %10s %12s %12s %10s %10s %12s %9s\n", "path",
              "idle MiB", "loaded MiB", "after MiB", "KiB/session",
              "loaded/idle", "fds", "open s", "us/socket", "vs direct");
  for (const std::string& path : paths) {
    const double open = median_of(path, [](const Run& r) { return r.open_s; });
    if (path == "direct") {
      std::printf("%-10s %10s %10s %10s %12s %12s %10s %10.3f %12.1f %8.2fx\n",
                  path.c_str(), "-", "-", "-", "-", "-", "-", open,
                  open * 1e6 / total, 1.0);
      continue;
    }
    const double idle =
        median_of(path, [](const Run& r) { return MiB(r.idle_kib); });
    const double loaded =
        median_of(path, [](const Run& r) { return MiB(r.loaded_kib); });
    const double after =
        median_of(path, [](const Run& r) { return MiB(r.after_kib); });
    const double fds = median_of(
        path, [](const Run& r) { return static_cast<double>(r.loaded_fds); });
    std::printf(
        "%-10s %10.1f %10.1f %10.1f %12.1f %11.2fx %10.0f %10.3f %12.1f "
        "%8.2fx\n",
        path.c_str(), idle, loaded, after,
        (loaded - idle) * 1024.0 / s.sessions, loaded / idle, fds, open,
        open * 1e6 / total, open / direct_open);
  }
  std::printf(
      "\nMedians over %d rounds. open s: wall time from the first "
      "Session::Open (or socket()) to the last socket received and checked; "
      "vs direct: that time over the direct baseline's. Product goals: "
      "devmemd idle < 32 MiB, loaded < 64 MiB.\n",
      rounds);
  return 0;
}

}  // namespace
}  // namespace devmem

int main(int argc, char** argv) { return devmem::Main(argc, argv); }
