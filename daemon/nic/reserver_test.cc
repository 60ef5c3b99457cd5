// Reservations through NicManager (Reserver, ReservationTable, QueuePool and
// Binder together) on sim0 with a pool of 4 queues (4..7), a real journal,
// an injected clock, and "restarts" that read the journal back.
#include "daemon/nic/reserver.h"

#include <sys/mman.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "daemon/base/sha256.h"
#include "daemon/nic/nic_manager.h"
#include "daemon/nic/testing/sim0.h"
#include "daemon/nic/testing/sim0_host.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace devmem {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

constexpr char kLauncher[] = "spiffe://fleet/launcher/a";

UniqueFd Memfd() { return UniqueFd(memfd_create("res", MFD_CLOEXEC)); }

devmem::v1::ReserveRequest Ask(const std::string& job, uint32_t queues,
                               uint32_t ttl_s = 60,
                               const std::string& request_id = "") {
  devmem::v1::ReserveRequest req;
  req.set_job_id(job);
  req.set_request_id(request_id);
  req.set_ttl_s(ttl_s);
  req.set_owner(kLauncher);
  auto* item = req.add_items();
  item->set_nic("sim0");
  item->set_queue_count(queues);
  return req;
}

class ReserverTest : public Sim0Host {
 protected:
  void SetUp() override { SetUpHost(/*pool_queues=*/4); }

  size_t FreeQueues() { return State().free_queues_size(); }
};

