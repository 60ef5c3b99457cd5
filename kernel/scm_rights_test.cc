#include "kernel/scm_rights.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

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
