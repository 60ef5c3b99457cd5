#pragma once

#include <grpcpp/channel.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "client/host_port.h"
#include "kernel/unique_fd.h"
#include "proto/devmem/v1/devmem.grpc.pb.h"
#include "proto/devmem/v1/session.pb.h"

namespace devmem {

// libdevmem: the client side of docs/PROTOCOL.md. A workload opens a Session,
// asks for a socket over gRPC, and receives its fd on the session socket.
//
//   auto session = Session::Open();          // /run/devmemd
//   ListenOptions opts;
//   opts.nic = "eth1";
//   auto sock = (*session)->Listen(opts);
//   accept4(sock->fd.get_unowned(), ...);
//
// Errors are absl::Status. Codes from the daemon (gRPC status, Hello.code,
// Error.code) are passed through unchanged with the daemon's message, so
// callers can branch on PERMISSION_DENIED, NOT_FOUND, ALREADY_EXISTS, ...

inline constexpr absl::string_view kDefaultRuntimeDir = "/run/devmemd";

struct SessionOptions {
  // Directory holding session.sock and grpc.sock.
  std::string runtime_dir = std::string(kDefaultRuntimeDir);
  // Longest wait for one daemon frame (Hello, FdGrant, ...). A daemon that
  // stays silent longer gives DEADLINE_EXCEEDED instead of a hang.
  absl::Duration frame_timeout = absl::Seconds(10);
  // Deadline for each gRPC call (Connect adds its own connect timeout).
  absl::Duration rpc_timeout = absl::Seconds(30);
};

struct ListenOptions {
  std::string nic;    // required: the socket gets SO_BINDTODEVICE to it
  std::string ip;     // numeric; empty = wildcard of `family`
  uint16_t port = 0;  // 0 = the kernel picks (see SocketHandle::info.local)
  devmem::v1::AddressFamily family = devmem::v1::ADDRESS_FAMILY_UNSPECIFIED;
  uint32_t backlog = 0;  // 0 = daemon default
  // A binding of this session (Binding::handle): the daemon installs an
  // ntuple rule steering the listener's flows to it before handing the
  // socket over. 0 = no steering. `nic` may then be empty (the binding's).
  uint64_t binding = 0;
};

struct ConnectOptions {
  std::string nic;  // required
  HostPort remote;  // required, numeric
  HostPort local;   // optional local bind; empty ip and port 0 = none
  absl::Duration timeout = absl::ZeroDuration();  // 0 = daemon default
  uint64_t binding = 0;                           // as in ListenOptions
};

// Where a dma-buf binding goes and how many RX queues it takes.
struct BindOptions {
  std::string nic;              // either this
  std::string gpu_pci_address;  // or the GPU: the nearest managed NIC
  uint32_t queue_count = 1;     // RX only
};

// A socket received from the daemon, and what the daemon said about it.
struct SocketHandle {
  UniqueFd fd;
  devmem::v1::SocketResponse info;
};

// One session with devmemd: a connected session socket (the lease anchor:
// closing it, i.e. destroying the Session, makes the daemon release every
// unredeemed ticket) plus a gRPC channel.
//
// Thread safety: all methods may be called concurrently. The daemon answers
// session frames strictly in request order, so each request/answer exchange
// on the session socket holds an internal mutex for its whole round trip;
// concurrent Listen() calls therefore never receive each other's fds. gRPC
// calls themselves run in parallel.
//
// Failure contract: if an exchange fails in a way that may leave an answer
// in flight (timeout, unreadable or out-of-order frame, daemon closed the
// socket), the session is marked broken and every later session-socket
// call fails with FAILED_PRECONDITION naming the first error; open a new
// Session. An Error frame from the daemon does not break the session.
class Session {
 public:
  // Connects to <runtime_dir>/session.sock, waits for Hello, and creates the
  // gRPC channel to unix:<runtime_dir>/grpc.sock. A refusing Hello (code != 0)
  // becomes that code with the daemon's message (e.g. PERMISSION_DENIED). A
  // missing socket is NOT_FOUND "is devmemd running? no socket at ...".
  static absl::StatusOr<std::unique_ptr<Session>> Open(
      absl::string_view runtime_dir = kDefaultRuntimeDir);
  static absl::StatusOr<std::unique_ptr<Session>> Open(
      const SessionOptions& options);

  // Builds a Session on an already-connected SOCK_SEQPACKET session socket
  // (e.g. one end of a socketpair driven by a fake daemon, or a socket passed
  // in by a supervisor) and reads its Hello. `channel` may be null: the gRPC
  // methods then fail with FAILED_PRECONDITION. options.runtime_dir is unused.
  static absl::StatusOr<std::unique_ptr<Session>> FromConnectedSocket(
      UniqueFd session_fd, std::shared_ptr<grpc::Channel> channel,
      const SessionOptions& options = SessionOptions());

  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;
  ~Session() = default;

