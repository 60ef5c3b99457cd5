// devmem-fleet reserve, renew and release: a job's reservations across the
// hosts, all or nothing (gang.h).
#include <csignal>
#include <cstdio>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "client/fleet/cli.h"
#include "client/fleet/gang.h"

ABSL_FLAG(uint32_t, queues, 1,
          "reserve: queues per host (per GPU with --per_gpu)");
ABSL_FLAG(bool, per_gpu, false,
          "reserve: --queues for each GPU of the host, on the NIC nearest it");
ABSL_FLAG(std::string, nic, "",
          "reserve: this NIC on every host (default: the first NIC with "
          "enough free queues)");
ABSL_FLAG(absl::Duration, ttl, absl::Hours(1),
          "reserve, renew: how long the reservations live (renew before)");
ABSL_FLAG(std::string, request_id, "devmem-fleet",
          "reserve: the idempotency key; a retry of the job with the same key "
          "gets the same reservations and tokens");
ABSL_FLAG(int32_t, attempts, 3,
          "reserve: tries when another launcher holds the queues (each rolls "
          "back, then backs off with jitter)");
ABSL_FLAG(absl::Duration, every, absl::ZeroDuration(),
          "renew: renew again at this interval until interrupted (0: once)");

namespace devmem::fleetctl {
namespace {

absl::Status CheckJob() {
  if (absl::GetFlag(FLAGS_job).empty()) {
    return absl::InvalidArgumentError("--job is required");
  }
  return absl::OkStatus();
}

absl::StatusOr<uint32_t> TtlSeconds() {
  const int64_t s = absl::ToInt64Seconds(absl::GetFlag(FLAGS_ttl));
  if (s < 1 || s > 31536000) {
    return absl::InvalidArgumentError(
        absl::StrCat("--ttl=", absl::FormatDuration(absl::GetFlag(FLAGS_ttl)),
                     " is out of range; use 1s..8760h"));
  }
  return static_cast<uint32_t>(s);
}

std::string ItemsText(const devmem::v1::Reservation& r) {
  std::vector<std::string> parts;
  for (const auto& item : r.items()) {
    parts.push_back(
        absl::StrCat(item.nic(), ":", absl::StrJoin(item.queues(), ",")));
  }
  return absl::StrJoin(parts, " ");
}

volatile std::sig_atomic_t g_interrupted = 0;

}  // namespace

int Reserve(const std::vector<std::string>& args) {
  absl::Status s = CheckJob();
  auto ttl = TtlSeconds();
  if (s.ok() && !ttl.ok()) s = ttl.status();
  if (s.ok() && absl::GetFlag(FLAGS_queues) == 0) {
    s = absl::InvalidArgumentError("--queues must be at least 1");
  }
  if (!s.ok()) return UsageError(std::string{s.message()});
  auto conns = OpenHosts(args);
  if (!conns.ok()) return UsageError(std::string{conns.status().message()});
  GangRequest req;
  req.job_id = absl::GetFlag(FLAGS_job);
  req.request_id = absl::GetFlag(FLAGS_request_id);
  req.queues = absl::GetFlag(FLAGS_queues);
  req.per_gpu = absl::GetFlag(FLAGS_per_gpu);
  req.nic = absl::GetFlag(FLAGS_nic);
  req.ttl_s = *ttl;
  req.host_deadline = absl::GetFlag(FLAGS_timeout);
  req.in_flight = InFlight();
  req.attempts = std::max(1, absl::GetFlag(FLAGS_attempts));
  Progress progress("reserve");
  GangResult got = ReserveAll(
      conns->get(), req,
      [&](size_t done, size_t total) { progress.Update(done, total); });
  progress.Finish();

  fleetcli::Report report;
  report.set_command("reserve");
  report.set_ok(got.ok);
  report.set_job_id(req.job_id);
  report.set_attempts(got.attempts);
  report.set_provisional_ttl_s(got.provisional_ttl_s);
  std::vector<std::string> table;
  for (const HostOutcome& h : got.hosts) {
    fleetcli::HostResult* out = report.add_hosts();
    out->set_host(h.host);
    out->set_ok(got.ok && h.reserved);
    out->set_rolled_back(h.rolled_back);
    if (h.reserved) *out->mutable_reservation() = h.response.reservation();
    if (got.ok) {
      out->set_token(h.response.token());
      table.push_back(
          absl::StrCat(h.host, "\t", ItemsText(h.response.reservation()),
                       "\tDEVMEM_RESERVATION=", h.response.token()));
    } else {
      out->set_error(h.error.empty()
                         ? (h.rolled_back ? "reserved, then rolled back"
                                          : "reserved; rollback unconfirmed")
                         : h.error);
    }
  }
  if (!got.ok) {
    table.push_back(absl::StrCat(
        "reserve: job ", req.job_id, " failed after ", got.attempts,
        " attempt(s); nothing is kept (what a host reserved was released, or "
        "expires within ",
        got.provisional_ttl_s, " s)"));
  }
  return PrintReport(report, table);
}

int Release(const std::vector<std::string>& args) {
  absl::Status s = CheckJob();
  if (!s.ok()) return UsageError(std::string{s.message()});
  auto conns = OpenHosts(args);
  if (!conns.ok()) return UsageError(std::string{conns.status().message()});
  std::vector<size_t> released;
  std::vector<std::string> errors =
      ReleaseAll(conns->get(), absl::GetFlag(FLAGS_job), /*request_id=*/"",
                 absl::GetFlag(FLAGS_timeout), InFlight(), &released);
  fleetcli::Report report;
  report.set_command("release");
  report.set_job_id(absl::GetFlag(FLAGS_job));
  report.set_ok(true);
  std::vector<std::string> table;
  for (size_t i = 0; i < errors.size(); ++i) {
    fleetcli::HostResult* out = report.add_hosts();
    out->set_host((*conns)->host(i));
    out->set_ok(errors[i].empty());
    out->set_error(errors[i]);
    if (!errors[i].empty()) report.set_ok(false);
    if (errors[i].empty()) {
      table.push_back(
          absl::StrCat((*conns)->host(i), "\treleased ", released[i]));
    }
  }
  return PrintReport(report, table);
}

int Renew(const std::vector<std::string>& args) {
  absl::Status s = CheckJob();
  auto ttl = TtlSeconds();
  if (s.ok() && !ttl.ok()) s = ttl.status();
  if (!s.ok()) return UsageError(std::string{s.message()});
  auto conns = OpenHosts(args);
  if (!conns.ok()) return UsageError(std::string{conns.status().message()});
  const absl::Duration every = absl::GetFlag(FLAGS_every);
  std::signal(SIGINT, [](int) { g_interrupted = 1; });
  std::signal(SIGTERM, [](int) { g_interrupted = 1; });
  int rc = kExitOk;
  do {
    fleetcli::Report report;
    report.set_command("renew");
    report.set_job_id(absl::GetFlag(FLAGS_job));
    report.set_ok(true);
    absl::Mutex mu;
    std::vector<std::string> table((*conns)->size());
    for (size_t i = 0; i < (*conns)->size(); ++i) {
      report.add_hosts()->set_host((*conns)->host(i));
    }
    ParallelFor((*conns)->size(), InFlight(), [&](size_t i) {
      auto* stub = (*conns)->stub(i);
      fleetcli::HostResult result;
      result.set_host((*conns)->host(i));
      fleet::v1::ListReservationsRequest list;
      list.set_job_id(absl::GetFlag(FLAGS_job));
      devmem::v1::ListReservationsResponse have;
      grpc::Status st =
          CallWithin(absl::GetFlag(FLAGS_timeout), [&](grpc::ClientContext* c) {
            return stub->ListReservations(c, list, &have);
          });
      std::string error = st.ok() ? "" : Describe(st);
      for (const auto& r : have.reservations()) {
        if (r.state() != devmem::v1::RESERVATION_STATE_ACTIVE) continue;
        fleet::v1::RenewRequest renew;
        renew.set_id(r.id());
        renew.set_ttl_s(*ttl);
        devmem::v1::RenewResponse done;
        st = CallWithin(absl::GetFlag(FLAGS_timeout),
                        [&](grpc::ClientContext* c) {
                          return stub->Renew(c, renew, &done);
                        });
        if (!st.ok()) {
          error = absl::StrCat(r.id(), ": ", Describe(st));
          break;
        }
        result.add_reservations(r.id());
      }
      if (error.empty() && result.reservations().empty()) {
        error = "NOT_FOUND: no active reservation of this job";
      }
      result.set_ok(error.empty());
      result.set_error(error);
      absl::MutexLock lock(&mu);
      table[i] =
          absl::StrCat(result.host(), "\trenewed ", result.reservations_size());
      *report.mutable_hosts(static_cast<int>(i)) = result;
      if (!error.empty()) report.set_ok(false);
    });
    table.erase(std::remove_if(table.begin(), table.end(),
                               [](const std::string& l) { return l.empty(); }),
                table.end());
    rc = PrintReport(report, table);
    std::fflush(stdout);
    const absl::Time until = absl::Now() + every;
    while (every > absl::ZeroDuration() && !g_interrupted &&
           absl::Now() < until) {
      absl::SleepFor(std::min(absl::Milliseconds(200), until - absl::Now()));
    }
  } while (every > absl::ZeroDuration() && !g_interrupted);
  return rc;
}

}  // namespace devmem::fleetctl
