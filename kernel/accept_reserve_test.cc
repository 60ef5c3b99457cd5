#include "kernel/accept_reserve.h"

#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace devmem {
namespace {

// A listening Unix socket in the abstract namespace.
UniqueFd Listener(sockaddr_un* addr) {
  UniqueFd fd(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  std::memset(addr, 0, sizeof(*addr));
  addr->sun_family = AF_UNIX;
  const std::string name = "devmem-accept-reserve-" + std::to_string(getpid());
  std::memcpy(addr->sun_path + 1, name.data(), name.size());
  EXPECT_EQ(bind(fd.get_unowned(), reinterpret_cast<sockaddr*>(addr),
                 sizeof(sa_family_t) + 1 + name.size()),
            0);
  EXPECT_EQ(listen(fd.get_unowned(), 16), 0);
  return fd;
}

UniqueFd Dial(const sockaddr_un& addr) {
  UniqueFd fd(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  const size_t len = sizeof(sa_family_t) + 1 + std::strlen(addr.sun_path + 1);
  EXPECT_EQ(
      connect(fd.get_unowned(), reinterpret_cast<const sockaddr*>(&addr), len),
      0);
  return fd;
}

TEST(AcceptReserveTest, AcceptsNormally) {
  sockaddr_un addr;
  UniqueFd l = Listener(&addr);
  AcceptReserve reserve;
  UniqueFd none = reserve.Accept(l.get_unowned(), SOCK_CLOEXEC, nullptr);
  EXPECT_FALSE(none.valid());
  EXPECT_EQ(errno, EAGAIN);
  UniqueFd c = Dial(addr);
  UniqueFd got = reserve.Accept(l.get_unowned(), SOCK_CLOEXEC, nullptr);
  EXPECT_TRUE(got.valid());
  EXPECT_EQ(reserve.shed(), 0u);
}

TEST(AcceptReserveTest, OutOfFdsShedsThePendingConnectionWithARefusal) {
  sockaddr_un addr;
  UniqueFd l = Listener(&addr);
  AcceptReserve reserve;
  UniqueFd client = Dial(addr);
  // Use up every fd below a lowered limit.
  struct rlimit old;
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &old), 0);
  std::vector<UniqueFd> hog;
  struct rlimit low = old;
  low.rlim_cur = 64;
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &low), 0);
  for (;;) {
    UniqueFd fd(dup(0));
    if (!fd) break;
    hog.push_back(std::move(fd));
  }
  int refused_fd = -1;
  UniqueFd got = reserve.Accept(l.get_unowned(), SOCK_CLOEXEC, [&](int fd) {
    refused_fd = fd;
    const char msg[] = "busy";
    (void)!write(fd, msg, 4);
  });
  const int err = errno;
  hog.clear();
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &old), 0);
  EXPECT_FALSE(got.valid());
  EXPECT_EQ(err, EMFILE);
  EXPECT_GE(refused_fd, 0) << "the pending connection was not taken";
  EXPECT_EQ(reserve.shed(), 1u);
  // The client got the refusal and then EOF, instead of waiting forever.
  char buf[8];
  EXPECT_EQ(read(client.get_unowned(), buf, sizeof(buf)), 4);
  EXPECT_EQ(read(client.get_unowned(), buf, sizeof(buf)), 0);
  // The listener's queue is empty again and the reserve is back.
  UniqueFd none = reserve.Accept(l.get_unowned(), SOCK_CLOEXEC, nullptr);
  EXPECT_EQ(errno, EAGAIN);
  UniqueFd c2 = Dial(addr);
  EXPECT_TRUE(reserve.Accept(l.get_unowned(), SOCK_CLOEXEC, nullptr).valid());
}

}  // namespace
}  // namespace devmem
