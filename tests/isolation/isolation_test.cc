// Isolation between sessions of one devmemd: the daemon in-process (gRPC,
// session socket, NicManager) on a simulated devmem NIC overlaying loopback,
// two sessions A and B. Each TEST shows one way B must not reach A's objects,
// with the exact code the protocol promises (docs/PROTOCOL.md sections 4, 5
// and 7) and proof that A's object is untouched afterwards. The other-uid
// case runs a helper (foreign_uid_client) that turns itself into "nobody";
// it needs root and skips otherwise.
#include <arpa/inet.h>
#include <fcntl.h>
#include <grp.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <pwd.h>
#include <spawn.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <google/protobuf/descriptor.h>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "client/libdevmem.h"
#include "daemon/config.h"
#include "daemon/daemon.h"
#include "daemon/nic/simulated/simulated_nic.h"
#include "daemon/testing/simulated_lo_daemon.h"
#include "daemon/testing/wait.h"
#include "gtest/gtest.h"

extern char** environ;

namespace devmem {
namespace {

using ::absl::StatusCode;

UniqueFd Memfd() { return UniqueFd(::memfd_create("gpu-mem", MFD_CLOEXEC)); }

// A TCP socket on 127.0.0.1, port 0, listening.
UniqueFd PlainListener() {
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(
      ::bind(fd.get_unowned(), reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
  EXPECT_EQ(::listen(fd.get_unowned(), 16), 0);
  return fd;
}

uint16_t PortOf(int fd) {
  sockaddr_in a{};
  socklen_t len = sizeof(a);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  return ntohs(a.sin_port);
}

std::string BoundDevice(int fd) {
  char dev[IFNAMSIZ + 1] = {};
  socklen_t len = IFNAMSIZ;
  if (::getsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, dev, &len) != 0) return "?";
  return std::string(dev, strnlen(dev, IFNAMSIZ));
}

bool IsListening(int fd) {
  int v = 0;
  socklen_t len = sizeof(v);
  return ::getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &v, &len) == 0 && v == 1;
}

// True if a connection is waiting in `listener`'s accept queue.
bool HasPendingConnection(int listener) {
  pollfd p = {listener, POLLIN, 0};
  return ::poll(&p, 1, 0) == 1;
}

StatusCode CodeOf(const grpc::Status& s) {
  return static_cast<StatusCode>(s.error_code());
}

class IsolationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    static int n = 0;
    dir_ = absl::StrCat("/tmp/dmiso_", ::getpid(), "_", n++);
    Daemon::Options o;
    o.config.set_runtime_dir(dir_);
    o.config.add_allow_uids(::getuid());
    o.config.set_state_dir(
        absl::StrCat(std::getenv("TEST_TMPDIR"), "/state", n));
    // As root, let "nobody" in (sockets owned by its group, uid allowed), so
    // a process of another uid can reach the daemon and present A's token.
    if (::geteuid() == 0) {
      if (const passwd* pw = ::getpwnam("nobody")) {
        if (const group* gr = ::getgrgid(pw->pw_gid)) {
          nobody_uid_ = pw->pw_uid;
          o.config.set_socket_group(gr->gr_name);
          o.config.add_allow_uids(pw->pw_uid);
        }
      }
    }
    auto* p = o.config.add_nic_profiles();
    p->set_nic("lo");
    p->set_pool_queues(2);  // one queue for A's binding, one for B's
    ASSERT_TRUE(FinalizeConfig(&o.config, "isolation_test").ok());
    auto d = StartSimulatedLoDaemon(std::move(o));
    ASSERT_TRUE(d.ok()) << d.status();
    daemon_ = std::move(d->daemon);
    sim_ = d->sim;
    a_ = Open();
    b_ = Open();
    ASSERT_NE(a_, nullptr);
    ASSERT_NE(b_, nullptr);
    ASSERT_NE(a_->session_id(), b_->session_id());
  }
  void TearDown() override {
    a_.reset();
    b_.reset();
    if (daemon_) daemon_->Shutdown();
    ::rmdir(dir_.c_str());
  }

  std::unique_ptr<Session> Open() {
    auto s = Session::Open(dir_);
    EXPECT_TRUE(s.ok()) << s.status();
    return s.ok() ? std::move(*s) : nullptr;
  }

  uint32_t Rules() { return sim_->GetCounters(::if_nametoindex("lo"))->rules; }

