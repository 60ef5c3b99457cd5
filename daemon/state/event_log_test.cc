#include "daemon/state/event_log.h"

#include <thread>

#include "daemon/base/testing/fake_clock.h"
#include "gtest/gtest.h"

namespace devmem {
namespace {

devmem::v1::Event Ev(const char* type) {
  devmem::v1::Event e;
  e.set_type(type);
  return e;
}

TEST(EventLogTest, RevisionsIncreaseAndReadsResumeWithoutAGap) {
  FakeClock clock;
  EventLog log(/*capacity=*/3, &clock);
  const uint64_t start = log.revision();
  EXPECT_EQ(start, static_cast<uint64_t>(absl::ToUnixMicros(clock.Now())));
  const uint64_t r1 = log.Publish(Ev("a"));
  const uint64_t r2 = log.Publish(Ev("b"));
  EXPECT_EQ(r1, start + 1);
  EXPECT_EQ(r2, start + 2);
  EventLog::Read all = log.Since(start, 100);
  ASSERT_FALSE(all.compacted);
  ASSERT_EQ(all.events.size(), 2u);
  EXPECT_EQ(all.events[0].type(), "a");
  EXPECT_EQ(all.events[1].revision(), r2);
  EXPECT_EQ(all.events[0].unix_ms(), absl::ToUnixMillis(clock.Now()));
  EventLog::Read rest = log.Since(r1, 100);
  ASSERT_EQ(rest.events.size(), 1u);
  EXPECT_EQ(rest.events[0].type(), "b");
  EXPECT_TRUE(log.Since(r2, 100).events.empty());
  EXPECT_FALSE(log.Since(r2, 100).compacted);
  EXPECT_EQ(log.Since(start, 1).events.size(), 1u);
}

TEST(EventLogTest, AGapOrAnotherRunsRevisionAsksForASnapshot) {
  FakeClock clock;
  EventLog log(/*capacity=*/2, &clock);
  const uint64_t start = log.revision();
  for (const char* t : {"a", "b", "c", "d"}) log.Publish(Ev(t));
  // Kept: c, d. After b is fine; after a lost b.
  EXPECT_FALSE(log.Since(start + 2, 10).compacted);
  EventLog::Read lost = log.Since(start + 1, 10);
  EXPECT_TRUE(lost.compacted);
  EXPECT_EQ(lost.oldest, start + 3);
  EXPECT_TRUE(log.Since(0, 10).compacted);
  EXPECT_TRUE(log.Since(start + 99, 10).compacted);  // a later run's
  // A new run starts above the old one's revisions.
  clock.Advance(absl::Seconds(1));
  EventLog next(2, &clock);
  EXPECT_GT(next.revision(), log.revision());
  EXPECT_TRUE(next.Since(log.revision(), 10).compacted);
}

TEST(EventLogTest, WaitNewerWakesOnPublish) {
  EventLog log;
  const uint64_t now = log.revision();
  EXPECT_FALSE(log.WaitNewer(now, absl::Milliseconds(1)));
  std::thread publisher([&] { log.Publish(Ev("x")); });
  EXPECT_TRUE(log.WaitNewer(now, absl::Seconds(30)));
  publisher.join();
}

}  // namespace
}  // namespace devmem
