#include "daemon/session/session_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <vector>

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

  static SessionManager::Options ManagerOptions() {
    SessionManager::Options o;
    // Room for more than one frame's worth of tickets.
    o.max_tickets_per_session = kTicketLimit;
    return o;
  }
  static constexpr uint32_t kTicketLimit = 300;

  std::string path_;
  AccessPolicy policy_{{static_cast<uint32_t>(getuid())}, {}, "test.textproto"};
  SessionManager mgr_{ManagerOptions(), RealClock::Get()};
  std::unique_ptr<SessionServer> server_;
};

TEST_F(SessionServerTest, HelloCarriesTokenAndPeer) {
  Client c(path_);
  auto h = Hello(c);
  EXPECT_EQ(h.code(), 0);
  EXPECT_EQ(h.session_token().size(), 32u);
  EXPECT_EQ(h.peer_uid(), getuid());
  EXPECT_EQ(h.peer_pid(), getpid());
  EXPECT_EQ(h.max_fds_per_frame(), 253u);
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
  observer.fd = [&](absl::string_view direction, absl::string_view kind,
                    size_t count) {
    absl::MutexLock lock(&mu);
    for (size_t i = 0; i < count; ++i) {
      fds.push_back(absl::StrCat(direction, "/", kind));
    }
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
    // Many at once: one frame each, one fd hook call per fd.
    Pipe p1, p2;
    f = c.DepositMany({p1.w.get_unowned(), p2.w.get_unowned()});
    ASSERT_EQ(f->body_case(), F::kDepositedMany);
    const auto& t = f->deposited_many().tickets();
    ASSERT_EQ(c.RedeemMany({t.begin(), t.end()}, &got)->body_case(),
              F::kFdBatch);
  }
  server.Stop();
  ::unlink(path.c_str());
  absl::MutexLock lock(&mu);
  ASSERT_EQ(frames.size(), 7u);
  EXPECT_EQ(frames[5].method, "session.DepositMany");
  EXPECT_EQ(frames[6].method, "session.RedeemMany");
  EXPECT_EQ(frames[6].code, absl::StatusCode::kOk);
  EXPECT_EQ(frames[0].method, "session.Ping");
  EXPECT_EQ(frames[0].code, absl::StatusCode::kOk);
  EXPECT_EQ(frames[1].method, "session.Redeem");
  EXPECT_EQ(frames[1].code, absl::StatusCode::kNotFound);
  EXPECT_EQ(frames[2].method, "session.Deposit");
  EXPECT_EQ(frames[3].method, "session.Redeem");
  EXPECT_EQ(frames[3].code, absl::StatusCode::kOk);
  EXPECT_EQ(fds,
            (std::vector<std::string>{
                "from_client/dmabuf",
                "to_client/other",  // a pipe: neither socket nor anchor
                "to_client/socket", "from_client/dmabuf", "from_client/dmabuf",
                "to_client/other", "to_client/other"}));
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

TEST_F(SessionServerTest, DepositWithTwoFdsIsAnErrorAndClosesBoth) {
  Client c(path_);
  Hello(c);
  Pipe p1, p2;
  F dep;
  dep.mutable_deposit();
  c.Send(dep, {p1.w.get_unowned(), p2.w.get_unowned()});
  p1.w.Reset();
  p2.w.Reset();
  auto f = c.Read();
  ASSERT_EQ(f->body_case(), F::kError);
  EXPECT_EQ(f->error().code(), 3);
  EXPECT_TRUE(p1.WriterClosed());
  EXPECT_TRUE(p2.WriterClosed());
  EXPECT_EQ(mgr_.pending_tickets(), 0u);
}

// --- RedeemMany and DepositMany ---

uint16_t LocalPort(int fd) {
  sockaddr_in a{};
  socklen_t len = sizeof(a);
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) return 0;
  return ntohs(a.sin_port);
}

