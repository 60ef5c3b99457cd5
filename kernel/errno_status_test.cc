#include "kernel/errno_status.h"

#include <cerrno>

#include "gtest/gtest.h"

namespace devmem {
namespace {

TEST(ErrnoStatusTest, KeepsErrnoAndExtack) {
  absl::Status s =
      ErrnoStatus(EOPNOTSUPP, "RINGS_GET dm-a", "not supported here");
  EXPECT_EQ(s.code(), absl::StatusCode::kUnimplemented);
  EXPECT_EQ(StatusErrno(s), EOPNOTSUPP);
  EXPECT_EQ(StatusExtack(s), "not supported here");
  EXPECT_NE(s.message().find("RINGS_GET dm-a"), std::string::npos);
  EXPECT_NE(s.message().find("kernel: not supported here"), std::string::npos);
}

TEST(ErrnoStatusTest, CodesFollowMeaning) {
  EXPECT_EQ(ErrnoStatus(EPERM, "x").code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(ErrnoStatus(ENODEV, "x").code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(ErrnoStatus(EINVAL, "x").code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ErrnoStatus(EEXIST, "x").code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(ErrnoStatus(EBUSY, "x").code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(ErrnoStatus(ENOMEM, "x").code(),
            absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(ErrnoStatus(ECONNREFUSED, "x").code(),
            absl::StatusCode::kUnavailable);
  EXPECT_EQ(ErrnoStatus(ETIMEDOUT, "x").code(),
            absl::StatusCode::kDeadlineExceeded);
}

TEST(ErrnoStatusTest, PlainStatusHasNoErrno) {
  EXPECT_EQ(StatusErrno(absl::InternalError("x")), 0);
  EXPECT_EQ(StatusExtack(absl::InternalError("x")), "");
}

}  // namespace
}  // namespace devmem
