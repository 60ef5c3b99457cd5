#include "daemon/state/lease_journal.h"

#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <thread>
#include <utility>

#include <google/protobuf/util/message_differencer.h>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace devmem {
namespace {

using devmem::v1::JournalEntry;
using devmem::v1::JournalState;
using ::testing::HasSubstr;

std::string TempPath() {
  static int n = 0;
  const char* tmp = std::getenv("TEST_TMPDIR");
  return absl::StrCat(tmp != nullptr ? tmp : "/tmp", "/lj_", getpid(), "_", n++,
                      "/journal");
}

JournalEntry SessionPut(uint64_t id, uint32_t uid) {
  JournalEntry e;
  e.mutable_session_put()->set_id(id);
  e.mutable_session_put()->set_token(absl::StrCat("tok", id));
  e.mutable_session_put()->set_uid(uid);
  return e;
}

JournalEntry BindingPut(uint64_t handle, uint64_t session, bool made) {
  JournalEntry e;
  auto* b = e.mutable_binding_put();
  b->set_handle(handle);
  b->set_session(session);
  b->set_nic("eth9");
  b->set_made(made);
  b->add_queues(3);
  if (made) b->set_kernel_id(7);
  return e;
}

TEST(FoldJournalEntryTest, PutsReplaceDeletesRemoveIdsOnlyGrow) {
  JournalState s;
  FoldJournalEntry(SessionPut(4, 1000), &s);
  FoldJournalEntry(BindingPut(10, 4, false), &s);
  FoldJournalEntry(BindingPut(10, 4, true), &s);
  EXPECT_EQ(s.sessions_size(), 1);
  ASSERT_EQ(s.bindings_size(), 1);
  EXPECT_TRUE(s.bindings().at(10).made());
  EXPECT_EQ(s.next_id(), 11u);
  JournalEntry del;
  del.set_binding_del(10);
  FoldJournalEntry(del, &s);
  EXPECT_EQ(s.bindings_size(), 0);
  EXPECT_EQ(s.next_id(), 11u) << "a delete must not lower the id mark";
  JournalEntry low;
  low.set_next_id(3);
  FoldJournalEntry(low, &s);
  EXPECT_EQ(s.next_id(), 11u);
  // Deleting what does not exist and an empty entry are harmless.
  JournalEntry nothing;
  FoldJournalEntry(nothing, &s);
  del.set_rule_del(999);
  FoldJournalEntry(del, &s);
  EXPECT_EQ(s.sessions_size(), 1);
}

TEST(FoldJournalEntryTest, ARuleTakenOverFoldsAsACopyWould) {
  JournalEntry put;
  put.mutable_rule_put()->set_id(41);
  put.mutable_rule_put()->set_nic("eth1");
  put.mutable_rule_put()->set_location(7);
  put.mutable_rule_put()->set_installed(true);
  JournalState copied;
  FoldJournalEntry(static_cast<const JournalEntry&>(put), &copied);
  JournalState moved;
  JournalEntry taken = put;
  FoldJournalEntry(std::move(taken), &moved);
  EXPECT_EQ(moved.SerializeAsString(), copied.SerializeAsString());
  EXPECT_EQ(moved.next_id(), 42u);
  ASSERT_EQ(moved.rules_size(), 1);
  EXPECT_EQ(moved.rules().at(41).nic(), "eth1");
  EXPECT_EQ(moved.rules().at(41).location(), 7u);
}

TEST(FoldJournalEntryTest, SnapshotRebuildsTheSameState) {
  JournalState s;
  FoldJournalEntry(SessionPut(1, 5), &s);
  FoldJournalEntry(SessionPut(2, 6), &s);
  FoldJournalEntry(BindingPut(3, 1, true), &s);
  JournalEntry rule;
  rule.mutable_rule_put()->set_id(8);
  rule.mutable_rule_put()->set_binding(3);
  rule.mutable_rule_put()->set_location(1023);
  FoldJournalEntry(rule, &s);
  JournalEntry prof;
  prof.mutable_profile_put()->set_nic("eth9");
  FoldJournalEntry(prof, &s);
  JournalEntry res;
  res.mutable_reservation_put()->set_id("r-1");
  res.mutable_reservation_put()->set_token_sha256("ab");
  FoldJournalEntry(res, &s);
  res.mutable_reservation_put()->set_id("r-2");
  FoldJournalEntry(res, &s);
  JournalEntry res_del;
  res_del.set_reservation_del("r-1");
  FoldJournalEntry(res_del, &s);
  ASSERT_EQ(s.reservations_size(), 1);
  JournalEntry cordon;
  cordon.mutable_cordon()->set_cordoned(true);
  cordon.mutable_cordon()->set_reason("maintenance");
  FoldJournalEntry(cordon, &s);
  // A confirmed profile change on eth9, and one still pending on eth8.
  JournalEntry change;
  change.mutable_profile_change()->set_nic("eth9");
  change.mutable_profile_change()->set_change_id("pc-1");
  change.mutable_profile_change()->mutable_previous()->set_pool_queues(2);
  change.mutable_profile_change()->mutable_next()->set_pool_queues(4);
  FoldJournalEntry(change, &s);
  JournalEntry done;
  done.mutable_profile_change_done()->set_nic("eth9");
  done.mutable_profile_change_done()->set_change_id("pc-1");
  done.mutable_profile_change_done()->set_confirmed(true);
  FoldJournalEntry(done, &s);
  EXPECT_EQ(s.profiles_in_force().at("eth9").pool_queues(), 4u);
  EXPECT_TRUE(s.profile_changes().empty());
  change.mutable_profile_change()->set_nic("eth8");
  change.mutable_profile_change()->set_change_id("pc-2");
  FoldJournalEntry(change, &s);
  done.mutable_profile_change_done()->set_change_id("pc-other");
  FoldJournalEntry(done, &s);  // not eth8's pending change: ignored
  ASSERT_EQ(s.profile_changes_size(), 1);
  JournalState rebuilt;
  for (const JournalEntry& e : SnapshotEntries(s)) {
    FoldJournalEntry(e, &rebuilt);
  }
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(rebuilt, s))
      << rebuilt.DebugString() << "\nvs\n"
      << s.DebugString();
  EXPECT_EQ(rebuilt.next_id(), 9u);
}

