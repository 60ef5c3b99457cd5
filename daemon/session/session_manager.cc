#include "daemon/session/session_manager.h"

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"

namespace devmem {

SessionManager::SessionManager(Options options, const Clock* clock)
    : options_(options), clock_(clock) {}

SessionManager::~SessionManager() = default;

absl::StatusOr<SessionManager::Opened> SessionManager::Open(
    const PeerCred& peer) {
  absl::MutexLock lock(&mu_);
  if (sessions_.size() >= options_.max_sessions) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "devmemd has ", sessions_.size(), " sessions open, the limit (",
        "max_sessions) is ", options_.max_sessions,
        "; close idle sessions or raise max_sessions"));
  }
  uint32_t& mine = uid_sessions_[peer.uid];
  if (mine >= options_.max_sessions_per_uid) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "uid ", peer.uid, " has ", mine, " sessions open, the per-uid limit ",
        "(max_sessions_per_uid) is ", options_.max_sessions_per_uid,
        "; close idle sessions of this user"));
  }
  ++mine;
  ++opened_;
  Opened out{next_id_++, RandomHex128()};
  Session s;
  s.peer = peer;
  s.token = out.token;
  sessions_.emplace(out.id, std::move(s));
  by_token_.emplace(out.token, out.id);
  return out;
}

std::vector<UniqueFd> SessionManager::EraseLocked(uint64_t session_id) {
  std::vector<UniqueFd> fds;
  auto it = sessions_.find(session_id);
  if (it == sessions_.end()) return fds;
  const Session& s = it->second;
  by_token_.erase(s.token);
  if (auto u = uid_sessions_.find(s.peer.uid); u != uid_sessions_.end()) {
    if (--u->second == 0) uid_sessions_.erase(u);
  }
  if (auto u = uid_sockets_.find(s.peer.uid); u != uid_sockets_.end()) {
    u->second -= std::min(u->second, s.sockets);
    if (u->second == 0) uid_sockets_.erase(u);
  }
  if (s.detached) --detached_;
  sessions_.erase(it);
  for (auto t = tickets_.begin(); t != tickets_.end();) {
    if (t->second.session_id == session_id) {
      fds.push_back(std::move(t->second.fd));
      tickets_.erase(t++);
    } else {
      ++t;
    }
  }
  return fds;
}

void SessionManager::Close(uint64_t session_id) {
  std::vector<UniqueFd> to_close;  // closed after the lock is dropped
  std::function<void(uint64_t)> on_close;
  {
    absl::MutexLock lock(&mu_);
    if (!sessions_.contains(session_id)) return;
    on_close = on_close_;
    to_close = EraseLocked(session_id);
  }
  // Leases (bindings, rules) go after the session is gone, so no new call
  // can attach to it while they are released.
  if (on_close) on_close(session_id);
}

void SessionManager::AddDetached(uint64_t id, const std::string& token,
                                 const PeerCred& owner, absl::Time deadline) {
  absl::MutexLock lock(&mu_);
  if (id >= next_id_) next_id_ = id + 1;
  if (sessions_.contains(id) || by_token_.contains(token)) return;
  Session s;
  s.peer = owner;
  s.token = token;
  s.detached = true;
  s.detach_deadline = deadline;
  sessions_.emplace(id, std::move(s));
  // Not in by_token_: a detached session answers no gRPC call until resumed.
  ++uid_sessions_[owner.uid];
  ++detached_;
}

absl::StatusOr<uint64_t> SessionManager::Resume(uint64_t fresh_id,
                                                absl::string_view token,
                                                const PeerCred& peer) {
  std::vector<UniqueFd> to_close;
  absl::MutexLock lock(&mu_);
  auto fresh = sessions_.find(fresh_id);
  if (fresh == sessions_.end()) {
    return absl::UnauthenticatedError("session is closed");
  }
  if (fresh->second.open_tickets > 0 || fresh->second.sockets > 0) {
    return absl::FailedPreconditionError(
        "Resume must be the first request on a session connection");
  }
  uint64_t found = 0;
  for (auto& [id, s] : sessions_) {
    if (s.detached && s.token == token) {
      found = id;
      break;
    }
  }
  if (found == 0) {
    return absl::NotFoundError(
        "no session with this token is waiting to be resumed (it was never "
        "recorded, is live on another connection, or its grace period "
        "ended); open a new session");
  }
  Session& old = sessions_.at(found);
  if (old.peer.uid != peer.uid) {
    return absl::PermissionDeniedError(
        absl::StrCat("the session belongs to uid ", old.peer.uid,
                     ", this connection is uid ", peer.uid));
  }
  old.detached = false;
  old.peer = peer;  // same uid; pid and gid of the new connection
  --detached_;
  by_token_.emplace(old.token, found);
  to_close = EraseLocked(fresh_id);
  return found;
}

