#include "client/libdevmem.h"

#include <fcntl.h>
#include <grpcpp/client_context.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "client/testing/fake_devmemd.h"
#include "daemon/base/clock.h"
#include "daemon/session/peer_cred.h"
#include "daemon/session/session_manager.h"
#include "daemon/session/session_server.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kernel/errno_status.h"
#include "kernel/scm_rights.h"
#include "kernel/unique_fd.h"
#include "proto/devmem/v1/frame.h"

namespace devmem {
namespace {

using devmem::v1::SessionFrame;
using ::testing::HasSubstr;

constexpr char kToken[] = "0123456789abcdef0123456789abcdef";

// --- Daemon-side helpers for the fake daemons below. ---

struct Received {
  SessionFrame frame;
  std::vector<UniqueFd> fds;
  bool eof = false;
};

void SendFrame(int fd, const SessionFrame& frame,
               absl::Span<const int> fds = {}) {
  absl::StatusOr<std::string> bytes = EncodeFrame(frame);
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  absl::Status sent = SendWithFds(fd, *bytes, fds);
  // The client may already be gone in failure tests; that is not our error.
  EXPECT_TRUE(sent.ok() || StatusErrno(sent) == EPIPE) << sent;
}

Received RecvFrame(int fd) {
  Received out;
  absl::StatusOr<ReceivedMessage> msg =
      RecvWithFds(fd, kMaxFrameBytes, kMaxFdsPerMessage);
  if (!msg.ok() || msg->eof) {
    out.eof = true;
    return out;
  }
  absl::StatusOr<SessionFrame> frame = DecodeFrame(msg->data);
  EXPECT_TRUE(frame.ok()) << frame.status();
  if (frame.ok()) out.frame = *frame;
  out.fds = std::move(msg->fds);
  return out;
}

SessionFrame HelloFrame(uint64_t session_id = 7,
                        uint32_t max_fds_per_frame = 1) {
  SessionFrame frame;
  devmem::v1::Hello* hello = frame.mutable_hello();
  hello->set_session_id(session_id);
  hello->set_session_token(kToken);
  hello->set_ticket_ttl_ms(10000);
  hello->set_max_fds_per_frame(max_fds_per_frame);
  hello->set_max_frame_bytes(kMaxFrameBytes);
  hello->set_protocol_version(kProtocolVersion);
  hello->set_peer_uid(getuid());
  hello->set_peer_gid(getgid());
  return frame;
}

SessionFrame ErrorFrame(int code, const std::string& message,
                        const std::string& ticket = "") {
  SessionFrame frame;
  frame.mutable_error()->set_code(code);
  frame.mutable_error()->set_message(message);
  frame.mutable_error()->set_ticket(ticket);
  return frame;
}

SessionFrame GrantFrame(const std::string& ticket) {
  SessionFrame frame;
  frame.mutable_fd_grant()->set_ticket(ticket);
  return frame;
}

// A pipe whose read end yields `text` and then EOF.
UniqueFd PipeReading(absl::string_view text) {
  int p[2];
  EXPECT_EQ(pipe2(p, O_CLOEXEC), 0);
  UniqueFd read_end(p[0]);
  UniqueFd write_end(p[1]);
  EXPECT_EQ(write(write_end.get_unowned(), text.data(), text.size()),
            static_cast<ssize_t>(text.size()));
  return read_end;
}

std::string ReadAll(int fd) {
  std::string out;
  char buf[256];
  for (;;) {
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n <= 0) return out;
    out.append(buf, static_cast<size_t>(n));
  }
}

// Runs `script` as the daemon end of a SOCK_SEQPACKET socketpair in a thread.
// Declare it before the Session so the Session (the client end) closes first;
// scripts that wait for more requests then see EOF and return.
class FakeDaemon {
 public:
  explicit FakeDaemon(std::function<void(int daemon_fd)> script) {
    int sv[2];
    EXPECT_EQ(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
    client_end_.Reset(sv[0]);
    daemon_end_.Reset(sv[1]);
    thread_ = std::thread([this, script = std::move(script)] {
      script(daemon_end_.get_unowned());
    });
  }
  ~FakeDaemon() { thread_.join(); }

  UniqueFd TakeClientEnd() { return std::move(client_end_); }

 private:
  UniqueFd client_end_;
  UniqueFd daemon_end_;
  std::thread thread_;
};

// Keeps reading (and dropping) requests until the client hangs up.
void DrainUntilEof(int fd) {
  while (!RecvFrame(fd).eof) {
  }
}

SessionOptions FastOptions() {
  SessionOptions options;
  options.frame_timeout = absl::Seconds(5);
  return options;
}

absl::StatusOr<std::unique_ptr<Session>> OpenOn(
    FakeDaemon& daemon, const SessionOptions& options = FastOptions()) {
  return Session::FromConnectedSocket(daemon.TakeClientEnd(), nullptr, options);
}

// --- Hello ---

TEST(SessionHelloTest, ParsesHello) {
  FakeDaemon daemon([](int fd) {
    SendFrame(fd, HelloFrame(/*session_id=*/42));
    DrainUntilEof(fd);
  });
  auto session = OpenOn(daemon);
  ASSERT_TRUE(session.ok()) << session.status();
  EXPECT_EQ((*session)->session_id(), 42u);
  EXPECT_EQ((*session)->session_token(), kToken);
  EXPECT_EQ((*session)->hello().ticket_ttl_ms(), 10000u);
  EXPECT_GE((*session)->session_fd_unowned(), 0);
  EXPECT_EQ((*session)->stub(), nullptr);
}

TEST(SessionHelloTest, RefusalBecomesStatusWithDaemonMessage) {
  FakeDaemon daemon([](int fd) {
    SessionFrame frame;
    frame.mutable_hello()->set_code(7);
    frame.mutable_hello()->set_message("uid 1000 gid 1000 is not allowed");
    SendFrame(fd, frame);
  });
  auto session = OpenOn(daemon);
  EXPECT_EQ(session.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(session.status().message(), "uid 1000 gid 1000 is not allowed");
}

TEST(SessionHelloTest, WrongProtocolVersionIsRejected) {
  FakeDaemon daemon([](int fd) {
    SessionFrame frame = HelloFrame();
    frame.mutable_hello()->set_protocol_version(2);
    SendFrame(fd, frame);
  });
  auto session = OpenOn(daemon);
  EXPECT_EQ(session.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(session.status().message(), HasSubstr("version 2"));
}

TEST(SessionHelloTest, FirstFrameMustBeHello) {
  FakeDaemon daemon([](int fd) {
    SessionFrame frame;
    frame.mutable_pong()->set_nonce(1);
    SendFrame(fd, frame);
  });
  auto session = OpenOn(daemon);
  EXPECT_EQ(session.status().code(), absl::StatusCode::kInternal);
  EXPECT_THAT(session.status().message(), HasSubstr("Pong"));
}

TEST(SessionHelloTest, GarbageFrameIsRejected) {
  FakeDaemon daemon(
      [](int fd) { ASSERT_TRUE(SendWithFds(fd, "not a frame", {}).ok()); });
  auto session = OpenOn(daemon);
  EXPECT_EQ(session.status().code(), absl::StatusCode::kInternal);
  EXPECT_THAT(session.status().message(), HasSubstr("malformed frame"));
}

TEST(SessionHelloTest, SilentDaemonTimesOut) {
  FakeDaemon daemon(DrainUntilEof);
  SessionOptions options;
  options.frame_timeout = absl::Milliseconds(50);
  auto session = OpenOn(daemon, options);
  EXPECT_EQ(session.status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_THAT(session.status().message(), HasSubstr("Hello"));
}

TEST(SessionHelloTest, ClosedBeforeHelloIsUnavailable) {
  FakeDaemon daemon([](int fd) { shutdown(fd, SHUT_RDWR); });
  auto session = OpenOn(daemon);
  EXPECT_EQ(session.status().code(), absl::StatusCode::kUnavailable);
}

// --- Redeem ---

TEST(SessionRedeemTest, GrantedFdWorks) {
  FakeDaemon daemon([](int fd) {
    SendFrame(fd, HelloFrame());
    Received req = RecvFrame(fd);
    ASSERT_TRUE(req.frame.has_redeem());
    EXPECT_EQ(req.frame.redeem().ticket(), "t1");
    EXPECT_TRUE(req.fds.empty());
    UniqueFd pipe_end = PipeReading("through the daemon");
    SendFrame(fd, GrantFrame("t1"), {pipe_end.get_unowned()});
    DrainUntilEof(fd);
  });
  auto session = OpenOn(daemon);
  ASSERT_TRUE(session.ok()) << session.status();
  absl::StatusOr<UniqueFd> fd = (*session)->Redeem("t1");
  ASSERT_TRUE(fd.ok()) << fd.status();
  // MSG_CMSG_CLOEXEC: a received fd must not leak into exec'd children.
  EXPECT_EQ(fcntl(fd->get_unowned(), F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
  EXPECT_EQ(ReadAll(fd->get_unowned()), "through the daemon");
}

TEST(SessionRedeemTest, ErrorFrameBecomesStatusAndSessionStaysUsable) {
  FakeDaemon daemon([](int fd) {
    SendFrame(fd, HelloFrame());
    Received req = RecvFrame(fd);
    SendFrame(fd, ErrorFrame(5, "unknown ticket", req.frame.redeem().ticket()));
    req = RecvFrame(fd);
    ASSERT_TRUE(req.frame.has_ping());
    SessionFrame pong;
    pong.mutable_pong()->set_nonce(req.frame.ping().nonce());
    SendFrame(fd, pong);
    DrainUntilEof(fd);
  });
  auto session = OpenOn(daemon);
  ASSERT_TRUE(session.ok()) << session.status();
  absl::StatusOr<UniqueFd> fd = (*session)->Redeem("nope");
  EXPECT_EQ(fd.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(fd.status().message(), "unknown ticket");
  EXPECT_TRUE((*session)->Ping().ok());
}

TEST(SessionRedeemTest, GrantWithoutFdIsAnError) {
  FakeDaemon daemon([](int fd) {
    SendFrame(fd, HelloFrame());
    RecvFrame(fd);
    SendFrame(fd, GrantFrame("t1"));  // no SCM_RIGHTS
    DrainUntilEof(fd);
  });
  auto session = OpenOn(daemon);
  ASSERT_TRUE(session.ok()) << session.status();
  absl::StatusOr<UniqueFd> fd = (*session)->Redeem("t1");
  EXPECT_EQ(fd.status().code(), absl::StatusCode::kInternal);
  EXPECT_THAT(fd.status().message(), HasSubstr("carried 0 fds"));
}

TEST(SessionRedeemTest, GrantWithTwoFdsIsAnError) {
  FakeDaemon daemon([](int fd) {
    SendFrame(fd, HelloFrame());
    RecvFrame(fd);
    UniqueFd a = PipeReading("a");
    UniqueFd b = PipeReading("b");
    SendFrame(fd, GrantFrame("t1"), {a.get_unowned(), b.get_unowned()});
    DrainUntilEof(fd);
  });
  auto session = OpenOn(daemon);
  ASSERT_TRUE(session.ok()) << session.status();
  EXPECT_FALSE((*session)->Redeem("t1").ok());
}

TEST(SessionRedeemTest, GrantForAnotherTicketBreaksSession) {
  FakeDaemon daemon([](int fd) {
    SendFrame(fd, HelloFrame());
    RecvFrame(fd);
    UniqueFd pipe_end = PipeReading("x");
    SendFrame(fd, GrantFrame("other"), {pipe_end.get_unowned()});
    DrainUntilEof(fd);
  });
  auto session = OpenOn(daemon);
  ASSERT_TRUE(session.ok()) << session.status();
  EXPECT_EQ((*session)->Redeem("t1").status().code(),
            absl::StatusCode::kInternal);
  // The answers are out of step now: refuse rather than mis-deliver.
  absl::Status next = (*session)->Ping();
  EXPECT_EQ(next.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(next.message(), HasSubstr("other"));
}

TEST(SessionRedeemTest, UnexpectedFrameBreaksSession) {
  FakeDaemon daemon([](int fd) {
    SendFrame(fd, HelloFrame());
    RecvFrame(fd);
    SessionFrame pong;
    pong.mutable_pong()->set_nonce(9);
    SendFrame(fd, pong);
    DrainUntilEof(fd);
  });
  auto session = OpenOn(daemon);
  ASSERT_TRUE(session.ok()) << session.status();
  absl::StatusOr<UniqueFd> fd = (*session)->Redeem("t1");
  EXPECT_EQ(fd.status().code(), absl::StatusCode::kInternal);
  EXPECT_THAT(fd.status().message(), HasSubstr("answered Redeem with a Pong"));
  EXPECT_EQ((*session)->Redeem("t2").status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST(SessionRedeemTest, SilentDaemonGivesDeadlineExceeded) {
  FakeDaemon daemon([](int fd) {
    SendFrame(fd, HelloFrame());
    DrainUntilEof(fd);  // reads the Redeem, never answers
  });
  SessionOptions options;
  options.frame_timeout = absl::Milliseconds(50);
  auto session = OpenOn(daemon, options);
  ASSERT_TRUE(session.ok()) << session.status();
  const absl::Time start = absl::Now();
  absl::StatusOr<UniqueFd> fd = (*session)->Redeem("t1");
  EXPECT_EQ(fd.status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(50));
  // A late answer would be mistaken for the next one, so the session is done.
  EXPECT_EQ((*session)->Ping().code(), absl::StatusCode::kFailedPrecondition);
}

TEST(SessionRedeemTest, DaemonHangupIsUnavailable) {
  FakeDaemon daemon([](int fd) {
    SendFrame(fd, HelloFrame());
    RecvFrame(fd);
    shutdown(fd, SHUT_RDWR);
  });
  auto session = OpenOn(daemon);
  ASSERT_TRUE(session.ok()) << session.status();
  absl::StatusOr<UniqueFd> fd = (*session)->Redeem("t1");
  EXPECT_EQ(fd.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(fd.status().message(), HasSubstr("closed the session"));
}

// Concurrent callers must each get the fd for their own ticket: the daemon
// answers in request order and the Session serializes round trips.
TEST(SessionRedeemTest, ConcurrentRedeemsGetTheirOwnFds) {
  FakeDaemon daemon([](int fd) {
    SendFrame(fd, HelloFrame());
    for (;;) {
      Received req = RecvFrame(fd);
      if (req.eof) return;
      ASSERT_TRUE(req.frame.has_redeem());
      const std::string& ticket = req.frame.redeem().ticket();
      UniqueFd pipe_end = PipeReading(ticket);
      SendFrame(fd, GrantFrame(ticket), {pipe_end.get_unowned()});
    }
  });
  auto session = OpenOn(daemon);
  ASSERT_TRUE(session.ok()) << session.status();
  constexpr int kThreads = 4;
  constexpr int kEach = 50;
  std::atomic<int> good{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kEach; ++i) {
        const std::string ticket = absl::StrCat("t", t, "-", i);
        absl::StatusOr<UniqueFd> fd = (*session)->Redeem(ticket);
        ASSERT_TRUE(fd.ok()) << fd.status();
        if (ReadAll(fd->get_unowned()) == ticket) ++good;
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(good.load(), kThreads * kEach);
}

// --- Deposit and Ping ---

TEST(SessionDepositTest, ReturnsTicketAndDaemonGetsWorkingFd) {
  FakeDaemon daemon([](int fd) {
    SendFrame(fd, HelloFrame());
    Received req = RecvFrame(fd);
    ASSERT_TRUE(req.frame.has_deposit());
    EXPECT_EQ(req.frame.deposit().label(), "mine");
    ASSERT_EQ(req.fds.size(), 1u);
    EXPECT_EQ(write(req.fds[0].get_unowned(), "dep", 3), 3);
    req.fds.clear();  // so the client's reader sees EOF
    SessionFrame reply;
    reply.mutable_deposited()->set_ticket("d1");
    reply.mutable_deposited()->set_label("mine");
    reply.mutable_deposited()->set_ticket_ttl_ms(10000);
    SendFrame(fd, reply);
    DrainUntilEof(fd);
  });
  auto session = OpenOn(daemon);
  ASSERT_TRUE(session.ok()) << session.status();
  int p[2];
  ASSERT_EQ(pipe2(p, O_CLOEXEC), 0);
  UniqueFd read_end(p[0]);
  UniqueFd write_end(p[1]);
  absl::StatusOr<std::string> ticket =
      (*session)->Deposit(write_end.get_unowned(), "mine");
  ASSERT_TRUE(ticket.ok()) << ticket.status();
  EXPECT_EQ(*ticket, "d1");
  write_end.Reset();  // ours; the fake daemon already closed its copy
  EXPECT_EQ(ReadAll(read_end.get_unowned()), "dep");
}

TEST(SessionDepositTest, ErrorFrameBecomesStatus) {
  FakeDaemon daemon([](int fd) {
    SendFrame(fd, HelloFrame());
    RecvFrame(fd);
    SendFrame(fd, ErrorFrame(8, "too many open tickets"));
    DrainUntilEof(fd);
  });
  auto session = OpenOn(daemon);
  ASSERT_TRUE(session.ok()) << session.status();
  UniqueFd pipe_end = PipeReading("");
  absl::StatusOr<std::string> ticket =
      (*session)->Deposit(pipe_end.get_unowned());
  EXPECT_EQ(ticket.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(ticket.status().message(), "too many open tickets");
}

TEST(SessionPingTest, WrongNonceBreaksSession) {
  FakeDaemon daemon([](int fd) {
    SendFrame(fd, HelloFrame());
    Received req = RecvFrame(fd);
    SessionFrame pong;
    pong.mutable_pong()->set_nonce(req.frame.ping().nonce() + 1);
    SendFrame(fd, pong);
    DrainUntilEof(fd);
  });
  auto session = OpenOn(daemon);
  ASSERT_TRUE(session.ok()) << session.status();
  EXPECT_EQ((*session)->Ping().code(), absl::StatusCode::kInternal);
}

TEST(SessionGrpcTest, NoChannelIsFailedPrecondition) {
  FakeDaemon daemon([](int fd) {
    SendFrame(fd, HelloFrame());
    DrainUntilEof(fd);
  });
  auto session = OpenOn(daemon);
  ASSERT_TRUE(session.ok()) << session.status();
  EXPECT_EQ((*session)->GetStatus().status().code(),
            absl::StatusCode::kFailedPrecondition);
  ListenOptions listen;
  listen.nic = "lo";
  EXPECT_EQ((*session)->Listen(listen).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

// --- Open() against real sockets in a temporary runtime directory ---

// A runtime dir short enough for sun_path (TEST_TMPDIR can be very long).
std::string MakeRuntimeDir() {
  std::string base = "/tmp";
  if (const char* tmp = getenv("TEST_TMPDIR");
      tmp != nullptr && std::strlen(tmp) < 60) {
    base = tmp;
  }
  std::string templ = base + "/dmXXXXXX";
  EXPECT_NE(mkdtemp(templ.data()), nullptr) << std::strerror(errno);
  return templ;
}

UniqueFd ListenUnix(const std::string& path, int type) {
  UniqueFd fd(socket(AF_UNIX, type | SOCK_CLOEXEC, 0));
  struct sockaddr_un addr;
  std::memset(&addr, 0, sizeof(addr));
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
  EXPECT_EQ(
      bind(fd.get_unowned(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)),
      0)
      << std::strerror(errno);
  EXPECT_EQ(listen(fd.get_unowned(), 8), 0);
  return fd;
}

TEST(SessionOpenTest, MissingSocketSaysSo) {
  auto session = Session::Open("/nonexistent-devmemd-dir");
  EXPECT_EQ(session.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(session.status().message(),
              HasSubstr("is devmemd running? no socket at "
                        "/nonexistent-devmemd-dir/session.sock"));
  EXPECT_EQ(StatusErrno(session.status()), ENOENT);
}

TEST(SessionOpenTest, StreamSocketInsteadOfSeqpacketSaysSo) {
  std::string dir = MakeRuntimeDir();
  UniqueFd listener = ListenUnix(dir + "/session.sock", SOCK_STREAM);
  auto session = Session::Open(dir);
  EXPECT_FALSE(session.ok());
  EXPECT_THAT(session.status().message(), HasSubstr("SOCK_SEQPACKET"));
  unlink((dir + "/session.sock").c_str());
  rmdir(dir.c_str());
}

TEST(SessionOpenTest, TooLongPathIsInvalidArgument) {
  auto session = Session::Open(std::string(200, 'x'));
  EXPECT_EQ(session.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(SessionOpenTest, ListenConnectAndStatusThroughFakeDaemon) {
  testing::FakeDevmemd daemon;
  auto session = Session::Open(daemon.runtime_dir());
  ASSERT_TRUE(session.ok()) << session.status();
  ASSERT_NE((*session)->stub(), nullptr);

  absl::StatusOr<devmem::v1::GetStatusResponse> status =
      (*session)->GetStatus();
  ASSERT_TRUE(status.ok()) << status.status();
  EXPECT_EQ(status->version(), "fake-1");

  absl::StatusOr<devmem::v1::GetInventoryResponse> inventory =
      (*session)->GetInventory({"lo"});
  ASSERT_TRUE(inventory.ok()) << inventory.status();
  ASSERT_EQ(inventory->nics_size(), 1);
  EXPECT_EQ(inventory->nics(0).name(), "lo");

  ListenOptions listen;
  listen.nic = "lo";
  listen.ip = "127.0.0.1";
  absl::StatusOr<SocketHandle> listening = (*session)->Listen(listen);
  ASSERT_TRUE(listening.ok()) << listening.status();
  ASSERT_NE(listening->info.local().port(), 0u);

  // Connect back to our own listener through the daemon.
  ConnectOptions connect;
  connect.nic = "lo";
  connect.remote = {"127.0.0.1",
                    static_cast<uint16_t>(listening->info.local().port())};
  connect.timeout = absl::Milliseconds(1500);
  absl::StatusOr<SocketHandle> connected = (*session)->Connect(connect);
  ASSERT_TRUE(connected.ok()) << connected.status();
  std::vector<devmem::v1::ConnectRequest> seen = daemon.connect_requests();
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].timeout_ms(), 1500u);
  EXPECT_EQ(seen[0].session_token(), (*session)->session_token());

  UniqueFd accepted(
      accept4(listening->fd.get_unowned(), nullptr, nullptr, SOCK_CLOEXEC));
  ASSERT_TRUE(accepted.valid()) << std::strerror(errno);
  ASSERT_EQ(send(connected->fd.get_unowned(), "ping", 4, MSG_NOSIGNAL), 4);
  shutdown(connected->fd.get_unowned(), SHUT_WR);
  EXPECT_EQ(ReadAll(accepted.get_unowned()), "ping");
}

// This process's threads, and those of them named `name`.
std::pair<int, int> ThreadsOfThisProcess(absl::string_view name) {
  std::pair<int, int> n{0, 0};
  for (const auto& task :
       std::filesystem::directory_iterator("/proc/self/task")) {
    ++n.first;
    std::ifstream comm(task.path() / "comm");
    std::string line;
    if (std::getline(comm, line) && line == name) ++n.second;
  }
  return n;
}

// Sessions share one hang-up watch thread (HangupWatcher) instead of taking
// a thread each: 64 more sessions add no thread of the client's (the fake
// daemon, in this process, serves each session on a thread of its own).
TEST(SessionOpenTest, ManySessionsShareOneWatchThread) {
  testing::FakeDevmemd daemon;
  std::vector<std::unique_ptr<Session>> sessions;
  auto first = Session::Open(daemon.runtime_dir());
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_TRUE((*first)->GetStatus().ok());  // gRPC's own threads started
  sessions.push_back(*std::move(first));
  const auto [before, watchers] = ThreadsOfThisProcess(kHangupThreadName);
  EXPECT_EQ(watchers, 1);
  for (int i = 0; i < 64; ++i) {
    auto session = Session::Open(daemon.runtime_dir());
    ASSERT_TRUE(session.ok()) << session.status();
    sessions.push_back(*std::move(session));
  }
  const auto [after, watchers_after] = ThreadsOfThisProcess(kHangupThreadName);
  EXPECT_EQ(watchers_after, 1);
  EXPECT_LE(after, before + 64 + 2);
  EXPECT_GE(HangupWatcher::Shared().watched(), 65u);
  sessions.clear();
  EXPECT_EQ(HangupWatcher::Shared().watched(), 0u);
}

// A session destroyed just as its daemon goes: ~Session waits out the
// hang-up callback that may be running for it, and leaves no registration.
// (The window is narrow: this catches a callback that outlives its session
// only by chance, under ASan.)
TEST(SessionOpenTest, DestroyedAsItsDaemonGoes) {
  for (int i = 0; i < 40; ++i) {
    auto daemon = std::make_unique<testing::FakeDevmemd>();
    auto session = Session::Open(daemon->runtime_dir());
    ASSERT_TRUE(session.ok()) << session.status();
    daemon.reset();  // the session socket hangs up
    session->reset();
  }
  EXPECT_EQ(HangupWatcher::Shared().watched(), 0u);
}

TEST(SessionOpenTest, GrpcErrorsKeepCodeAndMessage) {
  testing::FakeDevmemd daemon;
  auto session = Session::Open(daemon.runtime_dir());
  ASSERT_TRUE(session.ok()) << session.status();
  ListenOptions listen;
  listen.nic = "eth9";
  absl::StatusOr<SocketHandle> sock = (*session)->Listen(listen);
  EXPECT_EQ(sock.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(sock.status().message(), "no NIC named 'eth9'; NICs: lo");

  // A ticket this session was never given.
  EXPECT_EQ((*session)->Redeem("ticket999").status().code(),
            absl::StatusCode::kNotFound);

  // A raw RPC through the stub with someone else's token.
  devmem::v1::ListenRequest raw;
  raw.set_session_token("not-the-token");
  raw.set_nic("lo");
  devmem::v1::SocketResponse response;
  grpc::ClientContext context;
  grpc::Status status = (*session)->stub()->Listen(&context, raw, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
}

TEST(SessionOpenTest, RefusedSessionIsPermissionDenied) {
  testing::FakeDevmemd daemon;
  daemon.RefuseSessions(7, "uid 1234 gid 1234 is not allowed");
  auto session = Session::Open(daemon.runtime_dir());
  EXPECT_EQ(session.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(session.status().message(), "uid 1234 gid 1234 is not allowed");
}

// --- RedeemMany and DepositMany ---

// The real SessionServer and SessionManager of devmemd on a session socket in
// a temporary directory, and a Session on it (no gRPC).
class RealSessionDaemon {
 public:
  explicit RealSessionDaemon(uint32_t ticket_limit) {
    SessionManager::Options options;
    options.max_tickets_per_session = ticket_limit;
    manager_ = std::make_unique<SessionManager>(options, RealClock::Get());
    dir_ = MakeRuntimeDir();
    path_ = dir_ + "/session.sock";
    server_ = std::make_unique<SessionServer>(
        ListenUnix(path_, SOCK_SEQPACKET | SOCK_NONBLOCK), &policy_,
        manager_.get());
    SessionServer::Observer observer;
    observer.frame = [this](absl::string_view method, absl::StatusCode,
                            absl::Duration) {
      absl::MutexLock lock(&mu_);
      ++frames_[std::string{method}];
    };
    server_->SetObserver(std::move(observer));
    EXPECT_TRUE(server_->Start().ok());
  }
  ~RealSessionDaemon() {
    server_->Stop();
    unlink(path_.c_str());
    rmdir(dir_.c_str());
  }

  absl::StatusOr<std::unique_ptr<Session>> Open() {
    UniqueFd fd(socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
    struct sockaddr_un addr = {};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path_.c_str(), sizeof(addr.sun_path) - 1);
    EXPECT_EQ(connect(fd.get_unowned(), reinterpret_cast<sockaddr*>(&addr),
                      sizeof(addr)),
              0);
    return Session::FromConnectedSocket(std::move(fd), nullptr, FastOptions());
  }
  SessionManager& manager() { return *manager_; }
  // Waits (up to 10 s) for `want` frames of `method` to have been answered:
  // the server counts a frame after its answer is sent. True if exactly
  // `want` were.
  bool Answered(const std::string& method, int want) {
    absl::MutexLock lock(&mu_);
    auto reached = [&] { return frames_[method] >= want; };
    mu_.AwaitWithTimeout(absl::Condition(&reached), absl::Seconds(10));
    return frames_[method] == want;
  }

 private:
  AccessPolicy policy_{{static_cast<uint32_t>(getuid())}, {}, "test"};
  std::unique_ptr<SessionManager> manager_;
  std::string dir_;
  std::string path_;
  std::unique_ptr<SessionServer> server_;
  absl::Mutex mu_;
  std::map<std::string, int> frames_ ABSL_GUARDED_BY(mu_);
};

// Room for `fds` more open fds: the soft limit raised to the hard one.
bool RoomForFds(rlim_t fds) {
  struct rlimit limit = {};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return false;
  if (limit.rlim_cur < fds && limit.rlim_max >= fds) {
    limit.rlim_cur = limit.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &limit) != 0) return false;
  }
  return limit.rlim_cur >= fds;
}

ino_t Inode(int fd) {
  struct stat st = {};
  EXPECT_EQ(fstat(fd, &st), 0);
  return st.st_ino;
}

UniqueFd Memfd() { return UniqueFd(memfd_create("mem", MFD_CLOEXEC)); }

TEST(SessionManyTest, RedeemManyOf600TicketsTakesThreeFrames) {
  if (!RoomForFds(2000)) GTEST_SKIP() << "RLIMIT_NOFILE below 2000";
  RealSessionDaemon daemon(/*ticket_limit=*/1000);
  auto session = daemon.Open();
  ASSERT_TRUE(session.ok()) << session.status();
  EXPECT_EQ((*session)->hello().max_fds_per_frame(), 253u);
  std::vector<std::string> tickets;
  std::vector<ino_t> inodes;
  for (int i = 0; i < 600; ++i) {
    UniqueFd mem = Memfd();
    inodes.push_back(Inode(mem.get_unowned()));
    auto ticket =
        daemon.manager().IssueTicket((*session)->session_id(), std::move(mem));
    ASSERT_TRUE(ticket.ok()) << ticket.status();
    tickets.push_back(*ticket);
  }
  tickets[400] = "0123456789abcdef0123456789abcdef";  // unknown
  auto fds = (*session)->RedeemMany(tickets);
  ASSERT_TRUE(fds.ok()) << fds.status();
  ASSERT_EQ(fds->size(), 600u);
  for (size_t i = 0; i < 600; ++i) {
    if (i == 400) {
      EXPECT_EQ((*fds)[i].status().code(), absl::StatusCode::kNotFound);
      continue;
    }
    ASSERT_TRUE((*fds)[i].ok()) << i << ": " << (*fds)[i].status();
    EXPECT_EQ(Inode((*fds)[i]->get_unowned()), inodes[i]) << i;
  }
  EXPECT_TRUE(daemon.Answered("session.RedeemMany", 3));  // 253 + 253 + 94
  EXPECT_EQ(daemon.manager().pending_tickets(), 1u);      // ticket 400's memfd
}

TEST(SessionManyTest, DepositManyThenRedeemManyGivesTheFilesBack) {
  if (!RoomForFds(2000)) GTEST_SKIP() << "RLIMIT_NOFILE below 2000";
  RealSessionDaemon daemon(/*ticket_limit=*/1000);
  auto session = daemon.Open();
  ASSERT_TRUE(session.ok()) << session.status();
  std::vector<UniqueFd> fds;
  std::vector<ino_t> inodes;
  for (int i = 0; i < 300; ++i) {
    fds.push_back(Memfd());
    inodes.push_back(Inode(fds.back().get_unowned()));
  }
  auto tickets = (*session)->DepositMany(std::move(fds));
  ASSERT_TRUE(tickets.ok()) << tickets.status();
  ASSERT_EQ(tickets->size(), 300u);
  EXPECT_TRUE(daemon.Answered("session.DepositMany", 2));
  auto back = (*session)->RedeemMany(*tickets);
  ASSERT_TRUE(back.ok()) << back.status();
  for (size_t i = 0; i < 300; ++i) {
    ASSERT_TRUE((*back)[i].ok()) << (*back)[i].status();
    EXPECT_EQ(Inode((*back)[i]->get_unowned()), inodes[i]) << i;
  }
}

TEST(SessionManyTest, DepositManyPastTheTicketLimitLeavesNoTicket) {
  RealSessionDaemon daemon(/*ticket_limit=*/300);
  auto session = daemon.Open();
  ASSERT_TRUE(session.ok()) << session.status();
  std::vector<UniqueFd> fds(400);
  for (UniqueFd& fd : fds) fd = Memfd();
  // The first frame (253) is kept, the second fails midway at the daemon:
  // the client then takes back the first.
  auto tickets = (*session)->DepositMany(std::move(fds));
  EXPECT_EQ(tickets.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(daemon.manager().pending_tickets(), 0u);
  EXPECT_TRUE((*session)->Ping().ok());
}

TEST(SessionManyTest, OlderDaemonGetsOneRedeemOrDepositPerFd) {
  FakeDaemon daemon([](int fd) {
    SendFrame(fd, HelloFrame(/*session_id=*/7, /*max_fds_per_frame=*/1));
    for (;;) {
      Received req = RecvFrame(fd);
      if (req.eof) return;
      if (req.frame.has_deposit()) {
        SessionFrame reply;
        reply.mutable_deposited()->set_ticket(
            absl::StrCat("d-", req.frame.deposit().label()));
        SendFrame(fd, reply);
        continue;
      }
      ASSERT_TRUE(req.frame.has_redeem()) << req.frame.DebugString();
      const std::string& ticket = req.frame.redeem().ticket();
      if (ticket == "gone") {
        SendFrame(fd, ErrorFrame(5, "not found", ticket));
        continue;
      }
      UniqueFd pipe_end = PipeReading(ticket);
      SendFrame(fd, GrantFrame(ticket), {pipe_end.get_unowned()});
    }
  });
  auto session = OpenOn(daemon);
  ASSERT_TRUE(session.ok()) << session.status();
  const std::vector<std::string> tickets = {"t1", "gone", "t3"};
  auto fds = (*session)->RedeemMany(tickets);
  ASSERT_TRUE(fds.ok()) << fds.status();
  ASSERT_EQ(fds->size(), 3u);
  EXPECT_EQ(ReadAll((*fds)[0]->get_unowned()), "t1");
  EXPECT_EQ((*fds)[1].status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(ReadAll((*fds)[2]->get_unowned()), "t3");
  std::vector<UniqueFd> two;
  two.push_back(PipeReading(""));
  two.push_back(PipeReading(""));
  const std::vector<std::string> labels = {"a", "b"};
  auto deposited = (*session)->DepositMany(std::move(two), labels);
  ASSERT_TRUE(deposited.ok()) << deposited.status();
  EXPECT_EQ(*deposited, (std::vector<std::string>{"d-a", "d-b"}));
}

TEST(SessionManyTest, BatchWhoseFdsDoNotMatchItsGrantsIsInternal) {
  FakeDaemon daemon([](int fd) {
    SendFrame(fd, HelloFrame(/*session_id=*/7, /*max_fds_per_frame=*/253));
    Received req = RecvFrame(fd);
    ASSERT_TRUE(req.frame.has_redeem_many());
    SessionFrame reply;
    reply.mutable_fd_batch()->add_tickets("t1");
    reply.mutable_fd_batch()->add_tickets("t2");
    UniqueFd one = PipeReading("x");
    SendFrame(fd, reply, {one.get_unowned()});
    DrainUntilEof(fd);
  });
  auto session = OpenOn(daemon);
  ASSERT_TRUE(session.ok()) << session.status();
  const std::vector<std::string> tickets = {"t1", "t2"};
  auto fds = (*session)->RedeemMany(tickets);
  EXPECT_EQ(fds.status().code(), absl::StatusCode::kInternal);
  EXPECT_THAT(fds.status().message(), HasSubstr("granted 2 tickets"));
  EXPECT_THAT(fds.status().message(), HasSubstr("carried 1 fds"));
}

}  // namespace
}  // namespace devmem
