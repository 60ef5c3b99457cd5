#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace devmem {

// The devmem queue pool of one NIC: the RX queues its profile keeps out of
// the default RSS spread, and which of them no binding holds. Bindings take
// queues from it and give them back; reservations will be kept here too.
// Thread-compatible: the owner (NicManager) serializes access under its lock.
class QueuePool {
 public:
  // An empty pool: the NIC serves no devmem (not applied, or restored).
  QueuePool() = default;
  // All of `queues` free.
  explicit QueuePool(std::vector<uint32_t> queues);

  // Every queue of the pool, and the free ones; both sorted.
  const std::vector<uint32_t>& queues() const { return queues_; }
  const std::vector<uint32_t>& free() const { return free_; }
  size_t free_count() const { return free_.size(); }
  size_t used_count() const { return queues_.size() - free_.size(); }

  // Takes the `count` lowest free queues that are not in `busy` (queues the
  // kernel still shows bound through an anchor a workload kept). On
  // RESOURCE_EXHAUSTED nothing is taken, and the message names `nic`, the
  // free and total counts and what to do.
  absl::StatusOr<std::vector<uint32_t>> Take(
      size_t count, const absl::flat_hash_set<uint32_t>& busy,
      absl::string_view nic);
  // Marks `queues` used without asking (a binding that came back from the
  // journal). Queues that are not free are ignored.
  void Claim(absl::Span<const uint32_t> queues);
  // Frees `queues`. Queues outside the pool, or already free, are ignored.
  void Release(absl::Span<const uint32_t> queues);
  // Forgets every queue (the NIC's profile was restored).
  void Clear();

 private:
  std::vector<uint32_t> queues_;  // sorted
  std::vector<uint32_t> free_;    // sorted, a subset of queues_
};

}  // namespace devmem
