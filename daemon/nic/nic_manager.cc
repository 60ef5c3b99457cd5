#include "daemon/nic/nic_manager.h"

#include <fcntl.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <fstream>
#include <utility>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "daemon/nic/inventory_proto.h"
#include "daemon/nic/recovery.h"
#include "kernel/errno_status.h"
#include "kernel/fd_identity.h"

namespace devmem {
namespace {

using devmem::v1::NicSettings;

}  // namespace

absl::Status KernelRefusal(const absl::Status& status,
                           absl::string_view remedy) {
  const int err = StatusErrno(status);
  if (status.ok() || err == 0) return status;
  const std::string text = remedy.empty()
                               ? absl::StrCat(status.message())
                               : absl::StrCat(status.message(), "; ", remedy);
  switch (err) {
    case ENOSPC:
      return absl::ResourceExhaustedError(text);
    case ENODEV:
      return absl::NotFoundError(text);
    default:
      return absl::FailedPreconditionError(text);
  }
}

std::string BindRxRemedy(const absl::Status& status, absl::string_view nic) {
  const std::string extack = StatusExtack(status);
  switch (StatusErrno(status)) {
    case EOPNOTSUPP:
      return absl::StrCat(
          "the driver of ", nic,
          " has no queue-management ops, so it cannot do devmem RX; use a "
          "devmem-capable NIC and kernel (bnxt 6.16+, mlx5 6.17+, fbnic "
          "6.18+, gve 6.18+)");
    case ENODATA:
      return absl::StrCat("the page pool of ", nic,
                          "'s driver cannot hold unreadable memory on this "
                          "kernel; upgrade to a kernel whose driver supports "
                          "devmem RX");
    case EPERM:
      return "devmemd lacks CAP_NET_ADMIN; run it with that capability";
    case EEXIST:
      return "the queue is already bound (by another program, io_uring or "
             "XDP); check `devmemctl nics` for queues with a dmabuf";
    case EINVAL:
      if (absl::StrContains(extack, "tcp-data-split") ||
          absl::StrContains(extack, "hds-thresh")) {
        return absl::StrCat(
            "header split must be ENABLED with hds-thresh 0; something "
            "changed ",
            nic, "'s ring settings: see `devmemctl nic show ", nic, "`");
      }
      return absl::StrCat("see `devmemctl nic show ", nic, "`");
    default:
      return absl::StrCat("see `devmemctl nic show ", nic, "`");
  }
}

namespace {

LeaseTable::Quotas QuotasOf(const devmem::v1::DaemonConfig& c) {
  LeaseTable::Quotas q;
  q.bindings_per_session = c.max_bindings_per_session();
  q.bindings_per_uid = c.max_bindings_per_uid();
  q.rules_per_session = c.max_rules_per_session();
  q.rules_per_uid = c.max_rules_per_uid();
  return q;
}

}  // namespace

NicManager::NicManager(const Options& options)
    : options_(options),
      recorder_(options.journal),
      profiles_(NicProfiles::Options{options.config, options.control,
                                     options.inventory, &recorder_}),
      leases_(QuotasOf(*options.config)) {}

NicManager::~NicManager() {
  absl::MutexLock lock(&mu_);
  // Bindings unbind as their objects go; rules and settings are left to
  // RestoreAll(), which the daemon calls on a clean shutdown.
  leases_.Clear();
}

std::vector<std::string> NicManager::ApplyAll() {
  absl::MutexLock lock(&mu_);
  std::vector<std::string> lines;
  for (auto& nic : profiles_.all()) lines.push_back(profiles_.Apply(*nic));
  return lines;
}

std::vector<std::string> NicManager::RestoreAll() {
  absl::MutexLock lock(&mu_);
  std::vector<std::string> lines;
  for (auto& nic : profiles_.all()) {
    if (nic->state != devmem::v1::PROFILE_STATE_APPLIED &&
        nic->state != devmem::v1::PROFILE_STATE_FAILED) {
      continue;
    }
    if (!nic->recorded) continue;
    uint32_t bindings = 0;
    uint32_t rules = 0;
    absl::Status status;
    lines.push_back(RestoreLocked(*nic, &bindings, &rules, &status));
  }
  return lines;
}

std::string NicManager::RestoreLocked(NicRecord& nic, uint32_t* bindings,
                                      uint32_t* rules, absl::Status* status) {
  // Unbind before anything else: the kernel refuses split off and channel
  // shrinks while a memory provider is bound (KERNEL_API.md section 1).
  for (uint64_t h : leases_.HandlesOn(nic.name)) {
    *rules += ReleaseBindingLocked(h, kRemovedRestore);
    ++*bindings;
  }
  // Workloads hold copies of the bindings' anchors and let go of them when
  // their session closes; the kernel refuses to turn header split off while
  // a queue is still bound. Give them a moment.
  const absl::Time drain_deadline = absl::Now() + absl::Seconds(2);
  absl::flat_hash_set<uint32_t> still_bound = profiles_.KernelBound(nic);
  while (!still_bound.empty() && absl::Now() < drain_deadline) {
    absl::SleepFor(absl::Milliseconds(20));
    still_bound = profiles_.KernelBound(nic);
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
  return profiles_.PutBack(nic, *bindings, *rules, status);
}

absl::Status NicManager::CheckNoHeldAnchorsLocked(const NicRecord& nic) {
  std::vector<uint64_t> handles;
  for (uint64_t handle : leases_.HandlesOn(nic.name)) {
    const BindingLease& b = *leases_.Get(handle);
    const bool handed_out = b.recovered || b.kernel == nullptr ||
                            (options_.anchor_handed_out &&
                             options_.anchor_handed_out(b.session, handle));
    if (handed_out) handles.push_back(handle);
  }
  if (handles.empty()) return absl::OkStatus();
  std::vector<std::string> held;
  for (uint64_t h : handles) {
    const BindingLease& b = *leases_.Get(h);
    std::string who = absl::StrCat("binding ", h, " (session ", b.session);
    std::optional<devmem::v1::JournaledSession> owner;
    if (options_.session_record) owner = options_.session_record(b.session);
    if (owner.has_value()) {
      absl::StrAppend(&who, ", uid ", owner->uid(), ", pid ", owner->pid());
    }
    absl::StrAppend(&who, ")");
    held.push_back(std::move(who));
  }
  return absl::FailedPreconditionError(absl::StrCat(
      nic.name, ": ", held.size(),
      " binding(s) are held by workloads: ", absl::StrJoin(held, ", "),
      ". Each workload keeps a copy of its binding's anchor, which keeps the "
      "kernel binding alive, and the kernel refuses to turn header split off "
      "under it. Nothing was changed; have the workloads release their "
      "bindings (ReleaseBinding, or close their sessions) or stop them, then "
      "restore again"));
}

absl::StatusOr<devmem::v1::RestoreNicResponse> NicManager::Restore(
    absl::string_view name) {
  absl::MutexLock lock(&mu_);
  for (auto& nic : profiles_.all()) {
    if (nic->name != name) continue;
    if (!nic->recorded) {
      return absl::FailedPreconditionError(absl::StrCat(
          name, " has nothing to restore: its profile is ",
          ProfileStateName(nic->state),
          nic->reason.empty() ? "" : absl::StrCat(" (", nic->reason, ")")));
    }
    absl::Status held = CheckNoHeldAnchorsLocked(*nic);
    if (!held.ok()) return held;
    devmem::v1::RestoreNicResponse resp;
    uint32_t bindings = 0;
    uint32_t rules = 0;
    absl::Status status;
    RestoreLocked(*nic, &bindings, &rules, &status);
    resp.set_bindings_released(bindings);
    resp.set_rules_removed(rules);
    if (!status.ok()) {
      return status.code() == absl::StatusCode::kFailedPrecondition
                 ? status
                 : KernelRefusal(status, "the record is kept");
    }
    *resp.mutable_state() = StateLocked(*nic);
    return resp;
  }
  const std::vector<std::string> names = profiles_.Names();
  return absl::NotFoundError(absl::StrCat(
      "no NIC profile for \"", name, "\"; profiles: ",
      names.empty() ? "(none configured)" : absl::StrJoin(names, ", ")));
}

absl::StatusOr<std::vector<devmem::v1::NicState>> NicManager::States(
    const std::vector<std::string>& names) {
  absl::MutexLock lock(&mu_);
  std::vector<devmem::v1::NicState> out;
  if (names.empty()) {
    for (const auto& nic : profiles_.all()) out.push_back(StateLocked(*nic));
    return out;
  }
  for (const std::string& name : names) {
    const NicRecord* found = profiles_.Find(name);
    if (found != nullptr) {
      out.push_back(StateLocked(*found));
      continue;
    }
    auto unmanaged = profiles_.Unmanaged(name);
    if (!unmanaged.ok()) return unmanaged.status();
    out.push_back(*std::move(unmanaged));
  }
  return out;
}

devmem::v1::NicState NicManager::StateLocked(const NicRecord& nic) {
  devmem::v1::NicState st = profiles_.State(nic);
  st.set_bindings(static_cast<uint32_t>(leases_.HandlesOn(nic.name).size()));
  st.set_rules(static_cast<uint32_t>(leases_.RuleCount(nic.name)));
  return st;
}

absl::Status NicManager::CheckBindQuotaLocked(uint64_t session) const {
  // A session's first binding: its owner comes from the session layer.
  std::optional<uint32_t> uid = leases_.OwnerOf(session);
  if (!uid.has_value() && options_.session_record) {
    auto rec = options_.session_record(session);
    if (rec) uid = rec->uid();
  }
  return leases_.CheckBindQuota(session, uid.value_or(0));
}

absl::StatusOr<devmem::v1::Binding> NicManager::BindRx(uint64_t session,
                                                       const Target& target,
                                                       uint32_t queue_count,
                                                       UniqueFd dmabuf) {
  // The fd's kind is checked before anything else, netlink included.
  absl::Status fd_ok = options_.control->CheckBindableFd(dmabuf.get_unowned());
  if (!fd_ok.ok()) return fd_ok;
  if (queue_count > 64) {
    return absl::InvalidArgumentError(
        absl::StrCat("queue_count ", queue_count, " is out of range [0, 64]"));
  }
  const uint32_t want = queue_count == 0 ? 1 : queue_count;
  absl::MutexLock lock(&mu_);
  auto nic_or = profiles_.Resolve(target);
  if (!nic_or.ok()) return nic_or.status();
  NicRecord& nic = **nic_or;
  absl::Status quota = CheckBindQuotaLocked(session);
  if (!quota.ok()) return quota;
  // A queue the kernel shows bound is not free even if devmemd released it:
  // a workload may still hold the anchor of a binding devmemd let go.
  auto taken = nic.pool.Take(want, profiles_.KernelBound(nic), nic.name);
  if (!taken.ok()) return taken.status();
  const std::vector<uint32_t> queues = *std::move(taken);
  // Taken from the pool now; given back on any failure below.
  bool made = false;
  absl::Cleanup give_back = [&] {
    if (!made) nic.pool.Release(queues);
  };
  absl::Status journaled = JournalSessionLocked(session);
  if (!journaled.ok()) return journaled;
  const bool with_context = nic.plan->rss_mode == devmem::v1::RSS_MODE_CONTEXT;
  std::vector<uint32_t> indir;
  if (with_context) {
    const size_t size = nic.original.rss_indir_size() > 0
                            ? static_cast<size_t>(nic.original.rss_indir_size())
                            : queues.size();
    indir.resize(size);
    for (size_t i = 0; i < size; ++i) indir[i] = queues[i % queues.size()];
  }
  BindingLease b;
  b.handle = leases_.NextId();
  b.session = session;
  b.nic = nic.name;
  b.ifindex = nic.ifindex;
  b.queues = queues;
  // Intent first: a crash from here on leaves a record of what may exist.
  devmem::v1::JournalEntry intent;
  *intent.mutable_binding_put() = BindingRecord(b);
  intent.mutable_binding_put()->set_rss_context_pending(with_context);
  for (uint32_t q : indir) intent.mutable_binding_put()->add_rss_indir(q);
  absl::Status j = recorder_.Intent(intent);
  if (!j.ok()) return j;
  devmem::v1::JournalEntry undo;
  undo.set_binding_del(b.handle);
  if (with_context) {
    auto ctx = options_.control->CreateRssContext(nic.ifindex, indir);
    if (!ctx.ok()) {
      recorder_.Note(undo);
      return KernelRefusal(ctx.status(),
                           "the NIC refused an RSS context for the binding; "
                           "use rss_mode RSS_MODE_EXCLUDE_POOL");
    }
    b.rss_context = *ctx;
  }
  auto bound =
      options_.control->BindRx(nic.ifindex, dmabuf.get_unowned(), queues);
  if (!bound.ok()) {
    if (b.rss_context) {
      (void)options_.control->DeleteRssContext(nic.ifindex, *b.rss_context);
    }
    recorder_.Note(undo);
    return KernelRefusal(bound.status(),
                         BindRxRemedy(bound.status(), nic.name));
  }
  b.kernel = *std::move(bound);
  auto adopted = AdoptNewBindingLocked(std::move(b), nic);
  made = adopted.ok();
  return adopted;
}

absl::StatusOr<devmem::v1::Binding> NicManager::BindTx(uint64_t session,
                                                       const Target& target,
                                                       UniqueFd dmabuf) {
  absl::Status fd_ok = options_.control->CheckBindableFd(dmabuf.get_unowned());
  if (!fd_ok.ok()) return fd_ok;
  absl::MutexLock lock(&mu_);
  auto nic_or = profiles_.Resolve(target);
  if (!nic_or.ok()) return nic_or.status();
  NicRecord& nic = **nic_or;
  absl::Status quota = CheckBindQuotaLocked(session);
  if (!quota.ok()) return quota;
  absl::Status journaled = JournalSessionLocked(session);
  if (!journaled.ok()) return journaled;
  BindingLease b;
  b.handle = leases_.NextId();
  b.session = session;
  b.nic = nic.name;
  b.ifindex = nic.ifindex;
  b.tx = true;
  devmem::v1::JournalEntry intent;
  *intent.mutable_binding_put() = BindingRecord(b);
  absl::Status j = recorder_.Intent(intent);
  if (!j.ok()) return j;
  auto bound = options_.control->BindTx(nic.ifindex, dmabuf.get_unowned());
  if (!bound.ok()) {
    devmem::v1::JournalEntry undo;
    undo.set_binding_del(b.handle);
    recorder_.Note(undo);
    std::string remedy =
        StatusErrno(bound.status()) == EOPNOTSUPP
            ? absl::StrCat("the driver of ", nic.name,
                           " cannot send from device memory; devmem TX needs "
                           "kernel 6.16+ and a driver with netmem TX")
            : absl::StrCat("see `devmemctl nic show ", nic.name, "`");
    if (bound.status().code() == absl::StatusCode::kUnimplemented) {
      return absl::FailedPreconditionError(bound.status().message());
    }
    return KernelRefusal(bound.status(), remedy);
  }
  b.kernel = *std::move(bound);
  return AdoptNewBindingLocked(std::move(b), nic);
}

absl::StatusOr<devmem::v1::Binding> NicManager::AdoptNewBindingLocked(
    BindingLease b, NicRecord& nic) {
  b.kernel_id = b.kernel->id();
  if (!b.tx) b.queues = b.kernel->queues();
  if (b.kernel->netlink_fd_unowned() >= 0) {
    auto id = IdentifyFd(b.kernel->netlink_fd_unowned());
    if (id.ok()) b.anchor_id = *id;
  }
  devmem::v1::JournalEntry made;
  *made.mutable_binding_put() = BindingRecord(b);
  // Without this record a restart would drop a binding in use: undo instead.
  absl::Status recorded = recorder_.Outcome(made);
  if (!recorded.ok()) {
    b.kernel.reset();
    if (b.rss_context) {
      (void)options_.control->DeleteRssContext(nic.ifindex, *b.rss_context);
    }
    devmem::v1::JournalEntry undo;
    undo.set_binding_del(b.handle);
    recorder_.Note(undo);
    return recorded;
  }
  if (options_.anchors != nullptr && b.kernel->netlink_fd_unowned() >= 0) {
    (void)options_.anchors->Keep(b.handle, b.kernel->netlink_fd_unowned());
  }
  nic.pool.Claim(b.queues);
  return BindingProto(leases_.Add(std::move(b)));
}

devmem::v1::Binding NicManager::BindingProto(const BindingLease& b) const {
  devmem::v1::Binding out;
  out.set_handle(b.handle);
  out.set_nic(b.nic);
  out.set_ifindex(b.ifindex);
  out.set_kernel_id(b.kernel_id);
  for (uint32_t q : b.queues) out.add_queues(q);
  out.set_tx(b.tx);
  if (b.rss_context) out.set_rss_context(*b.rss_context);
  out.set_rules(static_cast<uint32_t>(b.rule_locations.size()));
  return out;
}

uint32_t NicManager::ReleaseBindingLocked(uint64_t handle, const char* cause) {
  const BindingLease* found = leases_.Get(handle);
  if (found == nullptr) return 0;
  NicRecord* nic = profiles_.Find(found->nic);
  uint32_t removed = 0;
  if (nic != nullptr) {
    // Rules first: once the binding is gone its queue gets normal pages,
    // and a rule left pointing there would steer flows to the wrong place.
    const std::vector<uint32_t> locations(found->rule_locations.begin(),
                                          found->rule_locations.end());
    for (uint32_t loc : locations) {
      std::optional<RuleLease> r = leases_.RemoveRule(nic->name, loc);
      if (!r.has_value()) continue;
      (void)options_.control->DeleteRule(nic->ifindex, loc);
      devmem::v1::JournalEntry del;
      del.set_rule_del(r->journal_id);
      recorder_.Note(del);
      ++nic->rules_removed[cause];
      ++removed;
    }
  }
  BindingLease b = leases_.Remove(handle);
  if (!leases_.Holds(b.session) && leases_.ForgetSession(b.session)) {
    devmem::v1::JournalEntry del;
    del.set_session_del(b.session);
    recorder_.Note(del);
  }
  if (options_.anchors != nullptr && b.kernel != nullptr &&
      b.kernel->netlink_fd_unowned() >= 0) {
    (void)options_.anchors->Forget(handle);
  }
  // An anchor copy still behind an unredeemed ticket is devmemd's to close;
  // left there, it would keep the kernel binding until the ticket expired.
  if (options_.withdraw_anchor_ticket) {
    options_.withdraw_anchor_ticket(b.session, handle);
  }
  // Closes our copy of the binding's netlink socket: the kernel unbinds once
  // the workload closes its copy too (the client library does on release).
  b.kernel.reset();
  if (nic != nullptr) {
    if (b.rss_context) {
      (void)options_.control->DeleteRssContext(nic->ifindex, *b.rss_context);
    }
    if (nic->state == devmem::v1::PROFILE_STATE_APPLIED) {
      nic->pool.Release(b.queues);
    }
  }
  devmem::v1::JournalEntry del;
  del.set_binding_del(handle);
  recorder_.Note(del);
  return removed;
}

absl::StatusOr<uint32_t> NicManager::ReleaseBinding(uint64_t session,
                                                    uint64_t handle) {
  absl::MutexLock lock(&mu_);
  auto b = leases_.Find(session, handle);
  if (!b.ok()) return b.status();
  return ReleaseBindingLocked(handle, kRemovedReleased);
}

void NicManager::ReleaseSession(uint64_t session) {
  absl::MutexLock lock(&mu_);
  if (!leases_.Known(session)) return;
  const bool journaled = leases_.Journaled(session);
  for (uint64_t h : leases_.BindingsOf(session)) {
    ReleaseBindingLocked(h, kRemovedSessionClosed);
  }
  leases_.ForgetSession(session);
  if (journaled) {
    devmem::v1::JournalEntry del;
    del.set_session_del(session);
    recorder_.Note(del);
  }
}

absl::StatusOr<NicManager::BindingNic> NicManager::NicOfBinding(
    uint64_t session, uint64_t handle) {
  absl::MutexLock lock(&mu_);
  auto b = leases_.Find(session, handle);
  if (!b.ok()) return b.status();
  return BindingNic{(*b)->nic, (*b)->ifindex};
}

devmem::v1::FlowRule NicManager::RuleProto(const NicRecord& nic,
                                           const RuleLease& r) const {
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

absl::StatusOr<devmem::v1::FlowRule> NicManager::SteerFlow(
    uint64_t session, uint64_t handle, const FlowTuple& tuple) {
  absl::MutexLock lock(&mu_);
  NicRecord* nic = nullptr;
  const char* cause = kFailedInvalid;
  absl::StatusOr<devmem::v1::FlowRule> rule =
      SteerFlowLocked(session, handle, tuple, &nic, &cause);
  if (!rule.ok() && nic != nullptr) ++nic->rules_failed[cause];
  return rule;
}

absl::StatusOr<devmem::v1::FlowRule> NicManager::SteerFlowLocked(
    uint64_t session, uint64_t handle, const FlowTuple& tuple,
    NicRecord** nic_out, const char** cause) {
  *cause = kFailedInvalid;
  auto bp = leases_.Find(session, handle);
  NicRecord* nic = bp.ok() ? profiles_.Find((*bp)->nic) : nullptr;
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
    *cause = kFailedKernel;
    return absl::FailedPreconditionError(
        absl::StrCat(b.nic, " is no longer ready for devmem"));
  }
  if (const RuleLease* existing = leases_.RuleFor(nic->name, tuple)) {
    if (existing->binding == handle) return RuleProto(*nic, *existing);
    *cause = kFailedConflict;
    return absl::AlreadyExistsError(absl::StrCat(
        "flow ", DescribeTuple(tuple), " on ", nic->name,
        " is already steered to another binding; one flow can feed only "
        "one binding"));
  }
  *cause = kFailedQuota;
  absl::Status quota = leases_.CheckRuleQuota(session);
  if (!quota.ok()) return quota;
  const size_t on_nic = leases_.RuleCount(nic->name);
  if (on_nic >= nic->rule_quota) {
    return absl::ResourceExhaustedError(
        absl::StrCat(nic->name, ": ", on_nic, " of ", nic->rule_quota,
                     " steering rules in use (rule quota of the NIC)"));
  }
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
  r.journal_id = leases_.NextId();
  r.installed = rule;
  devmem::v1::JournalEntry intent;
  *intent.mutable_rule_put() = RuleRecord(nic->name, nic->ifindex, r);
  intent.mutable_rule_put()->set_installed(false);
  *cause = kFailedJournal;
  absl::Status j = recorder_.Intent(intent);
  if (!j.ok()) return j;
  *cause = kFailedKernel;
  auto loc = options_.control->InsertRule(nic->ifindex, rule);
  if (!loc.ok() && tuple.IsFiveTuple() &&
      (StatusErrno(loc.status()) == EINVAL ||
       StatusErrno(loc.status()) == EOPNOTSUPP)) {
    // Some NICs match only dst ip + dst port (ncdevmem falls back the same
    // way): the local port still singles the flow out.
    rule.match.src_ip.clear();
    rule.match.src_port = 0;
    loc = options_.control->InsertRule(nic->ifindex, rule);
  }
  if (!loc.ok()) {
    devmem::v1::JournalEntry undo;
    undo.set_rule_del(r.journal_id);
    recorder_.Note(undo);
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
  *cause = kFailedJournal;
  absl::Status recorded = recorder_.Outcome(made);
  if (!recorded.ok()) {
    (void)options_.control->DeleteRule(nic->ifindex, *loc);
    devmem::v1::JournalEntry undo;
    undo.set_rule_del(r.journal_id);
    recorder_.Note(undo);
    return recorded;
  }
  leases_.AddRule(nic->name, *loc, r);
  ++nic->rules_installed;
  return RuleProto(*nic, r);
}

absl::Status NicManager::RemoveFlow(uint64_t session, uint64_t handle,
                                    uint32_t location) {
  absl::MutexLock lock(&mu_);
  auto bp = leases_.Find(session, handle);
  if (!bp.ok()) return bp.status();
  NicRecord* n = profiles_.Find((*bp)->nic);
  const RuleLease* r =
      n != nullptr ? leases_.RuleAt(n->name, location) : nullptr;
  if (r == nullptr || r->binding != handle) {
    return absl::NotFoundError(
        absl::StrCat("no rule at ", location, " for binding ", handle));
  }
  absl::Status s = options_.control->DeleteRule(n->ifindex, location);
  devmem::v1::JournalEntry del;
  del.set_rule_del(r->journal_id);
  recorder_.Note(del);
  (void)leases_.RemoveRule(n->name, location);
  ++n->rules_removed[kRemovedReleased];
  return s;
}

std::vector<NicManager::NicMetrics> NicManager::Metrics() const {
  absl::MutexLock lock(&mu_);
  std::vector<NicMetrics> out;
  for (const auto& nic : profiles_.all()) {
    NicMetrics m;
    m.nic = nic->name;
    m.ifindex = nic->ifindex;
    m.state = nic->state;
    m.reason = nic->reason;
    m.degraded = !nic->degraded.empty();
    m.queues_free = static_cast<uint32_t>(nic->pool.free_count());
    if (nic->state == devmem::v1::PROFILE_STATE_APPLIED && nic->plan) {
      m.queues_used = static_cast<uint32_t>(nic->pool.used_count());
    }
    m.rules = static_cast<uint32_t>(leases_.RuleCount(nic->name));
    m.rules_installed = nic->rules_installed;
    m.rules_removed = nic->rules_removed;
    m.rules_failed = nic->rules_failed;
    absl::flat_hash_set<uint64_t> holders;
    for (const auto& [handle, b] : leases_.bindings()) {
      if (b.nic != nic->name) continue;
      holders.insert(b.session);
      if (b.tx) {
        ++m.bindings_tx;
      } else {
        ++m.bindings_rx;
        m.bound_rx_queues.insert(m.bound_rx_queues.end(), b.queues.begin(),
                                 b.queues.end());
      }
    }
    m.leases = static_cast<uint32_t>(holders.size());
    std::sort(m.bound_rx_queues.begin(), m.bound_rx_queues.end());
    out.push_back(std::move(m));
  }
  return out;
}

size_t NicManager::binding_count() const {
  absl::MutexLock lock(&mu_);
  return leases_.bindings().size();
}

size_t NicManager::rule_count() const {
  absl::MutexLock lock(&mu_);
  return leases_.RuleCount();
}

}  // namespace devmem

namespace devmem {

absl::Status NicManager::JournalSessionLocked(uint64_t session) {
  if (leases_.Journaled(session)) return absl::OkStatus();
  const bool known = leases_.Known(session);
  std::optional<devmem::v1::JournaledSession> rec;
  if (options_.session_record) rec = options_.session_record(session);
  if (rec) leases_.SetOwner(session, rec->uid());
  if (!recorder_.enabled() || !rec) return absl::OkStatus();
  devmem::v1::JournalEntry e;
  *e.mutable_session_put() = *rec;
  absl::Status s = recorder_.Intent(e);
  if (!s.ok()) {
    if (!known && !leases_.Holds(session)) leases_.ForgetSession(session);
    return s;
  }
  leases_.MarkJournaled(session);
  return absl::OkStatus();
}

std::string NicManager::journal_error() const { return recorder_.error(); }

std::vector<std::string> NicManager::Recover(
    const devmem::v1::JournalState& state,
    absl::flat_hash_map<uint64_t, UniqueFd> stored,
    std::vector<devmem::v1::JournaledSession>* detached) {
  absl::MutexLock lock(&mu_);
  LeaseRecovery recovery(profiles_, leases_, *options_.control, recorder_,
                         kRemovedRecovery);
  return recovery.Run(state, std::move(stored), detached);
}

std::vector<uint64_t> NicManager::AwaitingAnchor(uint64_t session) const {
  absl::MutexLock lock(&mu_);
  std::vector<uint64_t> out;
  for (const auto& [h, b] : leases_.bindings()) {
    if (b.session == session && b.kernel == nullptr) out.push_back(h);
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<uint64_t> NicManager::Anchored(uint64_t session) const {
  absl::MutexLock lock(&mu_);
  std::vector<uint64_t> out;
  for (const auto& [h, b] : leases_.bindings()) {
    if (b.session == session && b.kernel != nullptr) out.push_back(h);
  }
  std::sort(out.begin(), out.end());
  return out;
}

absl::StatusOr<uint32_t> NicManager::ReturnAnchor(uint64_t session,
                                                  uint64_t handle,
                                                  UniqueFd anchor) {
  absl::MutexLock lock(&mu_);
  auto bp = leases_.Find(session, handle);
  if (!bp.ok()) return bp.status();
  BindingLease& b = **bp;
  const std::string not_anchor = absl::StrCat(
      "fd ", anchor.get_unowned(), " is ", DescribeFd(anchor.get_unowned()),
      ", not the anchor of binding ", handle,
      "; send the fd that redeeming its anchor_ticket gave you");
  if (b.kernel != nullptr && b.kernel->netlink_fd_unowned() >= 0) {
    // Ours already: accept only a copy of our own (then it just closes).
    auto same =
        SameOpenFile(b.kernel->netlink_fd_unowned(), anchor.get_unowned());
    if (!same.ok() || !*same) return absl::InvalidArgumentError(not_anchor);
    return b.kernel_id;
  }
  if (b.kernel != nullptr) return b.kernel_id;  // a backend without anchors
  if (b.anchor_id != FdIdentity{}) {
    // devmemd has no copy to compare with after a restart: the journal says
    // which socket the anchor is, and only its holders can have it.
    auto id = IdentifyFd(anchor.get_unowned());
    if (!id.ok() || *id != b.anchor_id) {
      return absl::InvalidArgumentError(not_anchor);
    }
  }
  auto kb = options_.control->AdoptBinding(b.ifindex, b.kernel_id, b.tx,
                                           std::move(anchor));
  if (!kb.ok()) {
    if (kb.status().code() == absl::StatusCode::kNotFound) {
      return absl::NotFoundError(
          absl::StrCat("binding ", handle, " (kernel id ", b.kernel_id,
                       ") is no longer alive on ", b.nic, ": ",
                       kb.status().message(), "; release it and bind again"));
    }
    return kb.status();
  }
  b.kernel = *std::move(kb);
  if (options_.anchors != nullptr && b.kernel->netlink_fd_unowned() >= 0) {
    (void)options_.anchors->Keep(handle, b.kernel->netlink_fd_unowned());
  }
  return b.kernel_id;
}

absl::StatusOr<UniqueFd> NicManager::DupAnchor(uint64_t session,
                                               uint64_t handle) {
  absl::MutexLock lock(&mu_);
  auto bp = leases_.Find(session, handle);
  if (!bp.ok()) return bp.status();
  const BindingLease& b = **bp;
  const int fd = b.kernel != nullptr ? b.kernel->netlink_fd_unowned() : -1;
  if (fd < 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("binding ", handle, " has no anchor fd on the ",
                     options_.control->BackendName(), " backend"));
  }
  UniqueFd dup(::fcntl(fd, F_DUPFD_CLOEXEC, 3));
  if (!dup) return ErrnoStatus(errno, "dup(binding anchor)");
  return dup;
}

std::vector<std::string> NicManager::CheckHealth() {
  absl::MutexLock lock(&mu_);
  std::vector<std::string> out;
  for (auto& nic : profiles_.all()) {
    if (nic->state != devmem::v1::PROFILE_STATE_APPLIED) continue;
    const std::string reason = profiles_.CheckDrift(*nic);
    if (reason.empty()) continue;
    const size_t n = leases_.HandlesOn(nic->name).size();
    out.push_back(
        absl::StrCat(nic->name, ": ", reason, "; ", n, " binding(s) degraded"));
  }
  return out;
}

}  // namespace devmem

namespace devmem {

std::vector<NicManager::LeaseInfo> NicManager::Leases() const {
  absl::MutexLock lock(&mu_);
  std::vector<LeaseInfo> out;
  out.reserve(leases_.bindings().size());
  for (const auto& [handle, b] : leases_.bindings()) {
    LeaseInfo l;
    l.session = b.session;
    l.handle = handle;
    l.nic = b.nic;
    l.kernel_id = b.kernel_id;
    l.queues = b.queues;
    l.tx = b.tx;
    l.rules = static_cast<uint32_t>(b.rule_locations.size());
    l.anchored = b.kernel != nullptr;
    out.push_back(std::move(l));
  }
  std::sort(out.begin(), out.end(), [](const LeaseInfo& a, const LeaseInfo& b) {
    return a.handle < b.handle;
  });
  return out;
}

}  // namespace devmem
