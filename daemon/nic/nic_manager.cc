#include "daemon/nic/nic_manager.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "daemon/nic/recovery.h"

namespace devmem {
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
                                     options.inventory, &recorder_,
                                     options.topology}),
      leases_(QuotasOf(*options.config)),
      binder_(Binder::Deps{
          options.config, options.control, options.anchors, &recorder_,
          &profiles_, &leases_, options.session_record,
          options.withdraw_anchor_ticket, options.anchor_handed_out, &reserver_,
          &reservations_, &cordon_, options.events}),
      steering_(
          Steering::Deps{options.control, &recorder_, &profiles_, &leases_}),
      restorer_(Restorer::Deps{&profiles_, &leases_, &binder_}),
      changer_(ProfileChanger::Deps{&profiles_, &restorer_, &recorder_,
                                    options.clock, options.events}),
      reserver_(Reserver::Deps{
          options.config, options.clock, &recorder_, &profiles_, &leases_,
          &reservations_,
          options.host_key.empty() ? "devmemd-test-host-key" : options.host_key,
          &cordon_, options.events}) {}

NicManager::~NicManager() {
  absl::MutexLock lock(&mu_);
  // Bindings unbind as their objects go; rules and settings are left to
  // RestoreAll(), which the daemon calls on a clean shutdown.
  leases_.Clear();
}

std::vector<std::string> NicManager::ApplyAll() {
  absl::MutexLock lock(&mu_);
  // Profiles changed at run time win over the config's.
  std::vector<std::string> lines = changer_.Prepare(recorder_.state());
  for (auto& nic : profiles_.all()) {
    lines.push_back(profiles_.Apply(*nic));
    PublishProfile(*nic);
  }
  return lines;
}

void NicManager::PublishProfile(const NicRecord& nic) {
  if (options_.events == nullptr) return;
  devmem::v1::Event e;
  e.set_type("nic.profile");
  e.set_nic(nic.name);
  e.set_state(ProfileStateName(nic.state));
  e.set_detail(nic.reason);
  options_.events->Publish(std::move(e));
}

std::vector<std::string> NicManager::RestoreAll() {
  absl::MutexLock lock(&mu_);
  return restorer_.RestoreAll();
}

absl::StatusOr<devmem::v1::RestoreNicResponse> NicManager::Restore(
    absl::string_view name) {
  absl::MutexLock lock(&mu_);
  auto restored = restorer_.Restore(name);
  if (NicRecord* nic = profiles_.Find(name)) PublishProfile(*nic);
  return restored;
}

absl::StatusOr<std::vector<devmem::v1::NicState>> NicManager::States(
    const std::vector<std::string>& names) {
  absl::MutexLock lock(&mu_);
  std::vector<devmem::v1::NicState> out;
  if (names.empty()) {
    for (const auto& nic : profiles_.all()) out.push_back(StateOf(*nic));
    return out;
  }
  for (const std::string& name : names) {
    const NicRecord* found = profiles_.Find(name);
    if (found != nullptr) {
      out.push_back(StateOf(*found));
      continue;
    }
    auto unmanaged = profiles_.Unmanaged(name);
    if (!unmanaged.ok()) return unmanaged.status();
    out.push_back(*std::move(unmanaged));
  }
  return out;
}

absl::StatusOr<devmem::v1::Binding> NicManager::BindRx(
    uint64_t session, const Target& target, uint32_t queue_count,
    UniqueFd dmabuf, absl::string_view reservation_token) {
  uint64_t durable_at = 0;
  absl::StatusOr<devmem::v1::Binding> b;
  {
    absl::MutexLock lock(&mu_);
    b = binder_.BindRx(session, target, queue_count, std::move(dmabuf),
                       reservation_token, &durable_at);
  }
  return Settled(session, std::move(b), durable_at);
}

absl::StatusOr<devmem::v1::Binding> NicManager::Settled(
    uint64_t session, absl::StatusOr<devmem::v1::Binding> b,
    uint64_t durable_at) {
  if (!b.ok()) return b;
  // The lock is not held here: concurrent binds share this flush.
  absl::Status durable = AwaitDurable(durable_at);
  if (durable.ok()) return b;
  (void)ReleaseBinding(session, b->handle());
  return durable;
}

