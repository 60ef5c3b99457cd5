// kill -9 at every step of a batch of steering rules made with group commit
// (docs/PROTOCOL.md section 8, "Durability"). A forked child is devmemd's
// NIC side: a simulated NIC whose state outlives the process (as hardware
// outlives devmemd), the real journal with fdatasync, and NicManager. It
// steers a batch of flows, waits once for the journal, and reports the rules
// it would acknowledge; it kills itself with SIGKILL at step k (before and
// after each rule insert, before and after each fdatasync, before the wait,
// after the acknowledgement). The parent plays the workload that keeps the
// binding's anchor, then recovers as a restarted devmemd would and checks:
// no rule is left on the NIC that devmemd does not account for, and every
// acknowledged rule is still there and still devmemd's.
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "daemon/config.h"
#include "daemon/nic/nic_manager.h"
#include "daemon/nic/testing/hooked_nic.h"
#include "daemon/nic/testing/sim0.h"
#include "daemon/nic/testing/test_tuple.h"
#include "daemon/state/journal.h"
#include "daemon/state/lease_journal.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kernel/scm_rights.h"

namespace devmem {
namespace {

constexpr uint32_t kIfindex = 9;
constexpr int kBatch = 8;

// The NIC side of one devmemd run over `dir` (journal, simulated NIC).
struct Host {
  devmem::v1::DaemonConfig config;
  std::unique_ptr<FakeNicInventory> inventory;
  std::unique_ptr<SimulatedNic> sim;
  std::unique_ptr<HookedNic> nic;
  std::unique_ptr<LeaseJournal> journal;
  std::unique_ptr<NicManager> manager;
};

std::unique_ptr<Host> Boot(const std::string& dir,
                           std::function<int(int)> fdatasync) {
  auto h = std::make_unique<Host>();
  h->config = Sim0Config(dir + "/state", /*pool_queues=*/2);
  h->config.set_max_rules_per_session(64);
  h->inventory = Sim0Inventory(kIfindex);
  h->sim = Sim0(kIfindex, dir + "/simnic");
  if (h->sim == nullptr) return nullptr;
  h->nic = std::make_unique<HookedNic>(h->sim.get());
  LeaseJournal::Options jo;
  jo.path = dir + "/journal";
  jo.sync = true;
  jo.fdatasync = std::move(fdatasync);
  auto j = LeaseJournal::Open(jo, nullptr);
  if (!j.ok()) return nullptr;
  h->journal = *std::move(j);
  NicManager::Options o;
  o.config = &h->config;
  o.control = h->nic.get();
  o.inventory = h->inventory.get();
  o.journal = h->journal.get();
  o.host_key = "0123456789abcdef0123456789abcdef";
  o.session_record = [](uint64_t id) {
    devmem::v1::JournaledSession rec;
    rec.set_id(id);
    rec.set_token(absl::StrCat("token", id));
    rec.set_uid(1000);
    return std::optional<devmem::v1::JournaledSession>(rec);
  };
  h->manager = std::make_unique<NicManager>(o);
  h->manager->ApplyAll();
  return h;
}

void Say(int fd, const std::string& line) {
  const std::string out = line + "\n";
  (void)!::write(fd, out.data(), out.size());
}

// The child: binds, hands the anchor to the parent, then steers a batch,
// dying at step `kill_at` (counted from the first steer). Exit 0: it got
// through every step.
// What the child does once armed: a batch of rules on a binding made before
// (one SteerFlow per rule, as SteerMany does, or all of them in one
// SteerFlows, as OpenSockets does), or the bind itself (the workload gets
// the anchor only with the answer).
enum class Mode { kRules, kRulesTogether, kBind };

[[noreturn]] void RunChild(const std::string& dir, Mode mode, int kill_at,
                           int report, int anchor_sock) {
  int steps = 0;
  bool armed = false;
  auto step = [&](absl::string_view name) {
    if (!armed) return;
    if (++steps == kill_at) {
      Say(report, absl::StrCat("killed ", name));
      ::kill(::getpid(), SIGKILL);
    }
  };
  std::unique_ptr<Host> h = Boot(dir, [&](int fd) {
    step("fdatasync");
    // What this flush makes durable: the file as it is now.
    const off_t size = ::lseek(fd, 0, SEEK_END);
    const int rc = ::fdatasync(fd);
    if (rc == 0 && armed) Say(report, absl::StrCat("durable ", size));
    step("fdatasync_done");
    return rc;
  });
  if (h == nullptr) ::_exit(2);
  h->nic->step_hook = step;
  armed = mode == Mode::kBind;
  auto b = h->manager->BindRx(1, {"sim0", ""}, 1,
                              UniqueFd(memfd_create("crash", MFD_CLOEXEC)));
  if (!b.ok()) ::_exit(3);
  auto anchor = h->manager->DupAnchor(1, b->handle());
  if (!anchor.ok()) ::_exit(4);
  const int fds[] = {anchor->get_unowned()};
  if (!SendWithFds(anchor_sock, absl::StrCat(b->handle()), fds).ok()) {
    ::_exit(5);
  }
  if (mode == Mode::kBind) {
    step("acked");
    ::_exit(0);
  }
  armed = true;
  std::vector<uint32_t> locations;
  std::vector<int> ports;
  uint64_t last = 0;
  if (mode == Mode::kRulesTogether) {
    std::vector<NicManager::FlowToSteer> flows;
    for (int i = 0; i < kBatch; ++i) {
      flows.push_back(
          {b->handle(), TestTuple(static_cast<uint16_t>(40000 + i), 5000)});
      ports.push_back(40000 + i);
    }
    for (const auto& rule : h->manager->SteerFlows(1, flows, &last)) {
      if (!rule.ok()) ::_exit(6);
      locations.push_back(rule->location());
    }
  }
  for (int i = 0; mode == Mode::kRules && i < kBatch; ++i) {
    uint64_t seq = 0;
    auto rule = h->manager->SteerFlow(
        1, b->handle(), TestTuple(static_cast<uint16_t>(40000 + i), 5000),
        &seq);
    if (!rule.ok()) ::_exit(6);
    locations.push_back(rule->location());
    ports.push_back(40000 + i);
    last = std::max(last, seq);
  }
  step("await");
  if (!h->manager->AwaitDurable(last).ok()) ::_exit(7);
  // What a client is told from here on must survive.
  for (size_t i = 0; i < locations.size(); ++i) {
    Say(report, absl::StrCat("acked ", locations[i], " ", ports[i]));
  }
  step("acked");
  ::_exit(0);
}

struct ChildRun {
  bool killed = false;
  std::string killed_at;
  std::vector<uint32_t> acked;        // rule locations
  std::vector<uint32_t> acked_ports;  // their flows' source ports
  // The journal's prefix flushed before the first acknowledgement.
  uint64_t durable_bytes = 0;
  uint64_t handle = 0;
  UniqueFd anchor;
  std::string output;  // the child's report, for failure messages
};

ChildRun Fork(const std::string& dir, Mode mode, int kill_at) {
  ChildRun run;
  int pipe_fds[2];
  int pair[2];
  if (::pipe2(pipe_fds, O_CLOEXEC) != 0 ||
      ::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) != 0) {
    ADD_FAILURE() << "pipe/socketpair";
    return run;
  }
  UniqueFd read_end(pipe_fds[0]), write_end(pipe_fds[1]);
  UniqueFd ours(pair[0]), theirs(pair[1]);
  const pid_t pid = ::fork();
  if (pid == 0) {
    RunChild(dir, mode, kill_at, write_end.get_unowned(), theirs.get_unowned());
  }
  write_end.Reset();
  theirs.Reset();
  auto msg = RecvWithFds(ours.get_unowned(), 64, 1);
  if (msg.ok() && msg->fds.size() == 1) {
    run.anchor = std::move(msg->fds[0]);
    EXPECT_TRUE(absl::SimpleAtoi(msg->data, &run.handle)) << msg->data;
  }
  int status = 0;
  EXPECT_EQ(::waitpid(pid, &status, 0), pid);
  run.killed = WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL;
  if (!run.killed) {
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
        << "child status " << status << " at kill point " << kill_at;
  }
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = ::read(read_end.get_unowned(), buf, sizeof(buf))) > 0) {
    out.append(buf, static_cast<size_t>(n));
  }
  run.output = out;
  for (absl::string_view line : absl::StrSplit(out, '\n', absl::SkipEmpty())) {
    if (absl::ConsumePrefix(&line, "killed ")) {
      run.killed_at = absl::StrCat(line);
    }
    // Only what was flushed before the acknowledgement counts: a later
    // flush may not come before a crash.
    if (absl::ConsumePrefix(&line, "durable ") && run.acked.empty()) {
      EXPECT_TRUE(absl::SimpleAtoi(line, &run.durable_bytes));
    }
    if (absl::ConsumePrefix(&line, "acked ")) {
      std::vector<std::string> f = absl::StrSplit(line, ' ');
      uint32_t loc = 0, port = 0;
      EXPECT_TRUE(f.size() == 2 && absl::SimpleAtoi(f[0], &loc) &&
                  absl::SimpleAtoi(f[1], &port))
          << line;
      run.acked.push_back(loc);
      run.acked_ports.push_back(port);
    }
  }
  return run;
}

