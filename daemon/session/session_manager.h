#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "daemon/base/clock.h"
#include "daemon/base/random_token.h"
#include "daemon/session/peer_cred.h"
#include "kernel/unique_fd.h"

namespace devmem {

// What a handed-off fd is, for the fd metrics: a TCP socket devmemd made or
// steered, a binding's anchor, or anything else.
inline constexpr char kFdKindSocket[] = "socket";
inline constexpr char kFdKindAnchor[] = "anchor";
inline constexpr char kFdKindOther[] = "other";

// Sessions and the tickets that tie fds to them (docs/PROTOCOL.md sections
// 4-5).
//
// A session is created when a workload connects to the session socket and lives
// until that socket closes; Close() then releases everything it owns. Tickets
// are single-use, bound to one session and expire after `ticket_ttl`. Redeeming
// a ticket of another session looks exactly like redeeming an unknown one.
//
// Thread-safe: gRPC threads issue tickets, the session-socket thread redeems
// and closes. All state sits under one mutex; no callbacks run while it is
// held.
class SessionManager {
 public:
  struct Options {
    absl::Duration ticket_ttl = absl::Seconds(10);
    uint32_t max_tickets_per_session = 64;
    uint32_t max_sessions = 4096;
    // Per-uid quotas (sessions open, sockets made for live sessions).
    uint32_t max_sessions_per_uid = 1024;
    uint32_t max_sockets_per_uid = 65536;
  };
  struct Opened {
    uint64_t id;
    std::string token;
  };

  SessionManager(Options options, const Clock* clock);
  ~SessionManager();

  // RESOURCE_EXHAUSTED when max_sessions are open, or the peer's uid holds
  // max_sessions_per_uid.
  absl::StatusOr<Opened> Open(const PeerCred& peer) ABSL_LOCKS_EXCLUDED(mu_);

  // --- Live restart (docs/PROTOCOL.md section 8) ---

