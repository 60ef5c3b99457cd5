// load_bench: what 1000 concurrent sessions of 8 sockets cost devmemd, in
// memory, and what they cost a workload, in time, next to opening the same
// sockets without the daemon; and what steered, journaled sockets cost at a
// job's scale, batched and not.
//
// Real processes: devmemd and tests/load/load_driver, which opens --sessions
// sessions from --threads threads and takes --sockets sockets in each
// (--connects of them Connect to a local listener, the rest Listen on
// 127.0.0.1 port 0), checking every fd. Paths (--paths), each round in
// alternating order:
//
//   direct      the baseline: the driver opens and checks the same sockets
//               itself (socket, SO_BINDTODEVICE, bind, listen / connect)
//   shared      devmemd without a NIC profile; one client process: its 1000
//               gRPC channels share one connection (what gRPC does within a
//               process)
//   per-conn    the same with a gRPC connection per session (as 1000
//               separate workload processes would have)
//   plain-batch as shared, but one OpenSockets call per session (not in
//               the default --paths: it shows what batching alone changes)
//   steered     (a) devmemd on a simulated devmem NIC over lo with a pool of
//               --sessions queues, journal on the disk under --state_root:
//               each session binds a memfd (1 queue) and every socket is
//               steered to it (an ntuple rule each), one Listen or Connect
//               call per socket
//   batched     (a) the same sockets with one OpenSockets call per session
//               (tickets redeemed with RedeemMany)
//   bound-only  (a) the same sessions and bindings without any socket: the
//               fixed part of shape (a), which direct does not have at all;
//               batched minus this is what the sockets themselves cost
//   direct-1s   (b) the baseline for one session: 1 x (--sessions x
//               --sockets) sockets opened by the driver itself, one thread
//   batched-1s  (b) one session, one binding, all of those sockets steered
//               and taken with OpenSocketsEach (each checked as its call
//               comes back)
//
// Each daemon path gets a fresh devmemd, so its idle -> loaded growth is its
// own. Printed: devmemd VmRSS idle / loaded / after close, per session, the
// loaded/idle ratio, fds, and the median wall time to open everything with
// its ratio to the direct baseline of its shape; for the steered paths the
// journal's fdatasyncs per socket, the disk's fdatasync p50, and whether the
// goal (steered + journaled within 2x of direct) is met. Figures only:
// nothing is asserted.
//
//   bazel run -c opt //bench:load_bench
//   bazel run -c opt //bench:load_bench -- --rounds=5 --sessions=500
//   bazel run -c opt //bench:load_bench -- --paths=direct,batched
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
#include "absl/flags/usage.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "bench/devmemd_child.h"
#include "bench/fsync_probe.h"
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
ABSL_FLAG(int, sessions, 1000,
          "Concurrent sessions (at most 1024 with a steered path: one pool "
          "queue per session).");
ABSL_FLAG(int, sockets, 8, "Sockets per session.");
ABSL_FLAG(int, connects, 2, "Of --sockets, how many are Connect.");
ABSL_FLAG(int, threads, 8, "Client threads.");
ABSL_FLAG(int, rounds, 3, "Rounds of the paths.");
ABSL_FLAG(std::string, paths,
          "direct,shared,per-conn,steered,batched,bound-only,direct-1s,"
          "batched-1s",
          "Comma-separated paths to run (see the top of load_bench.cc).");
ABSL_FLAG(std::string, state_root, "/var/tmp",
          "Where the steered paths' devmemd keeps its journal: a real disk "
          "(not tmpfs), so that its fdatasyncs cost what they cost.");

