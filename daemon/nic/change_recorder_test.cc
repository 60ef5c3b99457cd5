#include "daemon/nic/change_recorder.h"

#include <sys/resource.h>
#include <sys/socket.h>

#include <csignal>

#include <cstdlib>
#include <memory>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace devmem {
namespace {

using ::testing::HasSubstr;

devmem::v1::JournalEntry BindingPut(uint64_t handle) {
  BindingLease b;
  b.handle = handle;
  b.session = 3;
  b.nic = "eth1";
  b.kernel_id = 9;
  devmem::v1::JournalEntry e;
  *e.mutable_binding_put() = BindingRecord(b);
  return e;
}

TEST(ChangeRecorderTest, WithoutAJournalEverythingSucceeds) {
  ChangeRecorder r(nullptr);
  EXPECT_FALSE(r.enabled());
  EXPECT_TRUE(r.Intent(BindingPut(1)).ok());
  EXPECT_TRUE(r.Outcome(BindingPut(1)).ok());
  r.Note(BindingPut(1));
  EXPECT_EQ(r.error(), "");
  EXPECT_EQ(r.state().bindings_size(), 0);
}

TEST(ChangeRecorderTest, IntentsOutcomesAndNotesReachTheJournal) {
  auto journal = LeaseJournal::Open(
      {std::string(std::getenv("TEST_TMPDIR")) + "/journal"}, nullptr);
  ASSERT_TRUE(journal.ok()) << journal.status();
  ChangeRecorder r(journal->get());
  EXPECT_TRUE(r.enabled());
  ASSERT_TRUE(r.Intent(BindingPut(1)).ok());
  ASSERT_TRUE(r.Outcome(BindingPut(2)).ok());
  devmem::v1::JournalEntry del;
  del.set_binding_del(1);
  r.Note(del);
  const devmem::v1::JournalState state = r.state();
  EXPECT_EQ(state.bindings_size(), 1);
  EXPECT_TRUE(state.bindings().contains(2));
  EXPECT_EQ(state.bindings().at(2).nic(), "eth1");
}

TEST(ChangeRecorderTest, AnUnwritableJournalRefusesAndSaysWhatItMeans) {
  auto journal = LeaseJournal::Open(
      {std::string(std::getenv("TEST_TMPDIR")) + "/full-journal"}, nullptr);
  ASSERT_TRUE(journal.ok()) << journal.status();
  ChangeRecorder r(journal->get());
  // No byte more may be written (RLIMIT_FSIZE): write(2) fails with EFBIG.
  signal(SIGXFSZ, SIG_IGN);
  struct rlimit old = {};
  ASSERT_EQ(getrlimit(RLIMIT_FSIZE, &old), 0);
  struct rlimit none = {0, old.rlim_max};
  ASSERT_EQ(setrlimit(RLIMIT_FSIZE, &none), 0);
  absl::Status intent = r.Intent(BindingPut(1));
  absl::Status outcome = r.Outcome(BindingPut(1));
  const std::string error = r.error();
  ASSERT_EQ(setrlimit(RLIMIT_FSIZE, &old), 0);
  ASSERT_FALSE(intent.ok());
  EXPECT_THAT(intent.message(),
              HasSubstr("devmemd cannot record the change in its journal "
                        "(new work is refused, existing leases go on)"));
  EXPECT_THAT(outcome.message(), HasSubstr("(it was undone; new work"));
  EXPECT_NE(error, "");
  EXPECT_EQ(r.state().bindings_size(), 0);
}

TEST(ChangeRecorderTest, RecordsCarryTheLeaseAndComeBack) {
  BindingLease b;
  b.handle = 4;
  b.session = 2;
  b.nic = "eth1";
  b.ifindex = 7;
  b.kernel_id = 11;
  b.queues = {14, 15};
  b.rss_context = 3;
  b.anchor_id = {1, 2, 3};
  const devmem::v1::JournaledBinding rec = BindingRecord(b);
  EXPECT_TRUE(rec.made());
  EXPECT_EQ(rec.queues_size(), 2);
  EXPECT_EQ(rec.rss_context(), 3u);
  EXPECT_EQ(rec.anchor_inode(), 2u);
  EXPECT_EQ(rec.anchor_netlink_port(), 3u);

  RuleLease r;
  r.requested.family = AF_INET6;
  r.requested.src_ip = "::1";
  r.requested.src_port = 5;
  r.requested.dst_ip = "::2";
  r.requested.dst_port = 6;
  r.installed.match = r.requested;
  r.installed.queue = 15;
  r.installed.location = 1020;
  r.binding = 4;
  r.journal_id = 12;
  const devmem::v1::JournaledRule rule = RuleRecord("eth1", 7, r);
  EXPECT_TRUE(rule.installed());
  EXPECT_EQ(TupleFromRecord(rule.requested()), r.requested);
  EXPECT_TRUE(SameRule(r.installed, rule));
  FlowRule other = r.installed;
  other.queue = 14;
  EXPECT_FALSE(SameRule(other, rule));
  other = r.installed;
  other.rss_context = 3;
  EXPECT_FALSE(SameRule(other, rule));
  r.installed.location = kRxClsLocAny;
  EXPECT_FALSE(RuleRecord("eth1", 7, r).installed());
}

}  // namespace
}  // namespace devmem
