#include "daemon/nic/queue_pool.h"

#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace devmem {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

TEST(QueuePoolTest, TakesTheLowestFreeQueuesAndGivesThemBack) {
  QueuePool pool({7, 5, 6, 5});
  EXPECT_THAT(pool.queues(), ElementsAre(5, 6, 7));
  EXPECT_EQ(pool.free_count(), 3u);
  auto two = pool.Take(2, {}, "eth1");
  ASSERT_TRUE(two.ok()) << two.status();
  EXPECT_THAT(*two, ElementsAre(5, 6));
  EXPECT_THAT(pool.free(), ElementsAre(7));
  EXPECT_EQ(pool.used_count(), 2u);
  pool.Release({6, 6, 42});  // twice, and one not in the pool: ignored
  EXPECT_THAT(pool.free(), ElementsAre(6, 7));
  EXPECT_EQ(pool.used_count(), 1u);
}

TEST(QueuePoolTest, TooFewFreeQueuesTakesNothingAndSaysWhy) {
  QueuePool pool({6, 7});
  auto all = pool.Take(3, {}, "eth1");
  EXPECT_EQ(all.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(all.status().message(),
            "eth1: the devmem pool has 2 free of 2 queue(s), 3 requested; "
            "release a binding or grow pool_queues");
  EXPECT_EQ(pool.free_count(), 2u);
}

TEST(QueuePoolTest, QueuesTheKernelStillBindsAreSkipped) {
  QueuePool pool({6, 7});
  auto one = pool.Take(1, {6}, "eth1");
  ASSERT_TRUE(one.ok());
  EXPECT_THAT(*one, ElementsAre(7));
  auto refused = pool.Take(1, {6}, "eth1");
  EXPECT_EQ(refused.status().message(),
            "eth1: the devmem pool has 0 free of 2 queue(s), 1 requested; "
            "release a binding or grow pool_queues (1 queue(s) are still "
            "bound in the kernel by anchors a workload kept)");
  EXPECT_THAT(pool.free(), ElementsAre(6));
}

TEST(QueuePoolTest, ClaimMarksRecoveredQueuesUsedAndClearForgetsAll) {
  QueuePool pool({4, 5, 6, 7});
  pool.Claim({5, 7, 9});
  EXPECT_THAT(pool.free(), ElementsAre(4, 6));
  pool.Clear();
  EXPECT_THAT(pool.queues(), IsEmpty());
  EXPECT_THAT(pool.free(), IsEmpty());
  EXPECT_EQ(pool.used_count(), 0u);
  EXPECT_EQ(pool.Take(1, {}, "eth1").status().code(),
            absl::StatusCode::kResourceExhausted);
  QueuePool empty;
  EXPECT_EQ(empty.free_count(), 0u);
}

}  // namespace
}  // namespace devmem
