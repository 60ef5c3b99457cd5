#include "daemon/nic/reserver.h"

#include <algorithm>
#include <utility>

#include <google/protobuf/util/message_differencer.h>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "daemon/base/random_token.h"
#include "daemon/base/sha256.h"

namespace devmem {
namespace {

using devmem::v1::ReserveRequest;

constexpr char kTokenVersion[] = "dmr1";
constexpr size_t kMaxJobId = 128;
constexpr size_t kMaxOwner = 256;
constexpr size_t kMaxItems = 64;
constexpr uint32_t kMaxItemQueues = 64;
// How long an expired reservation is still known (its token then says
// "expired at ...", not "unknown"), once no binding uses it.
constexpr absl::Duration kExpiredRetention = absl::Hours(1);

// Printable ASCII without spaces: ids that go into logs, labels and paths.
bool Printable(absl::string_view s) {
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return c > 0x20 && c < 0x7f; });
}

absl::Status CheckName(absl::string_view what, absl::string_view s, size_t max,
                       bool required) {
  if (s.empty() && required) {
    return absl::InvalidArgumentError(absl::StrCat(what, " is required"));
  }
  if (s.size() > max || !Printable(s)) {
    return absl::InvalidArgumentError(absl::StrCat(
        what, " must be 1 to ", max,
        " printable ASCII characters without spaces; got ",
        s.size() > 64 ? absl::StrCat(s.size(), " bytes")
                      : absl::StrCat("\"", absl::CHexEscape(s), "\"")));
  }
  return absl::OkStatus();
}

int64_t UnixMs(absl::Time t) { return absl::ToUnixMillis(t); }

std::string When(absl::Time t, absl::Time now) {
  return absl::StrCat(
      absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", t, absl::UTCTimeZone()), " (",
      absl::ToInt64Seconds(now - t), " s ago)");
}

}  // namespace

Reserver::Reserver(Deps deps)
    : d_(std::move(deps)),
      prefix_(absl::StrCat(
          kTokenVersion, "-",
          Sha256Hex(absl::StrCat("host-tag:", d_.host_key)).substr(0, 8))) {}

std::string Reserver::TokenFor(const std::string& id) const {
  return absl::StrCat(
      prefix_, "-",
      HmacSha256Hex(d_.host_key, absl::StrCat("token:", id)).substr(0, 32));
}

absl::Status Reserver::CheckRequest(const ReserveRequest& req) const {
  absl::Status s = CheckName("job_id", req.job_id(), kMaxJobId, true);
  if (s.ok()) s = CheckName("request_id", req.request_id(), kMaxJobId, false);
  if (s.ok()) s = CheckName("owner", req.owner(), kMaxOwner, false);
  if (!s.ok()) return s;
  if (req.items().empty()) {
    return absl::InvalidArgumentError(
        "a reservation needs at least one item (queues on a NIC or for a "
        "GPU)");
  }
  if (req.items_size() > static_cast<int>(kMaxItems)) {
    return absl::InvalidArgumentError(absl::StrCat(
        req.items_size(), " items; a reservation holds at most ", kMaxItems));
  }
  for (int i = 0; i < req.items_size(); ++i) {
    const auto& item = req.items(i);
    if (item.nic().empty() == item.gpu_pci_address().empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "item ", i, ": name either nic or gpu_pci_address (exactly one)"));
    }
    if (item.queue_count() == 0 || item.queue_count() > kMaxItemQueues) {
      return absl::InvalidArgumentError(
          absl::StrCat("item ", i, ": queue_count ", item.queue_count(),
                       " is out of range [1, ", kMaxItemQueues, "]"));
    }
  }
  return CheckTtl(req.ttl_s(), "; renew a reservation to keep it longer");
}

