#pragma once

#include <grpcpp/channel.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "client/hangup_watcher.h"
#include "client/host_port.h"
#include "client/socket_requests.h"
#include "kernel/unique_fd.h"
#include "proto/devmem/v1/devmem.grpc.pb.h"
#include "proto/devmem/v1/session.pb.h"

namespace devmem {

// Most sockets libdevmem puts in one OpenSockets or SteerMany call (the
// daemon's limit).
inline constexpr size_t kOpenSocketsBatch = 1024;
// Session::OpenSockets calls in flight at once when it makes more than one.
inline constexpr size_t kOpenSocketsInFlight = 4;

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
  // Live restart (docs/PROTOCOL.md section 8): when devmemd goes away (the
  // process's one hang-up thread notices), a thread reconnects with backoff and
  // resumes this session by its token, handing back the anchors of its
  // bindings, so that bindings, rules and the sockets' steering survive a
  // daemon restart or upgrade. Only for sessions made with Open(). A call made
  // while the session is being resumed (or after devmemd went away, before the
  // reconnect began) waits for the resume, up to reconnect_timeout, instead of
  // reaching the new daemon with a session it does not know yet.
  bool auto_reconnect = false;
  // How long one reconnect keeps trying before giving up (the daemon's
  // restart_grace_ms is the useful upper bound).
  absl::Duration reconnect_timeout = absl::Seconds(30);
  // Called from the reconnect thread after each automatic reconnect: OK with
  // `resumed` true if the session and its leases came back, OK with false if
  // the daemon did not know the session (a fresh one was opened: it held no
  // leases, or they were lost), or why reconnecting failed.
  std::function<void(const absl::Status&, bool resumed)> on_reconnect;
};

// Where a dma-buf binding goes and how many RX queues it takes.
struct BindOptions {
  std::string nic;              // either this
  std::string gpu_pci_address;  // or the GPU: the nearest managed NIC
  uint32_t queue_count = 1;     // RX only
  // The job's reservation (its queues, its NIC when none is named). Empty:
  // $DEVMEM_RESERVATION if set, else the free pool.
  std::string reservation_token;
};