namespace devmem {
namespace {

using ::devmem::testing::FdCount;
using ::devmem::testing::LineFields;
using ::devmem::testing::Proc;
using ::devmem::testing::ProcStatusField;
using ::devmem::testing::RaiseFdLimit;

enum class DaemonKind { kNone, kPlain, kSteered };

struct PathSpec {
  const char* name;
  DaemonKind daemon;
  bool one_session;  // shape (b): all sockets in one session
  std::vector<std::string> driver_flags;
  bool no_sockets = false;  // sessions (and bindings) only
};

const std::vector<PathSpec>& AllPaths() {
  static const auto* paths = new std::vector<PathSpec>{
      {"direct", DaemonKind::kNone, false, {"--direct"}},
      {"shared", DaemonKind::kPlain, false, {"--connection_per_session=false"}},
      {"per-conn",
       DaemonKind::kPlain,
       false,
       {"--connection_per_session=true"}},
      {"plain-batch", DaemonKind::kPlain, false, {"--batch"}},
      {"steered", DaemonKind::kSteered, false, {"--steer"}},
      {"batched", DaemonKind::kSteered, false, {"--steer", "--batch"}},
      {"bound-only", DaemonKind::kSteered, false, {"--steer"}, true},
      {"direct-1s", DaemonKind::kNone, true, {"--direct"}},
      {"batched-1s", DaemonKind::kSteered, true, {"--steer", "--batch"}},
  };
  return *paths;
}

struct Run {
  std::string path;
  double open_s = 0;
  double close_s = 0;
  int64_t sessions = 0;
  int64_t sockets = 0;
  int64_t bad = 0;
  int64_t journal_syncs = -1;
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
  std::string state_root;
  int sessions, sockets, connects, threads;
  std::vector<PathSpec> paths;
};

// The driver's command line for `path`: shape (b) puts every socket in one
// session, opened by one thread.
std::vector<std::string> DriverArgs(const Setup& s, const PathSpec& path,
                                    const std::string& runtime_dir) {
  const int k = path.one_session ? s.sessions : 1;
  std::vector<std::string> args = {
      s.driver, absl::StrCat("--sessions=", path.one_session ? 1 : s.sessions),
      absl::StrCat("--sockets=", path.no_sockets ? 0 : s.sockets * k),
      absl::StrCat("--connects=", path.no_sockets ? 0 : s.connects * k),
      absl::StrCat("--threads=", path.one_session ? 1 : s.threads)};
  if (path.daemon != DaemonKind::kNone) {
    args.push_back(absl::StrCat("--runtime_dir=", runtime_dir));
  }
  args.insert(args.end(), path.driver_flags.begin(), path.driver_flags.end());
  return args;
}

// A fresh devmemd for `path`: no NIC profile (plain), or a simulated devmem
// NIC over lo with a pool queue per session and its journal in `state`.
absl::StatusOr<Proc> StartDaemonFor(const Setup& s, const PathSpec& path,
                                    const std::string& dir,
                                    const std::string& state) {
  std::error_code ec;
  std::filesystem::create_directories(state, ec);
  if (ec) {
    return absl::InternalError(
        absl::StrCat("mkdir ", state, ": ", ec.message()));
  }
  if (path.daemon == DaemonKind::kPlain) {
    return StartDevmemd({s.devmemd, absl::StrCat("--runtime_dir=", dir),
                         absl::StrCat("--state_dir=", state),
                         absl::StrCat("--allow_uids=", ::getuid())});
  }
  SteeredNicSpec nic;
  nic.pool_queues = static_cast<uint32_t>(s.sessions);
  nic.rules = static_cast<uint32_t>(s.sessions * s.sockets + 64);
  nic.sessions = static_cast<uint32_t>(s.sessions);
  nic.uid = ::getuid();
  return StartSteeredDevmemd(s.devmemd, dir, state, nic);
}

// The driver's OPENED (or DIRECT) line, its FAIL lines echoed to stderr.
// FAILED_PRECONDITION for SKIP (the fd limit).
absl::StatusOr<std::string> AwaitOpened(Proc& driver, const std::string& path,
                                        absl::Time deadline) {
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
      return *line;
    }
  }
  driver.Kill();
  return absl::InternalError("load_driver stopped before opening");
}

