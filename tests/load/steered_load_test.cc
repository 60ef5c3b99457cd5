// The steered, journaled paths of load_driver against the real devmemd
// binary, small: devmemd on a simulated devmem NIC over lo with its journal
// in $TEST_TMPDIR, and load_driver --steer (a memfd bound per session, every
// socket steered to it), once with one OpenSockets per session (--batch) and
// once with one Listen/Connect call per socket. Checks that every fd arrived
// and checked out, that the daemon holds one rule per socket while the
// sockets are open and none once the sessions closed, and that the journal
// synced. Asserts nothing about time (bench/load_bench measures that).
//
// Both children are started with posix_spawn before this process makes any
// gRPC object.
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "bench/devmemd_child.h"
#include "daemon/testing/wait.h"
#include "gtest/gtest.h"
#include "proto/devmem/v1/devmem.grpc.pb.h"
#include "tests/load/daemon_status.h"
#include "tests/testing/process.h"

namespace devmem {
namespace {

using ::devmem::testing::LineFields;
using ::devmem::testing::Proc;

constexpr int kSessions = 4;
constexpr int kSockets = 16;
constexpr int kConnects = 4;

class SteeredLoadTest : public ::testing::Test {
 protected:
  void SetUp() override {
    static int n = 0;
    ++n;
    dir_ = absl::StrCat("/tmp/dmsl-", ::getpid(), "-", n);
    state_ = absl::StrCat(std::getenv("TEST_TMPDIR"), "/state-", n);
    ::signal(SIGPIPE, SIG_IGN);
    ASSERT_EQ(::mkdir(state_.c_str(), 0700), 0) << state_;
    SteeredNicSpec nic;
    nic.pool_queues = kSessions;
    nic.rules = kSessions * kSockets;
    nic.sessions = kSessions;
    nic.uid = ::getuid();
    auto config = SteeredConfigText(nic);
    ASSERT_TRUE(config.ok()) << config.status();
    auto args = SteeredDevmemdArgs("daemon/devmemd", dir_, state_, *config);
    ASSERT_TRUE(args.ok()) << args.status();
    auto daemon = StartDevmemd(*std::move(args));
    ASSERT_TRUE(daemon.ok()) << daemon.status();
    daemon_ = *std::move(daemon);
  }
  void TearDown() override {
    if (daemon_.running()) {
      EXPECT_EQ(daemon_.Terminate(), 0) << daemon_.output();
    }
    ::rmdir(dir_.c_str());
  }

  // Runs load_driver --steer (and --batch if `batch`) and checks it.
  void RunSteered(bool batch);

  std::string dir_;
  std::string state_;
  Proc daemon_;
};

void SteeredLoadTest::RunSteered(bool batch) {
  std::vector<std::string> argv = {"tests/load/load_driver",
                                   absl::StrCat("--runtime_dir=", dir_),
                                   absl::StrCat("--sessions=", kSessions),
                                   absl::StrCat("--sockets=", kSockets),
                                   absl::StrCat("--connects=", kConnects),
                                   "--threads=2",
                                   "--steer"};
  if (batch) argv.push_back("--batch");
  Proc driver = Proc::Spawn(argv, /*env=*/{}, /*fds=*/{},
                            /*listen_pid=*/false, /*merge_stderr=*/false);
  ASSERT_TRUE(driver.running());
  std::string opened;
  while (auto line = driver.WaitLine("", absl::Seconds(60))) {
    if (absl::StartsWith(*line, "SKIP ")) GTEST_SKIP() << line->substr(5);
    if (absl::StartsWith(*line, "FAIL ")) ADD_FAILURE() << *line;
    if (absl::StartsWith(*line, "OPENED ")) {
      opened = *line;
      break;
    }
  }
  ASSERT_FALSE(opened.empty()) << "no OPENED line; devmemd log:\n"
                               << daemon_.output();
  std::map<std::string, int64_t> f = LineFields(opened);
  EXPECT_EQ(f["sessions"], kSessions);
  EXPECT_EQ(f["sockets"], kSessions * kSockets);
  EXPECT_EQ(f["connect"], kSessions * kConnects);
  EXPECT_EQ(f["bad"], 0);
  // Every rule (and binding) was made durable before its socket came.
  EXPECT_GE(f["journal_syncs"], 1);
  auto loaded = DaemonStatus(dir_);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(loaded->rules(), static_cast<uint32_t>(kSessions * kSockets));
  EXPECT_EQ(loaded->bindings(), static_cast<uint32_t>(kSessions));
  EXPECT_EQ(loaded->pending_tickets(), 0u);

  ASSERT_TRUE(driver.Send("exit"));
  driver.CloseStdin();
  EXPECT_EQ(driver.Wait(absl::Seconds(30)), 0);
  // The sessions' rules and bindings go with them.
  EXPECT_TRUE(WaitUntil(
      [&] {
        auto st = DaemonStatus(dir_);
        return st.ok() && st->rules() == 0 && st->bindings() == 0;
      },
      absl::Seconds(20)));
}

TEST_F(SteeredLoadTest, BatchedSteeredSockets) { RunSteered(/*batch=*/true); }

TEST_F(SteeredLoadTest, OneCallPerSteeredSocket) {
  RunSteered(/*batch=*/false);
}

}  // namespace
}  // namespace devmem
