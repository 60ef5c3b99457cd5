#include "daemon/nic/profile_changer.h"

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "daemon/base/random_token.h"

namespace devmem {
namespace {

constexpr uint32_t kDefaultConfirmWithinS = 60;
constexpr uint32_t kMaxConfirmWithinS = 3600;

std::string When(int64_t unix_ms) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", absl::FromUnixMillis(unix_ms),
                          absl::UTCTimeZone());
}

}  // namespace

std::vector<std::string> ProfileChanger::Prepare(
    const devmem::v1::JournalState& state) {
  std::vector<std::string> lines;
  const int64_t now = absl::ToUnixMillis(d_.clock->Now());
  for (const auto& nic : d_.profiles->all()) {
    auto in_force = state.profiles_in_force().find(nic->name);
    if (in_force != state.profiles_in_force().end()) {
      nic->profile = in_force->second;
      lines.push_back(absl::StrCat(
          nic->name,
          ": the profile applied and confirmed (or turned back) at "
          "run time is in force, not the config's"));
    }
    auto pending = state.profile_changes().find(nic->name);
    if (pending == state.profile_changes().end()) continue;
    const devmem::v1::PendingProfileChange& c = pending->second;
    if (c.revert_at_unix_ms() <= now) {
      nic->profile = c.previous();
      (void)Finish(c, /*confirmed=*/false);
      lines.push_back(absl::StrCat(nic->name, ": profile change ",
                                   c.change_id(), " was not confirmed by ",
                                   When(c.revert_at_unix_ms()),
                                   "; the previous profile is put back"));
    } else {
      nic->profile = c.next();
      pending_[nic->name] = c;
      lines.push_back(absl::StrCat(nic->name, ": profile change ",
                                   c.change_id(),
                                   " is still waiting for confirmation; it "
                                   "reverts at ",
                                   When(c.revert_at_unix_ms())));
    }
  }
  return lines;
}

absl::StatusOr<devmem::v1::PendingProfileChange> ProfileChanger::Apply(
    const devmem::v1::ApplyProfileRequest& req, const std::string& by) {
  const std::string& name = req.profile().nic();
  NicRecord* nic = d_.profiles->Find(name);
  if (nic == nullptr) {
    return absl::NotFoundError(
        absl::StrCat("NIC \"", name,
                     "\" is not in nic_profiles; devmemd changes only the "
                     "NICs it manages (add a profile to the config first)"));
  }
  if (const auto* p = PendingFor(name); p != nullptr) {
    return absl::FailedPreconditionError(absl::StrCat(
        name, ": profile change ", p->change_id(),
        " is waiting for confirmation until ", When(p->revert_at_unix_ms()),
        "; confirm it or let it revert first"));
  }
  const uint32_t within = req.confirm_within_s() == 0 ? kDefaultConfirmWithinS
                                                      : req.confirm_within_s();
  if (within > kMaxConfirmWithinS) {
    return absl::InvalidArgumentError(absl::StrCat("confirm_within_s ", within,
                                                   " is out of range; use 1..",
                                                   kMaxConfirmWithinS));
  }
  const size_t bound = nic->pool.used_count();
  const size_t reserved = nic->pool.reserved_count();
  if (bound > 0 || reserved > 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        name, ": ", bound, " queue(s) bound and ", reserved,
        " reserved; a profile change would break them. Drain the host first "
        "(devmemctl drain, or devmem-fleet rollout --drain), then apply"));
  }
  devmem::v1::PendingProfileChange change;
  change.set_change_id(absl::StrCat("pc-", RandomHex128().substr(0, 16)));
  change.set_nic(name);
  *change.mutable_previous() = nic->profile;
  *change.mutable_next() = req.profile();
  change.set_revert_at_unix_ms(
      absl::ToUnixMillis(d_.clock->Now() + absl::Seconds(within)));
  change.set_by(by);
  devmem::v1::JournalEntry intent;
  *intent.mutable_profile_change() = change;
  absl::Status journaled = d_.recorder->Intent(intent);
  if (!journaled.ok()) return journaled;
  absl::Status applied = Switch(*nic, change.next());
  if (!applied.ok()) {
    absl::Status back = Switch(*nic, change.previous());
    (void)Finish(change, /*confirmed=*/false);
    return absl::FailedPreconditionError(absl::StrCat(
        name, ": the new profile did not apply (", applied.message(), "); ",
        back.ok() ? "the previous profile is back"
                  : absl::StrCat("putting the previous one back failed too: ",
                                 back.message())));
  }
  pending_[name] = change;
  Publish(name,
          absl::StrCat("profile change ", change.change_id(),
                       " applied; reverts at ",
                       When(change.revert_at_unix_ms()), " unless confirmed"));
  return change;
}

