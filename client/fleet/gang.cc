#include "client/fleet/gang.h"

#include <algorithm>

#include "absl/random/random.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace devmem::fleetctl {
namespace {

// A retry of this job with this request id: the items of the reservation
// the host already has, so Reserve answers it as a retry (the same
// reservation and token) instead of ALREADY_EXISTS.
bool ExistingItems(fleet::v1::Fleet::Stub* stub, const GangRequest& req,
                   fleet::v1::ReserveRequest* out) {
  fleet::v1::ListReservationsRequest list;
  list.set_job_id(req.job_id);
  devmem::v1::ListReservationsResponse have;
  grpc::Status s = CallWithin(req.host_deadline, [&](grpc::ClientContext* c) {
    return stub->ListReservations(c, list, &have);
  });
  if (!s.ok()) return false;
  for (const auto& r : have.reservations()) {
    if (r.request_id() != req.request_id ||
        r.state() != devmem::v1::RESERVATION_STATE_ACTIVE) {
      continue;
    }
    for (const auto& got : r.items()) {
      auto* item = out->add_items();
      if (got.gpu_pci_address().empty()) {
        item->set_nic(got.nic());
      } else {
        item->set_gpu_pci_address(got.gpu_pci_address());
      }
      item->set_queue_count(static_cast<uint32_t>(got.queues_size()));
    }
    return true;
  }
  return false;
}

// The items to ask `host` for: by GPU (from GetHost) or on one NIC; where
// no NIC has room, those of an earlier try of this request, if any.
bool ItemsFor(fleet::v1::Fleet::Stub* stub, const GangRequest& req,
              fleet::v1::ReserveRequest* out, std::string* error) {
  if (!req.per_gpu && !req.nic.empty()) {
    auto* item = out->add_items();
    item->set_nic(req.nic);
    item->set_queue_count(req.queues);
    return true;
  }
  fleet::v1::Host host;
  grpc::Status s = CallWithin(req.host_deadline, [&](grpc::ClientContext* c) {
    return stub->GetHost(c, {}, &host);
  });
  if (!s.ok()) {
    *error = absl::StrCat("GetHost: ", Describe(s));
    return false;
  }
  if (!host.devmemd_reachable()) {
    *error = absl::StrCat("devmemd is unreachable: ", host.devmemd_error());
    return false;
  }
  if (req.per_gpu) {
    if (host.gpus().empty()) {
      *error = "--per-gpu: the host reports no GPU";
      return false;
    }
    for (const auto& gpu : host.gpus()) {
      auto* item = out->add_items();
      item->set_gpu_pci_address(gpu.pci_address());
      item->set_queue_count(req.queues);
    }
    return true;
  }
  for (const auto& nic : host.nics()) {
    if (nic.pool_free() >= req.queues) {
      auto* item = out->add_items();
      item->set_nic(nic.name());
      item->set_queue_count(req.queues);
      return true;
    }
  }
  if (ExistingItems(stub, req, out)) return true;  // a retry holds them
  *error = absl::StrCat("RESOURCE_EXHAUSTED: no NIC has ", req.queues,
                        " free devmem queue(s)");
  return false;
}

bool IsContention(const std::string& error) {
  return absl::StartsWith(error, "RESOURCE_EXHAUSTED");
}

}  // namespace

std::vector<std::string> ReleaseAll(Connections* conns,
                                    const std::string& job_id,
                                    const std::string& request_id,
                                    absl::Duration host_deadline,
                                    size_t in_flight,
                                    std::vector<size_t>* released) {
  std::vector<std::string> errors(conns->size());
  if (released != nullptr) released->assign(conns->size(), 0);
  ParallelFor(conns->size(), in_flight, [&](size_t i) {
    fleet::v1::ReleaseRequest req;
    req.set_job_id(job_id);
    req.set_request_id(request_id);
    devmem::v1::ReleaseReservationResponse resp;
    grpc::Status s = CallWithin(host_deadline, [&](grpc::ClientContext* c) {
      return conns->stub(i)->Release(c, req, &resp);
    });
    if (!s.ok()) {
      errors[i] = Describe(s);
    } else if (released != nullptr) {
      (*released)[i] = static_cast<size_t>(resp.released_size());
    }
  });
  return errors;
}