TEST(LeaseJournalTest, ReplaysAcrossReopen) {
  const std::string path = TempPath();
  {
    std::vector<std::string> report;
    auto j = LeaseJournal::Open({path, true}, &report);
    ASSERT_TRUE(j.ok()) << j.status();
    ASSERT_TRUE((*j)->Record(SessionPut(1, 1000)).ok());
    ASSERT_TRUE((*j)->Record(BindingPut(2, 1, true)).ok());
    EXPECT_EQ((*j)->error(), "");
  }
  std::vector<std::string> report;
  auto j = LeaseJournal::Open({path, true}, &report);
  ASSERT_TRUE(j.ok());
  JournalState s = (*j)->state();
  EXPECT_EQ(s.sessions_size(), 1);
  EXPECT_EQ(s.bindings_size(), 1);
  ASSERT_FALSE(report.empty());
  EXPECT_THAT(report[0], HasSubstr("2 record(s), 1 session(s), 1 binding(s)"));
}

TEST(LeaseJournalTest, TornTailIsReportedAndDropped) {
  const std::string path = TempPath();
  {
    auto j = LeaseJournal::Open({path, false}, nullptr);
    ASSERT_TRUE(j.ok());
    ASSERT_TRUE((*j)->Record(SessionPut(1, 1000)).ok());
  }
  {
    std::ofstream f(path, std::ios::app | std::ios::binary);
    // Written with its length: operator<< would stop at the first NUL.
    const char torn[] = "DMJ1\x10\x00\x00\x00xyz";
    f.write(torn, sizeof(torn) - 1);
  }
  std::vector<std::string> report;
  auto j = LeaseJournal::Open({path, false}, &report);
  ASSERT_TRUE(j.ok());
  EXPECT_EQ((*j)->state().sessions_size(), 1);
  ASSERT_EQ(report.size(), 2u);
  EXPECT_THAT(report[1], HasSubstr("torn or corrupt tail"));
}

