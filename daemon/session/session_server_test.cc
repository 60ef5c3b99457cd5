#include "daemon/session/session_server.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "daemon/session/testing/session_test_client.h"
#include "daemon/testing/wait.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kernel/scm_rights.h"
#include "proto/devmem/v1/frame.h"

namespace devmem {
namespace {

using ::testing::HasSubstr;
using F = devmem::v1::SessionFrame;

std::string SocketPath() {
  // TEST_TMPDIR is often longer than sun_path allows; /tmp with the pid is
  // unique.
  static int n = 0;
  return std::string("/tmp/devmemd_test_sess") + std::to_string(getpid()) +
         "_" + std::to_string(n++) + ".sock";
}

UniqueFd Listen(const std::string& path) {
  UniqueFd fd(
      ::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  struct sockaddr_un addr = {};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
  ::unlink(path.c_str());
  EXPECT_EQ(::bind(fd.get_unowned(), reinterpret_cast<sockaddr*>(&addr),
                   sizeof(addr)),
            0);
  EXPECT_EQ(::listen(fd.get_unowned(), 64), 0);
  return fd;
}

using Client = TestSessionClient;
using Pipe = TestPipe;

class SessionServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = SocketPath();
    server_ = std::make_unique<SessionServer>(Listen(path_), &policy_, &mgr_);
    ASSERT_TRUE(server_->Start().ok());
  }
  void TearDown() override {
    server_->Stop();
    ::unlink(path_.c_str());
  }
  // Opens a session and returns its Hello.
  devmem::v1::Hello Hello(Client& c) {
    auto f = c.Read();
    EXPECT_TRUE(f.has_value());
    EXPECT_EQ(f->body_case(), F::kHello);
    return f->hello();
  }

