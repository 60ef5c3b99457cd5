// devmemctl reserve, renew, release and reservations: queue reservations for
// jobs (admin; docs/FLEET.md). Scripts and Slurm's Prolog/Epilog use these.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "absl/flags/declare.h"
#include "absl/flags/flag.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "client/ctl/cli.h"
#include "client/libdevmem.h"
#include "proto/devmem/v1/devmem.pb.h"

ABSL_DECLARE_FLAG(int32_t, queues);
ABSL_FLAG(std::string, job, "",
          "The job's id (1 to 128 printable characters, no spaces).");
ABSL_FLAG(std::string, gpu, "",
          "Comma-separated GPU PCI addresses: queues on the applied NIC "
          "nearest each.");
ABSL_FLAG(absl::Duration, ttl, absl::Hours(1),
          "How long the reservation lasts unless renewed, e.g. 30m, 2h.");
ABSL_FLAG(std::string, request_id, "",
          "Idempotency key within the job: a retry with the same job and "
          "request id returns the same reservation and token.");
ABSL_FLAG(int64_t, redeemer_uid, -1,
          "Only this uid may bind with the token (-1: any allowed uid).");
ABSL_FLAG(std::string, owner, "",
          "On whose behalf (default uid:<your uid>); renew and release check "
          "it.");
ABSL_FLAG(std::string, id, "", "A reservation id (r-...).");
ABSL_FLAG(bool, any_owner, false,
          "Release reservations of any owner (an operator's override).");

