#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "proto/devmem/v1/devmem.pb.h"

namespace devmem {

// One reservation: queues of NIC pools held for a job until a deadline,
// redeemed by its token (kept only as a SHA-256).
struct ReservationRecord {
  struct Item {
    std::string nic;
    std::string gpu_pci_address;   // if asked by GPU
    std::vector<uint32_t> queues;  // every queue of the item, sorted
  };
  std::string id;
  std::string job_id;
  std::string request_id;
  std::string owner;
  std::optional<uint32_t> redeemer_uid;
  std::vector<Item> items;
  absl::Time created;
  absl::Time expires;
  std::string token_sha256;
  // The request as first made: a retry must ask for the same.
  devmem::v1::ReserveRequest request;
  // Past its deadline: unbound queues went back; no new binding may use it.
  bool expired = false;
  // Live bindings made with the token.
  absl::flat_hash_set<uint64_t> bindings;
};

// The reservations of this host by id, with the indexes Reserve and BindRx
// look them up by: (job id, request id), job id, token hash. Data only: the
// queues live in each NIC's QueuePool, the journal and the events are
// Reserver's business. Thread-compatible: NicManager's lock guards it.
class ReservationTable {
 public:
  // Adds `r` (its id, key and token hash must be new).
  ReservationRecord& Add(ReservationRecord r);
  // Takes it out; false if there was none.
  bool Remove(const std::string& id);

  ReservationRecord* Find(absl::string_view id);
  ReservationRecord* FindByKey(absl::string_view job_id,
                               absl::string_view request_id);
  ReservationRecord* FindByTokenHash(absl::string_view sha256);
  // Ids of the job's reservations, oldest first.
  std::vector<std::string> IdsOfJob(absl::string_view job_id) const;

  const std::map<std::string, ReservationRecord>& all() const { return by_id_; }
  size_t size() const { return by_id_.size(); }
  // Live (not expired) reservations.
  size_t active_count() const;

 private:
  std::map<std::string, ReservationRecord> by_id_;
  std::map<std::pair<std::string, std::string>, std::string> by_key_;
  std::map<std::string, std::string> by_token_;
};

}  // namespace devmem
