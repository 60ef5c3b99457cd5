#include "daemon/nic/nic_profiles.h"
#include "daemon/nic/gpu_affinity.h"

#include <algorithm>
#include <fstream>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "daemon/nic/inventory_proto.h"

namespace devmem {
namespace {

std::string DescribeMissing(const std::vector<Capability>& missing) {
  std::vector<std::string> parts;
  parts.reserve(missing.size());
  for (const Capability& c : missing) {
    parts.push_back(c.error != 0 ? absl::StrCat(c.name, " (errno ", c.error,
                                                ": ", c.reason, ")")
                                 : absl::StrCat(c.name, " (", c.reason, ")"));
  }
  return absl::StrJoin(parts, "; ");
}

}  // namespace

std::string ProfileStateName(devmem::v1::ProfileState s) {
  switch (s) {
    case devmem::v1::PROFILE_STATE_UNMANAGED:
      return "unmanaged";
    case devmem::v1::PROFILE_STATE_NOT_CAPABLE:
      return "not devmem-capable";
    case devmem::v1::PROFILE_STATE_APPLIED:
      return "applied";
    case devmem::v1::PROFILE_STATE_FAILED:
      return "failed";
    case devmem::v1::PROFILE_STATE_RESTORED:
      return "restored";
    case devmem::v1::PROFILE_STATE_PARTIAL:
      return "partial (header split only; it serves no bindings)";
    default:
      return "not applied";
  }
}

NicProfiles::NicProfiles(const Options& options)
    : options_(options), store_(options.config->state_dir()) {
  for (const devmem::v1::NicProfile& p : options_.config->nic_profiles()) {
    auto nic = std::make_unique<NicRecord>();
    nic->profile = p;
    nic->name = p.nic();
    nic->state = devmem::v1::PROFILE_STATE_UNSPECIFIED;
    nics_.push_back(std::move(nic));
  }
}

std::vector<std::string> NicProfiles::Names() const {
  std::vector<std::string> names;
  for (const auto& nic : nics_) names.push_back(nic->name);
  return names;
}

NicRecord* NicProfiles::Find(absl::string_view name) const {
  for (const auto& nic : nics_) {
    if (nic->name == name) return nic.get();
  }
  return nullptr;
}

absl::Status NicProfiles::RecordOriginal(NicRecord& nic) {
  // A record left by an earlier run is the true original (this run may see
  // settings that run made), so it wins.
  auto recorded = store_.Load(nic.name);
  if (!recorded.ok()) return recorded.status();
  const devmem::v1::JournalState journaled = options_.recorder->state();
  auto jp = journaled.profiles().find(nic.name);
  if (recorded->has_value()) {
    nic.original = **recorded;
  } else if (jp != journaled.profiles().end()) {
    // The record file is gone but the journal has the original: trust the
    // checksummed journal and write the file again.
    nic.original = jp->second.original();
    (void)store_.Save(nic.name, nic.original);
  } else {
    auto current = ReadSettings(*options_.control, nic.ifindex,
                                !nic.profile.header_split_only());
    if (!current.ok()) {
      return absl::Status(current.status().code(),
                          absl::StrCat("cannot read the current settings: ",
                                       current.status().message()));
    }
    absl::Status saved = store_.Save(nic.name, *current);
    if (!saved.ok()) {
      return absl::Status(
          saved.code(),
          absl::StrCat("cannot record the original state: ", saved.message()));
    }
    nic.original = *std::move(current);
  }
  nic.recorded = true;
  if (jp != journaled.profiles().end()) return absl::OkStatus();
  devmem::v1::JournalEntry e;
  e.mutable_profile_put()->set_nic(nic.name);
  e.mutable_profile_put()->set_ifindex(nic.ifindex);
  *e.mutable_profile_put()->mutable_original() = nic.original;
  absl::Status j = options_.recorder->Intent(e);
  if (!j.ok()) {
    return absl::Status(
        j.code(), absl::StrCat("cannot journal the profile: ", j.message()));
  }
  return absl::OkStatus();
}

std::string NicProfiles::Apply(NicRecord& nic) {
  nic.missing.clear();
  nic.plan.reset();
  auto ifindex = options_.inventory->IfIndex(nic.name);
  if (!ifindex.ok()) {
    nic.state = devmem::v1::PROFILE_STATE_FAILED;
    nic.reason = absl::StrCat(ifindex.status().message());
    return absl::StrCat(nic.name, ": ", nic.reason);
  }
  nic.ifindex = *ifindex;
  // Probe before touching anything: a NIC that cannot do devmem is left as
  // it is (the daemon keeps serving the NICs that can).
  nic.missing = ProbeDevmem(*options_.control, nic.ifindex);
  const bool partial = nic.profile.header_split_only();
  if (!nic.missing.empty() && !(partial && OnlySteeringMissing(nic.missing))) {
    nic.state = devmem::v1::PROFILE_STATE_NOT_CAPABLE;
    nic.reason = absl::StrCat(
        "not devmem-capable, missing: ", DescribeMissing(nic.missing),
        "; nothing was changed");
    return absl::StrCat(nic.name, ": ", nic.reason);
  }
  auto channels = options_.control->GetChannels(nic.ifindex);
  absl::StatusOr<ProfilePlan> plan =
      channels.ok() ? PlanProfile(nic.profile, nic.ifindex, *channels)
                    : absl::StatusOr<ProfilePlan>(channels.status());
  if (!plan.ok()) {
    nic.state = devmem::v1::PROFILE_STATE_FAILED;
    nic.reason = absl::StrCat(plan.status().message(), "; nothing was changed");
    return absl::StrCat(nic.name, ": ", nic.reason);
  }
  absl::Status recorded = RecordOriginal(nic);
  if (!recorded.ok()) {
    nic.state = devmem::v1::PROFILE_STATE_FAILED;
    nic.reason = absl::StrCat(recorded.message(), "; nothing was changed");
    return absl::StrCat(nic.name, ": ", nic.reason);
  }
  nic.desired = partial ? HeaderSplitSettings(nic.original, *plan)
                        : DesiredSettings(nic.original, *plan);
  absl::Status applied =
      ApplySettings(*options_.control, nic.ifindex, nic.original, nic.desired);
  if (!applied.ok()) {
    nic.state = devmem::v1::PROFILE_STATE_FAILED;
    nic.reason =
        absl::StrCat("applying the profile failed at ", applied.message(),
                     "; the changes made were rolled back");
    return absl::StrCat(nic.name, ": ", nic.reason);
  }
  if (partial) return FinishPartial(nic);
  auto table = options_.control->ListRules(nic.ifindex);
  const uint32_t table_size =
      table.ok() && table->table_size != 0 ? table->table_size : 1024;
  nic.rule_quota = nic.profile.max_rules() != 0
                       ? std::min(nic.profile.max_rules(), table_size)
                       : table_size;
  nic.pool = QueuePool(plan->pool);
  nic.plan = *std::move(plan);
  nic.state = devmem::v1::PROFILE_STATE_APPLIED;
  nic.reason = absl::StrCat("devmem pool of ", nic.plan->pool.size(),
                            " queue(s): ", absl::StrJoin(nic.plan->pool, ","));
  return absl::StrCat(nic.name, ": profile applied (", nic.reason, ", ",
                      options_.control->BackendName(), " backend)");
}

std::string NicProfiles::FinishPartial(NicRecord& nic) {
  nic.pool = QueuePool();
  nic.rule_quota = 0;
  nic.state = devmem::v1::PROFILE_STATE_PARTIAL;
  nic.reason = absl::StrCat(
      "header_split_only: channels and header split applied",
      nic.missing.empty()
          ? ""
          : absl::StrCat("; missing: ", DescribeMissing(nic.missing)),
      "; no pool, so no bindings or rules");
  return absl::StrCat(nic.name, ": profile partly applied (", nic.reason, ", ",
                      options_.control->BackendName(), " backend)");
}

std::string NicProfiles::PutBack(NicRecord& nic, uint32_t bindings,
                                 uint32_t rules, absl::Status* status) {
  *status = RestoreSettings(*options_.control, nic.ifindex, nic.original);
  nic.pool.Clear();
  if (!status->ok()) {
    nic.state = devmem::v1::PROFILE_STATE_FAILED;
    nic.reason =
        absl::StrCat("restore failed: ", status->message(),
                     "; the record is kept at ", store_.PathFor(nic.name));
    return absl::StrCat(nic.name, ": ", nic.reason);
  }
  absl::Status removed = store_.Remove(nic.name);
  devmem::v1::JournalEntry e;
  e.set_profile_del(nic.name);
  options_.recorder->Note(e);
  nic.recorded = false;
  nic.state = devmem::v1::PROFILE_STATE_RESTORED;
  nic.reason = absl::StrCat("original state restored after releasing ",
                            bindings, " binding(s) and ", rules, " rule(s)");
  if (!removed.ok()) {
    absl::StrAppend(&nic.reason, "; ", removed.message());
  }
  return absl::StrCat(nic.name, ": ", nic.reason);
}

absl::StatusOr<NicRecord*> NicProfiles::Resolve(const NicTarget& target) {
  if (!target.nic.empty() && !target.gpu_pci_address.empty()) {
    return absl::InvalidArgumentError(
        "name either nic or gpu_pci_address, not both");
  }
  NicRecord* chosen = nullptr;
  if (!target.nic.empty()) {
    chosen = Find(target.nic);
    if (chosen == nullptr) {
      // Distinguish "exists but unmanaged" from "does not exist".
      auto ifindex = options_.inventory->IfIndex(target.nic);
      if (!ifindex.ok()) return ifindex.status();
      return absl::FailedPreconditionError(absl::StrCat(
          target.nic,
          " has no devmem profile, so devmemd has not prepared it; add a "
          "nic_profiles entry for it to the config and restart devmemd"));
    }
  } else if (!target.gpu_pci_address.empty()) {
    absl::StatusOr<NicRecord*> nearest = NearestNic(
        target.gpu_pci_address, nics_, *options_.inventory, topology());
    if (!nearest.ok()) return nearest.status();
    chosen = *nearest;
  } else {
    return absl::InvalidArgumentError(
        "name the NIC to bind to (nic) or the GPU that owns the memory "
        "(gpu_pci_address)");
  }
  if (chosen->state != devmem::v1::PROFILE_STATE_APPLIED) {
    return absl::FailedPreconditionError(absl::StrCat(
        chosen->name, " is not ready for devmem: its profile is ",
        ProfileStateName(chosen->state),
        chosen->reason.empty() ? "" : absl::StrCat(" (", chosen->reason, ")")));
  }
  return chosen;
}

devmem::v1::NicState NicProfiles::State(const NicRecord& nic) const {
  devmem::v1::NicState st;
  st.set_nic(nic.name);
  st.set_ifindex(nic.ifindex);
  st.set_backend(options_.control->BackendName());
  st.set_state(nic.state);
  st.set_reason(nic.reason);
  for (const Capability& c : nic.missing) {
    CapabilityToProto(c, st.add_missing());
  }
  if (nic.recorded) {
    *st.mutable_original() = nic.original;
    st.set_record_path(store_.PathFor(nic.name));
  }
  if (nic.state == devmem::v1::PROFILE_STATE_APPLIED ||
      nic.state == devmem::v1::PROFILE_STATE_PARTIAL) {
    *st.mutable_desired() = nic.desired;
  }
  if (nic.ifindex != 0) {
    auto actual = ReadSettings(*options_.control, nic.ifindex,
                               !nic.profile.header_split_only());
    if (actual.ok()) {
      *st.mutable_actual() = *actual;
    } else {
      // Show what can be read (e.g. channels on veth).
      auto channels = options_.control->GetChannels(nic.ifindex);
      if (channels.ok()) {
        ChannelsToProto(*channels, st.mutable_actual()->mutable_channels());
      }
    }
  }
  if (nic.plan) {
    st.set_rss_mode(nic.plan->rss_mode);
    for (uint32_t q : nic.plan->pool) st.add_pool_queues(q);
  }
  // Free means what BindRx would take: not bound in the kernel by an anchor
  // a workload kept after devmemd let its binding go.
  const absl::flat_hash_set<uint32_t> kernel_bound =
      nic.ifindex != 0 ? KernelBound(nic) : absl::flat_hash_set<uint32_t>{};
  for (uint32_t q : nic.pool.free()) {
    if (!kernel_bound.contains(q)) st.add_free_queues(q);
  }
  for (uint32_t q : nic.pool.reserved()) st.add_reserved_queues(q);
  st.set_rule_quota(nic.rule_quota);
  st.set_degraded(nic.degraded);
  if (nic.ifindex != 0) {
    auto table = options_.control->ListRules(nic.ifindex);
    if (table.ok()) {
      st.set_kernel_rules(static_cast<uint32_t>(table->locations.size()));
    }
    std::vector<uint32_t> bound(kernel_bound.begin(), kernel_bound.end());
    std::sort(bound.begin(), bound.end());
    for (uint32_t q : bound) st.add_kernel_bound_queues(q);
  }
  return st;
}

absl::StatusOr<devmem::v1::NicState> NicProfiles::Unmanaged(
    const std::string& name) const {
  // A NIC without a profile is reported as unmanaged, if it exists.
  auto ifindex = options_.inventory->IfIndex(name);
  if (!ifindex.ok()) return ifindex.status();
  devmem::v1::NicState st;
  st.set_nic(name);
  st.set_ifindex(*ifindex);
  st.set_backend(options_.control->BackendName());
  st.set_state(devmem::v1::PROFILE_STATE_UNMANAGED);
  st.set_reason("no nic_profiles entry names it; devmemd does not touch it");
  auto actual = ReadSettings(*options_.control, *ifindex);
  if (actual.ok()) *st.mutable_actual() = *actual;
  return st;
}

std::string NicProfiles::CheckDrift(NicRecord& nic) {
  if (nic.state != devmem::v1::PROFILE_STATE_APPLIED) return "";
  std::vector<std::string> why;
  auto info = options_.inventory->Get(nic.name);
  if (!info.ok()) {
    why.push_back(absl::StrCat("link is gone (", info.status().message(), ")"));
  } else if (!info->link.admin_up || info->link.oper_state == "down" ||
             info->link.oper_state == "lowerlayerdown") {
    why.push_back(absl::StrCat("link is down (", info->link.oper_state,
                               info->link.admin_up ? "" : ", admin down", ")"));
  }
  if (nic.desired.has_channels()) {
    auto ch = options_.control->GetChannels(nic.ifindex);
    const auto& want = nic.desired.channels();
    const bool combined_drift =
        want.has_combined_count() && ch.ok() &&
        ch->combined_count.value_or(0) != want.combined_count();
    const bool rx_drift = want.has_rx_count() && ch.ok() &&
                          ch->rx_count.value_or(0) != want.rx_count();
    if (combined_drift || rx_drift) {
      why.push_back(
          absl::StrCat("channels changed by someone else (combined ",
                       ch->combined_count.value_or(0), ", rx ",
                       ch->rx_count.value_or(0), "; the profile set combined ",
                       want.combined_count(), ", rx ", want.rx_count(), ")"));
    }
  }
  auto rings = options_.control->GetRings(nic.ifindex);
  if (rings.ok() &&
      (rings->tcp_data_split != TcpDataSplit::kEnabled ||
       (rings->hds_thresh.has_value() && *rings->hds_thresh != 0))) {
    why.push_back(
        "header split is no longer ENABLED with hds-thresh 0 (changed by "
        "someone else)");
  }
  nic.degraded = absl::StrJoin(why, "; ");
  return nic.degraded;
}

absl::flat_hash_set<uint32_t> NicProfiles::BusyQueues(NicRecord& nic) const {
  if (!nic.pool.has_unchecked()) return {};
  auto queues = options_.control->GetQueues(nic.ifindex);
  if (!queues.ok()) return {};  // unknown: asked again next time
  absl::flat_hash_set<uint32_t> out = BoundRxQueues(*queues);
  nic.pool.NoteKernelBound(out);
  return out;
}

absl::flat_hash_set<uint32_t> NicProfiles::KernelBound(
    const NicRecord& nic) const {
  auto queues = options_.control->GetQueues(nic.ifindex);
  if (!queues.ok()) return {};
  return BoundRxQueues(*queues);
}

absl::flat_hash_set<uint32_t> NicProfiles::BoundRxQueues(
    const std::vector<QueueInfo>& queues) {
  absl::flat_hash_set<uint32_t> out;
  for (const QueueInfo& q : queues) {
    if (q.type == QueueInfo::Type::kRx && q.dmabuf.has_value()) {
      out.insert(q.id);
    }
  }
  return out;
}

}  // namespace devmem
