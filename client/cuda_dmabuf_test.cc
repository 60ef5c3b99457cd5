// The CUDA dma-buf source where there is no NVIDIA driver (this machine and
// CI): it fails cleanly, saying which piece is missing. On a GPU machine
// (the device check, docs/DATAPATH.md) the same call returns a dma-buf.
#include "client/cuda_dmabuf.h"

#include <dlfcn.h>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace devmem {
namespace {

using ::testing::HasSubstr;

TEST(CudaDmabuf, WithoutTheDriverSaysSo) {
  if (void* lib = dlopen("libcuda.so.1", RTLD_NOW)) {
    dlclose(lib);
    GTEST_SKIP() << "an NVIDIA driver is installed here: not the case tested";
  }
  CudaDmabuf::Options o;
  o.bytes = 1 << 20;
  absl::StatusOr<std::unique_ptr<CudaDmabuf>> buf = CudaDmabuf::Allocate(o);
  EXPECT_EQ(buf.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(buf.status().message(),
              HasSubstr("the NVIDIA driver is not installed here: "
                        "libcuda.so.1 cannot be loaded"));
}

TEST(CudaDmabuf, ALibraryThatIsNotTheDriverIsNamed) {
  CudaDmabuf::Options o;
  o.bytes = 1 << 20;
  o.library = "libm.so.6";  // loads, but has no driver API
  EXPECT_THAT(CudaDmabuf::Allocate(o).status().message(),
              HasSubstr("lacks a driver-API entry point"));
  o.bytes = 0;
  EXPECT_EQ(CudaDmabuf::Allocate(o).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace devmem
