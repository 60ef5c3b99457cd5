#pragma once

// GPU memory as a dma-buf, with no build-time CUDA dependency: the CUDA
// driver API (libcuda.so.1) is loaded at run time, memory is allocated with
// cuMemAlloc and exported with cuMemGetHandleForAddressRange(...,
// CU_MEM_RANGE_HANDLE_TYPE_DMA_BUF_FD, ...). The fd can then be bound with
// BindRx/BindTx. Where the driver, a GPU or dma-buf support is missing, the
// error says which.

#include <cstddef>
#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace devmem {

class CudaDmabuf {
 public:
  struct Options {
    size_t bytes = 0;     // rounded up to 2 MiB
    std::string gpu_pci;  // "0000:3b:00.0"; empty: CUDA device 0
    // The driver library; tests point it elsewhere.
    std::string library = "libcuda.so.1";
  };

  static absl::StatusOr<std::unique_ptr<CudaDmabuf>> Allocate(
      const Options& options);

  CudaDmabuf(const CudaDmabuf&) = delete;
  CudaDmabuf& operator=(const CudaDmabuf&) = delete;
  ~CudaDmabuf();

  int fd() const { return fd_; }  // the dma-buf; owned
  size_t size() const { return size_; }
  const std::string& gpu_name() const { return gpu_name_; }
  const std::string& gpu_pci() const { return gpu_pci_; }

  struct Driver;  // the loaded entry points (cuda_dmabuf.cc)

 private:
  CudaDmabuf() = default;

  std::shared_ptr<Driver> driver_;
  int device_ = -1;
  unsigned long long device_ptr_ =
      0;  // NOLINT(google-runtime-int): CUdeviceptr
  int fd_ = -1;
  size_t size_ = 0;
  std::string gpu_name_;
  std::string gpu_pci_;
};

}  // namespace devmem