  // A binding of one queue on lo for `s`.
  devmem::v1::Binding Bind(Session& s) {
    UniqueFd mem = Memfd();
    BindOptions bo;
    bo.nic = "lo";
    bo.queue_count = 1;
    auto b = s.BindRx(mem.get_unowned(), bo);
    EXPECT_TRUE(b.ok()) << b.status();
    return b.ok() ? *b : devmem::v1::Binding();
  }

  // The Listen RPC alone: a ticket of `s`, left unredeemed.
  devmem::v1::SocketResponse ListenTicket(Session& s, uint64_t binding = 0) {
    devmem::v1::ListenRequest req;
    req.set_session_token(std::string(s.session_token()));
    req.set_nic("lo");
    req.mutable_local()->set_ip("127.0.0.1");
    req.set_binding(binding);
    devmem::v1::SocketResponse resp;
    grpc::ClientContext ctx;
    grpc::Status st = s.stub()->Listen(&ctx, req, &resp);
    EXPECT_TRUE(st.ok()) << st.error_message();
    return resp;
  }

  std::string dir_;
  SimulatedNic* sim_ = nullptr;
  std::unique_ptr<Daemon> daemon_;
  std::unique_ptr<Session> a_;
  std::unique_ptr<Session> b_;
  uid_t nobody_uid_ = 0;  // 0: no foreign uid available
};

