// PrepareConnect, Dial and FinishConnects: many connects in flight at once,
// each with its own outcome, on loopback. DeviceSocket binds to "lo" with
// SO_BINDTODEVICE, which needs CAP_NET_RAW: without root the tests skip.
#include "daemon/session/socket_broker.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace devmem {
namespace {

using ::testing::HasSubstr;

uint16_t PortOf(int fd) {
  sockaddr_in a{};
  socklen_t len = sizeof(a);
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  return ntohs(a.sin_port);
}

UniqueFd Listener() {
  UniqueFd fd(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(fd.get_unowned(), reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 ||
      listen(fd.get_unowned(), 64) != 0) {
    return UniqueFd();
  }
  return fd;
}

class SocketBrokerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) {
      GTEST_SKIP() << "needs root: sockets are bound to lo with "
                      "SO_BINDTODEVICE";
    }
  }
};

TEST_F(SocketBrokerTest, ManyConnectsInFlightEachWithItsOwnOutcome) {
  UniqueFd peer = Listener();
  ASSERT_TRUE(peer);
  uint16_t closed = 0;
  {
    UniqueFd gone = Listener();
    closed = PortOf(gone.get_unowned());
  }
  std::vector<PendingConnect> pending;
  std::vector<bool> good;
  for (int i = 0; i < 20; ++i) {
    const bool ok = i % 5 != 4;
    auto remote = ParseSockAddr(
        "127.0.0.1", ok ? PortOf(peer.get_unowned()) : closed, AF_INET);
    ASSERT_TRUE(remote.ok());
    auto p = PrepareConnect("lo", *remote, nullptr, absl::Seconds(5),
                            /*bind_first=*/false);
    ASSERT_TRUE(p.ok()) << p.status();
    if (absl::Status dialled = Dial(&*p); !dialled.ok()) {
      // Loopback may refuse at once; that is the refused item's answer.
      EXPECT_FALSE(ok) << dialled;
      EXPECT_THAT(dialled.message(), HasSubstr("refused"));
      continue;
    }
    pending.push_back(*std::move(p));
    good.push_back(ok);
  }
  const std::vector<absl::Status> done =
      FinishConnects(absl::MakeSpan(pending));
  ASSERT_EQ(done.size(), pending.size());
  for (size_t i = 0; i < done.size(); ++i) {
    if (!good[i]) {
      EXPECT_EQ(done[i].code(), absl::StatusCode::kUnavailable) << done[i];
      EXPECT_THAT(done[i].message(), HasSubstr("refused"));
      continue;
    }
    ASSERT_TRUE(done[i].ok()) << done[i];
    const int fd = pending[i].fd.get_unowned();
    sockaddr_in a{};
    socklen_t len = sizeof(a);
    EXPECT_EQ(getpeername(fd, reinterpret_cast<sockaddr*>(&a), &len), 0);
    EXPECT_EQ(ntohs(a.sin_port), PortOf(peer.get_unowned()));
    // Blocking again, as devmemd hands it over.
    EXPECT_EQ(fcntl(fd, F_GETFL) & O_NONBLOCK, 0);
  }
}

TEST_F(SocketBrokerTest, ConnectPastItsDeadlineWhenWaitedForTimesOut) {
  UniqueFd peer = Listener();
  ASSERT_TRUE(peer);
  auto remote = ParseSockAddr("127.0.0.1", PortOf(peer.get_unowned()), AF_INET);
  ASSERT_TRUE(remote.ok());
  auto p = PrepareConnect("lo", *remote, nullptr, absl::Nanoseconds(1),
                          /*bind_first=*/false);
  ASSERT_TRUE(p.ok()) << p.status();
  ASSERT_TRUE(Dial(&*p).ok());
  if (p->connected) GTEST_SKIP() << "connect(2) completed at once";
  std::vector<PendingConnect> one;
  one.push_back(*std::move(p));
  const absl::Status done = FinishConnects(absl::MakeSpan(one))[0];
  EXPECT_EQ(done.code(), absl::StatusCode::kDeadlineExceeded) << done;
  EXPECT_THAT(done.message(), HasSubstr("no answer within"));
}

