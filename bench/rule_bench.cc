// Steering-rule install and remove throughput in the daemon's own code
// (NicManager: idempotency check, quotas, bookkeeping, the 5-tuple rule) on
// the simulated devmem NIC, against the simulated driver alone (SimulatedNic
// InsertRule/DeleteRule called directly) measured in the same run. The
// difference is devmemd's own cost per rule; "excluding driver time" is the
// daemon figure minus the driver figure. Goal: >= 50k rules/s through the
// daemon path (driver time included, so the goal holds a fortiori).
//
// Then the journaled paths with group commit (docs/PROTOCOL.md section 8):
// 1, 8 and 64 concurrent callers of one rule each, and batches of 64 and
// 1024 rules per wait, each on a fresh journal on the disk, with the fsyncs
// per rule and the disk's own fdatasync latency measured in the same run.
// Goal: >= 50k journaled rules/s.
//
// Usage: bazel run -c opt //bench:rule_bench [-- ROUNDS]

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "bench/fsync_probe.h"
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
// Rules per journaled group-commit path.
constexpr uint32_t kGroupRules = 8192;

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
  spec.rule_table_size = 4 * kGroupRules;
  auto sim = SimulatedNic::Create({spec});
  if (!sim.ok()) {
    absl::FPrintF(stderr, "rule_bench: %s\n", sim.status().ToString());
    std::exit(1);
  }
  return std::move(*sim);
}

// devmemd's NIC side on the simulated NIC with a profile applied and one
// RX binding (session 1). With `journal_dir`, every rule is journaled as
// devmemd does (intent written and flushed in groups, outcome written).
struct Host {
  devmem::v1::DaemonConfig config;
  std::unique_ptr<SimulatedNic> sim;
  std::unique_ptr<FakeNicInventory> inventory;
  std::unique_ptr<LeaseJournal> journal;
  std::unique_ptr<NicManager> manager;
  uint64_t binding = 0;

  uint64_t syncs() const { return journal ? journal->syncs() : 0; }
};

std::unique_ptr<Host> MakeHost(const std::string& journal_dir) {
  auto h = std::make_unique<Host>();
  h->config.set_state_dir(absl::StrCat("/tmp/devmemd_rule_bench_", getpid()));
  h->config.set_max_rules_per_session(65536);
  h->config.set_max_rules_per_uid(65536);
  h->config.add_nic_profiles()->set_nic("bench0");
  if (!FinalizeConfig(&h->config, "bench").ok()) return nullptr;
  h->sim = MakeNic();
  NicInfo info;
  info.link.name = "bench0";
  info.link.ifindex = kIfindex;
  h->inventory = std::make_unique<FakeNicInventory>(std::vector<NicInfo>{info});
  if (!journal_dir.empty()) {
    auto j = LeaseJournal::Open({journal_dir + "/journal", true}, nullptr);
    if (!j.ok()) {
      absl::FPrintF(stderr, "rule_bench: journal: %s\n", j.status().ToString());
      return nullptr;
    }
    h->journal = *std::move(j);
  }
  NicManager::Options o;
  o.config = &h->config;
  o.control = h->sim.get();
  o.inventory = h->inventory.get();
  o.journal = h->journal.get();
  o.session_record = [](uint64_t id) {
    devmem::v1::JournaledSession rec;
    rec.set_id(id);
    return std::optional<devmem::v1::JournaledSession>(rec);
  };
  h->manager = std::make_unique<NicManager>(o);
  h->manager->ApplyAll();
  UniqueFd mem(memfd_create("bench", MFD_CLOEXEC));
  auto binding = h->manager->BindRx(1, {"bench0", ""}, 1, std::move(mem));
  if (!binding.ok()) {
    absl::FPrintF(stderr, "rule_bench: bind: %s\n",
                  binding.status().ToString());
    return nullptr;
  }
  h->binding = binding->handle();
  return h;
}