template <typename Req>
absl::StatusOr<
    std::map<std::string, devmem::v1::PendingProfileChange>::iterator>
ProfileChanger::FindPending(const Req& req) {
  auto it = pending_.find(req.nic());
  if (it == pending_.end() || it->second.change_id() != req.change_id()) {
    return absl::NotFoundError(absl::StrCat(
        req.nic(), ": no pending profile change ", req.change_id(),
        " (it was confirmed, or it reverted; GetNicState shows the NIC's "
        "profile and any pending change)"));
  }
  return it;
}

absl::Status ProfileChanger::Confirm(
    const devmem::v1::ConfirmProfileRequest& req) {
  auto it = FindPending(req);
  if (!it.ok()) return it.status();
  absl::Status s = Finish((*it)->second, /*confirmed=*/true);
  if (!s.ok()) return s;
  Publish(req.nic(),
          absl::StrCat("profile change ", req.change_id(), " confirmed"));
  pending_.erase(*it);
  return absl::OkStatus();
}

absl::Status ProfileChanger::Revert(
    const devmem::v1::RevertProfileRequest& req) {
  auto it = FindPending(req);
  if (!it.ok()) return it.status();
  absl::Status back = TurnBack((*it)->second, "reverted on request");
  if (!back.ok()) return back;
  pending_.erase(*it);
  return absl::OkStatus();
}

absl::Status ProfileChanger::TurnBack(
    const devmem::v1::PendingProfileChange& change, const std::string& why) {
  NicRecord* nic = d_.profiles->Find(change.nic());
  if (nic == nullptr) {
    return absl::NotFoundError(
        absl::StrCat(change.nic(), " is no longer a managed NIC"));
  }
  absl::Status back = Switch(*nic, change.previous());
  if (!back.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat(change.nic(), ": profile change ", change.change_id(),
                     " cannot be turned back yet (", back.message(), ")"));
  }
  (void)Finish(change, /*confirmed=*/false);
  Publish(change.nic(),
          absl::StrCat("profile change ", change.change_id(), " ", why));
  return absl::OkStatus();
}

std::vector<std::string> ProfileChanger::Expire() {
  std::vector<std::string> lines;
  const int64_t now = absl::ToUnixMillis(d_.clock->Now());
  for (auto it = pending_.begin(); it != pending_.end();) {
    const devmem::v1::PendingProfileChange& c = it->second;
    if (c.revert_at_unix_ms() > now || d_.profiles->Find(c.nic()) == nullptr) {
      ++it;
      continue;
    }
    absl::Status back = TurnBack(c, "not confirmed in time: reverted");
    if (!back.ok()) {
      lines.push_back(absl::StrCat(back.message(), "; trying again"));
      ++it;
      continue;
    }
    lines.push_back(absl::StrCat(c.nic(), ": profile change ", c.change_id(),
                                 " not confirmed in time; the previous "
                                 "profile is back"));
    it = pending_.erase(it);
  }
  return lines;
}

const devmem::v1::PendingProfileChange* ProfileChanger::PendingFor(
    const std::string& nic) const {
  auto it = pending_.find(nic);
  return it == pending_.end() ? nullptr : &it->second;
}

absl::Status ProfileChanger::Switch(NicRecord& nic,
                                    const devmem::v1::NicProfile& to) {
  if (nic.state == devmem::v1::PROFILE_STATE_APPLIED ||
      nic.state == devmem::v1::PROFILE_STATE_FAILED) {
    auto restored = d_.restorer->Restore(nic.name);
    if (!restored.ok()) return restored.status();
  }
  nic.profile = to;
  const std::string line = d_.profiles->Apply(nic);
  if (nic.state != devmem::v1::PROFILE_STATE_APPLIED) {
    return absl::FailedPreconditionError(nic.reason.empty() ? line
                                                            : nic.reason);
  }
  return absl::OkStatus();
}

absl::Status ProfileChanger::Finish(
    const devmem::v1::PendingProfileChange& change, bool confirmed) {
  devmem::v1::JournalEntry done;
  done.mutable_profile_change_done()->set_nic(change.nic());
  done.mutable_profile_change_done()->set_change_id(change.change_id());
  done.mutable_profile_change_done()->set_confirmed(confirmed);
  return d_.recorder->Intent(done);
}

void ProfileChanger::Publish(const std::string& nic,
                             const std::string& detail) const {
  if (d_.events == nullptr) return;
  devmem::v1::Event e;
  e.set_type("nic.profile");
  e.set_nic(nic);
  e.set_state(ProfileStateName(d_.profiles->Find(nic)->state));
  e.set_detail(detail);
  d_.events->Publish(std::move(e));
}

}  // namespace devmem