GangResult ReserveAll(Connections* conns, const GangRequest& req,
                      const std::function<void(size_t, size_t)>& progress) {
  GangResult result;
  const uint32_t deadline_s = static_cast<uint32_t>(
      std::max<int64_t>(1, absl::ToInt64Seconds(req.host_deadline)));
  result.provisional_ttl_s =
      std::min(req.ttl_s, std::max<uint32_t>(30, 3 * deadline_s));
  absl::BitGen rng;
  for (int attempt = 1; attempt <= std::max(1, req.attempts); ++attempt) {
    result.attempts = attempt;
    result.hosts.assign(conns->size(), HostOutcome{});
    ParallelFor(
        conns->size(), req.in_flight,
        [&](size_t i) {
          HostOutcome& out = result.hosts[i];
          out.host = conns->host(i);
          fleet::v1::ReserveRequest ask;
          if (!ItemsFor(conns->stub(i), req, &ask, &out.error)) return;
          ask.set_job_id(req.job_id);
          ask.set_request_id(req.request_id);
          ask.set_ttl_s(result.provisional_ttl_s);
          auto reserve = [&](grpc::ClientContext* c) {
            return conns->stub(i)->Reserve(c, ask, &out.response);
          };
          grpc::Status s = CallWithin(req.host_deadline, reserve);
          // A retry whose earlier try got other items (another NIC): ask
          // for exactly those, so the host answers it as the same request.
          if (s.error_code() == grpc::StatusCode::ALREADY_EXISTS) {
            ask.clear_items();
            if (ExistingItems(conns->stub(i), req, &ask)) {
              s = CallWithin(req.host_deadline, reserve);
            }
          }
          if (!s.ok()) {
            out.error = Describe(s);
            return;
          }
          if (result.provisional_ttl_s < req.ttl_s) {
            fleet::v1::RenewRequest renew;
            renew.set_id(out.response.reservation().id());
            renew.set_ttl_s(req.ttl_s);
            devmem::v1::RenewResponse renewed;
            s = CallWithin(req.host_deadline, [&](grpc::ClientContext* c) {
              return conns->stub(i)->Renew(c, renew, &renewed);
            });
            if (!s.ok()) {
              out.error = absl::StrCat("Renew: ", Describe(s));
              return;
            }
            *out.response.mutable_reservation() = renewed.reservation();
          }
          out.reserved = true;
        },
        [&](size_t done) {
          if (progress) progress(done, conns->size());
        });
    const bool all =
        std::all_of(result.hosts.begin(), result.hosts.end(),
                    [](const HostOutcome& h) { return h.reserved; });
    if (all) {
      result.ok = true;
      return result;
    }
    // Roll back everywhere: a host that failed or timed out may still have
    // reserved after the launcher stopped waiting.
    std::vector<std::string> errors = ReleaseAll(
        conns, req.job_id, req.request_id, req.host_deadline, req.in_flight);
    bool contention_only = true;
    for (size_t i = 0; i < conns->size(); ++i) {
      HostOutcome& h = result.hosts[i];
      h.rolled_back = errors[i].empty();
      if (!h.reserved && !IsContention(h.error)) contention_only = false;
      if (!errors[i].empty()) {
        h.error = absl::StrCat(h.error.empty() ? "" : h.error + "; ",
                               "rollback Release failed (", errors[i],
                               "): the reservation expires within ",
                               result.provisional_ttl_s, " s");
      }
    }
    if (!contention_only || attempt == req.attempts) return result;
    const absl::Duration wait =
        req.backoff * (1 << (attempt - 1)) *
        absl::Uniform(rng, 0.5, 1.5);  // jitter: two launchers drift apart
    absl::SleepFor(wait);
  }
  return result;
}

}  // namespace devmem::fleetctl
