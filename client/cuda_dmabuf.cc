#include "client/cuda_dmabuf.h"

#include <dlfcn.h>
#include <unistd.h>

#include <memory>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace devmem {

// The few driver-API types and constants used here (cuda.h, CUDA 11.7+),
// declared by hand so that building needs no CUDA headers.
using CUresult = int;
using CUdevice = int;
using CUcontext = void*;
using CUdeviceptr = unsigned long long;  // NOLINT(google-runtime-int)
constexpr CUresult kCudaSuccess = 0;
constexpr CUresult kCudaErrorNoDevice = 100;
constexpr CUresult kCudaErrorNotFound = 500;
constexpr int kAttrDmaBufSupported =
    124;  // CU_DEVICE_ATTRIBUTE_DMA_BUF_SUPPORTED
constexpr int kRangeHandleDmaBufFd = 1;  // CU_MEM_RANGE_HANDLE_TYPE_DMA_BUF_FD
constexpr size_t kGranule = 2 << 20;

struct CudaDmabuf::Driver {
  void* lib = nullptr;
  CUresult (*Init)(unsigned) = nullptr;
  CUresult (*DeviceGet)(CUdevice*, int) = nullptr;
  CUresult (*DeviceGetByPCIBusId)(CUdevice*, const char*) = nullptr;
  CUresult (*DeviceGetName)(char*, int, CUdevice) = nullptr;
  CUresult (*DeviceGetAttribute)(int*, int, CUdevice) = nullptr;
  CUresult (*DeviceGetPCIBusId)(char*, int, CUdevice) = nullptr;
  CUresult (*PrimaryCtxRetain)(CUcontext*, CUdevice) = nullptr;
  CUresult (*PrimaryCtxRelease)(CUdevice) = nullptr;
  CUresult (*CtxSetCurrent)(CUcontext) = nullptr;
  CUresult (*MemAlloc)(CUdeviceptr*, size_t) = nullptr;
  CUresult (*MemFree)(CUdeviceptr) = nullptr;
  CUresult (*GetHandleForAddressRange)(void*, CUdeviceptr, size_t, int,
                                       unsigned long long) =  // NOLINT
      nullptr;
  CUresult (*GetErrorString)(CUresult, const char**) = nullptr;

  ~Driver() {
    if (lib != nullptr) dlclose(lib);
  }

  std::string Error(CUresult r) const {
    const char* text = nullptr;
    if (GetErrorString != nullptr) GetErrorString(r, &text);
    return absl::StrCat("CUDA error ", r, text != nullptr ? " (" : "",
                        text != nullptr ? text : "",
                        text != nullptr ? ")" : "");
  }
};

