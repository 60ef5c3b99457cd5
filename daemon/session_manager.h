#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "daemon/clock.h"
#include "daemon/peer_cred.h"
#include "kernel/unique_fd.h"

namespace devmem {

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
  };
  struct Opened {
    uint64_t id;
    std::string token;
  };

  SessionManager(Options options, const Clock* clock);
  ~SessionManager();

  // RESOURCE_EXHAUSTED when max_sessions are open.
  absl::StatusOr<Opened> Open(const PeerCred& peer) ABSL_LOCKS_EXCLUDED(mu_);

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
  // RESOURCE_EXHAUSTED past max_tickets_per_session.
  absl::StatusOr<std::string> IssueTicket(uint64_t session_id, UniqueFd fd)
      ABSL_LOCKS_EXCLUDED(mu_);

  // Takes the fd behind `ticket` if it belongs to `session_id`.
  // NOT_FOUND for unknown, spent or foreign tickets; DEADLINE_EXCEEDED if
  // expired.
  absl::StatusOr<UniqueFd> Redeem(uint64_t session_id, absl::string_view ticket)
      ABSL_LOCKS_EXCLUDED(mu_);

  // Closes the fds of expired tickets. Returns how many expired.
  size_t ExpireTickets() ABSL_LOCKS_EXCLUDED(mu_);

  size_t session_count() const ABSL_LOCKS_EXCLUDED(mu_);
  size_t pending_tickets() const ABSL_LOCKS_EXCLUDED(mu_);
  absl::Duration ticket_ttl() const { return options_.ticket_ttl; }
  const Options& options() const { return options_; }

 private:
  struct Ticket {
    uint64_t session_id;
    absl::Time expires;
    UniqueFd fd;
  };
  struct Session {
    PeerCred peer;
    std::string token;
    uint32_t open_tickets = 0;
    // Expired tickets remembered (bounded) so redeeming one says "expired".
    std::deque<std::string> expired;
  };
  static constexpr size_t kMaxExpiredRemembered = 256;

  void ExpireLocked(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const Options options_;
  const Clock* clock_;
  mutable absl::Mutex mu_;
  uint64_t next_id_ ABSL_GUARDED_BY(mu_) = 1;
  absl::flat_hash_map<uint64_t, Session> sessions_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, uint64_t> by_token_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, Ticket> tickets_ ABSL_GUARDED_BY(mu_);
  std::function<void(uint64_t)> on_close_ ABSL_GUARDED_BY(mu_);
};

// 128 random bits from getrandom(2) as 32 lowercase hex digits.
std::string RandomHex128();

}  // namespace devmem