// Closes the driver's sockets and sessions, lets it exit, and waits until
// devmemd (if running) holds its idle fd count again.
void CloseAndSettle(Proc& driver, Proc& daemon, absl::Time deadline, Run& r) {
  (void)driver.Send("close");
  std::optional<std::string> line = driver.WaitLine("", deadline - absl::Now());
  if (line && absl::StartsWith(*line, "CLOSED ")) {
    r.close_s = static_cast<double>(LineFields(*line)["wall_us"]) / 1e6;
  }
  driver.CloseStdin();  // EOF: the driver exits
  (void)driver.Wait(absl::Minutes(1));
  if (!daemon.running()) return;
  // Closing is asynchronous in the daemon: give it until its fds are back.
  const absl::Time until = absl::Now() + absl::Seconds(30);
  while (FdCount(daemon.pid()) != r.idle_fds && absl::Now() < until) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  r.after_kib = ProcStatusField(daemon.pid(), "VmRSS");
  r.after_fds = FdCount(daemon.pid());
  (void)daemon.Terminate();
}

absl::StatusOr<Run> RunPath(const Setup& s, const PathSpec& path, int round) {
  Run r;
  r.path = path.name;
  const std::string dir = absl::StrCat("/tmp/dmlb-", ::getpid(), "-", round);
  const std::string root =
      path.daemon == DaemonKind::kSteered ? s.state_root : "/tmp";
  const std::string state = absl::StrCat(root, "/dmlb-state-", ::getpid(), "-",
                                         round, "-", path.name);
  Proc daemon;  // not running() on the direct paths
  if (path.daemon != DaemonKind::kNone) {
    absl::StatusOr<Proc> started = StartDaemonFor(s, path, dir, state);
    if (!started.ok()) return started.status();
    daemon = *std::move(started);
    r.idle_kib = ProcStatusField(daemon.pid(), "VmRSS");
    r.idle_fds = FdCount(daemon.pid());
  }
  Proc driver = Proc::Spawn(DriverArgs(s, path, dir), /*env=*/{}, /*fds=*/{},
                            /*listen_pid=*/false, /*merge_stderr=*/false);
  if (!driver.running()) {
    return absl::InternalError(absl::StrCat("could not spawn ", s.driver));
  }
  const absl::Time deadline = absl::Now() + absl::Minutes(10);
  absl::StatusOr<std::string> opened = AwaitOpened(driver, r.path, deadline);
  if (!opened.ok()) return opened.status();
  std::map<std::string, int64_t> f = LineFields(*opened);
  r.open_s = static_cast<double>(f["wall_us"]) / 1e6;
  r.sessions = f["sessions"];
  r.sockets = f["sockets"];
  r.bad = f["bad"];
  r.journal_syncs = f.count("journal_syncs") ? f["journal_syncs"] : -1;
  if (daemon.running()) {
    r.loaded_kib = ProcStatusField(daemon.pid(), "VmRSS");
    r.loaded_fds = FdCount(daemon.pid());
  }
  CloseAndSettle(driver, daemon, deadline, r);
  ::rmdir(dir.c_str());
  std::error_code ec;
  std::filesystem::remove_all(state, ec);
  return r;
}

double Median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

double MiB(int64_t kib) { return static_cast<double>(kib) / 1024.0; }

using Runs = std::map<std::string, std::vector<Run>>;

template <typename F>
double MedianOf(const Runs& runs, const std::string& path, F field) {
  std::vector<double> v;
  auto it = runs.find(path);
  if (it == runs.end()) return 0;
  for (const Run& r : it->second) v.push_back(field(r));
  return Median(v);
}

double OpenS(const Run& r) { return r.open_s; }

void PrintRound(int round, const PathSpec& path, const Run& r) {
  std::printf(
      "  round %d %-10s open %7.3f s  close %6.3f s  sessions %lld  "
      "sockets %lld  bad %lld",
      round + 1, r.path.c_str(), r.open_s, r.close_s,
      static_cast<long long>(r.sessions), static_cast<long long>(r.sockets),
      static_cast<long long>(r.bad));
  if (path.daemon == DaemonKind::kSteered) {
    std::printf("  fdatasyncs %lld", static_cast<long long>(r.journal_syncs));
  }
  if (path.daemon != DaemonKind::kNone) {
    std::printf("  devmemd RSS %.1f -> %.1f -> %.1f MiB, fds %d -> %d -> %d",
                MiB(r.idle_kib), MiB(r.loaded_kib), MiB(r.after_kib),
                r.idle_fds, r.loaded_fds, r.after_fds);
  }
  std::printf("\n");
  std::fflush(stdout);
}