namespace {

template <typename Fn>
bool Resolve(void* lib, const char* name, Fn* fn) {
  *fn = reinterpret_cast<Fn>(dlsym(lib, name));
  return *fn != nullptr;
}

absl::StatusOr<std::shared_ptr<CudaDmabuf::Driver>> Load(
    const std::string& library) {
  auto d = std::make_shared<CudaDmabuf::Driver>();
  d->lib = dlopen(library.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (d->lib == nullptr) {
    return absl::FailedPreconditionError(
        absl::StrCat("the NVIDIA driver is not installed here: ", library,
                     " cannot be loaded (", dlerror(), ")"));
  }
  const bool all =
      Resolve(d->lib, "cuInit", &d->Init) &&
      Resolve(d->lib, "cuDeviceGet", &d->DeviceGet) &&
      Resolve(d->lib, "cuDeviceGetByPCIBusId", &d->DeviceGetByPCIBusId) &&
      Resolve(d->lib, "cuDeviceGetName", &d->DeviceGetName) &&
      Resolve(d->lib, "cuDeviceGetAttribute", &d->DeviceGetAttribute) &&
      Resolve(d->lib, "cuDeviceGetPCIBusId", &d->DeviceGetPCIBusId) &&
      Resolve(d->lib, "cuDevicePrimaryCtxRetain", &d->PrimaryCtxRetain) &&
      Resolve(d->lib, "cuDevicePrimaryCtxRelease_v2", &d->PrimaryCtxRelease) &&
      Resolve(d->lib, "cuCtxSetCurrent", &d->CtxSetCurrent) &&
      Resolve(d->lib, "cuMemAlloc_v2", &d->MemAlloc) &&
      Resolve(d->lib, "cuMemFree_v2", &d->MemFree) &&
      Resolve(d->lib, "cuGetErrorString", &d->GetErrorString);
  if (!all) {
    return absl::FailedPreconditionError(
        absl::StrCat(library, " lacks a driver-API entry point (", dlerror(),
                     "): the driver is too old"));
  }
  if (!Resolve(d->lib, "cuMemGetHandleForAddressRange",
               &d->GetHandleForAddressRange)) {
    return absl::FailedPreconditionError(
        "this NVIDIA driver cannot export dma-bufs "
        "(no cuMemGetHandleForAddressRange: CUDA 11.7 / driver 515 or newer "
        "is needed)");
  }
  return d;
}

}  // namespace

absl::StatusOr<std::unique_ptr<CudaDmabuf>> CudaDmabuf::Allocate(
    const Options& options) {
  if (options.bytes == 0) {
    return absl::InvalidArgumentError("allocate at least one byte");
  }
  absl::StatusOr<std::shared_ptr<Driver>> driver = Load(options.library);
  if (!driver.ok()) return driver.status();
  const Driver& d = **driver;
  CUresult r = d.Init(0);
  if (r == kCudaErrorNoDevice) {
    return absl::FailedPreconditionError(
        "the NVIDIA driver is loaded but sees no GPU (CUDA_ERROR_NO_DEVICE)");
  }
  if (r != kCudaSuccess) {
    return absl::FailedPreconditionError(absl::StrCat("cuInit: ", d.Error(r)));
  }
  std::unique_ptr<CudaDmabuf> buf(new CudaDmabuf());
  buf->driver_ = *driver;
  CUdevice dev = 0;
  r = options.gpu_pci.empty()
          ? d.DeviceGet(&dev, 0)
          : d.DeviceGetByPCIBusId(&dev, options.gpu_pci.c_str());
  if (r != kCudaSuccess) {
    return absl::NotFoundError(absl::StrCat(
        "no CUDA GPU ", options.gpu_pci.empty() ? "0" : "at " + options.gpu_pci,
        ": ", d.Error(r)));
  }
  char name[256] = {};
  char pci[32] = {};
  d.DeviceGetName(name, sizeof(name), dev);
  d.DeviceGetPCIBusId(pci, sizeof(pci), dev);
  buf->gpu_name_ = name;
  buf->gpu_pci_ = pci;
  int dmabuf_ok = 0;
  d.DeviceGetAttribute(&dmabuf_ok, kAttrDmaBufSupported, dev);
  if (dmabuf_ok == 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "GPU ", name, " (", pci,
        ") cannot export dma-bufs (CU_DEVICE_ATTRIBUTE_DMA_BUF_SUPPORTED is "
        "0: the open kernel modules and a kernel with dma-buf support are "
        "needed)"));
  }
  CUcontext ctx = nullptr;
  r = d.PrimaryCtxRetain(&ctx, dev);
  if (r != kCudaSuccess) {
    return absl::UnavailableError(
        absl::StrCat("cuDevicePrimaryCtxRetain: ", d.Error(r)));
  }
  buf->device_ = dev;
  d.CtxSetCurrent(ctx);
  buf->size_ = (options.bytes + kGranule - 1) / kGranule * kGranule;
  r = d.MemAlloc(&buf->device_ptr_, buf->size_);
  if (r != kCudaSuccess) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "cuMemAlloc of ", buf->size_, " bytes on ", name, ": ", d.Error(r)));
  }
  int fd = -1;
  r = d.GetHandleForAddressRange(&fd, buf->device_ptr_, buf->size_,
                                 kRangeHandleDmaBufFd, 0);
  if (r != kCudaSuccess || fd < 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "cuMemGetHandleForAddressRange(DMA_BUF_FD) on ", name, ": ",
        d.Error(r == kCudaSuccess ? kCudaErrorNotFound : r)));
  }
  buf->fd_ = fd;
  return buf;
}

CudaDmabuf::~CudaDmabuf() {
  if (fd_ >= 0) close(fd_);
  if (driver_ == nullptr) return;
  if (device_ptr_ != 0) driver_->MemFree(device_ptr_);
  if (device_ >= 0) driver_->PrimaryCtxRelease(device_);
}

}  // namespace devmem
