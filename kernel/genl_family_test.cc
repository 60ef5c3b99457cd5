#include "kernel/genl_family.h"

#include <cerrno>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kernel/errno_status.h"
#include "kernel/uapi_compat.h"

namespace devmem {
namespace {

using ::testing::Contains;
using ::testing::HasSubstr;
using ::testing::Key;

// These run against the real kernel (Linux 6.18 on the project machines).

TEST(GenlFamilyTest, ResolvesEthtool) {
  absl::StatusOr<GenlFamily> family = ResolveGenlFamily("ethtool");
  ASSERT_TRUE(family.ok()) << family.status();
  EXPECT_EQ(family->name, "ethtool");
  EXPECT_GE(family->id, GENL_MIN_ID);
  EXPECT_EQ(family->version, 1u);
  EXPECT_TRUE(family->HasOp(ETHTOOL_MSG_CHANNELS_GET));
  EXPECT_TRUE(family->HasOp(ETHTOOL_MSG_RINGS_GET));
  EXPECT_TRUE(family->HasOp(ETHTOOL_MSG_FEATURES_GET));
  EXPECT_THAT(family->mcast_groups, Contains(Key("monitor")));
}

TEST(GenlFamilyTest, ResolvesNetdevWithBindRx) {
  absl::StatusOr<GenlFamily> family = ResolveGenlFamily(NETDEV_FAMILY_NAME);
  ASSERT_TRUE(family.ok()) << family.status();
  EXPECT_EQ(family->name, "netdev");
  EXPECT_EQ(family->version, 1u);
  EXPECT_TRUE(family->HasOp(NETDEV_CMD_DEV_GET));
  EXPECT_TRUE(family->HasOp(NETDEV_CMD_QUEUE_GET));
  // bind-rx is op 13 since 6.12 and needs CAP_NET_ADMIN (GENL_ADMIN_PERM).
  ASSERT_TRUE(family->HasOp(NETDEV_CMD_BIND_RX));
  for (const GenlOp& op : family->ops) {
    if (op.id == NETDEV_CMD_BIND_RX) {
      EXPECT_TRUE(op.flags & (GENL_ADMIN_PERM | GENL_UNS_ADMIN_PERM))
          << op.flags;
    }
  }
  EXPECT_THAT(family->mcast_groups, Contains(Key("mgmt")));
  EXPECT_THAT(family->mcast_groups, Contains(Key("page-pool")));
}

TEST(GenlFamilyTest, UnknownFamilyIsNotFound) {
  absl::StatusOr<GenlFamily> family = ResolveGenlFamily("nonexistent_xyz");
  ASSERT_FALSE(family.ok());
  EXPECT_EQ(family.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(StatusErrno(family.status()), ENOENT);
  EXPECT_THAT(family.status().message(), HasSubstr("nonexistent_xyz"));
}

TEST(GenlFamilyTest, ReusesOneSocket) {
  absl::StatusOr<std::unique_ptr<LibnlGenlSocket>> sock =
      LibnlGenlSocket::Open();
  ASSERT_TRUE(sock.ok()) << sock.status();
  absl::StatusOr<GenlFamily> ctrl = ResolveGenlFamily(**sock, "nlctrl");
  ASSERT_TRUE(ctrl.ok()) << ctrl.status();
  EXPECT_EQ(ctrl->id, GENL_ID_CTRL);
  EXPECT_TRUE(ctrl->HasOp(CTRL_CMD_GETFAMILY));
  EXPECT_FALSE(ResolveGenlFamily(**sock, "nonexistent_xyz").ok());
  EXPECT_TRUE(ResolveGenlFamily(**sock, "ethtool").ok());
}

TEST(GenlFamilyTest, ParsesHandMadeReply) {
  alignas(4) const uint8_t msg[] = {
      // nlmsghdr: len 112, type GENL_ID_CTRL (16)
      0x70, 0x00, 0x00, 0x00, 0x10, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00,
      0x00, 0x00, 0x00, 0x00,
      // genlmsghdr: CTRL_CMD_NEWFAMILY (1), version 2
      0x01, 0x02, 0x00, 0x00,
      // FAMILY_NAME (2) "demo"
      0x09, 0x00, 0x02, 0x00, 'd', 'e', 'm', 'o', 0x00, 0x00, 0x00, 0x00,
      // FAMILY_ID (1) u16 0x22
      0x06, 0x00, 0x01, 0x00, 0x22, 0x00, 0x00, 0x00,
      // VERSION (3) 1
      0x08, 0x00, 0x03, 0x00, 0x01, 0x00, 0x00, 0x00,
      // OPS (6) nest len 36: op #1 {ID 13, FLAGS 1}, op #2 {ID 1}
      0x24, 0x00, 0x06, 0x80,                          //
      0x14, 0x00, 0x01, 0x80,                          //
      0x08, 0x00, 0x01, 0x00, 0x0d, 0x00, 0x00, 0x00,  //
      0x08, 0x00, 0x02, 0x00, 0x01, 0x00, 0x00, 0x00,  //
      0x0c, 0x00, 0x02, 0x80,                          //
      0x08, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00, 0x00,  //
      // MCAST_GROUPS (7) nest len 28: group #1 (len 24) {NAME "mgmt", ID 5}
      0x1c, 0x00, 0x07, 0x80, 0x18, 0x00, 0x01, 0x80,  //
      0x09, 0x00, 0x01, 0x00, 'm', 'g', 'm', 't', 0x00, 0x00, 0x00, 0x00, 0x08,
      0x00, 0x02, 0x00, 0x05, 0x00, 0x00, 0x00};
  absl::StatusOr<GenlFamily> family = ParseGenlFamilyReply(msg);
  ASSERT_TRUE(family.ok()) << family.status();
  EXPECT_EQ(family->name, "demo");
  EXPECT_EQ(family->id, 0x22);
  EXPECT_EQ(family->version, 1u);
  ASSERT_EQ(family->ops.size(), 2u);
  EXPECT_EQ(family->ops[0].id, 13u);
  EXPECT_EQ(family->ops[0].flags, 1u);
  EXPECT_EQ(family->ops[1].id, 1u);
  EXPECT_TRUE(family->HasOp(13));
  EXPECT_FALSE(family->HasOp(14));
  ASSERT_EQ(family->mcast_groups.count("mgmt"), 1u);
  EXPECT_EQ(family->mcast_groups.at("mgmt"), 5u);
}

TEST(GenlFamilyTest, ReplyWithoutIdIsRejected) {
  alignas(4) const uint8_t msg[] = {0x14, 0x00, 0x00, 0x00, 0x10, 0x00, 0x00,
                                    0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00,
                                    0x00, 0x00, 0x01, 0x02, 0x00, 0x00};
  EXPECT_FALSE(ParseGenlFamilyReply(msg).ok());
}

}  // namespace
}  // namespace devmem
