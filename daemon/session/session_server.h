#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "daemon/session/peer_cred.h"
#include "daemon/session/session_manager.h"
#include "kernel/accept_reserve.h"
#include "kernel/unique_fd.h"
#include "proto/devmem/v1/session.pb.h"

namespace devmem {

// Serves the session socket (SOCK_SEQPACKET, docs/PROTOCOL.md): authenticates
// each connection with SO_PEERCRED, sends Hello, answers Redeem/Deposit/Ping
// (and RedeemMany/DepositMany, up to kMaxFdsPerMessage fds in one frame),
// and closes a session on any protocol violation or when the peer goes away,
// which releases everything the session owns (SessionManager::Close).
//
// One thread runs an epoll loop over the listening socket, every session
// connection and a stop eventfd. Sends are non-blocking: a client that does not
// read its replies loses its session instead of stalling everyone else.
class SessionServer {
 public:
  SessionServer(UniqueFd listen_fd, const AccessPolicy* policy,
                SessionManager* sessions);
  ~SessionServer();

  // Lease operations behind Resume and ReturnAnchor (the NicManager).
  struct LeaseHooks {
    std::function<std::vector<uint64_t>(uint64_t session)> awaiting_anchor;
    std::function<std::vector<uint64_t>(uint64_t session)> anchored;
    std::function<absl::StatusOr<uint32_t>(uint64_t session, uint64_t handle,
                                           UniqueFd anchor)>
        return_anchor;
  };
  // Set before Start(). Without hooks, Resume resumes sessions without
  // leases and ReturnAnchor answers FAILED_PRECONDITION.
  void SetLeaseHooks(LeaseHooks hooks) { hooks_ = std::move(hooks); }

  // Metrics hooks, called on the server's thread; each may be empty. `frame`
  // once per client frame answered: "session.Redeem" etc., the code of the
  // answer (OK unless it was an Error frame; an FdBatch with per-ticket errors
  // is OK) and the time taken. `fd` with the number of fds of one kind passed
  // in a frame (a RedeemMany or DepositMany reports each kind once):
  // direction "to_client" (kind "socket", "anchor" or "other") or
  // "from_client" (kind "dmabuf" for a Deposit or DepositMany, "anchor" for
  // ReturnAnchor).
  struct Observer {
    std::function<void(absl::string_view method, absl::StatusCode code,
                       absl::Duration elapsed)>
        frame;
    std::function<void(absl::string_view direction, absl::string_view kind,
                       size_t count)>
        fd;
  };
  // Set before Start().
  void SetObserver(Observer observer) { observer_ = std::move(observer); }

  absl::Status Start();
  // Closes every session and joins the thread. Idempotent. With
  // `release_leases` false the sessions' leases are left for the next devmemd
  // to re-adopt (live restart): the close observer is not called.
  void Stop(bool release_leases = true);

  size_t connection_count() const ABSL_LOCKS_EXCLUDED(mu_);
  uint64_t fds_handed_off() const { return fds_handed_off_.load(); }
  uint64_t sessions_closed_for_violation() const { return violations_.load(); }

 private:
  void Loop();
  void Accept();
  // Reads and answers one frame; returns false if the session must close.
  bool Serve(uint64_t session_id, int fd);
  // The frame's method name for metrics; null for a daemon->client body.
  static const char* FrameMethod(devmem::v1::SessionFrame::BodyCase body);
  // kFdKindSocket, kFdKindAnchor or kFdKindOther, for the fd-hand-off
  // metric, asked of the kernel: for fds whose ticket did not say.
  static const char* FdKind(int fd);
  bool ServeFrame(uint64_t session_id, int fd,
                  const devmem::v1::SessionFrame& frame,
                  std::vector<UniqueFd>& fds);
  // Sends `frame` with `pass_fds` (borrowed, at most kMaxFdsPerMessage) in
  // one non-blocking sendmsg(); false if the session must close.
  bool Reply(uint64_t session_id, int fd, const devmem::v1::SessionFrame& frame,
             absl::Span<const int> pass_fds = {});
  // Counts fds just handed to the client, for fds_handed_off() and the
  // observer. `kinds[i]` is fds[i]'s kind from its ticket (null: ask).
  void NoteHandedOff(absl::Span<const UniqueFd> fds,
                     absl::Span<const char* const> kinds);
  // Tells the observer of `count` fds received with a frame, of `kind`.
  void NoteReceived(size_t count, absl::string_view kind);
  bool HandleRedeem(uint64_t session_id, int fd, const std::string& ticket);
  // One FdBatch: each ticket redeemed or failed on its own.
  bool HandleRedeemMany(uint64_t session_id, int fd,
                        const devmem::v1::RedeemMany& request);
  bool HandleDeposit(uint64_t session_id, int fd, const std::string& label,
                     std::vector<UniqueFd>& fds);
  // INVALID_ARGUMENT unless `fd_count` fds may go with `request`'s labels.
  static absl::Status CheckDepositMany(const devmem::v1::DepositMany& request,
                                       size_t fd_count);
  // All or nothing: a ticket for every fd, or an Error with every fd closed
  // and no ticket of this frame left.
  bool HandleDepositMany(uint64_t session_id, int fd,
                         const devmem::v1::DepositMany& request,
                         std::vector<UniqueFd>& fds);
  void CloseSession(uint64_t session_id);
  // Resume: re-keys the connection of `fresh_id` to the resumed session.
  bool HandleResume(uint64_t fresh_id, int fd, const std::string& token);
  bool HandleReturnAnchor(uint64_t session_id, int fd, uint64_t handle,
                          UniqueFd anchor);

  UniqueFd listen_fd_;
  UniqueFd epoll_fd_;
  UniqueFd stop_fd_;
  const AccessPolicy* policy_;
  SessionManager* sessions_;
  LeaseHooks hooks_;
  AcceptReserve reserve_;
  std::thread thread_;
  std::atomic<uint64_t> fds_handed_off_{0};
  std::atomic<uint64_t> violations_{0};
  mutable absl::Mutex mu_;
  // session id -> its connection. Only the loop thread mutates it.
  absl::flat_hash_map<uint64_t, UniqueFd> conns_ ABSL_GUARDED_BY(mu_);
  Observer observer_;
  // The code of the last answer sent (the server's thread only).
  absl::StatusCode reply_code_ = absl::StatusCode::kOk;
};

}  // namespace devmem