absl::Status Reserver::CheckTtl(uint32_t ttl_s, absl::string_view hint) const {
  const uint32_t max_ttl = d_.config->max_reservation_ttl_s();
  if (ttl_s == 0 || ttl_s > max_ttl) {
    return absl::InvalidArgumentError(
        absl::StrCat("ttl_s ", ttl_s, " is out of range [1, ", max_ttl,
                     "] (max_reservation_ttl_s)", hint));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<ReservationRecord::Item>> Reserver::TakeItems(
    const std::string& id, const ReserveRequest& req) {
  std::vector<ReservationRecord::Item> items;
  std::vector<NicRecord*> touched;
  auto undo = [&] {
    for (NicRecord* nic : touched) nic->pool.Unreserve(id);
  };
  for (const auto& want : req.items()) {
    absl::StatusOr<NicRecord*> nic =
        d_.profiles->Resolve({want.nic(), want.gpu_pci_address()});
    if (nic.ok() && (*nic)->state != devmem::v1::PROFILE_STATE_APPLIED) {
      nic = absl::FailedPreconditionError(
          absl::StrCat((*nic)->name, " is not ready for devmem (profile ",
                       ProfileStateName((*nic)->state),
                       "); see `devmemctl nic show ", (*nic)->name, "`"));
    }
    absl::StatusOr<std::vector<uint32_t>> queues =
        nic.ok()
            ? (*nic)->pool.Reserve(id, want.queue_count(),
                                   d_.profiles->BusyQueues(**nic), (*nic)->name)
            : absl::StatusOr<std::vector<uint32_t>>(nic.status());
    if (!queues.ok()) {
      undo();
      return queues.status();
    }
    touched.push_back(*nic);
    items.push_back({(*nic)->name, want.gpu_pci_address(), *queues});
  }
  return items;
}

absl::StatusOr<devmem::v1::ReserveResponse> Reserver::Reserve(
    const ReserveRequest& req, const std::string& caller) {
  absl::Status valid = CheckRequest(req);
  if (!valid.ok()) return valid;
  ReserveRequest asked = req;
  if (asked.owner().empty()) asked.set_owner(caller);
  Expire();
  absl::Status open = d_.cordon != nullptr
                          ? d_.cordon->Check("new reservations")
                          : absl::OkStatus();
  if (!req.request_id().empty()) {
    if (ReservationRecord* old =
            d_.table->FindByKey(req.job_id(), req.request_id())) {
      if (!google::protobuf::util::MessageDifferencer::Equals(old->request,
                                                              asked)) {
        return absl::AlreadyExistsError(absl::StrCat(
            "job ", req.job_id(), " request ", req.request_id(),
            " already made reservation ", old->id,
            " with different items, ttl_s, redeemer_uid or owner; use a new "
            "request_id for a different reservation"));
      }
      devmem::v1::ReserveResponse resp;
      *resp.mutable_reservation() = Proto(*old);
      resp.set_token(TokenFor(old->id));
      resp.set_existing(true);
      return resp;
    }
  }
  if (!open.ok()) return open;
  if (d_.table->active_count() >= d_.config->max_reservations()) {
    return absl::ResourceExhaustedError(
        absl::StrCat(d_.table->active_count(),
                     " reservations are open, the most this "
                     "host allows (max_reservations); release some first"));
  }
  std::string id;
  do {
    id = absl::StrCat("r-", RandomHex128().substr(0, 16));
  } while (d_.table->Find(id) != nullptr);
  absl::StatusOr<std::vector<ReservationRecord::Item>> items =
      TakeItems(id, req);
  if (!items.ok()) return items.status();
  ReservationRecord r;
  r.id = id;
  r.job_id = req.job_id();
  r.request_id = req.request_id();
  r.owner = asked.owner();
  if (req.has_redeemer_uid()) r.redeemer_uid = req.redeemer_uid();
  r.items = *std::move(items);
  r.created = d_.clock->Now();
  r.expires = r.created + absl::Seconds(req.ttl_s());
  const std::string token = TokenFor(id);
  r.token_sha256 = Sha256Hex(token);
  r.request = asked;
  devmem::v1::JournalEntry put;
  *put.mutable_reservation_put() = Record(r);
  absl::Status recorded = d_.recorder->Intent(put);
  if (!recorded.ok()) {
    GiveBack(r);
    return recorded;
  }
  ReservationRecord& added = d_.table->Add(std::move(r));
  Publish("reservation.made", added);
  devmem::v1::ReserveResponse resp;
  *resp.mutable_reservation() = Proto(added);
  resp.set_token(token);
  return resp;
}

void Reserver::GiveBack(const ReservationRecord& r) {
  for (const auto& item : r.items) {
    if (NicRecord* nic = d_.profiles->Find(item.nic)) {
      nic->pool.Unreserve(r.id);
    }
  }
}

absl::Status Reserver::CheckOwner(const ReservationRecord& r,
                                  const std::string& owner, bool any_owner,
                                  absl::string_view what) const {
  if (any_owner || r.owner == owner) return absl::OkStatus();
  return absl::PermissionDeniedError(
      absl::StrCat(what, " of reservation ", r.id, " (job ", r.job_id,
                   ") refused: it "
                   "belongs to ",
                   r.owner, ", not ", owner,
                   "; only its owner or an operator may change it"));
}

absl::StatusOr<devmem::v1::Reservation> Reserver::Renew(
    const devmem::v1::RenewRequest& req, const std::string& caller) {
  Expire();
  ReservationRecord* r = d_.table->Find(req.id());
  if (r == nullptr) {
    return absl::NotFoundError(
        absl::StrCat("no reservation ", req.id(),
                     " on this host (released, expired over "
                     "an hour ago, or never made here)"));
  }
  const std::string owner = req.owner().empty() ? caller : req.owner();
  absl::Status mine = CheckOwner(*r, owner, req.any_owner(), "Renew");
  if (!mine.ok()) return mine;
  const absl::Time now = d_.clock->Now();
  if (r->expired) {
    return absl::FailedPreconditionError(absl::StrCat(
        "reservation ", r->id, " expired at ", When(r->expires, now),
        "; its queues went back to the pool: reserve again"));
  }
  absl::Status ttl = CheckTtl(req.ttl_s(), "");
  if (!ttl.ok()) return ttl;
  ReservationRecord renewed = *r;
  renewed.expires = now + absl::Seconds(req.ttl_s());
  devmem::v1::JournalEntry put;
  *put.mutable_reservation_put() = Record(renewed);
  absl::Status recorded = d_.recorder->Intent(put);
  if (!recorded.ok()) return recorded;
  r->expires = renewed.expires;
  Publish("reservation.renewed", *r);
  return Proto(*r);
}

absl::StatusOr<devmem::v1::ReleaseReservationResponse> Reserver::Release(
    const devmem::v1::ReleaseReservationRequest& req,
    const std::string& caller) {
  if (req.id().empty() == req.job_id().empty()) {
    return absl::InvalidArgumentError(
        "name either id (one reservation) or job_id (all of a job's)");
  }
  if (!req.request_id().empty() && req.job_id().empty()) {
    return absl::InvalidArgumentError(
        "request_id narrows a release by job_id; name the job_id too");
  }
  std::vector<std::string> ids = req.id().empty()
                                     ? d_.table->IdsOfJob(req.job_id())
                                     : std::vector<std::string>{req.id()};
  const std::string owner = req.owner().empty() ? caller : req.owner();
  std::vector<ReservationRecord*> found;
  for (const std::string& id : ids) {
    ReservationRecord* r = d_.table->Find(id);
    if (r == nullptr) continue;  // idempotent: already gone
    if (!req.request_id().empty() && r->request_id != req.request_id()) {
      continue;
    }
    absl::Status mine = CheckOwner(*r, owner, req.any_owner(), "Release");
    if (!mine.ok()) return mine;  // all of the job's or none
    found.push_back(r);
  }
  devmem::v1::ReleaseReservationResponse resp;
  for (ReservationRecord* r : found) {
    devmem::v1::JournalEntry del;
    del.set_reservation_del(r->id);
    absl::Status recorded = d_.recorder->Intent(del);
    if (!recorded.ok()) return recorded;
    GiveBack(*r);
    resp.add_released(r->id);
    Publish("reservation.released", *r);
    d_.table->Remove(r->id);
  }
  return resp;
}

devmem::v1::ListReservationsResponse Reserver::List(
    const devmem::v1::ListReservationsRequest& req) const {
  devmem::v1::ListReservationsResponse resp;
  for (const auto& [id, r] : d_.table->all()) {
    if (!req.job_id().empty() && r.job_id != req.job_id()) continue;
    *resp.add_reservations() = Proto(r);
  }
  return resp;
}

std::vector<std::string> Reserver::Expire() {
  const absl::Time now = d_.clock->Now();
  std::vector<std::string> expired;
  std::vector<std::string> forget;
  for (const auto& [id, r] : d_.table->all()) {
    if (!r.expired && r.expires <= now) expired.push_back(id);
    if (r.expired && r.bindings.empty() &&
        r.expires + kExpiredRetention <= now) {
      forget.push_back(id);
    }
  }
  for (const std::string& id : expired) {
    ReservationRecord* r = d_.table->Find(id);
    r->expired = true;
    GiveBack(*r);
    devmem::v1::JournalEntry put;
    *put.mutable_reservation_put() = Record(*r);
    // Lost on a crash, it is expired again at start: the deadline is kept.
    d_.recorder->Note(put);
    Publish("reservation.expired", *r);
  }
  for (const std::string& id : forget) {
    devmem::v1::JournalEntry del;
    del.set_reservation_del(id);
    d_.recorder->Note(del);
    d_.table->Remove(id);
  }
  return expired;
}

absl::StatusOr<ReservationRecord*> Reserver::Redeem(absl::string_view token,
                                                    uint32_t uid) {
  std::vector<absl::string_view> parts = absl::StrSplit(token, '-');
  if (parts.size() != 3 || parts[0] != kTokenVersion || parts[1].size() != 8 ||
      !IsTicketFormat(parts[2])) {
    return absl::InvalidArgumentError(
        "reservation_token is not a devmemd reservation token (they look "
        "like dmr1-<8 hex>-<32 hex>); pass the token Reserve returned, e.g. "
        "through DEVMEM_RESERVATION");
  }
  if (!absl::StartsWith(token, prefix_)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "this reservation token was issued by another devmemd (host tag ",
        parts[1], "; this host's is ", prefix_.substr(5),
        "); redeem it on the host the reservation was made on"));
  }
  Expire();
  ReservationRecord* r = d_.table->FindByTokenHash(Sha256Hex(token));
  if (r == nullptr) {
    return absl::NotFoundError(
        "no reservation on this host has this token (released, expired over "
        "an hour ago, or mistyped); ask the launcher for a new reservation");
  }
  if (r->expired) {
    return absl::FailedPreconditionError(absl::StrCat(
        "reservation ", r->id, " of job ", r->job_id, " expired at ",
        When(r->expires, d_.clock->Now()),
        "; its queues went back to the pool. Renew a reservation before it "
        "expires, or reserve again"));
  }
  if (r->redeemer_uid.has_value() && *r->redeemer_uid != uid) {
    return absl::PermissionDeniedError(
        absl::StrCat("reservation ", r->id, " may be redeemed only by uid ",
                     *r->redeemer_uid, "; this session's uid is ", uid));
  }
  return r;
}