  // A session from the journal of an earlier devmemd: it holds leases but no
  // connection. Resume() re-attaches it; otherwise ExpireDetached() closes it
  // once `deadline` passes. Ids below `id + 1` are never handed out again.
  void AddDetached(uint64_t id, const std::string& token, const PeerCred& owner,
                   absl::Time deadline) ABSL_LOCKS_EXCLUDED(mu_);
  // The connection whose fresh session is `fresh_id` takes over the detached
  // session `token` names; `fresh_id` is closed (it holds nothing yet).
  // Returns the resumed session's id. NOT_FOUND if no detached session has
  // that token (unknown, live elsewhere, or expired: open a new session);
  // PERMISSION_DENIED if `peer` is not its owner; FAILED_PRECONDITION if
  // `fresh_id` already holds tickets.
  absl::StatusOr<uint64_t> Resume(uint64_t fresh_id, absl::string_view token,
                                  const PeerCred& peer)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Closes detached sessions whose grace period ended (the close observer
  // releases their leases). Returns how many.
  size_t ExpireDetached() ABSL_LOCKS_EXCLUDED(mu_);
  size_t detached_count() const ABSL_LOCKS_EXCLUDED(mu_);

  // Who owns a session (for the journal). NOT_FOUND if it is gone.
  struct Owner {
    std::string token;
    PeerCred peer;
  };
  absl::StatusOr<Owner> OwnerOf(uint64_t session_id) const
      ABSL_LOCKS_EXCLUDED(mu_);

  // Counts one socket made for the session against its uid's
  // max_sockets_per_uid (released with the session). RESOURCE_EXHAUSTED with
  // the numbers when the uid is at its quota; UNAUTHENTICATED if the session
  // is gone.
  absl::Status ChargeSocket(uint64_t session_id) ABSL_LOCKS_EXCLUDED(mu_);

  // Releases the session and every fd it still holds behind tickets.
  // Idempotent.
  void Close(uint64_t session_id) ABSL_LOCKS_EXCLUDED(mu_);

  // Called (without locks held) after a session closed, with its id: the
  // lease owner releases what the session held. Set once, before serving.
  void SetCloseObserver(std::function<void(uint64_t)> fn)
      ABSL_LOCKS_EXCLUDED(mu_);

  // Maps a session token from a gRPC request to its session id.
  // UNAUTHENTICATED if missing/unknown; PERMISSION_DENIED if `caller`'s uid is
  // not the session owner's.
  absl::StatusOr<uint64_t> Authorize(absl::string_view token,
                                     const PeerCred& caller) const
      ABSL_LOCKS_EXCLUDED(mu_);

  // Puts `fd` behind a new ticket of `session_id`. On error the fd is closed.
  // UNAUTHENTICATED if the session is gone (closed meanwhile);
  // RESOURCE_EXHAUSTED past max_tickets_per_session. `kind` (a static
  // string such as kFdKindSocket, or null when unknown) is what Redeem
  // reports of the fd, so that nobody has to ask the kernel.
  absl::StatusOr<std::string> IssueTicket(uint64_t session_id, UniqueFd fd,
                                          const char* kind = nullptr)
      ABSL_LOCKS_EXCLUDED(mu_);

  // --- Binding anchors behind tickets (docs/PROTOCOL.md section 8) ---

  // IssueTicket() for a copy of binding `handle`'s anchor. Redeeming it
  // marks the anchor as handed out to the session's workload.
  absl::StatusOr<std::string> IssueAnchorTicket(uint64_t session_id,
                                                uint64_t handle, UniqueFd fd)
      ABSL_LOCKS_EXCLUDED(mu_);
  // The binding is going: closes its anchor's unredeemed ticket, if any, and
  // forgets that the anchor was handed out. No-op for a closed session.
  void WithdrawAnchor(uint64_t session_id, uint64_t handle)
      ABSL_LOCKS_EXCLUDED(mu_);
  // The workload has a copy of binding `handle`'s anchor: it redeemed the
  // anchor ticket, or returned a copy (ReturnAnchor, NoteAnchorHeld).
  bool AnchorHandedOut(uint64_t session_id, uint64_t handle) const
      ABSL_LOCKS_EXCLUDED(mu_);
  void NoteAnchorHeld(uint64_t session_id, uint64_t handle)
      ABSL_LOCKS_EXCLUDED(mu_);

  // Takes the fd behind `ticket` if it belongs to `session_id`.
  // INVALID_ARGUMENT if `ticket` is not 32 lowercase hex digits (the message
  // does not repeat it); NOT_FOUND for unknown, spent or foreign tickets;
  // DEADLINE_EXCEEDED if expired.
  // `*kind` (if given) gets the ticket's kind: IssueTicket's, kFdKindAnchor
  // for anchor tickets.
  absl::StatusOr<UniqueFd> Redeem(uint64_t session_id, absl::string_view ticket,
                                  const char** kind = nullptr)
      ABSL_LOCKS_EXCLUDED(mu_);

  // Closes the fds of expired tickets. Returns how many expired.
  size_t ExpireTickets() ABSL_LOCKS_EXCLUDED(mu_);

  size_t session_count() const ABSL_LOCKS_EXCLUDED(mu_);
  size_t pending_tickets() const ABSL_LOCKS_EXCLUDED(mu_);
  // Sessions opened since start (not counting those resumed from a journal).
  uint64_t opened_total() const ABSL_LOCKS_EXCLUDED(mu_);
  absl::Duration ticket_ttl() const { return options_.ticket_ttl; }
  const Options& options() const { return options_; }

 private:
  struct Ticket {
    uint64_t session_id;
    absl::Time expires;
    UniqueFd fd;
    uint64_t anchor_of = 0;  // binding handle, for anchor tickets
    const char* kind = nullptr;
  };
  struct Session {
    PeerCred peer;
    std::string token;
    uint32_t open_tickets = 0;
    uint32_t sockets = 0;
    // Set for a journal session awaiting Resume().
    bool detached = false;
    absl::Time detach_deadline;
    // Expired tickets remembered (bounded) so redeeming one says "expired".
    std::deque<std::string> expired;
    // Bindings whose anchor the workload has a copy of.
    absl::flat_hash_set<uint64_t> anchors_held;
  };
  static constexpr size_t kMaxExpiredRemembered = 256;

  absl::StatusOr<std::string> IssueTicketTagged(uint64_t session_id,
                                                UniqueFd fd, uint64_t anchor_of,
                                                const char* kind)
      ABSL_LOCKS_EXCLUDED(mu_);
  void ExpireLocked(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Removes the session and its tickets; returns the tickets' fds.
  std::vector<UniqueFd> EraseLocked(uint64_t session_id)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const Options options_;
  const Clock* clock_;
  mutable absl::Mutex mu_;
  uint64_t next_id_ ABSL_GUARDED_BY(mu_) = 1;
  uint64_t opened_ ABSL_GUARDED_BY(mu_) = 0;
  absl::flat_hash_map<uint64_t, Session> sessions_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, uint64_t> by_token_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, Ticket> tickets_ ABSL_GUARDED_BY(mu_);
  std::function<void(uint64_t)> on_close_ ABSL_GUARDED_BY(mu_);
  // Per uid: sessions open (detached included) and sockets charged.
  absl::flat_hash_map<uint32_t, uint32_t> uid_sessions_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<uint32_t, uint32_t> uid_sockets_ ABSL_GUARDED_BY(mu_);
  size_t detached_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace devmem