TEST(LeaseJournalTest, FailedAppendRecordsNothingAndIsReported) {
  const std::string path = TempPath();
  auto j = LeaseJournal::Open({path, false}, nullptr);
  ASSERT_TRUE(j.ok());
  (*j)->InjectWriteFailureForTest(ENOSPC, 3);
  absl::Status s = (*j)->Record(SessionPut(1, 1000));
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT((*j)->error(), HasSubstr("No space left"));
  EXPECT_EQ((*j)->errors(), 1u);
  EXPECT_EQ((*j)->state().sessions_size(), 0);
  ASSERT_TRUE((*j)->Record(SessionPut(2, 1000)).ok());
  EXPECT_EQ((*j)->error(), "");
  EXPECT_EQ((*j)->errors(), 1u) << "a count of failures, not a state";
  auto again = LeaseJournal::Open({path, false}, nullptr);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ((*again)->state().sessions_size(), 1);
  EXPECT_TRUE((*again)->state().sessions().contains(2));
}

TEST(LeaseJournalTest, CompactsToTheLiveState) {
  const std::string path = TempPath();
  LeaseJournal::Options o{path, false, /*compact_bytes=*/4096};
  auto j = LeaseJournal::Open(o, nullptr);
  ASSERT_TRUE(j.ok());
  for (uint64_t i = 1; i <= 2000; ++i) {
    ASSERT_TRUE((*j)->Record(BindingPut(i, 1, true)).ok());
    JournalEntry del;
    del.set_binding_del(i);
    ASSERT_TRUE((*j)->Record(del).ok());
  }
  ASSERT_TRUE((*j)->Record(SessionPut(1, 1000)).ok());
  EXPECT_LT((*j)->size_bytes(), 16384u) << "the journal was never compacted";
  auto again = LeaseJournal::Open(o, nullptr);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ((*again)->state().sessions_size(), 1);
  EXPECT_EQ((*again)->state().bindings_size(), 0);
  EXPECT_EQ((*again)->state().next_id(), 2001u);
}

LeaseJournal::Options Synced(const std::string& path,
                             std::function<int(int)> fdatasync) {
  LeaseJournal::Options o;
  o.path = path;
  o.sync = true;
  o.fdatasync = std::move(fdatasync);
  return o;
}

TEST(LeaseJournalTest, WriteWaitDurableRoundTripAcrossReopen) {
  const std::string path = TempPath();
  std::atomic<int> calls{0};
  auto counting = [&calls](int fd) {
    ++calls;
    return ::fdatasync(fd);
  };
  {
    auto j = LeaseJournal::Open(Synced(path, counting), nullptr);
    ASSERT_TRUE(j.ok()) << j.status();
    absl::StatusOr<uint64_t> s1 = (*j)->Write(SessionPut(1, 1000));
    absl::StatusOr<uint64_t> s2 = (*j)->Write(BindingPut(2, 1, true));
    ASSERT_TRUE(s1.ok()) << s1.status();
    ASSERT_TRUE(s2.ok()) << s2.status();
    EXPECT_LT(*s1, *s2);
    EXPECT_EQ((*j)->state().bindings_size(), 1) << "folded at Write";
    (*j)->Flush();
    ASSERT_TRUE((*j)->WaitDurable(*s2).ok());
    ASSERT_TRUE((*j)->WaitDurable(*s1).ok());
    EXPECT_EQ((*j)->syncs(), 1u);
    EXPECT_EQ(calls.load(), 1);
    EXPECT_EQ((*j)->error(), "");
  }
  auto j = LeaseJournal::Open(Synced(path, nullptr), nullptr);
  ASSERT_TRUE(j.ok()) << j.status();
  EXPECT_TRUE((*j)->state().sessions().contains(1));
  EXPECT_TRUE((*j)->state().bindings().contains(2));
  EXPECT_EQ((*j)->state().next_id(), 3u);
}