// The memory table of the unsteered paths (direct, shared, per-conn,
// plain-batch).
void PrintMemoryTable(const Setup& s, const Runs& runs) {
  if (runs.count("shared") + runs.count("per-conn") +
          runs.count("plain-batch") ==
      0) {
    return;
  }
  const double direct_open = MedianOf(runs, "direct", OpenS);
  const int total = s.sessions * s.sockets;
  std::printf("\n%-10s %10s %10s %10s %12s %12s %10s %10s %12s %9s\n", "path",
              "idle MiB", "loaded MiB", "after MiB", "KiB/session",
              "loaded/idle", "fds", "open s", "us/socket", "vs direct");
  for (const char* path : {"direct", "shared", "per-conn", "plain-batch"}) {
    if (runs.count(path) == 0) continue;
    const double open = MedianOf(runs, path, OpenS);
    if (std::string(path) == "direct") {
      std::printf("%-10s %10s %10s %10s %12s %12s %10s %10.3f %12.1f %8.2fx\n",
                  path, "-", "-", "-", "-", "-", "-", open, open * 1e6 / total,
                  1.0);
      continue;
    }
    const double idle =
        MedianOf(runs, path, [](const Run& r) { return MiB(r.idle_kib); });
    const double loaded =
        MedianOf(runs, path, [](const Run& r) { return MiB(r.loaded_kib); });
    const double after =
        MedianOf(runs, path, [](const Run& r) { return MiB(r.after_kib); });
    const double fds = MedianOf(runs, path, [](const Run& r) {
      return static_cast<double>(r.loaded_fds);
    });
    std::printf(
        "%-10s %10.1f %10.1f %10.1f %12.1f %11.2fx %10.0f %10.3f %12.1f "
        "%8.2fx\n",
        path, idle, loaded, after, (loaded - idle) * 1024.0 / s.sessions,
        loaded / idle, fds, open, open * 1e6 / total,
        direct_open > 0 ? open / direct_open : 0.0);
  }
}

// One row of the steered table: open time, fdatasyncs per socket, ratio to
// `baseline` (a direct path of the same shape), and the goal for batched
// paths.
void PrintSteeredRow(const Runs& runs, const std::string& path,
                     const std::string& baseline, int total, bool goal) {
  if (runs.count(path) == 0) return;
  const double open = MedianOf(runs, path, OpenS);
  const double base = MedianOf(runs, baseline, OpenS);
  const double syncs = MedianOf(runs, path, [](const Run& r) {
    return static_cast<double>(r.journal_syncs);
  });
  const double ratio = base > 0 ? open / base : 0;
  std::printf("%-12s %10.3f %10.1f", path.c_str(), open, open * 1e6 / total);
  if (path == baseline) {
    std::printf(" %10s %12s %9.2fx\n", "-", "-", 1.0);
    return;
  }
  std::printf(" %10.0f %12.3f", syncs, syncs / total);
  if (base <= 0) {
    std::printf(" %10s  (run %s for the ratio)\n", "-", baseline.c_str());
    return;
  }
  std::printf(
      " %9.2fx%s\n", ratio,
      goal ? (ratio <= 2.0 ? "  goal <= 2x: MET" : "  goal <= 2x: NOT MET")
           : "");
}

