// cold_start_bench: a job's start on one host. 8 GPU processes, each with
// 256 connections, start at once and take their sockets through devmemd,
// steered and journaled, against the same 8 processes opening their sockets
// themselves, in the same run.
//
// Every round, for each of the two ways (order alternating), --processes
// copies of tests/load/load_driver are exec'd (posix_spawn; this process
// makes no gRPC object) with --sessions=1 --sockets=--sockets, half of them
// Listen on 127.0.0.1 and half Connect to a plain listener of the same
// process, every fd checked:
//
//   steered  a fresh devmemd on a simulated devmem NIC over lo, journal on
//            the disk under --state_root: Session::Open, BindRx of a memfd
//            (1 queue), then one Session::OpenSocketsEach of all the
//            sockets (256: calls of 32, 64, 128 and 32, each socket checked
//            as its call comes back), each steered to that binding (an
//            ntuple rule each)
//   direct   the baseline: socket, SO_BINDTODEVICE lo, bind, listen /
//            connect in the process itself
//
// The drivers get ready (fd limit, listener), print READY, and all start on
// one "go". Measured: from the first Session::Open (or socket()) of any
// process to the last socket in hand in any process (each driver prints the
// Unix time of both). Printed: the median over --rounds of each way, their
// ratio, the journal's fdatasyncs per socket, and this disk's fdatasync p50.
// Figures only: nothing is asserted.
//
//   bazel run -c opt //bench:cold_start_bench
//   bazel run -c opt //bench:cold_start_bench -- --rounds=9 --processes=8
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
ABSL_FLAG(int, processes, 8, "Client processes (GPU processes of the job).");
ABSL_FLAG(int, sockets, 256,
          "Sockets per process: half Listen, half Connect (at most 4096).");
ABSL_FLAG(int, rounds, 5, "Rounds of both ways.");
ABSL_FLAG(std::string, state_root, "/var/tmp",
          "Where devmemd keeps its journal: a real disk (not tmpfs), so that "
          "its fdatasyncs cost what they cost.");

