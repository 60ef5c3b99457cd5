// devmemd under load, real processes: the devmemd binary as a child, and
// load_driver (a second child) opening 1000 concurrent sessions of 8 sockets
// each (6 Listen on 127.0.0.1 port 0, 2 Connect to a local listener; NIC lo,
// no NIC profile). Checks that every fd received is a real TCP socket of the
// right kind (the driver checks each one and reports the count), that the
// daemon's memory stays under the product goals (VmRSS idle < 32 MiB, loaded
// < 64 MiB), and that after the client closes everything the daemon's fd
// count returns to its idle value and GetStatus reports 0 sessions. Prints
// the figures. Asserts nothing about time. Run twice: with the one gRPC
// connection gRPC shares between the channels of a process, and with a gRPC
// connection per session, as 1000 separate workload processes would have.
//
// Both children are started with posix_spawn before this process makes any
// gRPC object (and posix_spawn runs no fork handlers anyway).
#include <dirent.h>
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <cstdio>
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
#include "daemon/testing/wait.h"
#include "gtest/gtest.h"
#include "proto/devmem/v1/devmem.grpc.pb.h"
#include "tests/load/daemon_status.h"
#include "tests/testing/process.h"

namespace devmem {
namespace {

using ::devmem::testing::LineFields;
using ::devmem::testing::Proc;
using ::devmem::testing::ProcStatusField;
using ::devmem::testing::RaiseFdLimit;

constexpr int kSessions = 1000;
constexpr int kSocketsPerSession = 8;
constexpr int kConnectsPerSession = 2;
constexpr int64_t kIdleRssGoalKiB = 32 * 1024;
constexpr int64_t kLoadedRssGoalKiB = 64 * 1024;

// Under ASan/TSan (bazel test --config=asan|tsan) devmemd is instrumented too:
// its memory then says nothing about the product goals, which are only
// printed.
// --config=tsan compiles with -U__SANITIZE_THREAD__ -D_GLIBCXX_TSAN=1 (see
// .bazelrc), so _GLIBCXX_TSAN is what marks its builds.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__) || \
    defined(_GLIBCXX_TSAN)
constexpr bool kSanitized = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
constexpr bool kSanitized = true;
#else
constexpr bool kSanitized = false;
#endif
#else
constexpr bool kSanitized = false;
#endif

// ---------------------------------------------------------------------------
// /proc and gRPC.

// Entries in /proc/<pid>/fd, and how many of them are sockets.
struct FdFigures {
  int total = -1;
  int sockets = 0;
};
FdFigures Fds(pid_t pid) {
  FdFigures f;
  const std::string dir = absl::StrCat("/proc/", pid, "/fd");
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return f;
  f.total = 0;
  while (dirent* e = ::readdir(d)) {
    if (e->d_name[0] == '.') continue;
    ++f.total;
    char target[64] = {};
    if (::readlink(absl::StrCat(dir, "/", e->d_name).c_str(), target,
                   sizeof(target) - 1) > 0 &&
        absl::StartsWith(target, "socket:")) {
      ++f.sockets;
    }
  }
  ::closedir(d);
  return f;
}

struct Snapshot {
  int64_t rss_kib = -1;
  int64_t hwm_kib = -1;
  int64_t threads = -1;
  FdFigures fds;
};
Snapshot Take(pid_t pid) {
  Snapshot s;
  s.rss_kib = ProcStatusField(pid, "VmRSS");
  s.hwm_kib = ProcStatusField(pid, "VmHWM");
  s.threads = ProcStatusField(pid, "Threads");
  s.fds = Fds(pid);
  return s;
}

std::string MiB(int64_t kib) {
  return absl::StrCat(absl::SixDigits(static_cast<double>(kib) / 1024.0),
                      " MiB");
}

// ---------------------------------------------------------------------------

class LoadTest : public ::testing::Test {
 protected:
  void SetUp() override {
    static int n = 0;
    ++n;
    dir_ = absl::StrCat("/tmp/dml-", ::getpid(), "-", n);
    const char* tmp = std::getenv("TEST_TMPDIR");
    state_dir_ = absl::StrCat(tmp != nullptr ? tmp : "/tmp", "/dml-state-",
                              ::getpid(), "-", n);
  }
  void TearDown() override {
    if (daemon_.running()) {
      const int code = daemon_.Terminate();
      EXPECT_EQ(code, 0) << "devmemd did not exit cleanly on SIGTERM; its "
                            "log:\n"
                         << daemon_.output();
    }
    ::rmdir(dir_.c_str());
  }

