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
}

absl::StatusOr<std::vector<uint32_t>> QueuePool::Take(
    size_t count, const absl::flat_hash_set<uint32_t>& busy,
    absl::string_view nic) {
  std::vector<uint32_t> taken;
  for (uint32_t q : free_) {
    if (taken.size() < count && !busy.contains(q)) taken.push_back(q);
  }
  if (taken.size() < count) {
    return absl::ResourceExhaustedError(absl::StrCat(
        nic, ": the devmem pool has ", taken.size(), " free of ",
        queues_.size(), " queue(s), ", count,
        " requested; release a binding or grow pool_queues",
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
  }
}

void QueuePool::Clear() {
  queues_.clear();
  free_.clear();
}

}  // namespace devmem
