// docs/PROTOCOL.md, checked the way a client written from the document alone
// would see devmemd: raw session frames (TestSessionClient) and raw gRPC
// requests, against the in-process daemon on a simulated devmem NIC over lo
// whose bindings have anchors (anchor files, as `devmemd
// --nic_backend=simulated` gives them). Each test is one promise of the
// document that an independent client found broken (issue 11), or one
// behaviour the document now states because a client needs to know it.
#include <arpa/inet.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "daemon/config.h"
#include "daemon/daemon.h"
#include "daemon/nic/simulated/simulated_nic.h"
#include "daemon/session/testing/session_test_client.h"
#include "daemon/testing/simulated_lo_daemon.h"
#include "proto/devmem/v1/devmem.grpc.pb.h"

namespace devmem {
namespace {

using ::absl::StatusCode;
using ::testing::HasSubstr;
using Frame = devmem::v1::SessionFrame;

UniqueFd Memfd() { return UniqueFd(memfd_create("gpu-mem", MFD_CLOEXEC)); }

// True once every copy of the pipe's write end is closed (devmemd closes
// its copies right after its answer, so wait a little for it).
bool WriterClosedSoon(const TestPipe& pipe) {
  struct pollfd p = {pipe.r.get_unowned(), POLLIN, 0};
  if (poll(&p, 1, 5000) != 1) return false;
  return pipe.WriterClosed();
}

StatusCode CodeOf(const grpc::Status& s) {
  return static_cast<StatusCode>(s.error_code());
}

// A TCP listener on 127.0.0.1, port 0, not made by devmemd.
UniqueFd PlainListener(uint16_t* port) {
  UniqueFd fd(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(bind(fd.get_unowned(), reinterpret_cast<sockaddr*>(&a), sizeof(a)),
            0);
  EXPECT_EQ(listen(fd.get_unowned(), 16), 0);
  socklen_t len = sizeof(a);
  getsockname(fd.get_unowned(), reinterpret_cast<sockaddr*>(&a), &len);
  *port = ntohs(a.sin_port);
  return fd;
}

class ProtocolConformanceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    static int n = 0;
    const std::string tmp = std::getenv("TEST_TMPDIR");
    dir_ = absl::StrCat("/tmp/devmemd_pc_", getpid(), "_", n);
    Daemon::Options o;
    o.config.set_runtime_dir(dir_);
    o.config.add_allow_uids(getuid());
    // RestoreNic is an admin call; the test's uid is the admin.
    o.config.add_admin_uids(getuid());
    o.config.set_state_dir(absl::StrCat(tmp, "/state", n));
    // Room for two frames of fds (RedeemMany, DepositMany), and a known
    // limit to exceed.
    o.config.set_max_tickets_per_session(kTicketLimit);
    auto* p = o.config.add_nic_profiles();
    p->set_nic("lo");
    p->set_pool_queues(2);
    ASSERT_TRUE(FinalizeConfig(&o.config, "test").ok());
    auto d =
        StartSimulatedLoDaemon(std::move(o), absl::StrCat(tmp, "/simnic", n++));
    ASSERT_TRUE(d.ok()) << d.status();
    daemon_ = std::move(d->daemon);
    sim_ = d->sim;
    stub_ = devmem::v1::Devmem::NewStub(
        grpc::CreateChannel(absl::StrCat("unix:", dir_, "/grpc.sock"),
                            grpc::InsecureChannelCredentials()));
    client_ = std::make_unique<TestSessionClient>(dir_ + "/session.sock");
    ASSERT_TRUE(client_->ReadHello());
    ASSERT_EQ(client_->hello().code(), 0) << client_->hello().message();
    token_ = client_->hello().session_token();
  }
  void TearDown() override {
    client_.reset();
    if (daemon_) daemon_->Shutdown();
    rmdir(dir_.c_str());
  }

  // Deposit{label} with `fd`: the Deposited ticket.
  std::string Deposit(int fd, const std::string& label = "dmabuf") {
    Frame f;
    f.mutable_deposit()->set_label(label);
    client_->Send(f, {fd});
    auto r = client_->Read();
    EXPECT_TRUE(r.has_value() && r->body_case() == Frame::kDeposited)
        << (r ? r->DebugString() : "no answer");
    return r && r->has_deposited() ? r->deposited().ticket() : "";
  }