// Shape (a)'s fixed part: its sessions and bindings with no socket
// (bound-only), what that alone is against direct's whole time, and what the
// batched path's sockets cost on top of it.
void PrintSessionFloor(const Setup& s, const Runs& runs) {
  if (runs.count("bound-only") == 0) return;
  const double floor = MedianOf(runs, "bound-only", OpenS);
  const double direct = MedianOf(runs, "direct", OpenS);
  const double syncs = MedianOf(runs, "bound-only", [](const Run& r) {
    return static_cast<double>(r.journal_syncs);
  });
  std::printf("%-12s %10.3f %10s %10.0f %12s", "bound-only", floor, "-", syncs,
              "-");
  if (direct > 0) std::printf(" %9.2fx", floor / direct);
  std::printf("  (%d sessions + bindings, no socket: %.0f us/session)\n",
              s.sessions, floor * 1e6 / s.sessions);
  if (runs.count("batched") == 0 || direct <= 0) return;
  const double sockets = MedianOf(runs, "batched", OpenS) - floor;
  std::printf(
      "%-12s %10.3f %10.1f %10s %12s %9.2fx  (batched - bound-only: the "
      "sockets alone)\n",
      "  sockets", sockets, sockets * 1e6 / (s.sessions * s.sockets), "-", "-",
      sockets / direct);
}

void PrintSteeredTable(const Setup& s, const Runs& runs, double fsync_us,
                       const std::string& fs) {
  if (runs.count("steered") + runs.count("batched") + runs.count("batched-1s") +
          runs.count("bound-only") ==
      0) {
    return;
  }
  const int total = s.sessions * s.sockets;
  std::printf(
      "\nsteered + journaled (simulated devmem NIC over lo; journal in %s, "
      "filesystem %s; this disk's 4 KiB pwrite + fdatasync p50 %.0f us)\n",
      s.state_root.c_str(), fs.c_str(), fsync_us);
  std::printf("%-12s %10s %10s %10s %12s %10s\n", "path", "open s", "us/socket",
              "fdatasyncs", "syncs/socket", "vs direct");
  std::printf("(a) %d sessions x %d sockets, a binding per session\n",
              s.sessions, s.sockets);
  PrintSteeredRow(runs, "direct", "direct", total, false);
  PrintSteeredRow(runs, "steered", "direct", total, false);
  PrintSteeredRow(runs, "batched", "direct", total, true);
  PrintSessionFloor(s, runs);
  std::printf("(b) 1 session x %d sockets, one binding\n", total);
  PrintSteeredRow(runs, "direct-1s", "direct-1s", total, false);
  PrintSteeredRow(runs, "batched-1s", "direct-1s", total, true);
}
// The flags as a Setup; an error says which flag is wrong.
absl::StatusOr<Setup> ParseSetup(const char* argv0) {
  std::string error;
  std::unique_ptr<bazel::tools::cpp::runfiles::Runfiles> runfiles(
      bazel::tools::cpp::runfiles::Runfiles::Create(argv0, &error));
  Setup s;
  s.devmemd = Executable(absl::GetFlag(FLAGS_devmemd), runfiles.get(),
                         "daemon/devmemd");
  s.driver = Executable(absl::GetFlag(FLAGS_load_driver), runfiles.get(),
                        "tests/load/load_driver");
  s.state_root = absl::GetFlag(FLAGS_state_root);
  s.sessions = absl::GetFlag(FLAGS_sessions);
  s.sockets = absl::GetFlag(FLAGS_sockets);
  s.connects = absl::GetFlag(FLAGS_connects);
  s.threads = absl::GetFlag(FLAGS_threads);
  if (s.sessions < 1 || s.sockets < 1 || s.connects < 0 ||
      s.connects > s.sockets || s.threads < 1) {
    return absl::InvalidArgumentError(
        "bad --sessions/--sockets/--connects/--threads");
  }
  for (absl::string_view name :
       absl::StrSplit(absl::GetFlag(FLAGS_paths), ',', absl::SkipEmpty())) {
    auto it = std::find_if(AllPaths().begin(), AllPaths().end(),
                           [&](const PathSpec& p) { return name == p.name; });
    if (it == AllPaths().end()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--paths: no path \"", name, "\" (see --help)"));
    }
    s.paths.push_back(*it);
  }
  if (s.paths.empty()) return absl::InvalidArgumentError("--paths is empty");
  for (const std::string& p : {s.devmemd, s.driver}) {
    if (::access(p.c_str(), X_OK) != 0) {
      return absl::NotFoundError(
          absl::StrCat(p, ": ", std::strerror(errno),
                       " (build it, or pass --devmemd / --load_driver)"));
    }
  }
  return s;
}

