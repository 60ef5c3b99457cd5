#include "daemon/session_manager.h"

#include <fcntl.h>
#include <unistd.h>

#include "daemon/testing/fake_clock.h"
#include "daemon/testing/session_test_client.h"
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

}  // namespace
}  // namespace devmem
