#include "kernel/udmabuf.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kernel/errno_status.h"
#include "kernel/nic_control.h"

namespace devmem {
namespace {

using ::testing::HasSubstr;

bool HaveUdmabuf() { return access(kUdmabufDevice, F_OK) == 0; }

TEST(SealedMemfdTest, IsPageAlignedSealedMemfd) {
  absl::StatusOr<UniqueFd> fd = CreateSealedMemfd(1000, "udmabuf-test");
  ASSERT_TRUE(fd.ok()) << fd.status();
  EXPECT_EQ(ClassifyFd(fd->get_unowned()), DmabufKind::kMemfd);
  struct stat st = {};
  ASSERT_EQ(fstat(fd->get_unowned(), &st), 0);
  EXPECT_EQ(st.st_size % sysconf(_SC_PAGESIZE), 0);
  EXPECT_GE(st.st_size, 1000);
  const int seals = fcntl(fd->get_unowned(), F_GET_SEALS);
  EXPECT_NE(seals & F_SEAL_SHRINK, 0);
  EXPECT_NE(fcntl(fd->get_unowned(), F_GETFD) & FD_CLOEXEC, 0);
  // F_SEAL_SHRINK in force: shrinking is refused with EPERM.
  EXPECT_NE(ftruncate(fd->get_unowned(), 0), 0);
  EXPECT_EQ(errno, EPERM);
}

TEST(SealedMemfdTest, ZeroBytesIsInvalid) {
  absl::StatusOr<UniqueFd> fd = CreateSealedMemfd(0, "udmabuf-test");
  EXPECT_EQ(fd.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(UdmabufTest, ZeroBytesIsInvalid) {
  EXPECT_EQ(CreateUdmabuf(0).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(UdmabufTest, MissingDeviceIsFailedPreconditionWithErrno) {
  if (HaveUdmabuf()) {
    GTEST_SKIP() << kUdmabufDevice
                 << " exists here; the missing-exporter path cannot be seen";
  }
  absl::StatusOr<UniqueFd> fd = CreateUdmabuf(1 << 20);
  ASSERT_FALSE(fd.ok());
  EXPECT_EQ(fd.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(StatusErrno(fd.status()), ENOENT);
  EXPECT_THAT(fd.status().message(),
              HasSubstr("no dma-buf exporter: /dev/udmabuf is missing (load "
                        "the udmabuf module, CONFIG_UDMABUF)"));
  EXPECT_THAT(fd.status().message(),
              HasSubstr("open /dev/udmabuf: No such file or directory"));
}

TEST(UdmabufTest, MakesARealDmabuf) {
  if (!HaveUdmabuf()) {
    GTEST_SKIP() << "no " << kUdmabufDevice
                 << " on this machine (CONFIG_UDMABUF / module not loaded)";
  }
  absl::StatusOr<UniqueFd> fd = CreateUdmabuf(1 << 20);
  if (!fd.ok() && fd.status().code() == absl::StatusCode::kPermissionDenied) {
    GTEST_SKIP() << "cannot open " << kUdmabufDevice << ": " << fd.status();
  }
  ASSERT_TRUE(fd.ok()) << fd.status();
  EXPECT_EQ(ClassifyFd(fd->get_unowned()), DmabufKind::kDmabuf);
  EXPECT_NE(fcntl(fd->get_unowned(), F_GETFD) & FD_CLOEXEC, 0);
}

}  // namespace
}  // namespace devmem