// Every path once per round, in alternating order. FAILED_PRECONDITION when
// the driver skips (its fd limit).
absl::StatusOr<Runs> RunRounds(const Setup& s, int rounds) {
  Runs runs;
  for (int round = 0; round < rounds; ++round) {
    std::vector<PathSpec> order = s.paths;
    if (round % 2 == 1) std::reverse(order.begin(), order.end());
    for (const PathSpec& path : order) {
      absl::StatusOr<Run> r = RunPath(s, path, round);
      if (!r.ok()) {
        return absl::Status(
            r.status().code(),
            absl::StrCat(path.name, ": ", r.status().message()));
      }
      PrintRound(round, path, *r);
      runs[path.name].push_back(*r);
    }
  }
  return runs;
}

int Main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "devmemd under 1000 sessions x 8 sockets: memory, and the time to open "
      "them (plain, steered + journaled, batched) against opening them "
      "directly.\n  bazel run -c opt //bench:load_bench -- [--rounds=N "
      "--sessions=N --paths=direct,batched,...]");
  absl::ParseCommandLine(argc, argv);
  const int rounds = absl::GetFlag(FLAGS_rounds);
  absl::StatusOr<Setup> setup = ParseSetup(argv[0]);
  if (!setup.ok() || rounds < 1) {
    std::fprintf(stderr, "load_bench: %s\n",
                 setup.ok() ? "--rounds must be >= 1"
                            : absl::StrCat(setup.status().message()).c_str());
    return 2;
  }
  const Setup& s = *setup;
  // The driver of shape (a) or (b), plus a memfd per session in devmemd.
  const rlim_t need =
      static_cast<rlim_t>(s.sessions) * (2 + s.sockets + s.connects) + 512;
  absl::Status limit = RaiseFdLimit(need);
  if (!limit.ok()) {
    std::printf("load_bench: SKIPPED: %s (or pass a smaller --sessions)\n",
                absl::StrCat(limit.message()).c_str());
    return 0;
  }
  ::signal(SIGPIPE, SIG_IGN);
  std::vector<std::string> names;
  for (const PathSpec& p : s.paths) names.push_back(p.name);
  std::printf(
      "load_bench: %d sessions x %d sockets (%d Listen + %d Connect) on lo, "
      "%d client threads, %d rounds, paths %s\n  devmemd=%s\n  "
      "load_driver=%s\n",
      s.sessions, s.sockets, s.sockets - s.connects, s.connects, s.threads,
      rounds, absl::StrJoin(names, ",").c_str(), s.devmemd.c_str(),
      s.driver.c_str());
  const absl::StatusOr<double> fsync_us = FsyncP50Us(s.state_root);
  if (!fsync_us.ok()) {
    std::fprintf(stderr, "load_bench: --state_root: %s\n",
                 fsync_us.status().ToString().c_str());
    return 1;
  }
  absl::StatusOr<Runs> runs = RunRounds(s, rounds);
  if (!runs.ok()) {
    if (runs.status().code() == absl::StatusCode::kFailedPrecondition) {
      std::printf("load_bench: SKIPPED: %s\n",
                  absl::StrCat(runs.status().message()).c_str());
      return 0;
    }
    std::fprintf(stderr, "load_bench: %s\n", runs.status().ToString().c_str());
    return 1;
  }
  PrintMemoryTable(s, *runs);
  PrintSteeredTable(s, *runs, *fsync_us, FilesystemKind(s.state_root));
  std::printf(
      "\nMedians over %d rounds. open s: wall time from the first "
      "Session::Open (or socket()) to the last socket received and checked "
      "(steered paths: BindRx included); vs direct: that time over the direct "
      "baseline's of the same shape. Product goals: devmemd idle < 32 MiB, "
      "loaded < 64 MiB. The simulated NIC takes a rule in memory: a real "
      "NIC's rule insert (an ETHTOOL_SRXCLSRLINS ioctl into the driver) is not "
      "in these "
      "figures.\n",
      rounds);
  return 0;
}

}  // namespace
}  // namespace devmem

int main(int argc, char** argv) { return devmem::Main(argc, argv); }