// A TCP socket bound to 127.0.0.1 port 0, and the port the kernel gave it.
UniqueFd BoundSocket(uint16_t* port) {
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(
      ::bind(fd.get_unowned(), reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
  *port = LocalPort(fd.get_unowned());
  return fd;
}

ino_t Inode(int fd) {
  struct stat st = {};
  EXPECT_EQ(::fstat(fd, &st), 0);
  return st.st_ino;
}

// `n` parked TCP sockets: their tickets, and each ticket's port.
std::vector<std::string> ParkSockets(SessionManager& mgr, uint64_t session,
                                     size_t n,
                                     std::map<std::string, uint16_t>* ports) {
  std::vector<std::string> tickets;
  for (size_t i = 0; i < n; ++i) {
    uint16_t port = 0;
    auto t = mgr.IssueTicket(session, BoundSocket(&port));
    EXPECT_TRUE(t.ok()) << t.status();
    if (!t.ok()) break;
    (*ports)[*t] = port;
    tickets.push_back(*t);
  }
  return tickets;
}

TEST_F(SessionServerTest, RedeemManyHandsTheKernelMaximumInOneFrame) {
  Client c(path_);
  const uint64_t id = Hello(c).session_id();
  std::map<std::string, uint16_t> ports;
  const std::vector<std::string> tickets =
      ParkSockets(mgr_, id, kMaxFdsPerMessage, &ports);
  ASSERT_EQ(tickets.size(), 253u);
  std::vector<UniqueFd> fds;
  auto f = c.RedeemMany(tickets, &fds);
  ASSERT_TRUE(f.has_value());
  ASSERT_EQ(f->body_case(), F::kFdBatch) << f->DebugString();
  EXPECT_EQ(f->fd_batch().errors_size(), 0);
  ASSERT_EQ(f->fd_batch().tickets_size(), 253);
  ASSERT_EQ(fds.size(), 253u);
  for (int i = 0; i < 253; ++i) {
    EXPECT_EQ(f->fd_batch().tickets(i), tickets[i]);
    EXPECT_EQ(LocalPort(fds[i].get_unowned()), ports[tickets[i]])
        << "fd " << i << " is another ticket's socket";
    EXPECT_TRUE(::fcntl(fds[i].get_unowned(), F_GETFD) & FD_CLOEXEC);
  }
  EXPECT_EQ(mgr_.pending_tickets(), 0u);
  EXPECT_TRUE(WaitUntil([&] { return server_->fds_handed_off() == 253; }));
}

TEST_F(SessionServerTest, RedeemManyOverTheLimitOrEmptyIsOneErrorSpendingNone) {
  Client c(path_);
  const uint64_t id = Hello(c).session_id();
  std::map<std::string, uint16_t> ports;
  std::vector<std::string> tickets =
      ParkSockets(mgr_, id, kMaxFdsPerMessage + 1, &ports);
  ASSERT_EQ(tickets.size(), 254u);
  std::vector<UniqueFd> fds;
  auto f = c.RedeemMany(tickets, &fds);
  ASSERT_EQ(f->body_case(), F::kError);
  EXPECT_EQ(f->error().code(), 3);
  EXPECT_THAT(f->error().message(), HasSubstr("254 tickets"));
  EXPECT_TRUE(fds.empty());
  f = c.RedeemMany({}, &fds);
  ASSERT_EQ(f->body_case(), F::kError);
  EXPECT_EQ(f->error().code(), 3);
  EXPECT_TRUE(fds.empty());
  EXPECT_EQ(mgr_.pending_tickets(), 254u);
  // Every ticket still redeemable.
  const std::string last = tickets.back();
  tickets.pop_back();
  f = c.RedeemMany(tickets, &fds);
  ASSERT_EQ(f->body_case(), F::kFdBatch);
  EXPECT_EQ(fds.size(), 253u);
  EXPECT_TRUE(c.Redeem(last).ok());
}

TEST_F(SessionServerTest, RedeemManyAnswersEachTicketOnItsOwn) {
  Client c(path_);
  const uint64_t id = Hello(c).session_id();
  std::map<std::string, uint16_t> ports;
  const std::vector<std::string> good = ParkSockets(mgr_, id, 2, &ports);
  const std::string unknown = "0123456789abcdef0123456789abcdef";
  const std::string malformed(5000, 'Z');
  std::vector<UniqueFd> fds;
  auto f =
      c.RedeemMany({good[0], unknown, malformed, good[0], good[1], ""}, &fds);
  ASSERT_EQ(f->body_case(), F::kFdBatch) << f->DebugString();
  const devmem::v1::FdBatch& batch = f->fd_batch();
  ASSERT_EQ(batch.tickets_size(), 2);
  EXPECT_EQ(batch.tickets(0), good[0]);
  EXPECT_EQ(batch.tickets(1), good[1]);
  ASSERT_EQ(fds.size(), 2u);
  EXPECT_EQ(LocalPort(fds[0].get_unowned()), ports[good[0]]);
  EXPECT_EQ(LocalPort(fds[1].get_unowned()), ports[good[1]]);
  struct Want {
    uint32_t index;
    int code;
    std::string ticket;
  };
  const std::vector<Want> want = {{1, 5, unknown},
                                  {2, 3, ""},       // never echoed
                                  {3, 5, good[0]},  // spent by index 0
                                  {5, 3, ""}};
  ASSERT_EQ(batch.errors_size(), 4);
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(batch.errors(i).index(), want[i].index);
    EXPECT_EQ(batch.errors(i).code(), want[i].code);
    EXPECT_EQ(batch.errors(i).ticket(), want[i].ticket);
    EXPECT_FALSE(batch.errors(i).message().empty());
    EXPECT_LE(batch.errors(i).message().size(), 200u);
  }
}

TEST_F(SessionServerTest, ManyFdsOnAFrameThatTakesNoneAreAllClosed) {
  Client c(path_);
  Hello(c);
  std::vector<Pipe> pipes(kMaxFdsPerMessage);
  const std::vector<int> ends = WriteEnds(pipes);
  F ping;
  ping.mutable_ping()->set_nonce(1);
  c.Send(ping, ends);
  CloseWriteEnds(pipes);
  EXPECT_TRUE(c.ClosedByPeer());
  for (const Pipe& p : pipes) {
    EXPECT_TRUE(WaitUntil([&] { return p.WriterClosed(); }));
  }
  EXPECT_EQ(server_->sessions_closed_for_violation(), 1u);
}

// 254 fds cannot make one frame: the kernel refuses the sendmsg() (SCM_MAX_FD,
// net/core/scm.c scm_fp_copy), so the daemon never holds any of them and the
// session goes on.
TEST_F(SessionServerTest, FrameWith254FdsNeverReachesTheDaemon) {
  Client c(path_);
  Hello(c);
  std::vector<Pipe> pipes(kMaxFdsPerMessage + 1);
  const std::vector<int> ends = WriteEnds(pipes);
  F many;
  many.mutable_deposit_many();
  const std::string bytes = *EncodeFrame(many);
  std::vector<char> control(CMSG_SPACE(sizeof(int) * ends.size()));
  struct iovec iov = {const_cast<char*>(bytes.data()), bytes.size()};
  struct msghdr msg = {};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control.data();
  msg.msg_controllen = control.size();
  struct cmsghdr* cm = CMSG_FIRSTHDR(&msg);
  cm->cmsg_level = SOL_SOCKET;
  cm->cmsg_type = SCM_RIGHTS;
  cm->cmsg_len = CMSG_LEN(sizeof(int) * ends.size());
  std::memcpy(CMSG_DATA(cm), ends.data(), sizeof(int) * ends.size());
  EXPECT_EQ(::sendmsg(c.fd_unowned(), &msg, MSG_NOSIGNAL), -1);
  EXPECT_EQ(errno, EINVAL);
  CloseWriteEnds(pipes);
  for (const Pipe& p : pipes) EXPECT_TRUE(p.WriterClosed());
  F ping;
  ping.mutable_ping()->set_nonce(7);
  c.Send(ping);
  auto f = c.Read();
  ASSERT_TRUE(f.has_value());
  EXPECT_EQ(f->body_case(), F::kPong);
  EXPECT_EQ(mgr_.pending_tickets(), 0u);
}

TEST_F(SessionServerTest, DepositManyThenRedeemManyGivesTheSameFiles) {
  Client c(path_);
  Hello(c);
  std::vector<Pipe> pipes(kMaxFdsPerMessage);
  std::vector<std::string> labels;
  labels.reserve(pipes.size());
  for (size_t i = 0; i < pipes.size(); ++i) {
    labels.push_back(absl::StrCat("pipe-", i));
  }
  auto f = c.DepositMany(WriteEnds(pipes), labels);
  CloseWriteEnds(pipes);  // the daemon holds its copies
  ASSERT_EQ(f->body_case(), F::kDepositedMany) << f->DebugString();
  const devmem::v1::DepositedMany& dep = f->deposited_many();
  ASSERT_EQ(dep.tickets_size(), 253);
  EXPECT_EQ(std::vector<std::string>(dep.labels().begin(), dep.labels().end()),
            labels);
  EXPECT_EQ(dep.ticket_ttl_ms(), 10000u);
  EXPECT_EQ(mgr_.pending_tickets(), 253u);
  EXPECT_FALSE(pipes[0].WriterClosed());
  std::vector<UniqueFd> fds;
  f = c.RedeemMany({dep.tickets().begin(), dep.tickets().end()}, &fds);
  ASSERT_EQ(f->body_case(), F::kFdBatch);
  ASSERT_EQ(fds.size(), 253u);
  for (size_t i = 0; i < fds.size(); ++i) {
    EXPECT_EQ(Inode(fds[i].get_unowned()), Inode(pipes[i].r.get_unowned()))
        << "fd " << i;
  }
}

TEST_F(SessionServerTest, DepositManyPastTheTicketLimitKeepsNothing) {
  Client c(path_);
  const uint64_t id = Hello(c).session_id();
  std::map<std::string, uint16_t> ports;
  // 100 held: 200 more fit, the frame brings 253.
  ASSERT_EQ(ParkSockets(mgr_, id, 100, &ports).size(), 100u);
  std::vector<Pipe> pipes(kMaxFdsPerMessage);
  const std::vector<int> ends = WriteEnds(pipes);
  auto f = c.DepositMany(ends);
  CloseWriteEnds(pipes);
  ASSERT_EQ(f->body_case(), F::kError);
  EXPECT_EQ(f->error().code(), 8);
  EXPECT_THAT(f->error().message(), HasSubstr("none of the 253 fds"));
  EXPECT_EQ(mgr_.pending_tickets(), 100u);
  for (const Pipe& p : pipes) EXPECT_TRUE(p.WriterClosed());
}

TEST_F(SessionServerTest, DepositManyRefusesBadFramesAndClosesTheFds) {
  Client c(path_);
  Hello(c);
  auto f = c.DepositMany({});
  ASSERT_EQ(f->body_case(), F::kError);
  EXPECT_EQ(f->error().code(), 3);
  const std::vector<std::vector<std::string>> bad_labels = {
      {"one"},                        // two fds, one label
      {"ok", std::string(257, 'l')},  // a label over 256 bytes
      {std::string(256, 'l'), std::string(256, 'l')}};  // fine
  for (size_t i = 0; i < bad_labels.size(); ++i) {
    Pipe p1, p2;
    f = c.DepositMany({p1.w.get_unowned(), p2.w.get_unowned()}, bad_labels[i]);
    p1.w.Reset();
    p2.w.Reset();
    ASSERT_TRUE(f.has_value());
    if (i == 2) {
      EXPECT_EQ(f->body_case(), F::kDepositedMany);
      continue;
    }
    ASSERT_EQ(f->body_case(), F::kError) << i;
    EXPECT_EQ(f->error().code(), 3);
    EXPECT_TRUE(p1.WriterClosed());
    EXPECT_TRUE(p2.WriterClosed());
  }
  EXPECT_EQ(mgr_.pending_tickets(), 2u);
}

// Labels whose echo, with a ticket per fd, would not fit in one answer.
TEST_F(SessionServerTest, DepositManyWhoseAnswerWouldNotFitIsRefused) {
  Client c(path_);
  Hello(c);
  std::vector<Pipe> pipes(240);
  const std::vector<int> ends = WriteEnds(pipes);
  auto f =
      c.DepositMany(ends, std::vector<std::string>(240, std::string(240, 'l')));
  CloseWriteEnds(pipes);
  ASSERT_EQ(f->body_case(), F::kError);
  EXPECT_EQ(f->error().code(), 3);
  EXPECT_THAT(f->error().message(), HasSubstr("too long for the answer"));
  EXPECT_EQ(mgr_.pending_tickets(), 0u);
  for (const Pipe& p : pipes) EXPECT_TRUE(p.WriterClosed());
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
  std::string good = *EncodeFrame(ping);
  switch (GetParam()) {
    case 0:  // garbage
      c.SendRaw("this is not a frame", {p1.w.get_unowned()});
      break;
    case 1:  // truncated: header promises more than arrives
      c.SendRaw(good.substr(0, good.size() - 1));
      break;
    case 2:  // fds on a RedeemMany, which takes none
    {
      F many;
      many.mutable_redeem_many()->add_tickets(std::string(32, 'a'));
      c.Send(many, {p1.w.get_unowned(), p2.w.get_unowned()});
      break;
    }
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
