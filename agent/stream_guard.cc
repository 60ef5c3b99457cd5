#include "agent/stream_guard.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace devmem::agent {

StreamGuard::Stream::~Stream() { guard_->Remove(this); }

void StreamGuard::Stream::WriteStarted() {
  absl::MutexLock lock(&guard_->mu_);
  write_since_ = absl::Now();
}

void StreamGuard::Stream::WriteDone() {
  absl::MutexLock lock(&guard_->mu_);
  write_since_ = absl::InfiniteFuture();
}

StreamGuard::StreamGuard(size_t max_streams, absl::Duration stall_timeout)
    : max_streams_(max_streams), stall_timeout_(stall_timeout) {
  thread_ = std::thread([this] {
    absl::MutexLock lock(&mu_);
    while (
        !mu_.AwaitWithTimeout(absl::Condition(&stopping_), absl::Seconds(1))) {
      mu_.Unlock();
      CheckNow(absl::Now());
      mu_.Lock();
    }
  });
}

StreamGuard::~StreamGuard() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  thread_.join();
}

absl::StatusOr<std::unique_ptr<StreamGuard::Stream>> StreamGuard::Admit(
    grpc::ServerContext* client, grpc::ClientContext* upstream) {
  absl::MutexLock lock(&mu_);
  if (streams_.size() >= max_streams_) {
    return absl::ResourceExhaustedError(
        absl::StrCat(max_streams_,
                     " Watch and Drain streams are open on this agent "
                     "(max_streams); close one or retry later"));
  }
  std::unique_ptr<Stream> s(new Stream(this, client, upstream));
  streams_.push_back(s.get());
  return s;
}

void StreamGuard::Remove(Stream* s) {
  absl::MutexLock lock(&mu_);
  streams_.remove(s);
}

size_t StreamGuard::open() const {
  absl::MutexLock lock(&mu_);
  return streams_.size();
}

uint64_t StreamGuard::stalled_total() const {
  absl::MutexLock lock(&mu_);
  return stalled_total_;
}

void StreamGuard::CheckNow(absl::Time now) {
  absl::MutexLock lock(&mu_);
  for (Stream* s : streams_) {
    if (s->cancelled_) continue;
    const bool stalled = now - s->write_since_ > stall_timeout_;
    if (!stalled && !s->client_->IsCancelled()) continue;
    // Both are safe from any thread. The client's blocked Write returns
    // false; the upstream Read ends, so the handler returns.
    s->cancelled_ = true;
    if (stalled) {
      ++stalled_total_;
      s->client_->TryCancel();
    }
    s->upstream_->TryCancel();
  }
}

}  // namespace devmem::agent
