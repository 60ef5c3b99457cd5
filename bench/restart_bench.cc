// Live restart with 256 leases: devmemd is killed with SIGKILL while 4
// workloads hold one RX binding and 64 steered sockets each (256 steering
// rules), every socket carrying a live stream, and then started again. It
// measures the time from starting the new devmemd until every workload has
// resumed its session and re-adopted its binding, and the bytes lost on the
// streams. Baseline, measured in the same run: a cold start of devmemd with
// an empty journal (start to ready). Needs root (loopback, simulated devmem
// NIC whose state outlives the daemon). Usage:
//   bazel run -c opt //bench:restart_bench [-- --rounds=3]
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <thread>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "client/libdevmem.h"
#include "client/pattern.h"
#include "tests/testing/process.h"
#include "tools/cpp/runfiles/runfiles.h"

ABSL_FLAG(int, workloads, 4, "workload processes (one binding each)");
ABSL_FLAG(int, listeners, 64, "steered sockets per workload");
ABSL_FLAG(int, rounds, 3, "restarts measured (the median is reported)");

namespace devmem {
namespace {

using testing::Proc;

std::string g_devmemd, g_workload;

struct Dirs {
  std::string root, run, state, config;
};

Dirs MakeDirs(const std::string& tag) {
  Dirs d;
  d.root = absl::StrCat("/tmp/dmrb", getpid(), tag);
  std::filesystem::remove_all(d.root);
  std::filesystem::create_directories(d.root + "/s");
  d.run = d.root + "/r";
  d.state = d.root + "/s";
  d.config = d.root + "/c.textproto";
  std::ofstream(d.config) << "nic_profiles { nic: \"lo\" pool_queues: 7 }\n"
                             "allow_uids: 0\nmax_rules_per_session: 1024\n";
  return d;
}

Proc StartDaemon(const Dirs& d) {
  Proc p =
      Proc::Spawn({g_devmemd, "--config=" + d.config, "--runtime_dir=" + d.run,
                   "--state_dir=" + d.state, "--nic_backend=simulated"});
  p.WaitLine("devmemd 0", absl::Seconds(30));  // "devmemd <version>: ready"
  return p;
}

double Ms(absl::Duration d) { return absl::ToDoubleMilliseconds(d); }

// One script, top to bottom: the cold-start baseline, the workload, the
// SIGKILL and restart, the figures. Longer than 80 lines on purpose: the
// phases share the processes and the timings, and read best in order.
int Run() {
  // Baseline: cold start to ready with nothing to recover.
  std::vector<double> cold;
  for (int i = 0; i < 3; ++i) {
    Dirs d = MakeDirs(absl::StrCat("c", i));
    const absl::Time t0 = absl::Now();
    Proc p = StartDaemon(d);
    cold.push_back(Ms(absl::Now() - t0));
    if (!absl::StrContains(p.output(), "ready")) {
      std::fprintf(stderr, "devmemd did not start:\n%s\n", p.output().c_str());
      return 1;
    }
    p.Kill();
    std::filesystem::remove_all(d.root);
  }
  std::sort(cold.begin(), cold.end());

  const int w = absl::GetFlag(FLAGS_workloads);
  const int k = absl::GetFlag(FLAGS_listeners);
  std::vector<double> restart_ms, ready_ms;
  uint64_t sent_total = 0, got_total = 0, bad_total = 0;
  for (int round = 0; round < absl::GetFlag(FLAGS_rounds); ++round) {
    Dirs d = MakeDirs(absl::StrCat("r", round));
    Proc daemon = StartDaemon(d);
    std::vector<std::unique_ptr<Proc>> loads;
    std::vector<UniqueFd> conns;
    for (int i = 0; i < w; ++i) {
      loads.push_back(std::make_unique<Proc>(
          Proc::Spawn({g_workload, "--runtime_dir=" + d.run,
                       absl::StrCat("--listeners=", k)})));
      auto ports = loads.back()->WaitLine("PORTS", absl::Seconds(60));
      if (!ports) {
        std::fprintf(stderr, "workload failed:\n%s\n",
                     loads.back()->output().c_str());
        return 1;
      }
      for (absl::string_view p :
           absl::StrSplit(ports->substr(6), ',', absl::SkipEmpty())) {
        uint32_t port = 0;
        (void)absl::SimpleAtoi(p, &port);
        UniqueFd fd(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
        struct sockaddr_in a = {};
        a.sin_family = AF_INET;
        a.sin_port = htons(static_cast<uint16_t>(port));
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (connect(fd.get_unowned(), reinterpret_cast<sockaddr*>(&a),
                    sizeof(a)) != 0) {
          return 1;
        }
        conns.push_back(std::move(fd));
      }
      if (!loads.back()->WaitLine("ACCEPTED")) return 1;
    }
    // Live streams: one sender thread writes the pattern round-robin.
    std::atomic<bool> stop{false};
    std::vector<uint64_t> sent(conns.size(), 0);
    std::thread sender([&] {
      std::vector<char> buf(16 * 1024);
      while (!stop.load()) {
        for (size_t i = 0; i < conns.size(); ++i) {
          FillPattern(sent[i], absl::MakeSpan(buf));
          ssize_t n = send(conns[i].get_unowned(), buf.data(), buf.size(),
                           MSG_NOSIGNAL | MSG_DONTWAIT);
          if (n > 0) sent[i] += static_cast<uint64_t>(n);
        }
      }
    });
    daemon.Kill();  // SIGKILL: no goodbye, the journal is all that is left
    const absl::Time t0 = absl::Now();
    Proc again = StartDaemon(d);
    ready_ms.push_back(Ms(absl::Now() - t0));
    absl::Time last = t0;
    for (auto& l : loads) {
      auto line = l->WaitLine("RESUMED", absl::Seconds(60));
      if (!line || !absl::StrContains(*line, "resumed=1")) {
        std::fprintf(stderr, "workload did not resume: %s\n",
                     l->output().c_str());
        return 1;
      }
      int64_t ns = 0;
      std::vector<std::string> parts = absl::StrSplit(*line, ' ');
      (void)absl::SimpleAtoi(parts[1], &ns);
      last = std::max(last, absl::FromUnixNanos(ns));
    }
    restart_ms.push_back(Ms(last - t0));
    // Everything re-adopted?
    SessionOptions so;
    so.runtime_dir = d.run;
    auto s = Session::Open(so);
    if (s.ok()) {
      auto st = (*s)->GetStatus();
      if (st.ok()) {
        std::printf("round %d: bindings=%u rules=%u detached=%u\n", round,
                    st->bindings(), st->rules(), st->detached_sessions());
      }
    }
    stop = true;
    sender.join();
    for (auto& c : conns) shutdown(c.get_unowned(), SHUT_WR);
    for (auto& l : loads) {
      l->Send("report");
      auto total = l->WaitLine("TOTAL", absl::Seconds(60));
      if (!total) return 1;
      uint64_t bytes = 0, bad = 0;
      for (absl::string_view kv : absl::StrSplit(*total, ' ')) {
        if (absl::ConsumePrefix(&kv, "bytes="))
          (void)absl::SimpleAtoi(kv, &bytes);
        if (absl::ConsumePrefix(&kv, "bad=")) (void)absl::SimpleAtoi(kv, &bad);
      }
      got_total += bytes;
      bad_total += bad;
    }
    for (uint64_t x : sent) sent_total += x;
    again.Kill();
    std::filesystem::remove_all(d.root);
  }
  std::sort(restart_ms.begin(), restart_ms.end());
  std::sort(ready_ms.begin(), ready_ms.end());
  const double median = restart_ms[restart_ms.size() / 2];
  const double base = cold[cold.size() / 2];
  std::printf(
      "leases: %d bindings, %d steered sockets with live streams\n"
      "cold start to ready (baseline, no journal): %.1f ms\n"
      "restart to ready (journal + kernel reconcile): %.1f ms\n"
      "restart until all %d leases re-adopted: %.1f ms (median of %zu; "
      "min %.1f, max %.1f)\n"
      "ratio re-adopted / cold start: %.2fx\n"
      "bytes sent %llu, received %llu, lost %lld, pattern errors %llu\n",
      w, w * k, base, ready_ms[ready_ms.size() / 2], w * k, median,
      restart_ms.size(), restart_ms.front(), restart_ms.back(), median / base,
      static_cast<unsigned long long>(sent_total),
      static_cast<unsigned long long>(got_total),
      static_cast<long long>(sent_total) - static_cast<long long>(got_total),
      static_cast<unsigned long long>(bad_total));
  return sent_total == got_total && bad_total == 0 ? 0 : 1;
}

}  // namespace
}  // namespace devmem

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  if (geteuid() != 0) {
    std::fprintf(stderr, "restart_bench: needs root (SO_BINDTODEVICE)\n");
    return 2;
  }
  std::string error;
  std::unique_ptr<bazel::tools::cpp::runfiles::Runfiles> rf(
      bazel::tools::cpp::runfiles::Runfiles::Create(argv[0], &error));
  if (rf == nullptr) {
    std::fprintf(stderr, "runfiles: %s\n", error.c_str());
    return 2;
  }
  devmem::g_devmemd = rf->Rlocation("devmemd/daemon/devmemd");
  devmem::g_workload = rf->Rlocation("devmemd/bench/restart_workload");
  signal(SIGPIPE, SIG_IGN);
  return devmem::Run();
}
