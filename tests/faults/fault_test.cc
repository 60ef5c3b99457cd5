// Fault injection with real processes (issue: reliability). devmemd runs as a
// child on loopback with the simulated devmem NIC, whose "hardware" state and
// binding anchors persist in a directory like a real NIC's do, so a killed
// daemon leaves behind exactly what it would on hardware. Workloads are
// tests/faults/fault_client processes that stop at a given protocol step.
//
// What is checked, after kill -9 of a client or of the daemon at every step:
// no rules, queues or bindings are left (the daemon's view AND what the NIC
// reports), the daemon's fd count returns to its start value, other sessions
// are unaffected, and a stream through a handed socket loses no byte.
#include <netinet/in.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <memory>

#include "absl/strings/numbers.h"
#include "client/libdevmem.h"
#include "client/pattern.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/process.h"

namespace devmem {
namespace {

using ::devmem::testing::FdCount;
using ::devmem::testing::MiniSystemd;
using ::devmem::testing::Proc;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kDevmemd[] = "daemon/devmemd";
constexpr char kClient[] = "tests/faults/fault_client";
constexpr uint64_t kBytes = 4 << 20;

bool WaitFor(const std::function<bool()>& done,
             absl::Duration limit = absl::Seconds(20)) {
  const absl::Time deadline = absl::Now() + limit;
  while (!done()) {
    if (absl::Now() > deadline) return done();
    // Poll the daemon at a modest rate; each check is a gRPC call.
    struct pollfd none = {-1, 0, 0};
    poll(&none, 1, 20);
  }
  return true;
}

// What the daemon and the (simulated) NIC say right now.
struct Snapshot {
  bool ok = false;
  uint32_t sessions = 0, detached = 0, bindings = 0, rules = 0;
  uint32_t kernel_rules = 0, kernel_bound_queues = 0;
  std::string journal_error;
  std::vector<std::string> recovery, degraded;
  std::string health;
  std::vector<std::string> health_reasons;
};

class FaultTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) {
      GTEST_SKIP() << "needs root: the daemon binds to lo with "
                      "SO_BINDTODEVICE and the suite mounts a tmpfs";
    }
    static int n = 0;
    dir_ = absl::StrCat("/tmp/dmf", getpid(), "_", n++);
    mkdir(dir_.c_str(), 0700);
    run_ = dir_ + "/r";
    state_ = dir_ + "/s";
    mkdir(state_.c_str(), 0700);
    config_ = dir_ + "/devmemd.textproto";
    std::ofstream(config_) << "nic_profiles { nic: \"lo\" pool_queues: 4 }\n"
                              "allow_uids: 0\n"
                              "ticket_ttl_ms: 5000\n";
  }
  void TearDown() override {
    for (auto& c : clients_) c->Kill();
    daemon_.Kill();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  // Starts devmemd and waits until it serves. `env`/`fds` for the fd store.
  void StartDaemon(int grace_ms = 30000,
                   const std::vector<std::string>& env = {},
                   const std::vector<int>& fds = {}) {
    std::vector<std::string> argv = {
        kDevmemd,
        "--config=" + config_,
        "--runtime_dir=" + run_,
        "--state_dir=" + state_,
        "--nic_backend=simulated",
        absl::StrCat("--restart_grace_ms=", grace_ms)};
    daemon_ = Proc::Spawn(argv, env, fds, /*listen_pid=*/!fds.empty());
    ASSERT_TRUE(daemon_.running());
    ASSERT_TRUE(daemon_.WaitLine("devmemd ").has_value() &&
                absl::StrContains(daemon_.output(), "ready"))
        << daemon_.output();
  }

  Proc* StartClient(const std::string& pause_at, bool reconnect = true) {
    clients_.push_back(std::make_unique<Proc>(
        Proc::Spawn({kClient, "--runtime_dir=" + run_, "--nic=lo",
                     "--pause_at=" + pause_at, absl::StrCat("--bytes=", kBytes),
                     reconnect ? "--reconnect" : "--noreconnect"})));
    return clients_.back().get();
  }

  Snapshot Look() {
    Snapshot s;
    SessionOptions so;
    so.runtime_dir = run_;
    so.frame_timeout = absl::Seconds(2);
    so.rpc_timeout = absl::Seconds(5);
    auto session = Session::Open(so);
    if (!session.ok()) return s;
    auto st = (*session)->GetStatus();
    auto nic = (*session)->GetNicState({"lo"});
    if (!st.ok() || !nic.ok() || nic->nics_size() != 1) return s;
    s.ok = true;
    s.sessions = st->sessions() - 1;  // not counting this one
    s.detached = st->detached_sessions();
    s.bindings = st->bindings();
    s.rules = st->rules();
    s.journal_error = st->journal_error();
    s.recovery.assign(st->recovery().begin(), st->recovery().end());
    s.degraded.assign(st->degraded().begin(), st->degraded().end());
    s.health = st->health();
    s.health_reasons.assign(st->health_reasons().begin(),
                            st->health_reasons().end());
    s.kernel_rules = nic->nics(0).kernel_rules();
    s.kernel_bound_queues = nic->nics(0).kernel_bound_queues_size();
    return s;
  }

  // Waits until the daemon and the NIC hold exactly `bindings` bindings and
  // `rules` rules.
  bool WaitLeases(uint32_t bindings, uint32_t rules, Snapshot* last,
                  absl::Duration limit = absl::Seconds(20)) {
    return WaitFor(
        [&] {
          *last = Look();
          return last->ok && last->bindings == bindings &&
                 last->rules == rules && last->kernel_rules == rules &&
                 last->kernel_bound_queues == bindings;
        },
        limit);
  }

  static uint16_t PortOf(const std::string& line) {
    const size_t at = line.find("port=");
    uint32_t port = 0;
    if (at != std::string::npos) {
      (void)absl::SimpleAtoi(line.substr(at + 5, line.find(' ', at) - at - 5),
                             &port);
    }
    return static_cast<uint16_t>(port);
  }

  static UniqueFd Dial(uint16_t port) {
    UniqueFd fd(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    struct sockaddr_in a = {};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd.get_unowned(), reinterpret_cast<sockaddr*>(&a), sizeof(a)) !=
        0) {
      return UniqueFd();
    }
    return fd;
  }

  // Sends pattern bytes [from, to) on `fd`.
  static bool SendPattern(int fd, uint64_t from, uint64_t to) {
    std::vector<char> buf(size_t{64} * 1024);
    while (from < to) {
      const size_t n =
          static_cast<size_t>(std::min<uint64_t>(buf.size(), to - from));
      FillPattern(from, absl::MakeSpan(buf.data(), n));
      ssize_t w = send(fd, buf.data(), n, MSG_NOSIGNAL);
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) return false;
      from += static_cast<uint64_t>(w);
    }
    return true;
  }

  std::string dir_, run_, state_, config_;
  Proc daemon_;
  std::vector<std::unique_ptr<Proc>> clients_;
};