TEST_F(ReserverTest, ReserveTakesQueuesAndOnlyTheTokenBindsThem) {
  auto made = manager_->Reserve(Ask("job-1", 2), "uid:0");
  ASSERT_TRUE(made.ok()) << made.status();
  const devmem::v1::Reservation& r = made->reservation();
  EXPECT_TRUE(absl::StartsWith(r.id(), "r-"));
  EXPECT_EQ(r.owner(), kLauncher);
  ASSERT_EQ(r.items_size(), 1);
  EXPECT_THAT(r.items(0).queues(), ElementsAre(4, 5));
  EXPECT_EQ(r.state(), devmem::v1::RESERVATION_STATE_ACTIVE);
  EXPECT_EQ(r.expires_unix_ms() - r.created_unix_ms(), 60000);
  EXPECT_EQ(FreeQueues(), 2u);
  // The journal has the token's hash, never the token.
  const devmem::v1::JournalState state = journal_->state();
  EXPECT_EQ(state.reservations().at(r.id()).token_sha256(),
            Sha256Hex(made->token()));
  EXPECT_EQ(state.DebugString().find(made->token()), std::string::npos);

  // Without the token a binding sees only the free queues.
  auto free_bind = manager_->BindRx(1, {"sim0", ""}, 3, Memfd());
  EXPECT_EQ(free_bind.status().code(), absl::StatusCode::kResourceExhausted);
  // With it, the reservation's queues, without naming the NIC.
  auto b1 = manager_->BindRx(1, {"", ""}, 1, Memfd(), made->token());
  ASSERT_TRUE(b1.ok()) << b1.status();
  EXPECT_THAT(b1->queues(), ElementsAre(4));
  auto b2 = manager_->BindRx(2, {"sim0", ""}, 1, Memfd(), made->token());
  ASSERT_TRUE(b2.ok()) << b2.status();
  EXPECT_THAT(b2->queues(), ElementsAre(5));
  auto b3 = manager_->BindRx(3, {"", ""}, 1, Memfd(), made->token());
  EXPECT_EQ(b3.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(b3.status().message(), HasSubstr("is bound already"));
  auto listed = manager_->ListReservations({});
  ASSERT_EQ(listed.reservations_size(), 1);
  EXPECT_EQ(listed.reservations(0).bindings(), 2u);
  EXPECT_THAT(listed.reservations(0).items(0).bound_queues(),
              ElementsAre(4, 5));

  // A binding's end gives its queue back to the reservation, not the pool.
  ASSERT_TRUE(manager_->ReleaseBinding(1, b1->handle()).ok());
  EXPECT_EQ(FreeQueues(), 2u);
  auto again = manager_->BindRx(3, {"", ""}, 1, Memfd(), made->token());
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_THAT(again->queues(), ElementsAre(4));
}

TEST_F(ReserverTest, RetryIsIdempotentAndADifferentAskIsRefused) {
  auto first = manager_->Reserve(Ask("job-2", 1, 60, "req-1"), "uid:0");
  ASSERT_TRUE(first.ok()) << first.status();
  auto retry = manager_->Reserve(Ask("job-2", 1, 60, "req-1"), "uid:0");
  ASSERT_TRUE(retry.ok()) << retry.status();
  EXPECT_TRUE(retry->existing());
  EXPECT_EQ(retry->reservation().id(), first->reservation().id());
  EXPECT_EQ(retry->token(), first->token());
  EXPECT_EQ(FreeQueues(), 3u);
  auto other = manager_->Reserve(Ask("job-2", 2, 60, "req-1"), "uid:0");
  EXPECT_EQ(other.status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_THAT(other.status().message(), HasSubstr("already made reservation " +
                                                  first->reservation().id()));
  EXPECT_EQ(FreeQueues(), 3u);
}

TEST_F(ReserverTest, BadRequestsSayWhatIsWrongAndTakeNothing) {
  auto code = [&](devmem::v1::ReserveRequest req) {
    return manager_->Reserve(req, "uid:0").status();
  };
  EXPECT_THAT(code(Ask("", 1)).message(), HasSubstr("job_id is required"));
  EXPECT_THAT(code(Ask(std::string(129, 'j'), 1)).message(),
              HasSubstr("1 to 128 printable"));
  EXPECT_THAT(code(Ask("job 1", 1)).message(),
              HasSubstr("without spaces; got \"job 1\""));
  EXPECT_THAT(code(Ask("job", 0)).message(),
              HasSubstr("queue_count 0 is out of range"));
  EXPECT_EQ(code(Ask("job", 5)).code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(code(Ask("job", 1, 0)).message(),
              HasSubstr("ttl_s 0 is out of range [1, 86400]"));
  EXPECT_EQ(code(Ask("job", 1, 86401)).code(),
            absl::StatusCode::kInvalidArgument);
  devmem::v1::ReserveRequest unknown = Ask("job", 1);
  unknown.mutable_items(0)->set_nic("eth7");
  EXPECT_EQ(code(unknown).code(), absl::StatusCode::kNotFound);
  // Two items, the second impossible: the first is given back.
  devmem::v1::ReserveRequest two = Ask("job", 2);
  auto* second = two.add_items();
  second->set_nic("sim0");
  second->set_queue_count(3);
  EXPECT_EQ(code(two).code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(FreeQueues(), 4u);
  EXPECT_TRUE(manager_->ListReservations({}).reservations().empty());
  EXPECT_TRUE(journal_->state().reservations().empty());
}

TEST_F(ReserverTest, ExpiryFreesUnboundQueuesAndKeepsLiveBindings) {
  auto made = manager_->Reserve(Ask("job-3", 2, 10), "uid:0");
  ASSERT_TRUE(made.ok()) << made.status();
  auto b = manager_->BindRx(1, {"", ""}, 1, Memfd(), made->token());
  ASSERT_TRUE(b.ok()) << b.status();
  // Renew keeps it past the first deadline.
  clock_.Advance(absl::Seconds(8));
  devmem::v1::RenewRequest renew;
  renew.set_id(made->reservation().id());
  renew.set_ttl_s(10);
  renew.set_owner(kLauncher);
  ASSERT_TRUE(manager_->Renew(renew, "uid:0").ok());
  clock_.Advance(absl::Seconds(8));
  EXPECT_THAT(manager_->ExpireReservations(), IsEmpty());
  EXPECT_EQ(FreeQueues(), 2u);

  clock_.Advance(absl::Seconds(3));
  EXPECT_THAT(manager_->ExpireReservations(),
              ElementsAre(made->reservation().id()));
  EXPECT_EQ(FreeQueues(), 3u);  // the unbound one came back
  EXPECT_EQ(sim_->GetCounters(kIfindex)->rx_bindings, 1u);  // still bound
  auto late = manager_->BindRx(2, {"", ""}, 1, Memfd(), made->token());
  EXPECT_EQ(late.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(late.status().message(), HasSubstr("expired at 2023-11-14T"));
  EXPECT_THAT(late.status().message(), HasSubstr("(1 s ago)"));
  EXPECT_EQ(manager_->Renew(renew, "uid:0").status().code(),
            absl::StatusCode::kFailedPrecondition);
  // The binding's queue goes to the pool when it ends.
  ASSERT_TRUE(manager_->ReleaseBinding(1, b->handle()).ok());
  EXPECT_EQ(FreeQueues(), 4u);
  // An hour on, the expired reservation is forgotten.
  clock_.Advance(absl::Hours(2));
  manager_->ExpireReservations();
  EXPECT_TRUE(manager_->ListReservations({}).reservations().empty());
  EXPECT_EQ(
      manager_->BindRx(2, {"", ""}, 1, Memfd(), made->token()).status().code(),
      absl::StatusCode::kNotFound);
}

TEST_F(ReserverTest, ReleaseByJobIsIdempotentAndChecksTheOwner) {
  ASSERT_TRUE(manager_->Reserve(Ask("job-4", 1), "uid:0").ok());
  ASSERT_TRUE(manager_->Reserve(Ask("job-4", 1), "uid:0").ok());
  devmem::v1::ReleaseReservationRequest rel;
  rel.set_job_id("job-4");
  rel.set_owner("spiffe://fleet/launcher/b");
  auto foreign = manager_->ReleaseReservation(rel, "uid:0");
  EXPECT_EQ(foreign.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(foreign.status().message(), HasSubstr(kLauncher));
  EXPECT_EQ(FreeQueues(), 2u);
  rel.set_owner(kLauncher);
  auto done = manager_->ReleaseReservation(rel, "uid:0");
  ASSERT_TRUE(done.ok()) << done.status();
  EXPECT_EQ(done->released_size(), 2);
  EXPECT_EQ(FreeQueues(), 4u);
  auto again = manager_->ReleaseReservation(rel, "uid:0");
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->released_size(), 0);
  EXPECT_TRUE(journal_->state().reservations().empty());
}

TEST_F(ReserverTest, ReleaseByJobAndRequestLeavesTheJobsOthers) {
  auto part1 = manager_->Reserve(Ask("job-5", 1, 60, "part-1"), "uid:0");
  auto part2 = manager_->Reserve(Ask("job-5", 1, 60, "part-2"), "uid:0");
  ASSERT_TRUE(part1.ok() && part2.ok());
  devmem::v1::ReleaseReservationRequest rel;
  rel.set_request_id("part-2");
  EXPECT_EQ(manager_->ReleaseReservation(rel, kLauncher).status().code(),
            absl::StatusCode::kInvalidArgument)
      << "a request_id without its job";
  rel.set_job_id("job-5");
  rel.set_owner(kLauncher);
  auto done = manager_->ReleaseReservation(rel, "uid:0");
  ASSERT_TRUE(done.ok()) << done.status();
  EXPECT_THAT(done->released(), ElementsAre(part2->reservation().id()));
  EXPECT_EQ(FreeQueues(), 3u) << "part-1 keeps its queue";
  rel.clear_request_id();
  done = manager_->ReleaseReservation(rel, "uid:0");
  ASSERT_TRUE(done.ok()) << done.status();
  EXPECT_THAT(done->released(), ElementsAre(part1->reservation().id()));
}

TEST_F(ReserverTest, TokensAreCheckedForHostUidAndForm) {
  devmem::v1::ReserveRequest req = Ask("job-5", 1);
  req.set_redeemer_uid(1001);  // session 1's owner
  auto made = manager_->Reserve(req, "uid:0");
  ASSERT_TRUE(made.ok()) << made.status();
  auto wrong_uid = manager_->BindRx(2, {"", ""}, 1, Memfd(), made->token());
  EXPECT_EQ(wrong_uid.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(wrong_uid.status().message(),
              HasSubstr("only by uid 1001; this session's uid is 1002"));
  EXPECT_EQ(manager_->BindRx(2, {"", ""}, 1, Memfd(), "nope").status().code(),
            absl::StatusCode::kInvalidArgument);
  std::string other_host = made->token();
  other_host.replace(5, 8, "00000000");
  auto foreign = manager_->BindRx(1, {"", ""}, 1, Memfd(), other_host);
  EXPECT_EQ(foreign.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(foreign.status().message(), HasSubstr("another devmemd"));
  std::string unknown = made->token();
  unknown.back() = unknown.back() == '0' ? '1' : '0';
  EXPECT_EQ(manager_->BindRx(1, {"", ""}, 1, Memfd(), unknown).status().code(),
            absl::StatusCode::kNotFound);
  ASSERT_TRUE(manager_->BindRx(1, {"", ""}, 1, Memfd(), made->token()).ok());
}

TEST_F(ReserverTest, RequireReservationRefusesBindingsWithoutAToken) {
  config_.set_require_reservation(true);
  auto refused = manager_->BindRx(1, {"sim0", ""}, 1, Memfd());
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(refused.status().message(), HasSubstr("devmemctl reserve"));
  auto made = manager_->Reserve(Ask("job-6", 1), "uid:0");
  ASSERT_TRUE(made.ok());
  EXPECT_TRUE(
      manager_->BindRx(1, {"sim0", ""}, 1, Memfd(), made->token()).ok());
}

TEST_F(ReserverTest, ReservationsAndTheirTokensSurviveARestart) {
  auto made = manager_->Reserve(Ask("job-7", 3, 30, "req-7"), "uid:0");
  ASSERT_TRUE(made.ok()) << made.status();
  auto b = manager_->BindRx(1, {"", ""}, 1, Memfd(), made->token());
  ASSERT_TRUE(b.ok()) << b.status();
  auto anchor = manager_->DupAnchor(1, b->handle());  // the workload's copy
  ASSERT_TRUE(anchor.ok()) << anchor.status();

  Boot();  // crash: nothing released
  auto report = manager_->Recover(journal_->state(), {}, nullptr);
  EXPECT_THAT(report,
              testing::Contains("1 reservation(s) kept from the journal"));
  auto listed = manager_->ListReservations({});
  ASSERT_EQ(listed.reservations_size(), 1);
  EXPECT_EQ(listed.reservations(0).expires_unix_ms(),
            made->reservation().expires_unix_ms());
  EXPECT_EQ(listed.reservations(0).bindings(), 1u);
  EXPECT_EQ(FreeQueues(), 1u);  // 4 bound, 5 and 6 reserved, 7 free
  auto next = manager_->BindRx(2, {"", ""}, 2, Memfd(), made->token());
  ASSERT_TRUE(next.ok()) << next.status();
  EXPECT_THAT(next->queues(), ElementsAre(5, 6));
  // The same request retried after the restart gets the same token.
  auto retry = manager_->Reserve(Ask("job-7", 3, 30, "req-7"), "uid:0");
  ASSERT_TRUE(retry.ok()) << retry.status();
  EXPECT_TRUE(retry->existing());
  EXPECT_EQ(retry->token(), made->token());
  clock_.Advance(absl::Seconds(31));
  Boot();
  report = manager_->Recover(journal_->state(), {}, nullptr);
  EXPECT_THAT(report.back(), HasSubstr("expired while devmemd was down"));
}

}  // namespace
}  // namespace devmem
