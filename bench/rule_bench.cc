// Steering-rule install and remove throughput in the daemon's own code
// (NicManager: idempotency check, quotas, bookkeeping, the 5-tuple rule) on
// the simulated devmem NIC, against the simulated driver alone (SimulatedNic
// InsertRule/DeleteRule called directly) measured in the same run. The
// difference is devmemd's own cost per rule; "excluding driver time" is the
// daemon figure minus the driver figure. Goal: >= 50k rules/s through the
// daemon path (driver time included, so the goal holds a fortiori).
//
// Usage: bazel run -c opt //bench:rule_bench [-- ROUNDS]

#include <sys/mman.h>
#include <sys/socket.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "daemon/config.h"
#include "daemon/nic/nic_manager.h"
#include "daemon/nic/simulated/simulated_nic.h"
#include "daemon/state/lease_journal.h"
#include "kernel/testing/fake_nic_inventory.h"

namespace devmem {
namespace {

constexpr uint32_t kIfindex = 42;
constexpr uint32_t kRulesPerRound = 2000;
constexpr double kGoalRulesPerSecond = 50000;

using Clock = std::chrono::steady_clock;

double Us(Clock::duration d) {
  return std::chrono::duration<double, std::micro>(d).count();
}

struct Summary {
  double rules_per_s = 0, p50_us = 0, p99_us = 0;
};

Summary Summarize(std::vector<double> us, double total_s) {
  Summary s;
  std::sort(us.begin(), us.end());
  s.rules_per_s = us.size() / total_s;
  s.p50_us = us[us.size() / 2];
  s.p99_us = us[std::min(us.size() - 1, us.size() * 99 / 100)];
  return s;
}

FlowTuple TupleFor(uint32_t i) {
  FlowTuple t;
  t.family = AF_INET;
  t.src_ip = absl::StrCat("10.1.", (i >> 8) & 0xff, ".", i & 0xff);
  t.src_port = static_cast<uint16_t>(20000 + (i % 30000));
  t.dst_ip = "10.0.0.1";
  t.dst_port = 5000;
  return t;
}

std::unique_ptr<SimulatedNic> MakeNic() {
  SimulatedNicSpec spec;
  spec.name = "bench0";
  spec.ifindex = kIfindex;
  spec.rule_table_size = 4 * kRulesPerRound;
  auto sim = SimulatedNic::Create({spec});
  if (!sim.ok()) {
    absl::FPrintF(stderr, "rule_bench: %s\n", sim.status().ToString());
    std::exit(1);
  }
  return std::move(*sim);
}

// The daemon path: NicManager on a simulated NIC with a profile applied.
// With `journal_dir`, every rule is journaled (intent + outcome, each
// fdatasync'ed) as devmemd does.
bool DaemonPath(int rounds, const std::string& journal_dir,
                std::vector<double>* d_ins, std::vector<double>* d_del,
                double* d_ins_s, double* d_del_s) {
  devmem::v1::DaemonConfig config;
  config.set_state_dir(absl::StrCat("/tmp/devmemd_rule_bench_", getpid()));
  config.set_max_rules_per_session(65536);
  config.set_max_rules_per_uid(65536);
  config.add_nic_profiles()->set_nic("bench0");
  if (!FinalizeConfig(&config, "bench").ok()) return false;
  auto sim = MakeNic();
  NicInfo info;
  info.link.name = "bench0";
  info.link.ifindex = kIfindex;
  FakeNicInventory inventory({info});
  std::unique_ptr<LeaseJournal> journal;
  if (!journal_dir.empty()) {
    auto j = LeaseJournal::Open({journal_dir + "/journal", true}, nullptr);
    if (!j.ok()) {
      absl::FPrintF(stderr, "rule_bench: journal: %s\n", j.status().ToString());
      return false;
    }
    journal = *std::move(j);
  }
  NicManager::Options o;
  o.config = &config;
  o.control = sim.get();
  o.inventory = &inventory;
  o.journal = journal.get();
  o.session_record = [](uint64_t id) {
    devmem::v1::JournaledSession rec;
    rec.set_id(id);
    return std::optional<devmem::v1::JournaledSession>(rec);
  };
  NicManager manager(o);
  manager.ApplyAll();
  UniqueFd mem(memfd_create("bench", MFD_CLOEXEC));
  auto binding = manager.BindRx(1, {"bench0", ""}, 1, std::move(mem));
  if (!binding.ok()) {
    absl::FPrintF(stderr, "rule_bench: bind: %s\n",
                  binding.status().ToString());
    return false;
  }
  std::vector<uint32_t> locations(kRulesPerRound);
  for (int r = 0; r < rounds; ++r) {
    auto t0 = Clock::now();
    for (uint32_t i = 0; i < kRulesPerRound; ++i) {
      auto a = Clock::now();
      auto rule = manager.SteerFlow(1, binding->handle(), TupleFor(i));
      auto b = Clock::now();
      if (!rule.ok()) {
        absl::FPrintF(stderr, "rule_bench: steer: %s\n",
                      rule.status().ToString());
        return false;
      }
      locations[i] = rule->location();
      d_ins->push_back(Us(b - a));
    }
    auto t1 = Clock::now();
    for (uint32_t i = 0; i < kRulesPerRound; ++i) {
      auto a = Clock::now();
      absl::Status s = manager.RemoveFlow(1, binding->handle(), locations[i]);
      auto b = Clock::now();
      if (!s.ok()) {
        absl::FPrintF(stderr, "rule_bench: remove: %s\n", s.ToString());
        return false;
      }
      d_del->push_back(Us(b - a));
    }
    auto t2 = Clock::now();
    *d_ins_s += std::chrono::duration<double>(t1 - t0).count();
    *d_del_s += std::chrono::duration<double>(t2 - t1).count();
  }
  manager.ReleaseSession(1);
  manager.RestoreAll();
  return true;
}

int Run(int rounds) {
  std::vector<double> d_ins, d_del;
  double d_ins_s = 0, d_del_s = 0;
  if (!DaemonPath(rounds, "", &d_ins, &d_del, &d_ins_s, &d_del_s)) return 1;
  // Journaled, on the disk under /var/tmp (a tmpfs would hide the fsync).
  const std::string jdir =
      absl::StrCat("/var/tmp/devmemd_rule_bench_", getpid());
  std::vector<double> j_ins, j_del;
  double j_ins_s = 0, j_del_s = 0;
  const bool journaled =
      DaemonPath(1, jdir, &j_ins, &j_del, &j_ins_s, &j_del_s);
  std::error_code ec;
  std::filesystem::remove_all(jdir, ec);
  if (!journaled) return 1;
  std::vector<uint32_t> locations(kRulesPerRound);

  // --- Baseline: the simulated driver alone.
  auto raw = MakeNic();
  if (!raw->SetNtuple(kIfindex, true).ok()) return 1;
  std::vector<double> r_ins, r_del;
  double r_ins_s = 0, r_del_s = 0;
  for (int r = 0; r < rounds; ++r) {
    auto t0 = Clock::now();
    for (uint32_t i = 0; i < kRulesPerRound; ++i) {
      FlowRule rule;
      rule.match = TupleFor(i);
      rule.queue = 7;
      auto a = Clock::now();
      auto loc = raw->InsertRule(kIfindex, rule);
      auto b = Clock::now();
      if (!loc.ok()) return 1;
      locations[i] = *loc;
      r_ins.push_back(Us(b - a));
    }
    auto t1 = Clock::now();
    for (uint32_t i = 0; i < kRulesPerRound; ++i) {
      auto a = Clock::now();
      absl::Status s = raw->DeleteRule(kIfindex, locations[i]);
      auto b = Clock::now();
      if (!s.ok()) return 1;
      r_del.push_back(Us(b - a));
    }
    auto t2 = Clock::now();
    r_ins_s += std::chrono::duration<double>(t1 - t0).count();
    r_del_s += std::chrono::duration<double>(t2 - t1).count();
  }

  const Summary di = Summarize(d_ins, d_ins_s), dd = Summarize(d_del, d_del_s);
  const Summary ri = Summarize(r_ins, r_ins_s), rd = Summarize(r_del, r_del_s);
  absl::PrintF(
      "rule_bench: %d rounds x %u rules (5-tuple, IPv4), one binding\n", rounds,
      kRulesPerRound);
  absl::PrintF("%-28s %12s %10s %10s\n", "", "rules/s", "p50 us", "p99 us");
  auto row = [](const char* name, const Summary& s) {
    absl::PrintF("%-28s %12.0f %10.2f %10.2f\n", name, s.rules_per_s, s.p50_us,
                 s.p99_us);
  };
  row("daemon install (SteerFlow)", di);
  row("daemon remove (RemoveFlow)", dd);
  const Summary ji = Summarize(j_ins, j_ins_s), jd = Summarize(j_del, j_del_s);
  row("journaled install (fsync)", ji);
  row("journaled remove (fsync)", jd);
  row("driver only install", ri);
  row("driver only remove", rd);
  const double own_ins_us = di.p50_us - ri.p50_us;
  const double own_del_us = dd.p50_us - rd.p50_us;
  absl::PrintF("ratio daemon/driver (p50): install %.2fx, remove %.2fx\n",
               di.p50_us / ri.p50_us, dd.p50_us / rd.p50_us);
  absl::PrintF(
      "ratio journaled/daemon (p50): install %.1fx, remove %.1fx (the "
      "price of one fdatasync of the intent before each rule is made)\n",
      ji.p50_us / di.p50_us, jd.p50_us / dd.p50_us);
  absl::PrintF(
      "devmemd's own cost per rule (p50, driver time excluded): install "
      "%.2f us (%.0f rules/s), remove %.2f us\n",
      own_ins_us, own_ins_us > 0 ? 1e6 / own_ins_us : 0.0, own_del_us);
  const bool met = di.rules_per_s >= kGoalRulesPerSecond &&
                   dd.rules_per_s >= kGoalRulesPerSecond;
  absl::PrintF("goal >= %.0f rules/s through the daemon path: %s\n",
               kGoalRulesPerSecond, met ? "MET" : "NOT MET");
  return 0;
}

}  // namespace
}  // namespace devmem

int main(int argc, char** argv) {
  int rounds = 5;
  if (argc > 1 && !absl::SimpleAtoi(argv[1], &rounds)) {
    std::fprintf(stderr, "usage: rule_bench [ROUNDS]\n");
    return 2;
  }
  return devmem::Run(std::max(rounds, 1));
}