// PROTOCOL.md section 4: a ticket redeemed on another session gives the same
// NOT_FOUND as an unknown one, and stays redeemable by its own session.
TEST_F(IsolationTest, AnotherSessionCannotRedeemATicket) {
  devmem::v1::SocketResponse issued = ListenTicket(*a_);
  ASSERT_EQ(issued.ticket().size(), 32u);

  auto stolen = b_->Redeem(issued.ticket());
  ASSERT_EQ(stolen.status().code(), StatusCode::kNotFound) << stolen.status();
  // Indistinguishable from a ticket that never existed.
  const std::string unknown = "0123456789abcdef0123456789abcdef";
  auto never = b_->Redeem(unknown);
  ASSERT_EQ(never.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(
      absl::StrReplaceAll(stolen.status().message(), {{issued.ticket(), "T"}}),
      absl::StrReplaceAll(never.status().message(), {{unknown, "T"}}));
  // An Error frame does not break B's session.
  EXPECT_TRUE(b_->Ping().ok());

  // A's ticket is still there, with its socket.
  auto fd = a_->Redeem(issued.ticket());
  ASSERT_TRUE(fd.ok()) << fd.status();
  EXPECT_TRUE(IsListening(fd->get_unowned()));
  EXPECT_EQ(PortOf(fd->get_unowned()), issued.local().port());
  // Spent: single use, for A too.
  EXPECT_EQ(a_->Redeem(issued.ticket()).status().code(), StatusCode::kNotFound);
}

// The other direction of a ticket: a Deposit of B named in A's gRPC call.
TEST_F(IsolationTest, AnotherSessionCannotUseADepositTicket) {
  UniqueFd mem = Memfd();
  auto deposited = b_->Deposit(mem.get_unowned(), "b-memory");
  ASSERT_TRUE(deposited.ok()) << deposited.status();

  devmem::v1::BindRxRequest req;
  req.set_session_token(std::string(a_->session_token()));
  req.set_dmabuf_ticket(*deposited);
  req.set_nic("lo");
  req.set_queue_count(1);
  devmem::v1::BindResponse resp;
  {
    grpc::ClientContext ctx;
    grpc::Status st = a_->stub()->BindRx(&ctx, req, &resp);
    EXPECT_EQ(CodeOf(st), StatusCode::kNotFound) << st.error_message();
  }
  EXPECT_EQ(sim_->LiveBindings(), 0u);
  // Still B's to use.
  req.set_session_token(std::string(b_->session_token()));
  grpc::ClientContext ctx;
  grpc::Status st = b_->stub()->BindRx(&ctx, req, &resp);
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(sim_->LiveBindings(), 1u);
}

// PROTOCOL.md section 7: another session's binding handle is NOT_FOUND, like
// an unknown one, for ReleaseBinding and Steer; A's binding and rule stay.
TEST_F(IsolationTest, AnotherSessionCannotReleaseOrSteerOnABinding) {
  const devmem::v1::Binding a_binding = Bind(*a_);
  ASSERT_NE(a_binding.handle(), 0u);
  ListenOptions lo;
  lo.ip = "127.0.0.1";
  lo.binding = a_binding.handle();
  auto a_listener = a_->Listen(lo);
  ASSERT_TRUE(a_listener.ok()) << a_listener.status();
  const uint32_t a_rule = a_listener->info.rule().location();
  ASSERT_EQ(Rules(), 1u);

  auto released = b_->ReleaseBinding(a_binding.handle());
  ASSERT_EQ(released.status().code(), StatusCode::kNotFound)
      << released.status();
  const uint64_t never = a_binding.handle() + 1000;
  auto unknown = b_->ReleaseBinding(never);
  ASSERT_EQ(unknown.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(
      absl::StrReplaceAll(
          released.status().message(),
          {{absl::StrCat("binding ", a_binding.handle()), "binding N"}}),
      absl::StrReplaceAll(unknown.status().message(),
                          {{absl::StrCat("binding ", never), "binding N"}}));

  // B steers a socket of its own onto A's binding.
  UniqueFd own = PlainListener();
  auto steered = b_->Steer(own.get_unowned(), a_binding.handle());
  ASSERT_EQ(steered.status().code(), StatusCode::kNotFound) << steered.status();
  // Refused before anything was done to B's socket (no SO_BINDTODEVICE).
  EXPECT_EQ(BoundDevice(own.get_unowned()), "");

  // A's binding and rule are intact and A can still use and release it.
  EXPECT_EQ(sim_->LiveBindings(), 1u);
  EXPECT_EQ(Rules(), 1u);
  auto installed = sim_->GetRule(::if_nametoindex("lo"), a_rule);
  ASSERT_TRUE(installed.ok()) << installed.status();
  EXPECT_EQ(installed->match.dst_port, a_listener->info.local().port());
  UniqueFd a_own = PlainListener();
  auto a_steered = a_->Steer(a_own.get_unowned(), a_binding.handle());
  ASSERT_TRUE(a_steered.ok()) << a_steered.status();
  EXPECT_EQ(Rules(), 2u);
  auto a_released = a_->ReleaseBinding(a_binding.handle());
  ASSERT_TRUE(a_released.ok()) << a_released.status();
  EXPECT_EQ(*a_released, 2u);
  EXPECT_EQ(sim_->LiveBindings(), 0u);
}

// Listen and Connect naming A's binding from B: NOT_FOUND, no socket made, no
// SYN sent, no rule installed, no ticket left behind.
TEST_F(IsolationTest, ListenOrConnectOnAnotherSessionsBindingIsRefused) {
  const devmem::v1::Binding a_binding = Bind(*a_);
  ASSERT_NE(a_binding.handle(), 0u);
  UniqueFd target = PlainListener();
  const uint16_t target_port = PortOf(target.get_unowned());

  for (const std::string& nic : {std::string(), std::string("lo")}) {
    SCOPED_TRACE(nic.empty() ? "nic from the binding" : "nic lo named");
    ListenOptions lo;
    lo.nic = nic;
    lo.ip = "127.0.0.1";
    lo.binding = a_binding.handle();
    EXPECT_EQ(b_->Listen(lo).status().code(), StatusCode::kNotFound);
    ConnectOptions co;
    co.nic = nic;
    co.remote = HostPort{"127.0.0.1", target_port};
    co.binding = a_binding.handle();
    EXPECT_EQ(b_->Connect(co).status().code(), StatusCode::kNotFound);
  }
  EXPECT_FALSE(HasPendingConnection(target.get_unowned()))
      << "B's refused Connect dialed anyway";
  EXPECT_EQ(Rules(), 0u);
  auto status = b_->GetStatus();
  ASSERT_TRUE(status.ok()) << status.status();
  EXPECT_EQ(status->pending_tickets(), 0u);

  // The same calls from A work.
  ListenOptions lo;
  lo.ip = "127.0.0.1";
  lo.binding = a_binding.handle();
  auto listener = a_->Listen(lo);
  ASSERT_TRUE(listener.ok()) << listener.status();
  ConnectOptions co;
  co.remote = HostPort{"127.0.0.1", target_port};
  co.binding = a_binding.handle();
  auto dialed = a_->Connect(co);
  ASSERT_TRUE(dialed.ok()) << dialed.status();
  EXPECT_EQ(Rules(), 2u);
}

// PROTOCOL.md section 5: a token presented by a peer of another uid is
// PERMISSION_DENIED (an unknown token is UNAUTHENTICATED), and nobody's own
// session cannot redeem A's ticket.
TEST_F(IsolationTest, TokenFromAnotherUidIsPermissionDenied) {
  if (::geteuid() != 0) {
    GTEST_SKIP() << "needs root: the helper setuid()s to nobody";
  }
  if (nobody_uid_ == 0) GTEST_SKIP() << "no user \"nobody\" on this host";
  // nobody must reach the sockets through the runtime directory.
  ASSERT_EQ(::chmod(dir_.c_str(), 0755), 0);
  const devmem::v1::Binding a_binding = Bind(*a_);
  ASSERT_NE(a_binding.handle(), 0u);
  devmem::v1::SocketResponse issued = ListenTicket(*a_);

  int out[2];
  ASSERT_EQ(::pipe2(out, O_CLOEXEC), 0);
  UniqueFd out_r(out[0]);
  UniqueFd out_w(out[1]);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, out_w.get_unowned(), STDOUT_FILENO);
  std::vector<std::string> args = {"tests/isolation/foreign_uid_client", dir_,
                                   std::string(a_->session_token()),
                                   absl::StrCat(a_binding.handle()),
                                   issued.ticket()};
  std::vector<char*> argv;
  for (std::string& s : args) argv.push_back(s.data());
  argv.push_back(nullptr);
  pid_t pid = -1;
  // posix_spawn: no fork handlers run in this gRPC-using process.
  ASSERT_EQ(::posix_spawn(&pid, argv[0], &fa, nullptr, argv.data(), environ),
            0);
  posix_spawn_file_actions_destroy(&fa);
  out_w.Reset();
  std::string text;
  const absl::Time deadline = absl::Now() + absl::Seconds(60);
  for (;;) {
    const int64_t ms = absl::ToInt64Milliseconds(deadline - absl::Now());
    ASSERT_GT(ms, 0) << "foreign_uid_client did not finish; output:\n" << text;
    pollfd p = {out_r.get_unowned(), POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(ms)) <= 0) continue;
    char buf[1024];
    ssize_t n = ::read(out_r.get_unowned(), buf, sizeof(buf));
    if (n <= 0) break;
    text.append(buf, static_cast<size_t>(n));
  }
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
      << "foreign_uid_client status " << status << ", output:\n"
      << text;

  // "<name> <code> <message>" per line.
  std::map<std::string, int> code;
  std::map<std::string, std::string> message;
  for (absl::string_view line : absl::StrSplit(text, '\n', absl::SkipEmpty())) {
    std::vector<std::string> parts =
        absl::StrSplit(line, absl::MaxSplits(' ', 2));
    ASSERT_GE(parts.size(), 2u) << line;
    ASSERT_TRUE(absl::SimpleAtoi(parts[1], &code[parts[0]])) << line;
    message[parts[0]] = parts.size() > 2 ? parts[2] : "";
  }
  SCOPED_TRACE(text);
  // nobody is an allowed peer, seen as itself: the refusals below are about
  // the token, not about the peer.
  ASSERT_EQ(code.count("status"), 1u);
  EXPECT_EQ(code["status"], 0);
  EXPECT_EQ(message["status"], absl::StrCat(nobody_uid_));
  EXPECT_EQ(code["listen"], static_cast<int>(StatusCode::kPermissionDenied));
  EXPECT_EQ(code["connect"], static_cast<int>(StatusCode::kPermissionDenied));
  EXPECT_EQ(code["release"], static_cast<int>(StatusCode::kPermissionDenied));
  EXPECT_EQ(code["steer"], static_cast<int>(StatusCode::kPermissionDenied));
  EXPECT_EQ(code["unknown_token"],
            static_cast<int>(StatusCode::kUnauthenticated));
  EXPECT_EQ(code["redeem"], static_cast<int>(StatusCode::kNotFound));

  // A's objects are untouched: binding, ticket, and A can use its token.
  EXPECT_EQ(sim_->LiveBindings(), 1u);
  EXPECT_EQ(Rules(), 0u);
  auto fd = a_->Redeem(issued.ticket());
  ASSERT_TRUE(fd.ok()) << fd.status();
  EXPECT_TRUE(IsListening(fd->get_unowned()));
  ListenOptions lo;
  lo.ip = "127.0.0.1";
  lo.binding = a_binding.handle();
  EXPECT_TRUE(a_->Listen(lo).ok());
  EXPECT_EQ(Rules(), 1u);
}