std::set<uint32_t> NicRules(SimulatedNic* sim) {
  auto table = sim->ListRules(kIfindex);
  EXPECT_TRUE(table.ok()) << table.status();
  if (!table.ok()) return {};
  return std::set<uint32_t>(table->locations.begin(), table->locations.end());
}

std::set<uint32_t> JournaledRules(const LeaseJournal& journal) {
  std::set<uint32_t> out;
  const devmem::v1::JournalState state = journal.state();
  for (const auto& [id, r] : state.rules()) {
    if (r.installed()) out.insert(r.location());
  }
  return out;
}

// A machine crash instead: only the flushed prefix of the journal is left.
// Every acknowledged rule must have its record there (the NIC's rules die
// with the machine, but the daemon that comes back must know of them).
void ExpectAckedRulesDurable(const std::string& journal_path,
                             const ChildRun& run) {
  std::string bytes;
  {
    UniqueFd fd(::open(journal_path.c_str(), O_RDONLY | O_CLOEXEC));
    ASSERT_TRUE(fd);
    char buf[65536];
    ssize_t n;
    while ((n = ::read(fd.get_unowned(), buf, sizeof(buf))) > 0) {
      bytes.append(buf, static_cast<size_t>(n));
    }
  }
  ASSERT_GE(bytes.size(), run.durable_bytes);
  bytes.resize(run.durable_bytes);
  devmem::v1::JournalState state;
  for (const std::string& record : ScanJournal(bytes).records) {
    devmem::v1::JournalEntry entry;
    ASSERT_TRUE(entry.ParseFromString(record));
    FoldJournalEntry(entry, &state);
  }
  std::set<uint32_t> durable_ports;
  for (const auto& [id, r] : state.rules()) {
    durable_ports.insert(r.requested().src_port());
  }
  for (uint32_t port : run.acked_ports) {
    EXPECT_EQ(durable_ports.count(port), 1u)
        << "acknowledged rule for port " << port
        << " has no record in the flushed journal";
  }
}

