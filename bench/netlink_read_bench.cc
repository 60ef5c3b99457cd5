// How much faster is reading NIC state over netlink (what devmemd does) than
// asking ethtool(8) (what shell-based tools do)? In a fresh network namespace
// with a veth pair, times N rounds of KernelNicInventory's GetChannels +
// GetFeatures against N rounds of fork/exec of `ethtool -l IF` and
// `ethtool -k IF` (posix_spawn, wait, output to /dev/null), and prints
// mean/p50/p99 per operation plus the speedup (ratio of medians; the ratio
// of means is printed beside it). Then it repeats both interleaved (netlink
// right after the spawns, caches cold) and prints those ratios too. Needs root;
// otherwise it says why and exits 0.
//
// Usage: bazel run //bench:netlink_read_bench [-- ITERATIONS]

#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "kernel/errno_status.h"
#include "kernel/kernel_nic_inventory.h"
#include "kernel/testing/netns_veth.h"

namespace devmem {
namespace {

constexpr int kDefaultIterations = 200;
constexpr int kWarmup = 10;
constexpr double kGoal = 50.0;
constexpr char kVeth[] = "nlbench0";
constexpr char kPeer[] = "nlbench1";

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
    size_t i = static_cast<size_t>(p * (samples_us.size() - 1) + 0.5);
    return samples_us[std::min(i, samples_us.size() - 1)];
  };
  s.p50_us = pct(0.50);
  s.p99_us = pct(0.99);
  return s;
}

// Times `op` once, in microseconds; stops the run if it fails.
bool TimeOnce(const std::function<absl::Status()>& op, double* us) {
  const auto t0 = std::chrono::steady_clock::now();
  const absl::Status s = op();
  const auto t1 = std::chrono::steady_clock::now();
  if (!s.ok()) {
    std::fprintf(stderr, "netlink_read_bench: %s\n", s.ToString().c_str());
    return false;
  }
  *us = std::chrono::duration<double, std::micro>(t1 - t0).count();
  return true;
}

void PrintRow(const char* name, const Stats& s) {
  std::printf("  %-34s %10.1f %10.1f %10.1f\n", name, s.mean_us, s.p50_us,
              s.p99_us);
}