  // Starts devmemd, has load_driver open kSessions x kSocketsPerSession,
  // measures, closes, checks. `connection_per_session`: every session gets
  // its own gRPC connection (as sessions of separate workload processes
  // have) instead of the one connection gRPC shares between the channels of
  // one process.
  void RunLoad(bool connection_per_session);

  std::string dir_;
  std::string state_dir_;
  Proc daemon_;
};

// Longer than 80 lines on purpose: one load run (fd limits, driver, daemon
// figures, checks) whose steps share the driver's output and read best in
// the order they happen.
void LoadTest::RunLoad(bool connection_per_session) {
  // The driver holds a session socket, 8 sockets and 2 accepted ends per
  // session; devmemd a session socket per session (plus gRPC connections).
  const rlim_t need =
      kSessions * (1 + kSocketsPerSession + kConnectsPerSession) + 512;
  const absl::Status raised = RaiseFdLimit(need);
  if (!raised.ok()) GTEST_SKIP() << raised.message();
  // A driver that died must fail the test, not kill it on write().
  ::signal(SIGPIPE, SIG_IGN);

  daemon_ = Proc::Spawn({"daemon/devmemd", absl::StrCat("--runtime_dir=", dir_),
                         absl::StrCat("--state_dir=", state_dir_),
                         absl::StrCat("--allow_uids=", ::getuid())});
  ASSERT_TRUE(daemon_.running());
  // "devmemd <version>: ready: ..."
  const auto ready = daemon_.WaitLine("devmemd ");
  ASSERT_TRUE(ready.has_value() && absl::StrContains(*ready, ": ready: "))
      << "devmemd did not get ready; its log:\n"
      << daemon_.output();
  // Its log is collected from now on, so that it never blocks on it.
  daemon_.DrainInBackground();
  const pid_t pid = daemon_.pid();
  const Snapshot idle = Take(pid);
  ASSERT_GT(idle.rss_kib, 0);
  ASSERT_GT(idle.fds.total, 0);

  Proc driver = Proc::Spawn(
      {"tests/load/load_driver", absl::StrCat("--runtime_dir=", dir_),
       absl::StrCat("--sessions=", kSessions),
       absl::StrCat("--sockets=", kSocketsPerSession),
       absl::StrCat("--connects=", kConnectsPerSession), "--threads=8",
       absl::StrCat("--connection_per_session=",
                    connection_per_session ? "true" : "false")},
      /*env=*/{}, /*fds=*/{}, /*listen_pid=*/false, /*merge_stderr=*/false);
  ASSERT_TRUE(driver.running());
  const absl::Time deadline = absl::Now() + absl::Seconds(240);

  std::string opened_line;
  std::vector<std::string> failures;
  while (auto line = driver.WaitLine("", deadline - absl::Now())) {
    if (absl::StartsWith(*line, "SKIP ")) {
      driver.Kill();
      GTEST_SKIP() << "load_driver: " << line->substr(5);
    }
    if (absl::StartsWith(*line, "FAIL ")) failures.push_back(*line);
    if (absl::StartsWith(*line, "OPENED ")) {
      opened_line = *line;
      break;
    }
  }
  ASSERT_FALSE(opened_line.empty())
      << "load_driver gave no OPENED line; devmemd log:\n"
      << daemon_.output();
  std::map<std::string, int64_t> opened = LineFields(opened_line);

  // All sessions and sockets are open now: the loaded figures.
  const Snapshot loaded = Take(pid);
  auto loaded_status = DaemonStatus(dir_);
  ASSERT_TRUE(loaded_status.ok()) << loaded_status.status();

  ASSERT_TRUE(driver.Send("close"));
  auto closed = driver.WaitLine("", deadline - absl::Now());
  ASSERT_TRUE(closed.has_value() && absl::StartsWith(*closed, "CLOSED "))
      << (closed ? *closed : "EOF");
  ASSERT_TRUE(driver.Send("exit"));
  driver.CloseStdin();
  const int driver_exit = driver.Wait(absl::Seconds(60));

  // Closing is asynchronous on the daemon side: wait for its fds to return.
  const bool fds_back = WaitUntil(
      [&] { return Fds(pid).total == idle.fds.total; }, absl::Seconds(30));
  const Snapshot after = Take(pid);
  int64_t sessions_after = -1;
  const bool sessions_back = WaitUntil(
      [&] {
        auto st = DaemonStatus(dir_);
        sessions_after = st.ok() ? st->sessions() : -1;
        return sessions_after == 0;
      },
      absl::Seconds(30));

  std::printf(
      "\n[load] %d sessions x %d sockets (%d Listen + %d Connect each) on "
      "lo, %s\n"
      "[load] client: opened %lld sessions, %lld sockets (%lld listening, "
      "%lld connected), %lld bad, in %.3f s; closed in %.3f s\n"
      "[load] devmemd VmRSS: idle %s, loaded %s, after close %s "
      "(VmHWM %s); per session %.1f KiB; loaded/idle %.2fx\n"
      "[load] devmemd fds: idle %d (%d sockets), loaded %d (%d sockets), "
      "after close %d\n"
      "[load] devmemd threads: idle %lld, loaded %lld, after %lld\n"
      "[load] GetStatus: loaded sessions=%u pending_tickets=%u "
      "fds_handed_off=%llu; after close sessions=%lld\n",
      kSessions, kSocketsPerSession, kSocketsPerSession - kConnectsPerSession,
      kConnectsPerSession,
      connection_per_session ? "a gRPC connection per session"
                             : "one shared gRPC connection",
      static_cast<long long>(opened["sessions"]),
      static_cast<long long>(opened["sockets"]),
      static_cast<long long>(opened["listen"]),
      static_cast<long long>(opened["connect"]),
      static_cast<long long>(opened["bad"]),
      static_cast<double>(opened["wall_us"]) / 1e6,
      static_cast<double>(LineFields(*closed)["wall_us"]) / 1e6,
      MiB(idle.rss_kib).c_str(), MiB(loaded.rss_kib).c_str(),
      MiB(after.rss_kib).c_str(), MiB(after.hwm_kib).c_str(),
      static_cast<double>(loaded.rss_kib - idle.rss_kib) / kSessions,
      static_cast<double>(loaded.rss_kib) / static_cast<double>(idle.rss_kib),
      idle.fds.total, idle.fds.sockets, loaded.fds.total, loaded.fds.sockets,
      after.fds.total, static_cast<long long>(idle.threads),
      static_cast<long long>(loaded.threads),
      static_cast<long long>(after.threads), loaded_status->sessions(),
      loaded_status->pending_tickets(),
      static_cast<unsigned long long>(loaded_status->fds_handed_off()),
      static_cast<long long>(sessions_after));
  std::fflush(stdout);

  // Every session opened and every socket arrived and checked out.
  for (const std::string& f : failures) ADD_FAILURE() << f;
  EXPECT_EQ(opened["sessions"], kSessions);
  EXPECT_EQ(opened["sockets"], kSessions * kSocketsPerSession);
  EXPECT_EQ(opened["listen"],
            kSessions * (kSocketsPerSession - kConnectsPerSession));
  EXPECT_EQ(opened["connect"], kSessions * kConnectsPerSession);
  EXPECT_EQ(opened["bad"], 0);
  EXPECT_EQ(driver_exit, 0) << "load_driver did not exit cleanly";
  // The daemon saw them all at once, and holds no fd behind a ticket.
  EXPECT_EQ(loaded_status->sessions(), static_cast<uint32_t>(kSessions));
  EXPECT_EQ(loaded_status->pending_tickets(), 0u);
  // A socket per session (and per gRPC connection when each has its own).
  EXPECT_GE(loaded.fds.sockets,
            idle.fds.sockets + kSessions * (connection_per_session ? 2 : 1));
  // Everything is released once the client is gone.
  EXPECT_TRUE(fds_back) << "devmemd holds " << Fds(pid).total
                        << " fds, idle it held " << idle.fds.total;
  EXPECT_TRUE(sessions_back)
      << "GetStatus still reports " << sessions_after << " sessions";
  // Product goals for the daemon's memory.
  if (kSanitized) {
    std::printf("[load] sanitizer build: RSS goals not checked\n");
    return;
  }
  EXPECT_LT(idle.rss_kib, kIdleRssGoalKiB) << MiB(idle.rss_kib);
  EXPECT_LT(loaded.rss_kib, kLoadedRssGoalKiB) << MiB(loaded.rss_kib);
}

// One client process: gRPC shares one connection between its 1000 channels.
TEST_F(LoadTest, ThousandSessionsOfEightSocketsEach) {
  RunLoad(/*connection_per_session=*/false);
}

// As if each session were a separate workload process: 1000 gRPC connections
// besides the 1000 session sockets (2 fds and an HTTP/2 transport each).
TEST_F(LoadTest, ThousandSessionsEachWithItsOwnGrpcConnection) {
  RunLoad(/*connection_per_session=*/true);
}

}  // namespace
}  // namespace devmem