class BatchRulesCrashTest : public ::testing::TestWithParam<Mode> {};

TEST_P(BatchRulesCrashTest,
       KillAtEveryStepLeaksNoRuleAndLosesNoAcknowledgedOne) {
  const std::string base =
      absl::StrCat(std::getenv("TEST_TMPDIR"), "/crash",
                   GetParam() == Mode::kRules ? "" : "-together");
  int kill_points = 0;
  for (int k = 1; k <= 200; ++k) {
    SCOPED_TRACE(absl::StrCat("kill point ", k));
    const std::string dir = absl::StrCat(base, k);
    ChildRun run = Fork(dir, GetParam(), k);
    ASSERT_TRUE(run.anchor) << "the child did not hand over its anchor";
    ExpectAckedRulesDurable(dir + "/journal", run);
    std::unique_ptr<Host> h = Boot(dir, nullptr);
    ASSERT_NE(h, nullptr);
    std::vector<devmem::v1::JournaledSession> detached;
    const std::vector<std::string> report =
        h->manager->Recover(h->journal->state(), {}, &detached);
    // No leak: every rule on the NIC is one devmemd recorded and keeps.
    const std::set<uint32_t> nic_rules = NicRules(h->sim.get());
    EXPECT_EQ(nic_rules, JournaledRules(*h->journal))
        << run.killed_at << "\n"
        << absl::StrJoin(report, "\n");
    EXPECT_EQ(h->manager->rule_count(), nic_rules.size());
    // No loss: what was acknowledged is there.
    for (uint32_t loc : run.acked) {
      EXPECT_TRUE(nic_rules.count(loc) == 1) << "acknowledged rule " << loc;
    }
    // The workload takes its binding back; closing releases it all.
    auto id = h->manager->ReturnAnchor(1, run.handle, std::move(run.anchor));
    EXPECT_TRUE(id.ok()) << id.status();
    h->manager->ReleaseSession(1);
    EXPECT_TRUE(NicRules(h->sim.get()).empty());
    if (!run.killed) {
      EXPECT_EQ(run.acked.size(), static_cast<size_t>(kBatch)) << run.output;
      break;
    }
    ++kill_points;
    EXPECT_FALSE(run.killed_at.empty());
  }
  // 8 inserts x (before, after), at least one flush x (before, after),
  // the wait and the acknowledgement.
  EXPECT_GE(kill_points, 2 * kBatch + 2 + 2);
  std::printf("killed at %d distinct steps\n", kill_points);
}

