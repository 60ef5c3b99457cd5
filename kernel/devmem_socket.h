#pragma once

// The devmem TCP socket API (KERNEL_API.md section 2), which Debian 12's
// 6.1 headers lack: the flags, socket options, control-message types and
// structs, with their sizes checked. Values are those of asm-generic
// (x86_64, arm64, riscv).

#include <sys/socket.h>

#include <cstddef>
#include <cstdint>

namespace devmem {

// recvmsg flag: deliver devmem fragments as cmsgs (kernel-internal
// include/linux/socket.h; in no uapi header).
inline constexpr int kMsgSockDevmem = 0x2000000;
inline constexpr int kMsgZerocopy = 0x4000000;  // MSG_ZEROCOPY

inline constexpr int kSoZerocopy = 60;  // SO_ZEROCOPY
// SO_DEVMEM_LINEAR = SCM_DEVMEM_LINEAR, SO_DEVMEM_DMABUF = SCM_DEVMEM_DMABUF.
inline constexpr int kScmDevmemLinear = 78;
inline constexpr int kScmDevmemDmabuf = 79;
inline constexpr int kSoDevmemDontneed = 80;
inline constexpr int kSoEeOriginZerocopy = 5;  // SO_EE_ORIGIN_ZEROCOPY
inline constexpr int kSoEeCodeZerocopyCopied = 1;

// Kernel-internal errno: the control buffer cannot hold a whole cmsg.
inline constexpr int kEtoosmall = 525;

// SO_DEVMEM_DONTNEED's limits per call: more token structs is EINVAL, more
// fragments are silently left (KERNEL_API.md: the 1024 cap is in 6.12.107+).
inline constexpr size_t kMaxDontneedRanges = 128;
inline constexpr size_t kMaxDontneedFrags = 1024;

// struct dmabuf_cmsg (uapi/linux/uio.h): one fragment of a recvmsg.
struct DmabufCmsg {
  uint64_t frag_offset;  // offset into the dma-buf
  uint32_t frag_size;
  uint32_t frag_token;  // return it with SO_DEVMEM_DONTNEED
  uint32_t dmabuf_id;   // the binding's id (bind-rx)
  uint32_t flags;       // unused
};
static_assert(sizeof(DmabufCmsg) == 24, "struct dmabuf_cmsg is 24 bytes");
static_assert(offsetof(DmabufCmsg, dmabuf_id) == 16, "dmabuf_cmsg layout");

// struct dmabuf_token: tokens [token_start, token_start + token_count).
struct DmabufToken {
  uint32_t token_start;
  uint32_t token_count;
};
static_assert(sizeof(DmabufToken) == 8, "struct dmabuf_token is 8 bytes");

}  // namespace devmem
