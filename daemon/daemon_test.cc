// In-process tests of the assembled daemon over its real Unix sockets: gRPC
// with peer credentials, tickets redeemed on the session socket,
// SO_BINDTODEVICE.
#include "daemon/daemon.h"

#include <arpa/inet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>

#include "daemon/config.h"
#include "daemon/nic/simulated/simulated_nic.h"
#include "daemon/session/testing/session_test_client.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kernel/scm_rights.h"
#include "kernel/testing/fake_nic_inventory.h"
#include "proto/devmem/v1/devmem.grpc.pb.h"
#include "proto/devmem/v1/frame.h"

namespace devmem {
namespace {

using ::testing::HasSubstr;
using F = devmem::v1::SessionFrame;

std::string RuntimeDir() {
  static int n = 0;
  return "/tmp/devmemd_dt_" + std::to_string(getpid()) + "_" +
         std::to_string(n++);
}

absl::StatusOr<std::unique_ptr<Daemon>> StartDaemon(const std::string& dir,
                                                    uint32_t allow_uid) {
  Daemon::Options o;
  o.config.set_runtime_dir(dir);
  o.config.set_state_dir(dir + "/state");
  o.config.add_allow_uids(allow_uid);
  o.config.set_ticket_ttl_ms(5000);
  EXPECT_TRUE(FinalizeConfig(&o.config, "test").ok());
  o.config_source = "test.textproto";
  o.inventory = std::make_unique<FakeNicInventory>(LoopbackOnly());
  auto sim = SimulatedNic::Create({});
  EXPECT_TRUE(sim.ok()) << sim.status();
  o.nic_control = std::move(*sim);
  o.static_status.set_version("test");
  return Daemon::Start(std::move(o));
}

// A session that has already read its Hello.
class SessionConn : public TestSessionClient {
 public:
  explicit SessionConn(const std::string& path) : TestSessionClient(path) {
    EXPECT_TRUE(ReadHello());
  }
};

class DaemonTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = RuntimeDir();
    auto d = StartDaemon(dir_, getuid());
    ASSERT_TRUE(d.ok()) << d.status();
    daemon_ = std::move(*d);
    stub_ = devmem::v1::Devmem::NewStub(
        grpc::CreateChannel("unix:" + daemon_->grpc_socket_path(),
                            grpc::InsecureChannelCredentials()));
  }
  void TearDown() override {
    daemon_.reset();
    ::rmdir(dir_.c_str());
  }
  grpc::Status Listen(const std::string& token, const std::string& nic,
                      const std::string& ip, devmem::v1::SocketResponse* resp) {
    grpc::ClientContext ctx;
    devmem::v1::ListenRequest req;
    req.set_session_token(token);
    req.set_nic(nic);
    req.mutable_local()->set_ip(ip);
    return stub_->Listen(&ctx, req, resp);
  }

  std::string dir_;
  std::unique_ptr<Daemon> daemon_;
  std::unique_ptr<devmem::v1::Devmem::Stub> stub_;
};