// The environment variable a launcher sets for the job's workloads to the
// token of the job's reservation on this host.
inline constexpr char kReservationEnv[] = "DEVMEM_RESERVATION";

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
  // Connects to <runtime_dir>/session.sock, waits for Hello, and uses the
  // gRPC channel to unix:<runtime_dir>/grpc.sock (one per process and
  // runtime_dir, shared by its sessions while any holds it; a job opening
  // many sessions builds one channel). A refusing Hello (code != 0)
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
  ~Session();

  // --- gRPC calls. Daemon status codes and messages are returned as is. ---

  // NICs as the kernel describes them; empty `nic_names` means all.
  absl::StatusOr<devmem::v1::GetInventoryResponse> GetInventory(
      absl::Span<const std::string> nic_names = {});
  absl::StatusOr<devmem::v1::GetStatusResponse> GetStatus();

  // A listening / connected TCP socket bound to a NIC: the RPC (with this
  // session's token) followed by Redeem of the returned ticket.
  absl::StatusOr<SocketHandle> Listen(const ListenOptions& options);
  absl::StatusOr<SocketHandle> Connect(const ConnectOptions& options);

  // Many sockets in few round trips (a job's start; docs/PROTOCOL.md
  // section 9): OpenSockets calls (split as OpenSocketsCalls says: up to
  // 64 sockets in one, more in calls that together stay within the
  // session's ticket limit from Hello), each followed by RedeemMany of its
  // tickets, 253 fds per frame. kOpenSocketsInFlight calls are in flight:
  // the next ones are made while this one's tickets are redeemed, and the
  // first calls are smaller. One result per spec, in order: the
  // socket, or that socket's own failure, with the code and message the
  // single call would give. The call fails as a whole only for what
  // concerns every socket (UNAUTHENTICATED, a broken session, transport).
  // Listen sockets are made in order; the Connect ones of a call are
  // dialled together (all SYNs out, then one wait), each within its own
  // timeout.
  absl::StatusOr<std::vector<absl::StatusOr<SocketHandle>>> OpenSockets(
      absl::Span<const SocketSpec> specs);
  // The same calls, but each result goes to `on_opened(index, result)` as
  // soon as its call is answered and its fd is here, in spec order, on the
  // calling thread, while devmemd is still making the later calls' sockets:
  // a job can check or start using the first sockets meanwhile. On a
  // failure of a whole call the results already handed over stay the
  // caller's, the later ones are closed, and that error is returned.
  using OpenedFn =
      absl::FunctionRef<void(size_t index, absl::StatusOr<SocketHandle>)>;
  absl::Status OpenSocketsEach(absl::Span<const SocketSpec> specs,
                               OpenedFn on_opened);
  // Steers many sockets this process made (`fds` borrowed) to `binding`:
  // DepositMany, then SteerMany calls of up to 1024. One result per fd.
  absl::StatusOr<std::vector<absl::StatusOr<devmem::v1::FlowRule>>> SteerMany(
      absl::Span<const int> fds, uint64_t binding);

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
  // Admin: reservations (devmem.v1 Reserve, Renew, ReleaseReservation,
  // ListReservations; docs/FLEET.md).
  absl::StatusOr<devmem::v1::ReserveResponse> Reserve(
      const devmem::v1::ReserveRequest& request);
  absl::StatusOr<devmem::v1::RenewResponse> Renew(
      const devmem::v1::RenewRequest& request);
  absl::StatusOr<devmem::v1::ReleaseReservationResponse> ReleaseReservation(
      const devmem::v1::ReleaseReservationRequest& request);
  absl::StatusOr<devmem::v1::ListReservationsResponse> ListReservations(
      const devmem::v1::ListReservationsRequest& request);
  // Admin: cordon and drain the host, and watch its events. The streams call
  // `on` for each message until it returns false (the stream is cancelled,
  // and the result is OK), the stream ends, or it fails.
  absl::StatusOr<devmem::v1::CordonResponse> Cordon(
      const devmem::v1::CordonRequest& request);
  absl::StatusOr<devmem::v1::CordonResponse> Uncordon(
      const devmem::v1::UncordonRequest& request);
  absl::Status Drain(
      const devmem::v1::DrainRequest& request,
      const std::function<bool(const devmem::v1::DrainProgress&)>& on);
  absl::Status Watch(
      const devmem::v1::WatchRequest& request,
      const std::function<bool(const devmem::v1::WatchResponse&)>& on);

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

  // --- Many fds per frame (RedeemMany, DepositMany). ---

  // Redeems `tickets` in frames of up to Hello.max_fds_per_frame (253) each,
  // one round trip per frame; against a daemon that takes one fd per frame
  // (max_fds_per_frame <= 1), one Redeem per ticket. One result per ticket,
  // in order: its fd, or its own failure as Redeem() would give it
  // (NOT_FOUND, DEADLINE_EXCEEDED, INVALID_ARGUMENT...). The call fails as a
  // whole (every fd received closed, their tickets spent) if an exchange
  // fails, or an answer does not match its request: INTERNAL when the fds on
  // a frame are not the tickets it grants.
  absl::StatusOr<std::vector<absl::StatusOr<UniqueFd>>> RedeemMany(
      absl::Span<const std::string> tickets);

  // Hands `fds` (owned; closed here once the daemon has its copies) to the
  // daemon in as few frames as Hello allows, and returns one ticket per fd,
  // in order. `labels` is empty or one label (at most 256 bytes) per fd. All
  // or nothing: on failure the tickets already issued are redeemed back and
  // closed, and the daemon's code (RESOURCE_EXHAUSTED past the session's
  // ticket limit, INVALID_ARGUMENT) is returned.
  absl::StatusOr<std::vector<std::string>> DepositMany(
      std::vector<UniqueFd> fds, absl::Span<const std::string> labels = {});

  // --- Live restart. ---

  // Reconnects to the daemon (retrying with backoff for up to `timeout`) and
  // resumes this session: the daemon re-attaches it by its token and takes
  // back the anchors of its bindings. Returns true if the session was
  // resumed, false if the daemon did not know it and a fresh session took
  // its place (anchors are then dropped). Errors: DEADLINE_EXCEEDED if no
  // daemon answered in time; PERMISSION_DENIED from the daemon;
  // FAILED_PRECONDITION for a session not made with Open().
  absl::StatusOr<bool> Reconnect(absl::Duration timeout)
      ABSL_LOCKS_EXCLUDED(mu_, state_mu_);
  // Bindings whose anchor (a copy of the fd keeping the kernel binding alive)
  // this session holds.
  std::vector<uint64_t> anchored_bindings() const
      ABSL_LOCKS_EXCLUDED(state_mu_);
  // Automatic reconnects that resumed the session, so far.
  uint64_t resumes() const { return resumes_.load(); }

  // --- Accessors. ---
  uint64_t session_id() const ABSL_LOCKS_EXCLUDED(state_mu_);
  std::string session_token() const ABSL_LOCKS_EXCLUDED(state_mu_);
  devmem::v1::Hello hello() const ABSL_LOCKS_EXCLUDED(state_mu_);
  // The session socket, borrowed: for poll() or protocol tests that send raw
  // frames. Writing on it while another thread uses the Session breaks the
  // request/answer order.
  int session_fd_unowned() const ABSL_LOCKS_EXCLUDED(mu_);
  // For raw RPCs (e.g. a Listen with a foreign token). Null without channel.
  devmem::v1::Devmem::Stub* stub() const { return stub_.get(); }
  std::shared_ptr<grpc::Channel> channel() const { return channel_; }

 private:
  // Reads a server stream into `on` (see Drain and Watch).
  template <typename Response>
  absl::Status ReadStream(grpc::ClientContext& context,
                          grpc::ClientReaderInterface<Response>& reader,
                          const std::function<bool(const Response&)>& on);
  // One unary RPC with the session's deadline and reconnect policy.
  template <typename Request, typename Response>
  absl::StatusOr<Response> Unary(
      grpc::Status (devmem::v1::Devmem::Stub::*method)(grpc::ClientContext*,
                                                       const Request&,
                                                       Response*),
      const Request& request);

  // A daemon frame and the fds that came with it (owned).
  struct Reply {
    devmem::v1::SessionFrame frame;
    std::vector<UniqueFd> fds;
  };

  Session(UniqueFd session_fd, std::shared_ptr<grpc::Channel> channel,
          const SessionOptions& options, const devmem::v1::Hello& hello);

  // Sends `request` (with `fds` attached, borrowed) and reads one answer,
  // which must be an `expected` frame or an Error (returned as a Reply; the
  // caller decides); anything else breaks the session.
  absl::StatusOr<Reply> Exchange(const devmem::v1::SessionFrame& request,
                                 absl::Span<const int> fds,
                                 devmem::v1::SessionFrame::BodyCase expected)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Sockets per OpenSockets/SteerMany call (ticket limit, 1024 at most).
  size_t SocketsPerCall() const ABSL_LOCKS_EXCLUDED(state_mu_);
  // One OpenSockets call; its response has one result per spec.
  absl::StatusOr<devmem::v1::OpenSocketsResponse> CallOpenSockets(
      absl::Span<const SocketSpec> specs);
  // RedeemMany of the response's tickets: one fd (or failure) per item
  // that succeeded, in order.
  absl::StatusOr<std::vector<absl::StatusOr<UniqueFd>>> RedeemOpened(
      const devmem::v1::OpenSocketsResponse& response);
  // Hands one result per item of `response` to `on_opened`, numbered from
  // `first`: the item's failure, or its fd from `fds` with its description
  // (both moved out).
  static void HandOver(devmem::v1::OpenSocketsResponse* response,
                       std::vector<absl::StatusOr<UniqueFd>>* fds, size_t first,
                       OpenedFn on_opened);
  // One DepositMany frame with `fds` (borrowed): its tickets.
  absl::StatusOr<std::vector<std::string>> DepositFrame(
      absl::Span<const UniqueFd> fds, absl::Span<const std::string> labels);
  // Fds per frame the daemon takes (Hello), at most kMaxFdsPerMessage.
  size_t FdsPerFrame() const ABSL_LOCKS_EXCLUDED(state_mu_);
  // OK if a gRPC call can be made now: with auto_reconnect, first waits
  // out a resume in progress, or one a hung-up session socket is about to
  // start (bounded by reconnect_timeout).
  absl::Status CheckRpcReady() const;
  // With auto_reconnect, waits while the session is being resumed or its
  // socket shows devmemd gone (bounded by reconnect_timeout); true if it
  // had to wait.
  bool AwaitResume() const;
  // One unary call made by `call` with a fresh context; with
  // auto_reconnect, made once more if it was refused as UNAUTHENTICATED by a
  // restarted devmemd that had not seen this session's resume yet.
  grpc::Status CallResuming(
      const std::function<grpc::Status(grpc::ClientContext*)>& call) const;
  // Whether the session socket shows devmemd gone (a poll with no wait).
  bool SessionSocketHungUp() const ABSL_LOCKS_EXCLUDED(mu_);
  // Redeems a BindResponse's anchor ticket and keeps the fd.
  void KeepAnchor(const devmem::v1::BindResponse& response);
  // Registers the session socket `fd` with the process's hang-up watcher
  // (watching_ goes false if it cannot be).
  void WatchSocket(int fd) ABSL_EXCLUSIVE_LOCKS_REQUIRED(reconnect_mu_);
  // Moves the watch to `fd`, the socket about to replace the current one.
  void RewatchSocket(int fd) ABSL_LOCKS_EXCLUDED(reconnect_mu_);
  // The watcher's callback: lets the anchors go, or starts the reconnect
  // thread (or tells the running one to go again).
  void OnHangup() ABSL_LOCKS_EXCLUDED(reconnect_mu_, state_mu_);
  // The reconnect thread: reconnects and resumes until no hang-up is left.
  void ReconnectLoop() ABSL_LOCKS_EXCLUDED(reconnect_mu_);
  // After a Resume on the new session socket `fd`: sends back the anchors the
  // daemon awaits and returns those it holds now; our other copies go.
  std::map<uint64_t, UniqueFd> ResendAnchors(int fd,
                                             const devmem::v1::Resumed& resumed)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) ABSL_LOCKS_EXCLUDED(state_mu_);
  // Reconnect() without the gRPC warm-up.
  absl::StatusOr<bool> ReconnectSessionSocket(absl::Duration timeout)
      ABSL_LOCKS_EXCLUDED(mu_, state_mu_);

  const std::shared_ptr<grpc::Channel> channel_;
  const std::unique_ptr<devmem::v1::Devmem::Stub> stub_;
  const SessionOptions options_;

  mutable absl::Mutex state_mu_ ABSL_ACQUIRED_AFTER(mu_);
  devmem::v1::Hello hello_ ABSL_GUARDED_BY(state_mu_);
  // The token this session is known by (the resumed one after Reconnect).
  std::string token_ ABSL_GUARDED_BY(state_mu_);
  // Binding handle -> its anchor.
  std::map<uint64_t, UniqueFd> anchors_ ABSL_GUARDED_BY(state_mu_);

  std::atomic<uint64_t> resumes_{0};
  std::atomic<uint64_t> reconnects_{0};  // automatic attempts
  // The process's hang-up watcher (one thread for all sessions), kept so
  // that the session unwatches where it watched even after a fork.
  HangupWatcher* const watcher_;
  mutable absl::Mutex reconnect_mu_ ABSL_ACQUIRED_AFTER(mu_);
  mutable absl::CondVar reconnect_cv_;
  // True while a hang-up waits to be resumed (calls wait on it).
  bool reconnecting_ ABSL_GUARDED_BY(reconnect_mu_) = false;
  // False once no reconnect will come (none wanted, or one failed).
  bool watching_ ABSL_GUARDED_BY(reconnect_mu_) = false;
  // The latest registration with watcher_ (0: none), fired or not.
  uint64_t watch_id_ ABSL_GUARDED_BY(reconnect_mu_) = 0;
  bool closing_ ABSL_GUARDED_BY(reconnect_mu_) = false;  // in ~Session
  // The reconnect thread, started at a hang-up and ended once resumed.
  std::thread reconnector_ ABSL_GUARDED_BY(reconnect_mu_);
  bool reconnector_running_ ABSL_GUARDED_BY(reconnect_mu_) = false;
  // A hang-up of the new socket while the reconnect thread still ran.
  bool hangup_pending_ ABSL_GUARDED_BY(reconnect_mu_) = false;

  mutable absl::Mutex mu_;
  UniqueFd session_fd_ ABSL_GUARDED_BY(mu_);
  // First error that left the request/answer stream out of step; OK while
  // the session is usable.
  absl::Status broken_ ABSL_GUARDED_BY(mu_);
  uint64_t next_nonce_ ABSL_GUARDED_BY(mu_) = 1;
};

}  // namespace devmem
