#include "daemon/nic/queue_pool.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"

namespace devmem {

QueuePool::QueuePool(std::vector<uint32_t> queues)
    : queues_(std::move(queues)) {
  std::sort(queues_.begin(), queues_.end());
  queues_.erase(std::unique(queues_.begin(), queues_.end()), queues_.end());
  free_ = queues_;
  unchecked_.insert(queues_.begin(), queues_.end());
}

void QueuePool::NoteKernelBound(const absl::flat_hash_set<uint32_t>& bound) {
  absl::erase_if(unchecked_, [&](uint32_t q) { return !bound.contains(q); });
}

std::vector<uint32_t> QueuePool::PickFree(
    size_t count, const absl::flat_hash_set<uint32_t>& busy) const {
  std::vector<uint32_t> picked;
  for (uint32_t q : free_) {
    if (picked.size() < count && !busy.contains(q)) picked.push_back(q);
  }
  return picked;
}

void QueuePool::AddReserved(const std::string& id,
                            const std::vector<uint32_t>& queues) {
  std::vector<uint32_t>& mine = reserved_[id];
  mine.insert(mine.end(), queues.begin(), queues.end());
  std::sort(mine.begin(), mine.end());
}

absl::StatusOr<std::vector<uint32_t>> QueuePool::Take(
    size_t count, const absl::flat_hash_set<uint32_t>& busy,
    absl::string_view nic) {
  std::vector<uint32_t> taken = PickFree(count, busy);
  if (taken.size() < count) {
    return absl::ResourceExhaustedError(absl::StrCat(
        nic, ": the devmem pool has ", taken.size(), " free of ",
        queues_.size(), " queue(s), ", count,
        " requested; release a binding or grow pool_queues",
        reserved_.empty()
            ? ""
            : absl::StrCat(" (", reserved_count(),
                           " more are reserved for jobs: bind with the "
                           "job's reservation token to use those)"),
        busy.empty() ? ""
                     : absl::StrCat(" (", busy.size(),
                                    " queue(s) are still bound in the kernel "
                                    "by anchors a workload kept)")));
  }
  Claim(taken);
  return taken;
}

void QueuePool::Claim(absl::Span<const uint32_t> queues) {
  for (uint32_t q : queues) {
    auto it = std::lower_bound(free_.begin(), free_.end(), q);
    if (it != free_.end() && *it == q) free_.erase(it);
  }
}

void QueuePool::Release(absl::Span<const uint32_t> queues) {
  for (uint32_t q : queues) {
    if (!std::binary_search(queues_.begin(), queues_.end(), q)) continue;
    auto it = std::lower_bound(free_.begin(), free_.end(), q);
    if (it == free_.end() || *it != q) free_.insert(it, q);
    unchecked_.insert(q);
  }
}

void QueuePool::Clear() {
  queues_.clear();
  free_.clear();
  reserved_.clear();
  unchecked_.clear();
}

std::vector<uint32_t> QueuePool::reserved() const {
  std::vector<uint32_t> out;
  for (const auto& [id, queues] : reserved_) {
    out.insert(out.end(), queues.begin(), queues.end());
  }
  std::sort(out.begin(), out.end());
  return out;
}

size_t QueuePool::reserved_count() const {
  size_t n = 0;
  for (const auto& [id, queues] : reserved_) n += queues.size();
  return n;
}

absl::StatusOr<std::vector<uint32_t>> QueuePool::Reserve(
    const std::string& id, size_t count,
    const absl::flat_hash_set<uint32_t>& busy, absl::string_view nic) {
  std::vector<uint32_t> taken = PickFree(count, busy);
  if (taken.size() < count) {
    return absl::ResourceExhaustedError(absl::StrCat(
        nic, ": ", count, " queue(s) asked, but the devmem pool has ",
        taken.size(), " free of ", queues_.size(), " (", reserved_count(),
        " reserved, ", used_count(),
        " bound); reserve fewer, release a "
        "reservation, or grow pool_queues"));
  }
  Claim(taken);
  AddReserved(id, taken);
  return taken;
}

absl::StatusOr<std::vector<uint32_t>> QueuePool::TakeReserved(
    const std::string& id, size_t count, absl::string_view nic) {
  auto it = reserved_.find(id);
  const size_t have = it == reserved_.end() ? 0 : it->second.size();
  if (have < count) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "reservation ", id, " has ", have, " unbound queue(s) on ", nic, ", ",
        count, " requested; bind fewer queues or reserve more"));
  }
  std::vector<uint32_t> taken(it->second.begin(), it->second.begin() + count);
  it->second.erase(it->second.begin(), it->second.begin() + count);
  if (it->second.empty()) reserved_.erase(it);
  return taken;
}

void QueuePool::ReturnReserved(const std::string& id,
                               absl::Span<const uint32_t> queues) {
  std::vector<uint32_t>& mine = reserved_[id];
  for (uint32_t q : queues) {
    if (!std::binary_search(queues_.begin(), queues_.end(), q)) continue;
    if (std::binary_search(free_.begin(), free_.end(), q)) continue;
    if (std::find(mine.begin(), mine.end(), q) == mine.end()) mine.push_back(q);
  }
  std::sort(mine.begin(), mine.end());
  if (mine.empty()) reserved_.erase(id);
}

void QueuePool::ClaimReserved(const std::string& id,
                              absl::Span<const uint32_t> queues) {
  std::vector<uint32_t> claimed;
  for (uint32_t q : queues) {
    if (std::binary_search(free_.begin(), free_.end(), q)) claimed.push_back(q);
  }
  if (claimed.empty()) return;
  Claim(claimed);
  AddReserved(id, claimed);
}

std::vector<uint32_t> QueuePool::Unreserve(const std::string& id) {
  auto it = reserved_.find(id);
  if (it == reserved_.end()) return {};
  std::vector<uint32_t> queues = std::move(it->second);
  reserved_.erase(it);
  Release(queues);
  return queues;
}

std::vector<uint32_t> QueuePool::ReservedFor(const std::string& id) const {
  auto it = reserved_.find(id);
  return it == reserved_.end() ? std::vector<uint32_t>{} : it->second;
}

}  // namespace devmem
