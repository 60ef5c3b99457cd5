// gang_bench's stand-in hosts beyond the real ones: one process running
// --count devmem-agents (the real agent::Agent, mTLS 1.3 and all), each
// relaying over its own Unix socket to an in-process reservation book that
// answers devmem.v1 as devmemd would (one NIC "lo" with a pool of 1,024
// queues; Reserve is idempotent by job and request id) but keeps nothing on
// disk and drives no NIC. Prints one "agent HOST:PORT" line per agent, then
// "ready", and serves until SIGTERM or SIGINT.
#include <grpcpp/grpcpp.h>
#include <signal.h>

#include <cstdio>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "agent/agent.h"
#include "proto/devmem/v1/devmem.grpc.pb.h"

ABSL_FLAG(int, count, 192, "agents (each with its own book)");
ABSL_FLAG(std::string, pki, "", "directory of ca.pem, agent.{pem,key}");
ABSL_FLAG(std::string, dir, "", "where the books' Unix sockets go");
ABSL_FLAG(int, first, 0, "the first book's number (socket book-<n>.sock)");
ABSL_FLAG(std::string, launchers, "spiffe://fleet/launcher/a",
          "the identity allowed to reserve");

namespace {

constexpr uint32_t kPool = 1024;

// devmem.v1 as far as the agent's relay needs it, from memory.
class Book final : public devmem::v1::Devmem::Service {
 public:
  grpc::Status GetStatus(grpc::ServerContext*,
                         const devmem::v1::GetStatusRequest*,
                         devmem::v1::GetStatusResponse* resp) override {
    absl::MutexLock lock(&mu_);
    resp->set_version("book");
    resp->set_health("ready");
    resp->set_reservations_active(static_cast<uint32_t>(by_id_.size()));
    return grpc::Status::OK;
  }
  grpc::Status GetInventory(grpc::ServerContext*,
                            const devmem::v1::GetInventoryRequest*,
                            devmem::v1::GetInventoryResponse* resp) override {
    devmem::v1::Nic* nic = resp->add_nics();
    nic->set_name("lo");
    nic->set_devmem_capable(true);
    resp->set_backend("book");
    return grpc::Status::OK;
  }
  grpc::Status GetNicState(grpc::ServerContext*,
                           const devmem::v1::GetNicStateRequest*,
                           devmem::v1::GetNicStateResponse* resp) override {
    absl::MutexLock lock(&mu_);
    devmem::v1::NicState* st = resp->add_nics();
    st->set_nic("lo");
    st->set_state(devmem::v1::PROFILE_STATE_APPLIED);
    for (uint32_t q = 0; q < kPool; ++q) st->add_pool_queues(q);
    for (uint32_t q = used_; q < kPool; ++q) st->add_free_queues(q);
    return grpc::Status::OK;
  }
  grpc::Status Reserve(grpc::ServerContext*,
                       const devmem::v1::ReserveRequest* req,
                       devmem::v1::ReserveResponse* resp) override {
    absl::MutexLock lock(&mu_);
    const std::string key = absl::StrCat(req->job_id(), "/", req->request_id());
    if (auto it = by_key_.find(key); it != by_key_.end()) {
      *resp = by_id_[it->second];
      resp->set_existing(true);
      return grpc::Status::OK;
    }
    uint32_t want = 0;
    for (const auto& item : req->items()) want += item.queue_count();
    if (used_ + want > kPool) {
      return grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED, "book full");
    }
    devmem::v1::Reservation* r = resp->mutable_reservation();
    r->set_id(absl::StrCat("r-", ++next_));
    r->set_job_id(req->job_id());
    r->set_request_id(req->request_id());
    r->set_owner(req->owner());
    r->set_state(devmem::v1::RESERVATION_STATE_ACTIVE);
    r->set_expires_unix_ms(
        absl::ToUnixMillis(absl::Now() + absl::Seconds(req->ttl_s())));
    for (const auto& item : req->items()) {
      devmem::v1::ReservedItem* got = r->add_items();
      got->set_nic("lo");
      for (uint32_t i = 0; i < item.queue_count(); ++i) {
        got->add_queues(used_++);
      }
    }
    resp->set_token(absl::StrCat("dmr1-b00c0000-", next_));
    by_key_[key] = r->id();
    by_id_[r->id()] = *resp;
    return grpc::Status::OK;
  }
  grpc::Status Renew(grpc::ServerContext*, const devmem::v1::RenewRequest* req,
                     devmem::v1::RenewResponse* resp) override {
    absl::MutexLock lock(&mu_);
    auto it = by_id_.find(req->id());
    if (it == by_id_.end()) {
      return grpc::Status(grpc::StatusCode::NOT_FOUND, "no such reservation");
    }
    it->second.mutable_reservation()->set_expires_unix_ms(
        absl::ToUnixMillis(absl::Now() + absl::Seconds(req->ttl_s())));
    *resp->mutable_reservation() = it->second.reservation();
    return grpc::Status::OK;
  }
  grpc::Status ReleaseReservation(
      grpc::ServerContext*, const devmem::v1::ReleaseReservationRequest* req,
      devmem::v1::ReleaseReservationResponse* resp) override {
    absl::MutexLock lock(&mu_);
    for (auto it = by_id_.begin(); it != by_id_.end();) {
      const devmem::v1::Reservation& r = it->second.reservation();
      if (r.id() == req->id() || r.job_id() == req->job_id()) {
        resp->add_released(r.id());
        by_key_.erase(absl::StrCat(r.job_id(), "/", r.request_id()));
        it = by_id_.erase(it);
      } else {
        ++it;
      }
    }
    if (by_id_.empty()) used_ = 0;  // a bump allocator, reset when empty
    return grpc::Status::OK;
  }
  grpc::Status ListReservations(
      grpc::ServerContext*, const devmem::v1::ListReservationsRequest* req,
      devmem::v1::ListReservationsResponse* resp) override {
    absl::MutexLock lock(&mu_);
    for (const auto& [id, r] : by_id_) {
      if (req->job_id().empty() || r.reservation().job_id() == req->job_id()) {
        *resp->add_reservations() = r.reservation();
      }
    }
    return grpc::Status::OK;
  }