size_t SessionManager::ExpireDetached() {
  std::vector<uint64_t> expired;
  std::function<void(uint64_t)> on_close;
  {
    absl::MutexLock lock(&mu_);
    if (detached_ == 0) return 0;
    const absl::Time now = clock_->Now();
    for (const auto& [id, s] : sessions_) {
      if (s.detached && now >= s.detach_deadline) expired.push_back(id);
    }
    for (uint64_t id : expired) EraseLocked(id);
    on_close = on_close_;
  }
  if (on_close) {
    for (uint64_t id : expired) on_close(id);
  }
  return expired.size();
}

size_t SessionManager::detached_count() const {
  absl::MutexLock lock(&mu_);
  return detached_;
}

absl::StatusOr<SessionManager::Owner> SessionManager::OwnerOf(
    uint64_t session_id) const {
  absl::MutexLock lock(&mu_);
  auto it = sessions_.find(session_id);
  if (it == sessions_.end()) {
    return absl::NotFoundError(absl::StrCat("no session ", session_id));
  }
  return Owner{it->second.token, it->second.peer};
}

absl::Status SessionManager::ChargeSocket(uint64_t session_id) {
  absl::MutexLock lock(&mu_);
  auto it = sessions_.find(session_id);
  if (it == sessions_.end()) {
    return absl::UnauthenticatedError("the session closed meanwhile");
  }
  uint32_t& used = uid_sockets_[it->second.peer.uid];
  if (used >= options_.max_sockets_per_uid) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "uid ", it->second.peer.uid, " has ", used,
        " sockets from devmemd in its open sessions, the per-uid limit ",
        "(max_sockets_per_uid) is ", options_.max_sockets_per_uid,
        "; close sessions that no longer need theirs"));
  }
  ++used;
  ++it->second.sockets;
  return absl::OkStatus();
}

void SessionManager::SetCloseObserver(std::function<void(uint64_t)> fn) {
  absl::MutexLock lock(&mu_);
  on_close_ = std::move(fn);
}

absl::StatusOr<uint64_t> SessionManager::Authorize(
    absl::string_view token, const PeerCred& caller) const {
  if (token.empty()) {
    return absl::UnauthenticatedError(
        "session_token is required: open a session on the session socket and "
        "pass the token from its Hello frame");
  }
  absl::MutexLock lock(&mu_);
  auto it = by_token_.find(token);
  if (it == by_token_.end()) {
    return absl::UnauthenticatedError(
        "unknown session_token: the session is closed or never existed; open "
        "a new session");
  }
  const Session& s = sessions_.at(it->second);
  if (s.peer.uid != caller.uid) {
    return absl::PermissionDeniedError(
        absl::StrCat("session belongs to uid ", s.peer.uid,
                     ", the caller is uid ", caller.uid));
  }
  return it->second;
}

absl::StatusOr<std::string> SessionManager::IssueTicket(uint64_t session_id,
                                                        UniqueFd fd,
                                                        const char* kind) {
  return IssueTicketTagged(session_id, std::move(fd), /*anchor_of=*/0, kind);
}

absl::StatusOr<std::string> SessionManager::IssueAnchorTicket(
    uint64_t session_id, uint64_t handle, UniqueFd fd) {
  return IssueTicketTagged(session_id, std::move(fd), handle, kFdKindAnchor);
}

absl::StatusOr<std::string> SessionManager::IssueTicketTagged(
    uint64_t session_id, UniqueFd fd, uint64_t anchor_of, const char* kind) {
  absl::MutexLock lock(&mu_);
  auto it = sessions_.find(session_id);
  if (it == sessions_.end()) {
    return absl::UnauthenticatedError(
        "the session closed before its ticket could be issued");
  }
  Session& s = it->second;
  if (s.open_tickets >= options_.max_tickets_per_session) {
    ExpireLocked(clock_->Now());
    if (s.open_tickets >= options_.max_tickets_per_session) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "session holds ", s.open_tickets, " unredeemed tickets, the limit ",
          "(max_tickets_per_session) is ", options_.max_tickets_per_session,
          "; redeem or let them expire first"));
    }
  }
  std::string ticket = RandomHex128();
  tickets_.emplace(ticket,
                   Ticket{session_id, clock_->Now() + options_.ticket_ttl,
                          std::move(fd), anchor_of, kind});
  ++s.open_tickets;
  return ticket;
}