TEST(LeaseJournalTest, WaitDurableDoesNotBlockWrite) {
  const std::string path = TempPath();
  absl::Notification held;
  absl::Notification release;
  std::atomic<int> calls{0};
  auto hold_first = [&](int fd) {
    if (++calls == 1) {
      held.Notify();
      release.WaitForNotification();
    }
    return ::fdatasync(fd);
  };
  auto j = LeaseJournal::Open(Synced(path, hold_first), nullptr);
  ASSERT_TRUE(j.ok()) << j.status();
  absl::Cleanup unblock = [&release] {
    if (!release.HasBeenNotified()) release.Notify();
  };
  absl::StatusOr<uint64_t> intent = (*j)->Write(SessionPut(1, 1000));
  ASSERT_TRUE(intent.ok()) << intent.status();
  absl::Status waited;
  std::thread waiter([&] { waited = (*j)->WaitDurable(*intent); });
  ASSERT_TRUE(held.WaitForNotificationWithTimeout(absl::Seconds(10)));

  absl::Notification wrote;
  absl::StatusOr<uint64_t> next;
  std::thread writer([&] {
    next = (*j)->Write(BindingPut(2, 1, false));
    wrote.Notify();
  });
  EXPECT_TRUE(wrote.WaitForNotificationWithTimeout(absl::Seconds(10)))
      << "Write blocked while another caller waited for a flush";
  release.Notify();
  writer.join();
  waiter.join();
  EXPECT_TRUE(waited.ok()) << waited;
  ASSERT_TRUE(next.ok()) << next.status();
  EXPECT_TRUE((*j)->WaitDurable(*next).ok());
  EXPECT_EQ((*j)->syncs(), 2u);
}

TEST(LeaseJournalTest, FailedFlushIsReportedInError) {
  const std::string path = TempPath();
  auto eio = [](int) {
    errno = EIO;
    return -1;
  };
  auto j = LeaseJournal::Open(Synced(path, eio), nullptr);
  ASSERT_TRUE(j.ok()) << j.status();
  absl::StatusOr<uint64_t> seq = (*j)->Write(SessionPut(1, 1000));
  ASSERT_TRUE(seq.ok()) << seq.status();
  const absl::Status s = (*j)->WaitDurable(*seq);
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable) << s;
  EXPECT_THAT((*j)->error(), HasSubstr("may not be on disk"));
  EXPECT_THAT((*j)->error(), HasSubstr(path));
  EXPECT_EQ((*j)->errors(), 1u);
  // The journal is broken: new work is refused and nothing is folded.
  EXPECT_EQ((*j)->Record(SessionPut(2, 1000)).code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_FALSE((*j)->state().sessions().contains(2));
  EXPECT_EQ((*j)->errors(), 2u);
}

TEST(LeaseJournalTest, CompactionKeepsSeqsValid) {
  const std::string path = TempPath();
  std::atomic<int> calls{0};
  LeaseJournal::Options o = Synced(path, [&calls](int fd) {
    ++calls;
    return ::fdatasync(fd);
  });
  o.compact_bytes = 4096;
  auto j = LeaseJournal::Open(o, nullptr);
  ASSERT_TRUE(j.ok()) << j.status();
  std::vector<uint64_t> seqs;
  for (uint64_t i = 1; i <= 500; ++i) {
    absl::StatusOr<uint64_t> put = (*j)->Write(BindingPut(i, 1, true));
    ASSERT_TRUE(put.ok()) << put.status();
    JournalEntry del;
    del.set_binding_del(i);
    absl::StatusOr<uint64_t> gone = (*j)->Write(del);
    ASSERT_TRUE(gone.ok()) << gone.status();
    ASSERT_EQ(*gone, *put + 1);
    seqs.push_back(*gone);
  }
  absl::StatusOr<uint64_t> last = (*j)->Write(SessionPut(1, 1000));
  ASSERT_TRUE(last.ok()) << last.status();
  EXPECT_LT((*j)->size_bytes(), 16384u) << "the journal was never compacted";
  for (uint64_t seq : seqs) ASSERT_TRUE((*j)->WaitDurable(seq).ok()) << seq;
  ASSERT_TRUE((*j)->WaitDurable(*last).ok());
  EXPECT_LE((*j)->syncs(), 1u) << "compaction made the older seqs durable";
  auto again = LeaseJournal::Open(o, nullptr);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ((*again)->state().sessions_size(), 1);
  EXPECT_EQ((*again)->state().bindings_size(), 0);
  EXPECT_EQ((*again)->state().next_id(), 501u);
}

}  // namespace
}  // namespace devmem