absl::StatusOr<devmem::v1::Binding> NicManager::BindTx(
    uint64_t session, const Target& target, UniqueFd dmabuf,
    absl::string_view reservation_token) {
  uint64_t durable_at = 0;
  absl::StatusOr<devmem::v1::Binding> b;
  {
    absl::MutexLock lock(&mu_);
    b = binder_.BindTx(session, target, std::move(dmabuf), reservation_token,
                       &durable_at);
  }
  return Settled(session, std::move(b), durable_at);
}

absl::StatusOr<devmem::v1::ReserveResponse> NicManager::Reserve(
    const devmem::v1::ReserveRequest& req, const std::string& caller) {
  absl::MutexLock lock(&mu_);
  return reserver_.Reserve(req, caller);
}

absl::StatusOr<devmem::v1::Reservation> NicManager::Renew(
    const devmem::v1::RenewRequest& req, const std::string& caller) {
  absl::MutexLock lock(&mu_);
  return reserver_.Renew(req, caller);
}

absl::StatusOr<devmem::v1::ReleaseReservationResponse>
NicManager::ReleaseReservation(const devmem::v1::ReleaseReservationRequest& req,
                               const std::string& caller) {
  absl::MutexLock lock(&mu_);
  return reserver_.Release(req, caller);
}

devmem::v1::ListReservationsResponse NicManager::ListReservations(
    const devmem::v1::ListReservationsRequest& req) {
  absl::MutexLock lock(&mu_);
  reserver_.Expire();
  return reserver_.List(req);
}

std::vector<std::string> NicManager::ExpireReservations() {
  absl::MutexLock lock(&mu_);
  return reserver_.Expire();
}

devmem::v1::NicState NicManager::StateOf(const NicRecord& nic) const {
  devmem::v1::NicState st = restorer_.State(nic);
  *st.mutable_profile() = nic.profile;
  if (const auto* p = changer_.PendingFor(nic.name)) {
    *st.mutable_pending_change() = *p;
  }
  return st;
}

absl::StatusOr<devmem::v1::ApplyProfileResponse> NicManager::ApplyProfile(
    const devmem::v1::ApplyProfileRequest& req, const std::string& by) {
  absl::MutexLock lock(&mu_);
  auto change = changer_.Apply(req, by);
  if (!change.ok()) return change.status();
  devmem::v1::ApplyProfileResponse resp;
  *resp.mutable_change() = *change;
  *resp.mutable_state() = StateOf(*profiles_.Find(change->nic()));
  return resp;
}

absl::StatusOr<devmem::v1::ConfirmProfileResponse> NicManager::ConfirmProfile(
    const devmem::v1::ConfirmProfileRequest& req) {
  absl::MutexLock lock(&mu_);
  absl::Status s = changer_.Confirm(req);
  if (!s.ok()) return s;
  devmem::v1::ConfirmProfileResponse resp;
  *resp.mutable_state() = StateOf(*profiles_.Find(req.nic()));
  return resp;
}

absl::StatusOr<devmem::v1::RevertProfileResponse> NicManager::RevertProfile(
    const devmem::v1::RevertProfileRequest& req) {
  absl::MutexLock lock(&mu_);
  absl::Status s = changer_.Revert(req);
  if (!s.ok()) return s;
  devmem::v1::RevertProfileResponse resp;
  *resp.mutable_state() = StateOf(*profiles_.Find(req.nic()));
  return resp;
}

std::vector<std::string> NicManager::ExpireProfileChanges() {
  absl::MutexLock lock(&mu_);
  return changer_.Expire();
}

absl::StatusOr<uint32_t> NicManager::ReleaseBinding(uint64_t session,
                                                    uint64_t handle) {
  absl::MutexLock lock(&mu_);
  auto b = leases_.Find(session, handle);
  if (!b.ok()) return b.status();
  return binder_.Release(handle, kRemovedReleased);
}

void NicManager::ReleaseSession(uint64_t session) {
  absl::MutexLock lock(&mu_);
  binder_.ReleaseSession(session, kRemovedSessionClosed);
}

absl::StatusOr<NicManager::BindingNic> NicManager::NicOfBinding(
    uint64_t session, uint64_t handle) {
  absl::MutexLock lock(&mu_);
  auto b = leases_.Find(session, handle);
  if (!b.ok()) return b.status();
  return BindingNic{(*b)->nic, (*b)->ifindex};
}