void SessionManager::WithdrawAnchor(uint64_t session_id, uint64_t handle) {
  UniqueFd closing;  // closed after the lock is dropped
  absl::MutexLock lock(&mu_);
  auto sit = sessions_.find(session_id);
  if (sit == sessions_.end()) return;
  sit->second.anchors_held.erase(handle);
  for (auto it = tickets_.begin(); it != tickets_.end(); ++it) {
    if (it->second.session_id == session_id && it->second.anchor_of == handle) {
      closing = std::move(it->second.fd);
      tickets_.erase(it);
      --sit->second.open_tickets;
      return;
    }
  }
}

bool SessionManager::AnchorHandedOut(uint64_t session_id,
                                     uint64_t handle) const {
  absl::MutexLock lock(&mu_);
  auto sit = sessions_.find(session_id);
  return sit != sessions_.end() && sit->second.anchors_held.contains(handle);
}

void SessionManager::NoteAnchorHeld(uint64_t session_id, uint64_t handle) {
  absl::MutexLock lock(&mu_);
  auto sit = sessions_.find(session_id);
  if (sit != sessions_.end()) sit->second.anchors_held.insert(handle);
}

absl::StatusOr<UniqueFd> SessionManager::Redeem(uint64_t session_id,
                                                absl::string_view ticket,
                                                const char** kind) {
  absl::MutexLock lock(&mu_);
  auto sit = sessions_.find(session_id);
  if (sit == sessions_.end()) {
    return absl::UnauthenticatedError("session is closed");
  }
  if (!IsTicketFormat(ticket)) {
    // Not echoed: an answer must fit in a frame whatever the client sent.
    return absl::InvalidArgumentError(
        absl::StrCat("malformed ticket (", ticket.size(),
                     " bytes): tickets are 32 lowercase hex digits, as devmemd "
                     "issues them"));
  }
  const absl::Time now = clock_->Now();
  auto it = tickets_.find(ticket);
  if (it != tickets_.end() && it->second.session_id == session_id) {
    if (now >= it->second.expires) {
      ExpireLocked(now);
      return absl::DeadlineExceededError(absl::StrCat(
          "ticket ", ticket, " expired (tickets live ",
          absl::FormatDuration(options_.ticket_ttl), "); repeat the request"));
    }
    UniqueFd fd = std::move(it->second.fd);
    if (kind != nullptr) *kind = it->second.kind;
    if (it->second.anchor_of != 0) {
      sit->second.anchors_held.insert(it->second.anchor_of);
    }
    tickets_.erase(it);
    --sit->second.open_tickets;
    return fd;
  }
  const auto& expired = sit->second.expired;
  if (std::find(expired.begin(), expired.end(), ticket) != expired.end()) {
    return absl::DeadlineExceededError(absl::StrCat(
        "ticket ", ticket, " expired (tickets live ",
        absl::FormatDuration(options_.ticket_ttl), "); repeat the request"));
  }
  // Unknown, spent, or another session's: indistinguishable on purpose.
  return absl::NotFoundError(absl::StrCat(
      "ticket ", ticket,
      " not found in this session (unknown, already redeemed, or issued to "
      "another session)"));
}

void SessionManager::ExpireLocked(absl::Time now) {
  for (auto it = tickets_.begin(); it != tickets_.end();) {
    if (now >= it->second.expires) {
      auto s = sessions_.find(it->second.session_id);
      if (s != sessions_.end()) {
        --s->second.open_tickets;
        s->second.expired.push_back(it->first);
        if (s->second.expired.size() > kMaxExpiredRemembered) {
          s->second.expired.pop_front();
        }
      }
      // Closing an fd under the lock is fine here: it is a plain close(2) of a
      // socket nobody else references.
      tickets_.erase(it++);
    } else {
      ++it;
    }
  }
}

size_t SessionManager::ExpireTickets() {
  absl::MutexLock lock(&mu_);
  const size_t before = tickets_.size();
  ExpireLocked(clock_->Now());
  return before - tickets_.size();
}

size_t SessionManager::session_count() const {
  absl::MutexLock lock(&mu_);
  return sessions_.size() - detached_;
}

uint64_t SessionManager::opened_total() const {
  absl::MutexLock lock(&mu_);
  return opened_;
}

size_t SessionManager::pending_tickets() const {
  absl::MutexLock lock(&mu_);
  return tickets_.size();
}

}  // namespace devmem
