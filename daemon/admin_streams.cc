#include "daemon/admin_streams.h"

#include <algorithm>
#include <utility>

#include "absl/time/clock.h"

namespace devmem {

grpc::Status RunDrain(
    NicManager& nics, EventLog& events, const devmem::v1::DrainRequest& req,
    grpc::ServerContext* ctx,
    grpc::ServerWriterInterface<devmem::v1::DrainProgress>* out,
    const StreamOptions& options) {
  const absl::Time deadline =
      absl::Now() + (req.deadline_s() == 0 ? absl::Hours(1)
                                           : absl::Seconds(req.deadline_s()));
  std::string last;
  for (;;) {
    const uint64_t seen = events.revision();
    devmem::v1::DrainProgress p = nics.DrainStatus();
    const bool late = !p.done() && absl::Now() >= deadline;
    if (late) {
      p.set_deadline_passed(true);
      if (req.release_at_deadline()) {
        nics.ReleaseEverything(&p);
        devmem::v1::DrainProgress after = nics.DrainStatus();
        p.set_reservations(after.reservations());
        p.set_bindings(after.bindings());
        *p.mutable_remaining() = after.remaining();
        p.set_done(after.done());
      }
    }
    // Progress when something changed, and always the last word.
    const std::string now = p.SerializeAsString();
    if (now != last || p.done() || late) {
      if (!out->Write(p)) return grpc::Status::CANCELLED;
      last = now;
    }
    if (p.done() || late) return grpc::Status::OK;
    if (ctx->IsCancelled()) return grpc::Status::CANCELLED;
    events.WaitNewer(seen, std::min(options.poll, deadline - absl::Now()));
  }
}

grpc::Status RunWatch(
    NicManager& nics, EventLog& events, const devmem::v1::WatchRequest& req,
    grpc::ServerContext* ctx,
    grpc::ServerWriterInterface<devmem::v1::WatchResponse>* out,
    const StreamOptions& options) {
  uint64_t since = req.since_revision();
  bool need_snapshot = since == 0;
  for (;;) {
    if (ctx->IsCancelled()) return grpc::Status::CANCELLED;
    EventLog::Read read = events.Since(since, options.batch);
    if (need_snapshot || read.compacted) {
      devmem::v1::WatchResponse snap = nics.Snapshot();
      // A gap the watcher did not ask for (since 0 asks for a snapshot).
      if (read.compacted && since != 0) {
        snap.set_compacted_revision(read.oldest);
      }
      if (!out->Write(snap)) return grpc::Status::CANCELLED;
      since = snap.revision();
      need_snapshot = false;
      continue;
    }
    if (!read.events.empty()) {
      devmem::v1::WatchResponse batch;
      since = read.events.back().revision();
      batch.set_revision(since);
      for (auto& e : read.events) *batch.add_events() = std::move(e);
      if (!out->Write(batch)) return grpc::Status::CANCELLED;
      continue;
    }
    events.WaitNewer(since, options.poll);
  }
}

}  // namespace devmem