 private:
  absl::Mutex mu_;
  uint64_t next_ ABSL_GUARDED_BY(mu_) = 0;
  uint32_t used_ ABSL_GUARDED_BY(mu_) = 0;
  std::map<std::string, std::string> by_key_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, devmem::v1::ReserveResponse> by_id_
      ABSL_GUARDED_BY(mu_);
};

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  // As devmem-agent: a client gone mid-write is an error, not a signal.
  signal(SIGPIPE, SIG_IGN);
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGTERM);
  sigaddset(&stop, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);
  const std::string pki = absl::GetFlag(FLAGS_pki);
  std::vector<std::unique_ptr<Book>> books;
  std::vector<std::unique_ptr<grpc::Server>> servers;
  std::vector<std::unique_ptr<devmem::agent::Agent>> agents;
  for (int i = 0; i < absl::GetFlag(FLAGS_count); ++i) {
    const std::string sock =
        absl::StrCat(absl::GetFlag(FLAGS_dir), "/book-",
                     absl::GetFlag(FLAGS_first) + i, ".sock");
    books.push_back(std::make_unique<Book>());
    grpc::ServerBuilder builder;
    builder.AddListeningPort("unix:" + sock, grpc::InsecureServerCredentials());
    builder.RegisterService(books.back().get());
    servers.push_back(builder.BuildAndStart());
    devmem::agent::Agent::Options o;
    o.config.set_listen("127.0.0.1:0");
    o.config.mutable_tls()->set_ca_file(pki + "/ca.pem");
    o.config.mutable_tls()->set_cert_file(pki + "/agent.pem");
    o.config.mutable_tls()->set_key_file(pki + "/agent.key");
    o.config.set_devmemd_socket(sock);
    o.config.add_launchers(absl::GetFlag(FLAGS_launchers));
    o.config.set_handshake_timeout_ms(10000);
    o.config.set_max_connections(64);
    o.config.set_max_streams(8);
    o.config.set_stall_timeout_s(30);
    o.config.set_devmemd_timeout_ms(10000);
    o.config.set_max_request_bytes(65536);
    o.version = "book";
    auto agent = devmem::agent::Agent::Start(std::move(o));
    if (!agent.ok()) {
      std::fprintf(stderr, "book_agents: agent %d: %s\n", i,
                   std::string{agent.status().message()}.c_str());
      return 1;
    }
    std::printf("agent %s\n", (*agent)->address().c_str());
    agents.push_back(*std::move(agent));
  }
  std::printf("ready\n");
  std::fflush(stdout);
  int sig = 0;
  sigwait(&stop, &sig);
  for (auto& a : agents) a->Stop();
  for (auto& s : servers) s->Shutdown();
  return 0;
}