absl::StatusOr<const ReservationRecord::Item*> Reserver::ItemFor(
    const ReservationRecord& r, const NicTarget& target) const {
  for (const auto& item : r.items) {
    NicRecord* nic = d_.profiles->Find(item.nic);
    const bool unbound = nic != nullptr && !nic->pool.ReservedFor(r.id).empty();
    if (!target.nic.empty() && item.nic == target.nic) return &item;
    if (!target.gpu_pci_address.empty() &&
        item.gpu_pci_address == target.gpu_pci_address) {
      return &item;
    }
    if (target.nic.empty() && target.gpu_pci_address.empty() && unbound) {
      return &item;
    }
  }
  std::vector<std::string> where;
  for (const auto& item : r.items) {
    where.push_back(
        item.gpu_pci_address.empty()
            ? item.nic
            : absl::StrCat(item.nic, " (GPU ", item.gpu_pci_address, ")"));
  }
  if (target.nic.empty() && target.gpu_pci_address.empty()) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "every queue of reservation ", r.id, " is bound already (",
        absl::StrJoin(where, ", "), "); release a binding or reserve more"));
  }
  return absl::FailedPreconditionError(absl::StrCat(
      "reservation ", r.id, " holds no queues ",
      target.nic.empty() ? absl::StrCat("for GPU ", target.gpu_pci_address)
                         : absl::StrCat("on ", target.nic),
      "; it has ", absl::StrJoin(where, ", "),
      " (leave nic and gpu_pci_address empty to use its own)"));
}