  // BindRx of a fresh memfd on lo; the anchor ticket stays unredeemed.
  devmem::v1::BindResponse Bind(uint32_t queues = 1) {
    UniqueFd mem = Memfd();
    devmem::v1::BindRxRequest req;
    req.set_session_token(token_);
    req.set_dmabuf_ticket(Deposit(mem.get_unowned()));
    req.set_nic("lo");
    req.set_queue_count(queues);
    devmem::v1::BindResponse resp;
    grpc::ClientContext ctx;
    grpc::Status st = stub_->BindRx(&ctx, req, &resp);
    EXPECT_TRUE(st.ok()) << st.error_message();
    return resp;
  }

  grpc::Status Release(uint64_t handle) {
    devmem::v1::ReleaseBindingRequest req;
    req.set_session_token(token_);
    req.set_binding(handle);
    devmem::v1::ReleaseBindingResponse resp;
    grpc::ClientContext ctx;
    return stub_->ReleaseBinding(&ctx, req, &resp);
  }

  devmem::v1::NicState NicState() {
    devmem::v1::GetNicStateRequest req;
    req.add_nics("lo");
    devmem::v1::GetNicStateResponse resp;
    grpc::ClientContext ctx;
    EXPECT_TRUE(stub_->GetNicState(&ctx, req, &resp).ok());
    return resp.nics_size() == 1 ? resp.nics(0) : devmem::v1::NicState();
  }

  grpc::Status Restore(devmem::v1::RestoreNicResponse* resp) {
    devmem::v1::RestoreNicRequest req;
    req.set_nic("lo");
    grpc::ClientContext ctx;
    return stub_->RestoreNic(&ctx, req, resp);
  }

  // ReturnAnchor{handle} with `fd`: the answer frame.
  std::optional<Frame> ReturnAnchor(uint64_t handle, int fd) {
    Frame f;
    f.mutable_return_anchor()->set_handle(handle);
    client_->Send(f, {fd});
    return client_->Read();
  }

  bool Pings() {
    Frame f;
    f.mutable_ping()->set_nonce(42);
    client_->Send(f);
    auto r = client_->Read();
    return r.has_value() && r->has_pong() && r->pong().nonce() == 42;
  }

