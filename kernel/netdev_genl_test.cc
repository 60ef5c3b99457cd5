#include "kernel/netdev_genl.h"

#include <net/if.h>
#include <netlink/attr.h>

#include <cerrno>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kernel/errno_status.h"
#include "kernel/genl_family.h"
#include "kernel/libnl_socket.h"
#include "kernel/uapi_compat.h"

namespace devmem {
namespace {

using ::testing::HasSubstr;

constexpr uint32_t kNoSuchIfindex = 0x7ffffff0;

// Real-kernel tests use `lo`: up in the test's namespace, one RX and one TX
// queue, no NAPI.
class NetdevGenlTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<NetdevGenl>> opened = NetdevGenl::Open();
    ASSERT_TRUE(opened.ok()) << opened.status();
    netdev_ = *std::move(opened);
    lo_ = if_nametoindex("lo");
    ASSERT_NE(lo_, 0u);
  }
  std::unique_ptr<NetdevGenl> netdev_;
  uint32_t lo_ = 0;
};

TEST_F(NetdevGenlTest, FamilyHasBindRxOnThisKernel) {
  EXPECT_EQ(netdev_->family().name, "netdev");
  EXPECT_TRUE(netdev_->family().HasOp(NETDEV_CMD_QUEUE_GET));
  // 6.12+ (the project machines run 6.18).
  EXPECT_TRUE(netdev_->HasBindRx());
}

TEST_F(NetdevGenlTest, DevGetLoopback) {
  absl::StatusOr<NetdevDevInfo> dev = netdev_->DevGet(lo_);
  ASSERT_TRUE(dev.ok()) << dev.status();
  EXPECT_EQ(dev->ifindex, lo_);
}

TEST_F(NetdevGenlTest, DevGetUnknownIfindexKeepsErrno) {
  absl::StatusOr<NetdevDevInfo> dev = netdev_->DevGet(kNoSuchIfindex);
  ASSERT_FALSE(dev.ok());
  EXPECT_EQ(StatusErrno(dev.status()), ENODEV) << dev.status();
  EXPECT_THAT(dev.status().message(),
              HasSubstr("netdev dev-get ifindex 2147483632"));
}

TEST_F(NetdevGenlTest, QueuesOfLoopback) {
  absl::StatusOr<std::vector<QueueInfo>> queues = netdev_->QueueGet(lo_);
  ASSERT_TRUE(queues.ok()) << queues.status();
  ASSERT_EQ(queues->size(), 2u);
  EXPECT_EQ((*queues)[0].type, QueueInfo::Type::kRx);
  EXPECT_EQ((*queues)[0].id, 0u);
  EXPECT_EQ((*queues)[1].type, QueueInfo::Type::kTx);
  EXPECT_EQ((*queues)[1].id, 0u);
  for (const QueueInfo& q : *queues) {
    EXPECT_FALSE(q.dmabuf.has_value());
    EXPECT_FALSE(q.io_uring);
    EXPECT_FALSE(q.xsk);
  }
}

TEST_F(NetdevGenlTest, QueueDumpOfUnknownIfindexFails) {
  absl::StatusOr<std::vector<QueueInfo>> queues =
      netdev_->QueueGet(kNoSuchIfindex);
  ASSERT_FALSE(queues.ok());
  EXPECT_EQ(StatusErrno(queues.status()), ENODEV) << queues.status();
}

TEST(NetdevGenlRawTest, MissingAttributeComesBackAsExtack) {
  absl::StatusOr<std::unique_ptr<LibnlGenlSocket>> sock =
      LibnlGenlSocket::Open();
  ASSERT_TRUE(sock.ok()) << sock.status();
  absl::StatusOr<GenlFamily> family = ResolveGenlFamily(**sock, "netdev");
  ASSERT_TRUE(family.ok()) << family.status();
  // dev-get without NETDEV_A_DEV_IFINDEX: net/core/netdev-genl.c
  // netdev_nl_dev_get_doit() GENL_REQ_ATTR_CHECK -> EINVAL + MISS_TYPE.
  LibnlGenlSocket::MsgPtr msg = LibnlGenlSocket::NewMessage();
  ASSERT_TRUE(LibnlGenlSocket::PutGenlHeader(msg.get(), family->id,
                                             NETDEV_CMD_DEV_GET, 1, 0)
                  .ok());
  absl::Status s = (*sock)->Transact(
      msg.get(), "netdev dev-get (no ifindex)",
      [](absl::Span<const uint8_t>) { return absl::OkStatus(); });
  EXPECT_EQ(StatusErrno(s), EINVAL) << s;
  EXPECT_EQ(StatusExtack(s), "missing required attribute 1") << s;
}