const std::vector<std::string>& ClientSteps() {
  static const auto* steps = new std::vector<std::string>{
      "opened", "deposited", "bound", "listening", "accepted", "streaming"};
  return *steps;
}

TEST_F(FaultTest, ClientKilledAtEveryStepLeavesNothingBehind) {
  StartDaemon();
  // A bystander holding a binding and a rule the whole time.
  Proc* bystander = StartClient("accepted");
  auto listening = bystander->WaitLine("STEP listening");
  ASSERT_TRUE(listening.has_value()) << bystander->output();
  UniqueFd by_conn = Dial(PortOf(*listening));
  ASSERT_TRUE(by_conn.valid());
  ASSERT_TRUE(bystander->WaitLine("STEP accepted").has_value());
  Snapshot s;
  ASSERT_TRUE(WaitLeases(1, 1, &s)) << "bindings=" << s.bindings;
  // The fd count settles once the observer's gRPC connections are gone.
  int baseline = -1;
  WaitFor([&] {
    const int a = FdCount(daemon_.pid());
    Look();
    const int b = FdCount(daemon_.pid());
    baseline = b;
    return a == b;
  });

  for (const std::string& step : ClientSteps()) {
    SCOPED_TRACE("client killed at step " + step);
    Proc* victim = StartClient(step);
    UniqueFd conn;
    if (step == "accepted" || step == "streaming") {
      auto l = victim->WaitLine("STEP listening");
      ASSERT_TRUE(l.has_value()) << victim->output();
      conn = Dial(PortOf(*l));
      ASSERT_TRUE(conn.valid());
      if (step == "streaming") {
        ASSERT_TRUE(SendPattern(conn.get_unowned(), 0, kBytes / 2 + 1));
      }
    }
    ASSERT_TRUE(victim->WaitLine("STEP " + step).has_value())
        << victim->output();
    victim->Kill();
    EXPECT_TRUE(WaitLeases(1, 1, &s))
        << "after the kill: bindings=" << s.bindings << " rules=" << s.rules
        << " nic rules=" << s.kernel_rules
        << " bound queues=" << s.kernel_bound_queues;
    EXPECT_EQ(s.sessions, 1u) << "only the bystander's session is left";
    EXPECT_TRUE(WaitFor([&] {
      Look();
      return FdCount(daemon_.pid()) == baseline;
    })) << "daemon fds "
        << FdCount(daemon_.pid()) << ", started with " << baseline;
  }
  // The bystander never noticed.
  bystander->Send("go");
  ASSERT_TRUE(SendPattern(by_conn.get_unowned(), 0, kBytes));
  auto done = bystander->WaitLine("STEP done");
  ASSERT_TRUE(done.has_value()) << bystander->output();
  EXPECT_THAT(*done, HasSubstr("ok=1"));
}

