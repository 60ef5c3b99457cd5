#pragma once

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "gtest/gtest.h"
#include "kernel/scm_rights.h"
#include "kernel/unique_fd.h"
#include "proto/devmem/v1/frame.h"
#include "proto/devmem/v1/session.pb.h"

namespace devmem {

// A pipe whose write end a test hands to the code under test; the read end
// tells when every copy of the write end has been closed.
struct TestPipe {
  UniqueFd r, w;
  TestPipe() {
    int p[2];
    EXPECT_EQ(::pipe2(p, O_CLOEXEC | O_NONBLOCK), 0);
    r.Reset(p[0]);
    w.Reset(p[1]);
  }
  bool WriterClosed() const {
    char c;
    return ::read(r.get_unowned(), &c, 1) == 0;
  }
};

// The write ends of `pipes`, borrowed (e.g. to send many fds in one frame).
inline std::vector<int> WriteEnds(const std::vector<TestPipe>& pipes) {
  std::vector<int> out;
  out.reserve(pipes.size());
  for (const TestPipe& p : pipes) out.push_back(p.w.get_unowned());
  return out;
}

// Closes our write ends, so that the read ends tell when the code under test
// closed its copies.
inline void CloseWriteEnds(std::vector<TestPipe>& pipes) {
  for (TestPipe& p : pipes) p.w.Reset();
}

// A raw session-socket client for daemon tests: speaks the frames of
// docs/PROTOCOL.md directly, so tests can also send what libdevmem never would.
class TestSessionClient {
 public:
  using Frame = devmem::v1::SessionFrame;

  explicit TestSessionClient(const std::string& path) {
    fd_.Reset(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
    struct sockaddr_un addr = {};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
    EXPECT_EQ(::connect(fd_.get_unowned(), reinterpret_cast<sockaddr*>(&addr),
                        sizeof(addr)),
              0);
  }

  // Next frame, or nullopt on EOF, timeout (10 s) or a bad frame. Fds (as
  // many as the kernel passes, so tests can see extra ones) go to *fds.
  std::optional<Frame> Read(std::vector<UniqueFd>* fds = nullptr) {
    struct pollfd p = {fd_.get_unowned(), POLLIN, 0};
    if (::poll(&p, 1, 10000) != 1) return std::nullopt;
    auto msg =
        RecvWithFds(fd_.get_unowned(), kMaxFrameBytes, kMaxFdsPerMessage);
    if (!msg.ok() || msg->eof) return std::nullopt;
    if (fds) *fds = std::move(msg->fds);
    auto f = DecodeFrame(msg->data);
    if (!f.ok()) return std::nullopt;
    return *f;
  }

  // Reads the daemon's first frame; true if it is a Hello (kept in hello()).
  bool ReadHello() {
    auto f = Read();
    if (!f.has_value() || f->body_case() != Frame::kHello) return false;
    hello_ = f->hello();
    return true;
  }
  const devmem::v1::Hello& hello() const { return hello_; }
  // The session socket, for tests that build their own sendmsg().
  int fd_unowned() const { return fd_.get_unowned(); }

  // True when the daemon closed the connection.
  bool ClosedByPeer() {
    struct pollfd p = {fd_.get_unowned(), POLLIN, 0};
    if (::poll(&p, 1, 10000) != 1) return false;
    char buf[16];
    return ::recv(fd_.get_unowned(), buf, sizeof(buf), 0) == 0;
  }

  void Send(const Frame& f, const std::vector<int>& fds = {}) {
    ASSERT_TRUE(SendWithFds(fd_.get_unowned(), *EncodeFrame(f), fds).ok());
  }
  void SendRaw(const std::string& bytes, const std::vector<int>& fds = {}) {
    ASSERT_TRUE(SendWithFds(fd_.get_unowned(), bytes, fds).ok());
  }

  // Sends RedeemMany{tickets} and returns the answer; its fds go to *fds.
  std::optional<Frame> RedeemMany(const std::vector<std::string>& tickets,
                                  std::vector<UniqueFd>* fds) {
    Frame f;
    auto* many = f.mutable_redeem_many();  // set even with no tickets
    for (const std::string& t : tickets) many->add_tickets(t);
    Send(f);
    return Read(fds);
  }

  // Sends DepositMany{labels} with `fds` (borrowed) and returns the answer.
  std::optional<Frame> DepositMany(
      const std::vector<int>& fds,
      const std::vector<std::string>& labels = {}) {
    Frame f;
    auto* dep = f.mutable_deposit_many();
    for (const std::string& l : labels) dep->add_labels(l);
    Send(f, fds);
    return Read();
  }

  // Redeems `ticket`: the fd from FdGrant, or the Error frame's code and
  // message.
  absl::StatusOr<UniqueFd> Redeem(const std::string& ticket) {
    Frame r;
    r.mutable_redeem()->set_ticket(ticket);
    if (!SendWithFds(fd_.get_unowned(), *EncodeFrame(r), {}).ok()) {
      return absl::InternalError("send");
    }
    std::vector<UniqueFd> fds;
    auto f = Read(&fds);
    if (!f) return absl::InternalError("no reply");
    if (f->body_case() == Frame::kError) {
      return absl::Status(static_cast<absl::StatusCode>(f->error().code()),
                          f->error().message());
    }
    if (fds.size() != 1) return absl::InternalError("no fd");
    return std::move(fds[0]);
  }

 private:
  UniqueFd fd_;
  devmem::v1::Hello hello_;
};

}  // namespace devmem
