// devmem-fleet rollout: a NIC profile across hosts, commit-confirmed, canary
// first, then waves (client/fleet/rollout.h).
#include <cstdio>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "client/fleet/cli.h"
#include "client/fleet/rollout.h"
#include "daemon/base/text_proto.h"

ABSL_FLAG(std::string, profile, "",
          "rollout: a devmem.v1.NicProfile textproto file (e.g. nic: \"eth1\" "
          "pool_queues: 4)");
ABSL_FLAG(int32_t, canary, 1, "rollout: hosts in the first wave, alone");
ABSL_FLAG(absl::Duration, confirm_within, absl::Seconds(60),
          "rollout: each host reverts by itself unless confirmed within this "
          "(must cover --settle and the health check)");
ABSL_FLAG(absl::Duration, settle, absl::Seconds(5),
          "rollout: wait this long after applying before the health check");
ABSL_FLAG(bool, drain, false,
          "rollout: drain each host first (cordon, wait for its jobs to end, "
          "up to --deadline); uncordon it afterwards unless it was cordoned");

namespace devmem::fleetctl {
namespace {

std::string StepText(const fleetcli::HostResult& h) {
  const fleetcli::RolloutStep& s = h.rollout();
  std::string detail = h.ok() ? s.health() : h.error();
  if (s.drained()) {
    absl::StrAppend(&detail, s.uncordoned() ? " (drained, uncordoned)"
                                            : " (drained, still cordoned)");
  }
  return absl::StrCat(h.host(), "\t", s.wave(), "\t", s.outcome(), "\t",
                      s.change_id().empty() ? "-" : s.change_id(), "\t",
                      detail);
}

absl::StatusOr<ProfileRollout::Options> RolloutOptions() {
  ProfileRollout::Options o;
  const std::string path = absl::GetFlag(FLAGS_profile);
  if (path.empty()) {
    return absl::InvalidArgumentError(
        "--profile is required: a NicProfile textproto file");
  }
  std::string text;
  absl::Status s = ReadTextFile(path, &text);
  if (s.ok()) s = ParseTextProto(text, path, &o.profile);
  if (!s.ok()) return s;
  if (o.profile.nic().empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": nic is required (the NIC to change)"));
  }
  if (absl::GetFlag(FLAGS_canary) < 0 ||
      absl::GetFlag(FLAGS_max_unavailable) < 1) {
    return absl::InvalidArgumentError(
        "--canary must be 0 or more and --max_unavailable at least 1");
  }
  o.canary = static_cast<size_t>(absl::GetFlag(FLAGS_canary));
  o.max_unavailable = static_cast<size_t>(absl::GetFlag(FLAGS_max_unavailable));
  o.confirm_within = absl::GetFlag(FLAGS_confirm_within);
  o.settle = absl::GetFlag(FLAGS_settle);
  o.timeout = absl::GetFlag(FLAGS_timeout);
  o.drain = absl::GetFlag(FLAGS_drain);
  o.drain_deadline = absl::GetFlag(FLAGS_deadline);
  if (o.confirm_within < absl::Seconds(1) ||
      o.confirm_within > absl::Hours(1)) {
    return absl::InvalidArgumentError("--confirm_within must be 1s..1h");
  }
  if (o.settle < absl::ZeroDuration() ||
      o.confirm_within <= o.settle + o.timeout) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--confirm_within (", absl::FormatDuration(o.confirm_within),
        ") must exceed --settle plus --timeout (",
        absl::FormatDuration(o.settle + o.timeout),
        "), or hosts revert before the rollout can confirm them"));
  }
  return o;
}

}  // namespace

int Rollout(const std::vector<std::string>& args) {
  auto options = RolloutOptions();
  if (!options.ok()) return UsageError(std::string{options.status().message()});
  auto conns = OpenHosts(args);
  if (!conns.ok()) return UsageError(std::string{conns.status().message()});
  ProfileRollout rollout(conns->get(), *std::move(options));
  fleetcli::Report report =
      rollout.Run(absl::GetFlag(FLAGS_json) ? nullptr : stderr);
  std::vector<std::string> table = {"HOST\tWAVE\tOUTCOME\tCHANGE\tDETAIL"};
  for (const auto& h : report.hosts()) table.push_back(StepText(h));
  if (!report.stopped().empty()) {
    table.push_back(absl::StrCat("stopped: ", report.stopped()));
  }
  return PrintReport(report, table);
}

}  // namespace devmem::fleetctl