TEST_F(FaultTest, DaemonKilledAtEveryStepIsResumedAndStreamLosesNothing) {
  for (const std::string& step :
       {"opened", "bound", "listening", "accepted", "streaming"}) {
    SCOPED_TRACE(std::string("daemon killed at step ") + step);
    StartDaemon();
    Proc* client = StartClient(step);
    UniqueFd conn;
    const std::string s = step;
    if (s == "accepted" || s == "streaming") {
      auto l = client->WaitLine("STEP listening");
      ASSERT_TRUE(l.has_value()) << client->output();
      conn = Dial(PortOf(*l));
      ASSERT_TRUE(conn.valid());
      if (s == "streaming") {
        ASSERT_TRUE(SendPattern(conn.get_unowned(), 0, kBytes / 2 + 1));
      }
    }
    auto at = client->WaitLine(absl::StrCat("STEP ", step));
    ASSERT_TRUE(at.has_value()) << client->output();
    daemon_.Kill();
    // With the daemon gone, the stream keeps flowing.
    uint64_t sent = s == "streaming" ? kBytes / 2 + 1 : 0;
    if (conn.valid()) {
      ASSERT_TRUE(SendPattern(conn.get_unowned(), sent, kBytes * 3 / 4));
      sent = kBytes * 3 / 4;
    }
    StartDaemon();
    auto re = client->WaitLine("RECONNECT");
    ASSERT_TRUE(re.has_value()) << client->output();
    const bool had_leases = s != "opened";
    EXPECT_THAT(*re, HasSubstr(had_leases ? "resumed=1 status=OK"
                                          : "resumed=0 status=OK"));
    client->Send("go");
    if (!conn.valid()) {
      auto l = s == "listening" ? at : client->WaitLine("STEP listening");
      ASSERT_TRUE(l.has_value()) << client->output();
      conn = Dial(PortOf(*l));
      ASSERT_TRUE(conn.valid());
    }
    ASSERT_TRUE(SendPattern(conn.get_unowned(), sent, kBytes));
    auto done = client->WaitLine("STEP done");
    ASSERT_TRUE(done.has_value()) << client->output();
    EXPECT_THAT(*done, HasSubstr(absl::StrCat("bytes=", kBytes, " ok=1")));
    Snapshot snap;
    EXPECT_TRUE(WaitLeases(1, 1, &snap))
        << "bindings=" << snap.bindings << " rules=" << snap.rules
        << " nic rules=" << snap.kernel_rules;
    EXPECT_EQ(snap.detached, 0u);
    client->Send("release");
    EXPECT_TRUE(client->WaitLine("RELEASED OK").has_value())
        << client->output();
    EXPECT_TRUE(WaitLeases(0, 0, &snap));
    client->Kill();
    daemon_.Kill();
    conn.Reset();
    std::error_code ec;
    std::filesystem::remove_all(state_, ec);
    std::filesystem::remove_all(run_, ec);
    mkdir(state_.c_str(), 0700);
  }
}

