#include "daemon/nic/restorer.h"

#include <algorithm>
#include <cstdint>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"

namespace devmem {

std::vector<std::string> Restorer::RestoreAll() {
  std::vector<std::string> lines;
  for (auto& nic : d_.profiles->all()) {
    if (nic->state != devmem::v1::PROFILE_STATE_APPLIED &&
        nic->state != devmem::v1::PROFILE_STATE_PARTIAL &&
        nic->state != devmem::v1::PROFILE_STATE_FAILED) {
      continue;
    }
    if (!nic->recorded) continue;
    uint32_t bindings = 0;
    uint32_t rules = 0;
    absl::Status status;
    lines.push_back(RestoreOne(*nic, &bindings, &rules, &status));
  }
  return lines;
}

std::string Restorer::RestoreOne(NicRecord& nic, uint32_t* bindings,
                                 uint32_t* rules, absl::Status* status) {
  // Unbind before anything else: the kernel refuses split off and channel
  // shrinks while a memory provider is bound (KERNEL_API.md section 1).
  for (uint64_t h : d_.leases->HandlesOn(nic.name)) {
    *rules += d_.binder->Release(h, rule_cause::kRestore);
    ++*bindings;
  }
  // Workloads hold copies of the bindings' anchors and let go of them when
  // their session closes; the kernel refuses to turn header split off while
  // a queue is still bound. Give them a moment.
  const absl::Time drain_deadline = absl::Now() + d_.drain;
  absl::flat_hash_set<uint32_t> still_bound = d_.profiles->KernelBound(nic);
  while (!still_bound.empty() && absl::Now() < drain_deadline) {
    absl::SleepFor(absl::Milliseconds(20));
    still_bound = d_.profiles->KernelBound(nic);
  }
  if (!still_bound.empty()) {
    // The kernel would refuse header split off (and channel shrinks) with a
    // memory provider bound; trying anyway leaves the NIC half-restored.
    // Keep the profile as applied and say why.
    std::vector<uint32_t> queues(still_bound.begin(), still_bound.end());
    std::sort(queues.begin(), queues.end());
    *status = absl::FailedPreconditionError(absl::StrCat(
        nic.name, ": queue(s) ", absl::StrJoin(queues, ","),
        " are still bound in the kernel by a binding anchor a workload kept "
        "after its binding was released; the settings were not touched and "
        "the profile stays applied (",
        *bindings, " binding(s) and ", *rules,
        " rule(s) released). Restore again once the workload closes the "
        "anchor or exits"));
    return absl::StrCat(nic.name, ": ", status->message());
  }
  return d_.profiles->PutBack(nic, *bindings, *rules, status);
}

absl::StatusOr<devmem::v1::RestoreNicResponse> Restorer::Restore(
    absl::string_view name) {
  for (auto& nic : d_.profiles->all()) {
    if (nic->name != name) continue;
    if (!nic->recorded) {
      return absl::FailedPreconditionError(absl::StrCat(
          name, " has nothing to restore: its profile is ",
          ProfileStateName(nic->state),
          nic->reason.empty() ? "" : absl::StrCat(" (", nic->reason, ")")));
    }
    if (const size_t reserved = nic->pool.reserved_count(); reserved > 0) {
      return absl::FailedPreconditionError(absl::StrCat(
          name, ": ", reserved,
          " queue(s) are reserved for jobs; nothing was changed. Release "
          "those reservations first (`devmemctl reservations`, `devmemctl "
          "release --job=...`), or let them expire"));
    }
    absl::Status held = d_.binder->CheckNoHeldAnchors(*nic);
    if (!held.ok()) return held;
    devmem::v1::RestoreNicResponse resp;
    uint32_t bindings = 0;
    uint32_t rules = 0;
    absl::Status status;
    RestoreOne(*nic, &bindings, &rules, &status);
    resp.set_bindings_released(bindings);
    resp.set_rules_removed(rules);
    if (!status.ok()) {
      return status.code() == absl::StatusCode::kFailedPrecondition
                 ? status
                 : KernelRefusal(status, "the record is kept");
    }
    *resp.mutable_state() = State(*nic);
    return resp;
  }
  const std::vector<std::string> names = d_.profiles->Names();
  return absl::NotFoundError(absl::StrCat(
      "no NIC profile for \"", name, "\"; profiles: ",
      names.empty() ? "(none configured)" : absl::StrJoin(names, ", ")));
}

devmem::v1::NicState Restorer::State(const NicRecord& nic) const {
  devmem::v1::NicState st = d_.profiles->State(nic);
  st.set_bindings(static_cast<uint32_t>(d_.leases->HandlesOn(nic.name).size()));
  st.set_rules(static_cast<uint32_t>(d_.leases->RuleCount(nic.name)));
  return st;
}

}  // namespace devmem