TEST_F(SocketBrokerTest, RouteSourcesAsksOncePerDeviceAndPeer) {
  RouteSources routes;
  auto a = ParseSockAddr("127.0.0.1", 9, AF_INET);
  auto b = ParseSockAddr("127.0.0.2", 9, AF_INET);
  ASSERT_TRUE(a.ok() && b.ok());
  for (int round = 0; round < 3; ++round) {
    auto from_a = routes.Source("lo", *a);
    ASSERT_TRUE(from_a.ok()) << from_a.status();
    EXPECT_EQ(AddressIp(*from_a), "127.0.0.1");
    auto from_b = routes.Source("lo", *b);
    ASSERT_TRUE(from_b.ok()) << from_b.status();
    EXPECT_EQ(AddressIp(*from_b), "127.0.0.1");
  }
  EXPECT_EQ(routes.remembered(), 2u);
  // No route: said every time, never remembered.
  auto nowhere = ParseSockAddr("::1", 9, AF_INET6);
  ASSERT_TRUE(nowhere.ok());
  auto bad = routes.Source("no-such-dev0", *nowhere);
  EXPECT_FALSE(bad.ok());
  EXPECT_EQ(routes.remembered(), 2u);
}

TEST_F(SocketBrokerTest, BindFirstGivesTheBoundAddressBeforeTheSyn) {
  UniqueFd peer = Listener();
  ASSERT_TRUE(peer);
  auto remote = ParseSockAddr("127.0.0.1", PortOf(peer.get_unowned()), AF_INET);
  ASSERT_TRUE(remote.ok());
  auto p = PrepareConnect("lo", *remote, nullptr, absl::Seconds(5),
                          /*bind_first=*/true);
  ASSERT_TRUE(p.ok()) << p.status();
  const SockAddr seen = p->local;
  sockaddr_in peer_addr{};
  socklen_t len = sizeof(peer_addr);
  EXPECT_NE(getpeername(p->fd.get_unowned(),
                        reinterpret_cast<sockaddr*>(&peer_addr), &len),
            0)
      << "connected before Dial";
  EXPECT_EQ(AddressIp(seen), "127.0.0.1");
  EXPECT_NE(AddressPort(seen), 0u);
  ASSERT_TRUE(Dial(&*p).ok());
  EXPECT_EQ(AddressPort(p->local), AddressPort(seen));
  EXPECT_EQ(AddressPort(p->remote), PortOf(peer.get_unowned()));
  std::vector<PendingConnect> one;
  one.push_back(*std::move(p));
  ASSERT_TRUE(FinishConnects(absl::MakeSpan(one))[0].ok());
  auto local = LocalAddress(one[0].fd.get_unowned());
  ASSERT_TRUE(local.ok());
  EXPECT_EQ(AddressPort(*local), AddressPort(seen));
}

// Port 0 for a steered connect comes from the upper half of the range,
// out of the way of listeners (SO_REUSEADDR: lower half first).
TEST_F(SocketBrokerTest, ASteeredConnectTakesItsPortFromTheUpperHalf) {
  std::ifstream range("/proc/sys/net/ipv4/ip_local_port_range");
  uint32_t low = 0, high = 0;
  ASSERT_TRUE(range >> low >> high);
  UniqueFd probe(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  uint32_t mine = low | (high << 16);
  if (::setsockopt(probe.get_unowned(), IPPROTO_IP, 51, &mine, sizeof(mine)) !=
      0) {
    GTEST_SKIP() << "no IP_LOCAL_PORT_RANGE (Linux 6.3+): "
                 << std::strerror(errno);
  }
  const uint32_t half = low + (((high - low) >> 2) << 1);
  UniqueFd peer = Listener();
  ASSERT_TRUE(peer);
  auto remote = ParseSockAddr("127.0.0.1", PortOf(peer.get_unowned()), AF_INET);
  ASSERT_TRUE(remote.ok());
  for (int i = 0; i < 20; ++i) {
    auto p = PrepareConnect("lo", *remote, nullptr, absl::Seconds(5),
                            /*bind_first=*/true);
    ASSERT_TRUE(p.ok()) << p.status();
    const uint32_t port = AddressPort(p->local);
    EXPECT_GE(port, half);
    EXPECT_LE(port, high);
  }
}

TEST_F(SocketBrokerTest, NothingToWaitForIsNothing) {
  EXPECT_TRUE(FinishConnects({}).empty());
}

}  // namespace
}  // namespace devmem
