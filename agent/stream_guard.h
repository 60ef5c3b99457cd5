#pragma once

#include <grpcpp/grpcpp.h>

#include <cstdint>
#include <list>
#include <memory>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace devmem::agent {

// Bounds the agent's relayed streams (Watch, Drain): at most `max_streams`
// at once, and a stream whose client has not taken a message for
// `stall_timeout` is cancelled, so a client that never reads holds no
// thread. It also cancels the upstream devmemd call of a stream whose client
// went away. One background thread checks every stream once a second.
class StreamGuard {
 public:
  // One admitted stream; unregisters itself when destroyed.
  class Stream {
   public:
    ~Stream();
    Stream(const Stream&) = delete;
    Stream& operator=(const Stream&) = delete;
    // Around each Write to the client.
    void WriteStarted();
    void WriteDone();

   private:
    friend class StreamGuard;
    Stream(StreamGuard* guard, grpc::ServerContext* client,
           grpc::ClientContext* upstream)
        : guard_(guard), client_(client), upstream_(upstream) {}
    StreamGuard* guard_;
    grpc::ServerContext* client_;
    grpc::ClientContext* upstream_;
    // Guarded by guard_->mu_.
    absl::Time write_since_ = absl::InfiniteFuture();
    bool cancelled_ = false;
  };

  StreamGuard(size_t max_streams, absl::Duration stall_timeout);
  ~StreamGuard();

  // RESOURCE_EXHAUSTED when max_streams are open.
  absl::StatusOr<std::unique_ptr<Stream>> Admit(grpc::ServerContext* client,
                                                grpc::ClientContext* upstream)
      ABSL_LOCKS_EXCLUDED(mu_);
  size_t open() const ABSL_LOCKS_EXCLUDED(mu_);
  // Streams cancelled because their client stopped reading.
  uint64_t stalled_total() const ABSL_LOCKS_EXCLUDED(mu_);
  // One check of every stream (the thread runs it every second; tests call
  // it directly).
  void CheckNow(absl::Time now) ABSL_LOCKS_EXCLUDED(mu_);

 private:
  void Remove(Stream* s) ABSL_LOCKS_EXCLUDED(mu_);

  const size_t max_streams_;
  const absl::Duration stall_timeout_;
  mutable absl::Mutex mu_;
  std::list<Stream*> streams_ ABSL_GUARDED_BY(mu_);
  uint64_t stalled_total_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace devmem::agent
