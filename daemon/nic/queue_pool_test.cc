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

TEST(QueuePoolTest, ReservedQueuesAreNeitherFreeNorTakenWithoutTheId) {
  QueuePool pool({4, 5, 6, 7});
  auto r = pool.Reserve("r-a", 2, {}, "eth1");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_THAT(*r, ElementsAre(4, 5));
  EXPECT_THAT(pool.free(), ElementsAre(6, 7));
  EXPECT_EQ(pool.reserved_count(), 2u);
  EXPECT_THAT(pool.reserved(), ElementsAre(4, 5));
  EXPECT_EQ(pool.used_count(), 0u);
  // An unreserved bind sees only the free queues.
  auto unreserved = pool.Take(3, {}, "eth1");
  EXPECT_EQ(unreserved.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(unreserved.status().message(),
            "eth1: the devmem pool has 2 free of 4 queue(s), 3 requested; "
            "release a binding or grow pool_queues (2 more are reserved for "
            "jobs: bind with the job's reservation token to use those)");
  auto more = pool.Reserve("r-b", 3, {}, "eth1");
  EXPECT_EQ(more.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(more.status().message(),
            "eth1: 3 queue(s) asked, but the devmem pool has 2 free of 4 (2 "
            "reserved, 0 bound); reserve fewer, release a reservation, or "
            "grow pool_queues");
  EXPECT_THAT(pool.ReservedFor("r-b"), IsEmpty());

  // A binding with the token takes them; its end gives them back to it.
  auto bound = pool.TakeReserved("r-a", 1, "eth1");
  ASSERT_TRUE(bound.ok());
  EXPECT_THAT(*bound, ElementsAre(4));
  EXPECT_THAT(pool.ReservedFor("r-a"), ElementsAre(5));
  EXPECT_EQ(pool.used_count(), 1u);
  auto too_many = pool.TakeReserved("r-a", 2, "eth1");
  EXPECT_EQ(too_many.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(too_many.status().message(),
            "reservation r-a has 1 unbound queue(s) on eth1, 2 requested; "
            "bind fewer queues or reserve more");
  pool.ReturnReserved("r-a", *bound);
  EXPECT_THAT(pool.ReservedFor("r-a"), ElementsAre(4, 5));

  // Ending the reservation frees its unbound queues only.
  auto again = pool.TakeReserved("r-a", 1, "eth1");
  ASSERT_TRUE(again.ok());
  EXPECT_THAT(pool.Unreserve("r-a"), ElementsAre(5));
  EXPECT_THAT(pool.free(), ElementsAre(5, 6, 7));
  EXPECT_EQ(pool.used_count(), 1u);
  EXPECT_THAT(pool.Unreserve("r-a"), IsEmpty());  // idempotent
  pool.Release(*again);  // the binding ends after the reservation
  EXPECT_EQ(pool.free_count(), 4u);
}

TEST(QueuePoolTest, ClaimReservedTakesOnlyFreeQueues) {
  QueuePool pool({4, 5, 6});
  pool.Claim({4});  // a binding back from the journal
  pool.ClaimReserved("r-a", {4, 5, 9});
  EXPECT_THAT(pool.ReservedFor("r-a"), ElementsAre(5));
  EXPECT_THAT(pool.free(), ElementsAre(6));
  pool.Clear();
  EXPECT_EQ(pool.reserved_count(), 0u);
}

TEST(QueuePoolTest, QueuesAreUncheckedUntilTheKernelSaysTheyAreUnbound) {
  QueuePool pool({6, 7, 8});
  EXPECT_TRUE(pool.has_unchecked()) << "a new pool has not asked the kernel";
  pool.NoteKernelBound({7});
  EXPECT_TRUE(pool.has_unchecked()) << "7 is still bound";
  pool.NoteKernelBound({});
  EXPECT_FALSE(pool.has_unchecked());
  auto taken = pool.Take(1, {}, "sim0");
  ASSERT_TRUE(taken.ok());
  EXPECT_FALSE(pool.has_unchecked());
  pool.Release(*taken);  // its anchor may be kept
  EXPECT_TRUE(pool.has_unchecked());
  pool.Clear();
  EXPECT_FALSE(pool.has_unchecked());
}

}  // namespace
}  // namespace devmem