  // --- gRPC calls. Daemon status codes and messages are returned as is. ---

  // NICs as the kernel describes them; empty `nic_names` means all.
  absl::StatusOr<devmem::v1::GetInventoryResponse> GetInventory(
      absl::Span<const std::string> nic_names = {});
  absl::StatusOr<devmem::v1::GetStatusResponse> GetStatus();

  // A listening / connected TCP socket bound to a NIC: the RPC (with this
  // session's token) followed by Redeem of the returned ticket.
  absl::StatusOr<SocketHandle> Listen(const ListenOptions& options);
  absl::StatusOr<SocketHandle> Connect(const ConnectOptions& options);

  // --- Bindings and steering (docs/PROTOCOL.md section 7). ---

  // Deposits `dmabuf_fd` (borrowed; the caller keeps its own) and binds it
  // to free RX queues of a devmem pool (netdev bind-rx in the daemon). The
  // binding lives until ReleaseBinding() or until this Session closes.
  absl::StatusOr<devmem::v1::Binding> BindRx(int dmabuf_fd,
                                             const BindOptions& options);
  // The same for devmem TX (kernel 6.16+).
  absl::StatusOr<devmem::v1::Binding> BindTx(int dmabuf_fd,
                                             const BindOptions& options);
  // Releases a binding: its rules, queues and kernel binding. Returns the
  // number of rules removed.
  absl::StatusOr<uint32_t> ReleaseBinding(uint64_t binding);
  // Steers a TCP socket this process made (bound and listening, or
  // connected; `fd` borrowed) to `binding`: the daemon binds it to the
  // binding's NIC and installs the ntuple rule.
  absl::StatusOr<devmem::v1::FlowRule> Steer(int fd, uint64_t binding);

  // Original, desired and actual state of managed NICs (empty: all).
  absl::StatusOr<devmem::v1::GetNicStateResponse> GetNicState(
      absl::Span<const std::string> nics = {});
  // Admin: release every lease on `nic` and restore its original state.
  absl::StatusOr<devmem::v1::RestoreNicResponse> RestoreNic(
      absl::string_view nic);

  // --- Session-socket exchanges (one frame out, one frame back). ---

  // Exchanges `ticket` for its fd. The answer must be an FdGrant for the
  // same ticket with exactly one fd (INTERNAL otherwise), or an Error frame,
  // returned as its code and message (NOT_FOUND, DEADLINE_EXCEEDED, ...).
  absl::StatusOr<UniqueFd> Redeem(absl::string_view ticket);

  // Hands a duplicate of `fd` (borrowed; the caller keeps its own) to the
  // daemon and returns the ticket that names it in a later gRPC call.
  absl::StatusOr<std::string> Deposit(int fd, absl::string_view label = "");

  // Round trip with a fresh nonce; checks the Pong echoes it.
  absl::Status Ping();

  // --- Accessors. ---
  uint64_t session_id() const { return hello_.session_id(); }
  const std::string& session_token() const { return hello_.session_token(); }
  const devmem::v1::Hello& hello() const { return hello_; }
  // The session socket, borrowed: for poll() or protocol tests that send raw
  // frames. Writing on it while another thread uses the Session breaks the
  // request/answer order.
  int session_fd_unowned() const { return session_fd_.get_unowned(); }
  // For raw RPCs (e.g. a Listen with a foreign token). Null without channel.
  devmem::v1::Devmem::Stub* stub() const { return stub_.get(); }
  std::shared_ptr<grpc::Channel> channel() const { return channel_; }

 private:
  // A daemon frame and the fds that came with it (owned).
  struct Reply {
    devmem::v1::SessionFrame frame;
    std::vector<UniqueFd> fds;
  };

  Session(UniqueFd session_fd, std::shared_ptr<grpc::Channel> channel,
          const SessionOptions& options, devmem::v1::Hello hello);

  // Sends `request` (with `fds` attached, borrowed) and reads one answer,
  // which must be an `expected` frame or an Error (returned as a Reply; the
  // caller decides); anything else breaks the session.
  absl::StatusOr<Reply> Exchange(const devmem::v1::SessionFrame& request,
                                 absl::Span<const int> fds,
                                 devmem::v1::SessionFrame::BodyCase expected)
      ABSL_LOCKS_EXCLUDED(mu_);
  absl::Status CheckRpcReady() const;

  const UniqueFd session_fd_;
  const std::shared_ptr<grpc::Channel> channel_;
  const std::unique_ptr<devmem::v1::Devmem::Stub> stub_;
  const SessionOptions options_;
  const devmem::v1::Hello hello_;

  absl::Mutex mu_;
  // First error that left the request/answer stream out of step; OK while
  // the session is usable.
  absl::Status broken_ ABSL_GUARDED_BY(mu_);
  uint64_t next_nonce_ ABSL_GUARDED_BY(mu_) = 1;
};

}  // namespace devmem