  std::string path_;
  AccessPolicy policy_{{static_cast<uint32_t>(getuid())}, {}, "test.textproto"};
  SessionManager mgr_{SessionManager::Options(), RealClock::Get()};
  std::unique_ptr<SessionServer> server_;
};

TEST_F(SessionServerTest, HelloCarriesTokenAndPeer) {
  Client c(path_);
  auto h = Hello(c);
  EXPECT_EQ(h.code(), 0);
  EXPECT_EQ(h.session_token().size(), 32u);
  EXPECT_EQ(h.peer_uid(), getuid());
  EXPECT_EQ(h.peer_pid(), getpid());
  EXPECT_EQ(h.max_fds_per_frame(), 1u);
  EXPECT_EQ(h.protocol_version(), 1u);
  EXPECT_TRUE(WaitUntil([&] { return mgr_.session_count() == 1; }));
}

TEST_F(SessionServerTest, DeniedPeerGetsPermissionDeniedAndClose) {
  server_->Stop();
  ::unlink(path_.c_str());
  AccessPolicy deny({getuid() + 1}, {}, "test.textproto");
  path_ = SocketPath();
  server_ = std::make_unique<SessionServer>(Listen(path_), &deny, &mgr_);
  ASSERT_TRUE(server_->Start().ok());
  Client c(path_);
  auto h = Hello(c);
  EXPECT_EQ(h.code(), 7);  // PERMISSION_DENIED
  EXPECT_THAT(h.message(), HasSubstr("allow_uids"));
  EXPECT_TRUE(h.session_token().empty());
  EXPECT_TRUE(c.ClosedByPeer());
  EXPECT_EQ(mgr_.session_count(), 0u);
}

TEST_F(SessionServerTest, RedeemHandsOverAWorkingFd) {
  Client c(path_);
  auto h = Hello(c);
  Pipe p;
  auto ticket = mgr_.IssueTicket(h.session_id(), std::move(p.w));
  ASSERT_TRUE(ticket.ok());
  F redeem;
  redeem.mutable_redeem()->set_ticket(*ticket);
  c.Send(redeem);
  std::vector<UniqueFd> fds;
  auto f = c.Read(&fds);
  ASSERT_TRUE(f.has_value());
  ASSERT_EQ(f->body_case(), F::kFdGrant);
  EXPECT_EQ(f->fd_grant().ticket(), *ticket);
  ASSERT_EQ(fds.size(), 1u);
  EXPECT_TRUE(fcntl(fds[0].get_unowned(), F_GETFD) & FD_CLOEXEC);
  ASSERT_EQ(::write(fds[0].get_unowned(), "x", 1), 1);
  char ch = 0;
  EXPECT_EQ(::read(p.r.get_unowned(), &ch, 1), 1);
  EXPECT_EQ(ch, 'x');
  EXPECT_TRUE(WaitUntil([&] { return server_->fds_handed_off() == 1; }));
  // Spent.
  c.Send(redeem);
  f = c.Read();
  ASSERT_TRUE(f.has_value());
  ASSERT_EQ(f->body_case(), F::kError);
  EXPECT_EQ(f->error().code(), 5);
}

TEST_F(SessionServerTest, AnotherSessionsTicketIsRejected) {
  Client a(path_), b(path_);
  auto ha = Hello(a);
  Hello(b);
  Pipe p;
  auto ticket = mgr_.IssueTicket(ha.session_id(), std::move(p.w));
  F redeem;
  redeem.mutable_redeem()->set_ticket(*ticket);
  b.Send(redeem);
  std::vector<UniqueFd> fds;
  auto f = b.Read(&fds);
  ASSERT_TRUE(f.has_value());
  ASSERT_EQ(f->body_case(), F::kError);
  EXPECT_EQ(f->error().code(), 5);
  EXPECT_TRUE(fds.empty());
  // Still redeemable by its owner.
  a.Send(redeem);
  f = a.Read(&fds);
  ASSERT_EQ(f->body_case(), F::kFdGrant);
  EXPECT_EQ(fds.size(), 1u);
}

TEST_F(SessionServerTest, DepositThenRedeemRoundTrips) {
  Client c(path_);
  Hello(c);
  Pipe p;
  F dep;
  dep.mutable_deposit()->set_label("dmabuf");
  c.Send(dep, {p.w.get_unowned()});
  p.w.Reset();
  auto f = c.Read();
  ASSERT_EQ(f->body_case(), F::kDeposited);
  EXPECT_EQ(f->deposited().label(), "dmabuf");
  EXPECT_FALSE(p.WriterClosed());  // the daemon holds it
  F redeem;
  redeem.mutable_redeem()->set_ticket(f->deposited().ticket());
  c.Send(redeem);
  std::vector<UniqueFd> fds;
  f = c.Read(&fds);
  ASSERT_EQ(f->body_case(), F::kFdGrant);
  ASSERT_EQ(fds.size(), 1u);
}

TEST_F(SessionServerTest, ObserverSeesEveryFrameAndFd) {
  struct Seen {
    std::string method;
    absl::StatusCode code;
  };
  absl::Mutex mu;
  std::vector<Seen> frames;
  std::vector<std::string> fds;
  const std::string path = SocketPath();
  SessionServer server(Listen(path), &policy_, &mgr_);
  SessionServer::Observer observer;
  observer.frame = [&](absl::string_view m, absl::StatusCode code,
                       absl::Duration elapsed) {
    absl::MutexLock lock(&mu);
    EXPECT_GE(elapsed, absl::ZeroDuration());
    frames.push_back({std::string{m}, code});
  };
  observer.fd = [&](absl::string_view direction, absl::string_view kind) {
    absl::MutexLock lock(&mu);
    fds.push_back(absl::StrCat(direction, "/", kind));
  };
  server.SetObserver(std::move(observer));
  ASSERT_TRUE(server.Start().ok());
  {
    Client c(path);
    const uint64_t id = Hello(c).session_id();
    F ping;
    ping.mutable_ping()->set_nonce(1);
    c.Send(ping);
    ASSERT_EQ(c.Read()->body_case(), F::kPong);
    F redeem;
    redeem.mutable_redeem()->set_ticket("0123456789abcdef0123456789abcdef");
    c.Send(redeem);
    ASSERT_EQ(c.Read()->body_case(), F::kError);
    Pipe p;
    F dep;
    dep.mutable_deposit()->set_label("dmabuf");
    c.Send(dep, {p.w.get_unowned()});
    auto f = c.Read();
    ASSERT_EQ(f->body_case(), F::kDeposited);
    redeem.mutable_redeem()->set_ticket(f->deposited().ticket());
    c.Send(redeem);
    std::vector<UniqueFd> got;
    ASSERT_EQ(c.Read(&got)->body_case(), F::kFdGrant);
    // A TCP socket parked by the daemon (Listen/Connect) is a "socket".
    UniqueFd tcp(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    auto ticket = mgr_.IssueTicket(id, std::move(tcp));
    ASSERT_TRUE(ticket.ok()) << ticket.status();
    redeem.mutable_redeem()->set_ticket(*ticket);
    c.Send(redeem);
    ASSERT_EQ(c.Read(&got)->body_case(), F::kFdGrant);
  }
  server.Stop();
  ::unlink(path.c_str());
  absl::MutexLock lock(&mu);
  ASSERT_EQ(frames.size(), 5u);
  EXPECT_EQ(frames[0].method, "session.Ping");
  EXPECT_EQ(frames[0].code, absl::StatusCode::kOk);
  EXPECT_EQ(frames[1].method, "session.Redeem");
  EXPECT_EQ(frames[1].code, absl::StatusCode::kNotFound);
  EXPECT_EQ(frames[2].method, "session.Deposit");
  EXPECT_EQ(frames[3].method, "session.Redeem");
  EXPECT_EQ(frames[3].code, absl::StatusCode::kOk);
  EXPECT_EQ(fds, (std::vector<std::string>{
                     "from_client/dmabuf",
                     "to_client/other",  // a pipe: neither socket nor anchor
                     "to_client/socket"}));
}

TEST_F(SessionServerTest, DepositWithoutFdIsAnErrorNotAClose) {
  Client c(path_);
  Hello(c);
  F dep;
  dep.mutable_deposit();
  c.Send(dep);
  auto f = c.Read();
  ASSERT_EQ(f->body_case(), F::kError);
  EXPECT_EQ(f->error().code(), 3);
  F ping;
  ping.mutable_ping()->set_nonce(42);
  c.Send(ping);
  f = c.Read();
  ASSERT_EQ(f->body_case(), F::kPong);
  EXPECT_EQ(f->pong().nonce(), 42u);
}

// Each violation closes that session, closes every fd it carried, and leaves
// other sessions working.
class ViolationTest : public SessionServerTest,
                      public ::testing::WithParamInterface<int> {};

TEST_P(ViolationTest, ClosesSessionAndItsFds) {
  Client bystander(path_);
  Hello(bystander);
  Client c(path_);
  auto h = Hello(c);
  Pipe held;  // an fd the session holds behind a ticket
  ASSERT_TRUE(mgr_.IssueTicket(h.session_id(), std::move(held.w)).ok());
  Pipe p1, p2;
  F ping;
  ping.mutable_ping()->set_nonce(1);
  F dep;
  dep.mutable_deposit();
  std::string good = *EncodeFrame(ping);
  switch (GetParam()) {
    case 0:  // garbage
      c.SendRaw("this is not a frame", {p1.w.get_unowned()});
      break;
    case 1:  // truncated: header promises more than arrives
      c.SendRaw(good.substr(0, good.size() - 1));
      break;
    case 2:  // too many fds
      c.Send(dep, {p1.w.get_unowned(), p2.w.get_unowned()});
      break;
    case 3:  // an fd on a frame that takes none
      c.Send(ping, {p1.w.get_unowned()});
      break;
    case 4:  // a daemon->client body
    {
      F hello;
      hello.mutable_hello()->set_code(0);
      c.Send(hello);
      break;
    }
    case 5:  // short header
      c.SendRaw("DMv");
      break;
    case 6:  // unparsable payload
      c.SendRaw(std::string("DMv1\x02\x00\x00\x00\xff\xff", 10));
      break;
  }
  p1.w.Reset();
  p2.w.Reset();
  EXPECT_TRUE(c.ClosedByPeer());
  EXPECT_TRUE(WaitUntil([&] { return held.WriterClosed(); }));
  EXPECT_TRUE(p1.WriterClosed());
  EXPECT_TRUE(p2.WriterClosed());
  EXPECT_TRUE(WaitUntil([&] { return mgr_.session_count() == 1; }));
  bystander.Send(ping);
  auto f = bystander.Read();
  ASSERT_TRUE(f.has_value());
  EXPECT_EQ(f->body_case(), F::kPong);
}

INSTANTIATE_TEST_SUITE_P(All, ViolationTest, ::testing::Range(0, 7));

TEST_F(SessionServerTest, ClientCloseReleasesEverything) {
  Pipe p;
  {
    Client c(path_);
    auto h = Hello(c);
    ASSERT_TRUE(mgr_.IssueTicket(h.session_id(), std::move(p.w)).ok());
  }
  EXPECT_TRUE(WaitUntil([&] { return mgr_.session_count() == 0; }));
  EXPECT_EQ(mgr_.pending_tickets(), 0u);
  EXPECT_TRUE(p.WriterClosed());
  EXPECT_TRUE(WaitUntil([&] { return server_->connection_count() == 0; }));
}

}  // namespace
}  // namespace devmem