// Hand-made queue-get reply of a devmem-bound RX queue (6.12+ attributes).
alignas(4) constexpr uint8_t kBoundRxQueue[] = {
    // nlmsghdr: len 64, type 0x1d, flags NLM_F_MULTI
    0x40, 0x00, 0x00, 0x00, 0x1d, 0x00, 0x02, 0x00, 0x07, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00,
    // genlmsghdr: cmd 10 QUEUE_GET, version 1
    0x0a, 0x01, 0x00, 0x00,
    // ID 3, IFINDEX 4, TYPE 0 (RX), NAPI_ID 8195, DMABUF 2
    0x08, 0x00, 0x01, 0x00, 0x03, 0x00, 0x00, 0x00,  //
    0x08, 0x00, 0x02, 0x00, 0x04, 0x00, 0x00, 0x00,  //
    0x08, 0x00, 0x03, 0x00, 0x00, 0x00, 0x00, 0x00,  //
    0x08, 0x00, 0x04, 0x00, 0x03, 0x20, 0x00, 0x00,  //
    0x08, 0x00, 0x05, 0x00, 0x02, 0x00, 0x00, 0x00,  //
    // XSK (7): empty nest
    0x04, 0x00, 0x07, 0x80};

TEST(NetdevParseTest, BoundRxQueue) {
  uint32_t ifindex = 0;
  absl::StatusOr<QueueInfo> q = ParseNetdevQueueReply(kBoundRxQueue, &ifindex);
  ASSERT_TRUE(q.ok()) << q.status();
  EXPECT_EQ(ifindex, 4u);
  EXPECT_EQ(q->id, 3u);
  EXPECT_EQ(q->type, QueueInfo::Type::kRx);
  EXPECT_EQ(q->napi_id, 8195u);
  EXPECT_EQ(q->dmabuf, 2u);
  EXPECT_FALSE(q->io_uring);
  EXPECT_TRUE(q->xsk);
}

TEST(NetdevParseTest, QueueWithoutTypeIsRejected) {
  alignas(4) const uint8_t msg[] = {0x1c, 0x00, 0x00, 0x00, 0x1d, 0x00, 0x02,
                                    0x00, 0x07, 0x00, 0x00, 0x00, 0x00, 0x00,
                                    0x00, 0x00, 0x0a, 0x01, 0x00, 0x00, 0x08,
                                    0x00, 0x01, 0x00, 0x03, 0x00, 0x00, 0x00};
  absl::StatusOr<QueueInfo> q = ParseNetdevQueueReply(msg, nullptr);
  ASSERT_FALSE(q.ok());
  EXPECT_THAT(q.status().message(), HasSubstr("queue without type"));
}

TEST(NetdevParseTest, DevReplyWithU64XdpFeatures) {
  alignas(4) const uint8_t msg[] = {
      0x28, 0x00, 0x00, 0x00, 0x1d, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00,
      0x00, 0x00, 0x00, 0x00, 0x01, 0x01, 0x00, 0x00,
      // IFINDEX 4
      0x08, 0x00, 0x01, 0x00, 0x04, 0x00, 0x00, 0x00,
      // XDP_FEATURES (3) u64 0x7f
      0x0c, 0x00, 0x03, 0x00, 0x7f, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00};
  absl::StatusOr<NetdevDevInfo> dev = ParseNetdevDevReply(msg);
  ASSERT_TRUE(dev.ok()) << dev.status();
  EXPECT_EQ(dev->ifindex, 4u);
  EXPECT_EQ(dev->xdp_features, 0x7fu);
}

}  // namespace
}  // namespace devmem
