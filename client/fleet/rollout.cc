#include "client/fleet/rollout.h"

#include <cstdio>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"

namespace devmem::fleetctl {
namespace {

void Fail(fleetcli::HostResult* r, const std::string& outcome,
          const std::string& error) {
  r->set_ok(false);
  r->mutable_rollout()->set_outcome(outcome);
  r->set_error(error);
}

}  // namespace

fleetcli::Report ProfileRollout::Run(FILE* log) {
  log_ = log;
  fleetcli::Report report;
  report.set_command("rollout");
  report.set_ok(true);
  for (size_t i = 0; i < conns_->size(); ++i) {
    fleetcli::HostResult* r = report.add_hosts();
    r->set_host(conns_->host(i));
    r->mutable_rollout()->set_outcome("skipped");
  }
  size_t first = 0;
  for (int wave = 0; first < conns_->size(); ++wave) {
    const size_t size = wave == 0 ? o_.canary : o_.max_unavailable;
    const size_t n = std::min(size, conns_->size() - first);
    if (!RunWave(wave, first, n, &report)) break;
    first += n;
  }
  for (size_t i = first; i < conns_->size(); ++i) {
    fleetcli::HostResult* r = report.mutable_hosts(static_cast<int>(i));
    if (r->rollout().outcome() == "skipped") {
      r->set_ok(false);
      r->set_error(absl::StrCat("skipped: ", report.stopped()));
    }
  }
  return report;
}

bool ProfileRollout::RunWave(int wave, size_t first, size_t n,
                             fleetcli::Report* report) {
  std::vector<fleetcli::HostResult> results(n);
  std::vector<char> cordoned_before(n, 0);
  ParallelFor(n, n, [&](size_t k) {
    results[k].set_host(conns_->host(first + k));
    results[k].mutable_rollout()->set_wave(wave);
    bool was = false;
    Apply(first + k, &results[k], &was);
    cordoned_before[k] = was ? 1 : 0;
  });
  bool any_applied = false;
  for (const auto& r : results) any_applied |= r.rollout().applied();
  if (any_applied) absl::SleepFor(o_.settle);
  ParallelFor(n, n, [&](size_t k) {
    fleetcli::HostResult& r = results[k];
    if (!r.rollout().applied()) return;
    const std::string health = CheckHealth(first + k);
    r.mutable_rollout()->set_health(health);
    Log(r, absl::StrCat("health after ", absl::FormatDuration(o_.settle), ": ",
                        health));
    if (health != "healthy") Fail(&r, "unhealthy", health);
  });
  std::string stopped;
  for (const auto& r : results) {
    if (!r.ok() && stopped.empty()) {
      stopped = absl::StrCat(wave == 0 ? "the canary " : "", r.host(),
                             " in wave ", wave, ": ", r.error());
    }
  }
  ParallelFor(n, n, [&](size_t k) {
    fleetcli::HostResult& r = results[k];
    if (stopped.empty()) {
      Confirm(first + k, &r);
    } else if (r.rollout().applied()) {
      Revert(first + k, &r);
    }
    if (r.rollout().drained() && cordoned_before[k] == 0) {
      Uncordon(first + k, &r);
    }
  });
  for (size_t k = 0; k < n; ++k) {
    if (!results[k].ok()) report->set_ok(false);
    if (stopped.empty() && !results[k].ok()) {
      stopped = absl::StrCat(results[k].host(), " in wave ", wave, ": ",
                             results[k].error());
    }
    *report->mutable_hosts(static_cast<int>(first + k)) = std::move(results[k]);
  }
  report->set_stopped(stopped);
  return stopped.empty();
}

void ProfileRollout::Apply(size_t i, fleetcli::HostResult* r,
                           bool* was_cordoned) {
  fleet::v1::Host before;
  grpc::Status s = CallWithin(o_.timeout, [&](grpc::ClientContext* c) {
    return conns_->stub(i)->GetHost(c, {}, &before);
  });
  if (!s.ok()) return Fail(r, "failed", Describe(s));
  if (!before.devmemd_reachable()) {
    return Fail(r, "failed",
                absl::StrCat("devmemd is unreachable: ", before.devmemd_error(),
                             "; not applied"));
  }
  *was_cordoned = before.cordon().cordoned();
  fleet::v1::ApplyProfileRequest req;
  *req.mutable_profile() = o_.profile;
  req.set_confirm_within_s(static_cast<uint32_t>(
      std::max<int64_t>(1, absl::ToInt64Seconds(o_.confirm_within))));
  req.set_drain_first(o_.drain);
  req.set_drain_deadline_s(static_cast<uint32_t>(
      std::max<int64_t>(1, absl::ToInt64Seconds(o_.drain_deadline))));
  if (o_.drain) {
    Log(*r, "draining");
    r->mutable_rollout()->set_drained(true);
  }
  const absl::Duration budget =
      o_.timeout + (o_.drain ? o_.drain_deadline : absl::ZeroDuration());
  devmem::v1::ApplyProfileResponse resp;
  // Not tried twice (the change calls are not idempotent); GetHost above
  // made the connection.
  s = conns_->stub(i)->ApplyProfile(ContextWithin(budget).get(), req, &resp);
  if (!s.ok()) {
    // devmemd applied nothing, or put the previous profile back itself. A
    // drain that cordoned the host still counts as drained.
    return Fail(r, "failed", absl::StrCat(Describe(s), "; not applied"));
  }
  r->set_ok(true);
  auto* step = r->mutable_rollout();
  step->set_applied(true);
  step->set_change_id(resp.change().change_id());
  step->set_revert_at_unix_ms(resp.change().revert_at_unix_ms());
  step->set_outcome("applied");
  Log(*r, absl::StrCat("applied ", resp.change().change_id(),
                       " (reverts by itself unless confirmed within ",
                       absl::FormatDuration(o_.confirm_within), ")"));
}

std::string ProfileRollout::CheckHealth(size_t i) {
  fleet::v1::Host host;
  grpc::Status s = CallWithin(o_.timeout, [&](grpc::ClientContext* c) {
    return conns_->stub(i)->GetHost(c, {}, &host);
  });
  if (!s.ok()) return absl::StrCat("no answer: ", Describe(s));
  if (!host.devmemd_reachable()) {
    return absl::StrCat("devmemd is unreachable: ", host.devmemd_error());
  }
  if (host.health() != "ready") {
    std::string why = absl::StrCat("host health is ", host.health());
    for (const auto& reason : host.health_reasons()) {
      absl::StrAppend(&why, "; ", reason);
    }
    return why;
  }
  for (const auto& nic : host.nics()) {
    if (nic.name() != o_.profile.nic()) continue;
    if (nic.profile_state() != "applied") {
      return absl::StrCat(nic.name(), " is ", nic.profile_state(), ": ",
                          nic.profile_reason());
    }
    if (!nic.degraded().empty()) {
      return absl::StrCat(nic.name(), " is degraded: ", nic.degraded());
    }
    return "healthy";
  }
  return absl::StrCat("the host does not list ", o_.profile.nic());
}

void ProfileRollout::Confirm(size_t i, fleetcli::HostResult* r) {
  fleet::v1::ConfirmProfileRequest req;
  req.set_nic(o_.profile.nic());
  req.set_change_id(r->rollout().change_id());
  devmem::v1::ConfirmProfileResponse resp;
  grpc::Status s = conns_->stub(i)->ConfirmProfile(
      ContextWithin(o_.timeout).get(), req, &resp);
  if (!s.ok()) {
    // Unconfirmed, devmemd reverts it by itself at the deadline.
    r->mutable_rollout()->set_outcome("reverting");
    r->set_ok(false);
    r->set_error(absl::StrCat("confirm failed: ", Describe(s),
                              "; devmemd reverts it by itself"));
    Log(*r, r->error());
    return;
  }
  r->mutable_rollout()->set_confirmed(true);
  r->mutable_rollout()->set_outcome("confirmed");
  Log(*r, "confirmed");
}

void ProfileRollout::Revert(size_t i, fleetcli::HostResult* r) {
  fleet::v1::RevertProfileRequest req;
  req.set_nic(o_.profile.nic());
  req.set_change_id(r->rollout().change_id());
  devmem::v1::RevertProfileResponse resp;
  grpc::Status s = conns_->stub(i)->RevertProfile(
      ContextWithin(o_.timeout).get(), req, &resp);
  r->set_ok(false);
  if (r->error().empty()) {
    r->set_error("reverted: the rollout stopped in this host's wave");
  }
  if (!s.ok()) {
    r->mutable_rollout()->set_outcome("reverting");
    Log(*r, absl::StrCat("revert failed (", Describe(s),
                         "); devmemd reverts it by itself by its deadline"));
    return;
  }
  r->mutable_rollout()->set_reverted(true);
  r->mutable_rollout()->set_outcome("reverted");
  Log(*r, "reverted: the previous profile is back");
}

void ProfileRollout::Uncordon(size_t i, fleetcli::HostResult* r) {
  devmem::v1::CordonResponse resp;
  grpc::Status s = CallWithin(o_.timeout, [&](grpc::ClientContext* c) {
    return conns_->stub(i)->Uncordon(c, {}, &resp);
  });
  r->mutable_rollout()->set_uncordoned(s.ok());
  Log(*r,
      s.ok() ? "uncordoned" : absl::StrCat("uncordon failed: ", Describe(s)));
}

void ProfileRollout::Log(const fleetcli::HostResult& r,
                         const std::string& what) {
  if (log_ == nullptr) return;
  absl::MutexLock lock(&log_mu_);
  std::fprintf(log_, "rollout %s (wave %d): %s\n", r.host().c_str(),
               r.rollout().wave(), what.c_str());
  std::fflush(log_);
}

}  // namespace devmem::fleetctl
