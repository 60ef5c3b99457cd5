// `devmemctl listen --recv devmem`'s loop with device fragments, which this
// machine's kernel never delivers: FakeDevmemKernel puts ncdevmem's pattern
// into a bound memfd as fragments (and some linear bytes), and the loop
// reads the fragments back through its CPU view of the memfd.
#include "client/ctl/devmem_recv.h"

#include <sys/mman.h>

#include <cstdint>

#include "client/testing/fake_devmem_kernel.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kernel/udmabuf.h"
#include "kernel/unique_fd.h"

namespace devmem {
namespace ctl {
namespace {

using ::testing::HasSubstr;

constexpr size_t kBufferBytes = 4 << 20;

// ncdevmem's -v 7 pattern: 1..6, '\n'.
uint8_t Ncdevmem7(uint64_t offset) {
  const uint64_t k = offset % 7;
  return k == 6 ? '\n' : static_cast<uint8_t>(k + 1);
}

class DevmemRecvTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<UniqueFd> fd = CreateSealedMemfd(kBufferBytes, "recv-test");
    ASSERT_TRUE(fd.ok());
    memfd_ = *std::move(fd);
    device_ = mmap(nullptr, kBufferBytes, PROT_READ | PROT_WRITE, MAP_SHARED,
                   memfd_.get_unowned(), 0);
    ASSERT_NE(device_, MAP_FAILED);
  }
  void TearDown() override { munmap(device_, kBufferBytes); }

  FakeDevmemOptions Stream(uint64_t bytes) {
    FakeDevmemOptions o;
    o.stream_bytes = bytes;
    o.dmabuf_id = 5;
    o.dmabuf_memory = static_cast<char*>(device_);
    o.dmabuf_pages = kBufferBytes / 4096;
    o.linear_every = 9;
    o.source = GeneratedSource(Ncdevmem7);
    return o;
  }

  DevmemRecvArgs Args(FakeDevmemKernel& kernel, uint32_t n) {
    DevmemRecvArgs a;
    a.fd = 3;
    a.dmabuf_id = 5;
    a.buffer_fd = memfd_.get_unowned();
    a.ncdevmem_n = n;
    a.calls = &kernel;
    return a;
  }

  UniqueFd memfd_;
  void* device_ = nullptr;
};

TEST_F(DevmemRecvTest, DeviceFragmentsAreCheckedThroughTheBuffer) {
  const uint64_t kBytes = 64ull << 20;  // 16 times round the buffer
  FakeDevmemKernel kernel(Stream(kBytes));
  DevmemRecvFigures f;
  absl::Status got = ReceiveDevmem(Args(kernel, 7), &f);
  ASSERT_TRUE(got.ok()) << got;
  EXPECT_EQ(f.bytes, kBytes);
  EXPECT_EQ(f.device_bytes + f.linear_bytes, kBytes);
  EXPECT_GT(f.linear_bytes, 0u);
  EXPECT_EQ(f.fragments, kernel.seen().fragments);
  EXPECT_EQ(f.tokens_returned, f.fragments);
  EXPECT_EQ(kernel.outstanding(), 0u);
  EXPECT_LE(f.dontneed_calls, f.fragments / 128 + 1);
  EXPECT_THAT(DescribeFigures(f), HasSubstr(" fragments, "));
}

TEST_F(DevmemRecvTest, AWrongPatternIsNamed) {
  FakeDevmemKernel kernel(Stream(1 << 20));
  DevmemRecvFigures f;
  absl::Status got = ReceiveDevmem(Args(kernel, 6), &f);
  EXPECT_EQ(got.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(got.message(), HasSubstr("differ from ncdevmem's pattern (the "
                                       "first at offset 5)"));
  EXPECT_EQ(kernel.outstanding(), 0u) << "tokens returned on failure too";
}

}  // namespace
}  // namespace ctl
}  // namespace devmem
