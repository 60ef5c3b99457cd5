#include "daemon/nic/change_recorder.h"

#include <utility>

#include "absl/strings/str_cat.h"

namespace devmem {

devmem::v1::JournalState ChangeRecorder::state() const {
  return journal_ != nullptr ? journal_->state() : devmem::v1::JournalState();
}

std::string ChangeRecorder::error() const {
  return journal_ != nullptr ? journal_->error() : "";
}

std::string ChangeRecorder::durability() const {
  return journal_ != nullptr ? journal_->durability() : "";
}

uint64_t ChangeRecorder::syncs() const {
  return journal_ != nullptr ? journal_->syncs() : 0;
}

absl::Status ChangeRecorder::Intent(const devmem::v1::JournalEntry& entry) {
  return Record(entry, /*durable=*/true);
}

absl::Status ChangeRecorder::Outcome(const devmem::v1::JournalEntry& entry) {
  return Record(entry, /*durable=*/false);
}

void ChangeRecorder::Note(const devmem::v1::JournalEntry& entry) {
  // A lost outcome is recovered from the kernel: its intent is still there.
  (void)Record(entry, /*durable=*/false);
}

absl::StatusOr<uint64_t> ChangeRecorder::IntentNoWait(
    const devmem::v1::JournalEntry& entry, bool start_flush) {
  if (journal_ == nullptr) return uint64_t{0};
  absl::StatusOr<uint64_t> seq = journal_->Write(entry);
  if (!seq.ok()) return Explained(seq.status(), /*durable=*/true);
  if (start_flush) journal_->Flush();
  return seq;
}

absl::StatusOr<uint64_t> ChangeRecorder::Staged(devmem::v1::JournalEntry entry,
                                                bool start_flush) {
  if (journal_ == nullptr) return uint64_t{0};
  absl::StatusOr<uint64_t> seq = journal_->Stage(std::move(entry));
  if (!seq.ok()) return Explained(seq.status(), /*durable=*/false);
  if (start_flush) journal_->Flush();
  return seq;
}

absl::Status ChangeRecorder::AwaitDurable(uint64_t seq) {
  if (journal_ == nullptr || seq == 0) return absl::OkStatus();
  absl::Status s = journal_->WaitDurable(seq);
  return s.ok() ? s : Explained(s, /*durable=*/false);
}

absl::Status ChangeRecorder::Explained(const absl::Status& s, bool durable) {
  // An intent that fails stops the change before it is made; an outcome
  // that fails has its change undone by the caller.
  return absl::Status(
      s.code(), absl::StrCat("devmemd cannot record the change in its journal "
                             "(",
                             durable ? "" : "it was undone; ",
                             "new work is refused, existing leases go on): ",
                             s.message()));
}

absl::Status ChangeRecorder::Record(const devmem::v1::JournalEntry& entry,
                                    bool durable) {
  if (journal_ == nullptr) return absl::OkStatus();
  absl::Status s = journal_->Record(entry, durable);
  return s.ok() ? s : Explained(s, durable);
}

devmem::v1::JournaledBinding BindingRecord(const BindingLease& b) {
  devmem::v1::JournaledBinding out;
  out.set_handle(b.handle);
  out.set_session(b.session);
  out.set_nic(b.nic);
  out.set_ifindex(b.ifindex);
  out.set_made(b.kernel != nullptr || b.kernel_id != 0);
  out.set_kernel_id(b.kernel_id);
  for (uint32_t q : b.queues) out.add_queues(q);
  out.set_tx(b.tx);
  if (b.rss_context) out.set_rss_context(*b.rss_context);
  out.set_anchor_dev(b.anchor_id.dev);
  out.set_anchor_inode(b.anchor_id.ino);
  out.set_anchor_netlink_port(b.anchor_id.netlink_port);
  out.set_reservation(b.reservation);
  return out;
}

devmem::v1::JournaledRule RuleRecord(absl::string_view nic, uint32_t ifindex,
                                     const RuleLease& r) {
  devmem::v1::JournaledRule out;
  out.set_id(r.journal_id);
  out.set_session(r.session);
  out.set_binding(r.binding);
  out.set_nic(nic.data(), nic.size());
  out.set_ifindex(ifindex);
  TupleToRecord(r.requested, out.mutable_requested());
  out.set_installed(r.installed.location != kRxClsLocAny);
  TupleToRecord(r.installed.match, out.mutable_match());
  out.set_queue(r.installed.queue);
  if (r.installed.rss_context) out.set_rss_context(*r.installed.rss_context);
  out.set_location(r.installed.location);
  return out;
}

void TupleToRecord(const FlowTuple& t, devmem::v1::JournaledTuple* out) {
  out->set_family(t.family);
  out->set_src_ip(t.src_ip);
  out->set_src_port(t.src_port);
  out->set_dst_ip(t.dst_ip);
  out->set_dst_port(t.dst_port);
}

FlowTuple TupleFromRecord(const devmem::v1::JournaledTuple& t) {
  FlowTuple out;
  out.family = t.family();
  out.src_ip = t.src_ip();
  out.src_port = static_cast<uint16_t>(t.src_port());
  out.dst_ip = t.dst_ip();
  out.dst_port = static_cast<uint16_t>(t.dst_port());
  return out;
}

bool SameRule(const FlowRule& k, const devmem::v1::JournaledRule& r) {
  if (k.match != TupleFromRecord(r.match())) return false;
  if (r.has_rss_context()) {
    return k.rss_context.has_value() && *k.rss_context == r.rss_context();
  }
  return !k.rss_context.has_value() && k.queue == r.queue();
}

}  // namespace devmem
