// devmemctl nic show and nic restore: NIC profiles.
#include "client/ctl/cli.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <iostream>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/reflection.h"
#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "client/libdevmem.h"
#include "kernel/errno_status.h"
#include "kernel/nic_control.h"
#include "kernel/unique_fd.h"
#include "proto/devmem/v1/devmem.pb.h"

namespace devmem {
namespace ctl {
namespace {

// ---------------------------------------------------------------------------
// nic show / nic restore
// ---------------------------------------------------------------------------

const char* ProfileStateName(v1::ProfileState state) {
  switch (state) {
    case v1::PROFILE_STATE_APPLIED:
      return "applied";
    case v1::PROFILE_STATE_NOT_CAPABLE:
      return "not devmem-capable";
    case v1::PROFILE_STATE_FAILED:
      return "failed";
    case v1::PROFILE_STATE_RESTORED:
      return "restored";
    case v1::PROFILE_STATE_UNMANAGED:
      return "unmanaged";
    case v1::PROFILE_STATE_PARTIAL:
      return "partial (header split only)";
    default:
      return "unspecified";
  }
}

const char* RssModeName(v1::RssMode mode) {
  switch (mode) {
    case v1::RSS_MODE_CONTEXT:
      return "context (one RSS context per binding)";
    case v1::RSS_MODE_EXCLUDE_POOL:
      return "exclude-pool (main table avoids the pool)";
    default:
      return "exclude-pool (default)";
  }
}

const char* SplitName(v1::TcpDataSplit split) {
  switch (split) {
    case v1::TCP_DATA_SPLIT_ENABLED:
      return "enabled";
    case v1::TCP_DATA_SPLIT_DISABLED:
      return "disabled";
    default:
      return "unknown (auto)";
  }
}

// "queues 0-5 (128 entries)": which queues the indirection table spreads
// over, not the table itself.
std::string RssSummary(const v1::NicSettings& s) {
  if (s.rss_indir().empty()) return "-";
  return absl::StrCat("queues ", QueueRanges(s.rss_indir()), " (",
                      s.rss_indir_size(), " entries)");
}

std::vector<std::vector<std::string>> SettingsRows(const v1::NicState& st) {
  const v1::NicSettings* cols[] = {&st.original(), &st.desired(), &st.actual()};
  std::vector<std::vector<std::string>> rows = {
      {"SETTING", "ORIGINAL", "DESIRED", "ACTUAL"},
      {"channels (c/rx/tx)"},
      {"tcp-data-split"},
      {"hds-thresh"},
      {"ntuple"},
      {"rss"}};
  for (const v1::NicSettings* s : cols) {
    std::string channels = "-";
    if (s->has_channels()) {
      const v1::Channels& c = s->channels();
      channels = absl::StrCat(Opt(c.has_combined_count(), c.combined_count()),
                              "/", Opt(c.has_rx_count(), c.rx_count()), "/",
                              Opt(c.has_tx_count(), c.tx_count()));
    }
    rows[1].push_back(channels);
    rows[2].push_back(s->has_tcp_data_split() ? SplitName(s->tcp_data_split())
                                              : "-");
    rows[3].push_back(s->has_hds_thresh() ? absl::StrCat(s->hds_thresh())
                                          : "-");
    rows[4].push_back(!s->has_ntuple() ? "-" : s->ntuple() ? "on" : "off");
    rows[5].push_back(RssSummary(*s));
  }
  return rows;
}

void PrintNicState(const v1::NicState& st) {
  absl::PrintF("%s: %s (ifindex %u, backend %s)\n", st.nic(),
               ProfileStateName(st.state()), st.ifindex(), Dash(st.backend()));
  if (!st.reason().empty()) absl::PrintF("  reason: %s\n", st.reason());
  if (!st.missing().empty()) {
    absl::PrintF("  missing:\n");
    for (const v1::Capability& cap : st.missing()) {
      absl::PrintF("    %s\n", CapabilityLine(cap));
    }
  }
  absl::PrintF("\n");
  PrintTable(SettingsRows(st), "  ");
  absl::PrintF("\n");
  std::string rules = absl::StrCat(st.rules());
  if (st.rule_quota() > 0) {
    absl::StrAppend(&rules, " (quota ", st.rule_quota(), ")");
  }
  PrintTable(
      {
          {"rss mode:", RssModeName(st.rss_mode())},
          {"pool queues:", QueueRanges(st.pool_queues())},
          {"free queues:", QueueRanges(st.free_queues())},
          {"bindings:", absl::StrCat(st.bindings())},
          {"rules:", rules},
          {"nic reports:",
           absl::StrCat(st.kernel_rules(), " rule(s), bound queues ",
                        QueueRanges(st.kernel_bound_queues()))},
          {"degraded:", st.degraded().empty() ? "no" : st.degraded()},
          {"record:", st.record_path().empty() ? "- (nothing recorded)"
                                               : st.record_path()},
      },
      "  ");
}

std::string NicStateHint(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kNotFound:
      return "devmemd manages only the NICs in its config's nic_profiles; "
             "`devmemctl nic show` lists them, `devmemctl nics` lists every "
             "NIC";
    case absl::StatusCode::kPermissionDenied:
      if (absl::StrContains(status.message(), "admin")) {
        return "restoring a NIC is an admin call: run as root, or ask the "
               "admin to add your uid to admin_uids in devmemd's config";
      }
      return HintFor(status);
    case absl::StatusCode::kFailedPrecondition:
      return "the kernel refused to put a setting back and the record is "
             "kept: see `devmemctl nic show` and devmemd's log, then retry";
    default:
      return HintFor(status);
  }
}

std::vector<std::string> NicNames(const std::vector<std::string>& args) {
  std::vector<std::string> names = args;
  for (absl::string_view name :
       absl::StrSplit(absl::GetFlag(FLAGS_nic), ',', absl::SkipEmpty())) {
    names.emplace_back(name);
  }
  return names;
}

int RunNicShow(const std::vector<std::string>& args) {
  const std::vector<std::string> names = NicNames(args);
  absl::StatusOr<std::unique_ptr<Session>> session = OpenSession();
  if (!session.ok()) return FailOpen("nic show", session.status());
  absl::StatusOr<v1::GetNicStateResponse> states =
      (*session)->GetNicState(names);
  if (!states.ok()) {
    return Fail("nic show", "GetNicState", states.status(),
                NicStateHint(states.status()));
  }
  if (absl::GetFlag(FLAGS_json)) {
    absl::PrintF("%s\n", ToJson(*states));
    return kExitOk;
  }
  if (states->nics().empty()) {
    absl::PrintF(
        "no NIC profiles: devmemd manages no NIC (add nic_profiles to its "
        "config)\n");
    return kExitOk;
  }
  bool first = true;
  for (const v1::NicState& st : states->nics()) {
    if (!first) absl::PrintF("\n");
    first = false;
    PrintNicState(st);
  }
  return kExitOk;
}

int RunNicRestore(const std::vector<std::string>& args) {
  const std::vector<std::string> names = NicNames(args);
  if (names.size() != 1) {
    return UsageError("nic restore", "name exactly one NIC to restore");
  }
  absl::StatusOr<std::unique_ptr<Session>> session = OpenSession();
  if (!session.ok()) return FailOpen("nic restore", session.status());
  absl::StatusOr<v1::RestoreNicResponse> restored =
      (*session)->RestoreNic(names[0]);
  if (!restored.ok()) {
    return Fail("nic restore", absl::StrCat("RestoreNic ", names[0]),
                restored.status(), NicStateHint(restored.status()));
  }
  if (absl::GetFlag(FLAGS_json)) {
    absl::PrintF("%s\n", ToJson(*restored));
    return kExitOk;
  }
  absl::PrintF("%s: released %u binding(s) and removed %u rule(s); state %s\n",
               names[0], restored->bindings_released(),
               restored->rules_removed(),
               ProfileStateName(restored->state().state()));
  absl::PrintF("\n");
  PrintNicState(restored->state());
  return kExitOk;
}

}  // namespace

std::vector<Command> NicCommands() {
  return {
      {"nic show",
       "[NIC...] [--nic=a,b]",
       "Show the NIC profiles: original, desired and actual settings.",
       "Show, per NIC devmemd manages (or the NICs named), the profile state "
       "(applied, not devmem-capable, failed, restored, unmanaged) and why, "
       "each missing capability with the kernel's errno and message, a table "
       "of the original (recorded), desired and actual channels, "
       "tcp-data-split, hds-thresh, ntuple and RSS spread, and the devmem "
       "queue pool, free queues, bindings, rules and quota, backend and the "
       "record's path.",
       {{"nic", "Comma-separated NIC names to show (default all)."}},
       /*takes_positional=*/true,
       RunNicShow},
      {"nic restore",
       "NIC",
       "Release a NIC's leases, put back its recorded settings (admin).",
       "Ask devmemd to release every binding and rule on NIC and restore the "
       "settings it recorded before its first change, then print what was "
       "released and the NIC's state. Admin only: uid 0 or admin_uids.",
       {{"nic", "The NIC to restore (or give it as the argument)."}},
       /*takes_positional=*/true,
       RunNicRestore},
  };
}

}  // namespace ctl
}  // namespace devmem