std::vector<std::string> Reserver::Recover(
    const devmem::v1::JournalState& state) {
  std::vector<std::string> lines;
  size_t kept = 0;
  for (const auto& [id, rec] : state.reservations()) {
    ReservationRecord r;
    r.id = rec.id();
    r.job_id = rec.job_id();
    r.request_id = rec.request_id();
    r.owner = rec.owner();
    if (rec.has_redeemer_uid()) r.redeemer_uid = rec.redeemer_uid();
    for (const auto& item : rec.items()) {
      r.items.push_back({item.nic(),
                         item.gpu_pci_address(),
                         {item.queues().begin(), item.queues().end()}});
    }
    r.created = absl::FromUnixMillis(rec.created_unix_ms());
    r.expires = absl::FromUnixMillis(rec.expires_unix_ms());
    r.token_sha256 = rec.token_sha256();
    r.request = rec.request();
    r.expired = rec.expired();
    for (const auto& [handle, b] : d_.leases->bindings()) {
      if (b.reservation == r.id) r.bindings.insert(handle);
    }
    if (!r.expired) {
      for (const auto& item : r.items) {
        NicRecord* nic = d_.profiles->Find(item.nic);
        if (nic == nullptr) continue;
        // Queues bound by recovered bindings are used already; the rest
        // are the reservation's again.
        nic->pool.ClaimReserved(r.id, item.queues);
      }
    }
    d_.table->Add(std::move(r));
    ++kept;
  }
  if (kept > 0) {
    lines.push_back(
        absl::StrCat(kept, " reservation(s) kept from the journal"));
  }
  const std::vector<std::string> expired = Expire();
  if (!expired.empty()) {
    lines.push_back(absl::StrCat(expired.size(),
                                 " of them expired while "
                                 "devmemd was down: ",
                                 absl::StrJoin(expired, ", ")));
  }
  return lines;
}