TEST_F(DaemonTest, SocketsAreMode0660) {
  struct stat st;
  ASSERT_EQ(::stat(daemon_->grpc_socket_path().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0660u);
  ASSERT_EQ(::stat(daemon_->session_socket_path().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0660u);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
}

TEST_F(DaemonTest, StatusSeesPeerCredentials) {
  grpc::ClientContext ctx;
  devmem::v1::GetStatusResponse resp;
  auto s = stub_->GetStatus(&ctx, {}, &resp);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(resp.peer_uid(), getuid());
  EXPECT_EQ(resp.backend(), "fake");
  EXPECT_EQ(resp.version(), "test");
}

TEST_F(DaemonTest, InventoryAndUnknownNic) {
  grpc::ClientContext ctx;
  devmem::v1::GetInventoryResponse resp;
  ASSERT_TRUE(stub_->GetInventory(&ctx, {}, &resp).ok());
  ASSERT_EQ(resp.nics_size(), 1);
  EXPECT_EQ(resp.nics(0).name(), "lo");
  EXPECT_FALSE(resp.nics(0).devmem_capable());

  grpc::ClientContext ctx2;
  devmem::v1::GetInventoryRequest req;
  req.add_nic_names("eth99");
  auto s = stub_->GetInventory(&ctx2, req, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_THAT(s.error_message(), HasSubstr("lo"));
}

TEST_F(DaemonTest, ListenHandsOverASocketBoundToTheNic) {
  SessionConn sess(daemon_->session_socket_path());
  devmem::v1::SocketResponse resp;
  auto s = Listen(sess.hello().session_token(), "lo", "127.0.0.1", &resp);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(resp.ticket().size(), 32u);
  EXPECT_EQ(resp.local().ip(), "127.0.0.1");
  EXPECT_NE(resp.local().port(), 0u);
  EXPECT_EQ(resp.ifindex(), ::if_nametoindex("lo"));
  auto fd = sess.Redeem(resp.ticket());
  ASSERT_TRUE(fd.ok()) << fd.status();
  char dev[IFNAMSIZ] = {};
  socklen_t len = sizeof(dev);
  ASSERT_EQ(
      ::getsockopt(fd->get_unowned(), SOL_SOCKET, SO_BINDTODEVICE, dev, &len),
      0);
  EXPECT_STREQ(dev, "lo");
  int listening = 0;
  len = sizeof(listening);
  ::getsockopt(fd->get_unowned(), SOL_SOCKET, SO_ACCEPTCONN, &listening, &len);
  EXPECT_EQ(listening, 1);
  // The daemon's Connect RPC reaches it.
  grpc::ClientContext ctx;
  devmem::v1::ConnectRequest creq;
  creq.set_session_token(sess.hello().session_token());
  creq.set_nic("lo");
  creq.mutable_remote()->set_ip("127.0.0.1");
  creq.mutable_remote()->set_port(resp.local().port());
  devmem::v1::SocketResponse cresp;
  ASSERT_TRUE(stub_->Connect(&ctx, creq, &cresp).ok());
  EXPECT_EQ(cresp.remote().port(), resp.local().port());
  auto cfd = sess.Redeem(cresp.ticket());
  ASSERT_TRUE(cfd.ok());
  UniqueFd acc(::accept4(fd->get_unowned(), nullptr, nullptr, SOCK_CLOEXEC));
  ASSERT_TRUE(acc.valid());
  ASSERT_EQ(::send(cfd->get_unowned(), "hello", 5, 0), 5);
  char buf[8] = {};
  ASSERT_EQ(::recv(acc.get_unowned(), buf, 5, MSG_WAITALL), 5);
  EXPECT_STREQ(buf, "hello");
}

TEST_F(DaemonTest, ListenIpv6) {
  SessionConn sess(daemon_->session_socket_path());
  devmem::v1::SocketResponse resp;
  auto s = Listen(sess.hello().session_token(), "lo", "::1", &resp);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(resp.local().ip(), "::1");
  EXPECT_TRUE(sess.Redeem(resp.ticket()).ok());
}

TEST_F(DaemonTest, BadRequests) {
  SessionConn sess(daemon_->session_socket_path());
  const std::string token = sess.hello().session_token();
  devmem::v1::SocketResponse resp;
  auto s = Listen(token, "eth99", "127.0.0.1", &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_THAT(s.error_message(), HasSubstr("NICs on this host: lo"));
  EXPECT_EQ(Listen("", "lo", "", &resp).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(
      Listen("0123456789abcdef0123456789abcdef", "lo", "", &resp).error_code(),
      grpc::StatusCode::UNAUTHENTICATED);
  s = Listen(token, "lo", "not-an-ip", &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("not-an-ip"));
  EXPECT_EQ(Listen(token, "", "", &resp).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(daemon_->sessions().pending_tickets(), 0u);
}

TEST_F(DaemonTest, ConnectRefusedIsUnavailable) {
  SessionConn sess(daemon_->session_socket_path());
  // Find a port nobody listens on: bind, note it, close.
  UniqueFd tmp(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  struct sockaddr_in a = {};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(a);
  ASSERT_EQ(
      ::bind(tmp.get_unowned(), reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
  ::getsockname(tmp.get_unowned(), reinterpret_cast<sockaddr*>(&a), &len);
  tmp.Reset();
  grpc::ClientContext ctx;
  devmem::v1::ConnectRequest creq;
  creq.set_session_token(sess.hello().session_token());
  creq.set_nic("lo");
  creq.mutable_remote()->set_ip("127.0.0.1");
  creq.mutable_remote()->set_port(ntohs(a.sin_port));
  devmem::v1::SocketResponse cresp;
  auto s = stub_->Connect(&ctx, creq, &cresp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_THAT(s.error_message(), HasSubstr("refused"));
}

TEST_F(DaemonTest, TicketOfAnotherSessionIsRejected) {
  SessionConn a(daemon_->session_socket_path());
  SessionConn b(daemon_->session_socket_path());
  devmem::v1::SocketResponse resp;
  ASSERT_TRUE(Listen(a.hello().session_token(), "lo", "127.0.0.1", &resp).ok());
  auto stolen = b.Redeem(resp.ticket());
  EXPECT_EQ(stolen.status().code(), absl::StatusCode::kNotFound);
  auto mine = a.Redeem(resp.ticket());
  EXPECT_TRUE(mine.ok());
  auto again = a.Redeem(resp.ticket());
  EXPECT_EQ(again.status().code(), absl::StatusCode::kNotFound);
}

TEST_F(DaemonTest, SecondDaemonOnSameDirRefuses) {
  auto second = StartDaemon(dir_, getuid());
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(second.status().message(), HasSubstr("another devmemd"));
  // The first one still works.
  grpc::ClientContext ctx;
  devmem::v1::GetStatusResponse resp;
  EXPECT_TRUE(stub_->GetStatus(&ctx, {}, &resp).ok());
}

TEST_F(DaemonTest, OversizedRequestIsRefused) {
  grpc::ClientContext ctx;
  devmem::v1::ListenRequest req;
  req.set_nic(std::string(kMaxGrpcRequestBytes + 1, 'x'));
  devmem::v1::SocketResponse resp;
  grpc::Status s = stub_->Listen(&ctx, req, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED)
      << s.error_message();
  // The daemon is fine.
  grpc::ClientContext ctx2;
  devmem::v1::GetStatusResponse st;
  EXPECT_TRUE(stub_->GetStatus(&ctx2, {}, &st).ok());
}

TEST_F(DaemonTest, SecondDaemonOnSameStateDirRefuses) {
  // Other sockets, same journal: refused before anything is touched.
  Daemon::Options o;
  o.config.set_runtime_dir(RuntimeDir());
  o.config.set_state_dir(dir_ + "/state");
  o.config.add_allow_uids(getuid());
  ASSERT_TRUE(FinalizeConfig(&o.config, "test").ok());
  o.inventory = std::make_unique<FakeNicInventory>(LoopbackOnly());
  o.nic_control = std::move(*SimulatedNic::Create({}));
  auto second = Daemon::Start(std::move(o));
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(second.status().message(),
              HasSubstr(absl::StrCat("another devmemd (pid ", getpid(),
                                     ") uses the state directory")));
}

TEST_F(DaemonTest, ShutdownRemovesSockets) {
  const std::string g = daemon_->grpc_socket_path();
  const std::string s = daemon_->session_socket_path();
  daemon_->Shutdown();
  EXPECT_NE(::access(g.c_str(), F_OK), 0);
  EXPECT_NE(::access(s.c_str(), F_OK), 0);
}

TEST(DaemonDenyTest, PeerNotAllowedGetsPermissionDenied) {
  const std::string dir = RuntimeDir();
  auto d = StartDaemon(dir, getuid() + 4242);
  ASSERT_TRUE(d.ok()) << d.status();
  auto stub = devmem::v1::Devmem::NewStub(grpc::CreateChannel(
      "unix:" + (*d)->grpc_socket_path(), grpc::InsecureChannelCredentials()));
  grpc::ClientContext ctx;
  devmem::v1::GetStatusResponse resp;
  auto s = stub->GetStatus(&ctx, {}, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(s.error_message(), HasSubstr("allow_uids"));
  grpc::ClientContext ctx2;
  devmem::v1::GetInventoryResponse inv;
  EXPECT_EQ(stub->GetInventory(&ctx2, {}, &inv).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ((*d)->sessions().session_count(), 0u);
  d->reset();
  ::rmdir(dir.c_str());
}

}  // namespace
}  // namespace devmem