void Teardown(Host& h) {
  h.manager->ReleaseSession(1);
  h.manager->RestoreAll();
}

// The daemon path, one rule per call (each call returns once its rule is
// durable when journaled).
bool DaemonPath(int rounds, const std::string& journal_dir,
                std::vector<double>* d_ins, std::vector<double>* d_del,
                double* d_ins_s, double* d_del_s) {
  std::unique_ptr<Host> h = MakeHost(journal_dir);
  if (h == nullptr) return false;
  NicManager& manager = *h->manager;
  std::vector<uint32_t> locations(kRulesPerRound);
  for (int r = 0; r < rounds; ++r) {
    auto t0 = Clock::now();
    for (uint32_t i = 0; i < kRulesPerRound; ++i) {
      auto a = Clock::now();
      auto rule = manager.SteerFlow(1, h->binding, TupleFor(i));
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
      absl::Status s = manager.RemoveFlow(1, h->binding, locations[i]);
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
  Teardown(*h);
  return true;
}

struct GroupRow {
  std::string name;
  uint32_t rules = 0;
  double seconds = 0;
  uint64_t syncs = 0;
};

// `clients` threads steer kGroupRules rules between them through the
// journaled daemon path, `batch` per wait: SteerFlow for each rule of the
// batch (or, `one_lock`, all of them in one SteerFlows: what OpenSockets
// and SteerMany do), then one AwaitDurable for the last; batch 1 is the
// single Steer/Listen/Connect call.
std::optional<GroupRow> GroupPath(const std::string& dir,
                                  const std::string& name, int clients,
                                  uint32_t batch, bool one_lock) {
  std::unique_ptr<Host> h = MakeHost(dir);
  if (h == nullptr) return std::nullopt;
  const uint64_t syncs0 = h->syncs();
  const uint32_t per_client = kGroupRules / static_cast<uint32_t>(clients);
  std::atomic<bool> failed{false};
  // Steers rules [from, from + n): their statuses, and the journal
  // sequence number to wait for in *last.
  auto steer = [&](uint32_t from, uint32_t n, uint64_t* last) {
    if (one_lock) {
      std::vector<NicManager::FlowToSteer> flows(n);
      for (uint32_t i = 0; i < n; ++i) {
        flows[i] = {h->binding, TupleFor(from + i)};
      }
      return h->manager->SteerFlows(1, flows, last);
    }
    std::vector<absl::StatusOr<devmem::v1::FlowRule>> rules;
    for (uint32_t i = 0; i < n; ++i) {
      uint64_t seq = 0;
      // A batch leaves the flush to its one wait.
      rules.push_back(h->manager->SteerFlow(1, h->binding, TupleFor(from + i),
                                            &seq, /*start_flush=*/n == 1));
      *last = std::max(*last, seq);
    }
    return rules;
  };
  auto client = [&](uint32_t first) {
    for (uint32_t done = 0; done < per_client && !failed;) {
      uint64_t last = 0;
      const uint32_t n = std::min(batch, per_client - done);
      for (const auto& rule : steer(first + done, n, &last)) {
        if (!rule.ok()) {
          absl::FPrintF(stderr, "rule_bench: %s: %s\n", name,
                        rule.status().ToString());
          failed = true;
          return;
        }
      }
      done += n;
      if (!h->manager->AwaitDurable(last).ok()) failed = true;
    }
  };
  auto t0 = Clock::now();
  std::vector<std::thread> threads;
  threads.reserve(static_cast<size_t>(clients));
  for (int c = 0; c < clients; ++c) {
    threads.emplace_back(client, static_cast<uint32_t>(c) * per_client);
  }
  for (std::thread& t : threads) t.join();
  GroupRow row;
  row.name = name;
  row.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  row.rules = per_client * static_cast<uint32_t>(clients);
  row.syncs = h->syncs() - syncs0;
  Teardown(*h);
  if (failed) return std::nullopt;
  return row;
}

// The journaled paths, on the disk under /var/tmp (a tmpfs would hide the
// fsync), with the disk's own fdatasync latency measured in the same run.
bool GroupCommit() {
  const std::string dir =
      absl::StrCat("/var/tmp/devmemd_rule_bench_group_", getpid());
  std::filesystem::create_directories(dir);
  // 0 when the probe fails: the ratios below then print as 0.
  const double fsync_us = FsyncP50Us(dir).value_or(0);
  struct Path {
    const char* name;
    int clients;
    uint32_t batch;
    bool one_lock;
  };
  const Path paths[] = {
      {"1 client, 1 rule per call", 1, 1, false},
      {"8 clients, 1 rule per call", 8, 1, false},
      {"64 clients, 1 rule per call", 64, 1, false},
      {"1 client, batch of 64", 1, 64, false},
      {"1 client, batch of 1024", 1, 1024, false},
      {"8 clients, batch of 1024", 8, 1024, false},
      {"1 client, 1024 in one lock", 1, 1024, true},
      {"8 clients, 1024 in one lock", 8, 1024, true},
  };
  absl::PrintF(
      "\njournaled with group commit: %u rules per path; this disk's "
      "fdatasync (4 KiB pwrite + fdatasync) p50 %.0f us = %.0f syncs/s\n",
      kGroupRules, fsync_us, fsync_us > 0 ? 1e6 / fsync_us : 0.0);
  absl::PrintF("%-30s %12s %12s %14s\n", "path", "rules/s", "fsyncs/rule",
               "vs 1 fsync/rule");
  double best = 0;
  for (const Path& p : paths) {
    const std::string sub = absl::StrCat(dir, "/", p.clients, "_", p.batch,
                                         p.one_lock ? "_lock" : "");
    std::filesystem::create_directories(sub);
    auto row = GroupPath(sub, p.name, p.clients, p.batch, p.one_lock);
    std::error_code ec;
    std::filesystem::remove_all(sub, ec);
    if (!row) return false;
    const double rate = row->rules / row->seconds;
    best = std::max(best, rate);
    absl::PrintF("%-30s %12.0f %12.4f %13.1fx\n", row->name, rate,
                 static_cast<double>(row->syncs) / row->rules,
                 fsync_us > 0 ? rate / (1e6 / fsync_us) : 0.0);
  }
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
  absl::PrintF(
      "goal >= %.0f journaled rules/s (crash rule intact: "
      "daemon/nic:batch_crash_test): %s (best path %.0f rules/s)\n",
      kGoalRulesPerSecond, best >= kGoalRulesPerSecond ? "MET" : "NOT MET",
      best);
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
  row("journaled install", ji);
  row("journaled remove", jd);
  row("driver only install", ri);
  row("driver only remove", rd);
  const double own_ins_us = di.p50_us - ri.p50_us;
  const double own_del_us = dd.p50_us - rd.p50_us;
  absl::PrintF("ratio daemon/driver (p50): install %.2fx, remove %.2fx\n",
               di.p50_us / ri.p50_us, dd.p50_us / rd.p50_us);
  absl::PrintF(
      "ratio journaled/daemon (p50): install %.1fx, remove %.1fx (one "
      "caller, one rule per call: each waits for its own fdatasync)\n",
      ji.p50_us / di.p50_us, jd.p50_us / dd.p50_us);
  absl::PrintF(
      "devmemd's own cost per rule (p50, driver time excluded): install "
      "%.2f us (%.0f rules/s), remove %.2f us\n",
      own_ins_us, own_ins_us > 0 ? 1e6 / own_ins_us : 0.0, own_del_us);
  const bool met = di.rules_per_s >= kGoalRulesPerSecond &&
                   dd.rules_per_s >= kGoalRulesPerSecond;
  absl::PrintF("goal >= %.0f rules/s through the daemon path: %s\n",
               kGoalRulesPerSecond, met ? "MET" : "NOT MET");
  return GroupCommit() ? 0 : 1;
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