  static constexpr uint32_t kTicketLimit = 300;
  std::string dir_;
  SimulatedNic* sim_ = nullptr;
  std::unique_ptr<Daemon> daemon_;
  std::unique_ptr<devmem::v1::Devmem::Stub> stub_;
  std::unique_ptr<TestSessionClient> client_;
  std::string token_;
};

// Defect 1: the 5-tuple of a Connect without a local address carries the
// address the socket really has, not an empty one.
TEST_F(ProtocolConformanceTest, ConnectWithoutLocalAddressSteersTheRealOne) {
  const devmem::v1::BindResponse bound = Bind();
  uint16_t port = 0;
  UniqueFd server = PlainListener(&port);
  devmem::v1::ConnectRequest req;
  req.set_session_token(token_);
  req.set_binding(bound.binding().handle());
  req.mutable_remote()->set_ip("127.0.0.1");
  req.mutable_remote()->set_port(port);
  devmem::v1::SocketResponse resp;
  grpc::ClientContext ctx;
  grpc::Status st = stub_->Connect(&ctx, req, &resp);
  ASSERT_TRUE(st.ok()) << st.error_message();
  const devmem::v1::FlowRule& rule = resp.rule();
  EXPECT_TRUE(rule.five_tuple());
  EXPECT_EQ(rule.dst_ip(), "127.0.0.1");
  EXPECT_EQ(rule.src_ip(), "127.0.0.1");
  EXPECT_EQ(rule.src_port(), port);
  // The rule is the socket's own flow: getsockname on the handed fd.
  auto fd = client_->Redeem(resp.ticket());
  ASSERT_TRUE(fd.ok()) << fd.status();
  sockaddr_in local{};
  socklen_t len = sizeof(local);
  ASSERT_EQ(
      getsockname(fd->get_unowned(), reinterpret_cast<sockaddr*>(&local), &len),
      0);
  char ip[INET_ADDRSTRLEN] = {};
  inet_ntop(AF_INET, &local.sin_addr, ip, sizeof(ip));
  EXPECT_EQ(rule.dst_ip(), ip);
  EXPECT_EQ(rule.dst_port(), ntohs(local.sin_port));
  EXPECT_EQ(resp.local().ip(), ip);
  // And what the NIC holds.
  auto installed = sim_->GetRule(if_nametoindex("lo"), rule.location());
  ASSERT_TRUE(installed.ok()) << installed.status();
  EXPECT_EQ(installed->match.dst_ip, "127.0.0.1");
  EXPECT_EQ(installed->match.src_port, port);
}

// Defect 2: releasing a binding whose anchor ticket was never redeemed
// unbinds at once; the state shown matches what BindRx then does.
TEST_F(ProtocolConformanceTest, ReleaseWithUnredeemedAnchorUnbindsAtOnce) {
  const devmem::v1::BindResponse bound = Bind(/*queues=*/2);
  ASSERT_FALSE(bound.anchor_ticket().empty());
  ASSERT_TRUE(Release(bound.binding().handle()).ok());
  EXPECT_EQ(sim_->LiveBindings(), 0u);
  const devmem::v1::NicState st = NicState();
  EXPECT_EQ(st.free_queues_size(), 2) << st.DebugString();
  EXPECT_EQ(st.kernel_bound_queues_size(), 0) << st.DebugString();
  // The whole pool binds again.
  const devmem::v1::BindResponse again = Bind(/*queues=*/2);
  EXPECT_EQ(again.binding().queues_size(), 2);
  // The withdrawn ticket is spent like any other.
  EXPECT_EQ(client_->Redeem(bound.anchor_ticket()).status().code(),
            StatusCode::kNotFound);
}

// The state never shows as free a queue that BindRx would refuse.
TEST_F(ProtocolConformanceTest, FreeQueuesExcludeQueuesAnAnchorStillBinds) {
  const devmem::v1::BindResponse bound = Bind(/*queues=*/1);
  auto anchor = client_->Redeem(bound.anchor_ticket());
  ASSERT_TRUE(anchor.ok()) << anchor.status();
  ASSERT_TRUE(Release(bound.binding().handle()).ok());
  // The workload kept its copy: the kernel binding lives on.
  const devmem::v1::NicState st = NicState();
  ASSERT_EQ(st.kernel_bound_queues_size(), 1) << st.DebugString();
  EXPECT_EQ(st.free_queues_size(), 1) << st.DebugString();
  for (uint32_t q : st.free_queues()) {
    EXPECT_NE(q, st.kernel_bound_queues(0));
  }
  anchor->Reset();
  EXPECT_EQ(NicState().free_queues_size(), 2);
}

// Defect 3: ReturnAnchor with anything but a copy of that binding's anchor
// is Error{code=3}; a real copy is accepted.
TEST_F(ProtocolConformanceTest, ReturnAnchorChecksTheFdIsTheAnchor) {
  const devmem::v1::BindResponse first = Bind();
  const devmem::v1::BindResponse second = Bind();
  auto anchor = client_->Redeem(first.anchor_ticket());
  ASSERT_TRUE(anchor.ok()) << anchor.status();
  auto other = client_->Redeem(second.anchor_ticket());
  ASSERT_TRUE(other.ok()) << other.status();
  const uint64_t handle = first.binding().handle();

  TestPipe pipe;
  auto r = ReturnAnchor(handle, pipe.w.get_unowned());
  ASSERT_TRUE(r.has_value());
  ASSERT_EQ(r->body_case(), Frame::kError) << r->DebugString();
  EXPECT_EQ(r->error().code(), 3);
  EXPECT_THAT(r->error().message(), HasSubstr("is a pipe, not the anchor"));

  // Another binding's anchor is not this one's.
  r = ReturnAnchor(handle, other->get_unowned());
  ASSERT_EQ(r->body_case(), Frame::kError) << r->DebugString();
  EXPECT_EQ(r->error().code(), 3);

  // The anchor file opened anew is not a copy of the fd that holds it.
  const std::string path =
      absl::StrCat("/proc/self/fd/", anchor->get_unowned());
  UniqueFd reopened(open(path.c_str(), O_RDONLY | O_CLOEXEC));
  ASSERT_TRUE(reopened.valid());
  r = ReturnAnchor(handle, reopened.get_unowned());
  ASSERT_EQ(r->body_case(), Frame::kError) << r->DebugString();
  EXPECT_EQ(r->error().code(), 3);

  r = ReturnAnchor(handle, anchor->get_unowned());
  ASSERT_EQ(r->body_case(), Frame::kAnchorAccepted) << r->DebugString();
  EXPECT_EQ(r->anchor_accepted().kernel_id(), first.binding().kernel_id());
  // The refused fds were closed by the daemon: only our pipe end is left.
  pipe.w.Reset();
  EXPECT_TRUE(WriterClosedSoon(pipe));
}

// Defect 4, held: a workload holds its anchor (as section 8 tells it to).
// RestoreNic refuses up front, names who holds what, and changes nothing.
TEST_F(ProtocolConformanceTest, RestoreWhileAnAnchorIsHeldRefusesUpFront) {
  const devmem::v1::BindResponse bound = Bind();
  auto anchor = client_->Redeem(bound.anchor_ticket());
  ASSERT_TRUE(anchor.ok()) << anchor.status();
  devmem::v1::RestoreNicResponse resp;
  grpc::Status st = Restore(&resp);
  EXPECT_EQ(CodeOf(st), StatusCode::kFailedPrecondition) << st.error_message();
  EXPECT_THAT(
      st.error_message(),
      HasSubstr(absl::StrCat("binding ", bound.binding().handle(), " (session ",
                             client_->hello().session_id(), ", uid ", getuid(),
                             ", pid ", getpid(), ")")));
  EXPECT_THAT(st.error_message(), HasSubstr("Nothing was changed"));
  // Nothing was: the profile, the binding, its queue.
  const devmem::v1::NicState state = NicState();
  EXPECT_EQ(state.state(), devmem::v1::PROFILE_STATE_APPLIED) << state.reason();
  EXPECT_EQ(state.bindings(), 1u);
  EXPECT_EQ(state.free_queues_size(), 1);
  EXPECT_EQ(sim_->LiveBindings(), 1u);
  devmem::v1::ListenRequest listen;
  listen.set_session_token(token_);
  listen.set_binding(bound.binding().handle());
  listen.mutable_local()->set_ip("127.0.0.1");
  devmem::v1::SocketResponse sock;
  grpc::ClientContext ctx;
  EXPECT_TRUE(stub_->Listen(&ctx, listen, &sock).ok());

  // Once the workload lets go, the same call restores.
  ASSERT_TRUE(Release(bound.binding().handle()).ok());
  anchor->Reset();
  st = Restore(&resp);
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(resp.state().state(), devmem::v1::PROFILE_STATE_RESTORED);
  EXPECT_EQ(sim_->LiveBindings(), 0u);
}

// Defect 4, unredeemed: the anchor is still behind devmemd's own ticket, so
// devmemd closes it and the restore goes through.
TEST_F(ProtocolConformanceTest, RestoreWithAnUnredeemedAnchorTicketRestores) {
  const devmem::v1::BindResponse bound = Bind();
  ASSERT_FALSE(bound.anchor_ticket().empty());
  devmem::v1::RestoreNicResponse resp;
  grpc::Status st = Restore(&resp);
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(resp.bindings_released(), 1u);
  EXPECT_EQ(resp.state().state(), devmem::v1::PROFILE_STATE_RESTORED);
  EXPECT_EQ(sim_->LiveBindings(), 0u);
  EXPECT_EQ(client_->Redeem(bound.anchor_ticket()).status().code(),
            StatusCode::kNotFound);
}

// Defect 4, kept after release: a workload released its binding but kept
// the anchor. The settings are not touched (never half-restored), the
// profile stays applied, and the restore works once the anchor closes.
TEST_F(ProtocolConformanceTest, RestoreWithAnAnchorKeptAfterReleaseIsWhole) {
  const devmem::v1::BindResponse bound = Bind();
  auto anchor = client_->Redeem(bound.anchor_ticket());
  ASSERT_TRUE(anchor.ok()) << anchor.status();
  ASSERT_TRUE(Release(bound.binding().handle()).ok());
  devmem::v1::RestoreNicResponse resp;
  grpc::Status st = Restore(&resp);
  EXPECT_EQ(CodeOf(st), StatusCode::kFailedPrecondition) << st.error_message();
  EXPECT_THAT(st.error_message(), HasSubstr("the settings were not touched"));
  const devmem::v1::NicState state = NicState();
  EXPECT_EQ(state.state(), devmem::v1::PROFILE_STATE_APPLIED) << state.reason();
  EXPECT_EQ(state.actual().tcp_data_split(),
            devmem::v1::TCP_DATA_SPLIT_ENABLED);
  anchor->Reset();
  st = Restore(&resp);
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(resp.state().state(), devmem::v1::PROFILE_STATE_RESTORED);
}

// Defect 5: BindRx with a pipe names what it is, as Steer does.
TEST_F(ProtocolConformanceTest, BindRxWithAPipeNamesWhatItIs) {
  TestPipe pipe;
  devmem::v1::BindRxRequest req;
  req.set_session_token(token_);
  req.set_dmabuf_ticket(Deposit(pipe.w.get_unowned()));
  req.set_nic("lo");
  devmem::v1::BindResponse resp;
  grpc::ClientContext ctx;
  grpc::Status st = stub_->BindRx(&ctx, req, &resp);
  EXPECT_EQ(CodeOf(st), StatusCode::kInvalidArgument);
  EXPECT_THAT(st.error_message(), HasSubstr("is a pipe, not a dma-buf"));

  UniqueFd udp(socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  req.set_dmabuf_ticket(Deposit(udp.get_unowned()));
  grpc::ClientContext ctx2;
  st = stub_->BindRx(&ctx2, req, &resp);
  EXPECT_THAT(st.error_message(), HasSubstr("is a socket (AF_INET6, UDP)"));

  // Steer says it the same way.
  devmem::v1::SteerRequest steer;
  steer.set_session_token(token_);
  steer.set_socket_ticket(Deposit(pipe.w.get_unowned()));
  steer.set_binding(1);
  devmem::v1::SteerResponse steered;
  grpc::ClientContext ctx3;
  st = stub_->Steer(&ctx3, steer, &steered);
  EXPECT_EQ(CodeOf(st), StatusCode::kInvalidArgument);
  EXPECT_THAT(st.error_message(), HasSubstr("is a pipe, not a TCP socket"));
}

// Also found: a Redeem of a ~32 KB ticket (a frame under max_frame_bytes)
// is answered with Error{3}; the session goes on.
TEST_F(ProtocolConformanceTest, OversizedTicketIsAnErrorNotAClose) {
  Frame f;
  f.mutable_redeem()->set_ticket(std::string(size_t{32} * 1024, 'a'));
  client_->Send(f);
  auto r = client_->Read();
  ASSERT_TRUE(r.has_value()) << "the session was closed without an answer";
  ASSERT_EQ(r->body_case(), Frame::kError);
  EXPECT_EQ(r->error().code(), 3);
  EXPECT_THAT(r->error().message(),
              HasSubstr("malformed ticket (32768 bytes)"));
  EXPECT_TRUE(r->error().ticket().empty());
  // Just under the frame limit, too.
  f.mutable_redeem()->set_ticket(std::string(65000, 'b'));
  client_->Send(f);
  r = client_->Read();
  ASSERT_TRUE(r.has_value() && r->has_error());
  EXPECT_EQ(r->error().code(), 3);
  // A well-formed unknown ticket is echoed, and NOT_FOUND.
  f.mutable_redeem()->set_ticket("0123456789abcdef0123456789abcdef");
  client_->Send(f);
  r = client_->Read();
  ASSERT_TRUE(r.has_value() && r->has_error());
  EXPECT_EQ(r->error().code(), 5);
  EXPECT_EQ(r->error().ticket(), "0123456789abcdef0123456789abcdef");
  // A gRPC call naming a malformed ticket is INVALID_ARGUMENT, too.
  devmem::v1::BindRxRequest req;
  req.set_session_token(token_);
  req.set_dmabuf_ticket("XYZ");
  req.set_nic("lo");
  devmem::v1::BindResponse resp;
  grpc::ClientContext ctx;
  EXPECT_EQ(CodeOf(stub_->BindRx(&ctx, req, &resp)),
            StatusCode::kInvalidArgument);
  EXPECT_TRUE(Pings());
}

// A Deposit label comes back in Deposited, so it is bounded (256 bytes).
TEST_F(ProtocolConformanceTest, LongDepositLabelIsAnErrorAndTheFdIsClosed) {
  TestPipe pipe;
  Frame f;
  f.mutable_deposit()->set_label(std::string(65000, 'x'));
  client_->Send(f, {pipe.w.get_unowned()});
  pipe.w.Reset();
  auto r = client_->Read();
  ASSERT_TRUE(r.has_value()) << "the session was closed without an answer";
  ASSERT_EQ(r->body_case(), Frame::kError);
  EXPECT_EQ(r->error().code(), 3);
  EXPECT_THAT(r->error().message(), HasSubstr("at most 256"));
  EXPECT_TRUE(WriterClosedSoon(pipe));
  EXPECT_FALSE(Deposit(Memfd().get_unowned(), std::string(256, 'y')).empty());
}

// --- Behaviours the document states, as observed ---

// Section 3: a client may redeem its own Deposit ticket and gets its fd back.
TEST_F(ProtocolConformanceTest, RedeemingYourOwnDepositGivesTheFdBack) {
  TestPipe pipe;
  const std::string ticket = Deposit(pipe.w.get_unowned());
  pipe.w.Reset();
  auto back = client_->Redeem(ticket);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_FALSE(pipe.WriterClosed());
  back->Reset();
  EXPECT_TRUE(WriterClosedSoon(pipe));
}

// Section 8: Resume is accepted while the fresh session holds nothing; a
// Ping first is harmless, a Deposit first makes it Error{9}.
TEST_F(ProtocolConformanceTest, ResumeAfterAnotherFrame) {
  ASSERT_TRUE(Pings());
  Frame f;
  f.mutable_resume()->set_session_token(std::string(32, '0'));
  client_->Send(f);
  auto r = client_->Read();
  ASSERT_TRUE(r.has_value() && r->has_error());
  EXPECT_EQ(r->error().code(), 5);  // nothing detached has that token
  TestPipe pipe;
  ASSERT_FALSE(Deposit(pipe.w.get_unowned()).empty());
  client_->Send(f);
  r = client_->Read();
  ASSERT_TRUE(r.has_value() && r->has_error());
  EXPECT_EQ(r->error().code(), 9);  // FAILED_PRECONDITION
  EXPECT_TRUE(Pings());
}

// Section 5: a Listen with no ip is dual-stack and reports "::".
TEST_F(ProtocolConformanceTest, WildcardListenIsDualStack) {
  devmem::v1::ListenRequest req;
  req.set_session_token(token_);
  req.set_nic("lo");
  devmem::v1::SocketResponse resp;
  grpc::ClientContext ctx;
  grpc::Status st = stub_->Listen(&ctx, req, &resp);
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(resp.local().ip(), "::");
  auto fd = client_->Redeem(resp.ticket());
  ASSERT_TRUE(fd.ok()) << fd.status();
  UniqueFd v4(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(resp.local().port()));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(
      connect(v4.get_unowned(), reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
}

// Section 5: Connect needs a remote port; 0 is INVALID_ARGUMENT.
TEST_F(ProtocolConformanceTest, ConnectToPortZeroIsInvalid) {
  devmem::v1::ConnectRequest req;
  req.set_session_token(token_);
  req.set_nic("lo");
  req.mutable_remote()->set_ip("127.0.0.1");
  devmem::v1::SocketResponse resp;
  grpc::ClientContext ctx;
  grpc::Status st = stub_->Connect(&ctx, req, &resp);
  EXPECT_EQ(CodeOf(st), StatusCode::kInvalidArgument);
  EXPECT_THAT(st.error_message(), HasSubstr("remote.port"));
}

// Section 2: devmemd does not set SO_PASSCRED, so SCM_CREDENTIALS a client
// sends is dropped by the kernel before devmemd sees it: not a violation.
TEST_F(ProtocolConformanceTest, CredentialsAClientSendsAreNeverSeen) {
  Frame f;
  f.mutable_ping()->set_nonce(7);
  const std::string bytes = *EncodeFrame(f);
  iovec iov = {const_cast<char*>(bytes.data()), bytes.size()};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(ucred))] = {};
  msghdr msg = {};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof(control);
  cmsghdr* c = CMSG_FIRSTHDR(&msg);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_CREDENTIALS;
  c->cmsg_len = CMSG_LEN(sizeof(ucred));
  ucred cred = {getpid(), getuid(), getgid()};
  memcpy(CMSG_DATA(c), &cred, sizeof(cred));
  ASSERT_EQ(sendmsg(client_->fd_unowned(), &msg, 0),
            static_cast<ssize_t>(bytes.size()));
  auto r = client_->Read();
  ASSERT_TRUE(r.has_value()) << "closed: SCM_CREDENTIALS reached devmemd";
  EXPECT_EQ(r->pong().nonce(), 7u);
}

// After RestoreNic, GetNicState shows no original and no record path: the
// record is deleted with the restore.
TEST_F(ProtocolConformanceTest, RestoredNicHasNoRecord) {
  const std::string path = NicState().record_path();
  ASSERT_FALSE(path.empty());
  EXPECT_EQ(access(path.c_str(), F_OK), 0);
  devmem::v1::RestoreNicResponse resp;
  ASSERT_TRUE(Restore(&resp).ok());
  const devmem::v1::NicState st = NicState();
  EXPECT_TRUE(st.record_path().empty());
  EXPECT_FALSE(st.has_original());
  EXPECT_NE(access(path.c_str(), F_OK), 0);
}

// --- Many fds per frame (sections 2 and 3) ---

// Hello promises the kernel's maximum; a DepositMany of that many comes back,
// in order, from one RedeemMany whose answer is one frame with every fd.
TEST_F(ProtocolConformanceTest, DepositManyAndRedeemManyOfTheMaximum) {
  ASSERT_EQ(client_->hello().max_fds_per_frame(), 253u);
  std::vector<TestPipe> pipes(253);
  std::vector<std::string> labels;
  labels.reserve(pipes.size());
  for (size_t i = 0; i < pipes.size(); ++i) labels.push_back(absl::StrCat(i));
  auto r = client_->DepositMany(WriteEnds(pipes), labels);
  CloseWriteEnds(pipes);
  ASSERT_TRUE(r.has_value() && r->has_deposited_many())
      << (r ? r->DebugString() : "no answer");
  const devmem::v1::DepositedMany& dep = r->deposited_many();
  ASSERT_EQ(dep.tickets_size(), 253);
  ASSERT_EQ(dep.labels_size(), 253);
  EXPECT_EQ(dep.labels(252), "252");
  EXPECT_GT(dep.ticket_ttl_ms(), 0u);
  std::vector<UniqueFd> fds;
  r = client_->RedeemMany({dep.tickets().begin(), dep.tickets().end()}, &fds);
  ASSERT_TRUE(r.has_value() && r->has_fd_batch());
  EXPECT_EQ(r->fd_batch().tickets_size(), 253);
  EXPECT_EQ(r->fd_batch().errors_size(), 0);
  ASSERT_EQ(fds.size(), 253u);
  // fds[i] is pipe i's write end: a byte through it reaches pipe i.
  for (size_t i = 0; i < fds.size(); i += 50) {
    ASSERT_EQ(write(fds[i].get_unowned(), "x", 1), 1);
    char c = 0;
    EXPECT_EQ(read(pipes[i].r.get_unowned(), &c, 1), 1) << i;
  }
}

// Each ticket of a RedeemMany succeeds or fails alone, with Redeem's codes;
// a malformed one is not echoed.
TEST_F(ProtocolConformanceTest, RedeemManyAnswersEachTicketAlone) {
  TestPipe pipe;
  const std::string good = Deposit(pipe.w.get_unowned());
  const std::string unknown = "0123456789abcdef0123456789abcdef";
  std::vector<UniqueFd> fds;
  auto r = client_->RedeemMany({unknown, std::string(20000, 'Q'), good}, &fds);
  ASSERT_TRUE(r.has_value() && r->has_fd_batch())
      << (r ? r->DebugString() : "no answer");
  const devmem::v1::FdBatch& batch = r->fd_batch();
  ASSERT_EQ(batch.tickets_size(), 1);
  EXPECT_EQ(batch.tickets(0), good);
  EXPECT_EQ(fds.size(), 1u);
  ASSERT_EQ(batch.errors_size(), 2);
  EXPECT_EQ(batch.errors(0).index(), 0u);
  EXPECT_EQ(batch.errors(0).code(), 5);
  EXPECT_EQ(batch.errors(0).ticket(), unknown);
  EXPECT_EQ(batch.errors(1).index(), 1u);
  EXPECT_EQ(batch.errors(1).code(), 3);
  EXPECT_TRUE(batch.errors(1).ticket().empty());
  EXPECT_LE(batch.errors(1).message().size(), 200u);
}

// None, or more than max_fds_per_frame tickets: one Error{3}, nothing spent.
TEST_F(ProtocolConformanceTest, RedeemManyOfNoneOrTooManyIsOneError) {
  TestPipe pipe;
  const std::string good = Deposit(pipe.w.get_unowned());
  std::vector<std::string> many(254, good);
  for (const std::vector<std::string>& tickets :
       {many, std::vector<std::string>()}) {
    std::vector<UniqueFd> fds;
    auto r = client_->RedeemMany(tickets, &fds);
    ASSERT_TRUE(r.has_value()) << "the session was closed without an answer";
    ASSERT_EQ(r->body_case(), Frame::kError);
    EXPECT_EQ(r->error().code(), 3);
    EXPECT_TRUE(fds.empty());
  }
  EXPECT_TRUE(client_->Redeem(good).ok());
}

// DepositMany is all or nothing: past max_tickets_per_session it is
// Error{8}, every fd closed and no ticket issued (the whole limit is still
// free afterwards).
TEST_F(ProtocolConformanceTest, DepositManyPastTheTicketLimitKeepsNothing) {
  std::vector<TestPipe> first(200);
  auto r = client_->DepositMany(WriteEnds(first));
  CloseWriteEnds(first);
  ASSERT_TRUE(r.has_value() && r->has_deposited_many());
  std::vector<TestPipe> second(kTicketLimit - 200 + 1);
  r = client_->DepositMany(WriteEnds(second));
  CloseWriteEnds(second);
  ASSERT_TRUE(r.has_value() && r->has_error())
      << (r ? r->DebugString() : "no answer");
  EXPECT_EQ(r->error().code(), 8);
  for (const TestPipe& p : second) EXPECT_TRUE(WriterClosedSoon(p));
  std::vector<TestPipe> exact(kTicketLimit - 200);
  r = client_->DepositMany(WriteEnds(exact));
  EXPECT_TRUE(r.has_value() && r->has_deposited_many())
      << (r ? r->DebugString() : "no answer");
}

// Wrong DepositMany content gets Error{3} and its fds are closed; an old
// client's Deposit still takes exactly one fd (two: Error{3}, not a close).
TEST_F(ProtocolConformanceTest, BadDepositManyAndTwoFdDepositAreErrors) {
  auto r = client_->DepositMany({});
  ASSERT_TRUE(r.has_value() && r->has_error());
  EXPECT_EQ(r->error().code(), 3);
  std::vector<TestPipe> pipes(3);
  r = client_->DepositMany(WriteEnds(pipes), {"one", "two"});
  CloseWriteEnds(pipes);
  ASSERT_TRUE(r.has_value() && r->has_error());
  EXPECT_EQ(r->error().code(), 3);
  for (const TestPipe& p : pipes) EXPECT_TRUE(WriterClosedSoon(p));
  TestPipe a, b;
  Frame dep;
  dep.mutable_deposit();
  client_->Send(dep, {a.w.get_unowned(), b.w.get_unowned()});
  a.w.Reset();
  b.w.Reset();
  r = client_->Read();
  ASSERT_TRUE(r.has_value() && r->has_error());
  EXPECT_EQ(r->error().code(), 3);
  EXPECT_TRUE(WriterClosedSoon(a));
  EXPECT_TRUE(WriterClosedSoon(b));
  EXPECT_TRUE(Pings());
}

// Section 2: fds on a RedeemMany, or a daemon->client batch body, close the
// session; the fds are closed.
TEST_F(ProtocolConformanceTest, ManyFdViolationsCloseTheSession) {
  std::vector<TestPipe> pipes(253);
  Frame f;
  f.mutable_redeem_many()->add_tickets("0123456789abcdef0123456789abcdef");
  client_->Send(f, WriteEnds(pipes));
  CloseWriteEnds(pipes);
  EXPECT_TRUE(client_->ClosedByPeer());
  for (const TestPipe& p : pipes) EXPECT_TRUE(WriterClosedSoon(p));
  for (const Frame::BodyCase body : {Frame::kFdBatch, Frame::kDepositedMany}) {
    TestSessionClient c(dir_ + "/session.sock");
    ASSERT_TRUE(c.ReadHello());
    Frame daemon_body;
    if (body == Frame::kFdBatch) {
      daemon_body.mutable_fd_batch();
    } else {
      daemon_body.mutable_deposited_many();
    }
    c.Send(daemon_body);
    EXPECT_TRUE(c.ClosedByPeer());
  }
}

}  // namespace
}  // namespace devmem
