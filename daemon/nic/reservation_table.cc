#include "daemon/nic/reservation_table.h"

#include <algorithm>
#include <utility>

namespace devmem {

ReservationRecord& ReservationTable::Add(ReservationRecord r) {
  const std::string id = r.id;
  if (!r.request_id.empty()) by_key_[{r.job_id, r.request_id}] = id;
  by_token_[r.token_sha256] = id;
  return by_id_[id] = std::move(r);
}

bool ReservationTable::Remove(const std::string& id) {
  auto it = by_id_.find(id);
  if (it == by_id_.end()) return false;
  if (!it->second.request_id.empty()) {
    by_key_.erase({it->second.job_id, it->second.request_id});
  }
  by_token_.erase(it->second.token_sha256);
  by_id_.erase(it);
  return true;
}

ReservationRecord* ReservationTable::Find(absl::string_view id) {
  auto it = by_id_.find(std::string{id});
  return it == by_id_.end() ? nullptr : &it->second;
}

ReservationRecord* ReservationTable::FindByKey(absl::string_view job_id,
                                               absl::string_view request_id) {
  auto it = by_key_.find({std::string{job_id}, std::string{request_id}});
  return it == by_key_.end() ? nullptr : Find(it->second);
}

ReservationRecord* ReservationTable::FindByTokenHash(absl::string_view sha256) {
  auto it = by_token_.find(std::string{sha256});
  return it == by_token_.end() ? nullptr : Find(it->second);
}

std::vector<std::string> ReservationTable::IdsOfJob(
    absl::string_view job_id) const {
  std::vector<const ReservationRecord*> mine;
  for (const auto& [id, r] : by_id_) {
    if (r.job_id == job_id) mine.push_back(&r);
  }
  std::stable_sort(mine.begin(), mine.end(),
                   [](const ReservationRecord* a, const ReservationRecord* b) {
                     return a->created < b->created;
                   });
  std::vector<std::string> ids;
  ids.reserve(mine.size());
  for (const ReservationRecord* r : mine) ids.push_back(r->id);
  return ids;
}

size_t ReservationTable::active_count() const {
  size_t n = 0;
  for (const auto& [id, r] : by_id_) n += r.expired ? 0 : 1;
  return n;
}

}  // namespace devmem