// kill -9 of the daemon while batches of steered sockets (OpenSockets) are
// in flight, at a different moment of a batch each round: after the restart
// every rule on the NIC is one devmemd accounts for (no leak), every socket
// the client was answered about still has its rule (no loss), and releasing
// the binding clears the NIC. daemon/nic:batch_crash_test does the same at
// every step inside the daemon; this is the whole system doing it.
TEST_F(FaultTest, DaemonKilledDuringBatchesKeepsWhatItAnswered) {
  std::ofstream(config_) << "nic_profiles { nic: \"lo\" pool_queues: 4 "
                            "max_rules: 1024 }\n"
                            "allow_uids: 0\n";
  for (int delay_us : {0, 300, 1000, 3000}) {
    SCOPED_TRACE(absl::StrCat("killed ", delay_us, " us into a batch"));
    StartDaemon();
    clients_.push_back(std::make_unique<Proc>(
        Proc::Spawn({kClient, "--runtime_dir=" + run_, "--nic=lo",
                     "--batches=12", "--batch_size=32", "--reconnect"})));
    Proc* client = clients_.back().get();
    ASSERT_TRUE(client->WaitLine("BATCH 2 ").has_value()) << client->output();
    absl::SleepFor(absl::Microseconds(delay_us));
    daemon_.Kill();
    StartDaemon();
    auto done = client->WaitLine("STEP batched");
    ASSERT_TRUE(done.has_value()) << client->output();
    uint32_t acked = 0;
    const size_t at = done->find("acked=");
    ASSERT_NE(at, std::string::npos);
    ASSERT_TRUE(absl::SimpleAtoi(
        done->substr(at + 6, done->find(' ', at) - at - 6), &acked));
    EXPECT_GE(acked, 3u * 32u) << client->output();
    // Every rule devmemd and the NIC hold is the same set: nothing leaked.
    // Every answered socket's rule is among them: nothing lost. Rules of a
    // batch whose answer died with the daemon may be kept too (recorded,
    // the session's, released with it).
    Snapshot snap = Look();
    ASSERT_TRUE(snap.ok);
    EXPECT_EQ(snap.rules, snap.kernel_rules);
    EXPECT_GE(snap.rules, acked);
    EXPECT_LE(snap.rules, acked + 32u);
    size_t broken = 0;
    for (size_t p = 0;
         (p = client->output().find(" error=", p)) != std::string::npos; ++p) {
      ++broken;
    }
    std::printf(
        "killed %d us into a batch: %zu batch(es) failed as a "
        "whole, %u sockets answered, %u rules kept\n",
        delay_us, broken, acked, snap.rules);
    // Only the batch in flight when devmemd died: the next ones wait for
    // the resume (auto_reconnect) instead of reaching the new daemon with a
    // session it does not know yet.
    EXPECT_LE(broken, 1u) << client->output();
    client->Send("release");
    EXPECT_TRUE(client->WaitLine("RELEASED OK").has_value())
        << client->output();
    EXPECT_TRUE(WaitLeases(0, 0, &snap))
        << "rules=" << snap.rules << " nic rules=" << snap.kernel_rules;
    client->Kill();
    daemon_.Kill();
    std::error_code ec;
    std::filesystem::remove_all(state_, ec);
    std::filesystem::remove_all(run_, ec);
    mkdir(state_.c_str(), 0700);
  }
}

TEST_F(FaultTest, LeasesOfAClientThatDiedWithTheDaemonAreRemovedAtStart) {
  StartDaemon();
  Proc* client = StartClient("listening");
  ASSERT_TRUE(client->WaitLine("STEP listening").has_value());
  daemon_.Kill();
  client->Kill();  // its anchor goes: the NIC unbinds; the rule stays
  StartDaemon();
  Snapshot s;
  EXPECT_TRUE(WaitLeases(0, 0, &s))
      << "bindings=" << s.bindings << " rules=" << s.rules
      << " nic rules=" << s.kernel_rules;
  EXPECT_EQ(s.detached, 0u);
  EXPECT_THAT(daemon_.output(), HasSubstr("recovery:"));
}

