// Many sockets in one call (docs/PROTOCOL.md section 9), end to end through
// the real daemon code: libdevmem's Session::OpenSockets and SteerMany,
// gRPC, the session socket's RedeemMany/DepositMany with SCM_RIGHTS, and
// NicManager's group-committed rules on a simulated devmem NIC over lo (the
// sockets are real and carry traffic). No root needed.
#include <arpa/inet.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "client/libdevmem.h"
#include "daemon/config.h"
#include "daemon/daemon.h"
#include "daemon/nic/simulated/simulated_nic.h"
#include "daemon/testing/simulated_lo_daemon.h"
#include "daemon/testing/wait.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace devmem {
namespace {

using ::testing::HasSubstr;

uint16_t PortOf(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof(ss);
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return 0;
  return ntohs(reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
}

int IntOpt(int fd, int level, int name) {
  int v = -1;
  socklen_t len = sizeof(v);
  return getsockopt(fd, level, name, &v, &len) == 0 ? v : -1;
}

// A plain listener of the test's own, for Connect items to dial.
UniqueFd PlainListener() {
  UniqueFd fd(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(fd.get_unowned(), reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 ||
      listen(fd.get_unowned(), 1024) != 0) {
    return UniqueFd();
  }
  return fd;
}

class BatchSocketsTest : public ::testing::Test {
 protected:
  void SetUp() override { Start(nullptr); }

  // `fdatasync`: the journal's flush (null: the real one).
  void Start(std::function<int(int)> fdatasync) {
    static int n = 0;
    dir_ = absl::StrCat("/tmp/devmemd_bs_", getpid(), "_", n++);
    Daemon::Options o;
    o.config.set_runtime_dir(dir_);
    o.config.add_allow_uids(getuid());
    o.config.set_state_dir(
        absl::StrCat(std::getenv("TEST_TMPDIR"), "/state", n));
    // Below the 200 sockets of a call: the client must split it.
    o.config.set_max_tickets_per_session(64);
    o.journal_fdatasync = std::move(fdatasync);
    auto* p = o.config.add_nic_profiles();
    p->set_nic("lo");
    p->set_pool_queues(2);
    ASSERT_TRUE(FinalizeConfig(&o.config, "test").ok());
    auto d = StartSimulatedLoDaemon(std::move(o));
    ASSERT_TRUE(d.ok()) << d.status();
    daemon_ = std::move(d->daemon);
    sim_ = d->sim;
    auto s = Session::Open(dir_);
    ASSERT_TRUE(s.ok()) << s.status();
    session_ = std::move(*s);
    UniqueFd mem(memfd_create("gpu-mem", MFD_CLOEXEC));
    BindOptions bo;
    bo.nic = "lo";
    auto b = session_->BindRx(mem.get_unowned(), bo);
    ASSERT_TRUE(b.ok()) << b.status();
    binding_ = b->handle();
  }
  void TearDown() override { Stop(); }
  void Stop() {
    session_.reset();
    if (daemon_) daemon_->Shutdown();
    daemon_.reset();
    ::rmdir(dir_.c_str());
  }

  uint32_t Rules() { return sim_->GetCounters(if_nametoindex("lo"))->rules; }
  uint32_t PendingTickets() {
    auto st = session_->GetStatus();
    EXPECT_TRUE(st.ok()) << st.status();
    return st.ok() ? st->pending_tickets() : 0;
  }

  std::string dir_;
  SimulatedNic* sim_ = nullptr;
  std::unique_ptr<Daemon> daemon_;
  std::unique_ptr<Session> session_;
  uint64_t binding_ = 0;
};

TEST_F(BatchSocketsTest, TwoHundredSteeredSocketsInOneCall) {
  EXPECT_EQ(session_->hello().max_fds_per_frame(), 253u);
  EXPECT_EQ(session_->hello().max_tickets_per_session(), 64u);
  UniqueFd peer = PlainListener();
  ASSERT_TRUE(peer);
  std::vector<SocketSpec> specs(200);
  for (size_t i = 0; i < specs.size(); ++i) {
    if (i % 4 == 3) {
      ConnectOptions c;
      c.binding = binding_;
      c.remote = HostPort{"127.0.0.1", PortOf(peer.get_unowned())};
      specs[i].connect = c;
    } else {
      ListenOptions l;
      l.binding = binding_;
      l.ip = "127.0.0.1";
      specs[i].listen = l;
    }
  }
  auto opened = session_->OpenSockets(specs);
  ASSERT_TRUE(opened.ok()) << opened.status();
  ASSERT_EQ(opened->size(), specs.size());
  std::set<uint32_t> locations;
  for (size_t i = 0; i < opened->size(); ++i) {
    const auto& r = (*opened)[i];
    ASSERT_TRUE(r.ok()) << "socket " << i << ": " << r.status();
    const int fd = r->fd.get_unowned();
    // Each fd is the socket its own result describes, in order.
    EXPECT_EQ(PortOf(fd), r->info.local().port()) << i;
    EXPECT_EQ(r->info.rule().dst_port(), r->info.local().port()) << i;
    EXPECT_EQ(IntOpt(fd, SOL_SOCKET, SO_ACCEPTCONN), specs[i].listen ? 1 : 0);
    EXPECT_EQ(r->info.rule().five_tuple(), specs[i].connect.has_value());
    locations.insert(r->info.rule().location());
  }
  EXPECT_EQ(locations.size(), specs.size());
  EXPECT_EQ(Rules(), specs.size());
  EXPECT_EQ(PendingTickets(), 0u);
  // The rules are the session's: closing it removes them all.
  session_.reset();
  EXPECT_TRUE(WaitUntil([&] { return Rules() == 0; }, absl::Seconds(10)));
}

// OpenSocketsEach hands each socket over as soon as its call is answered:
// the first arrives while the later calls have not been made (200 sockets
// take 13 calls of 16 here, 4 out at once), and all arrive in spec order.
TEST_F(BatchSocketsTest, EachSocketArrivesBeforeTheLaterCallsAreMade) {
  std::vector<SocketSpec> specs(200);
  for (SocketSpec& spec : specs) {
    spec.listen = ListenOptions{};
    spec.listen->binding = binding_;
    spec.listen->ip = "127.0.0.1";
  }
  std::vector<UniqueFd> kept;
  uint32_t rules_at_first = 0;
  absl::Status status = session_->OpenSocketsEach(
      specs, [&](size_t index, absl::StatusOr<SocketHandle> h) {
        ASSERT_EQ(index, kept.size());
        ASSERT_TRUE(h.ok()) << index << ": " << h.status();
        EXPECT_EQ(PortOf(h->fd.get_unowned()), h->info.local().port());
        if (index == 0) rules_at_first = Rules();
        kept.push_back(std::move(h->fd));
      });
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_EQ(kept.size(), specs.size());
  // Calls 0 to 3 were made before the first socket came back, and call 4
  // may be under way (its predecessor's tickets are redeemed).
  EXPECT_GE(rules_at_first, 16u);
  EXPECT_LE(rules_at_first, 5u * 16u);
  EXPECT_EQ(Rules(), specs.size());
  EXPECT_EQ(PendingTickets(), 0u);
}

TEST_F(BatchSocketsTest, EachItemFailsOnItsOwnAndLeavesNothing) {
  ListenOptions good;
  good.binding = binding_;
  good.ip = "127.0.0.1";
  auto first = session_->Listen(good);
  ASSERT_TRUE(first.ok()) << first.status();
  const uint16_t taken = static_cast<uint16_t>(first->info.local().port());
  ASSERT_EQ(Rules(), 1u);

  // A port nobody listens on, for a Connect that is refused.
  uint16_t closed = 0;
  {
    UniqueFd probe = PlainListener();
    closed = PortOf(probe.get_unowned());
  }
  std::vector<SocketSpec> specs(6);
  specs[0].listen = good;  // fine
  specs[1].listen = good;
  specs[1].listen->ip = "999.1.1.1";  // not an address
  specs[2].listen = good;
  specs[2].listen->binding = 9999;  // not a binding of this session
  specs[3].listen = good;
  specs[3].listen->port = taken;  // in use
  specs[4].connect = ConnectOptions{};
  specs[4].connect->binding = binding_;
  specs[4].connect->remote = HostPort{"127.0.0.1", closed};  // refused
  // specs[5]: neither listen nor connect
  auto opened = session_->OpenSockets(specs);
  ASSERT_TRUE(opened.ok()) << opened.status();
  ASSERT_EQ(opened->size(), 6u);
  EXPECT_TRUE((*opened)[0].ok()) << (*opened)[0].status();
  EXPECT_EQ((*opened)[1].status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ((*opened)[2].status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ((*opened)[3].status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ((*opened)[4].status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ((*opened)[5].status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT((*opened)[5].status().message(),
              HasSubstr("exactly one of listen and connect"));
  // Only the good item left a rule; no ticket is left behind.
  EXPECT_EQ(Rules(), 2u);
  EXPECT_EQ(PendingTickets(), 0u);
}

// A batch's listeners and connects are steered together: when the NIC's
// rule table fills up midway, the items past it fail on their own (their
// sockets closed, no ticket left, no SYN sent), and the ones before it are
// handed over.
TEST_F(BatchSocketsTest, ItemsPastAFullRuleTableFailAlone) {
  UniqueFd peer = PlainListener();
  ASSERT_TRUE(peer);
  std::vector<SocketSpec> specs(262);  // the simulated NIC holds 256 rules
  for (size_t i = 0; i < specs.size(); ++i) {
    if (i % 50 == 7 || i >= 260) {
      specs[i].connect = ConnectOptions{};
      specs[i].connect->binding = binding_;
      specs[i].connect->remote =
          HostPort{"127.0.0.1", PortOf(peer.get_unowned())};
    } else {
      specs[i].listen = ListenOptions{};
      specs[i].listen->binding = binding_;
      specs[i].listen->ip = "127.0.0.1";
    }
  }
  auto opened = session_->OpenSockets(specs);
  ASSERT_TRUE(opened.ok()) << opened.status();
  // Calls in flight race for the last rules: which items fail varies.
  size_t ok = 0;
  int connected = 0;
  for (size_t i = 0; i < opened->size(); ++i) {
    const auto& r = (*opened)[i];
    if (r.ok()) {
      EXPECT_EQ(PortOf(r->fd.get_unowned()), r->info.rule().dst_port()) << i;
      EXPECT_EQ(r->info.rule().five_tuple(), specs[i].connect.has_value());
      ++ok;
      if (specs[i].connect) ++connected;
    } else {
      EXPECT_EQ(r.status().code(), absl::StatusCode::kResourceExhausted)
          << i << ": " << r.status();
    }
  }
  EXPECT_EQ(ok, 256u);
  EXPECT_EQ(Rules(), 256u);
  EXPECT_EQ(PendingTickets(), 0u);
  // The peer saw the steered connects, none of those that got no rule.
  int accepted = 0;
  ASSERT_EQ(fcntl(peer.get_unowned(), F_SETFL, O_NONBLOCK), 0);
  for (;;) {
    UniqueFd c(accept(peer.get_unowned(), nullptr, nullptr));
    if (!c) break;
    ++accepted;
  }
  EXPECT_EQ(accepted, connected);
  EXPECT_GE(connected, 1);
}

TEST_F(BatchSocketsTest, CallLimitsAndForeignItemTokens) {
  devmem::v1::OpenSocketsRequest req;
  req.set_session_token(session_->session_token());
  devmem::v1::OpenSocketsResponse resp;
  {
    grpc::ClientContext ctx;
    grpc::Status s = session_->stub()->OpenSockets(&ctx, req, &resp);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_THAT(s.error_message(), HasSubstr("has 0 items; send 1 to 1024"));
  }
  for (int i = 0; i < 1025; ++i) {
    req.add_sockets()->mutable_listen()->set_nic("lo");
  }
  {
    grpc::ClientContext ctx;
    grpc::Status s = session_->stub()->OpenSockets(&ctx, req, &resp);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_THAT(s.error_message(), HasSubstr("1025 items"));
  }
  EXPECT_EQ(PendingTickets(), 0u);
  // An item may not name another session.
  req.clear_sockets();
  auto* item = req.add_sockets()->mutable_listen();
  item->set_nic("lo");
  item->set_session_token("0123456789abcdef0123456789abcdef");
  {
    grpc::ClientContext ctx;
    grpc::Status s = session_->stub()->OpenSockets(&ctx, req, &resp);
    ASSERT_TRUE(s.ok()) << s.error_message();
    ASSERT_EQ(resp.results_size(), 1);
    EXPECT_EQ(resp.results(0).code(), 3);
    EXPECT_THAT(resp.results(0).message(), HasSubstr("session_token differs"));
    EXPECT_EQ(resp.failed(), 1u);
  }
  // Without a valid call token nothing is looked at.
  req.set_session_token("ffffffffffffffffffffffffffffffff");
  grpc::ClientContext ctx;
  EXPECT_EQ(session_->stub()->OpenSockets(&ctx, req, &resp).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
}

// The disk fails the flush the batch waits for: no socket of the batch is
// handed out, every rule is taken back, and the journal refuses new work.
TEST_F(BatchSocketsTest, FailedFlushUndoesTheWholeBatch) {
  Stop();
  std::atomic<bool> fail{false};
  Start([&fail](int fd) {
    if (!fail) return ::fdatasync(fd);
    errno = EIO;
    return -1;
  });
  fail = true;
  std::vector<SocketSpec> specs(10);
  for (SocketSpec& spec : specs) {
    spec.listen = ListenOptions{};
    spec.listen->binding = binding_;
    spec.listen->ip = "127.0.0.1";
  }
  auto opened = session_->OpenSockets(specs);
  ASSERT_TRUE(opened.ok()) << opened.status();
  // Items made before the flush failed are undone with its UNAVAILABLE;
  // items whose records were written after the journal broke (the flusher
  // may fail before the batch is through) are refused with
  // FAILED_PRECONDITION. Which ones is a race; none succeeds.
  for (const auto& r : *opened) {
    EXPECT_THAT(r.status().code(),
                ::testing::AnyOf(absl::StatusCode::kUnavailable,
                                 absl::StatusCode::kFailedPrecondition));
    EXPECT_THAT(r.status().message(), HasSubstr("journal"));
  }
  EXPECT_EQ(Rules(), 0u);
  EXPECT_EQ(PendingTickets(), 0u);
  auto status = session_->GetStatus();
  ASSERT_TRUE(status.ok());
  EXPECT_FALSE(status->journal_error().empty());
  ListenOptions one;
  one.binding = binding_;
  one.ip = "127.0.0.1";
  EXPECT_FALSE(session_->Listen(one).ok());
  EXPECT_EQ(Rules(), 0u);
}

TEST_F(BatchSocketsTest, SteerManyOfSocketsTheWorkloadMade) {
  std::vector<UniqueFd> own;
  std::vector<int> fds;
  // 200 of the simulated NIC's 256 rule slots, over four calls of 64.
  for (int i = 0; i < 200; ++i) {
    UniqueFd fd = PlainListener();
    ASSERT_TRUE(fd);
    fds.push_back(fd.get_unowned());
    own.push_back(std::move(fd));
  }
  UniqueFd udp(socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  fds.push_back(udp.get_unowned());
  auto steered = session_->SteerMany(fds, binding_);
  ASSERT_TRUE(steered.ok()) << steered.status();
  ASSERT_EQ(steered->size(), fds.size());
  for (size_t i = 0; i < own.size(); ++i) {
    ASSERT_TRUE((*steered)[i].ok()) << i << ": " << (*steered)[i].status();
    EXPECT_EQ((*steered)[i]->dst_port(), PortOf(fds[i]));
    char dev[IFNAMSIZ] = {};
    socklen_t len = sizeof(dev);
    ASSERT_EQ(getsockopt(fds[i], SOL_SOCKET, SO_BINDTODEVICE, dev, &len), 0);
    EXPECT_STREQ(dev, "lo");
  }
  EXPECT_EQ(steered->back().status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Rules(), own.size());
  EXPECT_EQ(PendingTickets(), 0u);
}

// One SteerMany call past the rule table: its items are checked and bound in
// order, then steered together, and each still fails alone, in order.
TEST_F(BatchSocketsTest, SteerManyPastAFullRuleTableFailsTheLastAlone) {
  std::vector<UniqueFd> own;
  std::vector<int> fds;
  for (int i = 0; i < 258; ++i) {
    UniqueFd fd = i == 100
                      ? UniqueFd(socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0))
                      : PlainListener();
    ASSERT_TRUE(fd);
    fds.push_back(fd.get_unowned());
    own.push_back(std::move(fd));
  }
  auto steered = session_->SteerMany(fds, binding_);
  ASSERT_TRUE(steered.ok()) << steered.status();
  ASSERT_EQ(steered->size(), fds.size());
  EXPECT_EQ((*steered)[100].status().code(),
            absl::StatusCode::kInvalidArgument);
  for (size_t i = 0; i < fds.size(); ++i) {
    if (i == 100) continue;
    if (i < 257) {  // 256 listeners before the last one: the whole table
      ASSERT_TRUE((*steered)[i].ok()) << i << ": " << (*steered)[i].status();
      EXPECT_EQ((*steered)[i]->dst_port(), PortOf(fds[i])) << i;
    } else {
      EXPECT_EQ((*steered)[i].status().code(),
                absl::StatusCode::kResourceExhausted)
          << (*steered)[i].status();
    }
  }
  EXPECT_EQ(Rules(), 256u);
  EXPECT_EQ(PendingTickets(), 0u);
}

}  // namespace
}  // namespace devmem
