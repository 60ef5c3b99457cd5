#include "daemon/state/lease_journal.h"

#include <algorithm>

#include <utility>

#include "absl/strings/str_cat.h"

namespace devmem {

using devmem::v1::JournalEntry;
using devmem::v1::JournalState;

void FoldJournalEntry(JournalEntry&& e, JournalState* s) {
  if (!e.has_rule_put()) {
    FoldJournalEntry(static_cast<const JournalEntry&>(e), s);
    return;
  }
  // A rule, one per steered socket: taken over, not copied.
  const uint64_t id = e.rule_put().id();
  if (id + 1 > s->next_id()) s->set_next_id(id + 1);
  (*s->mutable_rules())[id].Swap(e.mutable_rule_put());
}

void FoldJournalEntry(const JournalEntry& e, JournalState* s) {
  auto bump = [s](uint64_t id) {
    if (id + 1 > s->next_id()) s->set_next_id(id + 1);
  };
  switch (e.op_case()) {
    case JournalEntry::kSessionPut:
      bump(e.session_put().id());
      (*s->mutable_sessions())[e.session_put().id()] = e.session_put();
      break;
    case JournalEntry::kSessionDel:
      s->mutable_sessions()->erase(e.session_del());
      break;
    case JournalEntry::kBindingPut:
      bump(e.binding_put().handle());
      (*s->mutable_bindings())[e.binding_put().handle()] = e.binding_put();
      break;
    case JournalEntry::kBindingDel:
      s->mutable_bindings()->erase(e.binding_del());
      break;
    case JournalEntry::kRulePut:
      bump(e.rule_put().id());
      (*s->mutable_rules())[e.rule_put().id()] = e.rule_put();
      break;
    case JournalEntry::kRuleDel:
      s->mutable_rules()->erase(e.rule_del());
      break;
    case JournalEntry::kProfilePut:
      (*s->mutable_profiles())[e.profile_put().nic()] = e.profile_put();
      break;
    case JournalEntry::kProfileDel:
      s->mutable_profiles()->erase(e.profile_del());
      break;
    case JournalEntry::kNextId:
      if (e.next_id() > s->next_id()) s->set_next_id(e.next_id());
      break;
    case JournalEntry::kReservationPut:
      (*s->mutable_reservations())[e.reservation_put().id()] =
          e.reservation_put();
      break;
    case JournalEntry::kReservationDel:
      s->mutable_reservations()->erase(e.reservation_del());
      break;
    case JournalEntry::kCordon:
      *s->mutable_cordon() = e.cordon();
      break;
    case JournalEntry::kProfileChange:
      (*s->mutable_profile_changes())[e.profile_change().nic()] =
          e.profile_change();
      break;
    case JournalEntry::kProfileChangeDone: {
      const auto& done = e.profile_change_done();
      auto it = s->profile_changes().find(done.nic());
      if (it == s->profile_changes().end() ||
          it->second.change_id() != done.change_id()) {
        break;  // not the pending one: nothing to finish
      }
      devmem::v1::NicProfile& in_force =
          (*s->mutable_profiles_in_force())[done.nic()];
      in_force = done.confirmed() ? it->second.next() : it->second.previous();
      in_force.set_nic(done.nic());  // the key a snapshot replays it under
      s->mutable_profile_changes()->erase(done.nic());
      break;
    }
    case JournalEntry::kProfileInForce:
      (*s->mutable_profiles_in_force())[e.profile_in_force().nic()] =
          e.profile_in_force();
      break;
    case JournalEntry::OP_NOT_SET:
      break;
  }
}

std::vector<JournalEntry> SnapshotEntries(const JournalState& s) {
  std::vector<JournalEntry> out;
  JournalEntry e;
  e.set_next_id(s.next_id());
  out.push_back(e);
  for (const auto& [nic, p] : s.profiles()) {
    *out.emplace_back().mutable_profile_put() = p;
  }
  for (const auto& [id, x] : s.sessions()) {
    *out.emplace_back().mutable_session_put() = x;
  }
  if (s.has_cordon()) *out.emplace_back().mutable_cordon() = s.cordon();
  for (const auto& [nic, p] : s.profiles_in_force()) {
    *out.emplace_back().mutable_profile_in_force() = p;
  }
  for (const auto& [nic, c] : s.profile_changes()) {
    *out.emplace_back().mutable_profile_change() = c;
  }
  for (const auto& [id, x] : s.reservations()) {
    *out.emplace_back().mutable_reservation_put() = x;
  }
  for (const auto& [id, x] : s.bindings()) {
    *out.emplace_back().mutable_binding_put() = x;
  }
  for (const auto& [id, x] : s.rules()) {
    *out.emplace_back().mutable_rule_put() = x;
  }
  return out;
}

absl::StatusOr<std::unique_ptr<LeaseJournal>> LeaseJournal::Open(
    Options options, std::vector<std::string>* report) {
  JournalScan scan;
  Journal::Options jo;
  jo.path = options.path;
  jo.sync = options.sync;
  jo.fdatasync = options.fdatasync;
  auto journal = Journal::Open(jo, &scan);
  if (!journal.ok()) return journal.status();
  JournalState state;
  size_t unreadable = 0;
  for (const std::string& rec : scan.records) {
    JournalEntry e;
    // A record with a good checksum that does not parse was written by a
    // newer devmemd or is damage the checksum missed: skip it, say so.
    if (!e.ParseFromString(rec)) {
      ++unreadable;
      continue;
    }
    FoldJournalEntry(e, &state);
  }
  if (report != nullptr) {
    report->push_back(
        absl::StrCat("journal ", options.path, ": ", scan.records.size(),
                     " record(s), ", state.sessions_size(), " session(s), ",
                     state.bindings_size(), " binding(s), ", state.rules_size(),
                     " rule(s), ", state.profiles_size(), " profile(s)"));
    if (!scan.tail_problem.empty()) {
      report->push_back(absl::StrCat(
          "journal ", options.path, ": cut off ", scan.dropped_bytes,
          " byte(s) of torn or corrupt tail (", scan.tail_problem,
          "); the kernel's state decides what those records described"));
    }
    if (unreadable > 0) {
      report->push_back(absl::StrCat("journal ", options.path, ": skipped ",
                                     unreadable, " unparsable record(s)"));
    }
  }
  return std::unique_ptr<LeaseJournal>(
      new LeaseJournal(std::move(options), *std::move(journal), state));
}

LeaseJournal::LeaseJournal(Options options, std::unique_ptr<Journal> journal,
                           JournalState state)
    : options_(std::move(options)),
      journal_(std::move(journal)),
      state_(std::move(state)) {}

absl::StatusOr<uint64_t> LeaseJournal::Write(const JournalEntry& entry) {
  return Append(entry, /*staged=*/false, nullptr);
}

absl::StatusOr<uint64_t> LeaseJournal::Stage(JournalEntry entry) {
  return Append(entry, /*staged=*/true, &entry);
}

absl::StatusOr<uint64_t> LeaseJournal::Append(const JournalEntry& entry,
                                              bool staged,
                                              JournalEntry* movable) {
  absl::MutexLock lock(&mu_);
  const std::string payload = entry.SerializeAsString();
  absl::StatusOr<uint64_t> seq =
      staged ? journal_->Stage(payload) : journal_->Write(payload);
  if (!seq.ok()) {
    NoteErrorLocked(seq.status());
    return seq;
  }
  if (movable != nullptr) {
    FoldJournalEntry(std::move(*movable), &state_);
  } else {
    FoldJournalEntry(entry, &state_);
  }
  MaybeCompactLocked();
  return seq;
}

void LeaseJournal::Flush() { journal_->Flush(); }

absl::Status LeaseJournal::WaitDurable(uint64_t seq) {
  absl::Status s = journal_->WaitDurable(seq);
  absl::MutexLock lock(&mu_);
  if (!s.ok()) {
    NoteErrorLocked(s);
    return s;
  }
  // Only new work (a durable record written after the failure) succeeding
  // proves the journal healthy again; an outcome record may still fit where
  // an intent did not.
  if (seq > error_seq_) error_.clear();
  return absl::OkStatus();
}

absl::Status LeaseJournal::Record(const JournalEntry& entry, bool durable) {
  absl::StatusOr<uint64_t> seq = Write(entry);
  if (!seq.ok()) return seq.status();
  return durable ? WaitDurable(*seq) : absl::OkStatus();
}

void LeaseJournal::NoteErrorLocked(const absl::Status& status) {
  error_ = absl::StrCat(status.message());
  error_seq_ = journal_->appends();
  ++errors_;
}

uint64_t LeaseJournal::errors() const {
  absl::MutexLock lock(&mu_);
  return errors_;
}

void LeaseJournal::MaybeCompactLocked() {
  const uint64_t size = journal_->size_bytes();
  if (size < std::max(options_.compact_bytes, next_check_bytes_)) return;
  const size_t live = state_.ByteSizeLong() + 64;
  if (size < 4 * live) {
    next_check_bytes_ = size + size / 4;
    return;
  }
  next_check_bytes_ = 0;
  std::vector<std::string> records;
  for (const JournalEntry& e : SnapshotEntries(state_)) {
    records.push_back(e.SerializeAsString());
  }
  // A failed compaction leaves the old journal in use; the next append tries
  // again. A good one covers every seq written so far (Journal::Rewrite), so
  // waiters on them return.
  (void)journal_->Rewrite(records);
}

JournalState LeaseJournal::state() const {
  absl::MutexLock lock(&mu_);
  return state_;
}

std::string LeaseJournal::error() const {
  absl::MutexLock lock(&mu_);
  return error_;
}

uint64_t LeaseJournal::size_bytes() const { return journal_->size_bytes(); }

void LeaseJournal::InjectWriteFailureForTest(int err, size_t partial, int n) {
  journal_->InjectWriteFailureForTest(err, partial, n);
}

}  // namespace devmem
