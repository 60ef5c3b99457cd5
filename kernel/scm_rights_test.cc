#include "kernel/scm_rights.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace devmem {
namespace {

struct Pair {
  UniqueFd a, b;
  explicit Pair(int type = SOCK_SEQPACKET) {
    int sv[2];
    EXPECT_EQ(::socketpair(AF_UNIX, type | SOCK_CLOEXEC, 0, sv), 0);
    a.Reset(sv[0]);
    b.Reset(sv[1]);
  }
};

struct Pipe {
  UniqueFd r, w;
  Pipe() {
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

TEST(ScmRightsTest, PassesFdsWithCloexec) {
  Pair s;
  Pipe p;
  ASSERT_TRUE(SendWithFds(s.a.get_unowned(), "hi", {p.w.get_unowned()}).ok());
  p.w.Reset();
  auto m = RecvWithFds(s.b.get_unowned(), 64, 1);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->data, "hi");
  ASSERT_EQ(m->fds.size(), 1u);
  EXPECT_TRUE(::fcntl(m->fds[0].get_unowned(), F_GETFD) & FD_CLOEXEC);
  ASSERT_EQ(::write(m->fds[0].get_unowned(), "x", 1), 1);
  m->fds.clear();
  char c;
  EXPECT_EQ(::read(p.r.get_unowned(), &c, 1), 1);
  EXPECT_TRUE(p.WriterClosed());
}

TEST(ScmRightsTest, NoFds) {
  Pair s;
  ASSERT_TRUE(SendWithFds(s.a.get_unowned(), "abc", {}).ok());
  auto m = RecvWithFds(s.b.get_unowned(), 64, 1);
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->data, "abc");
  EXPECT_TRUE(m->fds.empty());
  EXPECT_FALSE(m->eof);
}

TEST(ScmRightsTest, TooManyFdsIsCtruncAndAllAreClosed) {
  Pair s;
  Pipe p1, p2, p3;
  ASSERT_TRUE(
      SendWithFds(s.a.get_unowned(), "x",
                  {p1.w.get_unowned(), p2.w.get_unowned(), p3.w.get_unowned()})
          .ok());
  p1.w.Reset();
  p2.w.Reset();
  p3.w.Reset();
  auto m = RecvWithFds(s.b.get_unowned(), 64, 1);
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(m.status().message().find("MSG_CTRUNC"), std::string::npos);
  // The one fd that fit was closed by us, the others by the kernel.
  EXPECT_TRUE(p1.WriterClosed());
  EXPECT_TRUE(p2.WriterClosed());
  EXPECT_TRUE(p3.WriterClosed());
}

TEST(ScmRightsTest, FdsWhenNoneExpectedAreRejectedAndClosed) {
  Pair s;
  Pipe p;
  ASSERT_TRUE(SendWithFds(s.a.get_unowned(), "x", {p.w.get_unowned()}).ok());
  p.w.Reset();
  auto m = RecvWithFds(s.b.get_unowned(), 64, 0);
  EXPECT_FALSE(m.ok());
  EXPECT_TRUE(p.WriterClosed());
}

TEST(ScmRightsTest, OversizeMessageIsTruncErrorAndFdsClosed) {
  Pair s;
  Pipe p;
  std::string big(100, 'z');
  ASSERT_TRUE(SendWithFds(s.a.get_unowned(), big, {p.w.get_unowned()}).ok());
  p.w.Reset();
  auto m = RecvWithFds(s.b.get_unowned(), 10, 1);
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.status().message().find("MSG_TRUNC"), std::string::npos);
  EXPECT_TRUE(p.WriterClosed());
}

TEST(ScmRightsTest, SendLimit) {
  Pair s;
  std::vector<int> fds(kMaxFdsPerMessage + 1, 0);
  auto st = SendWithFds(s.a.get_unowned(), "x", fds);
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  // Nothing was sent.
  ASSERT_EQ(::fcntl(s.b.get_unowned(), F_SETFL, O_NONBLOCK), 0);
  EXPECT_EQ(RecvWithFds(s.b.get_unowned(), 64, 1).status().code(),
            absl::StatusCode::kUnavailable);
}

// The write ends of `n` pipes, and their read ends to check them by.
std::vector<Pipe> Pipes(size_t n) { return std::vector<Pipe>(n); }

std::vector<int> WriteEnds(const std::vector<Pipe>& pipes) {
  std::vector<int> out;
  out.reserve(pipes.size());
  for (const Pipe& p : pipes) out.push_back(p.w.get_unowned());
  return out;
}

void CloseWriteEnds(std::vector<Pipe>& pipes) {
  for (Pipe& p : pipes) p.w.Reset();
}

