#include "daemon/session_manager.h"

#include <sys/random.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"

namespace devmem {

std::string RandomHex128() {
  unsigned char buf[16];
  size_t got = 0;
  while (got < sizeof(buf)) {
    ssize_t n = ::getrandom(buf + got, sizeof(buf) - got, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      // No entropy source means no unguessable tickets: refusing to run is the
      // only safe answer.
      std::abort();
    }
    got += static_cast<size_t>(n);
  }
  return absl::BytesToHexString(
      absl::string_view(reinterpret_cast<const char*>(buf), sizeof(buf)));
}

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
  Opened out{next_id_++, RandomHex128()};
  Session s;
  s.peer = peer;
  s.token = out.token;
  sessions_.emplace(out.id, std::move(s));
  by_token_.emplace(out.token, out.id);
  return out;
}

void SessionManager::Close(uint64_t session_id) {
  std::vector<UniqueFd> to_close;  // closed after the lock is dropped
  std::function<void(uint64_t)> on_close;
  {
    absl::MutexLock lock(&mu_);
    auto it = sessions_.find(session_id);
    if (it == sessions_.end()) return;
    on_close = on_close_;
    by_token_.erase(it->second.token);
    sessions_.erase(it);
    for (auto t = tickets_.begin(); t != tickets_.end();) {
      if (t->second.session_id == session_id) {
        to_close.push_back(std::move(t->second.fd));
        tickets_.erase(t++);
      } else {
        ++t;
      }
    }
  }
  // Leases (bindings, rules) go after the session is gone, so no new call
  // can attach to it while they are released.
  if (on_close) on_close(session_id);
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
                                                        UniqueFd fd) {
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
  tickets_.emplace(
      ticket,
      Ticket{session_id, clock_->Now() + options_.ticket_ttl, std::move(fd)});
  ++s.open_tickets;
  return ticket;
}

absl::StatusOr<UniqueFd> SessionManager::Redeem(uint64_t session_id,
                                                absl::string_view ticket) {
  absl::MutexLock lock(&mu_);
  auto sit = sessions_.find(session_id);
  if (sit == sessions_.end()) {
    return absl::UnauthenticatedError("session is closed");
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
  return sessions_.size();
}

size_t SessionManager::pending_tickets() const {
  absl::MutexLock lock(&mu_);
  return tickets_.size();
}

}  // namespace devmem