absl::StatusOr<devmem::v1::FlowRule> NicManager::SteerFlow(
    uint64_t session, uint64_t handle, const FlowTuple& tuple) {
  uint64_t durable_at = 0;
  absl::StatusOr<devmem::v1::FlowRule> rule =
      SteerFlow(session, handle, tuple, &durable_at);
  if (!rule.ok()) return rule;
  absl::Status durable = AwaitDurable(durable_at);
  if (!durable.ok()) {
    (void)RemoveFlow(session, handle, rule->location());
    return durable;
  }
  return rule;
}

absl::StatusOr<devmem::v1::FlowRule> NicManager::SteerFlow(
    uint64_t session, uint64_t handle, const FlowTuple& tuple,
    uint64_t* durable_at, bool start_flush) {
  absl::MutexLock lock(&mu_);
  return SteerLocked(session, handle, tuple, durable_at, start_flush);
}

absl::StatusOr<devmem::v1::FlowRule> NicManager::SteerLocked(
    uint64_t session, uint64_t handle, const FlowTuple& tuple,
    uint64_t* durable_at, bool start_flush) {
  NicRecord* nic = nullptr;
  const char* cause = kFailedInvalid;
  absl::StatusOr<devmem::v1::FlowRule> rule = steering_.Steer(
      session, handle, tuple, &nic, &cause, durable_at, start_flush);
  if (!rule.ok() && nic != nullptr) ++nic->rules_failed[cause];
  return rule;
}

std::vector<absl::StatusOr<devmem::v1::FlowRule>> NicManager::SteerFlows(
    uint64_t session, absl::Span<const FlowToSteer> flows,
    uint64_t* durable_at) {
  std::vector<absl::StatusOr<devmem::v1::FlowRule>> out;
  out.reserve(flows.size());
  absl::MutexLock lock(&mu_);
  for (const FlowToSteer& f : flows) {
    uint64_t at = 0;
    out.push_back(
        SteerLocked(session, f.handle, f.tuple, &at, /*start_flush=*/false));
    *durable_at = std::max(*durable_at, at);
  }
  return out;
}

absl::Status NicManager::AwaitDurable(uint64_t seq) {
  // The recorder's journal is thread-safe and fixed for the manager's life.
  return recorder_.AwaitDurable(seq);
}

