// metrics_bench: what a Prometheus scrape of devmemd costs, next to a GetStatus
// RPC answered by the same daemon (the baseline: one request, one answer, the
// same counters read), and whether the exposition grows with the number of
// sessions (it must not: no label is per session).
//
// Real processes: devmemd with the simulated devmem NIC over lo and
// metrics_listen on 127.0.0.1:0. For 0 and then --sessions open sessions,
// --requests scrapes of /metrics and --requests GetStatus calls, interleaved.
// Printed: median and p99 time of each, the ratio scrape / GetStatus, and the
// size of the exposition. Figures only: nothing is asserted. Needs root (the
// simulated NIC's profile on lo).
//
//   sudo bazel run -c opt //bench:metrics_bench
//   sudo bazel run -c opt //bench:metrics_bench -- --sessions=1000
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <regex>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "bench/runfiles_path.h"
#include "client/libdevmem.h"
#include "tests/testing/http_client.h"
#include "tests/testing/process.h"
#include "tools/cpp/runfiles/runfiles.h"

ABSL_FLAG(std::string, devmemd, "",
          "Path of devmemd. Empty: the runfiles copy (bazel run), else "
          "bazel-bin/daemon/devmemd.");
ABSL_FLAG(int, sessions, 200, "Sessions open during the second round.");
ABSL_FLAG(int, requests, 300, "Scrapes and GetStatus calls per round.");

namespace devmem {
namespace {

struct Stats {
  double median_us = 0;
  double p99_us = 0;
};

Stats Summarize(std::vector<double> us) {
  std::sort(us.begin(), us.end());
  Stats s;
  if (us.empty()) return s;
  s.median_us = us[us.size() / 2];
  s.p99_us = us[std::min(us.size() - 1, us.size() * 99 / 100)];
  return s;
}

int Run(const std::string& devmemd) {
  const std::string dir = absl::StrCat("/tmp/dmmb", getpid());
  std::filesystem::create_directories(dir);
  std::ofstream(dir + "/c.textproto")
      << "nic_profiles { nic: \"lo\" }\nallow_uids: " << getuid()
      << "\nmetrics_listen: \"127.0.0.1:0\"\nmax_sessions: 65536\n"
      << "max_sessions_per_uid: 65536\n";
  testing::Proc d = testing::Proc::Spawn(
      {devmemd, "--config=" + dir + "/c.textproto",
       "--runtime_dir=" + dir + "/r", "--state_dir=" + dir + "/s",
       "--nic_backend=simulated", "--dbus="});
  auto line = d.WaitLine("devmemd: metrics: http://127.0.0.1:");
  if (!line || !d.WaitLine("devmemd 0")) {
    std::fprintf(stderr, "devmemd did not start:\n%s\n", d.output().c_str());
    return 1;
  }
  d.DrainInBackground();
  std::smatch m;
  std::regex_search(*line, m, std::regex("127\\.0\\.0\\.1:([0-9]+)/metrics"));
  const int port = std::stoi(m[1]);

  auto probe = Session::Open(dir + "/r");
  if (!probe.ok()) {
    std::fprintf(stderr, "session: %s\n", probe.status().ToString().c_str());
    return 1;
  }
  std::vector<std::unique_ptr<Session>> sessions;
  const int requests = absl::GetFlag(FLAGS_requests);
  std::printf("metrics_bench: %d scrapes and %d GetStatus calls per round\n",
              requests, requests);
  std::printf("%-9s %14s %14s %14s %14s %8s %10s\n", "sessions",
              "scrape p50 us", "scrape p99 us", "status p50 us",
              "status p99 us", "ratio", "bytes");
  for (int want : {0, absl::GetFlag(FLAGS_sessions)}) {
    while (static_cast<int>(sessions.size()) < want) {
      auto s = Session::Open(dir + "/r");
      if (!s.ok()) {
        std::fprintf(stderr, "session %zu: %s\n", sessions.size(),
                     s.status().ToString().c_str());
        return 1;
      }
      sessions.push_back(*std::move(s));
    }
    std::vector<double> scrape_us, status_us;
    size_t bytes = 0;
    for (int i = 0; i < requests; ++i) {
      absl::Time t0 = absl::Now();
      auto a = testing::HttpRequest("127.0.0.1", port, "/metrics");
      scrape_us.push_back(absl::ToDoubleMicroseconds(absl::Now() - t0));
      if (!a.ok() || a->status != 200) {
        std::fprintf(stderr, "scrape failed\n");
        return 1;
      }
      bytes = a->body.size();
      t0 = absl::Now();
      auto st = (*probe)->GetStatus();
      status_us.push_back(absl::ToDoubleMicroseconds(absl::Now() - t0));
      if (!st.ok()) {
        std::fprintf(stderr, "GetStatus: %s\n", st.status().ToString().c_str());
        return 1;
      }
    }
    const Stats sc = Summarize(scrape_us);
    const Stats gs = Summarize(status_us);
    std::printf("%-9d %14.0f %14.0f %14.0f %14.0f %7.2fx %10zu\n", want + 1,
                sc.median_us, sc.p99_us, gs.median_us, gs.p99_us,
                sc.median_us / gs.median_us, bytes);
  }
  sessions.clear();
  probe->reset();
  d.Terminate();
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
  return 0;
}

}  // namespace
}  // namespace devmem

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  std::string error;
  std::unique_ptr<bazel::tools::cpp::runfiles::Runfiles> runfiles(
      bazel::tools::cpp::runfiles::Runfiles::Create(argv[0], &error));
  return devmem::Run(devmem::Executable(absl::GetFlag(FLAGS_devmemd),
                                        runfiles.get(), "daemon/devmemd"));
}
