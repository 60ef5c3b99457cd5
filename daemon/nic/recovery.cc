#include "daemon/nic/recovery.h"

#include <utility>

#include "absl/strings/str_cat.h"

namespace devmem {

std::vector<std::string> LeaseRecovery::Run(
    const devmem::v1::JournalState& state,
    absl::flat_hash_map<uint64_t, UniqueFd> stored,
    std::vector<devmem::v1::JournaledSession>* detached) {
  leases_.SkipIdsBelow(state.next_id());
  for (const auto& [handle, rec] : state.bindings()) {
    RecoverBinding(state, handle, rec, stored);
  }
  for (auto& [handle, fd] : stored) {
    report_.push_back(absl::StrCat("fd store: anchor of binding ", handle,
                                   " has no journal record; closed"));
  }
  for (const auto& [id, rec] : state.rules()) RecoverRule(id, rec);
  for (const auto& nic : profiles_.all()) RemoveOrphans(*nic);
  // Sessions still holding bindings wait for their workload.
  for (const auto& [id, rec] : state.sessions()) {
    if (leases_.BindingsOf(id).empty()) {
      devmem::v1::JournalEntry e;
      e.set_session_del(id);
      recorder_.Note(e);
      continue;
    }
    if (detached != nullptr) detached->push_back(rec);
  }
  report_.push_back(absl::StrCat(
      "recovery: ", adopted_ + awaiting_, " binding(s) kept (", adopted_,
      " re-adopted from the fd store, ", awaiting_,
      " awaiting their workload), ", kept_,
      " rule(s) confirmed in the kernel, ", dropped_,
      " stale record(s) dropped, ", undone_, " unfinished rule(s) removed, ",
      orphans_, " orphan rule(s) removed"));
  return std::move(report_);
}

void LeaseRecovery::RecoverBinding(
    const devmem::v1::JournalState& state, uint64_t handle,
    const devmem::v1::JournaledBinding& rec,
    absl::flat_hash_map<uint64_t, UniqueFd>& stored) {
  NicRecord* nic = profiles_.Find(rec.nic());
  const bool nic_ok =
      nic != nullptr && nic->state == devmem::v1::PROFILE_STATE_APPLIED;
  const bool has_session = state.sessions().contains(rec.session());
  const std::string where = absl::StrCat("binding ", handle, " on ", rec.nic());
  if (!rec.made() || !nic_ok || !has_session) {
    DeleteContext(nic, handle, rec);
    Forget(handle, absl::StrCat(where, ": dropped (",
                                !rec.made() ? "the bind never completed"
                                : !nic_ok   ? "its NIC is not applied now"
                                            : "no session owns it",
                                ")"));
    return;
  }
  BindingLease b;
  b.handle = handle;
  b.session = rec.session();
  b.nic = rec.nic();
  b.ifindex = nic->ifindex;
  b.kernel_id = rec.kernel_id();
  b.queues.assign(rec.queues().begin(), rec.queues().end());
  b.tx = rec.tx();
  if (rec.has_rss_context()) b.rss_context = rec.rss_context();
  b.anchor_id.dev = rec.anchor_dev();
  b.anchor_id.ino = rec.anchor_inode();
  b.anchor_id.netlink_port = rec.anchor_netlink_port();
  b.reservation = rec.reservation();
  b.recovered = true;
  auto anchor = stored.find(handle);
  if (anchor == stored.end()) {
    // Without an anchor in hand, the kernel says whether anyone still holds
    // the binding: its queues show its id while it lives.
    if (!rec.tx() && !StillBound(*nic, rec.kernel_id())) {
      DeleteContext(nic, handle, rec);
      Forget(handle,
             absl::StrCat(where, ": dropped (the kernel no longer has binding ",
                          rec.kernel_id(),
                          ": every holder of its anchor is gone)"));
      return;
    }
    ++awaiting_;
  } else {
    auto kb = control_.AdoptBinding(nic->ifindex, rec.kernel_id(), rec.tx(),
                                    std::move(anchor->second));
    stored.erase(anchor);
    if (!kb.ok()) {
      DeleteContext(nic, handle, rec);
      Forget(handle, absl::StrCat(where, ": dropped (its stored anchor: ",
                                  kb.status().message(), ")"));
      return;
    }
    b.kernel = *std::move(kb);
    if (!b.tx) b.queues = b.kernel->queues();
    ++adopted_;
  }
  nic->pool.Claim(b.queues);
  leases_.SetOwner(b.session, state.sessions().at(b.session).uid());
  leases_.MarkJournaled(b.session);
  leases_.Add(std::move(b));
}

void LeaseRecovery::RecoverRule(uint64_t id,
                                const devmem::v1::JournaledRule& rec) {
  NicRecord* nic = profiles_.Find(rec.nic());
  if (nic == nullptr || nic->state != devmem::v1::PROFILE_STATE_APPLIED) {
    ForgetRule(id);
    ++dropped_;
    return;
  }
  if (!rec.installed()) {
    // Insert requested, outcome unknown: the socket it was for never
    // reached its workload. Remove the rule if the kernel has it.
    auto table = control_.ListRules(nic->ifindex);
    if (table.ok()) {
      for (uint32_t loc : table->locations) {
        auto k = control_.GetRule(nic->ifindex, loc);
        if (!k.ok()) continue;
        if (SameRule(*k, rec) || k->match == TupleFromRecord(rec.requested())) {
          (void)control_.DeleteRule(nic->ifindex, loc);
          ++nic->rules_removed[removed_cause_];
          ++undone_;
        }
      }
    }
    ForgetRule(id);
    return;
  }
  auto k = control_.GetRule(nic->ifindex, rec.location());
  if (!k.ok() || !SameRule(*k, rec)) {
    // Gone or replaced by someone else: the record is stale.
    ForgetRule(id);
    ++dropped_;
    return;
  }
  const BindingLease* bound = leases_.Get(rec.binding());
  if (bound == nullptr || bound->session != rec.session()) {
    (void)control_.DeleteRule(nic->ifindex, rec.location());
    ++nic->rules_removed[removed_cause_];
    ForgetRule(id);
    ++undone_;
    return;
  }
  RuleLease r;
  r.requested = TupleFromRecord(rec.requested());
  r.installed = *k;
  r.installed.location = rec.location();
  r.session = rec.session();
  r.binding = rec.binding();
  r.journal_id = id;
  leases_.AddRule(nic->name, rec.location(), std::move(r));
  claimed_[nic->name].insert(rec.location());
  ++kept_;
}

void LeaseRecovery::RemoveOrphans(NicRecord& nic) {
  // A rule steering to the devmem pool (or to a context of ours) was made by
  // devmemd; if no record claims it, its record was lost (corrupt journal)
  // and nobody can use it.
  if (nic.state != devmem::v1::PROFILE_STATE_APPLIED || !nic.plan) return;
  const absl::flat_hash_set<uint32_t> pool(nic.plan->pool.begin(),
                                           nic.plan->pool.end());
  absl::flat_hash_set<uint32_t> contexts;
  for (const auto& [h, b] : leases_.bindings()) {
    if (b.nic == nic.name && b.rss_context) contexts.insert(*b.rss_context);
  }
  auto table = control_.ListRules(nic.ifindex);
  if (!table.ok()) return;
  const absl::flat_hash_set<uint32_t>& claimed = claimed_[nic.name];
  for (uint32_t loc : table->locations) {
    if (claimed.contains(loc)) continue;
    auto k = control_.GetRule(nic.ifindex, loc);
    if (!k.ok()) continue;
    const bool ours = k->rss_context ? contexts.contains(*k->rss_context)
                                     : pool.contains(k->queue);
    if (!ours) continue;
    (void)control_.DeleteRule(nic.ifindex, loc);
    ++nic.rules_removed[removed_cause_];
    ++orphans_;
    report_.push_back(absl::StrCat(nic.name, ": removed orphan rule at ", loc,
                                   " (steered to devmem pool queue ", k->queue,
                                   ", no journal record)"));
  }
}

void LeaseRecovery::DeleteContext(NicRecord* nic, uint64_t handle,
                                  const devmem::v1::JournaledBinding& rec) {
  if (nic == nullptr) return;
  if (rec.has_rss_context()) {
    (void)control_.DeleteRssContext(nic->ifindex, rec.rss_context());
    return;
  }
  if (!rec.rss_context_pending()) return;
  // Created but never recorded? Find it by its indirection table.
  const std::vector<uint32_t> indir(rec.rss_indir().begin(),
                                    rec.rss_indir().end());
  for (uint32_t c = 1; c <= 32; ++c) {
    auto rss = control_.GetRss(nic->ifindex, c);
    if (!rss.ok() || rss->indir != indir) continue;
    (void)control_.DeleteRssContext(nic->ifindex, c);
    report_.push_back(absl::StrCat(rec.nic(), ": removed RSS context ", c,
                                   " created for binding ", handle,
                                   " before a crash"));
    return;
  }
}

bool LeaseRecovery::StillBound(const NicRecord& nic, uint32_t kernel_id) {
  auto it = queues_.find(nic.ifindex);
  if (it == queues_.end()) {
    it = queues_.emplace(nic.ifindex, control_.GetQueues(nic.ifindex)).first;
  }
  const absl::StatusOr<std::vector<QueueInfo>>& queues = it->second;
  if (!queues.ok()) return true;  // no kernel view: let the workload decide
  for (const QueueInfo& q : *queues) {
    if (q.type == QueueInfo::Type::kRx && q.dmabuf == kernel_id) return true;
  }
  return false;
}

void LeaseRecovery::Forget(uint64_t handle, const std::string& why) {
  devmem::v1::JournalEntry e;
  e.set_binding_del(handle);
  recorder_.Note(e);
  report_.push_back(why);
}

void LeaseRecovery::ForgetRule(uint64_t id) {
  devmem::v1::JournalEntry e;
  e.set_rule_del(id);
  recorder_.Note(e);
}

}  // namespace devmem
