#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace devmem {

// The devmem queue pool of one NIC: the RX queues its profile keeps out of
// the default RSS spread, each free, reserved (held for a reservation, by its
// id, until a binding made with its token takes it) or used (bound).
// Bindings take free or reserved queues and give them back. Thread-
// compatible: the owner (NicManager) serializes access under its lock.
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
  size_t reserved_count() const;
  // Every reserved (unbound) queue of every reservation, sorted.
  std::vector<uint32_t> reserved() const;
  size_t used_count() const {
    return queues_.size() - free_.size() - reserved_count();
  }

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

  // Whether a free queue may still be bound in the kernel (through an
  // anchor a workload kept after its binding was released): every queue
  // starts so, and every released one. Take()'s `busy` comes from a kernel
  // dump only while some are; NoteKernelBound() settles the others.
  bool has_unchecked() const { return !unchecked_.empty(); }
  // The kernel's answer: queues not in `bound` are known unbound now.
  void NoteKernelBound(const absl::flat_hash_set<uint32_t>& bound);
  // Forgets every queue (the NIC's profile was restored).
  void Clear();

  // --- Reservations ---
  // Moves the `count` lowest free queues not in `busy` to reservation `id`.
  // RESOURCE_EXHAUSTED (nothing moved) says how many are free and reserved.
  absl::StatusOr<std::vector<uint32_t>> Reserve(
      const std::string& id, size_t count,
      const absl::flat_hash_set<uint32_t>& busy, absl::string_view nic);
  // Marks `count` of reservation `id`'s unbound queues used (a binding made
  // with its token). RESOURCE_EXHAUSTED (nothing taken) if it has fewer.
  absl::StatusOr<std::vector<uint32_t>> TakeReserved(const std::string& id,
                                                     size_t count,
                                                     absl::string_view nic);
  // Gives used `queues` back to reservation `id` (its binding ended while
  // the reservation lives on).
  void ReturnReserved(const std::string& id, absl::Span<const uint32_t> queues);
  // Marks free `queues` reserved for `id` (a reservation from the journal).
  // Queues that are not free are ignored.
  void ClaimReserved(const std::string& id, absl::Span<const uint32_t> queues);
  // Frees the queues reserved for `id` and not bound; returns them.
  std::vector<uint32_t> Unreserve(const std::string& id);
  // Reservation `id`'s unbound queues, sorted (empty if none).
  std::vector<uint32_t> ReservedFor(const std::string& id) const;

 private:
  // The `count` lowest free queues not in `busy` (fewer if there are not
  // that many); nothing is taken.
  std::vector<uint32_t> PickFree(
      size_t count, const absl::flat_hash_set<uint32_t>& busy) const;
  // Adds `queues` (taken from free_ already) to reservation `id`.
  void AddReserved(const std::string& id, const std::vector<uint32_t>& queues);

  std::vector<uint32_t> queues_;  // sorted
  std::vector<uint32_t> free_;    // sorted, a subset of queues_
  // Queues that may still be bound in the kernel (see has_unchecked()).
  absl::flat_hash_set<uint32_t> unchecked_;
  // Per reservation id: its unbound queues, sorted. Disjoint from free_.
  std::map<std::string, std::vector<uint32_t>> reserved_;
};

}  // namespace devmem
