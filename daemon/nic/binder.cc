#include "daemon/nic/binder.h"

#include <fcntl.h>

#include <algorithm>
#include <cerrno>
#include <utility>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "kernel/errno_status.h"
#include "kernel/fd_identity.h"

namespace devmem {

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
      if (absl::StrContains(extack, "support DMA")) {
        // 7.x: the driver has queue-management ops but no DMA device
        // (a software NIC such as netdevsim).
        return absl::StrCat(
            "the driver of ", nic,
            " has no DMA device to map device memory for (a software NIC), "
            "so it cannot do devmem RX; use a devmem-capable NIC (bnxt "
            "6.16+, mlx5 6.17+, fbnic 6.18+, gve 6.18+)");
      }
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
      if (absl::StrContains(extack, "Failed to bind dmabuf to device")) {
        // dma_buf_attach() failed: on 6.12 (the kernel matrix) a NIC with
        // no DMA device, such as veth, answers this.
        return absl::StrCat(
            "the kernel could not attach the dma-buf to ", nic,
            "'s device (a NIC without a DMA device, such as a virtual one, "
            "or memory that device cannot reach); use a devmem-capable NIC "
            "(bnxt 6.16+, mlx5 6.17+, fbnic 6.18+, gve 6.18+) and memory "
            "exported for it");
      }
      return absl::StrCat("see `devmemctl nic show ", nic, "`");
    default:
      return absl::StrCat("see `devmemctl nic show ", nic, "`");
  }
}

