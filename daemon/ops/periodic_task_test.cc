#include "daemon/ops/periodic_task.h"

#include <atomic>

#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"

namespace devmem {
namespace {

TEST(PeriodicTaskTest, RunsRepeatedlyAndStopsPromptly) {
  std::atomic<int> runs{0};
  absl::Notification third;
  PeriodicTask task(absl::Milliseconds(1), [&] {
    if (++runs == 3) third.Notify();
  });
  task.Start();
  ASSERT_TRUE(third.WaitForNotificationWithTimeout(absl::Seconds(30)));
  task.Stop();
  const int after = runs.load();
  task.Stop();  // idempotent
  EXPECT_EQ(runs.load(), after);
}

TEST(PeriodicTaskTest, StopWakesALongWait) {
  std::atomic<int> runs{0};
  PeriodicTask task(absl::Hours(1), [&] { ++runs; });
  task.Start();
  task.Stop();  // must not wait for the hour
  EXPECT_EQ(runs.load(), 0);
}

}  // namespace
}  // namespace devmem
