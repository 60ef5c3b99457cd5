// devmemd under a stand-in for systemd: a datagram socket as $NOTIFY_SOCKET
// receives READY=1 (only once the NIC profile is applied and the sockets
// serve), a human-readable STATUS=, WATCHDOG=1 pings at half of
// $WATCHDOG_USEC, and STOPPING=1 on SIGTERM. Real devmemd process, loopback
// only (the profile is the simulated devmem NIC over lo).
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
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

}  // namespace
}  // namespace devmem