// PROTOCOL.md section 5: closing A releases what A owns and nothing of B's.
TEST_F(IsolationTest, ClosingOneSessionReleasesOnlyItsOwnLeases) {
  const uint32_t lo_index = ::if_nametoindex("lo");
  const devmem::v1::Binding a_binding = Bind(*a_);
  const devmem::v1::Binding b_binding = Bind(*b_);
  ASSERT_NE(a_binding.handle(), 0u);
  ASSERT_NE(b_binding.handle(), 0u);
  ASSERT_EQ(a_binding.queues_size(), 1);
  ASSERT_EQ(b_binding.queues_size(), 1);
  ASSERT_NE(a_binding.queues(0), b_binding.queues(0));

  ListenOptions lo;
  lo.ip = "127.0.0.1";
  lo.binding = a_binding.handle();
  auto a_listener = a_->Listen(lo);
  ASSERT_TRUE(a_listener.ok()) << a_listener.status();
  ListenTicket(*a_);  // left unredeemed: closed with A
  lo.binding = b_binding.handle();
  auto b_listener = b_->Listen(lo);
  ASSERT_TRUE(b_listener.ok()) << b_listener.status();
  ConnectOptions co;
  co.remote = HostPort{"127.0.0.1",
                       static_cast<uint16_t>(b_listener->info.local().port())};
  co.binding = b_binding.handle();
  auto b_dialed = b_->Connect(co);
  ASSERT_TRUE(b_dialed.ok()) << b_dialed.status();
  devmem::v1::SocketResponse b_ticket = ListenTicket(*b_);
  ASSERT_EQ(Rules(), 3u);
  ASSERT_EQ(sim_->LiveBindings(), 2u);

  a_.reset();  // A's session socket closes: the lease anchor is gone.
  ASSERT_TRUE(WaitUntil([&] {
    return sim_->LiveBindings() == 1u && Rules() == 2u;
  })) << "bindings "
      << sim_->LiveBindings() << ", rules " << Rules();

  // A's rule is gone, B's two are installed where they were.
  EXPECT_FALSE(
      sim_->GetRule(lo_index, a_listener->info.rule().location()).ok());
  auto b_rule = sim_->GetRule(lo_index, b_listener->info.rule().location());
  ASSERT_TRUE(b_rule.ok()) << b_rule.status();
  EXPECT_EQ(b_rule->match.dst_port, b_listener->info.local().port());
  auto b_rule5 = sim_->GetRule(lo_index, b_dialed->info.rule().location());
  ASSERT_TRUE(b_rule5.ok()) << b_rule5.status();
  EXPECT_TRUE(b_rule5->match.IsFiveTuple());

  // The daemon's view: one binding, two rules; A's queue is back in the pool.
  auto nic = b_->GetNicState({"lo"});
  ASSERT_TRUE(nic.ok()) << nic.status();
  ASSERT_EQ(nic->nics_size(), 1);
  EXPECT_EQ(nic->nics(0).bindings(), 1u);
  EXPECT_EQ(nic->nics(0).rules(), 2u);
  ASSERT_EQ(nic->nics(0).free_queues_size(), 1);
  EXPECT_EQ(nic->nics(0).free_queues(0), a_binding.queues(0));
  auto status = b_->GetStatus();
  ASSERT_TRUE(status.ok());
  EXPECT_EQ(status->sessions(), 1u);
  EXPECT_EQ(status->pending_tickets(), 1u);  // B's; A's was closed

  // B's session, ticket, sockets and binding all still work.
  EXPECT_TRUE(b_->Ping().ok());
  auto b_fd = b_->Redeem(b_ticket.ticket());
  ASSERT_TRUE(b_fd.ok()) << b_fd.status();
  EXPECT_TRUE(IsListening(b_fd->get_unowned()));
  UniqueFd peer(
      ::accept4(b_listener->fd.get_unowned(), nullptr, nullptr, SOCK_CLOEXEC));
  EXPECT_TRUE(peer.valid()) << "B's Connect peer is not in B's listener";
  ASSERT_EQ(::write(b_dialed->fd.get_unowned(), "b", 1), 1);
  char c = 0;
  EXPECT_EQ(::read(peer.get_unowned(), &c, 1), 1);
  EXPECT_EQ(c, 'b');
  auto again = b_->Listen(lo);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(Rules(), 3u);
  auto removed = b_->ReleaseBinding(b_binding.handle());
  ASSERT_TRUE(removed.ok()) << removed.status();
  EXPECT_EQ(*removed, 3u);
  EXPECT_EQ(sim_->LiveBindings(), 0u);
  EXPECT_EQ(Rules(), 0u);
}

