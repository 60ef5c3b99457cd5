// What does changing NIC state over ethtool netlink (devmemd's path) cost
// next to running ethtool(8) (what shell-based tools do)? In a fresh network
// namespace with a veth pair of four queues each, N interleaved rounds of:
//
//   GET  EthtoolNetlink::GetChannels      vs  fork/exec `ethtool -l IF`
//   SET  EthtoolNetlink::SetChannels      vs  fork/exec `ethtool -L IF rx N tx
//   N`
//
// Every SET flips rx/tx between two values, so each one (either side) really
// changes the device: the kernel skips a SET that changes nothing
// (net/ethtool/channels.c ethnl_set_channels() returns early when !mod), and
// that would make the cheaper side look cheaper still. Which side goes first
// alternates between rounds. Prints mean/p50/p99 in microseconds and, for GET
// and for SET, the ratio of medians (ethtool / netlink). Needs root;
// otherwise it says why and exits 0.
//
// Usage: bazel run -c opt //bench:ethtool_set_bench [-- ITERATIONS]

#include <net/if.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "kernel/errno_status.h"
#include "kernel/ethtool_netlink.h"
#include "kernel/nic_info.h"
#include "kernel/testing/netns_veth.h"

namespace devmem {
namespace {

constexpr int kDefaultIterations = 200;
constexpr int kWarmup = 10;
constexpr char kVeth[] = "setbench0";
constexpr char kPeer[] = "setbench1";
constexpr char kQueues[] = "4";
// The two channel counts every SET alternates between (rx = tx).
constexpr uint32_t kCountA = 1;
constexpr uint32_t kCountB = 2;

struct Stats {
  double mean_us = 0, p50_us = 0, p99_us = 0;
};

Stats Summarize(std::vector<double> samples_us) {
  Stats s;
  if (samples_us.empty()) return s;
  std::sort(samples_us.begin(), samples_us.end());
  double sum = 0;
  for (double v : samples_us) sum += v;
  s.mean_us = sum / samples_us.size();
  auto pct = [&](double p) {
    const size_t i =
        static_cast<size_t>(std::lround(p * (samples_us.size() - 1)));
    return samples_us[std::min(i, samples_us.size() - 1)];
  };
  s.p50_us = pct(0.50);
  s.p99_us = pct(0.99);
  return s;
}

// Times `op` once, in microseconds; false (after saying why) if it failed.
bool TimeOnce(const std::function<absl::Status()>& op,
              std::vector<double>* out) {
  const auto t0 = std::chrono::steady_clock::now();
  const absl::Status s = op();
  const auto t1 = std::chrono::steady_clock::now();
  if (!s.ok()) {
    std::fprintf(stderr, "ethtool_set_bench: %s\n", s.ToString().c_str());
    return false;
  }
  out->push_back(std::chrono::duration<double, std::micro>(t1 - t0).count());
  return true;
}

absl::Status RunOk(const std::vector<std::string>& argv) {
  absl::StatusOr<int> code = testing::RunQuiet(argv);
  if (!code.ok()) return code.status();
  if (*code != 0) {
    return absl::InternalError(absl::StrFormat(
        "`%s` exited with %d", absl::StrJoin(argv, " "), *code));
  }
  return absl::OkStatus();
}

void PrintRow(const char* name, const Stats& s) {
  std::printf("  %-38s %10.1f %10.1f %10.1f\n", name, s.mean_us, s.p50_us,
              s.p99_us);
}

// One script, top to bottom: skip without root, make the namespace and veth,
// time both ways interleaved, print. Longer than 80 lines on purpose: the
// steps share the namespace, the socket and the samples, and read best in
// order.
int Run(int iterations) {
  if (geteuid() != 0) {
    std::printf(
        "ethtool_set_bench: skipped: needs root to create a network namespace "
        "and a veth pair and to change its channels (euid %d)\n",
        static_cast<int>(geteuid()));
    return 0;
  }
  absl::StatusOr<std::unique_ptr<testing::ScopedNetns>> ns =
      testing::ScopedNetns::Enter();
  if (!ns.ok()) {
    const bool eperm = StatusErrno(ns.status()) == EPERM;
    std::printf("ethtool_set_bench: %s: %s\n", eperm ? "skipped" : "failed",
                ns.status().ToString().c_str());
    return eperm ? 0 : 1;
  }
  // The namespace takes the pair with it when it goes, whatever happens.
  for (const std::vector<std::string>& step :
       std::vector<std::vector<std::string>>{
           {"ip", "link", "add", kVeth, "numrxqueues", kQueues, "numtxqueues",
            kQueues, "type", "veth", "peer", "name", kPeer, "numrxqueues",
            kQueues, "numtxqueues", kQueues},
           {"ip", "link", "set", kVeth, "up"},
           {"ip", "link", "set", kPeer, "up"}}) {
    absl::Status s = RunOk(step);
    if (!s.ok()) {
      std::fprintf(stderr, "ethtool_set_bench: %s\n", s.ToString().c_str());
      return 1;
    }
  }
  const uint32_t ifindex = if_nametoindex(kVeth);
  absl::StatusOr<std::unique_ptr<EthtoolNetlink>> netlink =
      EthtoolNetlink::Open();
  absl::StatusOr<std::string> ethtool = testing::ResolveTool("ethtool");
  if (ifindex == 0 || !netlink.ok() || !ethtool.ok()) {
    std::fprintf(stderr, "ethtool_set_bench: %s\n",
                 ifindex == 0    ? "veth vanished"
                 : !netlink.ok() ? netlink.status().ToString().c_str()
                                 : ethtool.status().ToString().c_str());
    return 1;
  }
  EthtoolNetlink& nl = **netlink;

  // Where the device is now; each SET moves it to the other value.
  uint32_t current = 0;
  {
    absl::StatusOr<ChannelsInfo> ch = nl.GetChannels(ifindex);
    if (!ch.ok()) {
      std::fprintf(stderr, "ethtool_set_bench: %s\n",
                   ch.status().ToString().c_str());
      return 1;
    }
    current = ch->rx_count.value_or(0);
  }
  auto next = [&] { return current == kCountA ? kCountB : kCountA; };

  auto nl_get = [&] { return nl.GetChannels(ifindex).status(); };
  auto et_get = [&] { return RunOk({*ethtool, "-l", kVeth}); };
  auto nl_set = [&]() -> absl::Status {
    ChannelsSet set;
    set.rx_count = next();
    set.tx_count = next();
    absl::Status s = nl.SetChannels(ifindex, set);
    if (s.ok()) current = *set.rx_count;
    return s;
  };
  auto et_set = [&]() -> absl::Status {
    const std::string n = std::to_string(next());
    absl::Status s = RunOk({*ethtool, "-L", kVeth, "rx", n, "tx", n});
    if (s.ok()) current = next();
    return s;
  };

  std::vector<double> ignored;
  for (int i = 0; i < kWarmup; ++i) {
    if (!TimeOnce(nl_get, &ignored) || !TimeOnce(et_get, &ignored) ||
        !TimeOnce(nl_set, &ignored) || !TimeOnce(et_set, &ignored)) {
      return 1;
    }
  }

  std::vector<double> nl_gets, et_gets, nl_sets, et_sets;
  for (int i = 0; i < iterations; ++i) {
    const bool netlink_first = i % 2 == 0;
    bool ok = true;
    if (netlink_first) {
      ok = TimeOnce(nl_get, &nl_gets) && TimeOnce(et_get, &et_gets) &&
           TimeOnce(nl_set, &nl_sets) && TimeOnce(et_set, &et_sets);
    } else {
      ok = TimeOnce(et_get, &et_gets) && TimeOnce(nl_get, &nl_gets) &&
           TimeOnce(et_set, &et_sets) && TimeOnce(nl_set, &nl_sets);
    }
    if (!ok) return 1;
  }

  // A last independent check that the SETs really took: ethtool and netlink
  // agree on where the device ended up.
  absl::StatusOr<ChannelsInfo> final_state = nl.GetChannels(ifindex);
  if (!final_state.ok() || final_state->rx_count != current ||
      final_state->tx_count != current) {
    std::fprintf(stderr, "ethtool_set_bench: device is not at rx=tx=%u\n",
                 current);
    return 1;
  }

  utsname uts = {};
  uname(&uts);
  std::printf(
      "ethtool_set_bench: %d interleaved rounds (after %d warm-up) on veth %s "
      "(%s queues) in a private netns; Linux %s, %ld CPUs\n",
      iterations, kWarmup, kVeth, kQueues, uts.release,
      sysconf(_SC_NPROCESSORS_ONLN));
  std::printf("  %-38s %10s %10s %10s\n", "operation (microseconds)", "mean",
              "p50", "p99");
  const Stats g_nl = Summarize(nl_gets), g_et = Summarize(et_gets);
  const Stats s_nl = Summarize(nl_sets), s_et = Summarize(et_sets);
  PrintRow("GET netlink channels-get", g_nl);
  PrintRow("GET spawn ethtool -l", g_et);
  PrintRow("SET netlink channels-set (rx/tx 1<->2)", s_nl);
  PrintRow("SET spawn ethtool -L rx N tx N", s_et);
  auto ratio = [](double slow, double fast) {
    return fast > 0 ? slow / fast : 0;
  };
  // Medians for the headline: a few preempted samples on a shared machine
  // move a mean a lot and a median hardly at all.
  std::printf(
      "ratio ethtool/netlink (p50): GET %.1fx, SET %.1fx [p99: GET %.1fx, SET "
      "%.1fx]\n",
      ratio(g_et.p50_us, g_nl.p50_us), ratio(s_et.p50_us, s_nl.p50_us),
      ratio(g_et.p99_us, g_nl.p99_us), ratio(s_et.p99_us, s_nl.p99_us));
  return 0;
}

}  // namespace
}  // namespace devmem

int main(int argc, char** argv) {
  int iterations = devmem::kDefaultIterations;
  if (argc > 1 && (!absl::SimpleAtoi(argv[1], &iterations) || iterations < 1)) {
    std::fprintf(stderr, "usage: %s [ITERATIONS >= 1]\n", argv[0]);
    return 2;
  }
  return devmem::Run(iterations);
}