absl::Status NicManager::RemoveFlow(uint64_t session, uint64_t handle,
                                    uint32_t location) {
  absl::MutexLock lock(&mu_);
  return steering_.Remove(session, handle, location);
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
      m.queues_reserved = static_cast<uint32_t>(nic->pool.reserved_count());
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

std::string NicManager::journal_error() const { return recorder_.error(); }

std::vector<std::string> NicManager::Recover(
    const devmem::v1::JournalState& state,
    absl::flat_hash_map<uint64_t, UniqueFd> stored,
    std::vector<devmem::v1::JournaledSession>* detached) {
  absl::MutexLock lock(&mu_);
  LeaseRecovery recovery(profiles_, leases_, *options_.control, recorder_,
                         kRemovedRecovery);
  std::vector<std::string> lines =
      recovery.Run(state, std::move(stored), detached);
  for (std::string& line : reserver_.Recover(state)) {
    lines.push_back(std::move(line));
  }
  if (state.cordon().cordoned()) {
    cordon_.Set(state.cordon());
    lines.push_back(absl::StrCat("the host stays cordoned (",
                                 state.cordon().reason(), "; by ",
                                 state.cordon().by(), ")"));
  }
  return lines;
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
  return binder_.ReturnAnchor(session, handle, std::move(anchor));
}

absl::StatusOr<UniqueFd> NicManager::DupAnchor(uint64_t session,
                                               uint64_t handle) {
  absl::MutexLock lock(&mu_);
  return binder_.DupAnchor(session, handle);
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

absl::StatusOr<devmem::v1::CordonState> NicManager::Cordon(
    absl::string_view reason, absl::string_view by) {
  if (reason.empty() || reason.size() > 256) {
    return absl::InvalidArgumentError(
        "a cordon needs a reason of 1 to 256 bytes (operators and refused "
        "requests see it)");
  }
  absl::MutexLock lock(&mu_);
  devmem::v1::CordonState st;
  st.set_cordoned(true);
  st.set_reason(std::string{reason});
  st.set_by(std::string{by});
  st.set_since_unix_ms(absl::ToUnixMillis(options_.clock->Now()));
  if (cordon_.cordoned() && cordon_.state().reason() == reason) {
    return cordon_.state();  // the same cordon again: nothing changes
  }
  return SetCordon(std::move(st), "host.cordoned");
}

absl::StatusOr<devmem::v1::CordonState> NicManager::Uncordon(
    absl::string_view by) {
  absl::MutexLock lock(&mu_);
  if (!cordon_.cordoned()) return cordon_.state();
  devmem::v1::CordonState st;
  st.set_by(std::string{by});
  st.set_since_unix_ms(absl::ToUnixMillis(options_.clock->Now()));
  return SetCordon(std::move(st), "host.uncordoned");
}

absl::StatusOr<devmem::v1::CordonState> NicManager::SetCordon(
    devmem::v1::CordonState st, const char* event) {
  devmem::v1::JournalEntry e;
  *e.mutable_cordon() = st;
  absl::Status recorded = recorder_.Intent(e);
  if (!recorded.ok()) return recorded;
  cordon_.Set(st);
  if (options_.events != nullptr) {
    devmem::v1::Event ev;
    ev.set_type(event);
    *ev.mutable_cordon() = st;
    options_.events->Publish(std::move(ev));
  }
  return st;
}

NicManager::HostFigures NicManager::HostMetrics() const {
  absl::MutexLock lock(&mu_);
  HostFigures f;
  for (const auto& [id, r] : reservations_.all()) {
    ++(r.expired ? f.reservations_expired : f.reservations_active);
  }
  f.cordoned = cordon_.cordoned();
  return f;
}

devmem::v1::CordonState NicManager::cordon_state() const {
  absl::MutexLock lock(&mu_);
  return cordon_.state();
}

devmem::v1::DrainProgress NicManager::DrainStatus() {
  absl::MutexLock lock(&mu_);
  reserver_.Expire();
  devmem::v1::DrainProgress p;
  *p.mutable_cordon() = cordon_.state();
  for (const auto& [id, r] : reservations_.all()) {
    if (r.expired) continue;
    p.set_reservations(p.reservations() + 1);
    p.add_remaining(absl::StrCat("reservation ", id, " of job ", r.job_id,
                                 " (owner ", r.owner, ")"));
  }
  for (const auto& [handle, b] : leases_.bindings()) {
    p.set_bindings(p.bindings() + 1);
    std::optional<uint32_t> uid = leases_.OwnerOf(b.session);
    p.add_remaining(absl::StrCat(
        "binding ", handle, " on ", b.nic, " (session ", b.session,
        uid.has_value() ? absl::StrCat(", uid ", *uid) : "",
        b.reservation.empty() ? ""
                              : absl::StrCat(", reservation ", b.reservation),
        ")"));
  }
  p.set_done(p.reservations() == 0 && p.bindings() == 0);
  return p;
}

void NicManager::ReleaseEverything(devmem::v1::DrainProgress* progress) {
  absl::MutexLock lock(&mu_);
  std::vector<uint64_t> handles;
  for (const auto& [handle, b] : leases_.bindings()) handles.push_back(handle);
  for (uint64_t h : handles) binder_.Release(h, rule_cause::kDrain);
  progress->set_released_bindings(static_cast<uint32_t>(handles.size()));
  std::vector<std::string> ids;
  for (const auto& [id, r] : reservations_.all()) ids.push_back(id);
  uint32_t released = 0;
  for (const std::string& id : ids) {
    devmem::v1::ReleaseReservationRequest one;
    one.set_id(id);
    one.set_any_owner(true);
    auto done = reserver_.Release(one, "drain");
    if (done.ok()) released += static_cast<uint32_t>(done->released_size());
  }
  progress->set_released_reservations(released);
}

devmem::v1::WatchResponse NicManager::Snapshot() {
  absl::MutexLock lock(&mu_);
  devmem::v1::WatchResponse snap;
  snap.set_snapshot(true);
  // Events of the NIC side are published under mu_: none can slip between
  // this revision and the state below.
  if (options_.events != nullptr) {
    snap.set_revision(options_.events->revision());
  }
  for (const auto& [id, r] : reservations_.all()) {
    *snap.add_reservations() = reserver_.Proto(r);
  }
  *snap.mutable_cordon() = cordon_.state();
  snap.set_bindings(static_cast<uint32_t>(leases_.bindings().size()));
  return snap;
}

}  // namespace devmem
