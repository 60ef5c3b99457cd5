#pragma once

// Receives a devmem TCP stream: recvmsg(MSG_SOCK_DEVMEM) with a control
// buffer sized for many fragments, turned into pieces in stream order:
//   device fragments {dmabuf_id, offset, size, token}: the payload is in
//     the bound dma-buf (GPU memory), never copied;
//   linear bytes: what the kernel copied into the caller's buffer.
// Data with no devmem cmsg came from a queue with no binding: the batch
// says it is not steered, and all of it is in the buffer.
// Every fragment pins device memory until its token goes back; tokens go
// back in batches (TokenReturn) once the caller releases them: by itself
// at the next Receive (kAfterEachBatch), or when the caller says
// (kManual, e.g. once a GPU kernel has consumed the data).
// No allocation per fragment in steady state. Not thread-safe.

#include <cstddef>
#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "client/socket_calls.h"
#include "client/token_return.h"

namespace devmem {

struct RecvPiece {
  enum Kind : uint8_t { kLinear, kDevice };
  Kind kind = kLinear;
  uint32_t size = 0;
  // kLinear: where the bytes are in the buffer given to Receive.
  size_t buffer_offset = 0;
  // kDevice: the fragment in the dma-buf, and its token.
  uint64_t dmabuf_offset = 0;
  uint32_t token = 0;
  uint32_t dmabuf_id = 0;
};

struct RecvBatch {
  size_t bytes = 0;      // stream bytes of this call; 0 at end of stream
  bool steered = false;  // false: no devmem cmsg, all `bytes` in the buffer
  std::vector<RecvPiece> pieces;  // in stream order (steered only)
};

struct ReceiverStats {
  uint64_t recv_calls = 0;
  uint64_t device_bytes = 0;
  uint64_t linear_bytes = 0;
  uint64_t unsteered_bytes = 0;
  uint64_t fragments = 0;
};

class DevmemReceiver {
 public:
  enum class TokenPolicy { kAfterEachBatch, kManual };
  struct Options {
    uint32_t dmabuf_id = 0;  // the binding's kernel id (bind-rx)
    // Cmsgs one recvmsg may carry: sizes the control buffer.
    size_t max_fragments = 1024;
    TokenPolicy tokens = TokenPolicy::kAfterEachBatch;
    // Released tokens go back once this many are pending (at most 1,024 per
    // call). Each pins a fragment of device memory until then.
    size_t return_at = 256;
    SocketCalls* calls = nullptr;  // nullptr: the kernel
  };

  // `fd` is a connected TCP socket, borrowed.
  DevmemReceiver(int fd, const Options& options);

  // One recvmsg into `buffer` (its size is the call's byte budget). The
  // batch stays valid until the next Receive. Errors name the kernel's
  // errno: ETOOSMALL (control buffer), EFAULT, ENODEV, a truncated
  // control buffer, or a fragment of another dma-buf (its token is still
  // returned).
  absl::StatusOr<const RecvBatch*> Receive(absl::Span<char> buffer);

  // kManual: the caller is done with a device piece, or a whole batch.
  absl::Status Release(const RecvPiece& piece);
  absl::Status Release(const RecvBatch& batch);
  // Sends every released token back now (with kAfterEachBatch, the last
  // batch's too).
  absl::Status ReturnTokens();

  const ReceiverStats& stats() const { return stats_; }
  const TokenReturnStats& token_stats() const { return tokens_.stats(); }
  size_t tokens_pending() const { return tokens_.pending(); }

 private:
  absl::Status Parse(size_t bytes, const msghdr& msg);
  absl::Status Check(const RecvPiece& piece) const;

  int fd_;
  Options options_;
  SocketCalls& calls_;
  TokenReturn tokens_;
  std::vector<char> control_;
  RecvBatch batch_;
  bool batch_released_ = true;
  ReceiverStats stats_;
};

}  // namespace devmem
