#include "kernel/fd_identity.h"

#include <fcntl.h>
#include <linux/netlink.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

#include <gtest/gtest.h>

#include "kernel/unique_fd.h"

namespace devmem {
namespace {

UniqueFd Genl() {
  return UniqueFd(socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_GENERIC));
}

// Netlink sockets get their port id when bound (autobind on first send).
void Autobind(int fd) {
  struct sockaddr_nl nl = {};
  nl.nl_family = AF_NETLINK;
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&nl), sizeof(nl)), 0);
}

TEST(FdIdentityTest, NetlinkSocketHasItsPortAndADupIsTheSame) {
  UniqueFd a = Genl();
  ASSERT_TRUE(a);
  Autobind(a.get_unowned());
  UniqueFd b = Genl();
  ASSERT_TRUE(b);
  Autobind(b.get_unowned());
  auto ia = IdentifyFd(a.get_unowned());
  auto ib = IdentifyFd(b.get_unowned());
  ASSERT_TRUE(ia.ok()) << ia.status();
  ASSERT_TRUE(ib.ok()) << ib.status();
  EXPECT_NE(ia->netlink_port, 0u);
  EXPECT_NE(ia->netlink_port, ib->netlink_port);
  EXPECT_NE(*ia, *ib);

  UniqueFd dup(fcntl(a.get_unowned(), F_DUPFD_CLOEXEC, 0));
  auto id = IdentifyFd(dup.get_unowned());
  ASSERT_TRUE(id.ok());
  EXPECT_EQ(*id, *ia);
  EXPECT_EQ(SameOpenFile(a.get_unowned(), dup.get_unowned()).value_or(false),
            true);
  EXPECT_EQ(SameOpenFile(a.get_unowned(), b.get_unowned()).value_or(true),
            false);
}

TEST(FdIdentityTest, FileOpenedTwiceIsNotTheSameOpenFile) {
  // Same inode, two open file descriptions: kcmp tells them apart.
  const std::string path = std::string(getenv("TEST_TMPDIR")) + "/f";
  UniqueFd a(open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
  UniqueFd b(open(path.c_str(), O_RDWR | O_CLOEXEC));
  ASSERT_TRUE(a);
  ASSERT_TRUE(b);
  EXPECT_EQ(*IdentifyFd(a.get_unowned()), *IdentifyFd(b.get_unowned()));
  EXPECT_EQ(IdentifyFd(a.get_unowned())->netlink_port, 0u);
  EXPECT_EQ(SameOpenFile(a.get_unowned(), b.get_unowned()).value_or(true),
            false);
  int p[2];
  ASSERT_EQ(pipe2(p, O_CLOEXEC), 0);
  UniqueFd r(p[0]), w(p[1]);
  EXPECT_EQ(SameOpenFile(a.get_unowned(), r.get_unowned()).value_or(true),
            false);
}

TEST(FdIdentityTest, ClosedFdIsAnError) {
  int p[2];
  ASSERT_EQ(pipe2(p, O_CLOEXEC), 0);
  UniqueFd r(p[0]);
  close(p[1]);
  EXPECT_FALSE(IdentifyFd(p[1]).ok());
  EXPECT_FALSE(SameOpenFile(r.get_unowned(), p[1]).ok());
}

}  // namespace
}  // namespace devmem
