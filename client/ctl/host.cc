// devmemctl cordon, uncordon, drain and watch: whether this host takes new
// work, and what changes on it (admin; docs/FLEET.md).
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "client/ctl/cli.h"
#include "client/libdevmem.h"
#include "proto/devmem/v1/devmem.pb.h"

ABSL_FLAG(std::string, reason, "",
          "Why (required for cordon): operators and refused requests see it.");
ABSL_FLAG(absl::Duration, deadline, absl::Hours(1),
          "drain: give up and report what remains after this long.");
ABSL_FLAG(bool, release_at_deadline, false,
          "drain: at the deadline, release what remains (live bindings "
          "included) instead of only reporting it.");
ABSL_FLAG(uint64_t, since, 0,
          "watch: events after this revision (0: a snapshot first).");
ABSL_FLAG(int32_t, count, 0,
          "watch: stop after this many events (0: until interrupted). "
          "listen/connect: make this many sockets in batches (OpenSockets), "
          "report them and close them (see --hold); 0 or 1: one socket, "
          "used for data.");

namespace devmem {
namespace ctl {
namespace {

std::string CordonLine(const v1::CordonState& st) {
  if (!st.cordoned()) return "not cordoned";
  return absl::StrCat("cordoned: ", st.reason(), " (by ", st.by(), " at ",
                      absl::FormatTime("%Y-%m-%dT%H:%M:%SZ",
                                       absl::FromUnixMillis(st.since_unix_ms()),
                                       absl::UTCTimeZone()),
                      ")");
}

int RunCordon(const std::vector<std::string>&) {
  v1::CordonRequest req;
  req.set_reason(absl::GetFlag(FLAGS_reason));
  if (req.reason().empty()) {
    return UsageError("cordon", "--reason is required (say why)");
  }
  absl::StatusOr<std::unique_ptr<Session>> session = OpenSession();
  if (!session.ok()) return FailOpen("cordon", session.status());
  auto st = (*session)->Cordon(req);
  if (!st.ok()) return Fail("cordon", "Cordon", st.status());
  if (absl::GetFlag(FLAGS_json)) {
    absl::PrintF("%s\n", ToJson(*st));
  } else {
    absl::PrintF("%s\n", CordonLine(st->state()));
  }
  return kExitOk;
}

int RunUncordon(const std::vector<std::string>&) {
  absl::StatusOr<std::unique_ptr<Session>> session = OpenSession();
  if (!session.ok()) return FailOpen("uncordon", session.status());
  auto st = (*session)->Uncordon(v1::UncordonRequest());
  if (!st.ok()) return Fail("uncordon", "Uncordon", st.status());
  if (absl::GetFlag(FLAGS_json)) {
    absl::PrintF("%s\n", ToJson(*st));
  } else {
    absl::PrintF("%s\n", CordonLine(st->state()));
  }
  return kExitOk;
}

int RunDrain(const std::vector<std::string>&) {
  v1::DrainRequest req;
  req.set_reason(absl::GetFlag(FLAGS_reason));
  const absl::Duration deadline = absl::GetFlag(FLAGS_deadline);
  if (deadline < absl::Seconds(1)) {
    return UsageError("drain", "--deadline must be at least 1s");
  }
  req.set_deadline_s(static_cast<uint32_t>(absl::ToInt64Seconds(deadline)));
  req.set_release_at_deadline(absl::GetFlag(FLAGS_release_at_deadline));
  absl::StatusOr<std::unique_ptr<Session>> session = OpenSession();
  if (!session.ok()) return FailOpen("drain", session.status());
  v1::DrainProgress last;
  absl::Status s = (*session)->Drain(req, [&](const v1::DrainProgress& p) {
    last = p;
    if (absl::GetFlag(FLAGS_json)) {
      absl::PrintF("%s\n", ToJson(p));
    } else {
      absl::PrintF("%u reservation(s), %u binding(s) left%s\n",
                   p.reservations(), p.bindings(), p.done() ? ": drained" : "");
      if (p.deadline_passed()) {
        absl::PrintF(
            "deadline passed%s; remaining:\n",
            req.release_at_deadline()
                ? absl::StrCat(": released ", p.released_bindings(),
                               " binding(s) and ", p.released_reservations(),
                               " reservation(s)")
                : "");
        for (const std::string& r : p.remaining()) absl::PrintF("  %s\n", r);
      }
    }
    std::fflush(stdout);
    return true;
  });
  if (!s.ok()) return Fail("drain", "Drain", s);
  // Exit 0 only when the host is drained.
  return last.done() ? kExitOk : kExitFailure;
}

void PrintEvent(const v1::Event& e) {
  std::string what;
  if (e.has_reservation()) {
    what =
        absl::StrCat(e.reservation().id(), " job ", e.reservation().job_id());
  } else if (e.has_binding()) {
    what = absl::StrCat("binding ", e.binding().handle(), " on ",
                        e.binding().nic(), " (session ", e.session(), ")");
  } else if (e.has_cordon()) {
    what = CordonLine(e.cordon());
  } else {
    what = absl::StrCat(e.nic(), e.nic().empty() ? "" : " ", e.state(),
                        e.detail().empty() ? "" : ": ", e.detail());
  }
  absl::PrintF("%d %s %s\n", e.revision(), e.type(), what);
}

int RunWatch(const std::vector<std::string>&) {
  v1::WatchRequest req;
  req.set_since_revision(absl::GetFlag(FLAGS_since));
  const int32_t count = absl::GetFlag(FLAGS_count);
  absl::StatusOr<std::unique_ptr<Session>> session = OpenSession();
  if (!session.ok()) return FailOpen("watch", session.status());
  int32_t seen = 0;
  absl::Status s = (*session)->Watch(req, [&](const v1::WatchResponse& w) {
    if (absl::GetFlag(FLAGS_json)) {
      absl::PrintF("%s\n", ToJson(w));
    } else if (w.snapshot()) {
      absl::PrintF(
          "snapshot at revision %d%s: %d reservation(s), %u "
          "binding(s), %s\n",
          w.revision(),
          w.compacted_revision() != 0
              ? absl::StrCat(" (events before ", w.compacted_revision(),
                             " are gone)")
              : "",
          w.reservations_size(), w.bindings(), CordonLine(w.cordon()));
    } else {
      for (const v1::Event& e : w.events()) PrintEvent(e);
    }
    std::fflush(stdout);
    seen += w.events_size();
    return count == 0 || seen < count;
  });
  if (!s.ok()) return Fail("watch", "Watch", s);
  return kExitOk;
}

}  // namespace

std::vector<Command> HostCommands() {
  return {
      {"cordon",
       "--reason=WHY",
       "Refuse new reservations and unreserved bindings (admin).",
       "Cordon this host: new reservations and new bindings without a "
       "reservation token are refused with the reason; everything already "
       "admitted goes on. It survives a devmemd restart. Admin only.",
       {{"reason"}},
       /*takes_positional=*/false,
       RunCordon},
      {"uncordon",
       "",
       "Take new work again (admin).",
       "Lift the cordon. Idempotent. Admin only.",
       {},
       /*takes_positional=*/false,
       RunUncordon},
      {"drain",
       "[--reason=WHY] [--deadline=1h] [--release_at_deadline]",
       "Cordon, then wait until no reservation or binding is left (admin).",
       "Cordon the host and print progress until no live reservation or "
       "binding remains (exit 0) or --deadline passes (exit 1, with what "
       "remains). Live bindings are never broken unless "
       "--release_at_deadline. Admin only.",
       {{"reason", "Why (default \"drain\")."},
        {"deadline"},
        {"release_at_deadline"}},
       /*takes_positional=*/false,
       RunDrain},
      {"watch",
       "[--since=REVISION] [--count=N]",
       "Stream this host's events in revision order (admin).",
       "Print every change (reservations made, renewed, expired, released; "
       "bindings bound and released; cordon; NIC profile states; health) "
       "with its revision. Without --since, or when that revision is no "
       "longer kept, a snapshot comes first. Admin only.",
       {{"since"}, {"count"}},
       /*takes_positional=*/false,
       RunWatch},
  };
}

}  // namespace ctl
}  // namespace devmem
