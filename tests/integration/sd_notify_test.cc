// devmemd under a stand-in for systemd: a datagram socket as $NOTIFY_SOCKET
// receives READY=1 (only once the NIC profile is applied and the sockets
// serve), a human-readable STATUS=, WATCHDOG=1 pings at half of
// $WATCHDOG_USEC, and STOPPING=1 on SIGTERM. Real devmemd process, loopback
// only (the profile is the simulated devmem NIC over lo).
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "client/libdevmem.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/process.h"

namespace devmem {
namespace {

using ::devmem::testing::MiniSystemd;
using ::devmem::testing::Proc;
using ::testing::HasSubstr;

class SdNotifyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = absl::StrCat("/tmp/dmsd", getpid(), "_", n_++);
    std::filesystem::create_directories(dir_);
    std::ofstream(dir_ + "/c.textproto")
        << "nic_profiles { nic: \"lo\" }\nallow_uids: 0\n";
  }
  void TearDown() override {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  Proc Start(const std::vector<std::string>& env) {
    return Proc::Spawn(
        {"daemon/devmemd", "--config=" + dir_ + "/c.textproto",
         "--runtime_dir=" + dir_ + "/r", "--state_dir=" + dir_ + "/s",
         "--nic_backend=simulated"},
        env);
  }

  // Waits until some message contains `needle`; returns how many do.
  static int WaitFor(MiniSystemd& sd, const std::string& needle,
                     int at_least = 1,
                     absl::Duration limit = absl::Seconds(20)) {
    const absl::Time deadline = absl::Now() + limit;
    for (;;) {
      int n = 0;
      for (const std::string& m : sd.messages()) {
        if (absl::StrContains(m, needle)) ++n;
      }
      if (n >= at_least || absl::Now() > deadline) return n;
      struct pollfd none = {-1, 0, 0};
      poll(&none, 1, 10);
    }
  }

  static int n_;
  std::string dir_;
};
int SdNotifyTest::n_ = 0;

TEST_F(SdNotifyTest, ReadyStatusWatchdogAndStopping) {
  MiniSystemd sd(dir_ + "/notify");
  ASSERT_TRUE(sd.ok());
  Proc d = Start({sd.env(), "WATCHDOG_USEC=200000"});
  ASSERT_EQ(WaitFor(sd, "READY=1"), 1) << d.output();
  // READY=1 came after the profile was applied and the sockets existed.
  ASSERT_TRUE(d.WaitLine("devmemd 0", absl::Seconds(5)).has_value());
  EXPECT_THAT(d.output(), HasSubstr("nic lo: profile applied"));
  EXPECT_TRUE(std::filesystem::exists(dir_ + "/r/session.sock"));
  const std::string all = absl::StrJoin(sd.messages(), "|");
  EXPECT_THAT(all, HasSubstr("STATUS=serving on " + dir_ +
                             "/r/session.sock; "
                             "1 of 1 NIC profile(s) applied"));
  // Pings every 100 ms: a few arrive within the wait.
  EXPECT_GE(WaitFor(sd, "WATCHDOG=1", 3), 3);
  EXPECT_EQ(d.Terminate(), 0) << d.output();
  EXPECT_EQ(WaitFor(sd, "STOPPING=1"), 1);
  EXPECT_THAT(absl::StrJoin(sd.messages(), "|"),
              HasSubstr("STATUS=releasing leases and restoring the NICs"));
}

TEST_F(SdNotifyTest, WatchdogForAnotherPidIsNotOurs) {
  MiniSystemd sd(dir_ + "/notify");
  ASSERT_TRUE(sd.ok());
  // systemd names the pid the watchdog is for; another process's is ignored.
  Proc d = Start({sd.env(), "WATCHDOG_USEC=100000", "WATCHDOG_PID=1"});
  ASSERT_EQ(WaitFor(sd, "READY=1"), 1) << d.output();
  EXPECT_EQ(WaitFor(sd, "WATCHDOG=1", 1, absl::Milliseconds(500)), 0);
  EXPECT_EQ(d.Terminate(), 0);
}

TEST_F(SdNotifyTest, WithoutSystemdNothingIsSentAndItStillServes) {
  Proc d = Start({});
  ASSERT_TRUE(d.WaitLine("devmemd 0", absl::Seconds(20)).has_value())
      << d.output();
  EXPECT_TRUE(std::filesystem::exists(dir_ + "/r/grpc.sock"));
  EXPECT_EQ(d.Terminate(), 0);
}

// A listening Unix socket at `path`, as systemd makes it for devmemd.socket.
UniqueFd ListeningUnix(const std::string& path, int type) {
  UniqueFd fd(socket(AF_UNIX, type | SOCK_CLOEXEC, 0));
  struct sockaddr_un a = {};
  a.sun_family = AF_UNIX;
  std::strncpy(a.sun_path, path.c_str(), sizeof(a.sun_path) - 1);
  if (bind(fd.get_unowned(), reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 ||
      listen(fd.get_unowned(), 16) != 0) {
    return UniqueFd();
  }
  return fd;
}

TEST_F(SdNotifyTest, SocketActivationServesOnTheSocketsSystemdMade) {
  std::filesystem::create_directories(dir_ + "/r");
  UniqueFd grpc = ListeningUnix(dir_ + "/r/grpc.sock", SOCK_STREAM);
  UniqueFd session = ListeningUnix(dir_ + "/r/session.sock", SOCK_SEQPACKET);
  ASSERT_TRUE(grpc.valid() && session.valid());
  Proc d = Proc::Spawn(
      {"daemon/devmemd", "--config=" + dir_ + "/c.textproto",
       "--runtime_dir=" + dir_ + "/r", "--state_dir=" + dir_ + "/s",
       "--nic_backend=simulated"},
      // As deploy/systemd/devmemd.socket names them: both "devmemd".
      {"LISTEN_FDS=2", "LISTEN_FDNAMES=devmemd:devmemd"},
      {grpc.get_unowned(), session.get_unowned()}, /*listen_pid=*/true);
  ASSERT_TRUE(d.WaitLine("devmemd 0", absl::Seconds(20)).has_value())
      << d.output();
  EXPECT_THAT(d.output(),
              HasSubstr("2 passed: 0 binding anchor(s) handed back, the gRPC "
                        "socket, the session socket"));
  // Our copies are closed: only devmemd accepts on them now.
  grpc.Reset();
  session.Reset();
  SessionOptions so;
  so.runtime_dir = dir_ + "/r";
  auto s = Session::Open(so);
  ASSERT_TRUE(s.ok()) << s.status();
  auto st = (*s)->GetStatus();
  ASSERT_TRUE(st.ok()) << st.status();
  EXPECT_EQ(st->sessions(), 1u);
  s->reset();
  EXPECT_EQ(d.Terminate(), 0) << d.output();
  // systemd owns the socket files: devmemd leaves them.
  EXPECT_TRUE(std::filesystem::exists(dir_ + "/r/session.sock"));
}

TEST_F(SdNotifyTest, ActivatedSocketOfTheWrongKindIsRefused) {
  std::filesystem::create_directories(dir_ + "/r");
  // A stream socket where the session socket must be SEQPACKET.
  UniqueFd wrong = ListeningUnix(dir_ + "/r/session.sock", SOCK_STREAM);
  ASSERT_TRUE(wrong.valid());
  Proc d =
      Proc::Spawn({"daemon/devmemd", "--config=" + dir_ + "/c.textproto",
                   "--runtime_dir=" + dir_ + "/r", "--state_dir=" + dir_ + "/s",
                   "--nic_backend=simulated"},
                  {"LISTEN_FDS=1", "LISTEN_FDNAMES=devmemd-session"},
                  {wrong.get_unowned()}, /*listen_pid=*/true);
  EXPECT_EQ(d.Wait(absl::Seconds(20)), 1);
  EXPECT_THAT(d.output(),
              HasSubstr("devmemd-session (ListenSequentialPacket= in "
                        "devmemd.socket) must be a listening AF_UNIX "
                        "SOCK_SEQPACKET socket"));
}

}  // namespace
}  // namespace devmem