devmem::v1::Binding BindingProto(const BindingLease& b) {
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

absl::Status Binder::CheckBindQuota(uint64_t session) const {
  return d_.leases->CheckBindQuota(session, SessionUid(session));
}

absl::Status Binder::RecordIntent(const devmem::v1::JournalEntry& entry,
                                  uint64_t* durable_at) {
  if (durable_at == nullptr) return d_.recorder->Intent(entry);
  absl::StatusOr<uint64_t> seq = d_.recorder->IntentNoWait(entry);
  if (!seq.ok()) return seq.status();
  *durable_at = std::max(*durable_at, *seq);
  return absl::OkStatus();
}

absl::Status Binder::JournalSession(uint64_t session, uint64_t* durable_at) {
  if (d_.leases->Journaled(session)) return absl::OkStatus();
  const bool known = d_.leases->Known(session);
  std::optional<devmem::v1::JournaledSession> rec;
  if (d_.session_record) rec = d_.session_record(session);
  if (rec) d_.leases->SetOwner(session, rec->uid());
  if (!d_.recorder->enabled() || !rec) return absl::OkStatus();
  devmem::v1::JournalEntry e;
  *e.mutable_session_put() = *rec;
  absl::Status s = RecordIntent(e, durable_at);
  if (!s.ok()) {
    if (!known && !d_.leases->Holds(session)) d_.leases->ForgetSession(session);
    return s;
  }
  d_.leases->MarkJournaled(session);
  return absl::OkStatus();
}

uint32_t Binder::SessionUid(uint64_t session) const {
  std::optional<uint32_t> uid = d_.leases->OwnerOf(session);
  if (!uid.has_value() && d_.session_record) {
    auto rec = d_.session_record(session);
    if (rec) uid = rec->uid();
  }
  return uid.value_or(0);
}

absl::StatusOr<ReservationRecord*> Binder::RedeemFor(uint64_t session,
                                                     absl::string_view token,
                                                     absl::string_view what) {
  if (token.empty()) {
    if (d_.cordon != nullptr) {
      absl::Status open = d_.cordon->Check(absl::StrCat(
          "new bindings (", what, ") without a reservation token"));
      if (!open.ok()) return open;
    }
    if (!d_.config->require_reservation()) return nullptr;
    return absl::FailedPreconditionError(absl::StrCat(
        "this host requires a reservation for every ", what,
        " (require_reservation): ask the job's launcher for one (devmem-agent "
        "Reserve, or an admin's `devmemctl reserve --job=<job> "
        "--nic=<nic>`) and pass its token as reservation_token, or set "
        "DEVMEM_RESERVATION for libdevmem"));
  }
  if (d_.reserver == nullptr) {
    return absl::FailedPreconditionError("this devmemd takes no reservations");
  }
  return d_.reserver->Redeem(token, SessionUid(session));
}

void Binder::GiveBackQueues(NicRecord& nic, const std::string& reservation,
                            uint64_t handle,
                            const std::vector<uint32_t>& queues) {
  ReservationRecord* r = reservation.empty() || d_.reservations == nullptr
                             ? nullptr
                             : d_.reservations->Find(reservation);
  if (r != nullptr) r->bindings.erase(handle);
  if (r != nullptr && !r->expired) {
    nic.pool.ReturnReserved(r->id, queues);
  } else {
    nic.pool.Release(queues);
  }
}

absl::StatusOr<devmem::v1::Binding> Binder::BindRx(
    uint64_t session, const NicTarget& target, uint32_t queue_count,
    UniqueFd dmabuf, absl::string_view reservation_token,
    uint64_t* durable_at) {
  // The fd's kind is checked before anything else, netlink included.
  absl::Status fd_ok = d_.control->CheckBindableFd(dmabuf.get_unowned());
  if (!fd_ok.ok()) return fd_ok;
  if (queue_count > 64) {
    return absl::InvalidArgumentError(
        absl::StrCat("queue_count ", queue_count, " is out of range [0, 64]"));
  }
  const uint32_t want = queue_count == 0 ? 1 : queue_count;
  absl::StatusOr<ReservationRecord*> res =
      RedeemFor(session, reservation_token, "BindRx");
  if (!res.ok()) return res.status();
  NicTarget where = target;
  if (*res != nullptr) {
    auto item = d_.reserver->ItemFor(**res, target);
    if (!item.ok()) return item.status();
    where = NicTarget{(*item)->nic, ""};
  }
  auto nic_or = d_.profiles->Resolve(where);
  if (!nic_or.ok()) return nic_or.status();
  NicRecord& nic = **nic_or;
  absl::Status quota = CheckBindQuota(session);
  if (!quota.ok()) return quota;
  const std::string reservation = *res != nullptr ? (*res)->id : "";
  // A queue the kernel shows bound is not free even if devmemd released it:
  // a workload may still hold the anchor of a binding devmemd let go.
  auto taken = reservation.empty()
                   ? nic.pool.Take(want, d_.profiles->BusyQueues(nic), nic.name)
                   : nic.pool.TakeReserved(reservation, want, nic.name);
  if (!taken.ok()) return taken.status();
  const std::vector<uint32_t> queues = *std::move(taken);
  // Taken from the pool now; given back on any failure below.
  bool made = false;
  absl::Cleanup give_back = [&] {
    if (!made) GiveBackQueues(nic, reservation, 0, queues);
  };
  absl::Status journaled = JournalSession(session, durable_at);
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
  b.handle = d_.leases->NextId();
  b.session = session;
  b.nic = nic.name;
  b.ifindex = nic.ifindex;
  b.queues = queues;
  b.reservation = reservation;
  // Intent first: a crash from here on leaves a record of what may exist.
  devmem::v1::JournalEntry intent;
  *intent.mutable_binding_put() = BindingRecord(b);
  intent.mutable_binding_put()->set_rss_context_pending(with_context);
  for (uint32_t q : indir) intent.mutable_binding_put()->add_rss_indir(q);
  absl::Status j = RecordIntent(intent, durable_at);
  if (!j.ok()) return j;
  devmem::v1::JournalEntry undo;
  undo.set_binding_del(b.handle);
  if (with_context) {
    auto ctx = d_.control->CreateRssContext(nic.ifindex, indir);
    if (!ctx.ok()) {
      d_.recorder->Note(undo);
      return KernelRefusal(ctx.status(),
                           "the NIC refused an RSS context for the binding; "
                           "use rss_mode RSS_MODE_EXCLUDE_POOL");
    }
    b.rss_context = *ctx;
  }
  auto bound = d_.control->BindRx(nic.ifindex, dmabuf.get_unowned(), queues);
  if (!bound.ok()) {
    if (b.rss_context) {
      (void)d_.control->DeleteRssContext(nic.ifindex, *b.rss_context);
    }
    d_.recorder->Note(undo);
    return KernelRefusal(bound.status(),
                         BindRxRemedy(bound.status(), nic.name));
  }
  b.kernel = *std::move(bound);
  const uint64_t handle = b.handle;
  auto adopted = AdoptNew(std::move(b), nic);
  made = adopted.ok();
  if (made && *res != nullptr) (*res)->bindings.insert(handle);
  return adopted;
}

absl::StatusOr<devmem::v1::Binding> Binder::BindTx(
    uint64_t session, const NicTarget& target, UniqueFd dmabuf,
    absl::string_view reservation_token, uint64_t* durable_at) {
  absl::Status fd_ok = d_.control->CheckBindableFd(dmabuf.get_unowned());
  if (!fd_ok.ok()) return fd_ok;
  absl::StatusOr<ReservationRecord*> res =
      RedeemFor(session, reservation_token, "BindTx");
  if (!res.ok()) return res.status();
  NicTarget where = target;
  if (*res != nullptr && target.nic.empty() && target.gpu_pci_address.empty()) {
    where.nic = (*res)->items.front().nic;
  }
  auto nic_or = d_.profiles->Resolve(where);
  if (!nic_or.ok()) return nic_or.status();
  NicRecord& nic = **nic_or;
  absl::Status quota = CheckBindQuota(session);
  if (!quota.ok()) return quota;
  absl::Status journaled = JournalSession(session, durable_at);
  if (!journaled.ok()) return journaled;
  BindingLease b;
  b.handle = d_.leases->NextId();
  b.session = session;
  b.nic = nic.name;
  b.ifindex = nic.ifindex;
  b.tx = true;
  if (*res != nullptr) b.reservation = (*res)->id;
  devmem::v1::JournalEntry intent;
  *intent.mutable_binding_put() = BindingRecord(b);
  absl::Status j = RecordIntent(intent, durable_at);
  if (!j.ok()) return j;
  auto bound = d_.control->BindTx(nic.ifindex, dmabuf.get_unowned());
  if (!bound.ok()) {
    devmem::v1::JournalEntry undo;
    undo.set_binding_del(b.handle);
    d_.recorder->Note(undo);
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
  const uint64_t handle = b.handle;
  auto adopted = AdoptNew(std::move(b), nic);
  if (adopted.ok() && *res != nullptr) (*res)->bindings.insert(handle);
  return adopted;
}

absl::StatusOr<devmem::v1::Binding> Binder::AdoptNew(BindingLease b,
                                                     NicRecord& nic) {
  b.kernel_id = b.kernel->id();
  if (!b.tx) b.queues = b.kernel->queues();
  if (b.kernel->netlink_fd_unowned() >= 0) {
    auto id = IdentifyFd(b.kernel->netlink_fd_unowned());
    if (id.ok()) b.anchor_id = *id;
  }
  devmem::v1::JournalEntry made;
  *made.mutable_binding_put() = BindingRecord(b);
  // Without this record a restart would drop a binding in use: undo instead.
  absl::Status recorded = d_.recorder->Outcome(made);
  if (!recorded.ok()) {
    b.kernel.reset();
    if (b.rss_context) {
      (void)d_.control->DeleteRssContext(nic.ifindex, *b.rss_context);
    }
    devmem::v1::JournalEntry undo;
    undo.set_binding_del(b.handle);
    d_.recorder->Note(undo);
    return recorded;
  }
  if (d_.anchors != nullptr && b.kernel->netlink_fd_unowned() >= 0) {
    (void)d_.anchors->Keep(b.handle, b.kernel->netlink_fd_unowned());
  }
  nic.pool.Claim(b.queues);
  const BindingLease& added = d_.leases->Add(std::move(b));
  Publish("binding.bound", added);
  return BindingProto(added);
}

void Binder::Publish(const char* type, const BindingLease& b) const {
  if (d_.events == nullptr) return;
  devmem::v1::Event e;
  e.set_type(type);
  *e.mutable_binding() = BindingProto(b);
  e.set_session(b.session);
  d_.events->Publish(std::move(e));
}

uint32_t Binder::Release(uint64_t handle, const char* cause) {
  const BindingLease* found = d_.leases->Get(handle);
  if (found == nullptr) return 0;
  NicRecord* nic = d_.profiles->Find(found->nic);
  uint32_t removed = 0;
  if (nic != nullptr) {
    // Rules first: once the binding is gone its queue gets normal pages,
    // and a rule left pointing there would steer flows to the wrong place.
    const std::vector<uint32_t> locations(found->rule_locations.begin(),
                                          found->rule_locations.end());
    for (uint32_t loc : locations) {
      std::optional<RuleLease> r = d_.leases->RemoveRule(nic->name, loc);
      if (!r.has_value()) continue;
      (void)d_.control->DeleteRule(nic->ifindex, loc);
      devmem::v1::JournalEntry del;
      del.set_rule_del(r->journal_id);
      d_.recorder->Note(del);
      ++nic->rules_removed[cause];
      ++removed;
    }
  }
  BindingLease b = d_.leases->Remove(handle);
  Publish("binding.released", b);
  if (!d_.leases->Holds(b.session) && d_.leases->ForgetSession(b.session)) {
    devmem::v1::JournalEntry del;
    del.set_session_del(b.session);
    d_.recorder->Note(del);
  }
  if (d_.anchors != nullptr && b.kernel != nullptr &&
      b.kernel->netlink_fd_unowned() >= 0) {
    (void)d_.anchors->Forget(handle);
  }
  // An anchor copy still behind an unredeemed ticket is devmemd's to close;
  // left there, it would keep the kernel binding until the ticket expired.
  if (d_.withdraw_anchor_ticket) {
    d_.withdraw_anchor_ticket(b.session, handle);
  }
  // Closes our copy of the binding's netlink socket: the kernel unbinds once
  // the workload closes its copy too (the client library does on release).
  b.kernel.reset();
  if (nic != nullptr) {
    if (b.rss_context) {
      (void)d_.control->DeleteRssContext(nic->ifindex, *b.rss_context);
    }
    if (nic->state == devmem::v1::PROFILE_STATE_APPLIED) {
      GiveBackQueues(*nic, b.reservation, handle, b.queues);
    }
  }
  devmem::v1::JournalEntry del;
  del.set_binding_del(handle);
  d_.recorder->Note(del);
  return removed;
}

void Binder::ReleaseSession(uint64_t session, const char* cause) {
  if (!d_.leases->Known(session)) return;
  const bool journaled = d_.leases->Journaled(session);
  for (uint64_t h : d_.leases->BindingsOf(session)) {
    Release(h, cause);
  }
  d_.leases->ForgetSession(session);
  if (journaled) {
    devmem::v1::JournalEntry del;
    del.set_session_del(session);
    d_.recorder->Note(del);
  }
}

absl::Status Binder::CheckNoHeldAnchors(const NicRecord& nic) {
  std::vector<uint64_t> handles;
  for (uint64_t handle : d_.leases->HandlesOn(nic.name)) {
    const BindingLease& b = *d_.leases->Get(handle);
    // A binding awaiting its anchor (kernel == nullptr) is always recovered.
    const bool handed_out =
        b.recovered ||
        (d_.anchor_handed_out && d_.anchor_handed_out(b.session, handle));
    if (handed_out) handles.push_back(handle);
  }
  if (handles.empty()) return absl::OkStatus();
  std::vector<std::string> held;
  for (uint64_t h : handles) {
    const BindingLease& b = *d_.leases->Get(h);
    std::string who = absl::StrCat("binding ", h, " (session ", b.session);
    std::optional<devmem::v1::JournaledSession> owner;
    if (d_.session_record) owner = d_.session_record(b.session);
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

absl::StatusOr<uint32_t> Binder::ReturnAnchor(uint64_t session, uint64_t handle,
                                              UniqueFd anchor) {
  auto bp = d_.leases->Find(session, handle);
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
  auto kb =
      d_.control->AdoptBinding(b.ifindex, b.kernel_id, b.tx, std::move(anchor));
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
  if (d_.anchors != nullptr && b.kernel->netlink_fd_unowned() >= 0) {
    (void)d_.anchors->Keep(handle, b.kernel->netlink_fd_unowned());
  }
  return b.kernel_id;
}

absl::StatusOr<UniqueFd> Binder::DupAnchor(uint64_t session, uint64_t handle) {
  auto bp = d_.leases->Find(session, handle);
  if (!bp.ok()) return bp.status();
  const BindingLease& b = **bp;
  const int fd = b.kernel != nullptr ? b.kernel->netlink_fd_unowned() : -1;
  if (fd < 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("binding ", handle, " has no anchor fd on the ",
                     d_.control->BackendName(), " backend"));
  }
  UniqueFd dup(::fcntl(fd, F_DUPFD_CLOEXEC, 3));
  if (!dup) return ErrnoStatus(errno, "dup(binding anchor)");
  return dup;
}

}  // namespace devmem