namespace devmem {
namespace ctl {
namespace {

std::string Expiry(int64_t expires_unix_ms) {
  const absl::Time at = absl::FromUnixMillis(expires_unix_ms);
  const absl::Duration left = at - absl::Now();
  return absl::StrCat(
      absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", at, absl::UTCTimeZone()),
      left > absl::ZeroDuration()
          ? absl::StrCat(
                " (in ",
                absl::FormatDuration(absl::Trunc(left, absl::Seconds(1))), ")")
          : " (past)");
}

std::string Items(const v1::Reservation& r) {
  std::vector<std::string> parts;
  for (const v1::ReservedItem& item : r.items()) {
    std::string part =
        absl::StrCat(item.nic(), ":", QueueRanges(item.queues()));
    if (!item.gpu_pci_address().empty()) {
      absl::StrAppend(&part, " (GPU ", item.gpu_pci_address(), ")");
    }
    if (item.bound_queues_size() > 0) {
      absl::StrAppend(&part, " bound ", QueueRanges(item.bound_queues()));
    }
    parts.push_back(std::move(part));
  }
  return absl::StrJoin(parts, "; ");
}

const char* StateName(v1::ReservationState state) {
  switch (state) {
    case v1::RESERVATION_STATE_ACTIVE:
      return "active";
    case v1::RESERVATION_STATE_EXPIRED:
      return "expired";
    default:
      return "unknown";
  }
}

// --ttl in whole seconds (capped at what the field holds), or why not.
absl::StatusOr<uint32_t> TtlSeconds() {
  const absl::Duration ttl = absl::GetFlag(FLAGS_ttl);
  if (ttl < absl::Seconds(1)) {
    return absl::InvalidArgumentError("--ttl must be at least 1s");
  }
  return static_cast<uint32_t>(
      std::min<int64_t>(absl::ToInt64Seconds(ttl), UINT32_MAX));
}

// The request `reserve`'s flags describe, or a usage error message.
absl::StatusOr<v1::ReserveRequest> ReserveRequestFromFlags() {
  v1::ReserveRequest req;
  req.set_job_id(absl::GetFlag(FLAGS_job));
  if (req.job_id().empty()) {
    return absl::InvalidArgumentError("--job is required");
  }
  req.set_request_id(absl::GetFlag(FLAGS_request_id));
  req.set_owner(absl::GetFlag(FLAGS_owner));
  const int32_t queues = absl::GetFlag(FLAGS_queues);
  if (queues < 0) return absl::InvalidArgumentError("--queues must be >= 1");
  absl::StatusOr<uint32_t> ttl_s = TtlSeconds();
  if (!ttl_s.ok()) return ttl_s.status();
  req.set_ttl_s(*ttl_s);
  if (absl::GetFlag(FLAGS_redeemer_uid) >= 0) {
    req.set_redeemer_uid(
        static_cast<uint32_t>(absl::GetFlag(FLAGS_redeemer_uid)));
  }
  for (absl::string_view nic :
       absl::StrSplit(absl::GetFlag(FLAGS_nic), ',', absl::SkipEmpty())) {
    auto* item = req.add_items();
    item->set_nic(std::string{nic});
    item->set_queue_count(queues == 0 ? 1 : static_cast<uint32_t>(queues));
  }
  for (absl::string_view gpu :
       absl::StrSplit(absl::GetFlag(FLAGS_gpu), ',', absl::SkipEmpty())) {
    auto* item = req.add_items();
    item->set_gpu_pci_address(std::string{gpu});
    item->set_queue_count(queues == 0 ? 1 : static_cast<uint32_t>(queues));
  }
  if (req.items().empty()) {
    return absl::InvalidArgumentError("name --nic or --gpu (or both)");
  }
  return req;
}

int RunReserve(const std::vector<std::string>&) {
  absl::StatusOr<v1::ReserveRequest> req = ReserveRequestFromFlags();
  if (!req.ok()) {
    return UsageError("reserve", std::string{req.status().message()});
  }
  absl::StatusOr<std::unique_ptr<Session>> session = OpenSession();
  if (!session.ok()) return FailOpen("reserve", session.status());
  absl::StatusOr<v1::ReserveResponse> made = (*session)->Reserve(*req);
  if (!made.ok()) {
    return Fail("reserve", absl::StrCat("Reserve for job ", req->job_id()),
                made.status());
  }
  if (absl::GetFlag(FLAGS_json)) {
    absl::PrintF("%s\n", ToJson(*made));
    return kExitOk;
  }
  const v1::Reservation& r = made->reservation();
  absl::PrintF("reservation %s%s for job %s (owner %s): %s; expires %s\n",
               r.id(), made->existing() ? " (existing)" : "", r.job_id(),
               r.owner(), Items(r), Expiry(r.expires_unix_ms()));
  // Last, alone on its line: `export "$(devmemctl reserve ... | tail -1)"`.
  absl::PrintF("%s=%s\n", kReservationEnv, made->token());
  return kExitOk;
}

int RunRelease(const std::vector<std::string>& args) {
  v1::ReleaseReservationRequest req;
  req.set_id(args.empty() ? absl::GetFlag(FLAGS_id) : args[0]);
  req.set_job_id(absl::GetFlag(FLAGS_job));
  req.set_owner(absl::GetFlag(FLAGS_owner));
  req.set_any_owner(absl::GetFlag(FLAGS_any_owner));
  if (req.id().empty() == req.job_id().empty()) {
    return UsageError("release", "name a reservation id or --job (not both)");
  }
  absl::StatusOr<std::unique_ptr<Session>> session = OpenSession();
  if (!session.ok()) return FailOpen("release", session.status());
  auto released = (*session)->ReleaseReservation(req);
  if (!released.ok()) {
    return Fail("release", "ReleaseReservation", released.status());
  }
  if (absl::GetFlag(FLAGS_json)) {
    absl::PrintF("%s\n", ToJson(*released));
    return kExitOk;
  }
  absl::PrintF("released %d reservation(s)%s%s\n", released->released_size(),
               released->released().empty() ? "" : ": ",
               absl::StrJoin(released->released(), ", "));
  return kExitOk;
}

int RunRenew(const std::vector<std::string>& args) {
  v1::RenewRequest req;
  req.set_id(args.empty() ? absl::GetFlag(FLAGS_id) : args[0]);
  req.set_owner(absl::GetFlag(FLAGS_owner));
  req.set_any_owner(absl::GetFlag(FLAGS_any_owner));
  if (req.id().empty()) return UsageError("renew", "name the reservation id");
  absl::StatusOr<uint32_t> ttl_s = TtlSeconds();
  if (!ttl_s.ok()) {
    return UsageError("renew", std::string{ttl_s.status().message()});
  }
  req.set_ttl_s(*ttl_s);
  absl::StatusOr<std::unique_ptr<Session>> session = OpenSession();
  if (!session.ok()) return FailOpen("renew", session.status());
  auto renewed = (*session)->Renew(req);
  if (!renewed.ok()) {
    return Fail("renew", "Renew " + req.id(), renewed.status());
  }
  if (absl::GetFlag(FLAGS_json)) {
    absl::PrintF("%s\n", ToJson(*renewed));
    return kExitOk;
  }
  const v1::Reservation& r = renewed->reservation();
  absl::PrintF("reservation %s for job %s: %s; expires %s\n", r.id(),
               r.job_id(), Items(r), Expiry(r.expires_unix_ms()));
  return kExitOk;
}

int RunReservations(const std::vector<std::string>&) {
  v1::ListReservationsRequest req;
  req.set_job_id(absl::GetFlag(FLAGS_job));
  absl::StatusOr<std::unique_ptr<Session>> session = OpenSession();
  if (!session.ok()) return FailOpen("reservations", session.status());
  auto list = (*session)->ListReservations(req);
  if (!list.ok()) {
    return Fail("reservations", "ListReservations", list.status());
  }
  if (absl::GetFlag(FLAGS_json)) {
    absl::PrintF("%s\n", ToJson(*list));
    return kExitOk;
  }
  if (list->reservations().empty()) {
    absl::PrintF(
        "no reservations%s\n",
        req.job_id().empty() ? "" : absl::StrCat(" for job ", req.job_id()));
    return kExitOk;
  }
  std::vector<std::vector<std::string>> rows = {
      {"ID", "JOB", "OWNER", "STATE", "BINDINGS", "EXPIRES", "QUEUES"}};
  for (const v1::Reservation& r : list->reservations()) {
    rows.push_back({r.id(), r.job_id(), r.owner(), StateName(r.state()),
                    absl::StrCat(r.bindings()), Expiry(r.expires_unix_ms()),
                    Items(r)});
  }
  PrintTable(rows);
  return kExitOk;
}

}  // namespace

std::vector<Command> ReservationCommands() {
  return {
      {"reserve",
       "--job=JOB (--nic=NIC[,..] | --gpu=PCI[,..]) [--queues=N] [--ttl=1h]",
       "Reserve devmem queues for a job (admin); prints the token.",
       "Take N queues (--queues, default 1) of each NIC's devmem pool, or of "
       "the applied NIC nearest each GPU, for a job, until --ttl passes. All "
       "items or none. Prints the reservation and, on its last line, "
       "DEVMEM_RESERVATION=<token>: the job's workloads bind with it "
       "(libdevmem reads the variable) and nothing else can take those "
       "queues. Retrying with the same --job and --request_id returns the "
       "same reservation and token. Admin only: uid 0 or admin_uids.",
       {{"job"},
        {"nic", "Comma-separated NICs to reserve queues on."},
        {"gpu"},
        {"queues", "Queues per NIC or GPU; 0 means 1."},
        {"ttl"},
        {"request_id"},
        {"redeemer_uid"},
        {"owner"}},
       /*takes_positional=*/false,
       RunReserve},
      {"release",
       "(ID | --job=JOB) [--owner=O | --any_owner]",
       "End a reservation, or every reservation of a job (admin).",
       "Give a reservation's unbound queues back to the pool. Bindings made "
       "with it keep theirs until they are released. Unknown ids and jobs "
       "release nothing and succeed (safe to repeat). Reservations of "
       "another owner are refused unless --any_owner. Admin only.",
       {{"id"}, {"job"}, {"owner"}, {"any_owner"}},
       /*takes_positional=*/true,
       RunRelease},
      {"renew",
       "ID [--ttl=1h] [--owner=O | --any_owner]",
       "Move a reservation's deadline to now + --ttl (admin).",
       "Extend a live reservation: its deadline becomes now plus --ttl (at "
       "most max_reservation_ttl_s). An expired reservation cannot be "
       "renewed: reserve again. Another owner's is refused unless "
       "--any_owner. Admin only.",
       {{"id"}, {"ttl"}, {"owner"}, {"any_owner"}},
       /*takes_positional=*/true,
       RunRenew},
      {"reservations",
       "[--job=JOB]",
       "List reservations (admin); never shows tokens.",
       "List the reservations on this host (or one job's): id, job, owner, "
       "state (active, expired), live bindings, deadline and queues per NIC "
       "with the bound ones. Tokens are never shown. Admin only.",
       {{"job", "Only this job's reservations."}},
       /*takes_positional=*/false,
       RunReservations},
  };
}

}  // namespace ctl
}  // namespace devmem
