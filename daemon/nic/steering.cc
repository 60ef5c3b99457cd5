#include "daemon/nic/steering.h"

#include "daemon/nic/binder.h"

#include <sys/socket.h>

#include <cerrno>
#include <utility>

#include "absl/strings/str_cat.h"
#include "kernel/errno_status.h"

namespace devmem {

devmem::v1::FlowRule RuleProto(const NicRecord& nic, const RuleLease& r) {
  devmem::v1::FlowRule out;
  const FlowTuple& t = r.installed.match;
  out.set_family(t.family == AF_INET6 ? devmem::v1::ADDRESS_FAMILY_INET6
                                      : devmem::v1::ADDRESS_FAMILY_INET);
  out.set_src_ip(t.src_ip);
  out.set_src_port(t.src_port);
  out.set_dst_ip(t.dst_ip);
  out.set_dst_port(t.dst_port);
  out.set_queue(r.installed.queue);
  if (r.installed.rss_context) out.set_rss_context(*r.installed.rss_context);
  out.set_location(r.installed.location);
  out.set_five_tuple(t.IsFiveTuple());
  out.set_nic(nic.name);
  out.set_binding(r.binding);
  return out;
}

absl::StatusOr<devmem::v1::FlowRule> Steering::Steer(
    uint64_t session, uint64_t handle, const FlowTuple& tuple,
    NicRecord** nic_out, const char** cause, uint64_t* durable_at,
    bool start_flush) {
  *cause = rule_cause::kInvalid;
  *durable_at = 0;
  auto bp = d_.leases->Find(session, handle);
  NicRecord* nic = bp.ok() ? d_.profiles->Find((*bp)->nic) : nullptr;
  *nic_out = nic;
  if (tuple.family != AF_INET && tuple.family != AF_INET6) {
    return absl::InvalidArgumentError(
        "steering needs a TCP socket over IPv4 or IPv6");
  }
  if (tuple.dst_port == 0) {
    return absl::InvalidArgumentError(
        "the socket has no local port yet; bind or connect it first");
  }
  if (!bp.ok()) return bp.status();
  BindingLease& b = **bp;
  if (b.tx) {
    return absl::FailedPreconditionError(absl::StrCat(
        "binding ", handle,
        " is a TX binding; flows are steered to RX bindings (BindRx)"));
  }
  if (nic == nullptr || nic->state != devmem::v1::PROFILE_STATE_APPLIED) {
    *cause = rule_cause::kKernel;
    return absl::FailedPreconditionError(
        absl::StrCat(b.nic, " is no longer ready for devmem"));
  }
  if (const RuleLease* existing = d_.leases->RuleFor(nic->name, tuple)) {
    if (existing->binding == handle) {
      // Its first answer may still be waiting for the flush: so does this.
      *durable_at = existing->durable_at;
      return RuleProto(*nic, *existing);
    }
    *cause = rule_cause::kConflict;
    return absl::AlreadyExistsError(absl::StrCat(
        "flow ", DescribeTuple(tuple), " on ", nic->name,
        " is already steered to another binding; one flow can feed only "
        "one binding"));
  }
  *cause = rule_cause::kQuota;
  absl::Status quota = d_.leases->CheckRuleQuota(session);
  if (!quota.ok()) return quota;
  const size_t on_nic = d_.leases->RuleCount(nic->name);
  if (on_nic >= nic->rule_quota) {
    return absl::ResourceExhaustedError(
        absl::StrCat(nic->name, ": ", on_nic, " of ", nic->rule_quota,
                     " steering rules in use (rule quota of the NIC)"));
  }
  return Install(session, b, *nic, tuple, cause, durable_at, start_flush);
}

absl::StatusOr<devmem::v1::FlowRule> Steering::Install(
    uint64_t session, BindingLease& b, NicRecord& nic_ref,
    const FlowTuple& tuple, const char** cause, uint64_t* durable_at,
    bool start_flush) {
  NicRecord* nic = &nic_ref;
  const uint64_t handle = b.handle;
  FlowRule rule;
  rule.match = tuple;
  const std::vector<uint32_t>& queues = b.queues;
  if (b.rss_context) {
    rule.rss_context = b.rss_context;
    rule.queue = 0;
  } else {
    // Spread the binding's flows over its queues.
    rule.queue = queues[b.rules_made % queues.size()];
  }
  RuleLease r;
  r.requested = tuple;
  r.session = session;
  r.binding = handle;
  r.journal_id = d_.leases->NextId();
  // No intent record before the insert: a rule steering to the devmem pool
  // that no record claims is an orphan, which recovery removes. Its one
  // record is staged after the insert and reaches the file with the records
  // around it (group write), before the answer (group commit).
  *cause = rule_cause::kKernel;
  auto loc = d_.control->InsertRule(nic->ifindex, rule);
  if (!loc.ok() && tuple.IsFiveTuple() &&
      (StatusErrno(loc.status()) == EINVAL ||
       StatusErrno(loc.status()) == EOPNOTSUPP)) {
    // Some NICs match only dst ip + dst port (ncdevmem falls back the same
    // way): the local port still singles the flow out.
    rule.match.src_ip.clear();
    rule.match.src_port = 0;
    loc = d_.control->InsertRule(nic->ifindex, rule);
  }
  if (!loc.ok()) {
    return KernelRefusal(
        loc.status(),
        absl::StrCat("the NIC refused the steering rule for ",
                     DescribeTuple(tuple), "; check `devmemctl nic show ",
                     nic->name, "` (ntuple must be on)"));
  }
  rule.location = *loc;
  r.installed = rule;
  devmem::v1::JournalEntry made;
  *made.mutable_rule_put() = RuleRecord(nic->name, nic->ifindex, r);
  // Without this record a restart would remove a rule in use: undo instead.
  *cause = rule_cause::kJournal;
  absl::StatusOr<uint64_t> seq =
      d_.recorder->Staged(std::move(made), start_flush);
  if (!seq.ok()) {
    (void)d_.control->DeleteRule(nic->ifindex, *loc);
    return seq.status();
  }
  r.durable_at = *seq;
  d_.leases->AddRule(nic->name, *loc, r);
  ++nic->rules_installed;
  *durable_at = r.durable_at;
  return RuleProto(*nic, r);
}

absl::Status Steering::Remove(uint64_t session, uint64_t handle,
                              uint32_t location) {
  auto bp = d_.leases->Find(session, handle);
  if (!bp.ok()) return bp.status();
  NicRecord* n = d_.profiles->Find((*bp)->nic);
  const RuleLease* r =
      n != nullptr ? d_.leases->RuleAt(n->name, location) : nullptr;
  if (r == nullptr || r->binding != handle) {
    return absl::NotFoundError(
        absl::StrCat("no rule at ", location, " for binding ", handle));
  }
  absl::Status s = d_.control->DeleteRule(n->ifindex, location);
  devmem::v1::JournalEntry del;
  del.set_rule_del(r->journal_id);
  d_.recorder->Note(del);
  (void)d_.leases->RemoveRule(n->name, location);
  ++n->rules_removed[rule_cause::kReleased];
  return s;
}

}  // namespace devmem