namespace devmem {
namespace {

using ::devmem::testing::LineFields;
using ::devmem::testing::Proc;
using ::devmem::testing::RaiseFdLimit;

struct Setup {
  std::string devmemd;
  std::string driver;
  std::string state_root;
  int processes = 0;
  int sockets = 0;
};

// One job start, one way.
struct Job {
  double span_s = 0;        // first open to last socket, all processes
  double slowest_s = 0;     // the longest of one process's own opens
  double exec_ready_s = 0;  // spawn until every process printed READY
  int64_t sockets = 0;
  int64_t bad = 0;
  int64_t syncs = -1;
};

std::vector<std::string> DriverArgs(const Setup& s, bool steered,
                                    const std::string& runtime_dir) {
  std::vector<std::string> args = {s.driver,
                                   "--sessions=1",
                                   absl::StrCat("--sockets=", s.sockets),
                                   absl::StrCat("--connects=", s.sockets / 2),
                                   "--threads=1",
                                   "--wait_go"};
  if (steered) {
    args.insert(args.end(), {absl::StrCat("--runtime_dir=", runtime_dir),
                             "--steer", "--batch"});
  } else {
    args.push_back("--direct");
  }
  return args;
}

absl::StatusOr<Proc> StartSteeredDaemon(const Setup& s,
                                        const std::string& runtime_dir,
                                        const std::string& state) {
  SteeredNicSpec nic;
  nic.pool_queues = static_cast<uint32_t>(s.processes);
  nic.rules = static_cast<uint32_t>(s.processes * s.sockets + 64);
  nic.sessions = static_cast<uint32_t>(s.processes);
  nic.uid = ::getuid();
  return StartSteeredDevmemd(s.devmemd, runtime_dir, state, nic);
}

// The driver's line starting with `prefix`, its FAIL lines echoed.
absl::StatusOr<std::string> AwaitLine(Proc& driver, const std::string& prefix,
                                      absl::Time deadline) {
  while (auto line = driver.WaitLine("", deadline - absl::Now())) {
    if (absl::StartsWith(*line, "FAIL ")) {
      std::fprintf(stderr, "cold_start_bench: %s\n", line->c_str());
    }
    if (absl::StartsWith(*line, "SKIP ")) {
      return absl::FailedPreconditionError(line->substr(5));
    }
    if (absl::StartsWith(*line, prefix)) return *line;
  }
  return absl::InternalError(
      absl::StrCat("load_driver ", driver.pid(), " stopped before ", prefix));
}

// Spawns the drivers and waits until each is READY.
absl::StatusOr<std::vector<Proc>> SpawnReady(const Setup& s, bool steered,
                                             const std::string& runtime_dir,
                                             absl::Time deadline) {
  std::vector<Proc> drivers;
  for (int i = 0; i < s.processes; ++i) {
    drivers.push_back(Proc::Spawn(DriverArgs(s, steered, runtime_dir),
                                  /*env=*/{}, /*fds=*/{},
                                  /*listen_pid=*/false,
                                  /*merge_stderr=*/false));
    if (!drivers.back().running()) {
      return absl::InternalError(absl::StrCat("could not spawn ", s.driver));
    }
  }
  for (Proc& d : drivers) {
    absl::StatusOr<std::string> ready = AwaitLine(d, "READY", deadline);
    if (!ready.ok()) return ready.status();
  }
  return drivers;
}

// Starts every driver at once and folds their OPENED/DIRECT lines into `job`.
absl::Status Go(std::vector<Proc>& drivers, bool steered, absl::Time deadline,
                Job& job) {
  for (Proc& d : drivers) {
    if (!d.Send("go")) return absl::InternalError("a driver went away");
  }
  int64_t first = INT64_MAX, last = 0, before = 0, after = 0;
  for (Proc& d : drivers) {
    absl::StatusOr<std::string> line =
        AwaitLine(d, steered ? "OPENED " : "DIRECT ", deadline);
    if (!line.ok()) return line.status();
    std::map<std::string, int64_t> f = LineFields(*line);
    first = std::min(first, f["start_us"]);
    last = std::max(last, f["end_us"]);
    before = std::max(before, f["syncs_before"]);
    after = std::max(after, f["syncs_after"]);
    job.slowest_s = std::max(job.slowest_s, f["wall_us"] / 1e6);
    job.sockets += f["sockets"];
    job.bad += f["bad"];
  }
  job.span_s = static_cast<double>(last - first) / 1e6;
  // Each driver read the counter before READY and after its last socket:
  // the largest of each bound the job's own fdatasyncs.
  if (steered) job.syncs = after - before;
  return absl::OkStatus();
}

absl::StatusOr<Job> RunJob(const Setup& s, bool steered, int round) {
  const std::string dir = absl::StrCat("/tmp/dmcs-", ::getpid(), "-", round);
  const std::string state =
      absl::StrCat(s.state_root, "/dmcs-state-", ::getpid(), "-", round);
  Proc daemon;
  if (steered) {
    absl::StatusOr<Proc> d = StartSteeredDaemon(s, dir, state);
    if (!d.ok()) return d.status();
    daemon = *std::move(d);
  }
  Job job;
  const absl::Time deadline = absl::Now() + absl::Minutes(5);
  const absl::Time spawned = absl::Now();
  absl::StatusOr<std::vector<Proc>> drivers =
      SpawnReady(s, steered, dir, deadline);
  absl::Status status = drivers.status();
  if (status.ok()) {
    job.exec_ready_s = absl::ToDoubleSeconds(absl::Now() - spawned);
    status = Go(*drivers, steered, deadline, job);
    for (Proc& d : *drivers) {
      (void)d.Send("exit");
      d.CloseStdin();
    }
    for (Proc& d : *drivers) (void)d.Wait(absl::Minutes(1));
  }
  if (daemon.running()) (void)daemon.Terminate();
  ::rmdir(dir.c_str());
  std::error_code ec;
  std::filesystem::remove_all(state, ec);
  if (!status.ok()) return status;
  return job;
}

double Median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

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
  s.processes = absl::GetFlag(FLAGS_processes);
  s.sockets = absl::GetFlag(FLAGS_sockets);
  if (s.processes < 1 || s.processes > 1024 || s.sockets < 2 ||
      s.sockets > 4096) {
    return absl::InvalidArgumentError(
        "--processes must be 1..1024 (a pool queue each) and --sockets "
        "2..4096 (the daemon's tickets per session)");
  }
  for (const std::string& p : {s.devmemd, s.driver}) {
    if (::access(p.c_str(), X_OK) != 0) {
      return absl::NotFoundError(
          absl::StrCat(p, ": ", std::strerror(errno),
                       " (build it, or pass --devmemd / --load_driver)"));
    }
  }
  return s;
}

void PrintSummary(const Setup& s, const std::map<bool, std::vector<Job>>& jobs,
                  double fsync_us) {
  auto median = [&](bool steered, double Job::*field) {
    std::vector<double> v;
    for (const Job& j : jobs.at(steered)) v.push_back(j.*field);
    return Median(v);
  };
  std::vector<double> syncs;
  for (const Job& j : jobs.at(true)) syncs.push_back(j.syncs);
  const double direct = median(false, &Job::span_s);
  const double steered = median(true, &Job::span_s);
  const int total = s.processes * s.sockets;
  std::printf("\n%-9s %12s %14s %16s %12s %10s\n", "way", "job open ms",
              "slowest proc ms", "exec->READY ms", "fdatasyncs", "vs direct");
  std::printf("%-9s %12.1f %14.1f %16.1f %12s %9.2fx\n", "direct", direct * 1e3,
              median(false, &Job::slowest_s) * 1e3,
              median(false, &Job::exec_ready_s) * 1e3, "-", 1.0);
  std::printf("%-9s %12.1f %14.1f %16.1f %12.0f %9.2fx\n", "steered",
              steered * 1e3, median(true, &Job::slowest_s) * 1e3,
              median(true, &Job::exec_ready_s) * 1e3, Median(syncs),
              direct > 0 ? steered / direct : 0.0);
  std::printf(
      "\n%d processes x %d sockets (%d steered rules), medians of %zu "
      "rounds. job open: from the first Session::Open (or socket()) of any "
      "process to the last socket in hand in any process; steered includes "
      "Session::Open and BindRx. fdatasyncs per socket %.3f; this disk's 4 "
      "KiB pwrite + fdatasync p50 %.0f us (journal in %s, filesystem %s). "
      "The simulated NIC takes a rule in memory: a real NIC's rule insert "
      "(an ETHTOOL_SRXCLSRLINS ioctl into the driver) is not in these "
      "figures; those need devmem hardware.\n",
      s.processes, s.sockets, total, jobs.at(true).size(),
      Median(syncs) / total, fsync_us, s.state_root.c_str(),
      FilesystemKind(s.state_root).c_str());
}

int Main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "A job's start: N processes x M steered, journaled sockets through "
      "devmemd against the same processes opening them directly.\n  bazel "
      "run -c opt //bench:cold_start_bench -- [--rounds=N --processes=8 "
      "--sockets=256]");
  absl::ParseCommandLine(argc, argv);
  const int rounds = absl::GetFlag(FLAGS_rounds);
  absl::StatusOr<Setup> setup = ParseSetup(argv[0]);
  if (!setup.ok() || rounds < 1) {
    std::fprintf(stderr, "cold_start_bench: %s\n",
                 setup.ok() ? "--rounds must be >= 1"
                            : absl::StrCat(setup.status().message()).c_str());
    return 2;
  }
  const Setup& s = *setup;
  // devmemd holds every process's pending sockets at once, at worst.
  absl::Status limit = RaiseFdLimit(
      static_cast<rlim_t>(s.processes) * (2 + 2 * s.sockets) + 512);
  if (!limit.ok()) {
    std::printf("cold_start_bench: SKIPPED: %s\n",
                absl::StrCat(limit.message()).c_str());
    return 0;
  }
  ::signal(SIGPIPE, SIG_IGN);
  const absl::StatusOr<double> fsync_us = FsyncP50Us(s.state_root);
  if (!fsync_us.ok()) {
    std::fprintf(stderr, "cold_start_bench: --state_root: %s\n",
                 fsync_us.status().ToString().c_str());
    return 1;
  }
  std::printf(
      "cold_start_bench: %d processes x %d sockets (%d Listen + %d Connect), "
      "%d rounds\n  devmemd=%s\n  load_driver=%s\n",
      s.processes, s.sockets, s.sockets - s.sockets / 2, s.sockets / 2, rounds,
      s.devmemd.c_str(), s.driver.c_str());
  std::map<bool, std::vector<Job>> jobs;
  for (int round = 0; round < rounds; ++round) {
    for (bool steered : {round % 2 == 0, round % 2 != 0}) {
      absl::StatusOr<Job> job = RunJob(s, steered, round);
      if (!job.ok()) {
        const bool skip =
            job.status().code() == absl::StatusCode::kFailedPrecondition;
        std::fprintf(skip ? stdout : stderr, "cold_start_bench: %s%s\n",
                     skip ? "SKIPPED: " : "", job.status().ToString().c_str());
        return skip ? 0 : 1;
      }
      std::printf(
          "  round %d %-8s job open %8.1f ms  slowest process %8.1f ms  "
          "sockets %lld  bad %lld  fdatasyncs %lld\n",
          round + 1, steered ? "steered" : "direct", job->span_s * 1e3,
          job->slowest_s * 1e3, static_cast<long long>(job->sockets),
          static_cast<long long>(job->bad), static_cast<long long>(job->syncs));
      std::fflush(stdout);
      jobs[steered].push_back(*job);
    }
  }
  PrintSummary(s, jobs, *fsync_us);
  return 0;
}

}  // namespace
}  // namespace devmem

int main(int argc, char** argv) { return devmem::Main(argc, argv); }
