#include "kernel/libnl_socket.h"

#include <fcntl.h>
#include <linux/genetlink.h>
#include <netlink/attr.h>
#include <netlink/errno.h>
#include <netlink/socket.h>
#include <sys/socket.h>

#include <cerrno>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kernel/errno_status.h"

namespace devmem {
namespace {

using ::testing::HasSubstr;

TEST(LibnlGenlSocketTest, FdIsCloexecWithExtAckAndCapAck) {
  absl::StatusOr<std::unique_ptr<LibnlGenlSocket>> sock =
      LibnlGenlSocket::Open();
  ASSERT_TRUE(sock.ok()) << sock.status();
  const int fd = nl_socket_get_fd((*sock)->sock_unowned());
  ASSERT_GE(fd, 0);
  EXPECT_TRUE(fcntl(fd, F_GETFD) & FD_CLOEXEC);
  int value = 0;
  socklen_t len = sizeof(value);
  ASSERT_EQ(getsockopt(fd, SOL_NETLINK, NETLINK_EXT_ACK, &value, &len), 0);
  EXPECT_EQ(value, 1);
  ASSERT_EQ(getsockopt(fd, SOL_NETLINK, NETLINK_CAP_ACK, &value, &len), 0);
  EXPECT_EQ(value, 1);
}

TEST(LibnlGenlSocketTest, KernelErrorKeepsErrno) {
  absl::StatusOr<std::unique_ptr<LibnlGenlSocket>> sock =
      LibnlGenlSocket::Open();
  ASSERT_TRUE(sock.ok()) << sock.status();
  LibnlGenlSocket::MsgPtr msg = LibnlGenlSocket::NewMessage();
  ASSERT_TRUE(LibnlGenlSocket::PutGenlHeader(msg.get(), GENL_ID_CTRL,
                                             CTRL_CMD_GETFAMILY, 1, 0)
                  .ok());
  ASSERT_EQ(nla_put_string(msg.get(), CTRL_ATTR_FAMILY_NAME, "no_such_fam"), 0);
  int replies = 0;
  absl::Status s = (*sock)->Transact(msg.get(), "getfamily no_such_fam",
                                     [&](absl::Span<const uint8_t>) {
                                       ++replies;
                                       return absl::OkStatus();
                                     });
  EXPECT_EQ(replies, 0);
  EXPECT_EQ(StatusErrno(s), ENOENT) << s;
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(s.message(), HasSubstr("getfamily no_such_fam"));
}

TEST(LibnlGenlSocketTest, DumpRunsUntilDoneAndSocketStaysUsable) {
  absl::StatusOr<std::unique_ptr<LibnlGenlSocket>> sock =
      LibnlGenlSocket::Open();
  ASSERT_TRUE(sock.ok()) << sock.status();
  for (int round = 0; round < 3; ++round) {
    LibnlGenlSocket::MsgPtr msg = LibnlGenlSocket::NewMessage();
    ASSERT_TRUE(LibnlGenlSocket::PutGenlHeader(
                    msg.get(), GENL_ID_CTRL, CTRL_CMD_GETFAMILY, 1, NLM_F_DUMP)
                    .ok());
    int families = 0;
    absl::Status s = (*sock)->Transact(msg.get(), "dump families",
                                       [&](absl::Span<const uint8_t>) {
                                         ++families;
                                         return absl::OkStatus();
                                       });
    ASSERT_TRUE(s.ok()) << s;
    // nlctrl, ethtool, netdev at least.
    EXPECT_GE(families, 3);
  }
}

TEST(LibnlGenlSocketTest, ReplyCallbackErrorIsReturnedAfterDraining) {
  absl::StatusOr<std::unique_ptr<LibnlGenlSocket>> sock =
      LibnlGenlSocket::Open();
  ASSERT_TRUE(sock.ok()) << sock.status();
  LibnlGenlSocket::MsgPtr msg = LibnlGenlSocket::NewMessage();
  ASSERT_TRUE(LibnlGenlSocket::PutGenlHeader(msg.get(), GENL_ID_CTRL,
                                             CTRL_CMD_GETFAMILY, 1, NLM_F_DUMP)
                  .ok());
  absl::Status s =
      (*sock)->Transact(msg.get(), "dump", [](absl::Span<const uint8_t>) {
        return absl::DataLossError("parser says no");
      });
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss);
  // The next exchange on the same socket still works.
  LibnlGenlSocket::MsgPtr again = LibnlGenlSocket::NewMessage();
  ASSERT_TRUE(LibnlGenlSocket::PutGenlHeader(again.get(), GENL_ID_CTRL,
                                             CTRL_CMD_GETFAMILY, 1, 0)
                  .ok());
  ASSERT_EQ(nla_put_string(again.get(), CTRL_ATTR_FAMILY_NAME, "nlctrl"), 0);
  int replies = 0;
  EXPECT_TRUE((*sock)
                  ->Transact(again.get(), "getfamily nlctrl",
                             [&](absl::Span<const uint8_t>) {
                               ++replies;
                               return absl::OkStatus();
                             })
                  .ok());
  EXPECT_EQ(replies, 1);
}

TEST(LibnlGenlSocketTest, LibnlStatusMapsCodes) {
  absl::Status s = LibnlStatus(-NLE_NOMEM, "alloc cache");
  EXPECT_EQ(StatusErrno(s), ENOMEM);
  EXPECT_THAT(s.message(), HasSubstr("alloc cache"));
  absl::Status odd = LibnlStatus(-NLE_PARSE_ERR, "parse");
  EXPECT_EQ(odd.code(), absl::StatusCode::kInternal);
  EXPECT_THAT(odd.message(), HasSubstr("parse"));
}

}  // namespace
}  // namespace devmem
