// Runs the real devmemd binary and checks that sessions leave nothing behind:
// after 1000 sessions open and close (with sockets handed over, tickets left
// unredeemed, and protocol violations), the daemon's fd count is back where it
// started and other sessions are unaffected. No root needed (loopback only).
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <functional>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "client/libdevmem.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kernel/scm_rights.h"
#include "tests/integration/daemon_process.h"

namespace devmem {
namespace {

bool WaitUntil(const std::function<bool()>& done, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (!done()) {
    if (absl::Now() > deadline) return done();
    std::this_thread::yield();
  }
  return true;
}

class SessionCleanupTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = absl::StrCat("/tmp/devmemd-cleanup-", getpid());
    auto d = DaemonProcess::Start("daemon/devmemd", dir_,
                                  {absl::StrCat("--allow_uids=", getuid())});
    ASSERT_TRUE(d.ok()) << d.status();
    daemon_ = std::move(*d);
  }
  void TearDown() override {
    if (daemon_) {
      int status = daemon_->Terminate();
      EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
          << "devmemd did not exit cleanly on SIGTERM: " << status;
      EXPECT_NE(::access((dir_ + "/grpc.sock").c_str(), F_OK), 0)
          << "grpc.sock left behind";
      EXPECT_NE(::access((dir_ + "/session.sock").c_str(), F_OK), 0)
          << "session.sock left behind";
    }
    ::rmdir(dir_.c_str());
  }
  std::string dir_;
  std::unique_ptr<DaemonProcess> daemon_;
};

TEST_F(SessionCleanupTest, ThousandSessionsLeaveNoFdBehind) {
  // Warm up once: gRPC creates its thread pools and epoll fds lazily.
  {
    auto s = Session::Open(dir_);
    ASSERT_TRUE(s.ok()) << s.status();
    ASSERT_TRUE(s->get()->GetStatus().ok());
  }
  auto bystander = Session::Open(dir_);
  ASSERT_TRUE(bystander.ok());
  // The bystander's gRPC connection (its process's channel, which the
  // sessions below share) is part of the baseline.
  ASSERT_TRUE((*bystander)->GetStatus().ok());
  const int baseline_with_bystander = daemon_->FdCount();
  ASSERT_GT(baseline_with_bystander, 0);

  for (int i = 0; i < 1000; ++i) {
    auto s = Session::Open(dir_);
    ASSERT_TRUE(s.ok()) << "session " << i << ": " << s.status();
    switch (i % 4) {
      case 0: {  // socket handed over and redeemed
        ListenOptions o;
        o.nic = "lo";
        o.ip = "127.0.0.1";
        auto h = (*s)->Listen(o);
        ASSERT_TRUE(h.ok()) << h.status();
        break;
      }
      case 1: {  // ticket issued, never redeemed: the session close must free
                 // it
        devmem::v1::ListenRequest req;
        req.set_session_token((*s)->session_token());
        req.set_nic("lo");
        req.mutable_local()->set_ip("127.0.0.1");
        devmem::v1::SocketResponse resp;
        grpc::ClientContext ctx;
        ASSERT_TRUE((*s)->stub()->Listen(&ctx, req, &resp).ok());
        break;
      }
      case 2: {  // protocol violation with fds attached
        int p[2];
        ASSERT_EQ(::pipe2(p, O_CLOEXEC), 0);
        ASSERT_TRUE(
            SendWithFds((*s)->session_fd_unowned(), "garbage", {p[0], p[1]})
                .ok());
        ::close(p[0]);
        ::close(p[1]);
        break;
      }
      case 3:  // open and close only
        break;
    }
  }
  EXPECT_TRUE(
      WaitUntil([&] { return daemon_->FdCount() == baseline_with_bystander; },
                absl::Seconds(20)))
      << "fd count " << daemon_->FdCount() << ", baseline "
      << baseline_with_bystander;
  // The bystander's session survived all of it.
  EXPECT_TRUE((*bystander)->Ping().ok());
  auto st = (*bystander)->GetStatus();
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->sessions(), 1u);
  EXPECT_EQ(st->pending_tickets(), 0u);
}

TEST_F(SessionCleanupTest, KilledClientReleasesItsTickets) {
  auto observer = Session::Open(dir_);
  ASSERT_TRUE(observer.ok());
  ASSERT_TRUE((*observer)->GetStatus().ok());
  const int baseline = daemon_->FdCount();
  int ready[2];
  ASSERT_EQ(::pipe2(ready, O_CLOEXEC), 0);
  pid_t child = ::fork();
  if (child == 0) {
    // A workload that takes 5 tickets and is then killed without closing.
    ::dup2(ready[1], STDOUT_FILENO);
    ::execl("tests/integration/ticket_holder", "ticket_holder", dir_.c_str(),
            "5", static_cast<char*>(nullptr));
    ::_exit(127);
  }
  ::close(ready[1]);
  char c;
  ASSERT_EQ(::read(ready[0], &c, 1), 1) << "ticket_holder did not get ready";
  ::close(ready[0]);
  auto st = (*observer)->GetStatus();
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->pending_tickets(), 5u);
  ::kill(child, SIGKILL);
  ::waitpid(child, nullptr, 0);
  EXPECT_TRUE(WaitUntil(
      [&] {
        auto s = (*observer)->GetStatus();
        return s.ok() && s->pending_tickets() == 0 && s->sessions() == 1;
      },
      absl::Seconds(10)));
  EXPECT_TRUE(WaitUntil([&] { return daemon_->FdCount() == baseline; },
                        absl::Seconds(10)))
      << "fd count " << daemon_->FdCount() << ", baseline " << baseline;
}

}  // namespace
}  // namespace devmem