// Nothing B gets back names anything of A's: no token, ticket or rule of A
// appears in any answer B receives (success or error), B's handles and
// queues are its own, and the per-NIC and status answers carry counts only
// (checked on the message schema, so a future per-lease field fails here).
TEST_F(IsolationTest, NoAnswerToOneSessionShowsAnothersLeases) {
  const devmem::v1::Binding a_binding = Bind(*a_);
  ListenOptions lo;
  lo.ip = "127.0.0.1";
  lo.binding = a_binding.handle();
  auto a_listener = a_->Listen(lo);
  ASSERT_TRUE(a_listener.ok()) << a_listener.status();
  devmem::v1::SocketResponse a_ticket = ListenTicket(*a_);
  UniqueFd a_mem = Memfd();
  auto a_deposit = a_->Deposit(a_mem.get_unowned(), "a-memory");
  ASSERT_TRUE(a_deposit.ok());
  const std::string a_token(a_->session_token());

  std::string seen;  // everything B is told
  auto note_status = [&](const absl::Status& s,
                         const std::string& sent = std::string()) {
    EXPECT_FALSE(s.ok());
    std::string text = s.ToString();
    if (!sent.empty()) text = absl::StrReplaceAll(text, {{sent, "<sent>"}});
    seen += text + "\n";
  };
  auto st = b_->GetStatus();
  ASSERT_TRUE(st.ok());
  seen += st->DebugString();
  auto nics = b_->GetNicState();
  ASSERT_TRUE(nics.ok());
  seen += nics->DebugString();
  auto inv = b_->GetInventory();
  ASSERT_TRUE(inv.ok());
  seen += inv->DebugString();
  const devmem::v1::Binding b_binding = Bind(*b_);
  seen += b_binding.DebugString();
  lo.binding = b_binding.handle();
  auto b_listener = b_->Listen(lo);
  ASSERT_TRUE(b_listener.ok());
  seen += b_listener->info.DebugString();
  note_status(b_->ReleaseBinding(a_binding.handle()).status());
  // An error may echo the ticket B sent (B knew it already): left out.
  note_status(b_->Redeem(a_ticket.ticket()).status(), a_ticket.ticket());
  note_status(b_->Redeem(*a_deposit).status(), *a_deposit);
  lo.binding = a_binding.handle();
  note_status(b_->Listen(lo).status());
  UniqueFd own = PlainListener();
  note_status(b_->Steer(own.get_unowned(), a_binding.handle()).status());

  for (const std::string& secret :
       {a_token, a_ticket.ticket(), *a_deposit,
        absl::StrCat("dst_port: ", a_listener->info.local().port()),
        absl::StrCat("location: ", a_listener->info.rule().location())}) {
    EXPECT_EQ(seen.find(secret), std::string::npos)
        << "B was told \"" << secret << "\" of A's:\n"
        << seen;
  }
  EXPECT_NE(b_binding.handle(), a_binding.handle());
  ASSERT_EQ(b_binding.queues_size(), 1);
  EXPECT_NE(b_binding.queues(0), a_binding.queues(0));
  EXPECT_EQ(b_binding.rules(), 0u);
  EXPECT_NE(b_listener->info.rule().location(),
            a_listener->info.rule().location());
  // Releasing B's binding reports B's rule only.
  auto removed = b_->ReleaseBinding(b_binding.handle());
  ASSERT_TRUE(removed.ok());
  EXPECT_EQ(*removed, 1u);
  EXPECT_EQ(Rules(), 1u);

  // Answers that are not about one session hold no per-lease messages or
  // secrets: no Binding or FlowRule, no ticket or token string, no handle
  // (counts such as pending_tickets are aggregates over all sessions).
  for (const google::protobuf::Descriptor* d :
       {devmem::v1::GetStatusResponse::descriptor(),
        devmem::v1::GetNicStateResponse::descriptor(),
        devmem::v1::NicState::descriptor(),
        devmem::v1::GetInventoryResponse::descriptor()}) {
    for (int i = 0; i < d->field_count(); ++i) {
      const google::protobuf::FieldDescriptor* f = d->field(i);
      SCOPED_TRACE(f->full_name());
      if (f->message_type() != nullptr) {
        EXPECT_NE(f->message_type()->full_name(), "devmem.v1.Binding");
        EXPECT_NE(f->message_type()->full_name(), "devmem.v1.FlowRule");
      }
      if (f->type() == google::protobuf::FieldDescriptor::TYPE_STRING) {
        EXPECT_EQ(f->name().find("ticket"), std::string::npos);
        EXPECT_EQ(f->name().find("token"), std::string::npos);
      }
      EXPECT_EQ(f->name().find("handle"), std::string::npos);
    }
  }
}

}  // namespace
}  // namespace devmem
