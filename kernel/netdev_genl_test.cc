#include "kernel/netdev_genl.h"

#include <fcntl.h>
#include <linux/netlink.h>
#include <net/if.h>
#include <netlink/attr.h>
#include <sys/socket.h>

#include <cerrno>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kernel/errno_status.h"
#include "kernel/genl_family.h"
#include "kernel/genl_msg.h"
#include "kernel/libnl_socket.h"
#include "kernel/uapi_compat.h"
#include "kernel/unique_fd.h"

namespace devmem {
namespace {

#include "kernel/testdata/netdev_replies.inc"

using ::testing::ElementsAre;
using ::testing::ElementsAreArray;
using ::testing::HasSubstr;

std::vector<uint8_t> Bytes(const GenlMsg& msg) {
  return std::vector<uint8_t>(msg.bytes().begin(), msg.bytes().end());
}

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

TEST(NetdevParseTest, PagePoolReplyWithDmabufAndU64Counters) {
  alignas(4) const uint8_t msg[] = {
      0x48, 0x00, 0x00, 0x00, 0x1d, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00,
      0x00, 0x00, 0x00, 0x00, 0x05, 0x01, 0x00, 0x00,  // cmd 5 PAGE_POOL_GET
      // ID (1) uint as u32: 9
      0x08, 0x00, 0x01, 0x00, 0x09, 0x00, 0x00, 0x00,
      // IFINDEX (2) u32: 4
      0x08, 0x00, 0x02, 0x00, 0x04, 0x00, 0x00, 0x00,
      // NAPI_ID (3) uint: 8193
      0x08, 0x00, 0x03, 0x00, 0x01, 0x20, 0x00, 0x00,
      // INFLIGHT (4) uint as u64: 0x1_0000_0002
      0x0c, 0x00, 0x04, 0x00, 0x02, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00,
      // INFLIGHT_MEM (5) uint: 8192
      0x08, 0x00, 0x05, 0x00, 0x00, 0x20, 0x00, 0x00,
      // DMABUF (7) u32: 3
      0x08, 0x00, 0x07, 0x00, 0x03, 0x00, 0x00, 0x00};
  absl::StatusOr<PagePoolInfo> pool = ParseNetdevPagePoolReply(msg);
  ASSERT_TRUE(pool.ok()) << pool.status();
  EXPECT_EQ(pool->id, 9u);
  EXPECT_EQ(pool->ifindex, 4u);
  EXPECT_EQ(pool->napi_id, 8193u);
  EXPECT_EQ(pool->inflight, 0x100000002u);
  EXPECT_EQ(pool->inflight_mem, 8192u);
  EXPECT_EQ(pool->dmabuf, 3u);
  EXPECT_FALSE(pool->detach_time.has_value());
}

TEST(NetdevParseTest, DetachedPagePoolHasNoIfindex) {
  alignas(4) const uint8_t msg[] = {
      0x24, 0x00, 0x00, 0x00, 0x1d, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00,
      0x00, 0x00, 0x00, 0x00, 0x05, 0x01, 0x00, 0x00,
      // ID 2
      0x08, 0x00, 0x01, 0x00, 0x02, 0x00, 0x00, 0x00,
      // DETACH_TIME (6) 1234
      0x08, 0x00, 0x06, 0x00, 0xd2, 0x04, 0x00, 0x00};
  absl::StatusOr<PagePoolInfo> pool = ParseNetdevPagePoolReply(msg);
  ASSERT_TRUE(pool.ok()) << pool.status();
  EXPECT_FALSE(pool->ifindex.has_value());
  EXPECT_EQ(pool->detach_time, 1234u);
}

TEST(NetdevParseTest, PagePoolReplyErrorsNameTheProblem) {
  // No ID.
  alignas(4) const uint8_t no_id[] = {0x1c, 0x00, 0x00, 0x00, 0x1d, 0x00, 0x00,
                                      0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00,
                                      0x00, 0x00, 0x05, 0x01, 0x00, 0x00, 0x08,
                                      0x00, 0x02, 0x00, 0x04, 0x00, 0x00, 0x00};
  absl::StatusOr<PagePoolInfo> pool = ParseNetdevPagePoolReply(no_id);
  ASSERT_FALSE(pool.ok());
  EXPECT_THAT(pool.status().message(), HasSubstr("page pool without id"));
  // INFLIGHT of 2 bytes (a uint is 4 or 8).
  alignas(4) const uint8_t short_uint[] = {
      0x24, 0x00, 0x00, 0x00, 0x1d, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00,
      0x00, 0x00, 0x00, 0x00, 0x05, 0x01, 0x00, 0x00, 0x08, 0x00, 0x01, 0x00,
      0x02, 0x00, 0x00, 0x00, 0x06, 0x00, 0x04, 0x00, 0x01, 0x00, 0x00, 0x00};
  pool = ParseNetdevPagePoolReply(short_uint);
  ASSERT_FALSE(pool.ok());
  EXPECT_THAT(pool.status().message(), HasSubstr("page-pool-get reply"));
  // Another command's reply.
  alignas(4) const uint8_t wrong_cmd[] = {
      0x1c, 0x00, 0x00, 0x00, 0x1d, 0x00, 0x00, 0x00, 0x01, 0x00,
      0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0c, 0x01, 0x00, 0x00,
      0x08, 0x00, 0x01, 0x00, 0x02, 0x00, 0x00, 0x00};
  EXPECT_FALSE(ParseNetdevPagePoolReply(wrong_cmd).ok());
}

TEST_F(NetdevGenlTest, LoopbackHasNoPagePools) {
  absl::StatusOr<std::vector<PagePoolInfo>> pools = netdev_->PagePoolGet(lo_);
  ASSERT_TRUE(pools.ok()) << pools.status();
  EXPECT_TRUE(pools->empty());
}

TEST_F(NetdevGenlTest, LoopbackHasNoNapi) {
  absl::StatusOr<std::vector<NapiInfo>> napis = netdev_->NapiGet(lo_);
  ASSERT_TRUE(napis.ok()) << napis.status();
  EXPECT_TRUE(napis->empty());
}

TEST_F(NetdevGenlTest, LoopbackHasNoQueueStats) {
  // lo has no netdev_stat_ops: net/core/netdev-genl.c
  // netdev_nl_qstats_get_dumpit() fails the filtered dump with EOPNOTSUPP.
  for (bool per_queue : {false, true}) {
    absl::StatusOr<std::vector<QstatsInfo>> stats =
        netdev_->QstatsGet(lo_, per_queue);
    ASSERT_FALSE(stats.ok());
    EXPECT_EQ(StatusErrno(stats.status()), EOPNOTSUPP) << stats.status();
    EXPECT_THAT(stats.status().message(), HasSubstr("netdev qstats-get lo"));
  }
}

// --- Builders, byte for byte against KERNEL_API.md section 1 ---

TEST(NetdevBuildTest, BindRxWithTwoQueues) {
  const uint32_t queues[] = {2, 3};
  GenlMsg msg = BuildNetdevBindRx(0x14, /*ifindex=*/5, /*dmabuf_fd=*/9, queues);
  ASSERT_FALSE(msg.overflowed());
  EXPECT_THAT(Bytes(msg),
              ElementsAreArray<uint8_t>({
                  0x4c, 0x00, 0x00, 0x00,  // len 76
                  0x14, 0x00, 0x05, 0x00,  // family 0x14, REQUEST|ACK
                  0x00, 0x00, 0x00, 0x00,  // seq 0
                  0x00, 0x00, 0x00, 0x00,  // pid 0
                  0x0d, 0x01, 0x00, 0x00,  // cmd 13 BIND_RX, version 1
                  0x08, 0x00, 0x01, 0x00, 0x05, 0x00, 0x00, 0x00,  // IFINDEX 5
                  0x08, 0x00, 0x03, 0x00, 0x09, 0x00, 0x00, 0x00,  // FD 9
                  0x14, 0x00, 0x02, 0x80,  // QUEUES, nested
                  0x08, 0x00, 0x01, 0x00, 0x02, 0x00, 0x00, 0x00,  // ID 2
                  0x08, 0x00, 0x03, 0x00, 0x00, 0x00, 0x00, 0x00,  // TYPE RX
                  0x14, 0x00, 0x02, 0x80,                          //
                  0x08, 0x00, 0x01, 0x00, 0x03, 0x00, 0x00, 0x00,  // ID 3
                  0x08, 0x00, 0x03, 0x00, 0x00, 0x00, 0x00, 0x00,  // TYPE RX
              }));
}

TEST(NetdevBuildTest, BindRxWithNoQueuesIsStillBuilt) {
  // The kernel must see (and refuse) it: ncdevmem's test mode checks that.
  GenlMsg msg = BuildNetdevBindRx(0x14, 5, 9, {});
  EXPECT_EQ(msg.bytes().size(), 36u);
}

TEST(NetdevBuildTest, BindTx) {
  GenlMsg msg = BuildNetdevBindTx(0x14, /*ifindex=*/5, /*dmabuf_fd=*/9);
  EXPECT_THAT(Bytes(msg),
              ElementsAreArray<uint8_t>({
                  0x24, 0x00, 0x00, 0x00,  // len 36
                  0x14, 0x00, 0x05, 0x00,  // REQUEST|ACK
                  0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,  //
                  0x0f, 0x01, 0x00, 0x00,  // cmd 15 BIND_TX
                  0x08, 0x00, 0x01, 0x00, 0x05, 0x00, 0x00, 0x00,  // IFINDEX
                  0x08, 0x00, 0x03, 0x00, 0x09, 0x00, 0x00, 0x00,  // FD
              }));
}

TEST(NetdevBuildTest, PagePoolDumpIsABareHeader) {
  EXPECT_THAT(Bytes(BuildNetdevPagePoolGetDump(0x14)),
              ElementsAreArray<uint8_t>({
                  0x14, 0x00, 0x00, 0x00,  // len 20
                  0x14, 0x00, 0x05, 0x03,  // REQUEST|ACK|DUMP (0x305)
                  0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,  //
                  0x05, 0x01, 0x00, 0x00,  // cmd 5 PAGE_POOL_GET, version 1
              }));
}

TEST(NetdevBuildTest, NapiAndQstatsDumps) {
  EXPECT_THAT(Bytes(BuildNetdevNapiGetDump(0x14, 7)),
              ElementsAreArray<uint8_t>({
                  0x1c, 0x00, 0x00, 0x00,  // len 28
                  0x14, 0x00, 0x05, 0x03,  // REQUEST|ACK|DUMP (0x305)
                  0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,  //
                  0x0b, 0x01, 0x00, 0x00,  // cmd 11 NAPI_GET
                  0x08, 0x00, 0x01, 0x00, 0x07, 0x00, 0x00, 0x00,  // IFINDEX
              }));
  EXPECT_THAT(Bytes(BuildNetdevQstatsGetDump(0x14, 7, /*per_queue=*/false)),
              ElementsAreArray<uint8_t>({
                  0x1c, 0x00, 0x00, 0x00, 0x14, 0x00, 0x05, 0x03,  //
                  0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,  //
                  0x0c, 0x01, 0x00, 0x00,  // cmd 12 QSTATS_GET
                  0x08, 0x00, 0x01, 0x00, 0x07, 0x00, 0x00, 0x00,  // IFINDEX
              }));
  EXPECT_THAT(Bytes(BuildNetdevQstatsGetDump(0x14, 7, /*per_queue=*/true)),
              ElementsAreArray<uint8_t>({
                  0x24, 0x00, 0x00, 0x00, 0x14, 0x00, 0x05, 0x03,  //
                  0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,  //
                  0x0c, 0x01, 0x00, 0x00,                          //
                  0x08, 0x00, 0x01, 0x00, 0x07, 0x00, 0x00, 0x00,  // IFINDEX
                  0x08, 0x00, 0x04, 0x00, 0x01, 0x00, 0x00, 0x00,  // SCOPE 1
              }));
}

TEST(NetdevBuildTest, DescribesTheAttributeAtAnExtackOffset) {
  const uint32_t queues[] = {2, 3};
  GenlMsg msg = BuildNetdevBindRx(0x14, 5, 9, queues);
  EXPECT_EQ(DescribeBindAttrAtOffset(msg.bytes(), 20), "ifindex");
  EXPECT_EQ(DescribeBindAttrAtOffset(msg.bytes(), 28), "fd");
  EXPECT_EQ(DescribeBindAttrAtOffset(msg.bytes(), 36), "queues[0]");
  EXPECT_EQ(DescribeBindAttrAtOffset(msg.bytes(), 40), "queues[0].id");
  EXPECT_EQ(DescribeBindAttrAtOffset(msg.bytes(), 48), "queues[0].type");
  EXPECT_EQ(DescribeBindAttrAtOffset(msg.bytes(), 56), "queues[1]");
  EXPECT_EQ(DescribeBindAttrAtOffset(msg.bytes(), 60), "queues[1].id");
  EXPECT_EQ(DescribeBindAttrAtOffset(msg.bytes(), 24), "");  // mid-attribute
  EXPECT_EQ(DescribeBindAttrAtOffset(msg.bytes(), 4), "");   // header
  EXPECT_EQ(DescribeBindAttrAtOffset(msg.bytes(), 500), "");
}

// --- Parsers, on replies captured from Linux 6.18.44 ---

TEST(NetdevParseTest, VirtioNapiWithoutIrq) {
  absl::StatusOr<NapiInfo> napi = ParseNetdevNapiReply(kVirtioEth0NapiReply0);
  ASSERT_TRUE(napi.ok()) << napi.status();
  EXPECT_EQ(napi->id, 257u);
  EXPECT_EQ(napi->ifindex, 4u);
  EXPECT_FALSE(napi->irq.has_value());
  EXPECT_FALSE(napi->pid.has_value());
}

TEST(NetdevParseTest, ThreadedVethNapiHasAPid) {
  absl::StatusOr<NapiInfo> napi =
      ParseNetdevNapiReply(kVethGroThreadedNapiReply0);
  ASSERT_TRUE(napi.ok()) << napi.status();
  EXPECT_EQ(napi->id, 259u);
  EXPECT_EQ(napi->ifindex, 3u);
  EXPECT_FALSE(napi->irq.has_value());
  EXPECT_EQ(napi->pid, 960u);
}

TEST(NetdevParseTest, HandBuiltNapiWithIrq) {
  alignas(4) const uint8_t msg[] = {
      0x34, 0x00, 0x00, 0x00, 0x14, 0x00, 0x02, 0x00, 0x01, 0x00, 0x00, 0x00,
      0x00, 0x00, 0x00, 0x00, 0x0b, 0x01, 0x00, 0x00,
      // ID 8193, IFINDEX 2, IRQ 45, PID 1234
      0x08, 0x00, 0x02, 0x00, 0x01, 0x20, 0x00, 0x00,  //
      0x08, 0x00, 0x01, 0x00, 0x02, 0x00, 0x00, 0x00,  //
      0x08, 0x00, 0x03, 0x00, 0x2d, 0x00, 0x00, 0x00,  //
      0x08, 0x00, 0x04, 0x00, 0xd2, 0x04, 0x00, 0x00};
  absl::StatusOr<NapiInfo> napi = ParseNetdevNapiReply(msg);
  ASSERT_TRUE(napi.ok()) << napi.status();
  EXPECT_EQ(napi->id, 8193u);
  EXPECT_EQ(napi->ifindex, 2u);
  EXPECT_EQ(napi->irq, 45u);
  EXPECT_EQ(napi->pid, 1234u);
}

TEST(NetdevParseTest, VirtioDeviceQstats) {
  absl::StatusOr<QstatsInfo> q =
      ParseNetdevQstatsReply(kVirtioEth0QstatsDevReply0);
  ASSERT_TRUE(q.ok()) << q.status();
  EXPECT_EQ(q->ifindex, 4u);
  EXPECT_FALSE(q->queue_type.has_value());
  EXPECT_FALSE(q->queue_id.has_value());
  EXPECT_EQ(q->rx_packets, 0x4bcu);
  EXPECT_EQ(q->rx_bytes, 0x033fc5d1u);
  EXPECT_EQ(q->tx_packets, 0x281u);
  EXPECT_EQ(q->tx_bytes, 0xdd50u);
  EXPECT_EQ(q->tx_stop, 0u);  // reported as 0, not absent
  EXPECT_EQ(q->tx_wake, 0u);
  EXPECT_FALSE(q->rx_alloc_fail.has_value());  // virtio does not report it
  EXPECT_FALSE(q->rx_hw_drops.has_value());
}

TEST(NetdevParseTest, VirtioPerQueueQstats) {
  absl::StatusOr<QstatsInfo> rx =
      ParseNetdevQstatsReply(kVirtioEth0QstatsQueueReply0);
  ASSERT_TRUE(rx.ok()) << rx.status();
  EXPECT_EQ(rx->queue_type, QueueInfo::Type::kRx);
  EXPECT_EQ(rx->queue_id, 0u);
  EXPECT_EQ(rx->rx_packets, 0x4bcu);
  EXPECT_FALSE(rx->tx_packets.has_value());
  absl::StatusOr<QstatsInfo> tx =
      ParseNetdevQstatsReply(kVirtioEth0QstatsQueueReply1);
  ASSERT_TRUE(tx.ok()) << tx.status();
  EXPECT_EQ(tx->queue_type, QueueInfo::Type::kTx);
  EXPECT_EQ(tx->queue_id, 0u);
  EXPECT_EQ(tx->tx_bytes, 0xdd50u);
  EXPECT_FALSE(tx->rx_packets.has_value());
}

TEST(NetdevParseTest, QstatsU64CountersAndDrops) {
  alignas(4) const uint8_t msg[] = {
      0x40, 0x00, 0x00, 0x00, 0x14, 0x00, 0x02, 0x00, 0x01, 0x00, 0x00, 0x00,
      0x00, 0x00, 0x00, 0x00, 0x0c, 0x01, 0x00, 0x00,
      // IFINDEX 6
      0x08, 0x00, 0x01, 0x00, 0x06, 0x00, 0x00, 0x00,
      // RX_BYTES (9) as u64 0x1_0000_0002
      0x0c, 0x00, 0x09, 0x00, 0x02, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00,
      // RX_ALLOC_FAIL (12) 3, RX_HW_DROPS (13) 4, TX_HW_DROPS (24) 5
      0x08, 0x00, 0x0c, 0x00, 0x03, 0x00, 0x00, 0x00,  //
      0x08, 0x00, 0x0d, 0x00, 0x04, 0x00, 0x00, 0x00,  //
      0x08, 0x00, 0x18, 0x00, 0x05, 0x00, 0x00, 0x00};
  absl::StatusOr<QstatsInfo> q = ParseNetdevQstatsReply(msg);
  ASSERT_TRUE(q.ok()) << q.status();
  EXPECT_EQ(q->ifindex, 6u);
  EXPECT_EQ(q->rx_bytes, 0x100000002u);
  EXPECT_EQ(q->rx_alloc_fail, 3u);
  EXPECT_EQ(q->rx_hw_drops, 4u);
  EXPECT_EQ(q->tx_hw_drops, 5u);
  EXPECT_FALSE(q->rx_packets.has_value());
}

TEST(NetdevParseTest, QstatsWithAShortCounterIsRejected) {
  alignas(4) const uint8_t msg[] = {
      0x24, 0x00, 0x00, 0x00, 0x14, 0x00, 0x02, 0x00, 0x01, 0x00, 0x00, 0x00,
      0x00, 0x00, 0x00, 0x00, 0x0c, 0x01, 0x00, 0x00,
      // IFINDEX 6, RX_PACKETS (8) with 2 bytes
      0x08, 0x00, 0x01, 0x00, 0x06, 0x00, 0x00, 0x00,  //
      0x06, 0x00, 0x08, 0x00, 0x01, 0x00, 0x00, 0x00};
  absl::StatusOr<QstatsInfo> q = ParseNetdevQstatsReply(msg);
  ASSERT_FALSE(q.ok());
  EXPECT_THAT(q.status().message(), HasSubstr("attribute 8 has 2 bytes"));
}

TEST(NetdevParseTest, BindReplyCarriesTheId) {
  alignas(4) const uint8_t msg[] = {
      0x1c, 0x00, 0x00, 0x00, 0x14, 0x00, 0x00, 0x00, 0x05, 0x00, 0x00, 0x00,
      0x00, 0x00, 0x00, 0x00, 0x0d, 0x01, 0x00, 0x00,
      // NETDEV_A_DMABUF_ID (4) = 7
      0x08, 0x00, 0x04, 0x00, 0x07, 0x00, 0x00, 0x00};
  absl::StatusOr<uint32_t> id = ParseNetdevBindReply(msg, NETDEV_CMD_BIND_RX);
  ASSERT_TRUE(id.ok()) << id.status();
  EXPECT_EQ(*id, 7u);
  // Wrong command: a bind-tx exchange never accepts a bind-rx reply.
  EXPECT_FALSE(ParseNetdevBindReply(msg, NETDEV_CMD_BIND_TX).ok());
  alignas(4) const uint8_t no_id[] = {0x14, 0x00, 0x00, 0x00, 0x14, 0x00, 0x00,
                                      0x00, 0x05, 0x00, 0x00, 0x00, 0x00, 0x00,
                                      0x00, 0x00, 0x0d, 0x01, 0x00, 0x00};
  absl::StatusOr<uint32_t> none =
      ParseNetdevBindReply(no_id, NETDEV_CMD_BIND_RX);
  ASSERT_FALSE(none.ok());
  EXPECT_THAT(none.status().message(), HasSubstr("no NETDEV_A_DMABUF_ID"));
}

TEST(NetdevBindingTest, AdoptedBindingOwnsItsSocketFd) {
  UniqueFd sock(socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_GENERIC));
  ASSERT_TRUE(sock.valid()) << errno;
  const int fd = sock.get_unowned();
  std::unique_ptr<NetdevBinding> binding = NetdevBinding::Adopt(
      std::move(sock), /*id=*/9, /*ifindex=*/4, /*queues=*/{6, 7},
      /*is_tx=*/false);
  EXPECT_EQ(binding->netlink_fd_unowned(), fd);
  EXPECT_EQ(binding->id(), 9u);
  EXPECT_EQ(binding->ifindex(), 4u);
  EXPECT_THAT(binding->queues(), ElementsAre(6, 7));
  EXPECT_FALSE(binding->is_tx());
  EXPECT_GE(fcntl(fd, F_GETFD), 0);
  binding.reset();
  // Closed with the binding (nothing else here opens fds meanwhile).
  EXPECT_EQ(fcntl(fd, F_GETFD), -1);
  EXPECT_EQ(errno, EBADF);
}

}  // namespace
}  // namespace devmem