TEST_F(FaultTest, UnclaimedLeasesAreRemovedAfterTheGracePeriod) {
  StartDaemon();
  Proc* client = StartClient("listening");
  ASSERT_TRUE(client->WaitLine("STEP listening").has_value());
  // A workload that is alive but cannot come back in time (stopped): it
  // still holds its anchor.
  ASSERT_EQ(kill(client->pid(), SIGSTOP), 0);
  daemon_.Kill();
  StartDaemon(/*grace_ms=*/800);
  Snapshot s = Look();
  ASSERT_TRUE(s.ok);
  EXPECT_EQ(s.detached, 1u);
  EXPECT_EQ(s.bindings, 1u);
  EXPECT_EQ(s.rules, 1u);
  EXPECT_TRUE(WaitFor([&] {
    s = Look();
    return s.detached == 0 && s.bindings == 0 && s.rules == 0 &&
           s.kernel_rules == 0;
  })) << "detached="
      << s.detached << " bindings=" << s.bindings;
  // The kernel keeps that queue bound while the workload holds the anchor;
  // devmemd does not hand the queue out meanwhile.
  EXPECT_EQ(s.kernel_bound_queues, 1u);
  // Woken up, the workload finds its session gone and lets go: the NIC
  // unbinds.
  ASSERT_EQ(kill(client->pid(), SIGCONT), 0);
  auto re = client->WaitLine("RECONNECT");
  ASSERT_TRUE(re.has_value()) << client->output();
  EXPECT_THAT(*re, HasSubstr("resumed=0"));
  EXPECT_TRUE(WaitLeases(0, 0, &s)) << "bound=" << s.kernel_bound_queues;
}

TEST_F(FaultTest, FdStoreKeepsABindingAcrossRestartWithoutItsWorkload) {
  MiniSystemd systemd(dir_ + "/notify");
  ASSERT_TRUE(systemd.ok());
  StartDaemon(30000, {systemd.env()});
  Proc* client = StartClient("listening", /*reconnect=*/false);
  ASSERT_TRUE(client->WaitLine("STEP listening").has_value());
  ASSERT_TRUE(WaitFor([&] { return systemd.stored() == 1; }))
      << "devmemd did not put the binding's anchor in the fd store";
  daemon_.Kill();
  client->Kill();  // only the fd store holds the binding now
  std::vector<std::string> env = systemd.listen_env();
  env.push_back(systemd.env());
  StartDaemon(/*grace_ms=*/1500, env, systemd.fds());
  // The fds were handed over; our copies are not needed any more but the
  // store keeps them until devmemd says FDSTOREREMOVE.
  EXPECT_THAT(daemon_.output(), HasSubstr("1 binding anchor(s) handed back"));
  EXPECT_THAT(daemon_.output(), HasSubstr("1 re-adopted from the fd store"));
  Snapshot s = Look();
  EXPECT_EQ(s.bindings, 1u);
  EXPECT_EQ(s.kernel_bound_queues, 1u) << "the binding died with its client";
  // Nobody resumes: after the grace period everything goes, and devmemd
  // asks systemd to drop its stored copy, so the NIC unbinds.
  EXPECT_TRUE(WaitFor([&] { return systemd.stored() == 0; }));
  EXPECT_TRUE(WaitLeases(0, 0, &s))
      << "bindings=" << s.bindings << " bound=" << s.kernel_bound_queues;
}

TEST_F(FaultTest, TornJournalTailIsCutAndLeasesResume) {
  StartDaemon();
  Proc* client = StartClient("listening");
  ASSERT_TRUE(client->WaitLine("STEP listening").has_value());
  daemon_.Kill();
  {
    std::ofstream j(state_ + "/journal", std::ios::app | std::ios::binary);
    // A record cut short by a crash (written with its length: operator<<
    // would stop at the first NUL).
    const char torn[] = "DMJ1\x40\x00\x00\x00\x01\x02";
    j.write(torn, sizeof(torn) - 1);
  }
  StartDaemon();
  EXPECT_THAT(daemon_.output(), HasSubstr("torn or corrupt tail"));
  auto re = client->WaitLine("RECONNECT");
  ASSERT_TRUE(re.has_value()) << client->output();
  EXPECT_THAT(*re, HasSubstr("resumed=1"));
  Snapshot s;
  EXPECT_TRUE(WaitLeases(1, 1, &s));
}

