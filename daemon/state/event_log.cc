#include "daemon/state/event_log.h"

#include <utility>

namespace devmem {

EventLog::EventLog(size_t capacity, const Clock* clock)
    : capacity_(capacity == 0 ? 1 : capacity),
      clock_(clock),
      start_(static_cast<uint64_t>(absl::ToUnixMicros(clock->Now()))),
      last_(start_) {}

uint64_t EventLog::Publish(devmem::v1::Event event) {
  absl::MutexLock lock(&mu_);
  event.set_revision(++last_);
  event.set_unix_ms(absl::ToUnixMillis(clock_->Now()));
  ring_.push_back(std::move(event));
  if (ring_.size() > capacity_) ring_.pop_front();
  return last_;
}

uint64_t EventLog::revision() const {
  absl::MutexLock lock(&mu_);
  return last_;
}

EventLog::Read EventLog::Since(uint64_t since, size_t max) const {
  absl::MutexLock lock(&mu_);
  Read out;
  out.oldest = ring_.empty() ? 0 : ring_.front().revision();
  // A gap: events after `since` were dropped, or `since` is from another
  // run (before this one's start, or beyond its newest revision).
  const uint64_t first_kept = ring_.empty() ? last_ + 1 : out.oldest;
  if (since > last_ || since + 1 < first_kept) {
    out.compacted = true;
    return out;
  }
  for (auto it = ring_.begin(); it != ring_.end(); ++it) {
    if (it->revision() <= since) continue;
    if (out.events.size() >= max) break;
    out.events.push_back(*it);
  }
  return out;
}

bool EventLog::WaitNewer(uint64_t since, absl::Duration timeout) const {
  absl::MutexLock lock(&mu_);
  auto newer = [this, since]()
                   ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return last_ > since; };
  return mu_.AwaitWithTimeout(absl::Condition(&newer), timeout);
}

}  // namespace devmem