INSTANTIATE_TEST_SUITE_P(OneCallPerRuleAndOneForAll, BatchRulesCrashTest,
                         ::testing::Values(Mode::kRules, Mode::kRulesTogether));

// kill -9 at every step of a BindRx made with group commit (its records
// written, the flush shared, the answer after it): a binding whose answer
// (the anchor) reached the workload is kept after recovery and its anchor
// is taken back; one that never reached it dies with the daemon's netlink
// socket and leaves nothing, on the NIC or in devmemd.
TEST(BatchCrashTest, KillAtEveryStepOfABindKeepsOnlyAnsweredBindings) {
  const std::string base =
      absl::StrCat(std::getenv("TEST_TMPDIR"), "/bindcrash");
  int kill_points = 0;
  for (int k = 1; k <= 50; ++k) {
    SCOPED_TRACE(absl::StrCat("kill point ", k));
    const std::string dir = absl::StrCat(base, k);
    ChildRun run = Fork(dir, Mode::kBind, k);
    std::unique_ptr<Host> h = Boot(dir, nullptr);
    ASSERT_NE(h, nullptr);
    std::vector<devmem::v1::JournaledSession> detached;
    const std::vector<std::string> report =
        h->manager->Recover(h->journal->state(), {}, &detached);
    if (run.anchor) {
      // Answered: the binding is there, awaiting its workload.
      EXPECT_EQ(h->manager->binding_count(), 1u) << run.killed_at << "\n"
                                                 << absl::StrJoin(report, "\n");
      auto id = h->manager->ReturnAnchor(1, run.handle, std::move(run.anchor));
      EXPECT_TRUE(id.ok()) << id.status();
      h->manager->ReleaseSession(1);
    } else {
      EXPECT_EQ(h->manager->binding_count(), 0u) << run.killed_at << "\n"
                                                 << absl::StrJoin(report, "\n");
    }
    EXPECT_EQ(h->sim->GetCounters(kIfindex)->rx_bindings, 0u);
    if (!run.killed) break;
    ++kill_points;
  }
  // bind_rx, bind_rx_done, a flush (before and after), the answer.
  EXPECT_GE(kill_points, 4);
  std::printf("bind killed at %d distinct steps\n", kill_points);
}

}  // namespace
}  // namespace devmem
