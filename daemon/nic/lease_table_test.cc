#include "daemon/nic/lease_table.h"

#include <sys/socket.h>

#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace devmem {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

LeaseTable::Quotas Small() {
  LeaseTable::Quotas q;
  q.bindings_per_session = 2;
  q.bindings_per_uid = 3;
  q.rules_per_session = 2;
  q.rules_per_uid = 3;
  return q;
}

BindingLease Lease(LeaseTable& t, uint64_t session, const std::string& nic) {
  BindingLease b;
  b.handle = t.NextId();
  b.session = session;
  b.nic = nic;
  b.queues = {7};
  return b;
}

FlowTuple Tuple(uint16_t port) {
  FlowTuple t;
  t.family = AF_INET;
  t.dst_ip = "10.0.0.1";
  t.dst_port = port;
  return t;
}

RuleLease Rule(uint64_t session, uint64_t binding, uint16_t port, uint64_t id) {
  RuleLease r;
  r.requested = Tuple(port);
  r.installed.match = r.requested;
  r.session = session;
  r.binding = binding;
  r.journal_id = id;
  return r;
}

TEST(LeaseTableTest, BindingsAreFoundOnlyByTheirSession) {
  LeaseTable t(Small());
  const uint64_t h = t.Add(Lease(t, 1, "eth1")).handle;
  auto found = t.Find(1, h);
  ASSERT_TRUE(found.ok());
  EXPECT_EQ((*found)->nic, "eth1");
  auto foreign = t.Find(2, h);
  auto unknown = t.Find(1, 99);
  EXPECT_EQ(foreign.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(foreign.status().message(),
            "no binding 1 in this session; BindRx returns the handle to use");
  EXPECT_EQ(unknown.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(t.Find(1, 0).status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(t.BindingsOf(1), ElementsAre(h));
  EXPECT_THAT(t.HandlesOn("eth1"), ElementsAre(h));
  EXPECT_THAT(t.HandlesOn("eth2"), IsEmpty());
  BindingLease gone = t.Remove(h);
  EXPECT_EQ(gone.handle, h);
  EXPECT_THAT(t.BindingsOf(1), IsEmpty());
  EXPECT_EQ(t.Get(h), nullptr);
}

TEST(LeaseTableTest, IdsAreOneSequenceThatRecoverySkipsAhead) {
  LeaseTable t(Small());
  EXPECT_EQ(t.NextId(), 1u);
  EXPECT_EQ(t.NextId(), 2u);
  t.SkipIdsBelow(40);
  EXPECT_EQ(t.NextId(), 40u);
  t.SkipIdsBelow(10);  // never backwards
  EXPECT_EQ(t.NextId(), 41u);
}

TEST(LeaseTableTest, RulesAreIndexedByTupleAndCountedForTheirSession) {
  LeaseTable t(Small());
  const uint64_t h = t.Add(Lease(t, 1, "eth1")).handle;
  t.AddRule("eth1", 1023, Rule(1, h, 5000, t.NextId()));
  ASSERT_NE(t.RuleFor("eth1", Tuple(5000)), nullptr);
  EXPECT_EQ(t.RuleFor("eth1", Tuple(5000))->binding, h);
  EXPECT_EQ(t.RuleFor("eth2", Tuple(5000)), nullptr);
  EXPECT_EQ(t.RuleFor("eth1", Tuple(5001)), nullptr);
  EXPECT_EQ(t.RuleAt("eth1", 1023)->requested, Tuple(5000));
  EXPECT_THAT(t.Get(h)->rule_locations, ElementsAre(1023));
  EXPECT_EQ(t.Get(h)->rules_made, 1u);
  EXPECT_EQ(t.RuleCount("eth1"), 1u);
  EXPECT_EQ(t.RuleCount(), 1u);
  EXPECT_TRUE(t.Holds(1));

  auto removed = t.RemoveRule("eth1", 1023);
  ASSERT_TRUE(removed.has_value());
  EXPECT_EQ(removed->requested, Tuple(5000));
  EXPECT_FALSE(t.RemoveRule("eth1", 1023).has_value());
  EXPECT_EQ(t.RuleFor("eth1", Tuple(5000)), nullptr);
  EXPECT_THAT(t.Get(h)->rule_locations, IsEmpty());
  EXPECT_EQ(t.RuleCount(), 0u);
  t.Remove(h);
  EXPECT_FALSE(t.Holds(1));
}

TEST(LeaseTableTest, BindingQuotasPerSessionAndPerUid) {
  LeaseTable t(Small());
  t.SetOwner(1, 1000);
  t.SetOwner(2, 1000);
  EXPECT_TRUE(t.CheckBindQuota(1, 1000).ok());
  t.Add(Lease(t, 1, "eth1"));
  t.Add(Lease(t, 1, "eth1"));
  absl::Status session = t.CheckBindQuota(1, 1000);
  EXPECT_EQ(session.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(session.message(),
            "this session holds 2 of 2 bindings (max_bindings_per_session); "
            "release one first");
  t.Add(Lease(t, 2, "eth1"));
  absl::Status uid = t.CheckBindQuota(2, 1000);
  EXPECT_EQ(uid.message(),
            "uid 1000 holds 3 of 3 bindings over all its sessions "
            "(max_bindings_per_uid); release one first");
  // Another uid is not affected.
  EXPECT_TRUE(t.CheckBindQuota(3, 2000).ok());
}

TEST(LeaseTableTest, RuleQuotasPerSessionAndPerUid) {
  LeaseTable t(Small());
  t.SetOwner(1, 1000);
  t.SetOwner(2, 1000);
  const uint64_t a = t.Add(Lease(t, 1, "eth1")).handle;
  const uint64_t b = t.Add(Lease(t, 2, "eth1")).handle;
  t.AddRule("eth1", 1, Rule(1, a, 1, t.NextId()));
  t.AddRule("eth1", 2, Rule(1, a, 2, t.NextId()));
  EXPECT_EQ(t.CheckRuleQuota(1).message(),
            "this session holds 2 of 2 steering rules (max_rules_per_session); "
            "close sockets' leases or release a binding");
  t.AddRule("eth1", 3, Rule(2, b, 3, t.NextId()));
  EXPECT_EQ(t.CheckRuleQuota(2).message(),
            "uid 1000 holds 3 of 3 steering rules over all its sessions "
            "(max_rules_per_uid)");
  EXPECT_TRUE(t.CheckRuleQuota(7).ok());  // a session with nothing yet
}

// The per-uid totals are kept as leases come and go (not summed over every
// session at each check): each way a lease leaves frees its uid's quota.
TEST(LeaseTableTest, UidTotalsFollowEveryChange) {
  LeaseTable t(Small());
  t.SetOwner(1, 1000);
  t.SetOwner(2, 1000);
  const uint64_t a = t.Add(Lease(t, 1, "eth1")).handle;
  const uint64_t b = t.Add(Lease(t, 2, "eth1")).handle;
  const uint64_t c = t.Add(Lease(t, 2, "eth1")).handle;
  EXPECT_EQ(t.CheckBindQuota(3, 1000).code(),
            absl::StatusCode::kResourceExhausted);
  t.Remove(c);  // a binding released
  EXPECT_TRUE(t.CheckBindQuota(3, 1000).ok());

  t.AddRule("eth1", 1, Rule(1, a, 1, t.NextId()));
  t.AddRule("eth1", 2, Rule(2, b, 2, t.NextId()));
  t.AddRule("eth1", 3, Rule(2, b, 3, t.NextId()));
  t.SetOwner(3, 1000);
  EXPECT_EQ(t.CheckRuleQuota(3).code(), absl::StatusCode::kResourceExhausted);
  ASSERT_TRUE(t.RemoveRule("eth1", 3).has_value());  // a rule removed
  EXPECT_TRUE(t.CheckRuleQuota(3).ok());

  // Session 1's binding and rule move with it to its new owner.
  t.AddRule("eth1", 3, Rule(1, a, 3, t.NextId()));
  EXPECT_EQ(t.CheckRuleQuota(3).code(), absl::StatusCode::kResourceExhausted);
  t.SetOwner(1, 2000);
  EXPECT_TRUE(t.CheckRuleQuota(3).ok());
  t.SetOwner(4, 2000);
  t.AddRule("eth1", 4, Rule(4, a, 4, t.NextId()));
  EXPECT_EQ(t.CheckRuleQuota(4).message(),
            "uid 2000 holds 3 of 3 steering rules over all its sessions "
            "(max_rules_per_uid)");

  // A forgotten session no longer counts.
  ASSERT_TRUE(t.RemoveRule("eth1", 2).has_value());
  t.Remove(b);
  t.ForgetSession(2);
  t.Add(Lease(t, 3, "eth1"));
  t.Add(Lease(t, 3, "eth1"));
  EXPECT_TRUE(t.CheckBindQuota(5, 1000).ok());
  t.SetOwner(5, 1000);
  t.Add(Lease(t, 5, "eth1"));
  EXPECT_EQ(t.CheckBindQuota(5, 1000).code(),
            absl::StatusCode::kResourceExhausted);
}

TEST(LeaseTableTest, SessionsAreJournaledOnceAndForgotten) {
  LeaseTable t(Small());
  EXPECT_FALSE(t.Known(5));
  EXPECT_FALSE(t.OwnerOf(5).has_value());
  t.SetOwner(5, 42);
  EXPECT_TRUE(t.Known(5));
  EXPECT_EQ(t.OwnerOf(5), 42u);
  EXPECT_FALSE(t.Journaled(5));
  t.MarkJournaled(5);
  EXPECT_TRUE(t.Journaled(5));
  EXPECT_TRUE(t.ForgetSession(5));  // was journaled: its record must go
  EXPECT_FALSE(t.Known(5));
  EXPECT_FALSE(t.ForgetSession(5));
}

}  // namespace
}  // namespace devmem
