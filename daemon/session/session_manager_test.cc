#include "daemon/session/session_manager.h"

#include <fcntl.h>
#include <unistd.h>

#include "daemon/base/testing/fake_clock.h"
#include "daemon/session/testing/session_test_client.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace devmem {
namespace {

using ::testing::HasSubstr;

using Pipe = TestPipe;

class SessionManagerTest : public ::testing::Test {
 protected:
  SessionManager::Options Opts() {
    SessionManager::Options o;
    o.ticket_ttl = absl::Seconds(10);
    o.max_tickets_per_session = 3;
    o.max_sessions = 4;
    return o;
  }
  FakeClock clock_;
  SessionManager mgr_{Opts(), &clock_};
  PeerCred alice_{100, 1000, 1000};
  PeerCred bob_{200, 2000, 2000};
};

TEST_F(SessionManagerTest, TokensAreUniqueHex) {
  auto a = mgr_.Open(alice_);
  auto b = mgr_.Open(alice_);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_NE(a->token, b->token);
  EXPECT_NE(a->id, b->id);
  EXPECT_EQ(a->token.size(), 32u);
  EXPECT_EQ(a->token.find_first_not_of("0123456789abcdef"), std::string::npos);
}

TEST_F(SessionManagerTest, AuthorizeChecksTokenAndUid) {
  auto a = mgr_.Open(alice_);
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(*mgr_.Authorize(a->token, alice_), a->id);
  EXPECT_EQ(mgr_.Authorize("", alice_).status().code(),
            absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(mgr_.Authorize("deadbeef", alice_).status().code(),
            absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(mgr_.Authorize(a->token, bob_).status().code(),
            absl::StatusCode::kPermissionDenied);
  mgr_.Close(a->id);
  EXPECT_EQ(mgr_.Authorize(a->token, alice_).status().code(),
            absl::StatusCode::kUnauthenticated);
}

TEST_F(SessionManagerTest, TicketIsSingleUse) {
  auto a = mgr_.Open(alice_);
  Pipe p;
  auto t = mgr_.IssueTicket(a->id, std::move(p.w));
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(mgr_.pending_tickets(), 1u);
  auto fd = mgr_.Redeem(a->id, *t);
  ASSERT_TRUE(fd.ok());
  EXPECT_TRUE(fd->valid());
  auto again = mgr_.Redeem(a->id, *t);
  EXPECT_EQ(again.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(mgr_.pending_tickets(), 0u);
}

TEST_F(SessionManagerTest, RedeemReportsTheKindTheTicketWasIssuedWith) {
  auto a = mgr_.Open(alice_);
  ASSERT_TRUE(a.ok());
  Pipe socket_like, anchor, unknown;
  auto t1 = mgr_.IssueTicket(a->id, std::move(socket_like.w), kFdKindSocket);
  auto t2 = mgr_.IssueAnchorTicket(a->id, 3, std::move(anchor.w));
  auto t3 = mgr_.IssueTicket(a->id, std::move(unknown.w));
  ASSERT_TRUE(t1.ok() && t2.ok() && t3.ok());
  const char* kind = "unset";
  ASSERT_TRUE(mgr_.Redeem(a->id, *t1, &kind).ok());
  EXPECT_STREQ(kind, kFdKindSocket);
  ASSERT_TRUE(mgr_.Redeem(a->id, *t2, &kind).ok());
  EXPECT_STREQ(kind, kFdKindAnchor);
  ASSERT_TRUE(mgr_.Redeem(a->id, *t3, &kind).ok());
  EXPECT_EQ(kind, nullptr) << "an unknown kind is left to the caller";
}

TEST_F(SessionManagerTest, MalformedTicketIsInvalidAndNotRepeated) {
  auto a = mgr_.Open(alice_);
  ASSERT_TRUE(a.ok());
  for (const std::string bad :
       {std::string(), std::string("nope"), std::string(31, 'a'),
        std::string(32, 'A'), std::string(33, 'a'), std::string(40000, 'z')}) {
    auto r = mgr_.Redeem(a->id, bad);
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_LT(r.status().message().size(), 200u);
  }
  EXPECT_TRUE(IsTicketFormat("0123456789abcdef0123456789abcdef"));
  EXPECT_FALSE(IsTicketFormat("0123456789abcdef0123456789abcdeg"));
}

TEST_F(SessionManagerTest, AnchorTicketIsTrackedWithdrawnAndHeld) {
  auto a = mgr_.Open(alice_);
  ASSERT_TRUE(a.ok());
  // Unredeemed, then withdrawn: devmemd's copy closes, the ticket is spent.
  Pipe first;
  auto t1 = mgr_.IssueAnchorTicket(a->id, 7, std::move(first.w));
  ASSERT_TRUE(t1.ok());
  EXPECT_FALSE(mgr_.AnchorHandedOut(a->id, 7));
  mgr_.WithdrawAnchor(a->id, 7);
  EXPECT_TRUE(first.WriterClosed());
  EXPECT_EQ(mgr_.pending_tickets(), 0u);
  EXPECT_EQ(mgr_.Redeem(a->id, *t1).status().code(),
            absl::StatusCode::kNotFound);
  // Redeemed: handed out until the binding goes.
  Pipe second;
  auto t2 = mgr_.IssueAnchorTicket(a->id, 8, std::move(second.w));
  ASSERT_TRUE(t2.ok());
  auto fd = mgr_.Redeem(a->id, *t2);
  ASSERT_TRUE(fd.ok());
  EXPECT_TRUE(mgr_.AnchorHandedOut(a->id, 8));
  EXPECT_FALSE(mgr_.AnchorHandedOut(a->id, 7));
  mgr_.WithdrawAnchor(a->id, 8);
  EXPECT_FALSE(mgr_.AnchorHandedOut(a->id, 8));
  // Returned after a restart: held, too. Other sessions see nothing.
  mgr_.NoteAnchorHeld(a->id, 9);
  EXPECT_TRUE(mgr_.AnchorHandedOut(a->id, 9));
  auto b = mgr_.Open(bob_);
  EXPECT_FALSE(mgr_.AnchorHandedOut(b->id, 9));
  // A plain ticket redeemed marks nothing.
  Pipe plain;
  auto t3 = mgr_.IssueTicket(a->id, std::move(plain.w));
  ASSERT_TRUE(mgr_.Redeem(a->id, *t3).ok());
  EXPECT_FALSE(mgr_.AnchorHandedOut(a->id, 0));
}

TEST_F(SessionManagerTest, ForeignTicketLooksUnknownAndStaysRedeemable) {
  auto a = mgr_.Open(alice_);
  auto b = mgr_.Open(bob_);
  Pipe p;
  auto t = mgr_.IssueTicket(a->id, std::move(p.w));
  ASSERT_TRUE(t.ok());
  auto stolen = mgr_.Redeem(b->id, *t);
  EXPECT_EQ(stolen.status().code(), absl::StatusCode::kNotFound);
  auto unknown = mgr_.Redeem(b->id, "00000000000000000000000000000000");
  EXPECT_EQ(unknown.status().code(), absl::StatusCode::kNotFound);
  EXPECT_FALSE(p.WriterClosed());
  EXPECT_TRUE(mgr_.Redeem(a->id, *t).ok());
}

TEST_F(SessionManagerTest, ExpiredTicketClosesFdAndSaysExpired) {
  auto a = mgr_.Open(alice_);
  Pipe p;
  auto t = mgr_.IssueTicket(a->id, std::move(p.w));
  clock_.Advance(absl::Seconds(9));
  EXPECT_EQ(mgr_.ExpireTickets(), 0u);
  EXPECT_FALSE(p.WriterClosed());
  clock_.Advance(absl::Seconds(2));
  EXPECT_EQ(mgr_.ExpireTickets(), 1u);
  EXPECT_TRUE(p.WriterClosed());
  auto r = mgr_.Redeem(a->id, *t);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_THAT(r.status().message(), HasSubstr("expired"));
}

TEST_F(SessionManagerTest, ExpiredOnRedeemBeforeReaper) {
  auto a = mgr_.Open(alice_);
  Pipe p;
  auto t = mgr_.IssueTicket(a->id, std::move(p.w));
  clock_.Advance(absl::Seconds(11));
  EXPECT_EQ(mgr_.Redeem(a->id, *t).status().code(),
            absl::StatusCode::kDeadlineExceeded);
  EXPECT_TRUE(p.WriterClosed());
}

TEST_F(SessionManagerTest, CloseReleasesEveryFd) {
  auto a = mgr_.Open(alice_);
  auto b = mgr_.Open(bob_);
  Pipe p1, p2, p3;
  ASSERT_TRUE(mgr_.IssueTicket(a->id, std::move(p1.w)).ok());
  ASSERT_TRUE(mgr_.IssueTicket(a->id, std::move(p2.w)).ok());
  ASSERT_TRUE(mgr_.IssueTicket(b->id, std::move(p3.w)).ok());
  mgr_.Close(a->id);
  EXPECT_TRUE(p1.WriterClosed());
  EXPECT_TRUE(p2.WriterClosed());
  EXPECT_FALSE(p3.WriterClosed());
  EXPECT_EQ(mgr_.session_count(), 1u);
  EXPECT_EQ(mgr_.pending_tickets(), 1u);
  mgr_.Close(a->id);  // idempotent
  EXPECT_EQ(mgr_.opened_total(), 2u) << "a count of opens, not of live ones";
}

TEST_F(SessionManagerTest, IssueOnClosedSessionClosesFd) {
  auto a = mgr_.Open(alice_);
  mgr_.Close(a->id);
  Pipe p;
  auto t = mgr_.IssueTicket(a->id, std::move(p.w));
  EXPECT_EQ(t.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_TRUE(p.WriterClosed());
}

TEST_F(SessionManagerTest, TicketQuota) {
  auto a = mgr_.Open(alice_);
  Pipe p[4];
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(mgr_.IssueTicket(a->id, std::move(p[i].w)).ok());
  }
  auto t = mgr_.IssueTicket(a->id, std::move(p[3].w));
  EXPECT_EQ(t.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(t.status().message(), HasSubstr("3"));
  EXPECT_TRUE(p[3].WriterClosed());
}

TEST_F(SessionManagerTest, SessionQuota) {
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(mgr_.Open(alice_).ok());
  EXPECT_EQ(mgr_.Open(alice_).status().code(),
            absl::StatusCode::kResourceExhausted);
}

TEST_F(SessionManagerTest, PerUidSessionQuota) {
  SessionManager::Options o = Opts();
  o.max_sessions = 10;
  o.max_sessions_per_uid = 2;
  SessionManager mgr(o, &clock_);
  auto a1 = mgr.Open(alice_);
  auto a2 = mgr.Open(alice_);
  ASSERT_TRUE(a1.ok() && a2.ok());
  auto a3 = mgr.Open(alice_);
  EXPECT_EQ(a3.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(a3.status().message(), HasSubstr("max_sessions_per_uid"));
  // Another user is not starved by alice.
  EXPECT_TRUE(mgr.Open(bob_).ok());
  mgr.Close(a1->id);
  EXPECT_TRUE(mgr.Open(alice_).ok());
}

TEST_F(SessionManagerTest, PerUidSocketQuotaIsReturnedWithTheSession) {
  SessionManager::Options o = Opts();
  o.max_sockets_per_uid = 3;
  SessionManager mgr(o, &clock_);
  auto a1 = mgr.Open(alice_);
  auto a2 = mgr.Open(alice_);
  auto b = mgr.Open(bob_);
  ASSERT_TRUE(a1.ok() && a2.ok() && b.ok());
  EXPECT_TRUE(mgr.ChargeSocket(a1->id).ok());
  EXPECT_TRUE(mgr.ChargeSocket(a1->id).ok());
  EXPECT_TRUE(mgr.ChargeSocket(a2->id).ok());
  absl::Status over = mgr.ChargeSocket(a2->id);
  EXPECT_EQ(over.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(over.message(), HasSubstr("uid 1000 has 3 sockets"));
  EXPECT_TRUE(mgr.ChargeSocket(b->id).ok());
  mgr.Close(a1->id);
  EXPECT_TRUE(mgr.ChargeSocket(a2->id).ok());
  EXPECT_EQ(mgr.ChargeSocket(999).code(), absl::StatusCode::kUnauthenticated);
}

TEST_F(SessionManagerTest, DetachedSessionIsResumedByItsOwnerOnly) {
  std::vector<uint64_t> closed;
  mgr_.SetCloseObserver([&](uint64_t id) { closed.push_back(id); });
  mgr_.AddDetached(77, "0123456789abcdef0123456789abcdef", alice_,
                   clock_.Now() + absl::Seconds(5));
  EXPECT_EQ(mgr_.detached_count(), 1u);
  EXPECT_EQ(mgr_.session_count(), 0u);
  // Not usable for gRPC until resumed.
  EXPECT_EQ(mgr_.Authorize("0123456789abcdef0123456789abcdef", alice_)
                .status()
                .code(),
            absl::StatusCode::kUnauthenticated);
  // New ids never collide with it.
  auto fresh_bob = mgr_.Open(bob_);
  ASSERT_TRUE(fresh_bob.ok());
  EXPECT_GT(fresh_bob->id, 77u);
  EXPECT_EQ(mgr_.Resume(fresh_bob->id, "0123456789abcdef0123456789abcdef", bob_)
                .status()
                .code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(mgr_.Resume(fresh_bob->id, "ffff", bob_).status().code(),
            absl::StatusCode::kNotFound);
  auto fresh = mgr_.Open(alice_);
  ASSERT_TRUE(fresh.ok());
  auto resumed =
      mgr_.Resume(fresh->id, "0123456789abcdef0123456789abcdef", alice_);
  ASSERT_TRUE(resumed.ok()) << resumed.status();
  EXPECT_EQ(*resumed, 77u);
  EXPECT_EQ(mgr_.detached_count(), 0u);
  // The fresh session is gone (it held nothing); the old token works again.
  EXPECT_EQ(mgr_.Authorize(fresh->token, alice_).status().code(),
            absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(*mgr_.Authorize("0123456789abcdef0123456789abcdef", alice_), 77u);
  // A resumed session cannot be resumed twice.
  auto again = mgr_.Open(alice_);
  EXPECT_EQ(mgr_.Resume(again->id, "0123456789abcdef0123456789abcdef", alice_)
                .status()
                .code(),
            absl::StatusCode::kNotFound);
  // Expiry never touches a resumed session.
  clock_.Advance(absl::Seconds(10));
  EXPECT_EQ(mgr_.ExpireDetached(), 0u);
  // The fresh session held nothing: it goes without a lease release.
  EXPECT_TRUE(closed.empty());
}

TEST_F(SessionManagerTest, DetachedSessionExpiresAfterGrace) {
  std::vector<uint64_t> closed;
  mgr_.SetCloseObserver([&](uint64_t id) { closed.push_back(id); });
  mgr_.AddDetached(5, "aaaa", alice_, clock_.Now() + absl::Seconds(5));
  mgr_.AddDetached(6, "bbbb", bob_, clock_.Now() + absl::Seconds(50));
  clock_.Advance(absl::Seconds(4));
  EXPECT_EQ(mgr_.ExpireDetached(), 0u);
  clock_.Advance(absl::Seconds(2));
  EXPECT_EQ(mgr_.ExpireDetached(), 1u);
  EXPECT_EQ(closed, std::vector<uint64_t>({5}));
  EXPECT_EQ(mgr_.detached_count(), 1u);
  auto fresh = mgr_.Open(alice_);
  EXPECT_EQ(mgr_.Resume(fresh->id, "aaaa", alice_).status().code(),
            absl::StatusCode::kNotFound);
}

TEST_F(SessionManagerTest, ResumeMustBeTheFirstRequest) {
  mgr_.AddDetached(9, "cccc", alice_, clock_.Now() + absl::Seconds(5));
  auto fresh = mgr_.Open(alice_);
  ASSERT_TRUE(mgr_.ChargeSocket(fresh->id).ok());
  EXPECT_EQ(mgr_.Resume(fresh->id, "cccc", alice_).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace devmem