void Reserver::Publish(const char* type, const ReservationRecord& r) const {
  if (d_.events == nullptr) return;
  devmem::v1::Event e;
  e.set_type(type);
  *e.mutable_reservation() = Proto(r);
  d_.events->Publish(std::move(e));
}

namespace {

// What the journal's record and the API's view share (both messages name
// these fields alike, with ReservedItem items).
template <typename Message>
void FillShared(const ReservationRecord& r, Message* out) {
  out->set_id(r.id);
  out->set_job_id(r.job_id);
  out->set_request_id(r.request_id);
  out->set_owner(r.owner);
  if (r.redeemer_uid.has_value()) out->set_redeemer_uid(*r.redeemer_uid);
  for (const auto& item : r.items) {
    auto* i = out->add_items();
    i->set_nic(item.nic);
    i->set_gpu_pci_address(item.gpu_pci_address);
    for (uint32_t q : item.queues) i->add_queues(q);
  }
  out->set_created_unix_ms(UnixMs(r.created));
  out->set_expires_unix_ms(UnixMs(r.expires));
}

}  // namespace

devmem::v1::JournaledReservation Reserver::Record(
    const ReservationRecord& r) const {
  devmem::v1::JournaledReservation out;
  FillShared(r, &out);
  out.set_token_sha256(r.token_sha256);
  *out.mutable_request() = r.request;
  out.set_expired(r.expired);
  return out;
}

devmem::v1::Reservation Reserver::Proto(const ReservationRecord& r) const {
  devmem::v1::Reservation out;
  FillShared(r, &out);
  for (size_t n = 0; n < r.items.size(); ++n) {
    const ReservationRecord::Item& item = r.items[n];
    auto* i = out.mutable_items(static_cast<int>(n));
    for (uint64_t handle : r.bindings) {
      const BindingLease* b = d_.leases->Get(handle);
      if (b == nullptr || b->nic != item.nic) continue;
      for (uint32_t q : b->queues) {
        if (std::binary_search(item.queues.begin(), item.queues.end(), q)) {
          i->add_bound_queues(q);
        }
      }
    }
    std::sort(i->mutable_bound_queues()->begin(),
              i->mutable_bound_queues()->end());
  }
  out.set_state(r.expired ? devmem::v1::RESERVATION_STATE_EXPIRED
                          : devmem::v1::RESERVATION_STATE_ACTIVE);
  out.set_bindings(static_cast<uint32_t>(r.bindings.size()));
  return out;
}

}  // namespace devmem