TEST_F(FaultTest, CorruptJournalIsNotTrustedKernelStateWins) {
  StartDaemon();
  Proc* client = StartClient("listening");
  ASSERT_TRUE(client->WaitLine("STEP listening").has_value());
  daemon_.Kill();
  {
    // Damage the first record: every record from there on is dropped.
    std::fstream j(state_ + "/journal",
                   std::ios::in | std::ios::out | std::ios::binary);
    j.seekp(14);
    j.put('\xff');
  }
  StartDaemon();
  EXPECT_THAT(daemon_.output(), HasSubstr("checksum"));
  // The rule steering to the devmem pool has no record: it is an orphan.
  EXPECT_THAT(daemon_.output(), HasSubstr("removed orphan rule"));
  // The session is unknown now: the client gets a fresh one, drops its
  // anchor, and the NIC is left clean.
  auto re = client->WaitLine("RECONNECT");
  ASSERT_TRUE(re.has_value()) << client->output();
  EXPECT_THAT(*re, HasSubstr("resumed=0"));
  Snapshot s;
  EXPECT_TRUE(WaitLeases(0, 0, &s))
      << "rules=" << s.kernel_rules << " bound=" << s.kernel_bound_queues;
}

TEST_F(FaultTest, FullJournalRefusesNewWorkExistingLeasesGoOn) {
  // A small tmpfs for the state directory, in a mount namespace of our own
  // (the daemon child inherits it).
  if (unshare(CLONE_NEWNS) != 0 ||
      mount("none", "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0 ||
      mount("tmpfs", state_.c_str(), "tmpfs", 0, "size=128k,mode=0700") != 0) {
    GTEST_SKIP() << "cannot mount a tmpfs here: " << strerror(errno);
  }
  StartDaemon();
  Proc* a = StartClient("accepted");
  auto l = a->WaitLine("STEP listening");
  ASSERT_TRUE(l.has_value()) << a->output();
  UniqueFd conn = Dial(PortOf(*l));
  ASSERT_TRUE(a->WaitLine("STEP accepted").has_value());
  // Fill the file system.
  {
    std::ofstream fill(state_ + "/filler", std::ios::binary);
    std::string block(4096, 'x');
    for (int i = 0; i < 64 && fill.write(block.data(), block.size()); ++i) {
    }
  }
  // New work until the journal needs a page it cannot get (the partly used
  // last page of the journal still takes a few records).
  SessionOptions so;
  so.runtime_dir = run_;
  auto b = Session::Open(so);
  ASSERT_TRUE(b.ok()) << b.status();
  auto mem = memfd_create("fault_test", MFD_CLOEXEC);
  ASSERT_GE(mem, 0);
  UniqueFd mem_fd(mem);
  ASSERT_EQ(ftruncate(mem, 1 << 20), 0);
  BindOptions bo;
  bo.nic = "lo";
  absl::Status refused;
  uint32_t made = 0;
  std::vector<UniqueFd> held;
  auto binding = (*b)->BindRx(mem, bo);
  if (!binding.ok()) {
    refused = binding.status();
  } else {
    for (int i = 0; i < 60 && refused.ok(); ++i) {
      ListenOptions lo;
      lo.ip = "127.0.0.1";
      lo.binding = binding->handle();
      auto l = (*b)->Listen(lo);
      if (l.ok()) {
        ++made;
        // Kept open: a closed listener's port could come back for the next
        // Listen, whose identical rule would then be the same rule.
        held.push_back(std::move(l->fd));
      } else {
        refused = l.status();
      }
    }
  }
  ASSERT_FALSE(refused.ok()) << "the full disk never refused anything";
  EXPECT_EQ(refused.code(), absl::StatusCode::kResourceExhausted) << refused;
  EXPECT_THAT(refused.message(), HasSubstr("No space left on device"));
  EXPECT_THAT(refused.message(), HasSubstr("journal"));
  Snapshot s = Look();
  EXPECT_THAT(s.journal_error, HasSubstr("No space left"));
  // Health: degraded (leases go on), and the reason says new work is
  // refused, so /readyz is 503 (HealthReport::AcceptsWork).
  EXPECT_EQ(s.health, "degraded");
  EXPECT_THAT(s.health_reasons,
              ::testing::Contains(HasSubstr("journal: new work is refused: ")));
  // The refused change was not made: only what succeeded is on the NIC.
  EXPECT_EQ(s.rules, 1u + made);
  EXPECT_EQ(s.kernel_rules, 1u + made);
  // The existing lease goes on: its stream flows and it can be released.
  a->Send("go");
  ASSERT_TRUE(SendPattern(conn.get_unowned(), 0, kBytes));
  auto done = a->WaitLine("STEP done");
  ASSERT_TRUE(done.has_value()) << a->output();
  EXPECT_THAT(*done, HasSubstr("ok=1"));
  a->Send("release");
  EXPECT_TRUE(a->WaitLine("RELEASED OK").has_value()) << a->output();
  // Space again: new work is accepted.
  unlink((state_ + "/filler").c_str());
  b->reset();
  Proc* c = StartClient("bound");
  EXPECT_TRUE(c->WaitLine("STEP bound").has_value()) << c->output();
  s = Look();
  EXPECT_EQ(s.journal_error, "");
  EXPECT_EQ(s.health, "ready");
  daemon_.Kill();
  umount2(state_.c_str(), MNT_DETACH);
}

TEST_F(FaultTest, SigtermKeepsLeasesForTheNextDaemon) {
  // An upgrade: systemctl restart sends SIGTERM, then starts the new binary.
  StartDaemon();
  Proc* client = StartClient("accepted");
  auto l = client->WaitLine("STEP listening");
  ASSERT_TRUE(l.has_value()) << client->output();
  UniqueFd conn = Dial(PortOf(*l));
  ASSERT_TRUE(client->WaitLine("STEP accepted").has_value());
  ASSERT_TRUE(SendPattern(conn.get_unowned(), 0, kBytes / 2));
  EXPECT_EQ(daemon_.Terminate(), 0) << daemon_.output();
  EXPECT_THAT(daemon_.output(), HasSubstr("leaving 1 binding(s)"));
  ASSERT_TRUE(SendPattern(conn.get_unowned(), kBytes / 2, kBytes * 3 / 4));
  StartDaemon();
  auto re = client->WaitLine("RECONNECT");
  ASSERT_TRUE(re.has_value()) << client->output();
  EXPECT_THAT(*re, HasSubstr("resumed=1 status=OK"));
  client->Send("go");
  ASSERT_TRUE(SendPattern(conn.get_unowned(), kBytes * 3 / 4, kBytes));
  auto done = client->WaitLine("STEP done");
  ASSERT_TRUE(done.has_value()) << client->output();
  EXPECT_THAT(*done, HasSubstr("ok=1"));
  Snapshot s;
  EXPECT_TRUE(WaitLeases(1, 1, &s));
}

TEST_F(FaultTest, ReleaseOnExitReleasesAndRestores) {
  daemon_ = Proc::Spawn({kDevmemd, "--config=" + config_,
                         "--runtime_dir=" + run_, "--state_dir=" + state_,
                         "--nic_backend=simulated", "--release_on_exit"});
  ASSERT_TRUE(daemon_.WaitLine("devmemd 0").has_value()) << daemon_.output();
  Proc* client = StartClient("listening", /*reconnect=*/false);
  ASSERT_TRUE(client->WaitLine("STEP listening").has_value());
  EXPECT_EQ(daemon_.Terminate(), 0) << daemon_.output();
  // Sessions close first (their leases go), then the NIC is restored.
  EXPECT_THAT(daemon_.output(), HasSubstr("nic lo: original state restored"));
  EXPECT_THAT(daemon_.output(), Not(HasSubstr("leaving")));
  // The next daemon finds nothing to re-adopt and a clean NIC.
  client->Kill();
  StartDaemon();
  Snapshot s;
  EXPECT_TRUE(WaitLeases(0, 0, &s));
  EXPECT_EQ(s.detached, 0u);
}

}  // namespace
}  // namespace devmem