// One script, top to bottom: skip without root, make the namespace and veth,
// time both ways interleaved, print. Longer than 80 lines on purpose: the
// steps share the namespace, the inventory and the samples, and read best in
// order.
int Run(int iterations) {
  if (geteuid() != 0) {
    std::printf(
        "netlink_read_bench: skipped: needs root to create a network "
        "namespace and a veth pair (euid %d)\n",
        static_cast<int>(geteuid()));
    return 0;
  }
  absl::StatusOr<std::unique_ptr<testing::ScopedNetns>> ns =
      testing::ScopedNetns::Enter();
  if (!ns.ok()) {
    std::printf("netlink_read_bench: %s: %s\n",
                StatusErrno(ns.status()) == EPERM ? "skipped" : "failed",
                ns.status().ToString().c_str());
    return StatusErrno(ns.status()) == EPERM ? 0 : 1;
  }
  absl::StatusOr<std::unique_ptr<testing::ScopedVethPair>> veth =
      testing::ScopedVethPair::Create(kVeth, kPeer);
  if (!veth.ok()) {
    std::fprintf(stderr, "netlink_read_bench: %s\n",
                 veth.status().ToString().c_str());
    return 1;
  }
  absl::StatusOr<std::unique_ptr<KernelNicInventory>> inventory =
      KernelNicInventory::Create();
  absl::StatusOr<std::string> ethtool = testing::ResolveTool("ethtool");
  if (!inventory.ok() || !ethtool.ok()) {
    std::fprintf(stderr, "netlink_read_bench: %s\n",
                 (!inventory.ok() ? inventory.status() : ethtool.status())
                     .ToString()
                     .c_str());
    return 1;
  }
  absl::StatusOr<uint32_t> ifindex = (*inventory)->IfIndex(kVeth);
  if (!ifindex.ok()) {
    std::fprintf(stderr, "netlink_read_bench: %s\n",
                 ifindex.status().ToString().c_str());
    return 1;
  }

  KernelNicInventory& inv = **inventory;
  auto channels = [&] { return inv.GetChannels(*ifindex).status(); };
  auto features = [&] { return inv.GetFeatures(*ifindex).status(); };
  auto spawn = [&](const char* flag) {
    return [&, flag]() -> absl::Status {
      absl::StatusOr<int> code = testing::RunQuiet({*ethtool, flag, kVeth});
      if (!code.ok()) return code.status();
      if (*code != 0) {
        return absl::InternalError(absl::StrFormat(
            "%s %s %s exited with %d", *ethtool, flag, kVeth, *code));
      }
      return absl::OkStatus();
    };
  };
  const std::function<absl::Status()> ethtool_l = spawn("-l");
  const std::function<absl::Status()> ethtool_k = spawn("-k");

  // Warm up caches (and fail early if anything does not work).
  double ignored = 0;
  for (int i = 0; i < kWarmup; ++i) {
    if (!TimeOnce(channels, &ignored) || !TimeOnce(features, &ignored) ||
        !TimeOnce(ethtool_l, &ignored) || !TimeOnce(ethtool_k, &ignored)) {
      return 1;
    }
  }

  // Steady state: each side back to back, N rounds each.
  std::vector<double> nl_ch, nl_ft, nl_both, et_l, et_k, et_both;
  for (int i = 0; i < iterations; ++i) {
    double a = 0, b = 0;
    if (!TimeOnce(channels, &a) || !TimeOnce(features, &b)) return 1;
    nl_ch.push_back(a);
    nl_ft.push_back(b);
    nl_both.push_back(a + b);
  }
  for (int i = 0; i < iterations; ++i) {
    double a = 0, b = 0;
    if (!TimeOnce(ethtool_l, &a) || !TimeOnce(ethtool_k, &b)) return 1;
    et_l.push_back(a);
    et_k.push_back(b);
    et_both.push_back(a + b);
  }
  // Interleaved: every netlink round right after two fork/execs, i.e. with
  // caches and branch predictors cold. Reported too, as the pessimistic case.
  std::vector<double> cold_nl, cold_et;
  for (int i = 0; i < iterations; ++i) {
    double a = 0, b = 0, c = 0, d = 0;
    if (!TimeOnce(ethtool_l, &c) || !TimeOnce(ethtool_k, &d) ||
        !TimeOnce(channels, &a) || !TimeOnce(features, &b)) {
      return 1;
    }
    cold_nl.push_back(a + b);
    cold_et.push_back(c + d);
  }

  utsname uts = {};
  uname(&uts);
  const Stats netlink = Summarize(nl_both);
  const Stats spawned = Summarize(et_both);
  std::printf(
      "netlink_read_bench: %d iterations (after %d warm-up) on veth %s in a "
      "private netns; Linux %s, %ld CPUs\n",
      iterations, kWarmup, kVeth, uts.release, sysconf(_SC_NPROCESSORS_ONLN));
  std::printf("  %-34s %10s %10s %10s\n", "operation (microseconds)", "mean",
              "p50", "p99");
  PrintRow("netlink channels-get", Summarize(nl_ch));
  PrintRow("netlink features-get", Summarize(nl_ft));
  PrintRow("netlink channels+features", netlink);
  PrintRow("spawn ethtool -l", Summarize(et_l));
  PrintRow("spawn ethtool -k", Summarize(et_k));
  PrintRow("spawn ethtool -l + -k", spawned);
  const Stats cold_netlink = Summarize(cold_nl);
  const Stats cold_spawned = Summarize(cold_et);
  std::printf("  interleaved (netlink right after the spawns, cold caches):\n");
  PrintRow("netlink channels+features", cold_netlink);
  PrintRow("spawn ethtool -l + -k", cold_spawned);
  auto ratio = [](double slow, double fast) {
    return fast > 0 ? slow / fast : 0;
  };
  // The headline uses medians: on a shared machine a few preempted samples
  // move a mean by tens of percent, a median hardly at all. Means follow.
  const double speedup = ratio(spawned.p50_us, netlink.p50_us);
  std::printf(
      "speedup: %.1fx (goal >= %.0fx)%s [p50 ratio; mean ratio %.1fx; "
      "interleaved p50 %.1fx, mean %.1fx]\n",
      speedup, kGoal, speedup >= kGoal ? "" : " BELOW GOAL",
      ratio(spawned.mean_us, netlink.mean_us),
      ratio(cold_spawned.p50_us, cold_netlink.p50_us),
      ratio(cold_spawned.mean_us, cold_netlink.mean_us));
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