// sendmsg() with each group of fds in its own SCM_RIGHTS control message,
// as a client not using SendWithFds may do. Returns errno, 0 on success.
int SendInGroups(int sock, const std::vector<std::vector<int>>& groups) {
  std::vector<char> control;
  for (const auto& g : groups) {
    control.resize(control.size() + CMSG_SPACE(sizeof(int) * g.size()));
  }
  char byte = 'x';
  struct iovec iov = {&byte, 1};
  struct msghdr msg = {};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control.data();
  msg.msg_controllen = control.size();
  struct cmsghdr* c = CMSG_FIRSTHDR(&msg);
  for (const auto& g : groups) {
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * g.size());
    std::memcpy(CMSG_DATA(c), g.data(), sizeof(int) * g.size());
    c = CMSG_NXTHDR(&msg, c);
  }
  return ::sendmsg(sock, &msg, MSG_NOSIGNAL) == 1 ? 0 : errno;
}

TEST(ScmRightsTest, KernelMaximumRoundTripsInOrder) {
  Pair s;
  std::vector<Pipe> pipes = Pipes(kMaxFdsPerMessage);
  ASSERT_TRUE(SendWithFds(s.a.get_unowned(), "many", WriteEnds(pipes)).ok());
  CloseWriteEnds(pipes);
  auto m = RecvWithFds(s.b.get_unowned(), 64, kMaxFdsPerMessage);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->data, "many");
  ASSERT_EQ(m->fds.size(), kMaxFdsPerMessage);
  for (size_t i = 0; i < pipes.size(); ++i) {
    EXPECT_TRUE(::fcntl(m->fds[i].get_unowned(), F_GETFD) & FD_CLOEXEC);
    const std::string tag = std::to_string(i);
    ASSERT_EQ(::write(m->fds[i].get_unowned(), tag.data(), tag.size()),
              static_cast<ssize_t>(tag.size()));
    char buf[8] = {};
    ASSERT_EQ(::read(pipes[i].r.get_unowned(), buf, sizeof(buf)),
              static_cast<ssize_t>(tag.size()));
    EXPECT_EQ(std::string(buf), tag) << "fd " << i << " is another pipe";
  }
}

TEST(ScmRightsTest, KernelRefusesMoreThanItsMaximumEvenSplit) {
  Pair s;
  std::vector<Pipe> pipes = Pipes(kMaxFdsPerMessage + 1);
  std::vector<int> ends = WriteEnds(pipes);
  const std::vector<int> last = {ends.back()};
  ends.pop_back();
  // include/net/scm.h SCM_MAX_FD counts the whole message
  // (net/core/scm.c, scm_fp_copy): EINVAL, nothing sent.
  EXPECT_EQ(SendInGroups(s.a.get_unowned(), {ends, last}), EINVAL);
  CloseWriteEnds(pipes);
  for (const Pipe& p : pipes) EXPECT_TRUE(p.WriterClosed());
}

TEST(ScmRightsTest, SeveralRightsMessagesAreAllTaken) {
  Pair s;
  std::vector<Pipe> pipes = Pipes(5);
  const std::vector<int> ends = WriteEnds(pipes);
  ASSERT_EQ(SendInGroups(s.a.get_unowned(),
                         {{ends[0], ends[1]}, {ends[2], ends[3], ends[4]}}),
            0);
  CloseWriteEnds(pipes);
  auto m = RecvWithFds(s.b.get_unowned(), 64, 5);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->fds.size(), 5u);
  m->fds.clear();
  for (const Pipe& p : pipes) EXPECT_TRUE(p.WriterClosed());
}

TEST(ScmRightsTest, SmallControlBufferIsCtruncAndClosesAll) {
  Pair s;
  std::vector<Pipe> pipes = Pipes(kMaxFdsPerMessage);
  ASSERT_TRUE(SendWithFds(s.a.get_unowned(), "x", WriteEnds(pipes)).ok());
  CloseWriteEnds(pipes);
  auto m = RecvWithFds(s.b.get_unowned(), 64, 100);
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.status().message().find("MSG_CTRUNC"), std::string::npos);
  // The 100 that fit were closed by RecvWithFds, the rest by the kernel.
  for (const Pipe& p : pipes) EXPECT_TRUE(p.WriterClosed());
}

TEST(ScmRightsTest, EofAndEagain) {
  Pair s;
  ASSERT_EQ(::fcntl(s.b.get_unowned(), F_SETFL, O_NONBLOCK), 0);
  auto m = RecvWithFds(s.b.get_unowned(), 64, 1);
  EXPECT_EQ(m.status().code(), absl::StatusCode::kUnavailable);
  s.a.Reset();
  m = RecvWithFds(s.b.get_unowned(), 64, 1);
  ASSERT_TRUE(m.ok());
  EXPECT_TRUE(m->eof);
}

TEST(UniqueFdTest, MoveAndRelease) {
  Pipe p;
  UniqueFd a(std::move(p.w));
  EXPECT_FALSE(p.w.valid());
  UniqueFd b;
  b = std::move(a);
  EXPECT_TRUE(b.valid());
  int raw = b.Release();
  EXPECT_FALSE(b.valid());
  EXPECT_FALSE(p.WriterClosed());
  ::close(raw);
  EXPECT_TRUE(p.WriterClosed());
}

}  // namespace
}  // namespace devmem
